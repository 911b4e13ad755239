"""The capacity-check flow: publish the vault's metrics and fail when a threshold is crossed, so
that a Prefect automation (or notification) acts on the failed run."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from blocks import resolve_settings
from mediavault.index import status
from mediavault.ops import capacity, metrics, snapshot
from mediavault.settings import MediavaultSettings
from mediavault.vault.models import utc_now
from tasks.common import RETRYING


@task(name="read capacity snapshot", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def read_snapshot(settings: MediavaultSettings) -> snapshot.Snapshot:
    return snapshot.take_for(settings, status.connect(settings))


@task(name="publish metrics", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def publish_metrics(settings: MediavaultSettings, taken: snapshot.Snapshot) -> list[str]:
    return metrics.publish(taken, settings.ops.metrics_textfile, settings.ops.pushgateway_url)


def _markdown(taken: snapshot.Snapshot, findings: list[capacity.Finding]) -> str:
    lines = ["# Capacity check", "", "| figure | value |", "|---|---:|"]
    lines.append(f"| vault (hot tier) | {capacity.gib(taken.vault_bytes)} |")
    if taken.local_free_bytes is not None:
        lines.append(f"| free on the local vault's disk | {capacity.gib(taken.local_free_bytes)} |")
    lines.append(
        f"| re-index lag (journal records) | {taken.reindex_lag if taken.reindex_lag is not None else '-'} |"
    )
    if taken.mirror_lag is not None:
        lines.append(f"| mirror lag (journal records) | {taken.mirror_lag} |")
    for flow_name, runs in sorted(taken.flows.items()):
        when = f"{runs.last_success:%Y-%m-%d %H:%M} UTC" if runs.last_success else "never"
        lines.append(f"| last successful {flow_name} | {when} |")
    lines += ["", "## Findings", ""]
    lines += [f"- {f.line()}" for f in findings] or ["- none: every threshold is met"]
    return "\n".join(lines)


@flow(name="capacity-check", log_prints=True)
def capacity_flow(config_block: str | None = None, vault_url: str | None = None) -> dict[str, Any]:
    """Measure storage, free space, re-index lag and the age of the last lifecycle and verify runs;
    publish them as Prometheus metrics; fail the run when a threshold is crossed.

    Args:
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    taken = read_snapshot(settings)
    published = publish_metrics(settings, taken)
    findings = capacity.check(taken, settings.ops, utc_now())
    create_markdown_artifact(_markdown(taken, findings), key="capacity-check", description="capacity check")
    for finding in findings:
        (logger.error if finding.level == "critical" else logger.warning)(finding.line())
    if findings:
        raise capacity.CapacityExceeded(findings)
    logger.info("every threshold is met; metrics published to %s", ", ".join(published) or "nowhere")
    return {"findings": [], "published": published, "vault_bytes": taken.vault_bytes}
