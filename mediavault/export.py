"""Export a transcript with user edits applied, as WhisperX JSON, SRT or VTT."""

from __future__ import annotations

import json

from mediavault import manifests
from mediavault.alignment import align_words
from mediavault.errors import InputError
from mediavault.formats.subtitles import render_srt, render_txt, render_vtt
from mediavault.formats.transcript import Transcript
from mediavault.parquet import read_transcript
from mediavault.projection import load_applied_edits
from mediavault.tiers import ArtifactReader
from mediavault.vault.base import Vault

EXPORT_FORMATS = ("whisperx-json", "srt", "vtt", "txt")


def edited_transcript(vault: Vault, media_id: str, run_id: str | None = None) -> Transcript:
    """The run's transcript (default: the current run) with text fixes and speaker names applied."""
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        raise InputError(media_id, "media_id", "no such media item in the vault")
    run = manifest.run(run_id) if run_id else manifest.current_run()
    if run is None:
        raise InputError(media_id, "run_id", "no such run (or the media item has no AI output)")
    artifacts = {a.kind: a for a in manifest.artifacts if a.run_id == run.run_id}
    reader = ArtifactReader(vault)
    transcript = read_transcript(
        reader.read_bytes(artifacts["statements"]), reader.read_bytes(artifacts["words"])
    )
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


def export(vault: Vault, media_id: str, format_name: str, run_id: str | None = None) -> str:
    if format_name not in EXPORT_FORMATS:
        raise InputError(format_name, "format", f"export formats: {', '.join(EXPORT_FORMATS)}")
    transcript = edited_transcript(vault, media_id, run_id)
    if format_name == "whisperx-json":
        return json.dumps(transcript.to_json_obj(), ensure_ascii=False)
    render = {"srt": render_srt, "vtt": render_vtt, "txt": render_txt}[format_name]
    return render(transcript.statements)
