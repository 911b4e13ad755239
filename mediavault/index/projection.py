"""Project the vault into index documents: one media document per item, one search document per
statement of its current run (and of the translations of that run), with user edits applied.
Pure and deterministic, so a rebuild from the vault reproduces the index exactly."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mediavault.media import edits as edits_module
from mediavault.vault import manifests
from mediavault.vault.base import Vault
from mediavault.vault.models import Artifact, Manifest, Run, canonical_json
from mediavault.vault.tiers import ArtifactReader

BATCH_ROWS = 2_000
PARQUET_READ_BUFFER = 1024 * 1024
DIGEST_FIELDS = ("digest_a", "digest_b")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def doc_digest(document: dict[str, Any]) -> tuple[int, int]:
    """Two 24-bit slices of the SHA-256 of a document's canonical JSON.

    Sums of these over a generation are exact in a float64 aggregation up to 2^29 documents, so a
    search backend can verify a whole generation without reading documents back.
    """
    content = {k: v for k, v in document.items() if k not in DIGEST_FIELDS}
    digest = hashlib.sha256(canonical_json(content)).digest()
    return int.from_bytes(digest[:3], "big"), int.from_bytes(digest[3:6], "big")


@dataclass
class DigestSet:
    """Order-independent summary of a set of documents: count and two digest sums."""

    count: int = 0
    sum_a: int = 0
    sum_b: int = 0

    def add(self, document: dict[str, Any]) -> tuple[int, int]:
        """Count a document; returns its digest pair."""
        a, b = doc_digest(document)
        self.count += 1
        self.sum_a += a
        self.sum_b += b
        return a, b

    def merge(self, other: DigestSet) -> None:
        self.count += other.count
        self.sum_a += other.sum_a
        self.sum_b += other.sum_b

    def as_tuple(self) -> tuple[int, int, int]:
        return self.count, self.sum_a, self.sum_b


@dataclass
class MediaProjection:
    media_id: str
    media_doc: dict[str, Any]
    statement_count: int
    digest: DigestSet = field(default_factory=DigestSet)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def bson_safe(value: Any) -> Any:
    """Provenance parameters as MongoDB can store them: integers beyond int64 (a uint64 seed is
    common) become their decimal string. The vault keeps the original value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return str(value)
    if isinstance(value, dict):
        return {str(k): bson_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bson_safe(v) for v in value]
    return value


def media_document(manifest: Manifest, applied: edits_module.AppliedEdits) -> dict[str, Any]:
    metadata = applied.metadata_over(manifest.metadata)
    current = manifest.current_run()
    labels = sorted({label for run in manifest.runs for label in run.speakers})
    media_artifact = next((a for a in manifest.artifacts if a.kind == "media"), None)
    searchable = {r.run_id for r in [*([current] if current else []), *manifest.searchable_translations()]}
    return {
        "_id": manifest.media_id,
        "status": "committed",
        "manifest_version": manifest.version,
        "title": metadata.title,
        "description": metadata.description,
        "owner": metadata.owner,
        "tags": metadata.tags,
        "language": metadata.language,
        "source_url": metadata.source_url,
        "original_filename": manifest.media.original_filename,
        "duration_seconds": manifest.media.probe.duration_seconds,
        "container": manifest.media.probe.container,
        "size": manifest.media.size,
        "tier": media_artifact.tier if media_artifact else "hot",
        "stream_key": media_artifact.key if media_artifact and media_artifact.tier == "hot" else None,
        "legal_hold": manifest.legal_hold,
        "ingested_at": _iso(manifest.ingested_at or manifest.created_at),
        "updated_at": _iso(manifest.created_at),
        "current_run": current.run_id if current else None,
        "runs": [
            {
                "run_id": r.run_id,
                "kind": r.kind,
                "source_run_id": r.source_run_id,
                "source_language": r.source_language,
                "searchable": r.run_id in searchable,
                "model": r.provenance.model,
                "version": r.provenance.version,
                "parameters": bson_safe(r.provenance.parameters),
                "primary_format": r.primary_format,
                "language": r.language,
                "statement_count": r.statement_count,
                "word_count": r.word_count,
                "created_at": _iso(r.created_at),
            }
            for r in manifest.runs
        ],
        "speakers": [{"label": label, "display_name": applied.display_name(label)} for label in labels],
        "counts": {
            "runs": len(manifest.runs),
            "statements": current.statement_count if current else 0,
            "words": current.word_count if current else 0,
            "edits": len(manifest.edits),
        },
        "edits": applied.as_document(),
    }


def media_search_document(media_doc: dict[str, Any]) -> dict[str, Any]:
    """The search document that makes a media item findable by its title, description and tags.

    It lives beside the statements (``kind`` tells them apart) and is analysed in the media's
    language; its ``text`` is the title, the description and the tags, one per line."""
    text = "\n".join(
        part for part in (media_doc["title"], media_doc["description"], " ".join(media_doc["tags"])) if part
    )
    return {
        "id": f"{media_doc['_id']}:media",
        "kind": "media",
        "media_id": media_doc["_id"],
        "run_id": "",
        "seq": 0,
        "owner": media_doc["owner"] or "",
        "speaker": "",
        "speaker_name": "",
        "text": text,
        "start": 0.0,
        "end": 0.0,
        "language": media_doc["language"] or "",
        "title": media_doc["title"] or "",
        "tags": media_doc["tags"],
        "ingested_at": media_doc["ingested_at"],
    }


