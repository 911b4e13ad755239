"""Parse WhisperX, openai-whisper and faster-whisper JSON into a Transcript."""

from __future__ import annotations

import json
import math
from typing import Any

from mediavault.errors import InputError
from mediavault.formats.transcript import (
    SEGMENT_KNOWN,
    SEGMENT_NUMBER_FIELDS,
    WORD_KNOWN,
    Statement,
    Transcript,
    Word,
)
from mediavault.formats.validate import MAX_LANGUAGE_CHARS, MAX_SPEAKER_CHARS, FieldChecker

MAX_JSON_DEPTH = 64
"""Real outputs nest about six levels deep; deeper documents are hostile (and recursion-prone)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of the 64-bit floating point range")
    return value


def _json_path(path: tuple[str | int, ...]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(document)"


def _unencodable(value: str) -> bool:
    """Lone surrogates (a JSON escape like \\ud800 alone) cannot be stored as UTF-8."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_structure(document: Any, file: str) -> None:
    """Nesting depth and storable strings everywhere, keys included (iterative: no recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _unencodable(value):
                raise InputError(file, _json_path(path), "contains an unpaired UTF-16 surrogate escape")
            continue
        if not isinstance(value, dict | list):
            continue
        if len(path) >= MAX_JSON_DEPTH:
            raise InputError(file, _json_path(path), f"nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
            continue
        for key, item in value.items():
            if _unencodable(key):
                raise InputError(file, _json_path(path), "has a key with an unpaired UTF-16 surrogate escape")
            stack.append((item, (*path, key)))


def decode_json(data: bytes, file: str) -> Any:
    """Strict UTF-8 + strict JSON (no NaN/Infinity). Errors name the file and position."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(file, f"byte {exc.start}", "is not valid UTF-8 text") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InputError(file, "(document)", f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        at_end = exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
        hint = " (the file looks truncated)" if at_end else ""
        raise InputError(file, where, f"invalid JSON: {exc.msg}{hint}") from None
    except ValueError as exc:
        raise InputError(file, "(document)", str(exc)) from None
    _check_structure(document, file)
    return document


def looks_like_whisper(document: Any) -> bool:
    """openai-whisper / faster-whisper segments carry decoder fields (tokens, seek)."""
    segments = document.get("segments") if isinstance(document, dict) else None
    return (
        isinstance(segments, list)
        and bool(segments)
        and isinstance(segments[0], dict)
        and ("tokens" in segments[0] or "seek" in segments[0])
    )


def _parse_word(check: FieldChecker, raw: Any, path: str) -> Word:
    if not isinstance(raw, dict):
        raise check.fail(path, f"must be an object, got {type(raw).__name__}")
    start = check.number(raw.get("start"), f"{path}.start", required=False, non_negative=True)
    end = check.number(raw.get("end"), f"{path}.end", required=False, non_negative=True)
    check.time_range(start, end, path)
    extra = {k: v for k, v in raw.items() if k not in WORD_KNOWN}
    return Word(
        word=check.text(raw.get("word"), f"{path}.word", required=True) or "",
        start=start,
        end=end,
        score=check.number(raw.get("score"), f"{path}.score", required=False, non_negative=False),
        probability=check.number(
            raw.get("probability"), f"{path}.probability", required=False, non_negative=False
        ),
        speaker=check.label(raw.get("speaker"), f"{path}.speaker", MAX_SPEAKER_CHARS),
        extra=extra or None,
    )


def _parse_segment(check: FieldChecker, raw: Any, seq: int) -> Statement:
    path = f"segments[{seq}]"
    if not isinstance(raw, dict):
        raise check.fail(path, f"must be an object, got {type(raw).__name__}")
    start = check.number(raw.get("start"), f"{path}.start", required=True, non_negative=True)
    end = check.number(raw.get("end"), f"{path}.end", required=True, non_negative=True)
    check.time_range(start, end, path)
    words_raw = raw.get("words")
    words: list[Word] | None = None
    extra = {k: v for k, v in raw.items() if k not in SEGMENT_KNOWN}
    if isinstance(words_raw, list):
        words = [_parse_word(check, w, f"{path}.words[{i}]") for i, w in enumerate(words_raw)]
    elif words_raw is None and "words" in raw:
        extra["words"] = None
    elif words_raw is not None:
        raise check.fail(f"{path}.words", f"must be a list, got {type(words_raw).__name__}")
    tokens = check.integer_list(raw.get("tokens"), f"{path}.tokens")
    numbers = {
        name: check.number(raw.get(name), f"{path}.{name}", required=False, non_negative=False)
        for name in SEGMENT_NUMBER_FIELDS
    }
    return Statement(
        seq=seq,
        start=start or 0.0,
        end=end or 0.0,
        text=check.text(raw.get("text"), f"{path}.text", required=True) or "",
        speaker=check.label(raw.get("speaker"), f"{path}.speaker", MAX_SPEAKER_CHARS),
        words=words,
        segment_id=check.integer(raw.get("id"), f"{path}.id"),
        seek=check.integer(raw.get("seek"), f"{path}.seek"),
        tokens=tokens,
        extra=extra or None,
        **numbers,
    )


def parse_whisper_json(
    data: bytes, file: str, *, format_name: str | None = None, max_text_chars: int = 100_000
) -> Transcript:
    """Parse and validate WhisperX or Whisper JSON; raise InputError naming file and field."""
    document = decode_json(data, file)
    check = FieldChecker(file, max_text_chars)
    if not isinstance(document, dict):
        raise check.fail("(document)", f"must be a JSON object, got {type(document).__name__}")
    segments = document.get("segments")
    if not isinstance(segments, list):
        raise check.fail("segments", "is required and must be a list of segment objects")
    statements = [_parse_segment(check, raw, seq) for seq, raw in enumerate(segments)]
    language = check.label(document.get("language"), "language", MAX_LANGUAGE_CHARS)
    top_level = {k: v for k, v in document.items() if k not in ("segments", "word_segments")}
    transcript = Transcript(
        format=format_name or ("whisper-json" if looks_like_whisper(document) else "whisperx-json"),
        statements=statements,
        language=language,
        top_level=top_level,
    )
    if "word_segments" in document:
        word_segments = document["word_segments"]
        if word_segments == transcript.all_words():
            transcript.word_segments = "flattened"
        else:
            if not isinstance(word_segments, list):
                raise check.fail("word_segments", "must be a list")
            for i, w in enumerate(word_segments):
                _parse_word(check, w, f"word_segments[{i}]")
            transcript.top_level["word_segments"] = word_segments
    return transcript
