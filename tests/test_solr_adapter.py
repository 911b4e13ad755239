"""Solr adapter specifics against the Solr contract server: retries, schema, alias and SWAP."""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

import pysolr
import pytest

from mediavault.errors import TransientError
from mediavault.search import SearchQuery
from mediavault.search.solr_index import SolrSearchIndex
from tests.test_search_conformance import DOCS, M1, M2


class RecordingProxy:
    """A loopback HTTP proxy in front of the Solr contract server that records every admin call
    with its parameters (the server itself records only paths)."""

    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self.upstream = (target.hostname, target.port)
        self.admin_calls: list[tuple[str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                url = urlparse(self.path)
                if "/admin/" in url.path:
                    proxy.admin_calls.append((url.path.rsplit("/", 1)[-1], dict(parse_qsl(url.query))))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                connection.close()
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type") or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{target.path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def core_actions(self, action: str) -> list[dict[str, str]]:
        return [p for area, p in self.admin_calls if area == "cores" and p.get("action") == action]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording_solr(fake_solr) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(fake_solr.url)
    yield proxy
    proxy.close()


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


def test_standalone_switch_is_a_core_swap(fake_solr, recording_solr: RecordingProxy) -> None:
    index = SolrSearchIndex(recording_solr.url, name=f"s{uuid.uuid4().hex[:8]}", mode="standalone")
    for generation, docs in ((1, DOCS), (2, DOCS[:1])):
        index.create_generation(generation)
        index.add(generation, docs)
        index.commit(generation)
        index.switch(generation)
    cores = set(fake_solr.collections)
    assert {index.name, f"{index.name}_previous"} <= cores
    assert index.live_generation() == 2 and index.search(SearchQuery()).total == 1

    def swapped_pairs() -> list[frozenset[str]]:  # SWAP is symmetric: core and other may be either way
        return [frozenset((p["core"], p["other"])) for p in recording_solr.core_actions("SWAP")]

    assert swapped_pairs() == [frozenset((index.name, f"{index.name}_g2"))], "generation 2 is swapped in"
    renames = [(p["core"], p["other"]) for p in recording_solr.core_actions("RENAME")]
    assert renames == [(f"{index.name}_g1", index.name), (f"{index.name}_g2", f"{index.name}_previous")]
    assert index.rollback() == 1 and index.search(SearchQuery()).total == 5
    assert swapped_pairs()[1:] == [frozenset((index.name, f"{index.name}_previous"))], "rollback swaps back"
    assert index.generations() == [1, 2]


# -- efficiency: what the adapter sends -------------------------------------------------------------
def updates(fake_solr, name: str, since: int = 0) -> list[tuple[str, str]]:
    """The update log of a collection/core (adds, deletes by id or query, commits) from ``since``."""
    return fake_solr.resolve(name).log[since:]


def deletes(log: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [entry for entry in log if entry[0].startswith("delete")]


def media_docs(media: str) -> list[dict]:
    return [d for d in DOCS if d["media_id"] == media]


@pytest.mark.parametrize("mode", ["cloud", "standalone"])
def test_filling_a_fresh_generation_sends_no_delete(fake_solr, mode: str) -> None:
    """Re-index projects every item with replace=True, also into a brand-new generation (and from
    workers that did not create it): nothing is there to delete, so nothing is sent."""
    index = SolrSearchIndex(fake_solr.url, name=f"f{uuid.uuid4().hex[:8]}", mode=mode)
    index.create_generation(1)
    worker = SolrSearchIndex(fake_solr.url, name=index.name, mode=mode)  # another process's adapter
    for adapter, media in ((index, M1), (worker, M2)):
        adapter.delete_media(1, media)
        adapter.add(1, media_docs(media))
    index.commit(1)
    log = updates(fake_solr, index.collection(1))
    assert deletes(log) == [], "no delete-by-query (nor by id) while filling a fresh generation"
    assert sum(1 for kind, _ in log if kind == "add") >= len(DOCS)
    index.switch(1)
    assert index.search(SearchQuery()).total == len(DOCS)


def test_reprojection_replaces_by_id_and_deletes_only_what_is_gone(fake_solr) -> None:
    index = SolrSearchIndex(fake_solr.url, name=f"r{uuid.uuid4().hex[:8]}")
    index.create_generation(1)
    index.add(1, DOCS)
    index.commit(1)
    index.switch(1)
    name = index.collection(1)
    first, second, third = media_docs(M1)

    start = len(updates(fake_solr, name))  # the same documents again (a tag or title edit)
    index.delete_media(1, M1)
    index.add(1, [first, second, third])
    index.commit(1)
    assert deletes(updates(fake_solr, name, start)) == [], "ids that come back are replaced, not deleted"
    assert index.search(SearchQuery(media_id=M1)).total == 3

    start = len(updates(fake_solr, name))  # a projection without the third statement
    index.delete_media(1, M1)
    index.add(1, [first, second])
    index.commit(1)
    assert deletes(updates(fake_solr, name, start)) == [("delete-id", third["id"])]
    assert index.search(SearchQuery(media_id=M1)).total == 2

    start = len(updates(fake_solr, name))  # the item is gone (deleted, or quarantined)
    index.delete_media(1, M1)
    index.commit(1)
    assert sorted(deletes(updates(fake_solr, name, start))) == [
        ("delete-id", first["id"]),
        ("delete-id", second["id"]),
    ]
    assert index.search(SearchQuery(media_id=M1)).total == 0


def test_only_documents_a_search_cannot_see_yet_are_deleted_by_query(fake_solr) -> None:
    """Re-projecting an item this adapter added since the last commit (a retried projection, or
    journal catch-up during a rebuild): its uncommitted documents are invisible to a search, so
    this one case deletes by query."""
    index = SolrSearchIndex(fake_solr.url, name=f"q{uuid.uuid4().hex[:8]}")
    index.create_generation(1)
    index.add(1, media_docs(M2))
    index.delete_media(1, M2)
    index.add(1, media_docs(M2)[:1])
    index.commit(1)
    assert deletes(updates(fake_solr, index.collection(1))) == [("delete-query", f"media_id:{M2}")]
    index.switch(1)
    assert [h.id for h in index.search(SearchQuery()).hits] == [media_docs(M2)[0]["id"]]


def test_an_edit_is_reindexed_without_any_delete(fake_solr, mongo_db, tmp_path) -> None:
    from mediavault.index import reindex
    from mediavault.index.index_store import MongoIndexStore
    from mediavault.index.reindex import IndexTarget
    from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
    from mediavault.media import edits
    from mediavault.settings import MediavaultSettings
    from mediavault.vault import LocalVault
    from tests.helpers import JFK_JSON, JFK_MEDIA

    index = SolrSearchIndex(fake_solr.url, name=f"e{uuid.uuid4().hex[:8]}")
    target = IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), index)
    request = IngestRequest(
        media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={"tags": ["a"]}
    )
    media_id = ingest(
        target.vault, request, MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    ).media_id
    reindex.full_rebuild(target)
    live = index.collection(index.live_generation() or 0)
    assert deletes(updates(fake_solr, live)) == []
    start = len(updates(fake_solr, live))
    edits.add_edit(target.vault, media_id, "fix-metadata", {"tags": ["b"]})
    reindex.reindex_media(target, [media_id])
    assert deletes(updates(fake_solr, live, start)) == []
    assert index.search(SearchQuery(tag="b")).total > 0 and index.search(SearchQuery(tag="a")).total == 0


def test_standalone_updates_do_not_ask_coreadmin_each_time(fake_solr) -> None:
    index = SolrSearchIndex(fake_solr.url, name=f"c{uuid.uuid4().hex[:8]}", mode="standalone")
    index.create_generation(1)
    index.add(1, DOCS)
    before = fake_solr.count("cores", "STATUS")
    for _ in range(3):
        index.delete_media(1, M1)
        index.add(1, media_docs(M1))
        index.commit(1)
        index.summary(1)
    assert fake_solr.count("cores", "STATUS") == before, "the generation's core is remembered"
    index.switch(1)  # the core is renamed: the adapter resolves it again, once
    before = fake_solr.count("cores", "STATUS")
    for _ in range(3):
        index.add(1, media_docs(M2))
        index.commit(1)
    assert fake_solr.count("cores", "STATUS") - before == 1
    assert index.live_generation() == 1 and index.search(SearchQuery()).total == len(DOCS)


def test_a_core_another_process_moved_is_found_again(fake_solr) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"
    builder = SolrSearchIndex(fake_solr.url, name=name, mode="standalone")
    builder.create_generation(1)
    builder.add(1, DOCS[:2])  # remembers that generation 1 is in core <name>_g1
    SolrSearchIndex(fake_solr.url, name=name, mode="standalone").switch(1)  # renamed to <name>
    builder.add(1, DOCS[2:])
    builder.commit(1)
    assert builder.search(SearchQuery()).total == len(DOCS)


# -- Lucene's term length limit ------------------------------------------------------------------------
def test_the_contract_server_refuses_an_immense_term_as_lucene_does(
    cloud: SolrSearchIndex, fake_solr
) -> None:
    core = pysolr.Solr(f"{fake_solr.url}/{cloud.collection(1)}")
    big = "é" * 16_384  # 32,768 UTF-8 bytes
    prepared = SolrSearchIndex._document(DOCS[0])
    with pytest.raises(pysolr.SolrError, match='immense term in field="tags"'):
        core.add([{**prepared, "id": "big", "tags": [big]}], commit=True)
    core.add([{**prepared, "id": "long-title", "title": big}], commit=True)  # the title is not indexed
    assert fake_solr.resolve(cloud.collection(1)).committed["long-title"].values["title"] == big


def test_the_adapter_never_sends_a_term_lucene_would_refuse(cloud: SolrSearchIndex, fake_solr) -> None:
    from mediavault.errors import InputError

    log = fake_solr.resolve(cloud.collection(1)).log
    before = len(log)
    with pytest.raises(InputError, match=r"speaker_name.*32766 bytes"):
        cloud.add(1, [{**DOCS[0], "id": "x", "speaker_name": "ж" * 16_384}])
    assert log[before:] == [], "nothing was sent"
    word = "Fußballweltmeisterschaft" * 5000  # one 120,000-character word: split into 40-char pieces
    cloud.add(1, [{**DOCS[0], "id": "y", "text": f"Er sagte {word}.", "title": "T" * 20_000}])
    cloud.commit(1)
    assert [h.id for h in cloud.search(SearchQuery(text=word[:1000])).hits] == ["y"]


def test_more_words_than_solr_accepts_is_a_clear_input_error(cloud: SolrSearchIndex) -> None:
    from mediavault.errors import InputError

    words = " ".join(f"w{i}" for i in range(100))
    assert cloud.search(SearchQuery(text=words)).total == 0  # 100 words x 10 fields: 1,000 clauses
    with pytest.raises(InputError, match="at most 100"):
        cloud.search(SearchQuery(text=words + " one-more"))


def test_purge_removes_documents_another_process_has_not_committed(fake_solr) -> None:
    name = f"p{uuid.uuid4().hex[:8]}"
    index = SolrSearchIndex(fake_solr.url, name=name)
    index.create_generation(1)
    index.add(1, media_docs(M2))
    index.commit(1)
    SolrSearchIndex(fake_solr.url, name=name).add(1, media_docs(M1))  # not committed, elsewhere
    index.purge_media(1, M1)
    index.purge_media(1, M2)
    index.commit(1)
    index.switch(1)
    assert index.search(SearchQuery()).total == 0
    assert deletes(updates(fake_solr, index.collection(1))) == [
        ("delete-query", f"media_id:{M1}"),
        ("delete-query", f"media_id:{M2}"),
    ]


def test_a_generation_built_with_an_older_configset_says_how_to_rebuild(tmp_path) -> None:
    import shutil

    from mediavault.errors import ConfigurationError
    from tests.fake_solr import FakeSolr
    from tests.lucene_oracle import SCHEMA

    conf = tmp_path / "conf"
    shutil.copytree(SCHEMA.parent, conf)
    schema = (conf / "schema.xml").read_text()
    older = schema.replace('<copyField source="text" dest="text_folded"/>', "")
    (conf / "schema.xml").write_text(older.replace('<field name="text_folded"', '<field name="text_gone"'))
    server = FakeSolr(schema=conf / "schema.xml").start()
    try:
        index = SolrSearchIndex(server.url, name="old")
        index.create_generation(1)
        index.add(1, DOCS)
        index.commit(1)
        index.switch(1)
        assert index.search(SearchQuery(media_id=M1)).total == 3, "filters alone still work"
        with pytest.raises(ConfigurationError, match=r"older configset.*reindex --full"):
            index.search(SearchQuery(text="country"))
    finally:
        server.stop()
