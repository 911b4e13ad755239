"""Mirror tasks: each one is safe to repeat (copies are create-if-absent, the checkpoint is the
mirror's own journal), so transient faults are retried."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mediavault.lifecycle import mirror
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from tasks.common import RETRYING


@task(name="mirror: check the target", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def prepare_mirror(settings: MediavaultSettings, mirror_url: str | None) -> int:
    """Refuse a target that overlaps the vault or mirrors another vault; returns its checkpoint."""
    vault, target = vault_from_settings(settings), mirror.open_mirror(settings, mirror_url)
    mirror.check_identity(vault, target)
    return mirror.mirror_checkpoint(target)


@task(name="mirror: journal records", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def mirror_journal_chunk(
    settings: MediavaultSettings,
    mirror_url: str | None,
    max_records: int,
    batch_records: int,
    concurrency: int,
) -> mirror.MirrorReport:
    """Mirror up to ``max_records`` journal records after the mirror's checkpoint."""
    return mirror.mirror_journal(
        vault_from_settings(settings),
        mirror.open_mirror(settings, mirror_url),
        max_records=max_records,
        batch_records=batch_records,
        concurrency=concurrency,
    )


@task(name="mirror: tokens, audit, reports", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def mirror_listed_objects(
    settings: MediavaultSettings, mirror_url: str | None, concurrency: int
) -> mirror.MirrorReport:
    """Copy the objects no journal record names (by listing both sides)."""
    return mirror.mirror_listed(
        vault_from_settings(settings), mirror.open_mirror(settings, mirror_url), concurrency
    )
