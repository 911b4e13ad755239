"""The shipped Solr configset, checked with real Lucene (tests/lucene_oracle): its chains build,
split long words where Tantivy splits them, never produce a term Lucene would refuse, and cover
the same languages as the Tantivy backend and the Solr adapter."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tests.lucene_oracle as oracle_module
from mediavault.search import analysis, solr_index
from tests.lucene_oracle import SCHEMA, LuceneOracle, OracleUnavailable, require_oracle

CONF = SCHEMA.parent
# Solr field -> its Tantivy counterpart (same name), with the Solr fieldType that analyses it.
TEXT_FIELDS = {
    "text": "text_exact",
    "text_folded": "text_folded",
    **{f"text_{code}": f"text_{code}" for code in analysis.STEMMED_LANGUAGES},
}


@pytest.fixture(scope="module")
def oracle() -> LuceneOracle:
    return require_oracle()


def test_every_text_field_is_built_by_lucene_from_the_schema(oracle: LuceneOracle) -> None:
    root = ET.parse(SCHEMA).getroot()
    fields = {f.get("name"): f.get("type") for f in root.findall("field")}
    assert {name: fields[name] for name in TEXT_FIELDS} == TEXT_FIELDS
    for field_type in TEXT_FIELDS.values():
        assert oracle.type_classes[field_type] == "solr.TextField"
        assert len(oracle.terms(field_type, "Ça marche")) == 2
    copies = {(c.get("source"), c.get("dest")) for c in root.findall("copyField")}
    assert copies == {("text", "text_folded")}, "the adapter sends only text and text_<lang>"


@pytest.mark.parametrize(
    "word",
    [
        "a" * 39,
        "b" * 40,
        "c" * 41,
        "Donaudampfschifffahrtsgesellschaftskapitänswitwe",  # 48
        "d" * 80 + "e",
        "достопримечательностей",  # 22 letters, 44 UTF-8 bytes: the limit counts characters
        "Ж" * 45,
        "x" * 1000,
    ],
    ids=lambda w: f"{w[:6]}x{len(w)}",
)
def test_long_words_are_split_where_tantivy_splits_them(oracle: LuceneOracle, word: str) -> None:
    """The documented rule: a word longer than 40 characters becomes 40-character pieces (and a
    shorter last one) in every chain of both engines, at index and at query time. (The stemmed
    chains then stem each piece; the stemmers themselves may differ, see tests/search_parity.py.)"""
    for field, field_type in TEXT_FIELDS.items():
        for side in ("index", "query"):
            solr, tantivy = oracle.terms(field_type, word, side), analysis.terms(field, word)
            if field in ("text", "text_folded"):
                assert solr == tantivy, (field, side)
            else:
                assert len(solr) == len(tantivy), (field, side)
    pieces = oracle.terms("text_exact", word)
    assert [len(p) for p in pieces] == [min(40, len(word) - i) for i in range(0, len(word), 40)]


def test_no_chain_produces_a_term_lucene_refuses(oracle: LuceneOracle) -> None:
    """Lucene refuses a term over 32,766 UTF-8 bytes, and the whole document with it; the long-word
    rule keeps every analysed token far below (40 UTF-16 units is at most 160 bytes)."""
    text = "草" * 20_000 + " " + "\U0001d518" * 20_000 + " " + "ü" * 40_000
    for field_type in TEXT_FIELDS.values():
        tokens = oracle.analyze(field_type, text)
        assert tokens and max(len(t.term.encode("utf-8")) for t in tokens) <= 160, field_type


def test_the_stemmed_languages_agree_everywhere() -> None:
    root = ET.parse(SCHEMA).getroot()
    schema_languages = {
        f.get("name").removeprefix("text_")
        for f in root.findall("field")
        if f.get("name").startswith("text_") and f.get("name") != "text_folded"
    }
    assert set(solr_index.STEMMED_LANGUAGES) == set(analysis.STEMMED_LANGUAGES) == schema_languages


def test_solrconfig_is_solr_9_with_caffeine_caches() -> None:
    root = ET.parse(CONF / "solrconfig.xml").getroot()
    assert root.findtext("luceneMatchVersion", "").startswith("9.")
    query = root.find("query")
    assert query is not None
    for cache in ("filterCache", "queryResultCache", "documentCache"):
        element = query.find(cache)
        assert element is not None, cache
        assert element.get("class") == "solr.search.CaffeineCache", cache
        assert int(element.get("size", "0")) > 0


def test_the_elision_article_files_are_shipped_with_the_configset() -> None:
    root = ET.parse(SCHEMA).getroot()
    names = {
        name
        for element in root.iter("filter")
        if element.get("articles")
        for name in element.get("articles", "").split(",")
    }
    assert names and all((CONF / name).is_file() for name in names), names


def test_without_the_jars_the_oracle_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDIAVAULT_LUCENE_JARS", str(tmp_path))
    with pytest.raises(OracleUnavailable, match="apt-get install -y liblucene8-java default-jdk-headless"):
        oracle_module.compiled()


def test_without_java_the_oracle_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OracleUnavailable, match="apt-get install -y liblucene8-java default-jdk-headless"):
        LuceneOracle()


def test_a_factory_lucene_does_not_know_stops_the_oracle_as_it_stops_solr(tmp_path: Path) -> None:
    schema = tmp_path / "schema.xml"
    schema.write_text(
        '<schema name="t" version="1.6"><fieldType name="t" class="solr.TextField"><analyzer>'
        '<tokenizer class="solr.StandardTokenizerFactory"/><filter class="solr.NoSuchFilterFactory"/>'
        "</analyzer></fieldType></schema>"
    )
    with pytest.raises(OracleUnavailable, match="NoSuchFilterFactory"):
        LuceneOracle(schema)
