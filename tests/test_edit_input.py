"""Edits are user input: control characters and newlines are rejected before anything is written,
and whatever an edit is allowed to say never breaks the cue structure of an export."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediavault.errors import InputError
from mediavault.formats.subtitles import parse_srt, parse_vtt
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.media.export import export
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests
from tests.helpers import JFK_JSON, JFK_MEDIA


@pytest.fixture(scope="module")
def jfk(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalVault, str, str, int]:
    root = tmp_path_factory.mktemp("edits")
    vault = LocalVault(root / "vault")
    result = ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))]),
        MediavaultSettings(home=root / "home", mongo_mode="disabled"),
    )
    statements = manifests.latest_manifest(vault, result.media_id).runs[0].statement_count
    return vault, result.media_id, result.run_id, statements


def state(vault: LocalVault, media_id: str) -> tuple[int, list[str]]:
    return manifests.manifest_versions(vault, media_id)[-1], list(vault.list_keys(f"edits/{media_id}/"))


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        (
            "rename-speaker",
            {"speaker": "SPEAKER_00", "display_name": "Dr. Lee\n\n00:00:01,000 --> 00:00:02,000"},
            "display_name",
        ),
        ("rename-speaker", {"speaker": "SPEAKER_00", "display_name": "a\rb"}, "display_name"),
        ("correct-text", {"seq": 0, "text": "line one\n\nline two"}, "text"),
        ("correct-text", {"seq": 0, "text": "bell \x07 and escape \x1b[31m"}, "text"),
        ("correct-text", {"seq": 0, "text": "next\u2028line"}, "text"),
        ("fix-metadata", {"title": "Board\nmeeting"}, "title"),
        ("fix-metadata", {"owner": "team\x00a"}, "owner"),
        ("fix-metadata", {"tags": ["ok", "bad\ntag"]}, "tags"),
        ("fix-metadata", {"source_url": "https://x/\r\nSet-Cookie: a=b"}, "source_url"),
    ],
)
def test_control_characters_in_edits_are_rejected_and_nothing_is_written(jfk, kind, payload, field) -> None:
    vault, media_id, run_id, _ = jfk
    if kind == "correct-text":
        payload = {"run_id": run_id, **payload}
    before = state(vault, media_id)
    with pytest.raises(InputError) as caught:
        edits.add_edit(vault, media_id, kind, payload)
    assert caught.value.field.startswith(f"payload.{field}")
    assert "control characters" in caught.value.message or "printable" in caught.value.message
    assert state(vault, media_id) == before


ALLOWED_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=80)


@pytest.mark.hardening
@given(text=ALLOWED_TEXT, name=ALLOWED_TEXT, seq=st.integers(0, 2))
def test_an_accepted_edit_never_breaks_the_cue_structure_of_exports(
    jfk, text: str, name: str, seq: int
) -> None:
    vault, media_id, run_id, statements = jfk
    before = state(vault, media_id)
    try:
        edits.add_edit(vault, media_id, "correct-text", {"run_id": run_id, "seq": seq, "text": text})
        edits.add_edit(vault, media_id, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": name})
    except InputError:
        return
    assert state(vault, media_id) != before
    for render, parse in (("srt", parse_srt), ("vtt", parse_vtt)):
        rendered = export(vault, media_id, render)
        cues = parse(rendered.encode(), f"export.{render}").statements
        assert len(cues) == statements, f"{render}: an edit created or swallowed a cue"
