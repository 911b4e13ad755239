"""User edits: append-only overlay records in the vault, applied on top of the AI output.

An edit is written to ``edits/<media_id>/<edit_id>.json`` (create-if-absent), then a new manifest
version lists it, then the journal records it. Conflicts resolve deterministically: edits apply in
``(created_at, edit_id)`` order, so the latest one wins for each target.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mediavault import SCHEMA_VERSION
from mediavault.errors import InputError, PreconditionFailed
from mediavault.vault import manifests
from mediavault.vault.base import Vault
from mediavault.vault.keys import edit_key
from mediavault.vault.models import EditRef, Manifest, MediaMetadata, utc_now

EditKind = Literal["rename-speaker", "correct-text", "fix-metadata"]


def single_line(value: str | None) -> str | None:
    """Reject control characters (newlines included): they would break SRT/VTT cue structure,
    terminal output and log lines. Tabs are allowed."""
    if value is None:
        return value
    bad = next(
        (c for c in value if (ord(c) < 32 and c != "\t") or 127 <= ord(c) < 160 or c in "\u2028\u2029"), None
    )
    if bad is not None:
        raise ValueError(f"must be one line without control characters (found U+{ord(bad):04X})")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class RenameSpeaker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: str = Field(min_length=1, max_length=200)
    display_name: str = Field(min_length=1, max_length=200)

    _one_line = field_validator("speaker", "display_name")(single_line)


class CorrectText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    seq: int = Field(ge=0, le=2**31 - 1)
    text: str = Field(min_length=1, max_length=100_000)

    _one_line = field_validator("text")(single_line)


class FixMetadata(BaseModel):
    """Fields sent replace the current values; a field sent as null clears it (every field but
    the owner); fields not sent are left as they are."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=10_000)
    owner: str | None = Field(None, max_length=200)
    tags: list[str] | None = None
    language: str | None = Field(None, max_length=35)
    source_url: str | None = Field(None, max_length=4096)

    _one_line = field_validator("title", "owner", "language", "source_url")(single_line)

    @field_validator("owner")
    @classmethod
    def _owner_kept(cls, value: str | None) -> str:
        if value is None or not value.strip():
            raise ValueError("cannot be cleared: every media item keeps an owner (change it instead)")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        try:
            return MediaMetadata(description=value).description
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            return None
        try:
            return MediaMetadata(tags=tags).tags
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


PAYLOADS: dict[str, type[BaseModel]] = {
    "rename-speaker": RenameSpeaker,
    "correct-text": CorrectText,
    "fix-metadata": FixMetadata,
}


class EditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    edit_id: str
    media_id: str
    kind: EditKind
    payload: dict[str, Any]
    author: str | None = None
    created_at: datetime


def new_edit_id() -> str:
    """Sortable by time: nanoseconds since the epoch, then a random suffix."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def validate_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    model = PAYLOADS.get(kind)
    if model is None:
        raise InputError("edit", "kind", f"unknown edit kind {kind!r}; one of {sorted(PAYLOADS)}")
    try:
        validated = model.model_validate(payload)
        if model is FixMetadata:  # an explicit null clears the field
            fields = validated.model_dump(exclude_unset=True)
            if "tags" in fields and fields["tags"] is None:
                fields["tags"] = []
            return fields
        return validated.model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError("edit", f"payload.{where}", first["msg"]) from None


@dataclass
class EditResult:
    edit: EditRecord
    manifest_version: int
    journal_seq: int | None


def add_edit(
    vault: Vault,
    media_id: str,
    kind: str,
    payload: dict[str, Any],
    author: str | None = None,
    expected_version: int | None = None,
) -> EditResult:
    """Store an edit overlay and commit it: overlay object, new manifest version, journal record.

    With ``expected_version``, the edit commits only on top of that manifest version
    (``PreconditionFailed`` otherwise), as for an HTTP ``If-Match``."""
    clean = validate_payload(kind, payload)
    current = manifests.latest_manifest(vault, media_id)
    if current is None:
        raise InputError(media_id, "media_id", "no such media item in the vault")
    if expected_version is not None and current.version != expected_version:
        raise PreconditionFailed(expected_version, current.version)
    if kind == "correct-text":
        run = current.run(clean["run_id"])
        if run is None:
            raise InputError("edit", "payload.run_id", f"media {media_id} has no run {clean['run_id']}")
        if clean["seq"] >= run.statement_count:
            raise InputError("edit", "payload.seq", f"run has {run.statement_count} statements")
    record = EditRecord(
        edit_id=new_edit_id(),
        media_id=media_id,
        kind=kind,  # type: ignore[arg-type]
        payload=clean,
        author=author,
        created_at=utc_now(),
    )
    key = edit_key(media_id, record.edit_id)
    stored = vault.put_bytes(key, record.model_dump_json().encode(), "application/json")
    ref = EditRef(
        edit_id=record.edit_id, key=key, sha256=stored.sha256, kind=kind, created_at=record.created_at
    )

    def derive(latest: Manifest | None) -> Manifest | None:
        assert latest is not None
        if any(e.edit_id == ref.edit_id for e in latest.edits):
            return None
        if expected_version is not None and latest.version != expected_version:
            raise PreconditionFailed(expected_version, latest.version)
        updated = latest.model_copy(deep=True)
        updated.created_at = utc_now()
        updated.change = "edit"
        updated.edits.append(ref)
        return updated

    committed = manifests.commit(vault, media_id, derive)
    return EditResult(record, committed.manifest.version, committed.journal_seq)


def load_edits(vault: Vault, manifest: Manifest) -> list[EditRecord]:
    records = [EditRecord.model_validate_json(vault.get_bytes(ref.key)) for ref in manifest.edits]
    return sorted(records, key=lambda r: (r.created_at, r.edit_id))


@dataclass
class AppliedEdits:
    """The net effect of every edit of a media item (latest wins per target)."""

    speaker_names: dict[str, str] = field(default_factory=dict)
    texts: dict[tuple[str, int], str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    edit_ids: list[str] = field(default_factory=list)

    def metadata_over(self, metadata: MediaMetadata) -> MediaMetadata:
        return metadata.model_copy(update=self.metadata)

    def display_name(self, speaker: str | None) -> str | None:
        if speaker is None:
            return None
        return self.speaker_names.get(speaker, speaker)

    def as_document(self) -> dict[str, Any]:
        return {
            "speaker_names": dict(sorted(self.speaker_names.items())),
            "texts": [{"run_id": r, "seq": s, "text": t} for (r, s), t in sorted(self.texts.items())],
            "metadata": dict(sorted(self.metadata.items())),
            "edit_ids": self.edit_ids,
        }


def resolve(records: list[EditRecord]) -> AppliedEdits:
    applied = AppliedEdits()
    for record in sorted(records, key=lambda r: (r.created_at, r.edit_id)):
        payload = record.payload
        if record.kind == "rename-speaker":
            applied.speaker_names[payload["speaker"]] = payload["display_name"]
        elif record.kind == "correct-text":
            applied.texts[(payload["run_id"], payload["seq"])] = payload["text"]
        else:
            applied.metadata.update(payload)
        applied.edit_ids.append(record.edit_id)
    return applied
