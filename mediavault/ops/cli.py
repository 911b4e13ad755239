"""``mediavault jobs``, ``capacity`` and ``forget``: Typer commands the main CLI mounts.

The main CLI calls ``configure(settings_factory, fail)`` when mounting them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mediavault.access.cli import parse_time
from mediavault.errors import ConfigurationError, InputError
from mediavault.settings import MediavaultSettings, load_settings

console = Console(emoji=False)

_settings_factory: Callable[[], MediavaultSettings] = load_settings
_fail_handler: Callable[[BaseException], Any] | None = None


def _run_in_place(call: Callable[[], Any]) -> Any:
    return call()


_flow_runner: Callable[[Callable[[], Any]], Any] = _run_in_place


def configure(
    settings_factory: Callable[[], MediavaultSettings],
    fail: Callable[[BaseException], Any],
    run_flow: Callable[[Callable[[], Any]], Any] | None = None,
) -> None:
    """How these commands load settings, report a failure (``fail`` must not return) and run a
    Prefect flow in this process."""
    global _settings_factory, _fail_handler, _flow_runner
    _settings_factory, _fail_handler = settings_factory, fail
    if run_flow is not None:
        _flow_runner = run_flow


def _fail(exc: BaseException) -> NoReturn:
    if _fail_handler is not None:
        _fail_handler(exc)
    raise typer.Exit(1)


def _database(settings: MediavaultSettings):
    from mediavault.index import status

    database = status.connect(settings)
    if database is None:
        raise ConfigurationError(
            "job events live in MongoDB: set MEDIAVAULT_MONGO_MODE to embedded or external"
        )
    return database


STATUS_STYLE = {"failed": "red", "partial": "yellow", "running": "cyan", "committed": "green"}


def jobs_command(
    failed: Annotated[bool, typer.Option("--failed", help="Only jobs with a failure.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="From: 2024-05-01, an ISO time, or 7d/12h/30m back.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many jobs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every event included).")] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write every event of these jobs to this CSV file.")
    ] = None,
) -> None:
    """List ingest jobs, newest first: status, the reason of a failure, and their media."""
    from mediavault.ops import jobs

    try:
        start = parse_time(since, "--since", source="jobs") if since else None
        found = jobs.list_jobs(_database(_settings_factory()), since=start, failed_only=failed, limit=limit)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    if csv_file is not None:
        try:
            csv_file.write_text(jobs.events_csv(found), encoding="utf-8")
        except OSError as exc:
            _fail(InputError(str(csv_file), "--csv", f"cannot write: {exc.strerror or exc}"))
        console.print(
            f"{sum(len(j.events) for j in found)} event(s) of {len(found)} job(s) written to {csv_file}"
        )
        return
    if as_json:
        typer.echo(json.dumps([j.as_dict() for j in found], indent=2, default=str))
        return
    table = Table("last event", "job", "status", "events", "media", "reason")
    for job in found:
        style = STATUS_STYLE.get(job.status, "white")
        table.add_row(
            job.last_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(job.job_id[:16]),
            f"[{style}]{job.status}[/]",
            str(len(job.events)),
            escape(", ".join(m[:12] for m in job.media_ids[:3]) + (" …" if len(job.media_ids) > 3 else "")),
            escape((job.reason or "")[:200]),
        )
    console.print(table)
    console.print(f"{len(found)} job(s)", highlight=False)


def capacity_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the capacity thresholds now (what the capacity-check flow does, without publishing);
    exits 1 when one is crossed."""
    from mediavault.index import status
    from mediavault.ops import capacity, snapshot
    from mediavault.vault.models import utc_now

    try:
        settings = _settings_factory()
        taken = snapshot.take_for(settings, status.connect(settings))
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    findings = capacity.check(taken, settings.ops, utc_now())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "vault_bytes": taken.vault_bytes,
                    "local_free_bytes": taken.local_free_bytes,
                    "reindex_lag": taken.reindex_lag,
                    "mirror_lag": taken.mirror_lag,
                    "last_success": {
                        k: v.last_success.isoformat() if v.last_success else None
                        for k, v in taken.flows.items()
                    },
                    "findings": [f.__dict__ for f in findings],
                },
                indent=2,
            )
        )
    else:
        console.print(f"vault (hot tier): {capacity.gib(taken.vault_bytes)}", highlight=False)
        if taken.local_free_bytes is not None:
            console.print(
                f"free on the vault's disk: {capacity.gib(taken.local_free_bytes)}", highlight=False
            )
        if taken.reindex_lag is not None:
            console.print(f"re-index lag: {taken.reindex_lag} journal record(s)", highlight=False)
        if taken.mirror_lag is not None:
            console.print(f"mirror lag: {taken.mirror_lag} journal record(s)", highlight=False)
        for flow, runs in sorted(taken.flows.items()):
            when = f"{runs.last_success:%Y-%m-%d %H:%M} UTC" if runs.last_success else "never"
            console.print(f"last successful {flow}: {when}", highlight=False)
        for finding in findings:
            style = "bold red" if finding.level == "critical" else "yellow"
            console.print(f"[{style}]{escape(finding.line())}[/]")
        if not findings:
            console.print("every threshold is met")
    if findings:
        raise typer.Exit(1)


def forget_command(
    media_id: Annotated[
        str, typer.Argument(help="The media id, all 64 characters (no prefix: this erases).")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help='Why, e.g. "consent withdrawn" (kept in the tombstone).')
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="Erase. Without it, only list what would go.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Erase a media item on request: media, runs, edits, archived copies, earlier manifest
    versions, index entries and job events. A dry run unless --apply. Refused under legal hold."""
    from mediavault.lifecycle.forget import forget, record_forget
    from mediavault.vault import vault_from_settings

    try:
        settings = _settings_factory()
        if apply:
            from flows.forget import forget_flow

            summary = _flow_runner(
                lambda: forget_flow(media_id=media_id, reason=reason, apply=True, requested_by="cli")
            )
        else:
            vault = vault_from_settings(settings)
            result = forget(vault, media_id, reason, "cli")
            record_forget(vault, result, "cli", reason)
            summary = result.as_dict()
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    if summary["already_forgotten"]:
        console.print(
            f"already forgotten: {escape(json.dumps(summary['already_forgotten']))}", highlight=False
        )
    table = Table("tier", "key")
    for key in summary["hot"]:
        table.add_row("vault", escape(key))
    for item in summary["archive"]:
        table.add_row(escape(item["tier"]), escape(item["key"]))
    for key in summary["manifests"]:
        table.add_row("vault (manifest)", escape(key))
    console.print(table)
    if apply:
        console.print(
            f"[green]forgotten[/]: {summary['deleted']} object(s) erased; tombstone manifest "
            f"v{summary['tombstone_version']}; index: {escape(json.dumps(summary['index']))}",
            highlight=False,
        )
    else:
        console.print(
            f"dry run: {summary['objects']} object(s) would be erased, plus the item's index entries "
            "and job events; nothing changed. Add --apply to erase.",
            highlight=False,
        )
