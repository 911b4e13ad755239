"""Words found the way a speaker of the language types them, on every search engine.

The table (tests/search_parity.py) runs on the embedded Tantivy backend, on the Solr stand-in
(whose analysis is real Lucene building the shipped schema's chains, tests/lucene_oracle) and, with
MEDIAVAULT_TEST_SOLR_URL set, on a real Solr holding the shipped configset.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediavault.search import SearchIndex, SearchQuery
from mediavault.search.solr_index import SolrSearchIndex
from mediavault.search.tantivy_index import TantivySearchIndex
from tests.search_parity import CASES, HIGHLIGHTS, Case, Highlight, statements

MEDIA = "d" * 64
RUN = "e" * 32
ENGINES = ["tantivy", "solr-fake"] + (["solr-real"] if os.environ.get("MEDIAVAULT_TEST_SOLR_URL") else [])


def documents() -> list[dict]:
    return [
        {
            "id": f"{MEDIA}:{RUN}:{seq}",
            "kind": "statement",
            "media_id": MEDIA,
            "run_id": RUN,
            "seq": seq,
            "owner": "team",
            "speaker": key,
            "speaker_name": key,
            "text": statement.text,
            "start": float(seq),
            "end": float(seq) + 1,
            "language": statement.language,
            "title": "multilingual statements",
            "tags": [],
            "ingested_at": "2026-11-01T00:00:00+00:00",
        }
        for seq, (key, statement) in enumerate(statements().items())
    ]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(engine name, a search index holding the table's statements, live)."""
    index: SearchIndex
    if request.param == "tantivy":
        index = TantivySearchIndex(tmp_path_factory.mktemp("multilingual") / "tantivy")
    elif request.param == "solr-fake":
        index = SolrSearchIndex(request.getfixturevalue("fake_solr").url, name=f"ml{uuid.uuid4().hex[:8]}")
    else:
        mode = os.environ.get("MEDIAVAULT_TEST_SOLR_MODE", "cloud")
        url = os.environ["MEDIAVAULT_TEST_SOLR_URL"]
        index = SolrSearchIndex(url, name=f"mvml{uuid.uuid4().hex[:8]}", mode=mode)  # type: ignore[arg-type]
    index.create_generation(1)
    index.add(1, documents())
    index.commit(1)
    index.switch(1)
    yield request.param, index
    if request.param == "solr-real":
        with contextlib.suppress(Exception):
            index.destroy()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_table(engine: tuple, case: Case) -> None:
    name, index = engine
    if name in case.xfail:
        pytest.xfail(case.xfail[name])
    result = index.search(SearchQuery(text=case.query, language=case.language, limit=50))
    found = [hit.speaker for hit in result.hits]
    expected = list(case.expect(name))
    if case.ranked:
        assert found == expected, case.why
    else:
        assert sorted(found) == sorted(expected), case.why


@pytest.mark.parametrize("case", HIGHLIGHTS, ids=[h.query for h in HIGHLIGHTS])
def test_matches_found_by_folding_or_stemming_are_highlighted(engine: tuple, case: Highlight) -> None:
    name, index = engine
    hits = index.search(SearchQuery(text=case.query, language=case.language)).hits
    snippets = [hit.snippet for hit in hits]
    assert any(case.expect(name) in snippet for snippet in snippets), (case.why, snippets)


def test_the_table_sources_are_real_or_marked_by_hand() -> None:
    for key, statement in statements().items():
        assert statement.text, key
        assert statement.source == "written by hand" or "#" in statement.source, key
    used = {key for case in CASES for key in (*case.expected, *(case.solr or ()))}
    assert used <= statements().keys()
    languages = {s.language for s in statements().values() if s.source != "written by hand"}
    assert {"en", "fr", "ru", "ca"} <= languages, "en, fr, ru and ca come from the real fixtures"


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


def test_a_full_rebuild_replaces_an_index_built_with_another_analysis(
    tmp_path: Path, mongo_db, settings_for
) -> None:
    """What the error message promises: `reindex --full` builds a new generation with today's
    analysis beside the old one, switches, and search works again."""
    import tantivy

    from mediavault.index import reindex
    from mediavault.index.index_store import MongoIndexStore
    from mediavault.index.reindex import IndexTarget
    from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
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


@pytest.mark.parametrize("name", ["tantivy", "solr-fake"])
def test_the_spelling_as_typed_ranks_first_even_against_a_shorter_statement(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Folding finds both spellings; the one typed ranks first, though BM25 alone would put the
    short statement first (a word without accents asks the written form too when accented
    variants are indexed)."""
    texts = {
        "accented": "Le quartier résidentiel.",
        "plain": "Ils ont parlé longtemps du plan pour le quartier residentiel et de la circulation du soir.",
    }
    index: SearchIndex
    if name == "tantivy":
        index = TantivySearchIndex(tmp_path / "tantivy")
    else:
        index = SolrSearchIndex(request.getfixturevalue("fake_solr").url, name=f"rk{uuid.uuid4().hex[:8]}")
    docs = [
        {
            **documents()[0],
            "id": f"{MEDIA}:{RUN}:{seq}",
            "seq": seq,
            "speaker": key,
            "text": text,
            "language": "fr",
        }
        for seq, (key, text) in enumerate(texts.items())
    ]
    index.create_generation(1)
    index.add(1, docs)
    index.commit(1)
    index.switch(1)
    for query, expected in (("residentiel", ["plain", "accented"]), ("résidentiel", ["accented", "plain"])):
        for language in (None, "fr"):
            hits = index.search(SearchQuery(text=query, language=language)).hits
            assert [hit.speaker for hit in hits] == expected, (query, language, [h.score for h in hits])
