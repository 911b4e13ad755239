"""Words found the way a speaker of the language types them, on the embedded (Tantivy) backend.

The statements below are written by hand for these tests (not transcripts); each row of QUERIES
says, from the documented analysis in mediavault/search/analysis.py, which statements a query
must find. The Solr side of this table (the shipped configset, checked against real Lucene) is
still to come; see the issue's note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mediavault.search import SearchQuery
from mediavault.search.tantivy_index import TantivySearchIndex

MEDIA = "d" * 64
RUN = "e" * 32

STATEMENTS = {
    # key: (language, text), all written by hand
    "fr-accent": ("fr", "Le projet résidentiel sera présenté demain."),
    "fr-plain": ("fr", "Un quartier residentiel, écrit sans accent."),
    "fr-elision": ("fr", "C'est l'Internet des objets qu'on attendait."),
    "it-elision": ("it", "Il bilancio dell'anno scorso è stato approvato."),
    "de-compound": ("de", "Die Donaudampfschifffahrtsgesellschaftskapitänswitwe sprach zuerst."),
    "ru-long": ("ru", "Главная достопримечательность города — старый мост."),
    "ja-sentence": ("ja", "東京都議会の予算審議が始まりました。"),
    "en-plural": ("en", "The councils voted on the budgets."),
    "es-plural": ("es", "Las elecciones municipales fueron ayer."),
    "ca-elision": ("ca", "L'Ajuntament de Barcelona ha aprovat el pressupost."),
    "none": ("", "Statement without a language: naïve café décor."),
}

# (query text, language filter or None, the statements it must find; order matters where ranked)
QUERIES: list[tuple[str, str | None, list[str], bool]] = [
    # accents: folded matches, and the form as typed ranks first
    ("residentiel", None, ["fr-plain", "fr-accent"], True),
    ("résidentiel", None, ["fr-accent", "fr-plain"], True),
    ("presente", "fr", ["fr-accent"], False),
    ("naive cafe decor", None, ["none"], False),
    # elision (apostrophes separate words)
    ("internet", None, ["fr-elision"], False),
    ('"l\'internet"', None, ["fr-elision"], False),
    ("c'est", None, ["fr-elision"], False),
    ("anno", "it", ["it-elision"], False),
    ("ajuntament", None, ["ca-elision"], False),
    # long words are split the same way at index and query time, never dropped
    ("Donaudampfschifffahrtsgesellschaftskapitänswitwe", None, ["de-compound"], False),
    ("donaudampfschifffahrtsgesellschaftskapitanswitwe", None, ["de-compound"], False),
    ("достопримечательность", None, ["ru-long"], False),
    # stemming in the statement's language
    ("город", "ru", ["ru-long"], False),
    ("council", None, ["en-plural"], False),
    ("vote budget", "en", ["en-plural"], False),
    ("elección", "es", ["es-plural"], False),
    # CJK inside an unsegmented sentence: a phrase of its characters
    ("予算", None, ["ja-sentence"], False),
    ("予算審議", None, ["ja-sentence"], False),
    ("東京", None, ["ja-sentence"], False),
    ("算予", None, [], False),
    # things that must not match
    ("résidence", None, [], False),
    ("internets", "fr", ["fr-elision"], False),  # the French stemmer takes the plural off
    ("intern", None, [], False),  # words match whole, never as prefixes
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> TantivySearchIndex:
    search = TantivySearchIndex(tmp_path_factory.mktemp("multilingual") / "tantivy")
    search.create_generation(1)
    search.add(
        1,
        [
            {
                "id": f"{MEDIA}:{RUN}:{seq}",
                "media_id": MEDIA,
                "run_id": RUN,
                "seq": seq,
                "owner": "team",
                "speaker": key,
                "speaker_name": key,
                "text": text,
                "start": float(seq),
                "end": float(seq) + 1,
                "language": language,
                "title": "hand-written multilingual statements",
                "tags": [],
                "ingested_at": "2026-11-01T00:00:00+00:00",
            }
            for seq, (key, (language, text)) in enumerate(STATEMENTS.items())
        ],
    )
    search.commit(1)
    search.switch(1)
    return search


@pytest.mark.parametrize(("text", "language", "expected", "ranked"), QUERIES, ids=[q[0] for q in QUERIES])
def test_the_table(
    index: TantivySearchIndex, text: str, language: str | None, expected: list[str], ranked: bool
) -> None:
    found = [hit.speaker for hit in index.search(SearchQuery(text=text, language=language, limit=50)).hits]
    if ranked:
        assert found == expected
    else:
        assert sorted(found) == sorted(expected)


def test_an_index_built_with_another_analysis_says_how_to_rebuild(tmp_path: Path) -> None:
    import tantivy

    from mediavault.errors import ConfigurationError

    old = tantivy.SchemaBuilder()
    old.add_text_field("text", stored=True)
    (tmp_path / "gen-000001").mkdir()
    tantivy.Index(old.build(), path=str(tmp_path / "gen-000001"))
    search = TantivySearchIndex(tmp_path)
    (tmp_path / "CURRENT.json").write_text('{"live": 1, "previous": null}')
    with pytest.raises(ConfigurationError, match="reindex --full"):
        search.search(SearchQuery(text="anything"))


@pytest.mark.parametrize(
    ("text", "language", "marked"),
    [
        ("residentiel", None, "<b>résidentiel</b>"),
        ("予算", None, "<b>予</b><b>算</b>"),
        ("council", "en", "<b>councils</b>"),
        ("internet", None, "l&#x27;<b>Internet</b>"),
    ],
)
def test_matches_found_by_folding_or_stemming_are_highlighted(
    index: TantivySearchIndex, text: str, language: str | None, marked: str
) -> None:
    snippets = [hit.snippet for hit in index.search(SearchQuery(text=text, language=language)).hits]
    assert any(marked in snippet for snippet in snippets), snippets


def test_a_full_rebuild_replaces_an_index_built_with_another_analysis(
    tmp_path: Path, mongo_db, settings_for
) -> None:
    """What the error message promises: `reindex --full` builds a new generation with today's
    analysis beside the old one, switches, and search works again."""
    import tantivy

    from mediavault import reindex
    from mediavault.index_store import MongoIndexStore
    from mediavault.ingest import IngestRequest, OutputSpec, ingest
    from mediavault.reindex import IndexTarget
    from mediavault.vault import LocalVault
    from tests.helpers import JFK_JSON, JFK_MEDIA

    base = tmp_path / "tantivy"
    target = IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), TantivySearchIndex(base))
    outputs = [OutputSpec(str(JFK_JSON))]
    request = IngestRequest(media=str(JFK_MEDIA), outputs=outputs, metadata={"language": "en"})
    ingest(target.vault, request, settings_for(target.vault))
    reindex.full_rebuild(target)
    live = target.search.live_generation()
    old = tantivy.SchemaBuilder()
    old.add_text_field("text", stored=True)
    stale = base / f"gen-{live + 1:06d}"
    stale.mkdir()
    tantivy.Index(old.build(), path=str(stale))
    (base / "CURRENT.json").write_text(f'{{"live": {live + 1}, "previous": {live}}}')
    stale_index = TantivySearchIndex(base)
    with pytest.raises(Exception, match="reindex --full"):
        stale_index.search(SearchQuery(text="country"))
    rebuilt = IndexTarget(target.vault, target.store, stale_index)
    reindex.full_rebuild(rebuilt)
    assert stale_index.search(SearchQuery(text="countries", language="en")).total == 1


def test_a_generation_of_another_analysis_version_is_refused(tmp_path: Path) -> None:
    """Same schema, other analysis (a chain changed without a field changing): still refused."""
    from mediavault.errors import ConfigurationError
    from mediavault.search import analysis

    search = TantivySearchIndex(tmp_path)
    search.create_generation(1)
    search.commit(1)
    search.switch(1)
    assert search.search(SearchQuery(text="anything")).total == 0
    (tmp_path / "gen-000001" / "ANALYSIS").write_text(f"{analysis.ANALYSIS_VERSION - 1}\n")
    with pytest.raises(ConfigurationError, match="reindex --full"):
        TantivySearchIndex(tmp_path).search(SearchQuery(text="anything"))
