"""What readers of one media item see: metadata with edits applied, artifacts, runs and the
transcript, straight from the vault (the source of truth). Used by the HTTP API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mediavault.errors import InputError
from mediavault.formats.parquet import read_transcript
from mediavault.index.projection import load_applied_edits, media_document
from mediavault.media import edits as edits_module
from mediavault.media.alignment import align_words
from mediavault.vault import manifests
from mediavault.vault.base import Vault
from mediavault.vault.models import Artifact, Manifest
from mediavault.vault.tiers import ArtifactReader

MEDIA_ID = re.compile(r"[0-9a-f]{64}")


@dataclass
class MediaView:
    manifest: Manifest
    applied: edits_module.AppliedEdits
    document: dict[str, Any]  # the projection's media document: metadata after edits

    @property
    def owner(self) -> str | None:
        return self.document["owner"]

    @property
    def media(self) -> Artifact | None:
        return next((a for a in self.manifest.artifacts if a.kind == "media"), None)


def media_view(vault: Vault, media_id: str) -> MediaView | None:
    """The latest committed state of ``media_id``; None for a malformed or unknown id."""
    if not isinstance(media_id, str) or not MEDIA_ID.fullmatch(media_id):
        return None
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        return None
    applied = load_applied_edits(vault, manifest)
    return MediaView(manifest, applied, media_document(manifest, applied))


def detail(view: MediaView) -> dict[str, Any]:
    document = view.document
    return {
        "id": view.manifest.media_id,
        "manifest_version": view.manifest.version,
        "title": document["title"],
        "description": document.get("description"),
        "owner": document["owner"],
        "tags": document["tags"],
        "language": document["language"],
        "source_url": document["source_url"],
        "original_filename": document["original_filename"],
        "duration": document["duration_seconds"],
        "size": document["size"],
        "tier": document["tier"],
        "legal_hold": document["legal_hold"],
        "created": document["ingested_at"],
        "updated": document["updated_at"],
        "current_run": document["current_run"],
        "runs": document["runs"],
        "speakers": document["speakers"],
        "counts": document["counts"],
        "edits": document["edits"],
        "artifacts": [
            {
                "key": a.key,
                "kind": a.kind,
                "format": a.format,
                "run_id": a.run_id,
                "size": a.size,
                "sha256": a.sha256,
                "tier": a.tier,
                "content_type": a.content_type,
            }
            for a in view.manifest.artifacts
        ],
    }


def transcript(
    vault: Vault, view: MediaView, run_id: str | None = None, seqs: set[int] | None = None
) -> dict[str, Any]:
    """Speakers (label and display name) and statements with words and timings, edits applied
    (a corrected statement keeps the times of the words it did not change). ``seqs``: only these
    statements."""
    manifest = view.manifest
    run = manifest.run(run_id) if run_id else manifest.current_run()
    if run is None:
        raise InputError("query", "run", "no such run (or the media item has no AI output)")
    if run.kind == "summary":
        raise InputError("query", "run", "a summary has no timed statements; download it from /output")
    artifacts = {a.kind: a for a in manifest.artifacts if a.run_id == run.run_id}
    for kind in ("statements", "words"):
        if artifacts.get(kind) is None or artifacts[kind].tier == "expired":
            raise InputError("query", "run", f"the run's {kind} expired under the retention policy")
    reader = ArtifactReader(vault)
    parsed = read_transcript(
        reader.read_bytes(artifacts["statements"]), reader.read_bytes(artifacts["words"])
    )
    names = view.applied
    statements = []
    for statement in parsed.statements:
        if seqs is not None and statement.seq not in seqs:
            continue
        fixed = names.texts.get((run.run_id, statement.seq))
        words = statement.words or []
        if fixed is not None:
            words = align_words(fixed, words, statement.start, statement.end)
        statements.append(
            {
                "seq": statement.seq,
                "start": statement.start,
                "end": statement.end,
                "speaker": statement.speaker,
                "speaker_name": names.display_name(statement.speaker),
                "text": (fixed if fixed is not None else statement.text).strip(),
                "edited": fixed is not None,
                "words": [
                    {"word": w.word, "start": w.start, "end": w.end, "score": w.score, "speaker": w.speaker}
                    for w in words
                ],
            }
        )
    labels = sorted({s.speaker for s in parsed.statements if s.speaker})
    return {
        "id": manifest.media_id,
        "manifest_version": manifest.version,
        "run_id": run.run_id,
        "language": run.language,
        "speakers": [{"label": label, "display_name": names.display_name(label)} for label in labels],
        "statements": statements,
    }
