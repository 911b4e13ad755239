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
from tests.test_search_conformance import DOCS


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
