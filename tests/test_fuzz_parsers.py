"""Fuzzed parsers: hostile WhisperX/Whisper JSON, SRT and VTT, made by mutating the real fixtures
and by structured generation.

Properties: ``parse_output`` returns a Transcript or raises InputError, nothing else. At the
ingest level, a rejected input leaves the vault's key listing exactly as it was; an accepted one
round-trips (its Parquet rebuilds the same statements, and our SRT/VTT renderings re-parse to the
same cues at the same times).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mediavault.errors import InputError
from mediavault.formats import Transcript, detect_format, parse_output
from mediavault.formats.parquet import read_transcript
from mediavault.formats.subtitles import format_timestamp
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA

pytestmark = pytest.mark.hardening

MAX_TEXT_CHARS = 100_000
EXTENSIONS = {"whisperx-json": "json", "whisper-json": "json", "srt": "srt", "vtt": "vtt"}
# The fixtures that belong to the JFK sample (11 s), so accepted ones pass the duration check;
# the others are fuzzed at the parse level only.
JFK_FIXTURES = ["whisper_en_jfk.json", "whisper_en_jfk.srt", "whisper_en_jfk.vtt"]
FIXTURES = {path.name: path.read_bytes() for path in sorted(REAL.iterdir()) if path.suffix != ".md"}
FIXTURES = {name: data for name, data in FIXTURES.items() if not name.endswith(".flac")}
SMALL_FIXTURES = [name for name, data in FIXTURES.items() if len(data) < 25_000]

# --- hostile values ----------------------------------------------------------------------------

HUGE_NUMBERS = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400, 1e308, -1e308, 5e-324, 2**63 - 1]
HOSTILE_STRINGS = [
    "",
    " ",
    "\n\n",
    "a\n\nb",
    "a\r\n\r\nb",
    "x --> y",
    "--->",
    "00:00:01,000 --> 00:00:02,000",
    "\x00",
    "\x07bell",
    "\x1b[31mred",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ud800",
    "[SPEAKER_01]: hi",
    "WEBVTT",
    "NOTE x",
    "S" * 201,
    "x" * 40_000,
    "y" * (MAX_TEXT_CHARS + 1),
]
hostile_scalars = st.one_of(
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(HOSTILE_STRINGS),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


# One bad value where a good one was: what a broken tool (or an attacker) writes.
DEEP = "\x00deep:{}\x00"
"""Stands for arrays nested this deep; spliced in after serializing (json.dumps would recurse)."""
POISONS: list[Any] = [
    DEEP.format(5_000),
    10**400,
    {"0": {}},
    *HUGE_NUMBERS,
    *HOSTILE_STRINGS,
    [[]],
    DEEP.format(65),
]
poison_values = st.sampled_from(POISONS)


def serialize(draw: st.DrawFn, document: Any, nonfinite: bool = True) -> bytes:
    """JSON text as tools write it: compact or indented, sometimes CRLF, a BOM or non-finite numbers."""
    style = draw(st.sampled_from(["compact", "indent", "crlf", "bom", *(["nonfinite"] if nonfinite else [])]))
    if style == "nonfinite":
        slots = _containers(document)
        if slots:
            container, key = draw(st.sampled_from(slots))
            container[key] = draw(st.sampled_from([math.inf, -math.inf, math.nan]))
    indent = 2 if style in ("indent", "crlf") else None
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # a lone surrogate: write it as the JSON escape a tool would
        encoded = json.dumps(document, indent=indent).encode()
    for levels in (65, 5_000):
        sentinel = json.dumps(DEEP.format(levels)).encode()
        encoded = encoded.replace(sentinel, b"[" * levels + b"]" * levels)
    if style == "crlf":
        encoded = encoded.replace(b"\n", b"\r\n")
    if style == "bom":
        encoded = b"\xef\xbb\xbf" + encoded
    return encoded


# --- byte-level mutations ----------------------------------------------------------------------

SNIPPETS = [
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"\x00",
    b"\x07",
    b"\xff\xfe",
    b"\xc3",
    b"-->",
    b" --> ",
    b"1e400",
    b"-1e999",
    b"99999999999999999999999",
    b"NaN",
    b"Infinity",
    b'"\\ud800"',
    b"[" * 5000,
    b"{" * 50,
    b"null",
    b"true",
    b'""',
    b"[]",
    b"{}",
    b",",
    b":",
    b'"',
    b"99999999999:00:00,000",
    b"WEBVTT\n\n",
    b"x" * 5000,
]


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """1-4 byte-level edits: truncate, flip, insert a hostile snippet, delete or duplicate a span."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate", "crlf", "bom"]))
        position = draw(st.integers(0, len(out)))
        if kind == "truncate":
            del out[position:]
        elif kind == "flip" and position < len(out):
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[position:position] = draw(st.sampled_from(SNIPPETS))
        elif kind == "delete":
            del out[position : position + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            out[position:position] = out[position : position + draw(st.integers(1, 256))]
        elif kind == "crlf":
            out = bytearray(bytes(out).replace(b"\n", b"\r\n"))
        elif kind == "bom":
            out[0:0] = b"\xef\xbb\xbf"
    return bytes(out)


# --- structured JSON mutations -----------------------------------------------------------------


def _containers(document: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) slot in a JSON document."""
    slots: list[tuple[Any, Any]] = []
    stack = [document]
    while stack:
        value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            slots.append((value, key))
            if isinstance(item, dict | list):
                stack.append(item)
    return slots


@st.composite
def mutated_json(draw: st.DrawFn, data: bytes) -> bytes:
    """Replace, delete or add values at random places of a real document, then re-serialize it
    (sometimes with CRLF, a BOM or non-finite numbers)."""
    document = json.loads(data)
    for _ in range(draw(st.integers(1, 4))):
        slots = _containers(document)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["poison", "poison", "replace", "swap-type", "delete", "add"]))
        if action == "poison":
            container[key] = draw(poison_values)
        elif action == "replace":
            container[key] = draw(json_values)
        elif action == "swap-type":
            current = container[key]
            container[key] = draw(
                st.sampled_from([str(current)[:20], [current], {"v": current}, None, True, 0, 1.5])
            )
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            field = draw(st.sampled_from(["speaker", "language", "tokens", "id", "seek", "zz"]))
            container[field] = draw(st.one_of(poison_values, json_values))
    return serialize(draw, document)


# --- structured generation ---------------------------------------------------------------------

# Each generated document is either tame (plausible times inside the 11 s sample and legal but
# tricky texts, so an ingest can accept it and the round trip is exercised) or wild (anything).
plausible_times = st.one_of(st.floats(0, 11, allow_nan=False), st.integers(0, 11))
wild_times = st.one_of(plausible_times, st.sampled_from([-1.0, 1e20, *HUGE_NUMBERS]))
TRICKY_TEXTS = [
    "a\n\nb",
    "a\r\n\r\nb",
    "a\rb",
    "line one\n \t \nline two",
    "x\n\u3000\ny",
    "\u2028",
    "x --> y",
    "--->",
    "00:00:01,000 --> 00:00:02,000",
    "1\n00:00:05,000 --> 00:00:06,000\ninjected",
    "WEBVTT\n\nNOTE hidden",
    "[SPEAKER_01]: hi",
    "S" * 201,
    "x" * 40_000,
    "",
    " ",
]
legal_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60)
tame_texts = st.one_of(legal_text, st.sampled_from(TRICKY_TEXTS))
wild_texts = st.one_of(st.text(max_size=60), tame_texts, st.sampled_from(HOSTILE_STRINGS))
tame_speakers = st.one_of(st.none(), st.sampled_from(["SPEAKER_00", "SPEAKER_01", "Ana María", "]"]))
wild_speakers = st.one_of(tame_speakers, wild_texts)
scores = st.floats(0, 1)
tokens = st.one_of(st.integers(0, 51_000), st.sampled_from(HUGE_NUMBERS))


def later(start: Any, times: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An end time at or after ``start``; for wild ``times``, sometimes anything they give."""
    if isinstance(start, int | float) and 0 <= start <= 11:
        after = st.one_of(st.just(start), st.floats(start, 11.0))
        return after if times is plausible_times else st.one_of(after, after, times)
    return times


@st.composite
def generated_whisper_json(draw: st.DrawFn, mode: str | None = None) -> bytes:
    """WhisperX/Whisper JSON: 'tame' (valid, with tricky but legal texts), 'poisoned' (tame plus
    one hostile value) or 'wild' (hostile anywhere)."""
    mode = mode or draw(st.sampled_from(["tame", "poisoned", "wild"]))
    tame = mode != "wild"
    times = plausible_times if tame else wild_times
    texts = tame_texts if tame else wild_texts
    speakers = tame_speakers if tame else wild_speakers
    huge = st.nothing() if tame else st.sampled_from(HUGE_NUMBERS)
    segments = []
    for index in range(draw(st.integers(1 if mode == "poisoned" else 0, 5))):
        start = draw(times)
        segment: dict[str, Any] = {"start": start, "end": draw(later(start, times)), "text": draw(texts)}
        if draw(st.booleans()):
            segment["speaker"] = draw(speakers)
        if draw(st.booleans()):
            word_count = draw(st.integers(0, 3))
            segment["words"] = []
            for _ in range(word_count):
                word_start = draw(times)
                word = {"word": draw(texts), "start": word_start, "end": draw(later(word_start, times))}
                segment["words"].append({**word, "score": draw(scores), "speaker": draw(speakers)})
        if draw(st.booleans()):  # Whisper decoder fields
            segment.update(
                id=draw(st.one_of(st.just(index), huge)),
                seek=draw(st.one_of(st.integers(0, 2**40), huge)),
                tokens=draw(st.lists(st.one_of(st.integers(0, 51_000), huge), max_size=4)),
                temperature=0.0,
                avg_logprob=draw(st.floats(-5, 0)),
            )
        if draw(st.booleans()):
            segment[draw(st.text(min_size=1, max_size=6))] = draw(legal_text if tame else json_values)
        segments.append(segment)
    document: dict[str, Any] = {"segments": segments}
    if draw(st.booleans()):
        languages = st.sampled_from(["en", "fr", "x" * 35, None])
        document["language"] = draw(languages if tame else st.one_of(languages, st.just("x" * 36), texts))
    if draw(st.booleans()):
        document["word_segments"] = [w for s in segments for w in s.get("words", [])]
    if mode == "poisoned":
        if draw(st.booleans()):
            segment = draw(st.sampled_from(segments))
            field = draw(
                st.sampled_from(["tokens", "id", "seek", "speaker", "text", "start", "end", "words"])
            )
            poison = draw(poison_values)
            segment[field] = [poison] if field == "tokens" and draw(st.booleans()) else poison
        else:
            container, key = draw(st.sampled_from(_containers(document)))
            container[key] = draw(poison_values)
    return serialize(draw, document, nonfinite=mode != "tame")


@st.composite
def generated_subtitles(draw: st.DrawFn, vtt: bool) -> bytes:
    tame = draw(st.booleans())
    times = plausible_times if tame else wild_times
    texts = tame_texts if tame else wild_texts
    speakers = tame_speakers if tame else wild_speakers

    def stamp(value: Any) -> str:
        if isinstance(value, int | float) and 0 <= value < 1e9:
            return format_timestamp(value, not vtt or draw(st.booleans()), "." if vtt else ",")
        return str(value)

    lines = ["WEBVTT", ""] if vtt else []
    for index in range(1, draw(st.integers(0, 5)) + 1):
        start = draw(times)
        end = draw(later(start, times))
        if not vtt or draw(st.booleans()):
            lines.append(str(index) if tame or draw(st.booleans()) else draw(texts))
        lines.append(f"{stamp(start)} --> {stamp(end)}" + draw(st.sampled_from(["", " align:start"])))
        speaker = draw(speakers)
        body = draw(texts)
        if tame:  # a tame file is well-formed: one cue's text has no blank line or arrow
            body = "\n".join(line for line in body.splitlines() if line.strip()).replace("-->", "=>") or "x"
        lines.append(f"[{speaker}]: {body}" if speaker else body)
        lines.append("")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines)
    try:
        encoded = text.encode()
    except UnicodeEncodeError:
        encoded = text.encode("utf-8", "surrogatepass")  # invalid UTF-8, as a broken tool writes it
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + encoded


