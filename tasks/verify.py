"""Fixity tasks."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mediavault.lifecycle.fixity import FixityReport, check_journal_records, check_media
from mediavault.settings import MediavaultSettings
from mediavault.vault import manifests, vault_from_settings
from mediavault.vault.tiers import ArtifactReader
from tasks.common import RETRYING


@task(name="check chunk", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def check_chunk(
    settings: MediavaultSettings, media_ids: list[str], sample_percent: float, salt: str
) -> FixityReport:
    """Check the manifests, objects and archive copies of a chunk of media items (reads only)."""
    vault = vault_from_settings(settings)
    reader = ArtifactReader(vault)
    report = FixityReport()
    for media_id in media_ids:
        report.merge(check_media(vault, media_id, sample_percent, salt, reader))
    return report


@task(name="check journal chunk", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def check_journal_chunk(
    settings: MediavaultSettings, keys: list[str], sample_percent: float, salt: str
) -> FixityReport:
    """Check a chunk of journal records (reads only)."""
    return check_journal_records(vault_from_settings(settings), keys, sample_percent, salt)


@task(name="sweep unjournaled manifests", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def sweep_journal(settings: MediavaultSettings, grace_seconds: float) -> list[manifests.SweptVersion]:
    """Journal manifest versions a crash left without their journal record (safe to repeat)."""
    return manifests.sweep_unjournaled(vault_from_settings(settings), grace_seconds)
