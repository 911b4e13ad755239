"""The verify flow: scheduled fixity checks over a sample or the whole vault."""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import islice
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from blocks import resolve_settings
from mediavault.errors import IntegrityError
from mediavault.index.reindex import chunks_of
from mediavault.lifecycle.fixity import FixityReport, journal_chunks
from mediavault.vault import manifests, vault_from_settings
from mediavault.vault.reports import write_report
from tasks.verify import check_chunk, check_journal_chunk, sweep_journal

JOURNAL_RECORDS_PER_MEDIA_ITEM = 4
"""A journal chunk holds this many times ``chunk_size`` records (a record is one small object)."""
SWEEP_LISTED = 100


def _checked_in_windows(
    task: Any, argument_sets: Iterable[tuple], window: int, report: FixityReport, check: str
) -> None:
    """Run ``task`` over lazily produced argument tuples, ``window`` at a time, merging each
    result into ``report``; a chunk whose task failed is reported as an error and the run goes on."""
    pending = iter(argument_sets)
    while batch := list(islice(pending, max(1, window))):
        futures = [(arguments, task.submit(*arguments)) for arguments in batch]
        for arguments, future in futures:
            try:
                report.merge(future.result())
            except Exception as exc:
                items = arguments[1]
                report.error(check, str(items[0]), exc, chunk_items=len(items))


@flow(name="verify", log_prints=True)
def verify_flow(
    sample_percent: float = 100.0,
    chunk_size: int = 64,
    config_block: str | None = None,
    vault_url: str | None = None,
    repair_journal: bool = True,
    journal_grace_seconds: float = manifests.SWEEP_GRACE_SECONDS,
) -> dict[str, Any]:
    """Check the vault's fixity: manifests, journal, hot objects and archive copies. Never deletes.

    Args:
        sample_percent: Share of objects to check, 0-100 (100 checks everything). The sample is
            drawn afresh for every run. The newest manifest of each item is always read.
        chunk_size: Media items per mapped task (journal records: four times as many).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
        repair_journal: First journal manifest versions a crash left without a journal record
            (it only appends records; off makes the run read-only).
        journal_grace_seconds: Manifest versions younger than this are left to their writer.
    """
    logger = get_run_logger()
    started = time.monotonic()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    salt = str(flow_run.get_id() or time.time_ns())
    window = settings.batch_max_concurrency
    report = FixityReport()

    swept: list[manifests.SweptVersion] = []
    if repair_journal:
        try:
            swept = sweep_journal(settings, journal_grace_seconds)
        except Exception as exc:  # the checks still run; the failure is in the report
            report.error("journal-sweep", "manifests/", exc)

    media_ids = manifests.list_media_ids(vault)
    media_chunks = ((settings, chunk, sample_percent, salt) for chunk in chunks_of(media_ids, chunk_size))
    _checked_in_windows(check_chunk, media_chunks, window, report, "media")

    journal_size = chunk_size * JOURNAL_RECORDS_PER_MEDIA_ITEM
    record_chunks = (
        (settings, chunk, sample_percent, salt) for chunk in journal_chunks(vault, report, journal_size)
    )
    try:
        _checked_in_windows(check_journal_chunk, record_chunks, window, report, "journal")
    except Exception as exc:  # the journal listing failed part-way
        report.error("journal", "journal/", exc)
    report.seconds = time.monotonic() - started

    sweep = {
        "enabled": repair_journal,
        "repaired": len(swept),
        "versions": [
            {"media_id": s.media_id, "version": s.version, "journal_seq": s.journal_seq}
            for s in swept[:SWEEP_LISTED]
        ],
    }
    body = {
        "flow_run_id": flow_run.get_id(),
        "sample_percent": sample_percent,
        "media": len(media_ids),
        "journal_sweep": sweep,
        **report.as_dict(),
    }
    key = write_report(vault, "verify", body)
    problems = [{"problem": "mismatch", **m} for m in report.mismatches]
    problems += [{"problem": "missing", **m} for m in report.missing]
    problems += [{"problem": "error", **m} for m in report.errors]
    kinds = report.checked_by_kind
    create_markdown_artifact(
        f"# Fixity check {'passed' if report.ok else 'FAILED'}\n\n"
        f"- media items: {len(media_ids)}\n"
        f"- objects checked: {report.checked} ({report.bytes_checked:,} bytes): "
        f"{kinds.get('manifest', 0)} manifest versions, {kinds.get('journal', 0)} journal records, "
        f"{kinds.get('object', 0)} hot objects, {kinds.get('archive-copy', 0)} archive copies; "
        f"skipped by sampling: {report.skipped}\n"
        f"- mismatches: {len(report.mismatches)}, missing: {len(report.missing)}, "
        f"errors: {len(report.errors)}\n"
        f"- unverified (cold copies not restored, so not readable): {len(report.unverified)}\n"
        f"- journal sweep: "
        + (f"{len(swept)} manifest version(s) journaled\n" if repair_journal else "off\n")
        + f"- report: `{key}` in the vault\n\nNothing was deleted or rewritten.",
        key="verify-summary",
        description="fixity check",
    )
    if problems:
        create_table_artifact(problems, key="verify-problems", description="objects that failed the check")
    if report.unverified:
        create_table_artifact(
            report.unverified, key="verify-unverified", description="objects that could not be read"
        )
    logger.info(
        "fixity: %d checked, %d mismatches, %d missing, %d errors, %d unverified; "
        "%d manifest version(s) journaled by the sweep; report %s",
        report.checked,
        len(report.mismatches),
        len(report.missing),
        len(report.errors),
        len(report.unverified),
        len(swept),
        key,
    )
    if not report.ok:
        raise IntegrityError(
            f"fixity check failed: {len(report.mismatches)} mismatched, {len(report.missing)} missing, "
            f"{len(report.errors)} unreadable object(s); see {key} and the verify-problems artifact"
        )
    return {**body, "report_key": key}
