"""The restore-drill flow: prove that the mirror can rebuild what the live index serves."""

from __future__ import annotations

import secrets
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from blocks import resolve_settings
from mediavault.errors import IntegrityError
from mediavault.lifecycle import mirror
from mediavault.vault import vault_from_settings
from mediavault.vault.reports import write_report
from tasks.restore_drill import run_restore_drill


def _markdown(body: dict[str, Any], key: str) -> str:
    verdict = "passed" if body["ok"] else "INCONCLUSIVE" if not body["differences"] else "FAILED"
    return (
        f"# Restore drill {verdict}\n\n"
        f"- mirror: `{body['mirror']}` ({body['mirror_media']} media item(s))\n"
        f"- sample: {len(body['sample'])} item(s), seed `{body['seed']}` (pass it as `seed` to repeat)\n"
        f"- restored: {body['restored_objects']} object(s), {body['restored_bytes']:,} bytes, every "
        "SHA-256 compared with the live vault\n"
        f"- compared with the live index: {body['compared']} item(s), {body['statements_compared']} "
        f"statement(s); skipped: {len(body['skipped'])}\n"
        f"- differences: {len(body['differences'])}\n"
        + (f"- {body['inconclusive']}\n" if body.get("inconclusive") else "")
        + f"- report: `{key}` in the vault\n\nThe scratch vault, database and index were removed."
    )


@flow(name="restore-drill", log_prints=True)
def restore_drill_flow(
    sample: int = 5,
    sample_percent: float | None = None,
    seed: int | None = None,
    mirror_url: str | None = None,
    workdir: str | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Restore a random sample of media from the mirror into a scratch vault, re-index it into a
    scratch MongoDB database and Tantivy index, and compare objects (SHA-256), media documents and
    search documents with the live vault and index. Fails on any difference; cleans up after itself.

    Args:
        sample: How many media items to restore (ignored when sample_percent is set).
        sample_percent: Share of the mirror's media items to restore, 0-100 (rounded up).
        seed: Seed of the random sample; empty draws one (it is logged and kept in the report, so
            a run can be repeated exactly).
        mirror_url: The backup to test (file:///path or s3://bucket/prefix); empty uses
            MEDIAVAULT_MIRROR_URL.
        workdir: Where the scratch vault and index go (a temporary directory is made inside);
            empty uses the system's temporary directory.
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the live vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    mirror.open_mirror(settings, mirror_url)  # a missing or overlapping mirror fails here
    chosen_seed = seed if seed is not None else secrets.randbits(32)
    logger.info("restore drill: seed %d (pass seed=%d to repeat this sample)", chosen_seed, chosen_seed)
    drill = run_restore_drill(settings, mirror_url, sample, sample_percent, chosen_seed, workdir)
    body = {**drill.as_dict(), "flow_run_id": flow_run.get_id()}
    key = write_report(vault, "restore-drill", body)
    create_markdown_artifact(_markdown(body, key), key="restore-drill-summary", description="restore drill")
    if drill.differences:
        create_table_artifact(
            drill.differences, key="restore-drill-differences", description="mirror vs live"
        )
    if drill.skipped:
        create_table_artifact(drill.skipped, key="restore-drill-skipped", description="not compared")
    logger.info(
        "restore drill: %d item(s) restored, %d compared, %d difference(s), %d skipped; report %s",
        len(drill.sample),
        drill.compared,
        len(drill.differences),
        len(drill.skipped),
        key,
    )
    if not drill.ok:
        raise IntegrityError(f"{drill.failure_message()}\nreport: {key}")
    return {**body, "report_key": key}
