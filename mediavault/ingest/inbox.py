"""Batch ingest: find media with sidecar AI outputs in a folder or an S3 "inbox" prefix.

Files are grouped by stem: ``talk.mp4`` goes with ``talk.json`` / ``talk.whisperx.json``,
``talk.srt``, ``talk.vtt`` and an optional ``talk.meta.json`` holding
``{"metadata": {...}, "provenance": {...}}``.

Translations and summaries of the item's transcript ride along as sidecars too:
``talk.translation.<language>.{json,srt,vtt}`` (e.g. ``talk.translation.fr.srt``) and
``talk.summary.{md,markdown,json}``. The meta file may describe them:
``{"translation": {"provenance": {...}}, "summary": {"provenance": {...}, "language": "en"}}``.
Everything of one item is validated before anything is written, and committed in one manifest
version.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediavault.errors import InputError, MediavaultError, is_transient
from mediavault.index import status
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, RunRequest, ingest
from mediavault.ingest.sources import parse_s3_url
from mediavault.settings import MediavaultSettings
from mediavault.vault.base import Vault

MEDIA_EXTENSIONS = {
    ".wav",
    ".flac",
    ".mp3",
    ".m4a",
    ".aac",
    ".ogg",
    ".opus",
    ".wma",
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
}
OUTPUT_SUFFIXES = (".whisperx.json", ".whisper.json", ".json", ".srt", ".vtt")
META_SUFFIX = ".meta.json"
TRANSLATION_MARK = "translation"
TRANSLATION_SUFFIXES = (".json", ".srt", ".vtt")
SUMMARY_SUFFIXES = (".summary.md", ".summary.markdown", ".summary.json")
META_KEYS = {"metadata", "provenance", "translation", "summary"}


@dataclass
class InboxItem:
    name: str
    media: str | None
    outputs: list[str] = field(default_factory=list)
    meta: str | None = None
    problem: str | None = None
    translations: dict[str, list[str]] = field(default_factory=dict)
    """Target language -> translation sidecars (one run per language)."""
    summaries: list[str] = field(default_factory=list)


@dataclass
class ItemResult:
    name: str
    ok: bool
    media_id: str | None = None
    run_id: str | None = None
    created_objects: int = 0
    changed: bool = False
    error: str | None = None
    attempts: int = 1
    warning: str | None = None
    added_runs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _stem_and_role(name: str) -> tuple[str, str] | None:
    lower = name.lower()
    if lower.endswith(META_SUFFIX):
        return name[: -len(META_SUFFIX)], "meta"
    for suffix in SUMMARY_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)], "summary"
    for suffix in TRANSLATION_SUFFIXES:
        if lower.endswith(suffix):
            parts = name[: -len(suffix)].rsplit(".", 2)
            if len(parts) == 3 and parts[0] and parts[1].lower() == TRANSLATION_MARK and parts[2]:
                return parts[0], f"translation:{parts[2]}"
    for suffix in OUTPUT_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)], "output"
    dot = name.rfind(".")
    if dot > 0 and lower[dot:] in MEDIA_EXTENSIONS:
        return name[:dot], "media"
    return None


def group_files(locations: Iterator[tuple[str, str]], ignored: list[str] | None = None) -> list[InboxItem]:
    """Group ``(name, location)`` pairs into items. Files of no known kind are left out, and their
    names added to ``ignored`` so that the batch report can say so."""
    items: dict[str, InboxItem] = {}
    for name, location in locations:
        parsed = _stem_and_role(name)
        if parsed is None:
            if ignored is not None:
                ignored.append(name)
            continue
        stem, role = parsed
        item = items.setdefault(stem, InboxItem(name=stem, media=None))
        if role == "media":
            if item.media is not None:
                item.problem = f"more than one media file is named {stem!r}.*"
            item.media = location
        elif role == "output":
            item.outputs.append(location)
        elif role == "summary":
            item.summaries.append(location)
        elif role.startswith("translation:"):
            item.translations.setdefault(role.split(":", 1)[1], []).append(location)
        else:
            item.meta = location
    return [items[k] for k in sorted(items)]


def discover(source: str, s3_client: Any = None, ignored: list[str] | None = None) -> list[InboxItem]:
    """Items in a local folder (non-recursive) or under an ``s3://bucket/prefix/``; the names of
    files of no known kind go to ``ignored``."""
    if source.startswith("s3://"):
        bucket, prefix = parse_s3_url(source)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        paginator = s3_client.get_paginator("list_objects_v2")

        def listing() -> Iterator[tuple[str, str]]:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name and not name.endswith("/"):  # not a folder marker
                        yield name, f"s3://{bucket}/{obj['Key']}"

        return group_files(listing(), ignored)
    folder = Path(source.removeprefix("file://"))
    if not folder.is_dir():
        raise InputError(source, "source", "is not a folder or an s3:// prefix")
    return group_files(((p.name, str(p)) for p in sorted(folder.iterdir()) if p.is_file()), ignored)


def _read_meta(item: InboxItem, settings: MediavaultSettings, s3_client: Any) -> dict[str, Any]:
    if item.meta is None:
        return {}
    from mediavault.formats.whisper_json import decode_json
    from mediavault.ingest.sources import resolve_source

    source = resolve_source(item.meta, "meta", settings.limits, settings.s3, s3_client)
    document = decode_json(source.read_all(1024 * 1024, "meta"), source.display)
    if not isinstance(document, dict) or not set(document) <= META_KEYS:
        raise InputError(
            source.display,
            "(document)",
            'must be an object with only "metadata", "provenance", "translation" and "summary" keys',
        )
    for key in ("metadata", "provenance", "translation", "summary"):
        if not isinstance(document.get(key, {}), dict):
            raise InputError(source.display, key, "must be an object")
    for key, allowed in (("translation", {"provenance"}), ("summary", {"provenance", "language"})):
        extra = set(document.get(key, {})) - allowed
        if extra:
            raise InputError(
                source.display, f"{key}.{sorted(extra)[0]}", f"unknown key; allowed: {sorted(allowed)}"
            )
    return document


def build_request(
    item: InboxItem, defaults: dict[str, Any], settings: MediavaultSettings, s3_client: Any = None
) -> IngestRequest:
    if item.problem:
        raise InputError(item.name, "media", item.problem)
    if item.media is None:
        raise InputError(item.name, "media", "no media file found for these AI outputs")
    meta = _read_meta(item, settings, s3_client)
    metadata = {**defaults.get("metadata", {}), **meta.get("metadata", {})}
    metadata.setdefault("title", item.name)
    provenance = {**defaults.get("provenance", {}), **meta.get("provenance", {})}
    translation, summary = meta.get("translation", {}), meta.get("summary", {})
    derived = [
        RunRequest(
            "translation",
            [OutputSpec(o) for o in sorted(locations)],
            language=language,
            provenance=translation.get("provenance", {}),
        )
        for language, locations in sorted(item.translations.items())
    ]
    if item.summaries:
        derived.append(
            RunRequest(
                "summary",
                [OutputSpec(o) for o in sorted(item.summaries)],
                language=summary.get("language"),
                provenance=summary.get("provenance", {}),
            )
        )
    return IngestRequest(
        media=item.media,
        outputs=[OutputSpec(o) for o in item.outputs],
        metadata=metadata,
        provenance=provenance,
        derived=derived,
    )


def ingest_item(
    vault: Vault,
    item: InboxItem,
    defaults: dict[str, Any],
    settings: MediavaultSettings,
    database: Any = None,
    job_id: str = "",
    max_attempts: int = 3,
    backoff_seconds: float = 1.0,
) -> ItemResult:
    """Ingest one item; it fails alone. Transient faults are retried, bad input never."""
    attempt = 0
    while True:
        attempt += 1
        try:
            request = build_request(item, defaults, settings)
            result = ingest(vault, request, settings)
        except Exception as exc:
            if is_transient(exc) and attempt < max_attempts:
                time.sleep(backoff_seconds * 2 ** (attempt - 1))
                continue
            message = _describe(exc)
            if database is not None:
                with contextlib.suppress(Exception):  # the failure is reported either way
                    status.record_event(database, job_id, "item-failed", item=item.name, error=message)
            return ItemResult(item.name, False, error=message, attempts=attempt)
        # Committed: from here on the item succeeded. The index is derived; a failed status write
        # is a warning (the next re-index writes the same record), never a failed ingest.
        warning = None
        if database is not None:
            try:
                manifest_status(database, vault, result.media_id, job_id)
            except Exception as exc:
                warning = f"committed, but the status record was not written: {_describe(exc)}"
        return ItemResult(
            item.name,
            True,
            result.media_id,
            result.run_id,
            result.created_objects,
            result.changed,
            attempts=attempt,
            warning=warning,
            added_runs=result.added_runs,
        )


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MediavaultError) else f"{type(exc).__name__}: {exc}"


def manifest_status(database: Any, vault: Vault, media_id: str, job_id: str) -> None:
    from mediavault.vault import manifests

    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is not None:
        status.transition(database, media_id, "committed", job_id, status.manifest_fields(vault, manifest))
        status.record_event(
            database, job_id, "committed", media_id=media_id, manifest_version=manifest.version
        )


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def summarize(results: list[ItemResult], started: float, ignored: list[str] | None = None) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    return {
        "items": len(results),
        "ignored": sorted(ignored or []),
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "new_objects": sum(r.created_objects for r in ok),
        "seconds": round(time.monotonic() - started, 3),
        "results": [r.as_dict() for r in results],
    }
