"""AI output formats: detection, parsing (with validation) and rendering."""

from __future__ import annotations

from mediavault.errors import InputError
from mediavault.formats.subtitles import parse_srt, parse_vtt, render_srt, render_txt, render_vtt
from mediavault.formats.summary import (
    SUMMARY_CONTENT_TYPES,
    SUMMARY_FORMATS,
    SUMMARY_RICHNESS,
    detect_summary_format,
    validate_summary,
)
from mediavault.formats.transcript import Statement, Transcript, Word
from mediavault.formats.whisper_json import decode_json, looks_like_whisper, parse_whisper_json

FORMATS: dict[str, str] = {
    "whisperx-json": "json",
    "whisper-json": "json",
    "srt": "srt",
    "vtt": "vtt",
}
"""Every supported AI output format and the file extension it is stored with."""

# When one run brings several outputs, the richest one is normalized.
FORMAT_RICHNESS = ["whisperx-json", "whisper-json", "vtt", "srt"]


def detect_format(filename: str, data: bytes, display: str | None = None) -> str:
    """Pick the format from the file name, sniffing JSON content to tell WhisperX from Whisper.
    Errors name the file as ``display`` (its path or URL as given), else as ``filename``."""
    shown = display or filename
    lower = filename.lower()
    if lower.endswith(".srt"):
        return "srt"
    if lower.endswith(".vtt"):
        return "vtt"
    if lower.endswith(".json"):
        document = decode_json(data, shown)
        return "whisper-json" if looks_like_whisper(document) else "whisperx-json"
    raise InputError(
        shown,
        "format",
        "unknown AI output format; supported: WhisperX/Whisper JSON (.json), SRT (.srt), "
        "WebVTT (.vtt). Pass the format explicitly if the extension is unusual.",
    )


def parse_output(format_name: str, data: bytes, file: str, max_text_chars: int) -> Transcript:
    """Parse one AI output of a known format, validating every field."""
    if format_name in ("whisperx-json", "whisper-json"):
        return parse_whisper_json(data, file, format_name=format_name, max_text_chars=max_text_chars)
    if format_name == "srt":
        return parse_srt(data, file, max_text_chars)
    if format_name == "vtt":
        return parse_vtt(data, file, max_text_chars)
    raise InputError(file, "format", f"unknown format {format_name!r}; supported: {sorted(FORMATS)}")


__all__ = [
    "FORMATS",
    "FORMAT_RICHNESS",
    "SUMMARY_CONTENT_TYPES",
    "SUMMARY_FORMATS",
    "SUMMARY_RICHNESS",
    "Statement",
    "Transcript",
    "Word",
    "detect_format",
    "detect_summary_format",
    "parse_output",
    "render_srt",
    "render_txt",
    "render_vtt",
    "validate_summary",
]
