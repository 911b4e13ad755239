"""Pydantic models of everything mediavault writes to the vault. All carry a schema version."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mediavault import SCHEMA_VERSION

ArtifactKind = Literal["media", "raw-output", "statements", "words", "srt", "vtt", "txt"]
Tier = Literal["hot", "archive", "expired"]
ChangeKind = Literal["ingest", "new-run", "edit", "archive", "restore", "delete", "legal-hold", "forget"]
RunKind = Literal["transcript", "translation", "summary"]
RUN_KINDS: tuple[str, ...] = ("transcript", "translation", "summary")


def utc_now() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> bytes:
    """Stable JSON bytes for hashing (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class MediaMetadata(_Strict):
    title: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=10_000)
    owner: str | None = Field(None, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=100)
    language: str | None = Field(None, max_length=35)
    source_url: str | None = Field(None, max_length=4096)

    @field_validator("title", "owner", "language", "source_url")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 and c not in "\t" for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("description")
    @classmethod
    def _printable_paragraphs(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 and c not in "\t\n" for c in value):
            raise ValueError("must not contain control characters other than tabs and newlines")
        return value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag.strip() or len(tag) > 200 or any(ord(c) < 32 for c in tag):
                raise ValueError(f"invalid tag {tag[:40]!r}: 1-200 printable characters")
        return sorted(set(tags))


class RunProvenance(_Strict):
    """Who produced an AI output. WhisperX JSON does not say, so the caller does."""

    model: str = Field("unknown", min_length=1, max_length=200)
    version: str | None = Field(None, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)


class StreamInfo(_Strict):
    index: int
    type: str
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None


class MediaProbe(_Strict):
    container: str
    duration_seconds: float | None
    streams: list[StreamInfo]


class ArchiveCopy(_Strict):
    """Where the archive copy of an artifact lives. ``tier_url`` names a vault (no secrets)."""

    tier_url: str
    key: str
    stored_sha256: str
    stored_size: int
    compression: Literal["zstd"] | None = None
    storage_class: str | None = None
    archived_at: datetime


class Artifact(_Strict):
    key: str
    sha256: str
    size: int
    tier: Tier = "hot"
    schema_version: int = SCHEMA_VERSION
    kind: ArtifactKind
    content_type: str
    run_id: str | None = None
    format: str | None = None
    archive: ArchiveCopy | None = None
    tier_changed_at: datetime | None = None


class OutputRecord(_Strict):
    format: str
    original_filename: str
    sha256: str
    size: int


class Run(_Strict):
    """One costly AI output: a transcript of the media, a translation of one of its runs, or a
    summary (notes) document. ``language`` is the language the run is written in: for a
    translation its target language, ``source_language`` the language it was translated from."""

    run_id: str
    provenance: RunProvenance
    created_at: datetime
    outputs: list[OutputRecord]
    primary_format: str
    language: str | None
    statement_count: int
    word_count: int
    speakers: list[str]
    # Left out when at their defaults: a transcript run is written exactly as before runs had
    # kinds, so manifests without translations or summaries stay readable by earlier releases.
    kind: RunKind = Field("transcript", exclude_if=lambda value: value == "transcript")
    source_run_id: str | None = Field(None, exclude_if=lambda value: value is None)
    source_language: str | None = Field(None, exclude_if=lambda value: value is None)


class MediaInfo(_Strict):
    sha256: str
    size: int
    original_filename: str
    content_type: str
    probe: MediaProbe


class EditRef(_Strict):
    """A user edit overlay stored at ``key`` (never a change to the AI output itself)."""

    edit_id: str
    key: str
    sha256: str
    kind: str
    created_at: datetime


class Forgotten(_Strict):
    """Why a media item was erased on request; its tombstone manifest holds nothing else."""

    at: datetime
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class Manifest(_Strict):
    """The commit record of a media item. A media item exists only once its manifest does."""

    schema_version: int = SCHEMA_VERSION
    media_id: str
    version: int
    previous_version: int | None
    created_at: datetime
    change: ChangeKind
    metadata: MediaMetadata
    media: MediaInfo
    runs: list[Run]
    artifacts: list[Artifact]
    edits: list[EditRef] = Field(default_factory=list)
    ingested_at: datetime | None = None
    legal_hold: bool = False
    forgotten: Forgotten | None = Field(None, exclude_if=lambda value: value is None)

    def current_run(self) -> Run | None:
        """The transcript that is searchable and exported by default: the latest transcript run."""
        return next((r for r in reversed(self.runs) if r.kind == "transcript"), None)

    def transcripts(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "transcript"]

    def translations(self, source_run_id: str | None = None) -> list[Run]:
        """Translation runs, oldest first; with ``source_run_id``, only translations of that run."""
        return [
            r
            for r in self.runs
            if r.kind == "translation" and (source_run_id is None or r.source_run_id == source_run_id)
        ]

    def summaries(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "summary"]

    def searchable_translations(self) -> list[Run]:
        """The translations the search index holds: of the current transcript run, the latest one
        per target language (compared case-insensitively), ordered by language. Translations of
        earlier transcript runs stay in the vault (listed, exportable) but are not searched."""
        current = self.current_run()
        if current is None:
            return []
        latest: dict[str, Run] = {}
        for run in self.translations(current.run_id):
            latest[language_tag(run.language)] = run
        return [latest[key] for key in sorted(latest)]

    def run(self, run_id: str) -> Run | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        document = json.loads(data)
        version = document.get("schema_version", 0)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema version {version} is newer than this mediavault "
                f"(reads up to {SCHEMA_VERSION}); upgrade mediavault"
            )
        return cls.model_validate(document)


class JournalRecord(_Strict):
    schema_version: int = SCHEMA_VERSION
    seq: int
    recorded_at: datetime
    change: ChangeKind
    media_id: str
    manifest_version: int
    manifest_key: str
    run_id: str | None = None


def language_tag(language: str | None) -> str:
    """A language tag compared case- and separator-insensitively: ``fr_CA`` and ``fr-ca`` are one."""
    return (language or "").strip().lower().replace("_", "-")


def compute_run_id(
    outputs: list[OutputRecord],
    provenance: RunProvenance,
    kind: RunKind = "transcript",
    source_run_id: str | None = None,
    language: str | None = None,
) -> str:
    """An AI run's identity: its raw output bytes together with its provenance.

    A translation or summary also hashes its kind, its source run and its language, so it never
    shares an id with a transcript of the same bytes, nor with the same bytes attached to another
    run or language. A transcript's id is computed exactly as before runs had kinds."""
    payload: dict[str, Any] = {
        "outputs": sorted((o.format, o.sha256) for o in outputs),
        "provenance": provenance.model_dump(mode="json"),
    }
    if kind != "transcript":
        payload.update(kind=kind, source_run_id=source_run_id, language=language)
    return hashlib.sha256(canonical_json(payload)).hexdigest()[:32]
