"""Formats against real WhisperX / Whisper / faster-whisper outputs (tests/fixtures/real)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from mediavault import SCHEMA_VERSION
from mediavault.formats import detect_format, parse_output, render_srt, render_vtt
from mediavault.parquet import (
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
