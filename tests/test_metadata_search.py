"""Metadata search: titles, descriptions and tags are found on every search backend, within the
same filters and owner scope as statements, and never counted among statement hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.search import SearchQuery
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault
from tests.conftest import REAL
from tests.helpers import make_wav

ITEMS = {
    "inaugural": (
        "whisper_en_jfk.json",
        11,
        {
            "title": "Inaugural Address",
            "description": "President Kennedy's speech at the Capitol, January 1961.",
            "owner": "archive",
            "language": "en",
            "tags": ["speech", "public-domain"],
        },
    ),
    "appel": (
        "whisperx_fr_call_diarized.json",
        210,
        {
            "title": "Appel du service résidentiel",
            "description": "Un client signale une panne d'Internet.",
            "owner": "support",
            "language": "fr",
            "tags": ["call", "fibre"],
        },
    ),
    "board": (
        "whisperx_en_schoolboard_short.json",
        300,
        {"title": "School board meeting", "owner": "archive", "language": "en", "tags": ["meeting"]},
    ),
}


@pytest.fixture
def indexed(tmp_path: Path, mongo_db, search_index) -> tuple[IndexTarget, dict[str, str]]:
    target = IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), search_index)
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    ids = {}
    for i, (name, (fixture, seconds, metadata)) in enumerate(ITEMS.items()):
        media = make_wav(tmp_path / "media" / f"{i}.wav", seconds, frequency=220 + 40 * i)
        request = IngestRequest(
            media=str(media), outputs=[OutputSpec(str(REAL / fixture))], metadata=metadata, provenance={}
        )
        ids[name] = ingest(target.vault, request, settings).media_id
    reindex.full_rebuild(target)
    return target, ids


def media_ids(target: IndexTarget, text: str, **filters) -> list[str]:
    return [m.media_id for m in target.search.search(SearchQuery(text=text, **filters)).media]


def test_title_description_and_tag_words_find_the_media(indexed) -> None:
    target, ids = indexed
    assert media_ids(target, "Inaugural") == [ids["inaugural"]]
    assert media_ids(target, "capitol kennedy") == [ids["inaugural"]]  # description words, any case
    assert media_ids(target, "public-domain") == [ids["inaugural"]]  # a tag
    assert media_ids(target, '"board meeting"') == [ids["board"]]
    assert media_ids(target, "residentiel") == [ids["appel"]]  # folded, in a French title
    assert media_ids(target, "internet") == [ids["appel"]]  # "d'Internet" in the description
    assert media_ids(target, "Inaugural meeting") == []  # every word must match one item


def test_media_hit_carries_title_tags_and_a_highlighted_snippet(indexed) -> None:
    target, ids = indexed
    (hit,) = target.search.search(SearchQuery(text="inaugural")).media
    assert (hit.media_id, hit.title, hit.tags, hit.language) == (
        ids["inaugural"],
        "Inaugural Address",
        ["public-domain", "speech"],
        "en",
    )
    assert "<b>Inaugural</b>" in hit.snippet and hit.score > 0


def test_media_documents_are_not_statements(indexed) -> None:
    target, ids = indexed
    everything = target.search.search(SearchQuery(limit=200, facets=True))
    assert everything.media == [] and everything.total == 1 + 54 + 28  # jfk, french call, board
    assert all(h.run_id and ":media" not in h.id for h in everything.hits)
    # A title word that no statement says: media listed, no statement hit.
    result = target.search.search(SearchQuery(text="Inaugural"))
    assert result.total == 0 and result.hits == [] and len(result.media) == 1
    # Statement hits show their media's title and tags.
    said = target.search.search(SearchQuery(text="country", media_id=ids["inaugural"]))
    assert said.total >= 1 and said.hits[0].title == "Inaugural Address"
    assert said.hits[0].tags == ["public-domain", "speech"]


def test_filters_and_owner_scope_apply_to_media(indexed) -> None:
    target, ids = indexed
    assert media_ids(target, "meeting", owner="support") == []
    assert media_ids(target, "meeting", owner="archive") == [ids["board"]]
    assert media_ids(target, "address", tag="speech") == [ids["inaugural"]]
    assert media_ids(target, "address", tag="meeting") == []
    assert media_ids(target, "appel", language="fr") == [ids["appel"]]
    assert media_ids(target, "appel", language="en") == []
    assert media_ids(target, "inaugural", speaker="SPEAKER_00") == []  # a speaker filter means statements
    assert media_ids(target, "inaugural", offset=10) == []  # listed on the first page only
    assert media_ids(target, "inaugural", media_limit=0) == []


def test_an_edited_title_is_found_and_the_old_one_is_not(indexed) -> None:
    target, ids = indexed
    edits.add_edit(
        target.vault, ids["board"], "fix-metadata", {"title": "Budget hearing", "tags": ["budget"]}
    )
    reindex.reindex_media(target, [ids["board"]])
    assert media_ids(target, "hearing") == [ids["board"]]
    assert media_ids(target, "budget", tag="budget") == [ids["board"]]
    assert media_ids(target, "school") == []
    # A full rebuild from the vault gives the same answer, edits included.
    reindex.full_rebuild(target)
    assert media_ids(target, "hearing") == [ids["board"]] and media_ids(target, "school") == []
