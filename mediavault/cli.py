"""The ``mediavault`` command line."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn
from rich.table import Table

from mediavault import embedded, journal, manifests
from mediavault.errors import MediavaultError
from mediavault.settings import MediavaultSettings, load_settings
from mediavault.vault import Vault, vault_from_settings

app = typer.Typer(help="Keep costly AI transcription results safe and searchable.", no_args_is_help=True)
mongo_app = typer.Typer(help="The embedded MongoDB stand-in (SecantusDB).", no_args_is_help=True)
app.add_typer(mongo_app, name="mongo")
blocks_app = typer.Typer(help="Prefect blocks for configuration and credentials.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")
edit_app = typer.Typer(
    help="User edits: written to the vault, applied to the index at once.", no_args_is_help=True
)
app.add_typer(edit_app, name="edit")
console = Console()
errors = Console(stderr=True)

VaultOption = Annotated[str | None, typer.Option("--vault", help="Vault URL (file:// or s3://).")]
BlockOption = Annotated[str | None, typer.Option("--config-block", help="A 'mediavault-config' block.")]


def _settings(vault_url: str | None = None) -> MediavaultSettings:
    settings = load_settings(vault_url=vault_url)
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    return settings


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _progress_factory(bar: Progress):
    def factory(description: str, total: int):
        task_id = bar.add_task(description, total=total)
        return lambda count: bar.advance(task_id, count)

    return factory


def _run_flow(call):
    from mediavault import progress

    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar,
        progress.watching(_progress_factory(bar)),
    ):
        return call()


def _fail(exc: BaseException) -> None:
    errors.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(2 if isinstance(exc, MediavaultError) else 1)


def _parse_params(values: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@app.command()
def ingest(
    media: Annotated[str, typer.Argument(help="Media file: a local path or s3://bucket/key.")],
    output: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="AI output (JSON/SRT/VTT).")
    ] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Force the output format.")] = None,
    title: Annotated[str | None, typer.Option(help="Title.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")] = None,
    language: Annotated[str | None, typer.Option(help="Spoken language, e.g. en.")] = None,
    source_url: Annotated[str | None, typer.Option(help="Where the media came from.")] = None,
    model: Annotated[str, typer.Option(help="Model that produced the outputs.")] = "unknown",
    model_version: Annotated[str | None, typer.Option(help="Model version.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Run parameter KEY=VALUE.")] = None,
    vault: VaultOption = None,
    config_block: BlockOption = None,
) -> None:
    """Ingest one media file with its AI outputs (runs the 'ingest' Prefect flow)."""
    _settings(vault)
    from flows.ingest import ingest_flow

    try:
        result = _run_flow(
            lambda: ingest_flow(
                media=media,
                outputs=output or [],
                output_format=output_format,
                title=title,
                owner=owner,
                tags=tag or [],
                language=language,
                source_url=source_url,
                model=model,
                model_version=model_version,
                model_parameters=_parse_params(param or []),
                config_block=config_block,
                vault_url=vault,
            )
        )
    except Exception as exc:
        _fail(exc)
    state = "committed" if result["changed"] else "already in the vault, nothing written"
    console.print(
        f"[green]{result['media_id']}[/] manifest v{result['manifest_version']} ({state}); "
        f"{result['created_objects']} new object(s)"
    )


@app.command("ingest-batch")
def ingest_batch(
    source: Annotated[str, typer.Argument(help="Folder or s3://bucket/inbox/ prefix.")],
    owner: Annotated[str | None, typer.Option(help="Default owner.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Default tag (repeatable).")] = None,
    language: Annotated[str | None, typer.Option(help="Default language.")] = None,
    model: Annotated[str, typer.Option(help="Default model name.")] = "unknown",
    model_version: Annotated[str | None, typer.Option(help="Default model version.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Items per task.")] = None,
    max_concurrency: Annotated[int | None, typer.Option(help="Chunks at once.")] = None,
    vault: VaultOption = None,
    config_block: BlockOption = None,
) -> None:
    """Ingest every media file (with sidecar outputs) in a folder or S3 prefix."""
    _settings(vault)
    from flows.ingest import batch_ingest_flow

    try:
        state = _run_flow(
            lambda: batch_ingest_flow(
                source=source,
                owner=owner,
                tags=tag or [],
                language=language,
                model=model,
                model_version=model_version,
                chunk_size=chunk_size,
                max_concurrency=max_concurrency,
                config_block=config_block,
                vault_url=vault,
                return_state=True,
            )
        )
        report = state.result(raise_on_failure=False)
    except Exception as exc:
        _fail(exc)
    if isinstance(report, BaseException):
        _fail(report)
    table = Table("item", "result", "media id", "new objects", "error")
    for row in report["results"]:
        table.add_row(
            row["name"],
            "[green]ok[/]" if row["ok"] else "[red]failed[/]",
            (row["media_id"] or "")[:16],
            str(row["created_objects"]),
            row["error"] or "",
        )
    console.print(table)
    console.print(
        f"{report['succeeded']} ok, {report['failed']} failed, {report['new_objects']} new objects "
        f"in {report['seconds']:.1f}s"
    )
    if report["failed"]:
        raise typer.Exit(3)


def _resolve_media_id(vault: Vault, prefix: str) -> str:
    matches = [m for m in manifests.list_media_ids(vault) if m.startswith(prefix.lower())]
    if not matches:
        _fail(MediavaultError(f"no media item matches {prefix!r}"))
    if len(matches) > 1:
        _fail(MediavaultError(f"{prefix!r} is ambiguous: {len(matches)} media items match"))
    return matches[0]


@app.command("ls")
def list_media(
    vault: VaultOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the committed media items in the vault."""
    store = vault_from_settings(_settings(vault))
    items = [manifests.latest_manifest(store, media_id) for media_id in manifests.list_media_ids(store)]
    if as_json:
        console.print_json(json.dumps([m.model_dump(mode="json") for m in items if m]))
        return
    table = Table("media id", "title", "owner", "duration", "size", "runs", "manifest", title=store.url)
    for m in items:
        if m is None:
            continue
        duration = m.media.probe.duration_seconds
        table.add_row(
            m.media_id[:16],
            m.metadata.title or m.media.original_filename,
            m.metadata.owner or "",
            f"{duration:.1f}s" if duration else "?",
            _human(m.media.size),
            str(len(m.runs)),
            f"v{m.version}",
        )
    console.print(table)
    console.print(f"{len(items)} media item(s)")


