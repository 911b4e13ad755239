"""The re-index flow: project the vault into MongoDB and the search index."""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from blocks import resolve_settings
from mediavault import progress
from mediavault.index.reindex import LeaseBusy, ProjectedDigests, chunks_of, describe_reindex
from tasks.common import submit_in_windows
from tasks.reindex import (
    acquire_lease,
    finish_rebuild,
    incremental,
    project_chunk,
    reindex_media,
    rollback,
    select_media,
    start_rebuild,
)


@flow(name="reindex", log_prints=True)
def reindex_flow(
    mode: Literal["incremental", "full", "targeted", "rollback"] = "incremental",
    media_id: str | None = None,
    prefix: str | None = None,
    owner: str | None = None,
    chunk_size: int | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Project the vault into MongoDB and the search index.

    Args:
        mode: 'incremental' replays the journal from the checkpoint; 'full' rebuilds a new generation
            beside the live one, verifies it and switches with zero downtime; 'targeted' re-indexes
            the media chosen below; 'rollback' makes the previous generation live again.
        media_id: For 'targeted': one media id.
        prefix: For 'targeted': every media id starting with this prefix.
        owner: For 'targeted': every media item of this owner.
        chunk_size: Media items per mapped task in a full rebuild (default from settings).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    try:
        lease = acquire_lease(settings)
    except LeaseBusy as exc:
        if mode == "incremental":  # the schedule fires again soon; the holder covers these records
            logger.info("skipped: %s", exc)
            return {"mode": "skipped", "reason": str(exc)}
        raise
    try:
        if mode == "incremental":
            result = incremental(settings, lease.holder)
        elif mode == "rollback":
            result = {"mode": "rollback", "generation": rollback(settings, lease.holder)}
        elif mode == "targeted":
            if not (media_id or prefix or owner):
                raise ValueError("a targeted re-index needs media_id, prefix or owner")
            ids = select_media(settings, media_id, prefix, owner)
            result = {
                "mode": "targeted",
                "media": len(ids),
                "statements": reindex_media(settings, ids, lease.holder),
            }
        else:
            result = _full(settings, chunk_size or settings.reindex_chunk_size, lease.holder)
    finally:
        lease.release()
    quarantined = result.get("quarantined") or []
    if quarantined:
        create_table_artifact(
            quarantined,
            key="reindex-quarantine",
            description=f"{len(quarantined)} media item(s) could not be indexed; retried on every run",
        )
        logger.warning("%d media item(s) quarantined: %s", len(quarantined), quarantined[:5])
    create_markdown_artifact(
        "# Re-index\n\n"
        + "\n".join(f"{line}  " for line in describe_reindex(result))
        + "\n\n"
        + "\n".join(f"- **{k}**: {v}" for k, v in result.items() if k != "quarantined"),
        key="reindex-summary",
        description=f"re-index ({mode})",
    )
    logger.info("re-index done: %s", result)
    return result


def _full(settings, chunk_size: int, holder: str) -> dict[str, Any]:
    started = time.monotonic()
    generation, start_seq, media_ids = start_rebuild(settings, holder)
    chunks = chunks_of(media_ids, chunk_size)
    progress_id = create_progress_artifact(
        0.0, key="reindex-progress", description=f"full re-index into generation {generation}"
    )
    digests = ProjectedDigests()
    advance = progress.reporter(f"re-index into generation {generation}", len(media_ids))
    arguments = [(settings, generation, chunk) for chunk in chunks]
    results = submit_in_windows(project_chunk, arguments, settings.batch_max_concurrency)
    for done, (chunk, part) in enumerate(zip(chunks, results, strict=True), start=1):
        digests.merge(part)
        if advance:
            advance(len(chunk))
        update_progress_artifact(progress_id, 100.0 * done / max(1, len(chunks)))
    update_progress_artifact(progress_id, 100.0)
    return {"mode": "full", **finish_rebuild(settings, generation, start_seq, digests, started, holder)}
