"""The restore drill task: it cleans up its scratch vault, database and index itself, so a retry
after a transient fault starts afresh."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from mediavault.backends import index_target
from mediavault.lifecycle import mirror, restore_drill
from mediavault.settings import MediavaultSettings
from tasks.common import RETRYING


@task(name="restore drill", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def run_restore_drill(
    settings: MediavaultSettings,
    mirror_url: str | None,
    sample: int | None,
    sample_percent: float | None,
    seed: int,
    workdir: str | None,
) -> restore_drill.DrillReport:
    """Restore a sample from the mirror into scratch storage, re-index it, compare with the live index."""
    return restore_drill.run_drill(
        mirror.open_mirror(settings, mirror_url),
        index_target(settings),
        count=sample,
        percent=sample_percent,
        seed=seed,
        workdir=Path(workdir) if workdir else None,
    )
