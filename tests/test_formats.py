"""Formats against real WhisperX / Whisper / faster-whisper outputs (tests/fixtures/real)."""

from __future__ import annotations

import json
import wave

import pyarrow.parquet as pq
import pytest

from mediavault import SCHEMA_VERSION
from mediavault.errors import InputError
from mediavault.formats import Statement, detect_format, parse_output, render_srt, render_vtt
from mediavault.formats.parquet import (
    STATEMENTS_SCHEMA,
    WORDS_SCHEMA,
    read_transcript,
    statements_table,
    table_to_parquet_bytes,
    words_table,
)
from tests.conftest import REAL

JSON_FIXTURES = sorted(p.name for p in REAL.glob("*.json"))
SUBTITLE_FIXTURES = sorted(p.name for p in [*REAL.glob("*.srt"), *REAL.glob("*.vtt")])
MEDIA, RUN = "0" * 64, "1" * 32


def parse_fixture(name: str):
    data = (REAL / name).read_bytes()
    return parse_output(detect_format(name, data), data, name, 100_000)


@pytest.mark.parametrize("name", JSON_FIXTURES)
def test_parquet_keeps_everything_the_json_said(name: str) -> None:
    transcript = parse_fixture(name)
    s_bytes = table_to_parquet_bytes(statements_table(transcript, MEDIA, RUN, "ab"))
    w_bytes = table_to_parquet_bytes(words_table(transcript, MEDIA, RUN, "ab"))
    rebuilt = read_transcript(s_bytes, w_bytes)
    assert rebuilt.to_json_obj() == json.loads((REAL / name).read_bytes())


@pytest.mark.parametrize("name", JSON_FIXTURES)
def test_parquet_files_have_explicit_schema_zstd_and_version(name: str) -> None:
    import pyarrow as pa

    transcript = parse_fixture(name)
    data = table_to_parquet_bytes(statements_table(transcript, MEDIA, RUN, "ab"))
    parquet_file = pq.ParquetFile(pa.BufferReader(data))
    assert parquet_file.schema_arrow.remove_metadata() == STATEMENTS_SCHEMA
    assert parquet_file.metadata.row_group(0).column(0).compression == "ZSTD"
    meta = parquet_file.schema_arrow.metadata
    assert meta[b"mediavault.schema_version"] == str(SCHEMA_VERSION).encode()
    words = pq.read_table(pa.BufferReader(table_to_parquet_bytes(words_table(transcript, MEDIA, RUN, "ab"))))
    assert words.schema.remove_metadata() == WORDS_SCHEMA


def test_untimed_words_are_kept_with_null_timestamps() -> None:
    transcript = parse_fixture("whisperx_en_numbers_untimed.json")
    table = words_table(transcript, MEDIA, RUN, "ab").to_pylist()
    untimed = [row["word"] for row in table if row["start"] is None]
    assert len(untimed) == 16
    assert "60" in untimed and "2026." in untimed


def test_quirks_of_real_whisperx_output_survive() -> None:
    french = parse_fixture("whisperx_fr_call_diarized.json")
    assert french.language == "en", "the file says en although the text is French; keep it"
    assert french.statements[0].text == " Bonjour.", "leading space is kept in the data"
    assert french.word_segments == "flattened"
    nospeaker = parse_fixture("whisperx_en_call2_nospeaker.json")
    assert all(s.speaker is None for s in nospeaker.statements)
    board = parse_fixture("whisperx_en_schoolboard_diarized.json")
    assert any("Qeˀciyéẁyéẁ" in s.text for s in board.statements)
    catalan = parse_fixture("fasterwhisper_ca_diarized.json")
    assert all(s.words is None and s.extra == {"words": None} for s in catalan.statements)


@pytest.mark.parametrize("name", SUBTITLE_FIXTURES)
def test_subtitles_parse_and_render_back_byte_exact(name: str) -> None:
    transcript = parse_fixture(name)
    rendered = (
        render_srt(transcript.statements) if name.endswith(".srt") else render_vtt(transcript.statements)
    )
    assert rendered == (REAL / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "json_name",
    [
        "whisperx_fr_call_diarized",
        "whisperx_en_numbers_untimed",
        "whisper_en_jfk",
        "whisperx_en_call2_nospeaker",
        "fasterwhisper_ca_diarized",
    ],
)
def test_rendering_from_json_matches_the_tools_own_subtitles(json_name: str) -> None:
    transcript = parse_fixture(f"{json_name}.json")
    assert render_srt(transcript.statements) == (REAL / f"{json_name}.srt").read_text()
    vtt = REAL / f"{json_name}.vtt"
    if vtt.exists():
        assert render_vtt(transcript.statements) == vtt.read_text()


