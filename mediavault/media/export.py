"""Export a transcript or translation with user edits applied, as WhisperX JSON, SRT or VTT; and
any run's AI output (a summary, an original transcript file) byte-exact as it was received."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mediavault.errors import InputError, IntegrityError
from mediavault.formats import FORMATS, SUMMARY_FORMATS
from mediavault.formats.parquet import read_transcript
from mediavault.formats.subtitles import render_srt, render_txt, render_vtt
from mediavault.formats.transcript import Transcript
from mediavault.index.projection import load_applied_edits
from mediavault.media.alignment import align_words
from mediavault.vault import manifests
from mediavault.vault.base import Vault
from mediavault.vault.hashing import sha256_bytes
from mediavault.vault.models import Manifest, Run
from mediavault.vault.tiers import ArtifactReader

EXPORT_FORMATS = ("whisperx-json", "srt", "vtt", "txt")
ORIGINAL = "original"
"""The run's AI output as received (its primary output), byte-exact: the only export of a summary."""


def _run_of(vault: Vault, media_id: str, run_id: str | None) -> tuple[Manifest, Run]:
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        raise InputError(media_id, "media_id", "no such media item in the vault")
    run = manifest.run(run_id) if run_id else manifest.current_run()
    if run is None:
        raise InputError(media_id, "run_id", "no such run (or the media item has no AI output)")
    return manifest, run


def edited_transcript(vault: Vault, media_id: str, run_id: str | None = None) -> Transcript:
    """The run's transcript (default: the current transcript run) with text fixes and speaker names
    applied. A translation run exports the same way, in its target language."""
    manifest, run = _run_of(vault, media_id, run_id)
    if run.kind == "summary":
        raise InputError(
            run.run_id,
            "run_id",
            f"run {run.run_id} is a summary, not a transcript; export it as '{ORIGINAL}'",
        )
    artifacts = {a.kind: a for a in manifest.artifacts if a.run_id == run.run_id}
    for kind in ("statements", "words"):
        if artifacts.get(kind) is None or artifacts[kind].tier == "expired":
            raise InputError(run.run_id, "run_id", f"the run's {kind} expired under the retention policy")
    reader = ArtifactReader(vault)
    transcript = read_transcript(
        reader.read_bytes(artifacts["statements"]), reader.read_bytes(artifacts["words"])
    )
    if run.kind == "translation":
        transcript.language = run.language  # the target language, whatever the file declared
    applied = load_applied_edits(vault, manifest)
    for statement in transcript.statements:
        fixed = applied.texts.get((run.run_id, statement.seq))
        if fixed is not None:
            statement.text = (
                fixed if fixed.startswith(" ") or not statement.text.startswith(" ") else f" {fixed}"
            )
            statement.words = align_words(fixed, statement.words or [], statement.start, statement.end)
        statement.speaker = applied.display_name(statement.speaker)
        for word in statement.words or []:
            word.speaker = applied.display_name(word.speaker)
    return transcript


@dataclass(frozen=True)
class RunOutput:
    """One AI output of a run, byte-exact as received."""

    run: Run
    format: str
    data: bytes
    content_type: str
    extension: str


def run_output(
    vault: Vault, media_id: str, run_id: str | None = None, format_name: str | None = None
) -> RunOutput:
    """A run's AI output as received (default: its primary output), read back and checked against
    the SHA-256 the manifest recorded. A summary's Markdown or JSON comes back this way."""
    manifest, run = _run_of(vault, media_id, run_id)
    wanted = format_name or run.primary_format
    artifact = next(
        (
            a
            for a in manifest.artifacts
            if a.kind == "raw-output" and a.run_id == run.run_id and a.format == wanted
        ),
        None,
    )
    if artifact is None:
        stored = ", ".join(o.format for o in run.outputs)
        raise InputError(run.run_id, "format", f"the run has no {wanted!r} output; it has {stored}")
    if artifact.tier == "expired":
        raise InputError(run.run_id, "run_id", "the run's output expired under the retention policy")
    data = ArtifactReader(vault).read_bytes(artifact)
    if sha256_bytes(data) != artifact.sha256:
        raise IntegrityError(
            f"{artifact.key}: the stored bytes do not match the SHA-256 the manifest recorded"
        )
    extension = SUMMARY_FORMATS.get(wanted) or FORMATS.get(wanted) or "bin"
    return RunOutput(run, wanted, data, artifact.content_type, extension)


def export(vault: Vault, media_id: str, format_name: str, run_id: str | None = None) -> str:
    """A transcript or translation as whisperx-json, srt, vtt or txt (edits applied), or any run's
    primary output as received (``original``; a summary exports only this way)."""
    if format_name == ORIGINAL:
        return run_output(vault, media_id, run_id).data.decode("utf-8")  # validated UTF-8 at ingest
    if format_name not in EXPORT_FORMATS:
        raise InputError(format_name, "format", f"export formats: {', '.join((*EXPORT_FORMATS, ORIGINAL))}")
    transcript = edited_transcript(vault, media_id, run_id)
    if format_name == "whisperx-json":
        return json.dumps(transcript.to_json_obj(), ensure_ascii=False)
    render = {"srt": render_srt, "vtt": render_vtt, "txt": render_txt}[format_name]
    return render(transcript.statements)