@app.command()
def show(
    media_id: Annotated[str, typer.Argument(help="Media id or a unique prefix of it.")],
    vault: VaultOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest.")] = False,
) -> None:
    """Show a media item's manifest: metadata, runs, and every artifact with size and checksum."""
    store = vault_from_settings(_settings(vault))
    manifest = manifests.latest_manifest(store, _resolve_media_id(store, media_id))
    assert manifest is not None
    if as_json:
        console.print_json(manifest.model_dump_json())
        return
    probe = manifest.media.probe
    console.print(
        f"[bold]{manifest.media_id}[/]  manifest v{manifest.version} (schema {manifest.schema_version})"
    )
    console.print(
        f"title: {manifest.metadata.title or '-'}   owner: {manifest.metadata.owner or '-'}   "
        f"tags: {', '.join(manifest.metadata.tags) or '-'}   language: {manifest.metadata.language or '-'}"
    )
    streams = ", ".join(f"{s.type}/{s.codec}" for s in probe.streams)
    console.print(
        f"media: {manifest.media.original_filename}, {probe.container}, {streams}, "
        f"{probe.duration_seconds or 0:.2f}s, {_human(manifest.media.size)}"
    )
    for run in manifest.runs:
        console.print(
            f"run {run.run_id}: {run.provenance.model} {run.provenance.version or ''} "
            f"{json.dumps(run.provenance.parameters)} - {run.statement_count} statements, "
            f"{run.word_count} words, speakers: {', '.join(run.speakers) or '-'}"
        )
    table = Table("kind", "size", "tier", "key / sha256")
    table.columns[3].overflow = "fold"
    for artifact in manifest.artifacts:
        table.add_row(
            artifact.kind, f"{artifact.size:,}", artifact.tier, f"{artifact.key}\n{artifact.sha256}"
        )
    console.print(table)


