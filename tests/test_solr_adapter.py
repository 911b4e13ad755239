"""Solr adapter specifics against the Solr contract server: retries, schema, alias and SWAP."""

from __future__ import annotations

import uuid

import pysolr
import pytest

from mediavault.errors import TransientError
from mediavault.search import SearchQuery
from mediavault.search.solr_index import SolrSearchIndex
from tests.test_search_conformance import DOCS


@pytest.fixture
def cloud(fake_solr) -> SolrSearchIndex:
    index = SolrSearchIndex(fake_solr.url, name=f"t{uuid.uuid4().hex[:8]}", mode="cloud", retries=3)
    index.create_generation(1)
    index.add(1, DOCS)
    index.commit(1)
    index.switch(1)
    return index


def test_transient_faults_are_retried(cloud: SolrSearchIndex, fake_solr) -> None:
    fake_solr.fail_next = 2
    assert cloud.search(SearchQuery(text="country")).total == 3
    assert fake_solr.fail_next == 0


def test_persistent_faults_surface_as_transient_errors(cloud: SolrSearchIndex, fake_solr) -> None:
    fake_solr.fail_next = 10
    try:
        with pytest.raises(TransientError, match="keeps failing"):
            cloud.search(SearchQuery(text="country"))
    finally:
        fake_solr.fail_next = 0


def test_schema_violations_fail_at_once_without_retry(cloud: SolrSearchIndex, fake_solr) -> None:
    before = len(fake_solr.requests)
    with pytest.raises(pysolr.SolrError, match="unknown field 'colour'"):
        cloud.add(1, [{**DOCS[0], "id": "x", "colour": "red"}])
    assert len(fake_solr.requests) - before == 1, "a 400 must not be retried"


def test_cloud_switch_is_an_alias_move(cloud: SolrSearchIndex, fake_solr) -> None:
    cloud.create_generation(2)
    cloud.commit(2)
    cloud.switch(2)
    assert fake_solr.aliases[cloud.name] == f"{cloud.name}_g2"
    assert fake_solr.aliases[f"{cloud.name}_previous"] == f"{cloud.name}_g1"
    assert cloud.search(SearchQuery()).total == 0
    assert cloud.rollback() == 1 and cloud.search(SearchQuery()).total == 5


def test_generations_ignore_other_collections_on_the_same_solr(cloud: SolrSearchIndex, fake_solr) -> None:
    other = SolrSearchIndex(fake_solr.url, name=f"{cloud.name}x", mode="cloud")
    other.create_generation(7)
    assert cloud.generations() == [1]
    assert other.generations() == [7]


def test_standalone_switch_is_a_core_swap(fake_solr) -> None:
    index = SolrSearchIndex(fake_solr.url, name=f"s{uuid.uuid4().hex[:8]}", mode="standalone")
    for generation, docs in ((1, DOCS), (2, DOCS[:1])):
        index.create_generation(generation)
        index.add(generation, docs)
        index.commit(generation)
        index.switch(generation)
    cores = set(fake_solr.collections)
    assert {index.name, f"{index.name}_previous"} <= cores
    assert index.live_generation() == 2 and index.search(SearchQuery()).total == 1
    swaps = [r for r in fake_solr.requests if r.endswith("/admin/cores")]
    assert swaps, "core admin calls were made"
    assert index.rollback() == 1 and index.search(SearchQuery()).total == 5
    assert index.generations() == [1, 2]
