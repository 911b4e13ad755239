"""One conformance suite for every SearchIndex backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.projection import DigestSet
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.search import SearchIndex, SearchQuery
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault
from tests.helpers import JFK_JSON, JFK_MEDIA

M1, M2 = "a" * 64, "b" * 64
RUN = "c" * 32
# Tags are exact values: none of these may be read as query syntax (wildcards, fields, local params).
LITERAL_TAGS = [
    "*",
    'Rede 1961: "ask not" (JFK)',
    "ünïcødé 日本語 tag",
    "tags:shared OR *",
    "{!join from=id to=id}x",
    "$p_tag",
    "back\\slash [a TO z]",
]
M1_TAGS = sorted(["shared", *LITERAL_TAGS])
M2_TAGS = ["b-only", "shared"]


def doc(
    media: str,
    seq: int,
    text: str,
    speaker: str = "SPEAKER_00",
    name: str | None = None,
    start: float = 0.0,
    owner: str = "team-a",
    language: str = "en",
    ingested: str = "2026-01-10T00:00:00+00:00",
    tags: list[str] | None = None,
) -> dict:
    return {
        "id": f"{media}:{RUN}:{seq}",
        "media_id": media,
        "run_id": RUN,
        "seq": seq,
        "owner": owner,
        "speaker": speaker,
        "speaker_name": name or speaker,
        "text": text,
        "start": start,
        "end": start + 2.0,
        "language": language,
        "title": f"title {media[:4]}",
        "tags": M1_TAGS if tags is None else tags,
        "ingested_at": ingested,
    }


DOCS = [
    doc(
        M1,
        0,
        "And so my fellow Americans, ask not what your country can do for you",
        "SPEAKER_00",
        "Dr. Lee",
        0.0,
    ),
    doc(M1, 1, "ask what you can do for your country", "SPEAKER_01", start=5.0),
    doc(M1, 2, "Bonjour, est-ce que je parle à Denise?", "SPEAKER_00", "Dr. Lee", 9.0, language="en"),
    doc(
        M2,
        0,
        "The country budget for next year <script>alert(1)</script>",
        "SPEAKER_05",
        start=1.0,
        owner="team-b",
        language="fr",
        ingested="2026-03-01T00:00:00+00:00",
        tags=M2_TAGS,
    ),
    doc(
        M2,
        1,
        "Ciudad y país: una frase en español",
        "SPEAKER_05",
        start=3.0,
        owner="team-b",
        language="fr",
        ingested="2026-03-01T00:00:00+00:00",
        tags=M2_TAGS,
    ),
]


@pytest.fixture
def live(search_index: SearchIndex) -> SearchIndex:
    search_index.create_generation(1)
    search_index.add(1, DOCS)
    search_index.commit(1)
    search_index.switch(1)
    return search_index


def ids(result) -> list[str]:
    return [h.id for h in result.hits]


def test_words_must_all_match_and_phrases_are_exact(live: SearchIndex) -> None:
    assert live.search(SearchQuery(text="country")).total == 3
    assert live.search(SearchQuery(text="country budget")).total == 1
    phrase = live.search(SearchQuery(text='"your country"'))
    assert sorted(ids(phrase)) == sorted([DOCS[0]["id"], DOCS[1]["id"]])
    assert live.search(SearchQuery(text='"country your"')).total == 0


def test_hits_carry_what_a_player_needs(live: SearchIndex) -> None:
    hit = live.search(SearchQuery(text="Denise")).hits[0]
    assert (hit.media_id, hit.start, hit.end, hit.speaker_name) == (M1, 9.0, 11.0, "Dr. Lee")
    assert "<b>Denise</b>" in hit.snippet


def test_snippets_escape_html(live: SearchIndex) -> None:
    hit = live.search(SearchQuery(text="budget")).hits[0]
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet


def test_filters(live: SearchIndex) -> None:
    assert live.search(SearchQuery(text="country", speaker="Dr. Lee")).total == 1
    assert live.search(SearchQuery(speaker="SPEAKER_01")).total == 1, "labels match too"
    assert live.search(SearchQuery(media_id=M2)).total == 2
    assert live.search(SearchQuery(owner="team-a")).total == 3
    assert live.search(SearchQuery(language="fr")).total == 2
    feb = datetime(2026, 2, 1, tzinfo=UTC)
    assert live.search(SearchQuery(date_from=feb)).total == 2
    assert live.search(SearchQuery(date_to=feb)).total == 3


def test_facets_paging_and_time_sort(live: SearchIndex) -> None:
    result = live.search(SearchQuery(text="country"))
    assert result.facets["media_id"] == {M1: 2, M2: 1}
    assert result.facets["speaker_name"] == {"Dr. Lee": 1, "SPEAKER_01": 1, "SPEAKER_05": 1}
    assert result.facets["language"] == {"en": 2, "fr": 1}
    by_time = live.search(SearchQuery(media_id=M1, sort="time"))
    assert [h.start for h in by_time.hits] == [0.0, 5.0, 9.0]
    page = live.search(SearchQuery(media_id=M1, sort="time", limit=2, offset=2))
    assert [h.start for h in page.hits] == [9.0] and page.total == 3


def test_non_english_text_is_searchable(live: SearchIndex) -> None:
    assert live.search(SearchQuery(text="país")).total == 1
    assert live.search(SearchQuery(text='"est-ce que"')).total == 1


@pytest.mark.parametrize(
    "attack",
    [
        "text:* OR owner:team-b",
        "owner:team-b",
        "*",
        '") OR ("',
        "\\",
        "country AND NOT budget",
        "media_id:" + M2,
        "+-&&||!(){}[]^~*?:\\/",
        "{!join from=id to=id}country",
        "$where",
        "'; DROP",
    ],
)
def test_query_syntax_in_user_text_is_only_text(live: SearchIndex, attack: str) -> None:
    result = live.search(SearchQuery(text=attack, owner="team-a"))
    assert all(h.media_id == M1 for h in result.hits), "a filter must never be escaped from"
    if "country" not in attack.lower():
        assert result.total == 0


def test_filter_values_are_literal(live: SearchIndex) -> None:
    assert live.search(SearchQuery(owner="team-a OR owner:team-b")).total == 0
    assert live.search(SearchQuery(speaker="*")).total == 0


def test_tag_filter_matches_one_of_a_documents_tags_exactly(live: SearchIndex) -> None:
    shared = live.search(SearchQuery(tag="shared", limit=50))
    assert shared.total == 5 and {h.media_id for h in shared.hits} == {M1, M2}, "a tag on two media"
    assert sorted(ids(live.search(SearchQuery(tag="b-only")))) == [DOCS[3]["id"], DOCS[4]["id"]]
    for missing in ("no-such-tag", "Shared", "shar", "shar*", " shared", "shared b-only", ""):
        expected = 5 if missing == "" else 0  # an empty filter is no filter, as for the others
        assert live.search(SearchQuery(tag=missing)).total == expected, missing


@pytest.mark.parametrize("tag", LITERAL_TAGS)
def test_tag_values_are_literal(live: SearchIndex, tag: str) -> None:
    """Each of these tags is on M1 only: query syntax in it would widen or break the match."""
    result = live.search(SearchQuery(tag=tag, limit=50))
    assert sorted(ids(result)) == sorted(d["id"] for d in DOCS[:3]), tag
    assert live.search(SearchQuery(tag=tag, owner="team-b")).total == 0
    assert live.search(SearchQuery(tag=tag + "x")).total == 0


def test_tag_combines_with_owner_and_text(live: SearchIndex) -> None:
    assert live.search(SearchQuery(tag="shared", owner="team-a")).total == 3
    assert live.search(SearchQuery(tag="shared", owner="team-b")).total == 2
    assert live.search(SearchQuery(tag="b-only", owner="team-a")).total == 0
    assert sorted(ids(live.search(SearchQuery(text="country", tag="shared")))) == sorted(
        DOCS[i]["id"] for i in (0, 1, 3)
    )
    assert ids(live.search(SearchQuery(text="country", tag="b-only"))) == [DOCS[3]["id"]]
    assert live.search(SearchQuery(text="budget", tag=LITERAL_TAGS[1])).total == 0
    assert ids(live.search(SearchQuery(text='"fellow Americans"', tag="*", owner="team-a"))) == [
        DOCS[0]["id"]
    ]


def test_tag_facet_counts_statements_per_tag(live: SearchIndex) -> None:
    result = live.search(SearchQuery(text="country"))
    assert result.facets["tags"] == {"shared": 3, "b-only": 1} | dict.fromkeys(LITERAL_TAGS, 2)
    narrowed = live.search(SearchQuery(tag="b-only"))
    assert narrowed.facets["tags"] == {"b-only": 2, "shared": 2}, "facets follow the tag filter too"


def test_facets_never_name_another_owners_tags(live: SearchIndex) -> None:
    for query in (SearchQuery(owner="team-a"), SearchQuery(owner="team-a", text="country")):
        result = live.search(query)
        assert "b-only" not in result.facets["tags"], "a tag used only by team-b leaked into team-a's facets"
        assert result.facets["tags"]["shared"] == result.total, "counts are within the owner scope"
        assert set(result.facets["media_id"]) == {M1}
    assert live.search(SearchQuery(owner="team-b")).facets["tags"] == {"b-only": 2, "shared": 2}


def test_generations_switch_atomically_and_roll_back(live: SearchIndex) -> None:
    live.create_generation(2)
    live.add(2, DOCS[:2])
    live.commit(2)
    assert live.search(SearchQuery()).total == 5, "readers keep the live generation while 2 is built"
    live.switch(2)
    assert live.live_generation() == 2 and live.search(SearchQuery()).total == 2
    assert live.rollback() == 1
    assert live.search(SearchQuery()).total == 5


def test_summary_counts_and_digests(live: SearchIndex) -> None:
    expected = DigestSet()
    for d in DOCS:
        expected.add(d)
    assert live.summary(1) == expected.as_tuple()
    live.delete_media(1, M2)
    live.commit(1)
    assert live.summary(1)[0] == 3
    assert live.search(SearchQuery(media_id=M2)).total == 0


def test_reprojecting_a_media_item_replaces_its_documents(live: SearchIndex) -> None:
    """delete_media, then add the new projection, then commit: what the item no longer has is gone,
    what it still has is updated, other items are untouched; also when the item's previous
    documents were added in this same batch and are not committed yet."""
    first, second, _ = DOCS[:3]
    live.delete_media(1, M1)
    live.add(1, [{**first, "text": "A corrected statement about the harbour"}, second])
    live.commit(1)
    assert sorted(ids(live.search(SearchQuery(media_id=M1)))) == sorted([first["id"], second["id"]])
    assert ids(live.search(SearchQuery(text="harbour"))) == [first["id"]]
    assert live.search(SearchQuery(text="fellow")).total == 0, "the old text is gone"
    assert live.search(SearchQuery(media_id=M2)).total == 2
    live.add(1, DOCS[:3])  # added again, not committed, then re-projected with less
    live.delete_media(1, M1)
    live.add(1, [second])
    live.commit(1)
    assert ids(live.search(SearchQuery(media_id=M1))) == [second["id"]]
    live.delete_media(1, M1)  # the item is gone
    live.commit(1)
    assert live.search(SearchQuery(media_id=M1)).total == 0 and live.summary(1)[0] == 2


def test_tag_edits_are_searchable_after_reprojection(
    search_index: SearchIndex, mongo_db, tmp_path: Path
) -> None:
    target = IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), search_index)
    media_id = ingest(
        target.vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(JFK_JSON))],
            metadata={"owner": "alice", "tags": ["speech"]},
        ),
        MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled"),
    ).media_id
    reindex.full_rebuild(target)
    statements = search_index.search(SearchQuery(tag="speech")).total
    assert statements > 0 and search_index.search(SearchQuery(tag="history")).total == 0
    edits.add_edit(target.vault, media_id, "fix-metadata", {"tags": ["history", "1961: JFK *"]})
    reindex.reindex_media(target, [media_id])
    assert search_index.search(SearchQuery(tag="speech")).total == 0, "the old tag is gone"
    assert search_index.search(SearchQuery(tag="1961: JFK *", owner="alice")).total == statements
    assert search_index.search(SearchQuery()).facets["tags"] == {
        "history": statements,
        "1961: JFK *": statements,
    }
    edits.add_edit(target.vault, media_id, "fix-metadata", {"tags": []})
    reindex.reindex_media(target, [media_id])
    untagged = search_index.search(SearchQuery())
    assert untagged.total == statements and untagged.facets["tags"] == {}
    assert search_index.search(SearchQuery(tag="history")).total == 0
