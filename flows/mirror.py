"""The mirror flow: back the vault up to a second target, incrementally from the journal."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from blocks import resolve_settings
from mediavault.errors import MediavaultError
from mediavault.lifecycle import mirror
from mediavault.vault import journal, vault_from_settings
from mediavault.vault.reports import write_report
from tasks.mirror import mirror_journal_chunk, mirror_listed_objects, prepare_mirror


def _markdown(body: dict[str, Any], key: str) -> str:
    return (
        f"# Mirror {'up to date' if body['ok'] and not body['lag'] else 'OK' if body['ok'] else 'FAILED'}\n\n"
        f"- target: `{body['target']}`\n"
        f"- journal: checkpoint {body['checkpoint_before']} → {body['checkpoint']} of {body['journal_tail']} "
        f"({body['records']} record(s) mirrored), lag now {body['lag']}\n"
        f"- objects copied: {body['objects_copied']} ({body['bytes_copied']:,} bytes), already there: "
        f"{body['objects_present']}; tokens/audit/reports copied: {body['listed_copied']}\n"
        f"- skipped (expired, or archived in a cold class): {body['skipped_count']}\n"
        f"- errors: {len(body['errors'])}\n"
        f"- report: `{key}` in the vault\n\nNothing was deleted from the mirror except what a forget erased "
        f"({body.get('erased', 0)} object(s))."
    )


@flow(name="mirror", log_prints=True)
def mirror_flow(
    mirror_url: str | None = None,
    concurrency: int = mirror.DEFAULT_CONCURRENCY,
    batch_records: int = mirror.BATCH_RECORDS,
    chunk_records: int = 5000,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Back the vault up to the mirror: every journal record after the mirror's checkpoint with the
    objects it names (SHA-256 verified), then tokens, audit records and reports. Never deletes.

    Args:
        mirror_url: The backup target (file:///path or s3://bucket/prefix); empty uses
            MEDIAVAULT_MIRROR_URL. It must not overlap the vault.
        concurrency: Objects copied at the same time.
        batch_records: Journal records per batch; the checkpoint advances after each batch, so a
            crash copies at most this many records again.
        chunk_records: Journal records per task run (a retry repeats at most one chunk).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault to back up (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    target = mirror.open_mirror(settings, mirror_url)
    report = mirror.MirrorReport(vault.url, target.url)
    try:
        report.checkpoint_before = report.checkpoint = prepare_mirror(settings, mirror_url)
        while True:
            part = mirror_journal_chunk(settings, mirror_url, chunk_records, batch_records, concurrency)
            report.merge(part)
            if part.records < chunk_records or part.errors:
                break
        report.merge(mirror_listed_objects(settings, mirror_url, concurrency))
    except Exception as exc:  # retries are spent: the run fails, and says so in its report
        report.error("", exc)
    try:  # measured afresh: ingests went on during the run
        report.checkpoint = mirror.mirror_checkpoint(target)
        report.journal_tail = max(journal.find_tail(vault), report.checkpoint)
    except Exception as exc:
        report.error("journal/", exc)
    body = {**report.as_dict(), "flow_run_id": flow_run.get_id()}
    key = write_report(vault, "mirror", body)
    create_markdown_artifact(_markdown(body, key), key="mirror-summary", description="mirror")
    if report.errors:
        create_table_artifact(report.errors, key="mirror-errors", description="objects not mirrored")
    if report.skipped:
        create_table_artifact(report.skipped, key="mirror-skipped", description="objects skipped on purpose")
    logger.info(
        "mirror %s: %d record(s), %d object(s) copied (%d bytes), %d skipped, %d error(s), lag %d; report %s",
        target.url,
        report.records,
        report.objects_copied,
        report.bytes_copied,
        report.skipped_count,
        len(report.errors),
        report.lag,
        key,
    )
    if report.errors:
        first = report.errors[0]
        raise MediavaultError(
            f"mirror to {target.url} failed with {len(report.errors)} error(s); the checkpoint stays at "
            f"record {report.checkpoint}: {first['key'] or 'run'}: {first['error']} (see {key})"
        )
    return {**body, "report_key": key}
