"""Fixity tasks."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mediavault.fixity import FixityReport, check_media
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from tasks.common import RETRYING


@task(name="check chunk", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def check_chunk(
    settings: MediavaultSettings, media_ids: list[str], sample_percent: float, salt: str
) -> FixityReport:
    """Recompute checksums for a chunk of media items (reads only)."""
    vault = vault_from_settings(settings)
    report = FixityReport()
    for media_id in media_ids:
        report.merge(check_media(vault, media_id, sample_percent, salt))
    return report