def _parquet_batches(vault: Vault, artifact: Artifact, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches of a Parquet artifact through a seekable handle. Column chunks are streamed page by
    page (buffer_size, and no pre-buffering, which would load whole row groups), so memory stays
    at about a page and a batch however large the file is."""
    with ArtifactReader(vault).open_seekable(artifact) as handle:
        parquet = pq.ParquetFile(handle, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False)
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)


STATEMENT_COLUMNS = ["seq", "start", "end", "speaker", "text", "language"]


def statement_documents(
    vault: Vault, manifest: Manifest, applied: edits_module.AppliedEdits, media_doc: dict[str, Any]
) -> Iterator[list[dict[str, Any]]]:
    """Search documents for the current run, then for each of its searchable translations (see
    ``Manifest.searchable_translations``), in batches of at most BATCH_ROWS.

    A translation's documents point at the same media item, carry its own run id (so its ids differ
    from the transcript's), its own timings and its target language, which picks the language's
    text analysis. A translated statement with no speaker takes the speaker of the source statement
    with the same start and end (a translation made segment by segment keeps the source timings)."""
    run = manifest.current_run()
    if run is None:
        return
    yield from _run_documents(vault, manifest, run, applied, media_doc, None)
    for translation in manifest.searchable_translations():
        yield from _run_documents(vault, manifest, translation, applied, media_doc, run)


def _statements_artifact(manifest: Manifest, run: Run) -> Artifact | None:
    """The run's statements Parquet, or None when retention expired it."""
    artifact = next(a for a in manifest.artifacts if a.kind == "statements" and a.run_id == run.run_id)
    return None if artifact.tier == "expired" else artifact


TIME_TOLERANCE = 0.0015
"""Seconds: statement times are stored to the millisecond by SRT/VTT."""


class _SourceSpeakers:
    """The speakers of a source run's statements, read in step with a translation's statements
    (both in time order), so memory stays at a batch however long the run is."""

    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self._rows = rows
        self._row = next(rows, None)

    def speaker(self, start: float, end: float) -> str | None:
        while self._row is not None and self._row["start"] < start - TIME_TOLERANCE:
            self._row = next(self._rows, None)
        row = self._row
        if row is None or max(abs(row["start"] - start), abs(row["end"] - end)) > TIME_TOLERANCE:
            return None
        return row["speaker"]

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()  # closes the source Parquet's handle now, not at garbage collection


def _rows(vault: Vault, artifact: Artifact, columns: list[str]) -> Iterator[dict[str, Any]]:
    for batch in _parquet_batches(vault, artifact, columns):
        yield from batch.to_pylist()


def _run_documents(
    vault: Vault,
    manifest: Manifest,
    run: Run,
    applied: edits_module.AppliedEdits,
    media_doc: dict[str, Any],
    source: Run | None,
) -> Iterator[list[dict[str, Any]]]:
    """Search documents of one run: the current transcript (``source`` None) or a translation of it."""
    statements = _statements_artifact(manifest, run)
    if statements is None:
        return
    speakers = None
    if source is not None and (source_statements := _statements_artifact(manifest, source)) is not None:
        speakers = _SourceSpeakers(_rows(vault, source_statements, ["start", "end", "speaker"]))
    try:
        yield from _batches(vault, manifest, run, statements, applied, media_doc, source, speakers)
    finally:
        if speakers is not None:
            speakers.close()


def _batches(
    vault: Vault,
    manifest: Manifest,
    run: Run,
    statements: Artifact,
    applied: edits_module.AppliedEdits,
    media_doc: dict[str, Any],
    source: Run | None,
    speakers: _SourceSpeakers | None,
) -> Iterator[list[dict[str, Any]]]:
    for batch in _parquet_batches(vault, statements, STATEMENT_COLUMNS):
        rows = batch.to_pylist()
        docs = []
        for row in rows:
            text = applied.texts.get((run.run_id, row["seq"]), row["text"])
            speaker = row["speaker"]
            if speaker is None and speakers is not None:
                speaker = speakers.speaker(row["start"], row["end"])
            if source is None:
                language = media_doc["language"] or row["language"] or ""
            else:
                language = run.language or ""
            docs.append(
                {
                    "id": f"{manifest.media_id}:{run.run_id}:{row['seq']}",
                    "kind": "statement" if source is None else "translation",
                    "media_id": manifest.media_id,
                    "run_id": run.run_id,
                    "seq": row["seq"],
                    "owner": media_doc["owner"] or "",
                    "speaker": speaker or "",
                    "speaker_name": applied.display_name(speaker) or "",
                    "text": text.strip(),
                    "start": row["start"],
                    "end": row["end"],
                    "language": language,
                    "title": media_doc["title"] or "",
                    "tags": media_doc["tags"],
                    "ingested_at": media_doc["ingested_at"],
                }
            )
        yield docs


def load_applied_edits(vault: Vault, manifest: Manifest) -> edits_module.AppliedEdits:
    return edits_module.resolve(edits_module.load_edits(vault, manifest))


def project(vault: Vault, media_id: str) -> tuple[MediaProjection, Iterator[list[dict[str, Any]]]] | None:
    """The media document and a lazy stream of statement batches, or None if not committed."""
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        return None
    applied = load_applied_edits(vault, manifest)
    media_doc = media_document(manifest, applied)
    projection = MediaProjection(media_id, media_doc, media_doc["counts"]["statements"])
    batches = itertools.chain(
        [[media_search_document(media_doc)]], statement_documents(vault, manifest, applied, media_doc)
    )
    return projection, batches
