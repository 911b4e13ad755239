"""The ``mediavault`` command line."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn
from rich.table import Table

from mediavault.access import cli as access_cli
from mediavault.errors import ConfigurationError, InputError, MediavaultError
from mediavault.index import embedded
from mediavault.lifecycle import backup_cli
from mediavault.ops import cli as ops_cli
from mediavault.settings import MediavaultSettings, load_settings
from mediavault.vault import Vault, journal, manifests, vault_from_settings

app = typer.Typer(
    help="Keep costly AI transcription results safe and searchable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
mongo_app = typer.Typer(help="The embedded MongoDB stand-in (SecantusDB).", no_args_is_help=True)
app.add_typer(mongo_app, name="mongo")
blocks_app = typer.Typer(help="Prefect blocks for configuration and credentials.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")
edit_app = typer.Typer(
    help="User edits: written to the vault, applied to the index at once.", no_args_is_help=True
)
app.add_typer(edit_app, name="edit")
# Emoji codes off: user text such as ":smile:" must print as written.
console = Console(emoji=False)
errors = Console(stderr=True, emoji=False)

VaultOption = Annotated[str | None, typer.Option("--vault", help="Vault URL (file:// or s3://).")]
BlockOption = Annotated[str | None, typer.Option("--config-block", help="A 'mediavault-config' block.")]


# Prefect settings the CLI sets unless the user's environment already does.
PREFECT_ENV_DEFAULTS = {
    # Prefect sends telemetry unless told not to.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    # The first start in a new home migrates a fresh database, which can outlast Prefect's 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}
# Without -v, Prefect logs only to the API (the run's logs in the UI) and to the CLI's log file.
QUIET_PREFECT_LOGGING = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL": "CRITICAL",
}
CLI_LOG = "logs/cli.log"
_verbose = False


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs as runs go.")] = False,
) -> None:
    global _verbose
    _verbose = verbose


def _settings(vault_url: str | None = None) -> MediavaultSettings:
    """Settings for a command, with $MEDIAVAULT_HOME and Prefect's home created (parents too).

    Prefect creates its home without parents and then cannot start its ephemeral API, so a new
    MEDIAVAULT_HOME must exist before any flow runs. When this home's local stack is up, flows run
    against its Prefect server (their runs show in its UI) instead of a temporary one."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from mediavault.stack.local import api_url_if_up

    try:
        settings = load_settings(vault_url=vault_url)
    except ValidationError as exc:
        first = exc.errors()[0]  # the value is not repeated: it may be a secret
        name = "MEDIAVAULT_" + "__".join(str(part).upper() for part in first["loc"])
        _fail(ConfigurationError(f"{name}: {first['msg']}"))
    except SettingsError as exc:  # e.g. a nested setting that is not valid JSON
        _fail(ConfigurationError(f"settings: {str(exc).splitlines()[0]}"))
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    for name, value in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name, value in QUIET_PREFECT_LOGGING.items():
        if _verbose:  # -v shows Prefect's logs, whatever an inherited environment says
            os.environ.pop(name, None)
        else:
            os.environ.setdefault(name, value)
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(ConfigurationError(f"cannot create {exc.filename}: {exc.strerror}"))
    if not os.environ.get("PREFECT_API_URL"):
        api_url = api_url_if_up(settings)
        if api_url:
            os.environ["PREFECT_API_URL"] = api_url
    return settings


def _log_path() -> Path:
    try:
        return load_settings().home / CLI_LOG
    except Exception:  # settings that do not load: the default home still has a log
        from mediavault.settings import default_home

        return default_home() / CLI_LOG


