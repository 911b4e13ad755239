"""SRT and WebVTT: parse into statements, and render statements the way Whisper's writers do."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mediavault.errors import InputError
from mediavault.formats.transcript import Statement, Transcript
from mediavault.formats.validate import FieldChecker

_SPEAKER_PREFIX = re.compile(r"^\[(?P<speaker>[^\]\n]{1,200})\]: ")
# Hours: up to 9 digits (over 100,000 years), so a timestamp always converts to a finite float.
_SRT_TIME = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d)[,.](\d{3})$")
_VTT_TIME = re.compile(r"^(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})$")


def _decode(data: bytes, file: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(file, f"byte {exc.start}", "is not valid UTF-8 text") from None
    if "\0" in text:
        raise InputError(file, f"character {text.index(chr(0))}", "contains a NUL character")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _seconds(match: re.Match[str]) -> float:
    hours, minutes, secs, millis = (int(g) if g else 0 for g in match.groups())
    return round(hours * 3600 + minutes * 60 + secs + millis / 1000, 3)


def _split_speaker(text: str) -> tuple[str | None, str]:
    match = _SPEAKER_PREFIX.match(text)
    if match:
        return match["speaker"], text[match.end() :]
    return None, text


def _parse_cues(
    text: str, file: str, time_re: re.Pattern[str], skip_header: bool, max_text_chars: int
) -> list[Statement]:
    check = FieldChecker(file, max_text_chars)
    lines = text.split("\n")
    statements: list[Statement] = []
    line_no = 0
    if skip_header:
        if not lines or not lines[0].startswith("WEBVTT"):
            raise InputError(file, "line 1", "a WebVTT file must start with 'WEBVTT'")
        while line_no < len(lines) and lines[line_no].strip():
            line_no += 1
    while line_no < len(lines):
        if not lines[line_no].strip():
            line_no += 1
            continue
        block_start = line_no
        block: list[str] = []
        while line_no < len(lines) and lines[line_no].strip():
            block.append(lines[line_no])
            line_no += 1
        if skip_header and block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing_index = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        cue_path = f"cue {len(statements) + 1} (line {block_start + 1})"
        if timing_index is None:
            raise InputError(file, cue_path, "has no 'start --> end' timing line")
        start_text, _, rest = block[timing_index].partition("-->")
        end_text = rest.strip().split(" ")[0] if rest.strip() else ""
        times = []
        for label, value in (("start", start_text.strip()), ("end", end_text)):
            match = time_re.match(value)
            if not match:
                raise InputError(file, f"{cue_path}.{label}", f"bad timestamp {value!r}")
            times.append(_seconds(match))
        check.time_range(times[0], times[1], cue_path)
        body = "\n".join(block[timing_index + 1 :])
        check.text(body, f"{cue_path}.text", required=False)
        speaker, body = _split_speaker(body)
        extra = {"cue_id": block[0]} if timing_index == 1 and skip_header else None
        statements.append(
            Statement(
                seq=len(statements), start=times[0], end=times[1], text=body, speaker=speaker, extra=extra
            )
        )
    return statements


def parse_srt(data: bytes, file: str, max_text_chars: int = 100_000) -> Transcript:
    statements = _parse_cues(_decode(data, file), file, _SRT_TIME, False, max_text_chars)
    return Transcript(format="srt", statements=statements)


def parse_vtt(data: bytes, file: str, max_text_chars: int = 100_000) -> Transcript:
    statements = _parse_cues(_decode(data, file), file, _VTT_TIME, True, max_text_chars)
    return Transcript(format="vtt", statements=statements)


def format_timestamp(seconds: float, always_include_hours: bool, decimal_marker: str) -> str:
    """Whisper's own timestamp formatting (milliseconds rounded)."""
    millis = round(seconds * 1000.0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1_000)
    hours_part = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_part}{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _no_arrow(text: str) -> str:
    # Repeat: a single pass turns "--->" into "-->".
    while "-->" in text:
        text = text.replace("-->", "->")
    return text


def _cue_text(statement: Statement) -> str:
    """The cue body, safe to embed: no blank or whitespace-only line (which would end the cue
    early and start another), no '-->' (a timing line), every line break a line feed."""
    text = statement.text.strip().replace("\r\n", "\n").replace("\r", "\n")
    text = _no_arrow("\n".join(line for line in text.split("\n") if line.strip()))
    if statement.speaker:
        speaker = _no_arrow(re.sub(r"[\r\n]+", " ", statement.speaker))
        return f"[{speaker}]: {text}"
    return text


def _cues(statements: Iterable[Statement]) -> Iterable[Statement]:
    return (s for s in statements if s.text.strip())


def render_srt(statements: Iterable[Statement]) -> str:
    parts = []
    for index, statement in enumerate(_cues(statements), start=1):
        start = format_timestamp(statement.start, True, ",")
        end = format_timestamp(statement.end, True, ",")
        parts.append(f"{index}\n{start} --> {end}\n{_cue_text(statement)}\n\n")
    return "".join(parts)


def render_vtt(statements: Iterable[Statement]) -> str:
    parts = ["WEBVTT\n\n"]
    for statement in _cues(statements):
        start = format_timestamp(statement.start, False, ".")
        end = format_timestamp(statement.end, False, ".")
        parts.append(f"{start} --> {end}\n{_cue_text(statement)}\n\n")
    return "".join(parts)


def render_txt(statements: Iterable[Statement]) -> str:
    return "".join(f"{_cue_text(s)}\n" for s in _cues(statements))
