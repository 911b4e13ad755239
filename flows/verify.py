"""The verify flow: scheduled fixity checks over a sample or the whole vault."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from blocks import resolve_settings
from mediavault import manifests
from mediavault.errors import IntegrityError
from mediavault.fixity import FixityReport
from mediavault.reindex import chunks_of
from mediavault.reports import write_report
from mediavault.vault import vault_from_settings
from tasks.common import submit_in_windows
from tasks.verify import check_chunk


@flow(name="verify", log_prints=True)
def verify_flow(
    sample_percent: float = 100.0,
    chunk_size: int = 64,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Recompute SHA-256 of stored objects and compare with the manifests. Never deletes anything.

    Args:
        sample_percent: Share of objects to check, 0-100 (100 checks everything). The sample is
            drawn afresh for every run.
        chunk_size: Media items per mapped task.
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    started = time.monotonic()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    salt = str(flow_run.get_id() or time.time_ns())
    media_ids = manifests.list_media_ids(vault)
    report = FixityReport()
    chunks = chunks_of(media_ids, chunk_size)
    arguments = [(settings, chunk, sample_percent, salt) for chunk in chunks]
    for part in submit_in_windows(check_chunk, arguments, settings.batch_max_concurrency):
        report.merge(part)
    report.seconds = time.monotonic() - started
    body = {"sample_percent": sample_percent, "media": len(media_ids), **report.as_dict()}
    key = write_report(vault, "verify", body)
    problems = [{"problem": "mismatch", **m} for m in report.mismatches]
    problems += [{"problem": "missing", **m} for m in report.missing]
    problems += [{"problem": "error", **m} for m in report.errors]
    create_markdown_artifact(
        f"# Fixity check {'passed' if report.ok else 'FAILED'}\n\n"
        f"- media items: {len(media_ids)}\n- objects checked: {report.checked} "
        f"({report.bytes_checked:,} bytes), skipped by sampling: {report.skipped}\n"
        f"- mismatches: {len(report.mismatches)}, missing: {len(report.missing)}, "
        f"errors: {len(report.errors)}\n"
        f"- report: `{key}` in the vault\n\nNothing was deleted or rewritten.",
        key="verify-summary",
        description="fixity check",
    )
    if problems:
        create_table_artifact(problems, key="verify-problems", description="objects that failed the check")
    logger.info(
        "fixity: %d checked, %d mismatches, %d missing, %d errors; report %s",
        report.checked,
        len(report.mismatches),
        len(report.missing),
        len(report.errors),
        key,
    )
    if not report.ok:
        raise IntegrityError(
            f"fixity check failed: {len(report.mismatches)} mismatched, {len(report.missing)} missing, "
            f"{len(report.errors)} unreadable object(s); see {key} and the verify-problems artifact"
        )
    return {**body, "report_key": key}