# --- poison pills: rejected at parse time, before anything is written --------------------------

SEGMENT = {"start": 0.5, "end": 2.0, "text": " Hello.", "speaker": "SPEAKER_00", "id": 0, "seek": 0}


def whisper_json(segments: list, **top) -> bytes:
    return json.dumps({"segments": segments, "language": "en", **top}).encode()


POISON_JSON = {
    "token above int64": (whisper_json([{**SEGMENT, "tokens": [50364, 2**63]}]), "segments[0].tokens[1]"),
    "token below int64": (whisper_json([{**SEGMENT, "tokens": [-(2**63) - 1]}]), "segments[0].tokens[0]"),
    "id above int64": (whisper_json([{**SEGMENT, "id": 2**64}]), "segments[0].id"),
    "seek above int64": (whisper_json([{**SEGMENT, "seek": 10**30}]), "segments[0].seek"),
    "tokens not a list": (whisper_json([{**SEGMENT, "tokens": "1 2"}]), "segments[0].tokens"),
    "start too large for a float": (whisper_json([{**SEGMENT, "start": 10**400}]), "segments[0].start"),
    "float literal overflows": (b'{"segments": [{"start": 1e400, "end": 2, "text": "x"}]}', "(document)"),
    "huge number in an unmodelled key": (b'{"segments": [], "x": -1e999}', "(document)"),
    "speaker label of 40 kB": (whisper_json([{**SEGMENT, "speaker": "S" * 40_000}]), "segments[0].speaker"),
    "word speaker of 201 chars": (
        whisper_json([{**SEGMENT, "words": [{"word": "a", "speaker": "S" * 201}]}]),
        "segments[0].words[0].speaker",
    ),
    "speaker with a line break": (whisper_json([{**SEGMENT, "speaker": "A\nB"}]), "segments[0].speaker"),
    "language of 40 kB": (whisper_json([SEGMENT], language="e" * 40_000), "language"),
    "language of 36 chars": (whisper_json([SEGMENT], language="e" * 36), "language"),
    "control character in text": (whisper_json([{**SEGMENT, "text": "a\x1bb"}]), "segments[0].text"),
    "C1 control in a word": (
        whisper_json([{**SEGMENT, "words": [{"word": "a\x85"}]}]),
        "segments[0].words[0].word",
    ),
    "deep nesting": (b'{"segments": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "(document)"),
    "nesting past the limit": (b'{"segments": [], "x": ' + b"[" * 70 + b"]" * 70 + b"}", "x[0][0][0][0]"),
    "lone surrogate in text": (
        b'{"segments": [{"start": 0, "end": 1, "text": "a\\ud800"}]}',
        "segments[0].text",
    ),
    "lone surrogate in a key": (b'{"segments": [], "top": {"\\udc00": 1}}', "top"),
    "segments is an object": (b'{"segments": {"0": {}}}', "segments"),
}


@pytest.mark.parametrize("case", sorted(POISON_JSON))
def test_poison_json_is_one_clear_input_error(case: str) -> None:
    data, field = POISON_JSON[case]
    for format_name in ("whisperx-json", "whisper-json"):
        with pytest.raises(InputError) as caught:
            parse_output(format_name, data, "poison.json", 100_000)
        assert caught.value.file == "poison.json" and caught.value.field.startswith(field), caught.value
    with pytest.raises(InputError):  # detection, then parsing, as ingest does
        parse_output(detect_format("poison.json", data), data, "poison.json", 100_000)


def test_limits_are_said_in_the_error() -> None:
    with pytest.raises(InputError, match="exceeds the limit of 200"):
        parse_output("whisperx-json", POISON_JSON["speaker label of 40 kB"][0], "p.json", 100_000)
    with pytest.raises(InputError, match="exceeds the limit of 35"):
        parse_output("whisperx-json", POISON_JSON["language of 36 chars"][0], "p.json", 100_000)
    with pytest.raises(InputError, match="outside the 64-bit range"):
        parse_output("whisper-json", POISON_JSON["id above int64"][0], "p.json", 100_000)


def test_int64_bounds_themselves_are_accepted_and_stored() -> None:
    data = whisper_json([{**SEGMENT, "id": 2**63 - 1, "seek": -(2**63), "tokens": [2**63 - 1, -(2**63)]}])
    transcript = parse_output("whisper-json", data, "edge.json", 100_000)
    rebuilt = read_transcript(
        table_to_parquet_bytes(statements_table(transcript, MEDIA, RUN, "ab")),
        table_to_parquet_bytes(words_table(transcript, MEDIA, RUN, "ab")),
    )
    assert rebuilt.to_json_obj() == json.loads(data)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("1\n99999999999:00:00,000 --> 99999999999:00:01,000\nx\n", "cue 1 (line 1).start"),
        ("1\n00:00:00,000 --> 00:00:01,000\n[" + "S" * 300 + "]: x\n", None),
        ("1\n00:00:00,000 --> 00:00:01,000\nbell \x07 here\n", "cue 1 (line 1).text"),
    ],
)
def test_poison_srt(content: str, field: str | None) -> None:
    if field is None:  # an over-long bracket prefix is text, not a speaker label
        transcript = parse_output("srt", content.encode(), "p.srt", 100_000)
        assert transcript.statements[0].speaker is None
        return
    with pytest.raises(InputError) as caught:
        parse_output("srt", content.encode(), "p.srt", 100_000)
    assert caught.value.field == field