@app.command("journal")
def show_journal(
    after: Annotated[int, typer.Option(help="Show records after this sequence number.")] = 0,
    vault: VaultOption = None,
) -> None:
    """Print the change journal."""
    store = vault_from_settings(_settings(vault))
    for record in journal.read(store, after):
        console.print(
            f"{record.seq:>6} {record.recorded_at:%Y-%m-%d %H:%M:%S} {record.change:<8} "
            f"{record.media_id[:16]} v{record.manifest_version}"
        )


@app.command()
def demo() -> None:
    """Set up $MEDIAVAULT_HOME, ingest the bundled sample, and show what the vault holds."""
    settings = _settings()
    sample_dir = settings.home / "sample"
    sample_dir.mkdir(parents=True, exist_ok=True)
    for name in ("jfk.flac", "whisper_en_jfk.json", "whisper_en_jfk.srt", "PROVENANCE.md"):
        with resources.as_file(resources.files("mediavault.samples") / name) as source:
            shutil.copyfile(source, sample_dir / name)
    console.print(f"[bold]mediavault demo[/] - home: {settings.home}, vault: {settings.resolved_vault_url()}")
    console.print(
        "sample: JFK inaugural address (public domain) with its openai-whisper output; "
        f"see {sample_dir / 'PROVENANCE.md'}"
    )
    ingest(
        str(sample_dir / "jfk.flac"),
        output=[str(sample_dir / "whisper_en_jfk.json"), str(sample_dir / "whisper_en_jfk.srt")],
        title="Inaugural address (excerpt)",
        owner="demo",
        tag=["speech", "public-domain"],
        language="en",
        source_url="https://github.com/openai/whisper/blob/main/tests/jfk.flac",
        model="openai-whisper",
        model_version=None,
        param=[],
        output_format=None,
        vault=None,
        config_block=None,
    )
    list_media(vault=None, as_json=False)
    store = vault_from_settings(settings)
    show(manifests.list_media_ids(store)[0], vault=None, as_json=False)
    if settings.mongo_mode == "embedded" and settings.mongo_url is None:
        server = embedded.running(settings.home / "mongo")
        if server:
            console.print(
                f"MongoDB (embedded SecantusDB) at {server.url}; stop it with 'mediavault mongo stop'"
            )


def _timestamp(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:06.3f}"


