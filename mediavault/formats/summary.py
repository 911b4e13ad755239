"""Summary and notes documents (Markdown or JSON): detected, validated, kept byte-exact.

A summary is not parsed into statements: it is checked to be what it claims (strict UTF-8 text
without control characters, or strict JSON) and of a bounded size, then stored as received.
"""

from __future__ import annotations

from mediavault.errors import InputError
from mediavault.formats.validate import control_character
from mediavault.formats.whisper_json import decode_json

SUMMARY_FORMATS: dict[str, str] = {"summary-markdown": "md", "summary-json": "json"}
"""Every supported summary format and the file extension it is stored with."""
SUMMARY_CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json"}
SUMMARY_RICHNESS = ["summary-markdown", "summary-json"]
MAX_SUMMARY_BYTES = 16 * 1024 * 1024
"""A summary is a short document; anything larger is not one (and is refused before reading)."""
MARKDOWN_SUFFIXES = (".md", ".markdown", ".txt")
_ALIASES = {"markdown": "summary-markdown", "md": "summary-markdown", "json": "summary-json"}


def summary_format_name(name: str) -> str:
    """A summary format as given by a user: ``markdown``/``md``/``json`` or the full name."""
    return _ALIASES.get(name.lower(), name)


def detect_summary_format(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(MARKDOWN_SUFFIXES):
        return "summary-markdown"
    if lower.endswith(".json"):
        return "summary-json"
    raise InputError(
        filename,
        "format",
        "unknown summary format; supported: Markdown or text (.md, .markdown, .txt) and JSON (.json). "
        "Pass the format explicitly (summary-markdown, summary-json) if the extension is unusual.",
    )


def validate_summary(format_name: str, data: bytes, file: str) -> None:
    """Raise InputError unless ``data`` is a non-empty Markdown/text or JSON document."""
    if format_name not in SUMMARY_FORMATS:
        raise InputError(
            file, "format", f"unknown summary format {format_name!r}; supported: {sorted(SUMMARY_FORMATS)}"
        )
    if len(data) > MAX_SUMMARY_BYTES:
        raise InputError(file, "size", f"is {len(data):,} bytes; a summary may have {MAX_SUMMARY_BYTES:,}")
    if format_name == "summary-json":
        decode_json(data, file)  # strict UTF-8 and JSON, bounded depth, storable strings
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(file, f"byte {exc.start}", "is not valid UTF-8 text") from None
    if not text.strip():
        raise InputError(file, "(document)", "is empty (only white space)")
    for line_no, line in enumerate(text.split("\n"), start=1):
        where = control_character(line.removesuffix("\r"))
        if where is not None:
            raise InputError(file, f"line {line_no}", f"contains a control character ({where})")