# Texts that would break cue structure if embedded as they are.
HOSTILE_TEXTS = [
    "first\n\nsecond",
    "first\r\n\r\nsecond",
    "first\r\rsecond",
    "first\n \t \nsecond",
    "first\n\u3000\nsecond",
    "a --> b",
    "a ---> b",
    "00:00:01,000 --> 00:00:02,000",
    "1\n00:00:05,000 --> 00:00:06,000\ninjected",
    "WEBVTT\n\nNOTE hidden",
    "\n\n\nlead and trail\n\n\n",
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_a_statement_never_creates_or_swallows_cues(text: str) -> None:
    statements = [
        Statement(seq=0, start=0.0, end=1.0, text="before"),
        Statement(seq=1, start=1.0, end=2.0, text=text, speaker="SPEAKER_00"),
        Statement(seq=2, start=2.0, end=3.0, text="after"),
    ]
    for render, format_name in ((render_srt, "srt"), (render_vtt, "vtt")):
        rendered = render(statements)
        cues = parse_output(format_name, rendered.encode(), f"r.{format_name}", 100_000).statements
        assert [(c.start, c.end) for c in cues] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], rendered
        assert [c.text for c in cues][::2] == ["before", "after"]
        assert cues[1].speaker == "SPEAKER_00"
        assert "-->" not in cues[1].text
        assert rendered.count("-->") == 3, "only the timing lines hold '-->'"


def test_header_only_wav_is_rejected_like_an_empty_file(tmp_path) -> None:
    from mediavault.ingest.probe import probe_media
    from mediavault.ingest.sources import resolve_source
    from mediavault.settings import IngestLimits

    path = tmp_path / "header-only.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
    assert path.stat().st_size == 44, "a RIFF/WAVE header, a fmt chunk and an empty data chunk"
    with pytest.raises(InputError, match="no audio or video frames") as caught:
        probe_media(resolve_source(str(path), "media", IngestLimits()))
    assert caught.value.field == "media" and caught.value.file == str(path)
    one_frame = tmp_path / "one-frame.wav"
    with wave.open(str(one_frame), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x01\x00")
    assert probe_media(resolve_source(str(one_frame), "media", IngestLimits())).streams


POISON_INGEST = {
    "token above int64": (
        "out.json",
        whisper_json([{**SEGMENT, "tokens": [2**63]}]),
        "segments[0].tokens[0]",
    ),
    "seek above int64": ("out.json", whisper_json([{**SEGMENT, "seek": 2**63}]), "segments[0].seek"),
    "speaker of 40 kB": (
        "out.json",
        whisper_json([{**SEGMENT, "speaker": "S" * 40_000}]),
        "segments[0].speaker",
    ),
    "language of 40 kB": ("out.json", whisper_json([SEGMENT], language="x" * 40_000), "language"),
    "control character in an SRT": ("out.srt", b"1\n00:00:00,000 --> 00:00:01,000\na\x1bb\n", "text"),
}


@pytest.mark.parametrize("case", sorted(POISON_INGEST))
def test_poison_pills_are_rejected_before_anything_is_written(vault, settings_for, tmp_path, case) -> None:
    from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
    from tests.helpers import JFK_MEDIA, stored_keys

    name, content, field = POISON_INGEST[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        ingest(
            vault, IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(path))]), settings_for(vault)
        )
    assert caught.value.file == str(path) and field in caught.value.field, caught.value
    assert stored_keys(vault) == []


def test_header_only_wav_ingest_writes_nothing(vault, settings_for, tmp_path) -> None:
    from mediavault.ingest.pipeline import IngestRequest, ingest
    from tests.helpers import stored_keys

    path = tmp_path / "header-only.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
    with pytest.raises(InputError, match="no audio or video frames"):
        ingest(vault, IngestRequest(media=str(path)), settings_for(vault))
    assert stored_keys(vault) == []