@app.command()
def search(
    text: Annotated[str, typer.Argument(help='Words and "quoted phrases"; all must match.')] = "",
    speaker: Annotated[str | None, typer.Option(help="Speaker display name or label.")] = None,
    media: Annotated[str | None, typer.Option("--media", help="Media id.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner.")] = None,
    language: Annotated[str | None, typer.Option(help="Language.")] = None,
    since: Annotated[str | None, typer.Option(help="Ingested on/after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Ingested on/before (YYYY-MM-DD).")] = None,
    sort: Annotated[str, typer.Option(help="relevance or time.")] = "relevance",
    limit: Annotated[int, typer.Option(help="Hits per page.")] = 10,
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search every speaker statement; each hit jumps to media id and second."""
    from datetime import datetime

    from pydantic import ValidationError

    from mediavault.api import search as run_search

    def day(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value).astimezone() if value else None

    try:
        result = run_search(
            text,
            settings=_settings(),
            speaker=speaker,
            media_id=media,
            owner=owner,
            language=language,
            date_from=day(since),
            date_to=day(until),
            sort=sort,
            limit=limit,
            offset=(max(page, 1) - 1) * limit,
        )
    except (ValidationError, ValueError, MediavaultError) as exc:
        _fail(MediavaultError(str(exc)))
    if as_json:
        console.print_json(result.model_dump_json())
        return
    for hit in result.hits:
        console.print(
            f"[bold]{hit.media_id[:12]}[/] {_timestamp(hit.start)}-{_timestamp(hit.end)} "
            f"[cyan]{hit.speaker_name or '-'}[/] {hit.title}"
        )
        console.print(f"   {hit.snippet}", markup=False, highlight=False)
    console.print(f"{result.total} hit(s); page {page}")
    for name, counts in result.facets.items():
        if counts:
            console.print(f"  {name}: " + ", ".join(f"{k[:16]} ({v})" for k, v in counts.items()))


def _edit(media_id: str, kind: str, payload: dict[str, Any], author: str | None) -> None:
    from mediavault.api import edit

    store = vault_from_settings(_settings())
    try:
        result = edit(_resolve_media_id(store, media_id), kind, payload, author, settings=_settings())
    except MediavaultError as exc:
        _fail(exc)
    console.print(
        f"edit {result['edit_id']} committed (manifest v{result['manifest_version']}); "
        f"{result['statements_reindexed']} statements re-indexed"
    )


AuthorOption = Annotated[str | None, typer.Option(help="Who made the edit.")]


@edit_app.command("rename-speaker")
def edit_rename_speaker(media_id: str, speaker: str, display_name: str, author: AuthorOption = None) -> None:
    """Give a speaker label (e.g. SPEAKER_00) a display name."""
    _edit(media_id, "rename-speaker", {"speaker": speaker, "display_name": display_name}, author)


@edit_app.command("correct-text")
def edit_correct_text(
    media_id: str,
    seq: int,
    text: str,
    run: Annotated[str | None, typer.Option(help="Run id (default: current)")] = None,
    author: AuthorOption = None,
) -> None:
    """Correct the text of statement SEQ (its position in the transcript, from 0)."""
    store = vault_from_settings(_settings())
    manifest = manifests.latest_manifest(store, _resolve_media_id(store, media_id))
    run_id = run or (manifest.current_run().run_id if manifest and manifest.current_run() else "")
    _edit(media_id, "correct-text", {"run_id": run_id, "seq": seq, "text": text}, author)


@edit_app.command("fix-metadata")
def edit_fix_metadata(
    media_id: str,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    owner: Annotated[str | None, typer.Option(help="New owner.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Replace the tags (repeatable).")] = None,
    language: Annotated[str | None, typer.Option(help="New language.")] = None,
    author: AuthorOption = None,
) -> None:
    """Fix title, owner, tags or language."""
    payload = {
        k: v
        for k, v in {"title": title, "owner": owner, "tags": tag, "language": language}.items()
        if v is not None
    }
    _edit(media_id, "fix-metadata", payload, author)


@app.command("export")
def export_command(
    media_id: str,
    format_name: Annotated[str, typer.Option("--format", help="whisperx-json, srt, vtt or txt.")] = "srt",
    run: Annotated[str | None, typer.Option(help="Run id (default: current).")] = None,
) -> None:
    """Print a transcript with every edit applied."""
    from mediavault.api import export_transcript

    store = vault_from_settings(_settings())
    try:
        text = export_transcript(_resolve_media_id(store, media_id), format_name, run, settings=_settings())
    except MediavaultError as exc:
        _fail(exc)
    typer.echo(text, nl=False)


@app.command("reindex")
def reindex_command(
    full: Annotated[bool, typer.Option("--full", help="Rebuild a new generation and switch.")] = False,
    media: Annotated[str | None, typer.Option("--media", help="Re-index one media item.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Re-index media ids with this prefix.")] = None,
    owner: Annotated[str | None, typer.Option(help="Re-index this owner's media.")] = None,
    rollback: Annotated[bool, typer.Option("--rollback", help="Make the previous generation live.")] = False,
    config_block: BlockOption = None,
) -> None:
    """Project the vault into MongoDB and the search index (runs the 'reindex' flow)."""
    _settings()
    from flows.reindex import reindex_flow

    mode = (
        "rollback"
        if rollback
        else "full"
        if full
        else "targeted"
        if (media or prefix or owner)
        else "incremental"
    )
    try:
        result = _run_flow(
            lambda: reindex_flow(
                mode=mode, media_id=media, prefix=prefix, owner=owner, config_block=config_block
            )
        )
    except Exception as exc:
        _fail(exc)
    console.print(", ".join(f"{k}: {v}" for k, v in result.items()))


@app.command("stats")
def stats_command(
    vault: VaultOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Storage use by artifact class and tier, and growth by month (DuckDB over the manifests)."""
    from mediavault.stats import storage_stats

    store = vault_from_settings(_settings(vault))
    stats = storage_stats(store)
    if as_json:
        console.print_json(json.dumps(stats, default=str))
        return
    console.print(
        f"{store.url}: {stats['media']} media items, {stats['objects']} objects, {_human(stats['bytes'])}"
    )
    for title, rows, key in (
        ("by class", stats["by_class"], "class"),
        ("by tier", stats["by_tier"], "tier"),
        ("growth by month", stats["growth"], "month"),
    ):
        table = Table(key, "objects" if key != "month" else "media", "size", title=title)
        for row in rows:
            table.add_row(str(row[key]), str(row.get("objects", row.get("media"))), _human(row["bytes"]))
        console.print(table)


@app.command("lifecycle")
def lifecycle_command(
    apply: Annotated[bool, typer.Option("--apply", help="Carry out the plan (default: dry run).")] = False,
    policy: Annotated[Path | None, typer.Option(help="YAML retention policy file.")] = None,
    vault: VaultOption = None,
) -> None:
    """Plan (or with --apply carry out) retention: archive, expire, clean up staging."""
    _settings(vault)
    from flows.lifecycle import lifecycle_flow

    try:
        result = lifecycle_flow(
            dry_run=not apply, policy_file=str(policy) if policy else None, vault_url=vault
        )
    except Exception as exc:
        _fail(exc)
    table = Table("action:class:tier", "objects", "size", title="planned" if not apply else "done")
    for key, row in sorted((result["planned"] if not apply else result["done"]).items()):
        table.add_row(key, str(row["objects"]), _human(row["bytes"]))
    console.print(table)
    console.print(f"report: {result['report']}")


@app.command("restore")
def restore_command(media_id: str, vault: VaultOption = None) -> None:
    """Bring an archived media item back to the hot tier."""
    _settings(vault)
    from flows.lifecycle import restore_flow

    store = vault_from_settings(_settings(vault))
    try:
        result = restore_flow(media_id=_resolve_media_id(store, media_id), vault_url=vault)
    except Exception as exc:
        _fail(exc)
    console.print(f"restored {len(result['restored'])} object(s) of {result['media_id']}")


@app.command("hold")
def hold_command(
    media_id: str,
    release: Annotated[bool, typer.Option("--release", help="Clear the legal hold.")] = False,
    vault: VaultOption = None,
) -> None:
    """Set (or --release) a legal hold: it blocks every lifecycle transition."""
    from mediavault.lifecycle.engine import set_legal_hold

    store = vault_from_settings(_settings(vault))
    version = set_legal_hold(store, _resolve_media_id(store, media_id), not release)
    console.print(f"legal hold {'released' if release else 'set'} (manifest v{version})")


@app.command("verify")
def verify_command(
    sample: Annotated[float, typer.Option(help="Percent of objects to check (100 = all).")] = 100.0,
    vault: VaultOption = None,
    config_block: BlockOption = None,
) -> None:
    """Recompute checksums of stored objects (runs the 'verify' flow). Never deletes anything."""
    _settings(vault)
    from flows.verify import verify_flow

    try:
        result = verify_flow(sample_percent=sample, config_block=config_block, vault_url=vault)
    except Exception as exc:
        _fail(exc)
    console.print(
        f"ok: {result['checked']} objects ({result['bytes_checked']:,} bytes) match; "
        f"report {result['report_key']}"
    )


@blocks_app.command("register")
def blocks_register() -> None:
    """Register the mediavault block types with the Prefect API so the UI can edit them."""
    _settings()
    from blocks import register_blocks

    register_blocks()
    console.print("registered: mediavault-config, mediavault-s3-credentials")


@mongo_app.command("start")
def mongo_start() -> None:
    """Start the embedded SecantusDB server under $MEDIAVAULT_HOME/mongo."""
    server = embedded.ensure_running(_settings().home / "mongo")
    console.print(f"running: pid {server.pid}, {server.url}")


@mongo_app.command("stop")
def mongo_stop() -> None:
    """Stop the embedded SecantusDB server."""
    console.print("stopped" if embedded.stop(_settings().home / "mongo") else "was not running")


@mongo_app.command("status")
def mongo_status() -> None:
    """Say whether the embedded SecantusDB server runs."""
    server = embedded.running(_settings().home / "mongo")
    console.print(f"running: pid {server.pid}, {server.url}" if server else "not running")


__all__ = ["app"]
