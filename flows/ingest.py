"""The ingest flows: one media item with its AI outputs, a translation or summary added to an
ingested item, or a whole inbox in chunks."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from blocks import resolve_settings
from mediavault.errors import InputError, InsufficientSpace, ObjectsVanished
from mediavault.ingest import inbox
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, RunRequest
from mediavault.vault import vault_from_settings
from tasks.common import submit_in_windows
from tasks.ingest import (
    commit_added_run,
    commit_manifest,
    ingest_chunk,
    record_status,
    store_added_run,
    store_media,
    store_run,
    validate_added_run,
    validate_inputs,
)


def _job_id() -> str:
    return str(flow_run.get_id() or "local")


def _summary_markdown(result: dict[str, Any], manifest: Any) -> str:
    lines = [
        f"# Ingested `{result['media_id'][:16]}…`",
        "",
        f"- **title**: {manifest.metadata.title or '-'}",
        f"- **manifest**: v{manifest.version} ({'new' if result['changed'] else 'unchanged'})",
        f"- **new objects**: {result['created_objects']}",
        f"- **runs**: {len(manifest.runs)}",
        "",
        "| kind | key | bytes | sha256 |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {a.kind} | `{a.key}` | {a.size:,} | `{a.sha256[:16]}…` |" for a in manifest.artifacts]
    return "\n".join(lines)


@flow(name="ingest", log_prints=True)
def ingest_flow(
    media: str,
    outputs: list[str] | None = None,
    output_format: str | None = None,
    title: str | None = None,
    owner: str | None = None,
    tags: list[str] | None = None,
    language: str | None = None,
    source_url: str | None = None,
    model: str = "unknown",
    model_version: str | None = None,
    model_parameters: dict[str, Any] | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Store media and its AI outputs in the vault: validated, checksummed, committed.

    Args:
        media: Local path or s3:// URL of the audio or video file.
        outputs: AI outputs of one run: WhisperX/Whisper JSON, SRT, VTT (paths or s3:// URLs).
        output_format: Force the format of every output (whisperx-json, whisper-json, srt, vtt).
            Empty: detect from the file.
        title: Title shown in listings and search results.
        owner: Owning person or team.
        tags: Free-form tags.
        language: Spoken language, e.g. 'en'.
        source_url: Where the media came from.
        model: Model that produced the outputs, e.g. 'whisperx large-v3'.
        model_version: Version of that model or tool.
        model_parameters: Parameters of the AI run (beam size, diarization, ...).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    job_id = _job_id()
    request = IngestRequest(
        media=media,
        outputs=[OutputSpec(o, output_format) for o in outputs or []],
        metadata={
            k: v
            for k, v in {
                "title": title,
                "owner": owner,
                "tags": tags,
                "language": language,
                "source_url": source_url,
            }.items()
            if v
        },
        provenance={"model": model, "version": model_version, "parameters": model_parameters or {}},
    )
    try:
        prepared = validate_inputs(request, settings, vault)
    except (InputError, InsufficientSpace) as exc:
        record_status(settings, job_id, "rejected", error=str(exc), media=media)
        create_markdown_artifact(
            f"# Ingest rejected\n\n`{exc}`\n\nNothing was written.",
            key="ingest-summary",
            description="ingest rejected",
        )
        raise
    media_state = store_media(vault, prepared, return_state=True)
    media_artifact, media_created = media_state.result()
    media_created = media_created and media_state.name != "Cached"
    media_id = media_artifact.sha256
    record_status(settings, job_id, "media-stored", media_id, to_status="ingesting")
    try:
        run_state = store_run(vault, media_id, prepared, return_state=True)
        stored = run_state.result()
        run_created = 0 if stored is None or run_state.name == "Cached" else stored.created_objects
        try:
            committed = commit_manifest(vault, prepared, media_artifact, stored)
        except ObjectsVanished as exc:
            # Garbage collection removed objects this commit deduplicated against: store again.
            logger.warning("%s; storing again", exc)
            media_artifact, _ = store_media.with_options(refresh_cache=True)(vault, prepared)
            stored = store_run.with_options(refresh_cache=True)(vault, media_id, prepared)
            committed = commit_manifest(vault, prepared, media_artifact, stored)
    except Exception as exc:
        record_status(settings, job_id, "failed", media_id, to_status="failed", error=str(exc))
        raise
    record_status(
        settings,
        job_id,
        "committed",
        media_id,
        manifest=committed.manifest,
        to_status="committed",
        manifest_version=committed.manifest.version,
    )
    result = {
        "media_id": media_id,
        "run_id": stored.run.run_id if stored else None,
        "manifest_version": committed.manifest.version,
        "changed": committed.changed,
        "created_objects": int(media_created) + run_created + int(committed.changed),
        "journal_seq": committed.journal_seq,
        "vault": vault.url,
    }
    create_markdown_artifact(
        _summary_markdown(result, committed.manifest),
        key="ingest-summary",
        description=f"ingest of {prepared.media.name}",
    )
    logger.info("committed %s as manifest v%d", media_id, committed.manifest.version)
    return result


@flow(name="add-run", log_prints=True)
def add_run_flow(
    media_id: str,
    kind: str,
    outputs: list[str],
    source_run: str | None = None,
    language: str | None = None,
    output_format: str | None = None,
    model: str = "unknown",
    model_version: str | None = None,
    model_parameters: dict[str, Any] | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
) -> dict[str, Any]:
    """Add a translation or a summary to an ingested media item, as a run of its own kind.

    Args:
        media_id: The media item (64 hex characters, as `mediavault ls` shows it).
        kind: 'translation' (of a transcript run, into a target language) or 'summary' (notes,
            Markdown or JSON, kept byte-exact).
        outputs: The output file(s) of this run (paths or s3:// URLs). A translation: WhisperX/Whisper
            JSON, SRT or VTT. A summary: .md / .markdown / .txt or .json.
        source_run: The run it was made from (32 hex characters). Required for a translation (a
            transcript run); optional for a summary.
        language: A translation's target language (required), e.g. 'fr'; a summary's language.
        output_format: Force the format (whisperx-json, whisper-json, srt, vtt; summary-markdown,
            summary-json). Empty: detect from the file name.
        model: Model that produced the output, e.g. 'nllb-200' or 'gpt-4o'.
        model_version: Version of that model or tool.
        model_parameters: Parameters of the run (prompt id, temperature, ...).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    job_id = _job_id()
    request = RunRequest(
        kind=kind,
        outputs=[OutputSpec(o, output_format) for o in outputs],
        source_run_id=source_run or None,
        language=language or None,
        provenance={"model": model, "version": model_version, "parameters": model_parameters or {}},
        media_id=media_id,
    )
    try:
        prepared = validate_added_run(request, settings, vault)
    except (InputError, InsufficientSpace) as exc:
        record_status(settings, job_id, "rejected", error=str(exc), media=media_id, kind=kind)
        create_markdown_artifact(
            f"# {kind.capitalize()} rejected\n\n`{exc}`\n\nNothing was written.",
            key="ingest-summary",
            description=f"{kind} rejected",
        )
        raise
    stored = store_added_run(vault, media_id, prepared)
    try:
        committed = commit_added_run(vault, media_id, stored)
    except ObjectsVanished as exc:
        logger.warning("%s; storing again", exc)
        stored = store_added_run.with_options(refresh_cache=True)(vault, media_id, prepared)
        committed = commit_added_run(vault, media_id, stored)
    record_status(
        settings,
        job_id,
        "run-added",
        media_id,
        manifest=committed.manifest,
        to_status="committed",
        manifest_version=committed.manifest.version,
        run_id=stored.run.run_id,
        kind=kind,
    )
    result = {
        "media_id": media_id,
        "run_id": stored.run.run_id,
        "kind": kind,
        "manifest_version": committed.manifest.version,
        "changed": committed.changed,
        "created_objects": stored.created_objects + int(committed.changed),
        "journal_seq": committed.journal_seq,
        "vault": vault.url,
    }
    create_markdown_artifact(
        _summary_markdown(result, committed.manifest),
        key="ingest-summary",
        description=f"{kind} {stored.run.run_id} of {media_id[:16]}",
    )
    logger.info("committed %s %s as manifest v%d", kind, stored.run.run_id, committed.manifest.version)
    return result


@flow(name="batch-ingest", log_prints=True)
def batch_ingest_flow(
    source: str,
    owner: str | None = None,
    tags: list[str] | None = None,
    language: str | None = None,
    model: str = "unknown",
    model_version: str | None = None,
    chunk_size: int | None = None,
    max_concurrency: int | None = None,
    config_block: str | None = None,
    vault_url: str | None = None,
):
    """Ingest every item of an inbox in chunks with bounded concurrency; bad items fail alone.

    Args:
        source: A local folder or an s3://bucket/inbox/ prefix holding media files with sidecar
            outputs: talk.mp4 + talk.json / talk.srt / talk.vtt + optional talk.meta.json;
            translations as talk.translation.<language>.srt (or .vtt, .json) and a summary as
            talk.summary.md (or .json) ride along and commit with the item.
        owner: Default owner for every item.
        tags: Default tags for every item.
        language: Default spoken language.
        model: Default model name for the AI outputs.
        model_version: Default model version.
        chunk_size: Items per task; empty uses the settings (8).
        max_concurrency: Chunks running at once; empty uses the settings (4).
        config_block: Name of a 'mediavault-config' block; empty uses MEDIAVAULT_* settings.
        vault_url: Override the vault (file:///path or s3://bucket/prefix).
    """
    logger = get_run_logger()
    started = time.monotonic()
    settings = resolve_settings(config_block, vault_url=vault_url)
    vault = vault_from_settings(settings)
    job_id = _job_id()
    s3_client = None
    if source.startswith("s3://"):
        from mediavault.vault.s3 import make_s3_client  # boto3 only when the inbox is on S3

        s3_client = make_s3_client(settings.s3)
    ignored: list[str] = []
    items = inbox.discover(source, s3_client, ignored)
    if ignored:
        logger.info("ignored %d file(s) of no known kind: %s", len(ignored), ", ".join(ignored[:20]))
    defaults = {
        "metadata": {k: v for k, v in {"owner": owner, "tags": tags, "language": language}.items() if v},
        "provenance": {"model": model, "version": model_version},
    }
    chunks = inbox.chunked(items, chunk_size or settings.batch_chunk_size)
    window = max(1, max_concurrency or settings.batch_max_concurrency)
    logger.info("%d items in %d chunks, %d at a time", len(items), len(chunks), window)
    results: list[inbox.ItemResult] = []
    arguments = [(vault, chunk, defaults, settings, job_id) for chunk in chunks]
    for part in submit_in_windows(ingest_chunk, arguments, window):
        results.extend(part)
    report = inbox.summarize(results, started, ignored)
    create_table_artifact(
        [
            {
                "item": r["name"],
                "ok": r["ok"],
                "media_id": r["media_id"] or "",
                "new objects": r["created_objects"],
                "error": r["error"] or "",
                "warning": r["warning"] or "",
            }
            for r in report["results"]
        ],
        key="batch-ingest-report",
        description=f"{report['succeeded']} ok, {report['failed']} failed"
        + (f", {len(ignored)} file(s) ignored" if ignored else ""),
    )
    logger.info(
        "batch done: %d ok, %d failed in %.1fs", report["succeeded"], report["failed"], report["seconds"]
    )
    if report["failed"]:
        return Failed(
            message=f"{report['failed']} of {report['items']} items failed; "
            "see the batch-ingest-report artifact",
            data=report,
        )
    return report