# --- properties --------------------------------------------------------------------------------


def parse_or_reject(format_name: str, data: bytes, file: str) -> Transcript | None:
    """The property: a Transcript or an InputError naming the file, and nothing else."""
    try:
        transcript = parse_output(format_name, data, file, MAX_TEXT_CHARS)
    except InputError as exc:
        assert exc.file == file and exc.field, exc
        return None
    assert isinstance(transcript, Transcript)
    return transcript


def detect_and_parse(name: str, data: bytes) -> Transcript | None:
    try:
        format_name = detect_format(name, data)
    except InputError as exc:
        assert exc.file == name, exc
        return None
    return parse_or_reject(format_name, data, name)


def format_of(name: str) -> str:
    if name.endswith(".srt"):
        return "srt"
    if name.endswith(".vtt"):
        return "vtt"
    return "whisper-json" if name.startswith(("whisper_", "fasterwhisper_")) else "whisperx-json"


@given(name=st.sampled_from(sorted(FIXTURES)), data=st.data())
def test_mutated_real_fixtures_parse_or_are_rejected(name: str, data: st.DataObject) -> None:
    original = FIXTURES[name]
    if name.endswith(".json") and data.draw(st.booleans()):
        mutated = data.draw(mutated_json(original))
    else:
        mutated = data.draw(mutated_bytes(original))
    for format_name in {format_of(name), "whisperx-json", "srt", "vtt"}:
        parse_or_reject(format_name, mutated, name)
    detect_and_parse(name, mutated)


