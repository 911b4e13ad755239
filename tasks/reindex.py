"""Re-index tasks. They take settings (picklable) and build backends per process, so the same
flow can run its chunks on a thread pool or on Dask workers."""

from __future__ import annotations

import threading
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mediavault.backends import index_target
from mediavault.index import reindex
from mediavault.index.reindex import IndexTarget, ProjectedDigests
from mediavault.settings import MediavaultSettings
from tasks.common import RETRYING

_targets: dict[str, IndexTarget] = {}
_lock = threading.Lock()


def target_for(settings: MediavaultSettings) -> IndexTarget:
    """One IndexTarget per settings per process (clients and writers are reused)."""
    key = settings.identity()
    with _lock:
        if key not in _targets:
            _targets[key] = index_target(settings)
        return _targets[key]


def acquire_lease(settings: MediavaultSettings) -> reindex.RebuildLease:
    """The re-index lease for a flow run; the flow holds and renews it, tasks check it."""
    return reindex.RebuildLease(target_for(settings).store).acquire()


@task(name="start rebuild", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def start_rebuild(settings: MediavaultSettings, holder: str) -> tuple[int, int, list[str]]:
    target = target_for(settings)
    reindex.held_by(target.store, holder).check()
    generation, start_seq, media_ids = reindex.start_rebuild(target)
    get_run_logger().info(
        "building generation %d from %d media items (journal at %d)", generation, len(media_ids), start_seq
    )
    return generation, start_seq, media_ids


@task(name="project chunk", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def project_chunk(settings: MediavaultSettings, generation: int, media_ids: list[str]) -> ProjectedDigests:
    """Project a chunk of media items into the new generation; returns what was projected."""
    digests = ProjectedDigests()
    reindex.project_media(target_for(settings), generation, media_ids, replace=True, digests=digests)
    return digests


@task(name="verify and switch", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def finish_rebuild(
    settings: MediavaultSettings,
    generation: int,
    start_seq: int,
    digests: ProjectedDigests,
    started: float,
    holder: str,
) -> dict[str, Any]:
    target = target_for(settings)
    lease = reindex.held_by(target.store, holder)
    report = reindex.finish_rebuild(target, generation, start_seq, digests, started, lease=lease)
    get_run_logger().info(
        "generation %d verified and live: %d media, %d statements",
        report.generation,
        report.media,
        report.statements,
    )
    return report.as_dict()


@task(name="incremental update", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def incremental(settings: MediavaultSettings, holder: str) -> dict[str, Any]:
    target = target_for(settings)
    report = reindex.incremental(target, lease=reindex.held_by(target.store, holder))
    get_run_logger().info("incremental: %s", report)
    return report


@task(name="re-index media", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def reindex_media(settings: MediavaultSettings, media_ids: list[str], holder: str) -> int:
    target = target_for(settings)
    reindex.held_by(target.store, holder).check()
    return reindex.reindex_media(target, media_ids)


@task(name="select media", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def select_media(
    settings: MediavaultSettings, media_id: str | None, prefix: str | None, owner: str | None
) -> list[str]:
    return reindex.select_media(target_for(settings), media_id, prefix, owner)


@task(name="roll back", cache_policy=NO_CACHE, persist_result=False)
def rollback(settings: MediavaultSettings, holder: str) -> int:
    target = target_for(settings)
    return reindex.rollback(target, lease=reindex.held_by(target.store, holder))
