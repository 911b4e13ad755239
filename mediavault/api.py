"""The Python API for people and programs: search, edit, export. Prefect-free."""

from __future__ import annotations

from typing import Any

from mediavault import edits, export, reindex
from mediavault.backends import index_target, search_from_settings
from mediavault.search import SearchQuery, SearchResult
from mediavault.settings import MediavaultSettings, load_settings


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