@given(data=generated_whisper_json())
def test_generated_whisper_json_parses_or_is_rejected(data: bytes) -> None:
    for format_name in ("whisperx-json", "whisper-json"):
        parse_or_reject(format_name, data, "generated.json")
    detect_and_parse("generated.json", data)


@given(vtt=st.booleans(), data=st.data())
def test_generated_subtitles_parse_or_are_rejected(vtt: bool, data: st.DataObject) -> None:
    content = data.draw(generated_subtitles(vtt))
    parse_or_reject("vtt" if vtt else "srt", content, "generated.vtt" if vtt else "generated.srt")


# --- ingest level ------------------------------------------------------------------------------


@st.composite
def poisoned_jfk(draw: st.DrawFn) -> bytes:
    """The real JFK output with one field given a value of a type-aware hostile kind."""
    document = json.loads(FIXTURES["whisper_en_jfk.json"])
    segment = document["segments"][0]
    field = draw(st.sampled_from(["tokens", "id", "seek", "start", "text", "speaker", "language", "any"]))
    integers = st.sampled_from(HUGE_NUMBERS)
    strings = st.one_of(st.sampled_from(TRICKY_TEXTS), st.sampled_from(HOSTILE_STRINGS))
    if field == "tokens":
        segment["tokens"][draw(st.integers(0, len(segment["tokens"]) - 1))] = draw(integers)
    elif field in ("id", "seek", "start"):
        segment[field] = draw(st.one_of(integers, integers, poison_values))
    elif field in ("text", "speaker"):
        segment[field] = draw(st.one_of(strings, strings, poison_values))
    elif field == "language":
        document["language"] = draw(st.one_of(strings, st.sampled_from(["x" * 35, "x" * 36, "e" * 40_000])))
    else:
        container, key = draw(st.sampled_from(_containers(document)))
        container[key] = draw(poison_values)
    return serialize(draw, document)


