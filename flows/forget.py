"""The forget flow: erase a media item on request (a dry run unless ``apply``)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks import resolve_settings
from mediavault.lifecycle.forget import ForgetResult, record_forget, record_forget_failure
from mediavault.lifecycle.forget import forget as forget_media
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from tasks.common import RETRYING


@task(name="forget media", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def forget_task(
    settings: MediavaultSettings, media_id: str, reason: str, by: str, apply: bool
) -> ForgetResult:
    from mediavault.backends import index_target
    from mediavault.index import status
    from mediavault.index.reindex import purge_media

    indexed = status.connect(settings) is not None
    return forget_media(
        vault_from_settings(settings),
        media_id,
        reason,
        by,
        apply=apply,
        remove_from_index=(lambda m: purge_media(index_target(settings), m)) if indexed else None,
    )


def _markdown(result: ForgetResult) -> str:
    plan = result.plan.as_dict()
    title = "Forget applied" if result.applied else "Forget plan (dry run: nothing changed)"
    lines = [f"# {title}", "", f"media `{plan['media_id']}`", "", "| where | objects |", "|---|---:|"]
    lines += [
        f"| vault (media, runs, edits) | {len(plan['hot'])} |",
        f"| archive tiers | {len(plan['archive'])} |",
        f"| manifest versions and markers | {len(plan['manifests'])} |",
    ]
    if result.applied:
        lines += [
            "",
            f"tombstone: manifest v{result.tombstone_version}",
            f"index: {result.index or 'left to re-index'}",
        ]
    return "\n".join(lines)


@flow(name="forget", log_prints=True)
def forget_flow(
    media_id: str,
    reason: str,
    apply: bool = False,
    requested_by: str = "prefect",
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Erase a media item on request: its media, runs, Parquet, renderings, edits, archived copies,
    earlier manifest versions, index and search documents and job events. A tombstone (when, who,
    why) remains. Refused under legal hold. A run that dies part-way is finished by running again.

    Args:
        media_id: The media item (64 hex characters).
        reason: Why it is erased (kept in the tombstone and the audit log), e.g. "consent withdrawn".
        apply: False lists every object that would go, on every tier; True erases.
        requested_by: Who asked for it (kept in the tombstone and the audit log).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    try:
        result = forget_task(settings, media_id, reason, requested_by, apply)
    except Exception as exc:  # part-way: audited; running the flow again finishes it
        record_forget_failure(
            vault_from_settings(settings), media_id, requested_by, reason, exc, flow_run_id=flow_run.get_id()
        )
        raise
    record_forget(vault_from_settings(settings), result, requested_by, reason, flow_run_id=flow_run.get_id())
    create_markdown_artifact(_markdown(result), key="forget", description="forget")
    summary = result.as_dict()
    logger.info(
        "forget %s %s: %d object(s)%s",
        summary["media_id"],
        "applied" if apply else "planned",
        summary["objects"],
        f", tombstone v{result.tombstone_version}" if apply else "",
    )
    return summary
