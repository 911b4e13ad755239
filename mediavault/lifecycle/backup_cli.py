"""``mediavault mirror`` and ``mediavault restore-drill``: Typer commands the main CLI mounts.

The main CLI calls ``configure(settings_factory, fail)`` when mounting them; the settings factory
also prepares Prefect's environment, since both commands run their flow in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mediavault.settings import MediavaultSettings, load_settings

console = Console(emoji=False)

_settings_factory: Callable[[], MediavaultSettings] = load_settings
_fail_handler: Callable[[BaseException], Any] | None = None


def configure(
    settings_factory: Callable[[], MediavaultSettings], fail: Callable[[BaseException], Any]
) -> None:
    global _settings_factory, _fail_handler
    _settings_factory, _fail_handler = settings_factory, fail


def _fail(exc: BaseException) -> NoReturn:
    if _fail_handler is not None:
        _fail_handler(exc)
    raise typer.Exit(1)


def mirror_command(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The backup target (file:///path or s3://bucket/prefix); default MEDIAVAULT_MIRROR_URL.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Copy from this vault, not the configured one (restore: --from MIRROR --to NEW_VAULT).",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Objects copied at the same time.")] = 4,
) -> None:
    """Back the vault up to the mirror (incremental, SHA-256 verified, never deletes)."""
    try:
        _settings_factory()
        from flows.mirror import mirror_flow

        result = mirror_flow(mirror_url=to, vault_url=source, concurrency=concurrency)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    console.print(
        f"mirrored {result['records']} journal record(s) to {escape(result['target'])}: "
        f"{result['objects_copied']} object(s) copied ({result['bytes_copied']:,} bytes), "
        f"{result['objects_present']} already there, {result['listed_copied']} token/audit/report object(s), "
        f"{result['skipped_count']} skipped (expired or cold); checkpoint {result['checkpoint']}, "
        f"lag {result['lag']}; report {escape(result['report_key'])}",
        highlight=False,
    )


def restore_drill_command(
    sample: Annotated[int, typer.Option("--sample", min=0, help="Media items to restore and compare.")] = 5,
    percent: Annotated[
        float | None,
        typer.Option("--percent", min=0, max=100, help="Restore this share instead of --sample."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Repeat the sample of an earlier drill.")] = None,
    mirror_url: Annotated[
        str | None, typer.Option("--mirror", help="The backup to test; default MEDIAVAULT_MIRROR_URL.")
    ] = None,
) -> None:
    """Restore a sample from the mirror into scratch storage, re-index it and compare with the live
    index; exits non-zero on any difference."""
    try:
        _settings_factory()
        from flows.restore_drill import restore_drill_flow

        result = restore_drill_flow(sample=sample, sample_percent=percent, seed=seed, mirror_url=mirror_url)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    console.print(
        f"restore drill passed: {len(result['sample'])} item(s) restored (seed {result['seed']}), "
        f"{result['restored_objects']} object(s) match the live vault, {result['compared']} item(s) and "
        f"{result['statements_compared']} statement(s) match the live index, {len(result['skipped'])} "
        f"skipped; report {escape(result['report_key'])}",
        highlight=False,
    )


def adopt_hot_copies_command(
    apply: Annotated[
        bool, typer.Option("--apply", help="Commit the changes (default: only list them).")
    ] = False,
) -> None:
    """After a restore from the mirror with the archive tier lost: mark archived artifacts hot again
    where the restored vault holds their verified bytes (one journaled manifest version per item)."""
    from mediavault.lifecycle.mirror import adopt_hot_copies
    from mediavault.vault import vault_from_settings

    try:
        outcome = adopt_hot_copies(vault_from_settings(_settings_factory()), dry_run=not apply)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    for entry in outcome:
        console.print(
            f"{entry['media_id'][:16]}  {escape(entry['key'])}: {escape(entry['result'])}", highlight=False
        )
    adopted = sum(entry["result"] in ("adopted", "would adopt") for entry in outcome)
    console.print(
        f"{adopted} artifact(s) {'adopted' if apply else 'to adopt (run again with --apply)'}; "
        f"{len(outcome) - adopted} not adoptable",
        highlight=False,
    )