@st.composite
def hostile_output(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name and content: the JFK fixture with one poisoned field, a mutated JFK fixture, or a
    generated document."""
    sources = ["poisoned", "poisoned", "generated-json", "generated-json", "mutated", "generated-srt"]
    source = draw(st.sampled_from([*sources, "generated-vtt"]))
    if source == "poisoned":
        return "whisper_en_jfk.json", draw(poisoned_jfk())
    if source == "mutated":
        name = draw(st.sampled_from(JFK_FIXTURES))
        original = FIXTURES[name]
        if name.endswith(".json") and draw(st.booleans()):
            return name, draw(mutated_json(original))
        return name, draw(mutated_bytes(original))
    if source == "generated-json":
        return "generated.json", draw(generated_whisper_json())
    vtt = source == "generated-vtt"
    return ("generated.vtt" if vtt else "generated.srt"), draw(generated_subtitles(vtt))


def assert_round_trips(vault: LocalVault, media_id: str, run_id: str, transcript: Transcript) -> None:
    manifest = manifests.latest_manifest(vault, media_id)
    artifacts = {a.kind: a for a in manifest.artifacts if a.run_id == run_id}
    rebuilt = read_transcript(
        vault.get_bytes(artifacts["statements"].key), vault.get_bytes(artifacts["words"].key)
    )
    assert rebuilt.statements == transcript.statements
    if transcript.format.endswith("json"):
        assert rebuilt.to_json_obj() == transcript.to_json_obj()
    cued = [s for s in transcript.statements if s.text.strip()]
    expected = [round(t * 1000) / 1000 for s in cued for t in (s.start, s.end)]
    for kind in ("srt", "vtt"):
        rendered = vault.get_bytes(artifacts[kind].key)
        # Our own rendering: the speaker prefix may take a text at the limit just past it.
        cues = parse_output(kind, rendered, kind, MAX_TEXT_CHARS + 1_000).statements
        seen = [t for c in cues for t in (c.start, c.end)]
        assert seen == pytest.approx(expected, abs=1e-9), rendered[:2000]
        assert rendered.count(b"-->") == len(cues), "'-->' only on timing lines"


def ingest_one(tmp_path: Path, name: str, content: bytes) -> bool:
    """Ingest one output with the JFK sample into the example's vault; check the property.
    Returns whether it was accepted."""
    vault = LocalVault(tmp_path / "vault", fsync=False)
    settings = MediavaultSettings(home=tmp_path / "home", vault_url=vault.url, mongo_mode="disabled")
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    path = inputs / name
    path.write_bytes(content)
    before = list(vault.list_keys(""))
    note(f"{name}: {content[:300]!r}")
    try:
        result = ingest(vault, IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(path))]), settings)
    except InputError as exc:
        # Format detection names the file by its base name, parsing by the location given.
        assert exc.file in (str(path), name, str(JFK_MEDIA)), exc
        assert list(vault.list_keys("")) == before, f"a rejected input wrote objects: {exc}"
        assert list(vault.staging_leftovers()) == []
        event(f"ingest rejected: {exc.field.split('[')[0].split(' ')[0][:20]}")
        return False
    event("ingest accepted")
    transcript = parse_output(detect_format(name, content), content, name, MAX_TEXT_CHARS)
    assert result.statement_count == len(transcript.statements)
    assert_round_trips(vault, result.media_id, result.run_id, transcript)
    return True


@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(output=hostile_output())
def test_ingest_rejects_without_writing_or_round_trips(tmp_path: Path, output: tuple[str, bytes]) -> None:
    ingest_one(tmp_path, *output)


@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=generated_whisper_json(mode="tame"))
def test_legal_but_tricky_outputs_are_accepted_and_round_trip(tmp_path: Path, content: bytes) -> None:
    """Blank lines, '-->', CR/CRLF and odd Unicode whitespace in texts are legal: the ingest keeps
    them in the data, and our renderings stay well-formed."""
    assert ingest_one(tmp_path, "tame.json", content)