def _log_to_file():
    """Everything logged while a flow runs (Prefect's logs and tracebacks) also goes to the CLI's
    log file, so a one-line error can say where the whole story is. Returns its handler."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "mediavault_cli", False):
            return handler
    path = _log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=5 * 1024**2, backupCount=2, encoding="utf-8")
    except OSError:
        return None
    handler.mediavault_cli = True  # type: ignore[attr-defined]
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return handler


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _progress_factory(bar: Progress):
    def factory(description: str, total: int):
        task_id = bar.add_task(escape(description), total=total)  # descriptions hold file names
        return lambda count: bar.advance(task_id, count)

    return factory


def _run_flow(call):
    """Run a flow in this process with progress bars; no heartbeat thread, whose 1 s polling
    would delay every exit (the CLI is in the foreground: a killed run is marked by its signal)."""
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from mediavault import progress
    from mediavault.stack import cli_runs

    _log_to_file()
    reaping = _start_reaping_orphaned_runs()
    owner = cli_runs.owner_tag()
    with (
        tags(cli_runs.RUN_TAG, cli_runs.host_tag(), *([owner] if owner else [])),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
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
        try:
            return call()
        finally:
            reaping()


def _start_reaping_orphaned_runs() -> Callable[[], None]:
    """Runs a killed CLI process left "Running" on this host are marked Crashed, in a thread
    while the command's own flow runs (a request or two to the Prefect API, when there is one to
    ask; never in the way of the command). Returns what waits for it and prints its notes."""
    import threading

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        return lambda: None
    reaped: list[str] = []

    def reap() -> None:
        from mediavault.stack import cli_runs, local

        try:
            reaped.extend(
                cli_runs.reap_orphaned_runs(api_url, lambda url, body: local._request(url, body, timeout=3.0))
            )
        except Exception as exc:  # best effort: never in the way of the command itself
            logging.getLogger("mediavault.cli").warning(
                "could not look for runs of killed CLI processes: %s", exc
            )

    thread = threading.Thread(target=reap, name="mediavault-reap-runs", daemon=True)
    thread.start()

    def finish() -> None:
        thread.join(10.0)
        for name in list(reaped):
            errors.print(
                f"note: flow run {escape(name)} of a killed mediavault process is now marked Crashed"
            )

    return finish


def _fail(exc: BaseException) -> None:
    """One line on stderr. A rejected input exits 2; anything unexpected exits 1 and says where
    the full log (with the traceback) is."""
    if isinstance(exc, MediavaultError):
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    handler = _log_to_file()
    if handler is not None:  # the traceback goes to the file only, never to the console
        failure = (type(exc), exc, exc.__traceback__)
        record = logging.LogRecord("mediavault.cli", logging.ERROR, __file__, 0, "unexpected", None, failure)
        handler.handle(record)
    where = f"full log: {_log_path()}"
    if os.environ.get("PREFECT_API_URL"):
        where += f"; flow runs: {os.environ['PREFECT_API_URL'].removesuffix('/api')}/runs"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    errors.print(
        f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(message)} ({escape(where)})",
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


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


def _resolve_run_id(store: Vault, media_id: str, prefix: str | None) -> str | None:
    """A run id from a unique prefix of one of the media item's runs (a full id passes as is)."""
    manifest = manifests.latest_manifest(store, media_id)
    if prefix is None or manifest is None or len(prefix) >= 32:
        return prefix
    matches = [r.run_id for r in manifest.runs if r.run_id.startswith(prefix.lower())]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        _fail(InputError("--source-run", "source_run_id", f"{found} of {media_id[:16]} match {prefix!r}"))
    return matches[0]


def _add_run(kind: str, media_id: str, outputs: list[str], source_run: str | None, **options: Any) -> None:
    """Run the 'add-run' flow for a translation or summary of an ingested media item."""
    store = vault_from_settings(_settings(options["vault_url"]))
    media_id = _resolve_media_id(store, media_id)
    source_run = _resolve_run_id(store, media_id, source_run)
    if kind == "translation" and source_run is None:
        manifest = manifests.latest_manifest(store, media_id)
        current = manifest.current_run() if manifest else None
        source_run = current.run_id if current else None
    from flows.ingest import add_run_flow

    try:
        result = _run_flow(
            lambda: add_run_flow(
                media_id=media_id, kind=kind, outputs=outputs, source_run=source_run, **options
            )
        )
    except Exception as exc:
        _fail(exc)
    state = "committed" if result["changed"] else "already in the vault, nothing written"
    console.print(
        f"[green]{result['media_id']}[/] {kind} run {result['run_id']} "
        f"manifest v{result['manifest_version']} ({state}); {result['created_objects']} new object(s)"
    )


RunOutputOption = Annotated[list[str], typer.Option("--output", "-o", help="The run's output file.")]
RunModelOption = Annotated[str, typer.Option(help="Model that produced it.")]
RunVersionOption = Annotated[str | None, typer.Option(help="Model version.")]
RunParamOption = Annotated[list[str] | None, typer.Option("--param", help="Run parameter KEY=VALUE.")]


@app.command("add-translation")
def add_translation(
    media_id: Annotated[str, typer.Argument(help="Media id or a unique prefix of it.")],
    language: Annotated[str, typer.Option(help="Target language of the translation, e.g. fr.")],
    output: RunOutputOption,
    source_run: Annotated[
        str | None,
        typer.Option(help="Transcript run it translates (id or prefix; default: the current one)."),
    ] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Force the output format.")] = None,
    model: RunModelOption = "unknown",
    model_version: RunVersionOption = None,
    param: RunParamOption = None,
    vault: VaultOption = None,
    config_block: BlockOption = None,
) -> None:
    """Add a translation (WhisperX/Whisper JSON, SRT or VTT) of a transcript run as a run of its own
    (runs the 'add-run' flow); the next re-index makes it searchable in its language."""
    _add_run(
        "translation",
        media_id,
        output,
        source_run,
        language=language,
        output_format=output_format,
        model=model,
        model_version=model_version,
        model_parameters=_parse_params(param or []),
        config_block=config_block,
        vault_url=vault,
    )


