"""The Python API for people and programs: search, edit, export, and add translations and
summaries to ingested media. Prefect-free."""

from __future__ import annotations

from typing import Any

from mediavault.backends import index_target, search_from_settings
from mediavault.errors import InputError
from mediavault.index import reindex
from mediavault.media import edits, export
from mediavault.search import SearchQuery, SearchResult
from mediavault.settings import MediavaultSettings, load_settings
from mediavault.vault import manifests


def _settings(settings: MediavaultSettings | None) -> MediavaultSettings:
    return settings or load_settings()


def search(text: str = "", settings: MediavaultSettings | None = None, **filters: Any) -> SearchResult:
    """Full-text search over speaker statements, e.g. ``search('"fellow Americans"', speaker="Dr. Lee")``."""
    query = SearchQuery(text=text, **filters)
    return search_from_settings(_settings(settings)).search(query)


def edit(
    media_id: str,
    kind: str,
    payload: dict[str, Any],
    author: str | None = None,
    settings: MediavaultSettings | None = None,
) -> dict[str, Any]:
    """Write an edit overlay to the vault, journal it, and apply it to the live index at once."""
    target = index_target(_settings(settings))
    result = edits.add_edit(target.vault, media_id, kind, payload, author)
    applied = reindex.reindex_media(target, [media_id])
    return {
        "edit_id": result.edit.edit_id,
        "manifest_version": result.manifest_version,
        "journal_seq": result.journal_seq,
        "statements_reindexed": applied,
    }


def rename_speaker(media_id: str, speaker: str, display_name: str, **kwargs: Any) -> dict[str, Any]:
    return edit(media_id, "rename-speaker", {"speaker": speaker, "display_name": display_name}, **kwargs)


def correct_text(media_id: str, run_id: str, seq: int, text: str, **kwargs: Any) -> dict[str, Any]:
    return edit(media_id, "correct-text", {"run_id": run_id, "seq": seq, "text": text}, **kwargs)


def fix_metadata(media_id: str, **fields_and_kwargs: Any) -> dict[str, Any]:
    options = {k: fields_and_kwargs.pop(k) for k in ("author", "settings") if k in fields_and_kwargs}
    return edit(media_id, "fix-metadata", fields_and_kwargs, **options)


def export_transcript(
    media_id: str,
    format_name: str = "srt",
    run_id: str | None = None,
    settings: MediavaultSettings | None = None,
) -> str:
    """The transcript with edits applied, as whisperx-json, srt, vtt or txt."""
    from mediavault.vault import vault_from_settings

    return export.export(vault_from_settings(_settings(settings)), media_id, format_name, run_id)


def export_output(
    media_id: str,
    run_id: str | None = None,
    format_name: str | None = None,
    settings: MediavaultSettings | None = None,
) -> bytes:
    """A run's AI output byte-exact as it was received (default: the run's primary output), e.g. a
    summary's Markdown: ``export_output(media_id, summary_run_id)``."""
    from mediavault.vault import vault_from_settings

    vault = vault_from_settings(_settings(settings))
    return export.run_output(vault, media_id, run_id, format_name).data


def runs(media_id: str, settings: MediavaultSettings | None = None) -> list[dict[str, Any]]:
    """Every run of a media item, oldest first: kind (transcript, translation, summary), language,
    source run, provenance, counts, and whether search holds it."""
    from mediavault.index.projection import load_applied_edits, media_document
    from mediavault.vault import vault_from_settings

    vault = vault_from_settings(_settings(settings))
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        raise InputError(media_id, "media_id", "no such media item in the vault")
    return media_document(manifest, load_applied_edits(vault, manifest))["runs"]


def _add_run(
    media_id: str,
    kind: str,
    outputs: list[str],
    source_run_id: str | None,
    language: str | None,
    model: str,
    model_version: str | None,
    parameters: dict[str, Any] | None,
    output_format: str | None,
    settings: MediavaultSettings | None,
) -> dict[str, Any]:
    from mediavault.ingest.pipeline import OutputSpec, RunRequest, add_run
    from mediavault.vault import vault_from_settings

    resolved = _settings(settings)
    request = RunRequest(
        kind=kind,
        outputs=[OutputSpec(location, output_format) for location in outputs],
        source_run_id=source_run_id,
        language=language,
        provenance={"model": model, "version": model_version, "parameters": parameters or {}},
        media_id=media_id,
    )
    return add_run(vault_from_settings(resolved), request, resolved).as_dict()


def add_translation(
    media_id: str,
    source_run_id: str,
    language: str,
    outputs: list[str],
    model: str = "unknown",
    model_version: str | None = None,
    parameters: dict[str, Any] | None = None,
    output_format: str | None = None,
    settings: MediavaultSettings | None = None,
) -> dict[str, Any]:
    """Add a translation of the transcript run ``source_run_id`` into ``language`` (its output in
    WhisperX/Whisper JSON, SRT or VTT; paths or s3:// URLs), committed to the vault as a run of its
    own. The next re-index (``mediavault reindex``) makes it searchable in that language."""
    return _add_run(
        media_id,
        "translation",
        outputs,
        source_run_id,
        language,
        model,
        model_version,
        parameters,
        output_format,
        settings,
    )


def add_summary(
    media_id: str,
    outputs: list[str],
    source_run_id: str | None = None,
    language: str | None = None,
    model: str = "unknown",
    model_version: str | None = None,
    parameters: dict[str, Any] | None = None,
    output_format: str | None = None,
    settings: MediavaultSettings | None = None,
) -> dict[str, Any]:
    """Add a summary or notes document (Markdown or JSON) of a media item, kept byte-exact, with
    its provenance and optionally the run it summarizes."""
    return _add_run(
        media_id,
        "summary",
        outputs,
        source_run_id,
        language,
        model,
        model_version,
        parameters,
        output_format,
        settings,
    )
