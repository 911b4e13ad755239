"""Every kind of bad input fails up front with the file and field named, and commits nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mediavault.errors import InputError
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.vault import Vault
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav, stored_keys

GOOD_SEGMENT = {
    "start": 0.5,
    "end": 2.0,
    "text": " Hello.",
    "speaker": "SPEAKER_00",
    "words": [{"word": "Hello.", "start": 0.5, "end": 1.0, "score": 0.9}],
}


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def whisperx(segments: list, **top) -> str:
    return json.dumps({"segments": segments, "language": "en", **top})


def expect_rejected(vault: Vault, settings, request: IngestRequest, file_part: str, field_part: str) -> None:
    with pytest.raises(InputError) as caught:
        ingest(vault, request, settings)
    error = caught.value
    assert file_part in error.file, f"error should name the file: {error}"
    assert field_part in error.field, f"error should name the field {field_part!r}: {error}"
    assert str(error).startswith(error.file)
    assert stored_keys(vault) == [], "nothing may be written for bad input"


def with_output(path: Path, media: Path = JFK_MEDIA) -> IngestRequest:
    return IngestRequest(media=str(media), outputs=[OutputSpec(str(path))])


BAD_JSON_CASES = {
    "truncated": ('{"segments": [{"start": 0.5, "end": 2.0, "te', "line 1"),
    "invalid": ('{"segments": [}', "line 1 column 15"),
    "not an object": ("[1, 2, 3]", "(document)"),
    "segments missing": ('{"language": "en"}', "segments"),
    "start is a string": (whisperx([{**GOOD_SEGMENT, "start": "0.5"}]), "segments[0].start"),
    "speaker is a number": (whisperx([{**GOOD_SEGMENT, "speaker": 3}]), "segments[0].speaker"),
    "text missing": (whisperx([{"start": 0.0, "end": 1.0}]), "segments[0].text"),
    "words not a list": (whisperx([{**GOOD_SEGMENT, "words": "Hello"}]), "segments[0].words"),
    "word start is bool": (
        whisperx([{**GOOD_SEGMENT, "words": [{"word": "a", "start": True}]}]),
        "segments[0].words[0].start",
    ),
    "NaN timestamp": ('{"segments": [{"start": NaN, "end": 2.0, "text": "x"}]}', "(document)"),
    "Infinity timestamp": ('{"segments": [{"start": 0, "end": Infinity, "text": "x"}]}', "(document)"),
    "negative timestamp": (whisperx([{**GOOD_SEGMENT, "start": -1.0}]), "segments[0].start"),
    "reversed segment": (
        whisperx([GOOD_SEGMENT, {**GOOD_SEGMENT, "start": 5.0, "end": 4.0}]),
        "segments[1].end",
    ),
    "reversed word": (
        whisperx([{**GOOD_SEGMENT, "words": [{"word": "a", "start": 2, "end": 1}]}]),
        "segments[0].words[0].end",
    ),
    "tokens not ints": (whisperx([{**GOOD_SEGMENT, "tokens": [1, "2"]}]), "segments[0].tokens"),
    "NUL inside text": (whisperx([{**GOOD_SEGMENT, "text": "a\u0000b"}]), "segments[0].text"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON_CASES))
def test_bad_json(vault: Vault, settings_for, tmp_path: Path, case: str) -> None:
    content, field = BAD_JSON_CASES[case]
    path = write(tmp_path, "out.json", content)
    # The file as the user gave it (its path), whichever check refuses it: format sniffing or parsing.
    expect_rejected(vault, settings_for(vault), with_output(path), str(path), field)


def test_real_fixture_truncated_midway(vault: Vault, settings_for, tmp_path: Path) -> None:
    data = (REAL / "whisperx_en_numbers_untimed.json").read_bytes()
    path = write(tmp_path, "cut.json", data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        ingest(vault, with_output(path), settings_for(vault))
    assert stored_keys(vault) == []


def test_transcript_far_past_media_duration(vault: Vault, settings_for) -> None:
    request = with_output(REAL / "whisperx_fr_call_diarized.json")  # ~3 minutes vs 11 s of audio
    expect_rejected(vault, settings_for(vault), request, "whisperx_fr_call_diarized.json", "segments.end")


def test_zero_byte_media(vault: Vault, settings_for, tmp_path: Path) -> None:
    media = write(tmp_path, "empty.wav", b"")
    expect_rejected(vault, settings_for(vault), IngestRequest(media=str(media)), "empty.wav", "media")


def test_media_that_is_not_media(vault: Vault, settings_for, tmp_path: Path) -> None:
    media = write(tmp_path, "fake.mp3", os.urandom(4096))
    expect_rejected(vault, settings_for(vault), IngestRequest(media=str(media)), "fake.mp3", "media")


def test_media_path_is_a_directory(vault: Vault, settings_for, tmp_path: Path) -> None:
    folder = tmp_path / "adir.wav"
    folder.mkdir()
    expect_rejected(vault, settings_for(vault), IngestRequest(media=str(folder)), "adir.wav", "media")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their mode")
def test_unreadable_media(vault: Vault, settings_for, tmp_path: Path) -> None:
    media = make_wav(tmp_path / "locked.wav", 1)
    media.chmod(0)
    expect_rejected(vault, settings_for(vault), IngestRequest(media=str(media)), "locked.wav", "media")


def test_media_path_through_a_file_cannot_be_read(vault: Vault, settings_for, tmp_path: Path) -> None:
    blocker = write(tmp_path, "blocker", b"x")
    request = IngestRequest(media=str(blocker / "media.wav"))
    expect_rejected(vault, settings_for(vault), request, "media.wav", "media")


def test_non_utf8_json(vault: Vault, settings_for, tmp_path: Path) -> None:
    document = json.dumps({"segments": [{**GOOD_SEGMENT, "text": "café"}]}, ensure_ascii=False)
    path = write(tmp_path, "latin1.json", document.encode("latin-1"))
    expect_rejected(vault, settings_for(vault), with_output(path), "latin1.json", "byte ")


def test_non_utf8_srt(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.srt", "1\n00:00:00,000 --> 00:00:01,000\ncaf\xe9\n\n".encode("latin-1"))
    expect_rejected(vault, settings_for(vault), with_output(path), "bad.srt", "byte ")


def test_bad_srt_timestamp(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.srt", "1\n00:00:00,000 --> 00:00:61,000\nhi\n\n")
    expect_rejected(vault, settings_for(vault), with_output(path), "bad.srt", "cue 1 (line 1).end")


def test_vtt_without_header(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.vtt", "00:00.000 --> 00:01.000\nhi\n\n")
    expect_rejected(vault, settings_for(vault), with_output(path), "bad.vtt", "line 1")


def test_huge_string(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "huge.json", whisperx([{**GOOD_SEGMENT, "text": "x" * 200_001}]))
    expect_rejected(vault, settings_for(vault), with_output(path), "huge.json", "segments[0].text")


def test_huge_file(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "big.json", whisperx([GOOD_SEGMENT] * 2000))
    settings = settings_for(vault)
    settings.limits.max_transcript_bytes = 10_000
    expect_rejected(vault, settings, with_output(path), "big.json", "outputs[0]")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../x.json", "path traversal ('..') is not allowed in file names"),
        ("a\u0000b.json", "file name contains a NUL character"),
        ("n" * 300 + ".json", "file name is 305 bytes; the limit is 255"),
        ("tab\there.json", "file name contains control characters"),
    ],
)
def test_hostile_file_names(vault: Vault, settings_for, name: str, reason: str) -> None:
    """None of these files exist, so the field alone would also match "not found": check the reason."""
    request = IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(f"/tmp/{name}")])
    with pytest.raises(InputError) as caught:
        ingest(vault, request, settings_for(vault))
    assert caught.value.field == "outputs[0]"
    assert caught.value.message == reason
    assert "\0" not in str(caught.value), "error text must be printable"
    assert stored_keys(vault) == []


def test_unknown_format(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "notes.docx", b"PK\x03\x04 not a transcript")
    expect_rejected(vault, settings_for(vault), with_output(path), "notes.docx", "format")


def test_explicit_unknown_format(vault: Vault, settings_for, tmp_path: Path) -> None:
    path = write(tmp_path, "out.json", whisperx([GOOD_SEGMENT]))
    request = IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(path), format="tsv")])
    expect_rejected(vault, settings_for(vault), request, "out.json", "format")


def test_missing_output_file(vault: Vault, settings_for, tmp_path: Path) -> None:
    expect_rejected(
        vault, settings_for(vault), with_output(tmp_path / "nowhere.json"), "nowhere.json", "outputs[0]"
    )


def test_missing_media_file(vault: Vault, settings_for, tmp_path: Path) -> None:
    request = IngestRequest(media=str(tmp_path / "gone.flac"))
    expect_rejected(vault, settings_for(vault), request, "gone.flac", "media")


def test_missing_s3_media(vault: Vault, settings_for, s3_options, s3_bucket) -> None:
    settings = settings_for(vault)
    settings.s3 = s3_options
    request = IngestRequest(media=f"s3://{s3_bucket}/inbox/absent.flac")
    expect_rejected(vault, settings, request, "absent.flac", "media")


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"title": "x" * 5000}, "metadata.title"),
        ({"tags": ["ok", ""]}, "metadata.tags"),
        ({"owner": "a\nb"}, "metadata.owner"),
        ({"colour": "red"}, "metadata.colour"),
    ],
)
def test_bad_metadata(vault: Vault, settings_for, metadata: dict, field: str) -> None:
    request = IngestRequest(media=str(JFK_MEDIA), metadata=metadata)
    expect_rejected(vault, settings_for(vault), request, "jfk.flac", field)


def test_two_outputs_of_one_format(vault: Vault, settings_for) -> None:
    request = IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(REAL / "whisper_en_jfk.srt")), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
    )
    expect_rejected(vault, settings_for(vault), request, "jfk.flac", "outputs")


def test_local_vault_free_space_guard(tmp_path: Path, settings_for) -> None:
    from mediavault.errors import InsufficientSpace
    from mediavault.vault import LocalVault

    vault = LocalVault(tmp_path / "vault")
    settings = settings_for(vault)
    settings.limits.min_free_bytes = 10**18
    with pytest.raises(InsufficientSpace, match=r"limits\.min_free_bytes"):
        ingest(vault, IngestRequest(media=str(JFK_MEDIA)), settings)
    assert stored_keys(vault) == []
