"""Lifecycle flows: nightly retention/archive (with a dry-run plan) and on-demand restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks import LifecyclePolicy, resolve_settings
from mediavault.errors import MediavaultError
from mediavault.lifecycle import engine
from mediavault.lifecycle.policy import Policies, load_policies
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from mediavault.vault.models import utc_now
from mediavault.vault.reports import write_report
from tasks.common import RETRYING


def resolve_policies(
    settings: MediavaultSettings,
    policy_file: str | None,
    policy_block: str | None,
    policies: dict[str, Any] | None,
) -> Policies:
    """Explicit mapping, then a file, then a block, then the settings' file, then the defaults."""
    if policies:
        return load_policies(data=policies)
    if policy_file:
        return load_policies(Path(policy_file))
    if policy_block:
        return load_policies(data=LifecyclePolicy.load(policy_block).policies)
    if settings.lifecycle_policy_file:
        return load_policies(settings.lifecycle_policy_file)
    return Policies()


@task(name="lifecycle run", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def lifecycle_task(settings: MediavaultSettings, policies: Policies, dry_run: bool) -> engine.LifecycleReport:
    return engine.run(vault_from_settings(settings), policies, dry_run=dry_run)


@task(name="prune job events", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def prune_job_events(settings: MediavaultSettings) -> int:
    """Ingest job events older than ``ops.job_events_days`` go (MongoDB only; the vault has no copy)."""
    from mediavault.index import status
    from mediavault.ops.jobs import prune_events

    embedded_data = Path(settings.home) / "mongo"
    if settings.mongo_mode == "embedded" and settings.mongo_url is None and not embedded_data.exists():
        return 0  # no index was ever kept here: nothing to prune, and no server to start for it
    database = status.connect(settings)
    return 0 if database is None else prune_events(database, settings.ops.job_events_days)


def _markdown(summary: dict[str, Any], where: str) -> str:
    lines = [f"# Lifecycle {'plan (dry run: nothing changed)' if summary['dry_run'] else 'run'}", ""]
    for title, table in (("planned", summary["planned"]), ("done", summary["done"])):
        if summary["dry_run"] and title == "done":
            continue
        lines += [f"## {title}", "", "| action:class:tier | objects | bytes |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['objects']} | {v['bytes']:,} |" for k, v in sorted(table.items())] or [
            "| - | 0 | 0 |"
        ]
        lines.append("")
    lines += [f"errors: {len(summary['errors'])}", "", f"report: `{where}`"]
    return "\n".join(lines)


@flow(name="lifecycle", log_prints=True)
def lifecycle_flow(
    dry_run: bool = True,
    policies: dict[str, Any] | None = None,
    policy_file: str | None = None,
    policy_block: str | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Apply retention policies: archive, expire, clean up staging. Nothing is lost; holds are respected.

    Args:
        dry_run: Only produce the plan (a table artifact and a JSON report); change nothing.
        policies: Retention policies as a mapping (overrides file and block), e.g.
            {"media": {"action": "archive", "after_days": 90}}.
        policy_file: Path of a YAML policy file.
        policy_block: Name of a 'mediavault-lifecycle-policy' block.
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    chosen = resolve_policies(settings, policy_file, policy_block, policies)
    report = lifecycle_task(settings, chosen, dry_run)
    summary = report.summary()
    if not dry_run:
        summary["job_events_pruned"] = prune_job_events(settings)
    if dry_run:
        folder = settings.home / "reports" / "lifecycle"
        folder.mkdir(parents=True, exist_ok=True)
        where = str(folder / f"plan-{utc_now():%Y%m%dT%H%M%S}.json")
        Path(where).write_text(json.dumps(summary, indent=2, default=str))
    else:
        where = write_report(
            vault_from_settings(settings), "lifecycle", {**summary, "flow_run_id": flow_run.get_id()}
        )
    create_markdown_artifact(_markdown(summary, where), key="lifecycle-summary", description="lifecycle")
    rows = [{k: v for k, v in a.items() if k != "media_id"} for a in summary["actions"]]
    create_table_artifact(
        rows or [{"action": "nothing to do"}], key="lifecycle-plan", description="planned actions"
    )
    logger.info(
        "lifecycle %s: %d planned, %d done, %d errors; report %s",
        "plan" if dry_run else "run",
        len(report.actions),
        len(report.done),
        len(report.errors),
        where,
    )
    if report.errors:
        raise MediavaultError(
            f"lifecycle finished with {len(report.errors)} error(s) (nothing was lost); "
            f"see {where}: {report.errors[0]['error']}"
        )
    return {
        **{k: v for k, v in summary.items() if k != "actions"},
        "report": where,
        "planned_actions": len(report.actions),
    }


def schedule_follow_up(deployment_id: str, parameters: dict[str, Any], minutes: float) -> str:
    """Schedule another run of a deployment later, so no worker waits while S3 thaws objects."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id,
            parameters=parameters,
            state=Scheduled(scheduled_time=utc_now() + timedelta(minutes=minutes)),
        )
    return str(run.id)


@flow(name="restore", log_prints=True)
def restore_flow(
    media_id: str,
    dry_run: bool = False,
    poll_minutes: float = 30,
    restore_days: int = 7,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Bring an archived media item (media and AI outputs) back to the hot tier.

    Archive copies in a cold S3 storage class are first thawed with ``restore_object``; the run
    then ends at once and, when started from a deployment, schedules its own follow-up run
    ``poll_minutes`` later instead of holding a worker for hours.

    Args:
        media_id: The media id to restore.
        dry_run: Only list what would be restored.
        poll_minutes: When copies are still thawing, check again after this many minutes.
        restore_days: How long S3 keeps a thawed copy readable.
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    from prefect.runtime import flow_run

    settings = resolve_settings(config_block, vault_url=vault_url)
    result = engine.restore_media(
        vault_from_settings(settings), media_id, dry_run=dry_run, restore_days=restore_days
    )
    if result["pending"]:
        deployment_id = flow_run.get_deployment_id()
        parameters = {
            "media_id": media_id,
            "poll_minutes": poll_minutes,
            "restore_days": restore_days,
            "config_block": config_block,
            "vault_url": vault_url,
        }
        result["follow_up_run"] = (
            schedule_follow_up(deployment_id, parameters, poll_minutes) if deployment_id else None
        )
        get_run_logger().info(
            "%d object(s) still thawing; %s",
            len(result["pending"]),
            f"next check in {poll_minutes:g} min" if deployment_id else "run the restore again later",
        )
    listed = result["to_restore"] if dry_run else result["restored"]
    create_markdown_artifact(
        f"# Restore {'plan' if dry_run else 'progress'}: `{media_id[:16]}…`\n\n"
        + "\n".join(f"- `{k}`" for k in listed)
        + (
            "\n\nstill thawing:\n" + "\n".join(f"- `{k}`" for k in result["pending"])
            if result["pending"]
            else ""
        ),
        key="restore-summary",
        description="restore",
    )
    return result