@app.command("add-summary")
def add_summary(
    media_id: Annotated[str, typer.Argument(help="Media id or a unique prefix of it.")],
    output: RunOutputOption,
    source_run: Annotated[str | None, typer.Option(help="Run it summarizes (id or prefix), if any.")] = None,
    language: Annotated[str | None, typer.Option(help="Language of the summary.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="markdown or json (default: from the file name).")
    ] = None,
    model: RunModelOption = "unknown",
    model_version: RunVersionOption = None,
    param: RunParamOption = None,
    vault: VaultOption = None,
    config_block: BlockOption = None,
) -> None:
    """Add a summary or notes document (Markdown or JSON), kept byte-exact (runs the 'add-run' flow)."""
    _add_run(
        "summary",
        media_id,
        output,
        source_run,
        language=language,
        output_format=output_format,
        model=model,
        model_version=model_version,
        model_parameters=_parse_params(param or []),
        config_block=config_block,
        vault_url=vault,
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
            escape(row["name"]),
            "[green]ok[/]" if row["ok"] else "[red]failed[/]",
            (row["media_id"] or "")[:16],
            str(row["created_objects"]),
            escape(row["error"] or ""),
        )
    console.print(table)
    console.print(
        f"{report['succeeded']} ok, {report['failed']} failed, {report['new_objects']} new objects "
        f"in {report['seconds']:.1f}s"
    )
    ignored = report.get("ignored") or []
    if ignored:
        shown = ", ".join(ignored[:10]) + (f" and {len(ignored) - 10} more" if len(ignored) > 10 else "")
        console.print(
            f"ignored {len(ignored)} file(s) that are not media, AI outputs or sidecars: {escape(shown)}"
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


def _media_documents(store: Vault, media_ids: list[str]) -> list[dict[str, Any]]:
    """The index's media documents projected straight from the vault: metadata with edits applied."""
    from mediavault.index.projection import load_applied_edits, media_document

    documents = []
    for media_id in media_ids:
        manifest = manifests.latest_manifest(store, media_id)
        if manifest is not None:
            documents.append(media_document(manifest, load_applied_edits(store, manifest)))
    return documents


def _find_media(
    settings: MediavaultSettings,
    store: Vault,
    owner: str | None,
    tag: str | None,
    status: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str]:
    """Media documents matching exact values: from the MongoDB index, or from the vault when it is off."""
    from pymongo.errors import PyMongoError

    from mediavault.index.index_store import MongoIndexStore
    from mediavault.index.status import connect

    try:
        database = connect(settings)
        if database is not None:
            found = MongoIndexStore(database).find_media(owner=owner, tag=tag, status=status, limit=limit)
            return found, "MongoDB index"
    except PyMongoError as exc:
        _fail(MediavaultError(f"the index (MongoDB) is unavailable: {exc}"))
    matching = [
        document
        for document in _media_documents(store, manifests.list_media_ids(store))
        if (owner is None or document["owner"] == owner)
        and (tag is None or tag in document["tags"])
        and (status is None or document["status"] == status)
    ]
    return matching[:limit], store.url


@app.command("ls")
def list_media(
    vault: VaultOption = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner (exact match).")] = None,
    tag: Annotated[str | None, typer.Option(help="Only items with this tag (exact match).")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only items in this ingest status: committed, ingesting, failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many items when filtering.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the committed media items in the vault (metadata with edits applied).

    With --owner, --tag or --status the MongoDB index answers (it also knows failed and running
    ingests); with MongoDB disabled the vault does. --json prints manifests, or with a filter the
    index's media documents."""
    settings = _settings(vault)
    store = vault_from_settings(settings)
    filtered = owner is not None or tag is not None or status is not None
    if filtered:
        try:
            documents, source = _find_media(settings, store, owner, tag, status, limit)
        except MediavaultError as exc:
            _fail(exc)
        if as_json:
            console.print_json(json.dumps(documents, default=str))
            return
    else:
        media_ids = manifests.list_media_ids(store)
        if as_json:
            items = [manifests.latest_manifest(store, media_id) for media_id in media_ids]
            console.print_json(json.dumps([m.model_dump(mode="json") for m in items if m]))
            return
        documents, source = _media_documents(store, media_ids), store.url
    columns = ["media id", "title", "owner", "duration", "size", "runs", "manifest"]
    table = Table(*columns, *(["status"] if filtered else []), title=escape(source))
    for document in documents:
        duration = document.get("duration_seconds")
        size = document.get("size")
        version = document.get("manifest_version")
        table.add_row(
            document["_id"][:16],
            escape(document.get("title") or document.get("original_filename") or ""),
            escape(document.get("owner") or ""),
            f"{duration:.1f}s" if duration else "?",
            _human(size) if size is not None else "?",
            str(len(document.get("runs") or [])),
            f"v{version}" if version else "-",
            *([escape(str(document.get("status")))] if filtered else []),
        )
    console.print(table)
    console.print(f"{len(documents)} media item(s)")


def _speaker(label: str, display_name: str | None) -> str:
    return label if display_name in (None, label) else f"{label} ({display_name})"


def _index_line(settings: MediavaultSettings, manifest: Any) -> str | None:
    """What the MongoDB index holds for a media item, or None when MongoDB is disabled."""
    from pymongo.errors import PyMongoError

    from mediavault.index.index_store import MongoIndexStore
    from mediavault.index.status import connect

    try:
        database = connect(settings)
        if database is None:
            return None
        document = MongoIndexStore(database).media(manifest.media_id)
    except (PyMongoError, MediavaultError) as exc:
        return f"index: unavailable ({exc})"
    if document is None:
        return "index: not indexed yet (run 'mediavault reindex')"
    line = f"index: {document.get('status')}"
    indexed = document.get("manifest_version")
    if indexed:
        line += f", manifest v{indexed}"
    if indexed != manifest.version:
        line += f" (the vault has v{manifest.version}; run 'mediavault reindex')"
    return line


@app.command()
def show(
    media_id: Annotated[str, typer.Argument(help="Media id or a unique prefix of it.")],
    vault: VaultOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest.")] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="As it was then: 2024-05-01, an ISO time, or 7d/12h back.")
    ] = None,
) -> None:
    """Show a media item: metadata (edits applied), runs, every artifact with size and checksum, and
    its state in the index. With --at, the item as it was at that time (its manifest versions are
    all kept; see 'history')."""
    from mediavault.access.cli import parse_time
    from mediavault.index.projection import load_applied_edits

    settings = _settings(vault)
    store = vault_from_settings(settings)
    resolved = _resolve_media_id(store, media_id)
    if at is not None:
        try:
            when = parse_time(at, "--at", source="show")
        except InputError as exc:
            _fail(exc)
        manifest = manifests.manifest_at(store, resolved, when)
        if manifest is None:
            _fail(MediavaultError(f"media {resolved} did not exist yet at {when:%Y-%m-%d %H:%M:%S} UTC"))
    else:
        manifest = manifests.newest_manifest(store, resolved)
    assert manifest is not None
    if as_json:
        console.print_json(manifest.model_dump_json())
        return
    if manifest.forgotten is not None:
        gone = manifest.forgotten
        console.print(
            f"[bold]{manifest.media_id}[/]  erased on request on {gone.at:%Y-%m-%d %H:%M} UTC by "
            f"{escape(gone.by)}: {escape(gone.reason)} (tombstone, manifest v{manifest.version})",
            highlight=False,
        )
        return
    applied = load_applied_edits(store, manifest)
    metadata = applied.metadata_over(manifest.metadata)
    probe = manifest.media.probe
    console.print(
        f"[bold]{manifest.media_id}[/]  manifest v{manifest.version} (schema {manifest.schema_version})"
    )
    console.print(
        f"title: {escape(metadata.title or '-')}   owner: {escape(metadata.owner or '-')}   "
        f"tags: {escape(', '.join(metadata.tags) or '-')}   language: {escape(metadata.language or '-')}"
    )
    if metadata.description:
        console.print(f"description: {escape(metadata.description)}", highlight=False)
    streams = ", ".join(f"{s.type}/{s.codec}" for s in probe.streams)
    console.print(
        f"media: {escape(manifest.media.original_filename)}, {escape(probe.container)}, "
        f"{escape(streams)}, {probe.duration_seconds or 0:.2f}s, {_human(manifest.media.size)}"
    )
    current = manifest.current_run()
    searched = {r.run_id for r in [*([current] if current else []), *manifest.searchable_translations()]}
    for run in manifest.runs:
        speakers = ", ".join(_speaker(label, applied.display_name(label)) for label in run.speakers) or "-"
        kind = run.kind
        if run.kind == "translation":
            kind += f" {run.source_language or '?'} -> {run.language}"
        elif run.language:
            kind += f" {run.language}"
        if run.source_run_id:
            kind += f" of {run.source_run_id}"
        if run.run_id in searched:
            kind += ", current" if run is current else ", searched"
        counts = (
            f"{run.primary_format}, {sum(o.size for o in run.outputs):,} bytes"
            if run.kind == "summary"
            else f"{run.statement_count} statements, {run.word_count} words, speakers: {escape(speakers)}"
        )
        console.print(
            f"run {run.run_id} ({escape(kind)}): {escape(run.provenance.model)} "
            f"{escape(run.provenance.version or '')} "
            f"{escape(json.dumps(run.provenance.parameters))} - {counts}"
        )
    index_line = (
        _index_line(settings, manifest)
        if at is None
        else f"as of {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if index_line:
        console.print(escape(index_line))
    table = Table("kind", "size", "tier", "key / sha256")
    table.columns[3].overflow = "fold"
    for artifact in manifest.artifacts:
        table.add_row(
            escape(artifact.kind),
            f"{artifact.size:,}",
            escape(artifact.tier),
            f"{escape(artifact.key)}\n{artifact.sha256}",
        )
    console.print(table)


@app.command()
def history(
    media_id: Annotated[str, typer.Argument(help="Media id or a unique prefix of it.")],
    vault: VaultOption = None,
) -> None:
    """List a media item's manifest versions, oldest first: when, what changed, and the title then
    (edits applied). 'show --at TIME' shows any of them in full."""
    from mediavault.index.projection import load_applied_edits

    store = vault_from_settings(_settings(vault))
    resolved = _resolve_media_id(store, media_id)
    table = Table("version", "at (UTC)", "change", "title", "runs", "edits", "tiers", title=resolved)
    for version in manifests.manifest_versions(store, resolved):
        try:
            manifest = manifests.read_manifest(store, resolved, version)
        except KeyError:
            continue  # erased by a forget
        if manifest.forgotten is not None:
            title = f"(erased: {manifest.forgotten.reason})"
        else:
            title = load_applied_edits(store, manifest).metadata_over(manifest.metadata).title or "-"
        tiers = ", ".join(sorted({a.tier for a in manifest.artifacts})) or "-"
        table.add_row(
            f"v{version}",
            f"{manifest.created_at:%Y-%m-%d %H:%M:%S}",
            escape(manifest.change + (" (legal hold)" if manifest.legal_hold else "")),
            escape(title),
            str(len(manifest.runs)),
            str(len(manifest.edits)),
            escape(tiers),
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
def demo(
    stack: Annotated[
        bool,
        typer.Option(
            "--stack/--no-stack",
            help="Bring the local stack up first (Prefect server and UI, worker, deployments, dashboard) "
            "so every step shows in the Prefect UI; --no-stack only sets up the home.",
        ),
    ] = True,
) -> None:
    """The tour: bring the local stack up, ingest the bundled samples, build the index, run a search,
    and print where to look (the dashboard with a fresh admin token, and the Prefect UI)."""
    settings = _settings()
    sample_dir = settings.home / "sample"
    sample_dir.mkdir(parents=True, exist_ok=True)
    for name in (
        "jfk.flac",
        "whisper_en_jfk.json",
        "whisper_en_jfk.srt",
        "schoolboard_synth.ogg",
        "whisperx_en_schoolboard_short.json",
        "make_schoolboard_audio.py",
        "PROVENANCE.md",
    ):
        with resources.as_file(resources.files("mediavault.samples") / name) as source:
            shutil.copyfile(source, sample_dir / name)
    console.print(
        f"[bold]mediavault demo[/] - home: {escape(str(settings.home))}, "
        f"vault: {escape(settings.resolved_vault_url())}"
    )
    local = _stack(settings) if stack else None
    if local is not None:
        console.print("[bold]1. the local stack[/] (Prefect server and UI, worker, deployments, dashboard)")
        try:
            local.up(say=lambda line: console.print(f"   {escape(line)}", highlight=False), first_token=False)
        except MediavaultError as exc:
            _fail(exc)
        os.environ["PREFECT_API_URL"] = local.api_url  # the runs below show in its UI
    console.print(
        "[bold]2. ingest[/] the samples: JFK inaugural address (public domain) with its openai-whisper "
        "output, and a real diarized WhisperX transcript of a school board meeting over synthesized "
        f"speech; see {escape(str(sample_dir / 'PROVENANCE.md'))}"
    )
    common: dict[str, Any] = {
        "owner": "demo",
        "language": "en",
        "model_version": None,
        "param": [],
        "output_format": None,
        "vault": None,
        "config_block": None,
    }
    ingest(
        str(sample_dir / "jfk.flac"),
        output=[str(sample_dir / "whisper_en_jfk.json"), str(sample_dir / "whisper_en_jfk.srt")],
        title="Inaugural address (excerpt)",
        tag=["speech", "public-domain"],
        source_url="https://github.com/openai/whisper/blob/main/tests/jfk.flac",
        model="openai-whisper",
        **common,
    )
    ingest(
        str(sample_dir / "schoolboard_synth.ogg"),
        output=[str(sample_dir / "whisperx_en_schoolboard_short.json")],
        title="School board (excerpt)",
        tag=["meeting", "sample"],
        source_url=None,
        model="whisperx",
        **common,
    )
    list_media(vault=None, as_json=False)
    store = vault_from_settings(settings)
    for media_id in manifests.list_media_ids(store):
        show(media_id, vault=None, as_json=False)
    if settings.mongo_mode == "disabled":
        return
    console.print("[bold]3. index[/] the vault into MongoDB and the search index, then [bold]search[/]:")
    reindex_command(full=False, media=None, prefix=None, owner=None, rollback=False, config_block=None)
    search(
        "allegiance",
        speaker=None,
        media=None,
        owner=None,
        language=None,
        tag=None,
        since=None,
        until=None,
        sort="relevance",
        limit=3,
        page=1,
        as_json=False,
    )
    token = demo_token(store)
    web_url = local.web_url if local else f"http://{settings.stack.host}:{settings.stack.web_port}"
    console.print("\n[bold]4. where to look[/]")
    if local is not None:
        console.print(f"Prefect UI:  {local.prefect_url}/runs  (these flow runs; deployments, schedules)")
        console.print("stop the stack with:  python3 dev.py mediavault down")
    else:
        console.print("the dashboard needs 'mediavault up' (or 'mediavault serve')")
    console.print(
        f"Dashboard:   {web_url}/search?q=allegiance  -  log in with this admin token "
        "(shown once; each demo run replaces it):"
    )
    console.print(token, markup=False, highlight=False, soft_wrap=True)


def demo_token(store) -> str:
    """A new admin token named "demo"; the previous demo tokens are revoked."""
    from mediavault.access.tokens import TokenStore

    tokens = TokenStore(store)
    for info in tokens.list():
        if info.name == "demo" and not info.revoked:
            tokens.revoke(info.id, by="demo")
    return tokens.create("*", "admin", name="demo")[1]


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
    tag: Annotated[str | None, typer.Option(help="A tag of the media, matched exactly.")] = None,
    since: Annotated[str | None, typer.Option(help="Ingested on/after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Ingested on/before (YYYY-MM-DD).")] = None,
    sort: Annotated[str, typer.Option(help="relevance or time.")] = "relevance",
    limit: Annotated[int, typer.Option(help="Hits per page.")] = 10,
    page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search every speaker statement; each hit jumps to media id and second."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from mediavault.api import search as run_search

    def day(value: str | None, option: str) -> datetime | None:
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            _fail(InputError("search", option, f"not a date: {value[:40]!r} (use 2024-05-01)"))
        try:
            return parsed.astimezone()
        except (ValueError, OverflowError):  # the first or last day there is: no local offset
            return parsed.replace(tzinfo=UTC)

    try:
        result = run_search(
            text,
            settings=_settings(),
            speaker=speaker,
            media_id=media,
            owner=owner,
            language=language,
            tag=tag,
            date_from=day(since, "--since"),
            date_to=day(until, "--until"),
            sort=sort,
            limit=limit,
            offset=(max(page, 1) - 1) * limit,
        )
    except (ValidationError, ValueError, MediavaultError) as exc:
        _fail(MediavaultError(str(exc)))
    if as_json:
        console.print_json(result.model_dump_json())
        return
    if result.media:
        console.print(f"{len(result.media)} media item(s) match by title, description or tags:")
        for item in result.media:
            title = escape(item.title or "Untitled")
            console.print(f"[bold]{item.media_id[:12]}[/] {title}{_tag_text(item.tags)}")
            console.print(_snippet_text(item.snippet), highlight=False)
        console.print()
    for hit in result.hits:
        console.print(
            f"[bold]{hit.media_id[:12]}[/] {_timestamp(hit.start)}-{_timestamp(hit.end)} "
            f"[cyan]{escape(hit.speaker_name or '-')}[/] {escape(hit.title)}{_tag_text(hit.tags)}"
        )
        console.print(_snippet_text(hit.snippet), highlight=False)
    console.print(f"{result.total} hit(s) in statements; page {page}")
    for name, counts in result.facets.items():
        if counts:
            console.print(f"  {name}: " + ", ".join(f"{escape(k[:16])} ({v})" for k, v in counts.items()))


def _tag_text(tags: list[str]) -> str:
    return f" [magenta]\\[{escape(', '.join(tags))}][/]" if tags else ""


def _snippet_text(snippet: str):
    """A search snippet (HTML-escaped text with <b> around the matches) for the terminal."""
    import html
    import re

    from rich.text import Text

    text = Text("   ")
    for index, part in enumerate(re.split(r"</?b>", snippet)):
        text.append(html.unescape(part), style="bold yellow" if index % 2 else None)
    return text


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
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    owner: Annotated[str | None, typer.Option(help="New owner.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Replace the tags (repeatable).")] = None,
    language: Annotated[str | None, typer.Option(help="New language.")] = None,
    source_url: Annotated[str | None, typer.Option(help="New source URL.")] = None,
    clear: Annotated[
        list[str] | None,
        typer.Option(help="Clear a field: title, description, tags, language or source_url (repeatable)."),
    ] = None,
    author: AuthorOption = None,
) -> None:
    """Fix title, description, owner, tags, language or source URL; --clear empties one."""
    given = {
        "title": title,
        "description": description,
        "owner": owner,
        "tags": tag,
        "language": language,
        "source_url": source_url,
    }
    payload: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    for name in clear or []:
        field = name.replace("-", "_")
        if field not in given or field == "owner":
            _fail(InputError("--clear", name, "one of title, description, tags, language, source_url"))
        if field in payload:
            _fail(InputError("--clear", name, "also given a new value"))
        payload[field] = None
    _edit(media_id, "fix-metadata", payload, author)


@app.command("export")
def export_command(
    media_id: str,
    format_name: Annotated[
        str, typer.Option("--format", help="whisperx-json, srt, vtt, txt, or original (as received).")
    ] = "srt",
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
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config_block: BlockOption = None,
) -> None:
    """Project the vault into MongoDB and the search index (runs the 'reindex' flow)."""
    _settings()
    from flows.reindex import reindex_flow
    from mediavault.index.reindex import describe_reindex

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
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    quarantined = result.get("quarantined") or []
    for line in describe_reindex(result):
        console.print(escape(line))
    if quarantined:
        table = Table("media id", "reason", title=f"quarantined: {len(quarantined)} (retried every run)")
        for item in quarantined:
            table.add_row(escape(str(item["media_id"])), escape(str(item["error"])))
        console.print(table)


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


access_cli.configure(lambda: vault_from_settings(_settings()), _fail)
app.add_typer(access_cli.token_app, name="token", help="Create, list and revoke API tokens.")
app.command("audit")(access_cli.audit_command)
ops_cli.configure(lambda: _settings(), _fail, _run_flow)
app.command("jobs")(ops_cli.jobs_command)
app.command("capacity")(ops_cli.capacity_command)
app.command("forget")(ops_cli.forget_command)
backup_cli.configure(lambda: _settings(), _fail)
app.command("mirror")(backup_cli.mirror_command)
app.command("restore-drill")(backup_cli.restore_drill_command)
app.command("adopt-hot-copies")(backup_cli.adopt_hot_copies_command)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs a token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    vault: VaultOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (the audit log is kept).")] = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /api/docs). Create tokens with 'mediavault token create'."""
    import uvicorn

    from mediavault.access.tokens import any_tokens
    from mediavault.web import create_app
    from mediavault.web.restore import prefect_restore_starter
    from mediavault.web.server import ZeroCopyHttpToolsProtocol
    from mediavault.web.services import prefect_ui_url

    settings = _settings(vault)
    if host not in LOOPBACK_HOSTS and not any_tokens(vault_from_settings(settings)):
        _fail(
            ConfigurationError(
                f"refusing to listen on {host}: no API token exists yet, so nobody could use it safely. "
                "Create one with 'mediavault token create --owner OWNER --role admin', or bind 127.0.0.1"
            )
        )
    restore = prefect_restore_starter(os.environ.get("PREFECT_API_URL"), prefect_ui_url(settings))
    console.print(
        f"serving on http://{escape(host)}:{port}  (dashboard: /search, API docs: /api/docs; Ctrl-C stops)"
    )
    console.print(
        "restores run as Prefect flow runs of restore/restore"
        if restore
        else "restores run in this process (no Prefect 'restore' deployment found)"
    )
    uvicorn.run(
        create_app(settings, restore_starter=restore),
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        proxy_headers=False,
        http=ZeroCopyHttpToolsProtocol,
    )


def _stack(settings: MediavaultSettings):
    from mediavault.stack.local import LocalStack

    return LocalStack(settings)


@app.command("up")
def up_command() -> None:
    """Start the local stack under $MEDIAVAULT_HOME: Prefect server and UI, MongoDB stand-in, work
    pool and worker, the deployments of prefect.yaml (schedules on), and the dashboard."""
    stack = _stack(_settings())
    try:
        status = stack.up(say=lambda line: console.print(escape(line), highlight=False))
    except MediavaultError as exc:
        _fail(exc)
    console.print(f"\n[bold]Prefect UI[/]:  {status.prefect_ui_url}   (flow runs, deployments, schedules)")
    console.print(f"[bold]Dashboard[/]:   {status.web_url}   (search, player, edits)")
    console.print(f"home: {escape(str(status.home))}; logs in {escape(str(stack.log_dir))}")
    console.print("stop everything with: mediavault down")
    if status.admin_token:
        console.print("admin token for the dashboard (shown once; more with 'mediavault token create'):")
        console.print(status.admin_token, markup=False, highlight=False, soft_wrap=True)


@app.command("down")
def down_command() -> None:
    """Stop every process of the local stack (each only if its recorded pid is still ours)."""
    stack = _stack(_settings())
    stopped = stack.down(say=lambda line: console.print(escape(line), highlight=False))
    if not stopped:
        console.print("nothing was running")


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    runs: Annotated[int, typer.Option(help="Last runs shown per deployment.")] = 3,
) -> None:
    """What runs in the local stack, where and since when, and the last runs of each deployment."""
    status = _stack(_settings()).status(runs_per_deployment=max(runs, 0))
    if as_json:
        console.print_json(json.dumps(status.as_json()))
        return
    table = Table("part", "state", "pid", "address", "since")
    for name, state in status.services.items():
        table.add_row(
            name,
            "[green]running[/]" if state.running else "[dim]stopped[/]",
            str(state.pid or ""),
            escape(state.url or ""),
            escape(state.since or ""),
        )
    console.print(table)
    if not status.services["prefect"].running:
        console.print("the stack is down; start it with: mediavault up")
        return
    deployments = Table("deployment", "schedules", "last runs")
    for item in status.deployments:
        last = ", ".join(f"{run['state']} {(run['start_time'] or '')[:16]}" for run in item["last_runs"])
        schedules = "paused" if item["paused"] else str(item["schedules"])
        deployments.add_row(escape(item["name"]), schedules, escape(last or "-"))
    console.print(deployments)
    console.print(f"Prefect UI: {status.prefect_ui_url}   Dashboard: {status.web_url}")


@app.command("stats")
def stats_command(
    vault: VaultOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Storage use by artifact class and tier, and growth by month (DuckDB over the manifests)."""
    from mediavault.index.stats import storage_stats

    store = vault_from_settings(_settings(vault))
    stats = storage_stats(store)
    if as_json:
        console.print_json(json.dumps(stats, default=str))
        return
    console.print(
        f"{escape(store.url)}: {stats['media']} media items, {stats['objects']} objects, "
        f"{_human(stats['bytes'])}"
    )
    for title, rows, key in (
        ("by class", stats["by_class"], "class"),
        ("by tier", stats["by_tier"], "tier"),
        ("growth by month", stats["growth"], "month"),
    ):
        table = Table(key, "objects" if key != "month" else "media", "size", title=title)
        for row in rows:
            table.add_row(
                escape(str(row[key])), str(row.get("objects", row.get("media"))), _human(row["bytes"])
            )
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
    rows = result["done"] if apply else result["planned"]
    if rows:
        table = Table("action:class:tier", "objects", "size", title="done" if apply else "planned")
        for key, row in sorted(rows.items()):
            table.add_row(escape(key), str(row["objects"]), _human(row["bytes"]))
        console.print(table)
    else:
        console.print("nothing to do: no object is due under the policy")
    skipped = result.get("skipped") or []
    for reason in sorted({item["reason"] for item in skipped}):
        count = sum(item["reason"] == reason for item in skipped)
        console.print(f"kept {count} object(s): {escape(str(reason))}")
    if rows and not apply:
        console.print("dry run: nothing changed; 'mediavault lifecycle --apply' carries out this plan")
    console.print(f"report: {escape(str(result['report']))}")


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
    swept = result["journal_sweep"]
    console.print(
        f"ok: {result['checked']} objects ({result['bytes_checked']:,} bytes) match; "
        f"{len(result.get('unverified') or [])} unverified (cold, not readable); "
        + (f"journal sweep repaired {swept['repaired']}; " if swept["enabled"] else "journal sweep off; ")
        + f"report {escape(str(result['report_key']))}"
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


def main() -> None:
    """The console script: whatever escapes a command is still one line, never a traceback."""
    import sys

    try:
        app(prog_name="mediavault")
    except Exception as exc:
        try:
            _fail(exc)
        except typer.Exit as stop:
            sys.exit(stop.exit_code)
    finally:
        _close_index_clients()


def _close_index_clients() -> None:
    """Close the MongoDB clients and let their monitor threads (daemons that sleep 0.5 s between
    checks) end with the process, instead of pymongo's exit hook joining each of them: that join
    held every command's exit up by up to half a second."""
    import atexit
    import sys

    monitor = sys.modules.get("pymongo.synchronous.monitor")
    if monitor is None:
        return
    from mediavault.index import status

    status.close_clients()
    atexit.unregister(monitor._shutdown_resources)


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Docstrings are wrapped for the source; the command list would keep those line breaks
    mid-sentence. Each paragraph becomes one line, and the terminal wraps it."""
    for command in typer_app.registered_commands:
        text = command.help or inspect.getdoc(command.callback)
        if text:
            command.help = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_help(group.typer_instance)


_unwrap_help(app)

__all__ = ["app", "main"]
