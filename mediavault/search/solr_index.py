"""Solr search backend (pysolr), for SolrCloud (alias switch) and standalone Solr (core SWAP).

Generations are collections (cloud) or cores (standalone) named ``<name>_g<N>``.
* SolrCloud: the alias ``<name>`` points at the live collection and ``<name>_previous`` at the one
  before; CREATEALIAS replaces an alias atomically.
* Standalone: the live core is called ``<name>`` and the previous one ``<name>_previous``; a new
  generation is swapped in with the CoreAdmin SWAP action (atomic), and each core carries a marker
  document (id ``__generation__``) saying which generation it holds.
Queries contain only analysed word tokens; every filter value is passed as a separate request
parameter dereferenced by ``{!term f=... v=$param}``, so user input is never parsed as syntax.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pysolr
import requests

from mediavault.errors import ConfigurationError, TransientError
from mediavault.projection import doc_digest
from mediavault.search import FACET_FIELDS, SearchHit, SearchQuery, SearchResult, split_query

MARKER_ID = "__generation__"
FIELDS = "id,media_id,run_id,seq,start,end,speaker,speaker_name,text,title,score"
T = TypeVar("T")
_GEN = re.compile(r"_g(\d+)$")

_WORD = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """How this adapter splits query text today: alphanumeric runs, lower-cased, long tokens
    dropped. Solr's own analysis should do this instead (the shipped schema tokenizes with
    StandardTokenizer, which differs on apostrophes and dots)."""
    return [t.lower() for t in _WORD.findall(text) if len(t) <= 40]


def _solr_date(value: datetime | str) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    message = str(exc)
    return isinstance(exc, pysolr.SolrError) and bool(re.search(r"HTTP 5\d\d|timed out|Connection", message))


class SolrSearchIndex:
    def __init__(
        self,
        url: str,
        name: str = "mediavault",
        mode: Literal["cloud", "standalone"] = "cloud",
        configset: str = "mediavault",
        timeout: float = 30.0,
        retries: int = 3,
        batch_size: int = 1000,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.mode = mode
        self.configset = configset
        self.timeout = timeout
        self.retries = retries
        self.batch_size = batch_size
        self.session = requests.Session()
        if auth:
            self.session.auth = auth

    # -- plumbing -----------------------------------------------------------------------------
    def _retry(self, action: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return action()
            except Exception as exc:
                if attempt >= self.retries or not _is_transient(exc):
                    if _is_transient(exc):
                        raise TransientError(f"Solr at {self.url} keeps failing: {exc}") from exc
                    raise
                time.sleep(0.25 * 2**attempt)
        raise AssertionError("unreachable")

    def _core(self, core: str) -> pysolr.Solr:
        return pysolr.Solr(f"{self.url}/{core}", timeout=self.timeout, session=self.session)

    def _admin(self, area: str, **params: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            response = self.session.get(
                f"{self.url}/admin/{area}", params={**params, "wt": "json"}, timeout=self.timeout
            )
            if response.status_code >= 500:
                raise pysolr.SolrError(f"HTTP {response.status_code}: {response.text[:300]}")
            body = response.json()
            if response.status_code >= 400 or body.get("error"):
                raise ConfigurationError(f"Solr {area} {params.get('action')}: {body.get('error', body)}")
            return body

        return self._retry(call)

    def collection(self, generation: int) -> str:
        return f"{self.name}_g{generation}"

    def _target(self, generation: int) -> str:
        """Where a generation lives now: its own collection/core, or (standalone) the live or
        previous core it was swapped into."""
        own = self.collection(generation)
        if self.mode == "cloud":
            return own
        names = self._names()
        if own in names:
            return own
        for fixed in (self.name, f"{self.name}_previous"):
            if fixed in names and self._core_generation(fixed) == generation:
                return fixed
        raise ConfigurationError(f"search generation {generation} does not exist in Solr at {self.url}")

    def _names(self) -> list[str]:
        if self.mode == "cloud":
            return list(self._admin("collections", action="LIST").get("collections", []))
        return list(self._admin("cores", action="STATUS").get("status", {}).keys())

    # -- generations --------------------------------------------------------------------------
    def create_generation(self, generation: int) -> None:
        name = self.collection(generation)
        if name in self._names():
            self.drop_generation(generation)
        if self.mode == "cloud":
            self._admin(
                "collections",
                action="CREATE",
                name=name,
                **{"collection.configName": self.configset},
                numShards=1,
                replicationFactor=1,
            )
        else:
            self._admin("cores", action="CREATE", name=name, configSet=self.configset)
            self._retry(
                lambda: self._core(name).add(
                    [{"id": MARKER_ID, "media_id": MARKER_ID, "generation": generation}], commit=True
                )
            )

    def add(self, generation: int, documents: list[dict[str, Any]]) -> None:
        core = self._core(self._target(generation))
        prepared = [self._document(d) for d in documents]
        for start in range(0, len(prepared), self.batch_size):
            batch = prepared[start : start + self.batch_size]
            self._retry(lambda batch=batch: core.add(batch, commit=False))

    @staticmethod
    def _document(document: dict[str, Any]) -> dict[str, Any]:
        digest_a, digest_b = (
            (document["digest_a"], document["digest_b"]) if "digest_a" in document else doc_digest(document)
        )
        fields = {k: v for k, v in document.items() if v not in (None, [])}
        fields["ingested_at"] = _solr_date(document["ingested_at"])
        fields["digest_a"], fields["digest_b"] = digest_a, digest_b
        return fields

    def delete_media(self, generation: int, media_id: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", media_id):
            raise ValueError(f"not a media id: {media_id!r}")
        core = self._core(self._target(generation))
        self._retry(lambda: core.delete(q=f"media_id:{media_id}", commit=False))

    def commit(self, generation: int) -> None:
        core = self._core(self._target(generation))
        self._retry(lambda: core.commit())

    def summary(self, generation: int) -> tuple[int, int, int]:
        core = self._core(self._target(generation))
        result = self._retry(
            lambda: core.search(
                "*:*",
                **{
                    "fq": f"-id:{MARKER_ID}",
                    "rows": 0,
                    "stats": "true",
                    "stats.field": ["digest_a", "digest_b"],
                },
            )
        )
        fields = (result.stats or {}).get("stats_fields", {})

        def total(name: str) -> int:
            value = (fields.get(name) or {}).get("sum")
            return int(value) if value is not None else 0

        return int(result.hits), total("digest_a"), total("digest_b")

    def _aliases(self) -> dict[str, str]:
        return self._admin("collections", action="LISTALIASES").get("aliases", {})

    def _core_generation(self, core: str) -> int | None:
        def get() -> int | None:
            response = self.session.get(
                f"{self.url}/{core}/get", params={"id": MARKER_ID, "wt": "json"}, timeout=self.timeout
            )
            if response.status_code == 404:
                return None
            doc = response.json().get("doc")
            return int(doc["generation"]) if doc else None

        return self._retry(get)

    def _generation_of(self, name: str | None) -> int | None:
        match = _GEN.search(name or "")
        return int(match.group(1)) if match else None

    def live_generation(self) -> int | None:
        if self.mode == "cloud":
            return self._generation_of(self._aliases().get(self.name))
        return self._core_generation(self.name) if self.name in self._names() else None

    def previous_generation(self) -> int | None:
        if self.mode == "cloud":
            return self._generation_of(self._aliases().get(f"{self.name}_previous"))
        previous = f"{self.name}_previous"
        return self._core_generation(previous) if previous in self._names() else None

    def switch(self, generation: int) -> None:
        target = self.collection(generation)
        if self.mode == "cloud":
            previous = self._aliases().get(self.name)
            self._admin("collections", action="CREATEALIAS", name=self.name, collections=target)
            if previous and previous != target:
                self._admin(
                    "collections", action="CREATEALIAS", name=f"{self.name}_previous", collections=previous
                )
            return
        names = self._names()
        if self.name not in names:
            self._admin("cores", action="RENAME", core=target, other=self.name)
            return
        self._admin("cores", action="SWAP", core=self.name, other=target)
        if f"{self.name}_previous" in names:
            self._admin(
                "cores",
                action="UNLOAD",
                core=f"{self.name}_previous",
                deleteIndex="true",
                deleteInstanceDir="true",
            )
        self._admin("cores", action="RENAME", core=target, other=f"{self.name}_previous")

    def rollback(self) -> int:
        if self.mode == "cloud":
            aliases = self._aliases()
            previous, live = aliases.get(f"{self.name}_previous"), aliases.get(self.name)
            if not previous:
                raise ConfigurationError("no previous search generation to roll back to")
            self._admin("collections", action="CREATEALIAS", name=self.name, collections=previous)
            self._admin("collections", action="CREATEALIAS", name=f"{self.name}_previous", collections=live)
            return self._generation_of(previous) or 0
        if f"{self.name}_previous" not in self._names():
            raise ConfigurationError("no previous search generation to roll back to")
        self._admin("cores", action="SWAP", core=self.name, other=f"{self.name}_previous")
        return self.live_generation() or 0

    def drop_generation(self, generation: int) -> None:
        name = self.collection(generation)
        if name not in self._names():
            return
        if self.mode == "cloud":
            self._admin("collections", action="DELETE", name=name)
        else:
            self._admin("cores", action="UNLOAD", core=name, deleteIndex="true", deleteInstanceDir="true")

    def destroy(self) -> None:
        if self.mode == "cloud":
            for alias in (self.name, f"{self.name}_previous"):
                self._admin("collections", action="DELETEALIAS", name=alias)
            for name in self._names():
                if name.startswith(f"{self.name}_g"):
                    self._admin("collections", action="DELETE", name=name)
            return
        for name in self._names():
            if name in (self.name, f"{self.name}_previous") or name.startswith(f"{self.name}_g"):
                self._admin("cores", action="UNLOAD", core=name, deleteIndex="true", deleteInstanceDir="true")

    def generations(self) -> list[int]:
        own = re.compile(rf"^{re.escape(self.name)}_g(\d+)$")
        found: set[int | None] = {int(m.group(1)) for n in self._names() if (m := own.match(n))}
        if self.mode == "standalone":
            for fixed in (self.name, f"{self.name}_previous"):
                if fixed in self._names():
                    found.add(self._core_generation(fixed))
        return sorted(g for g in found if g is not None)

    # -- search -------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        clauses = []
        phrases, words = split_query(query.text)
        for piece in [*phrases, *words]:
            terms = tokens(piece)
            if len(terms) == 1:
                clauses.append(f"text:{terms[0]}")
            elif terms:
                clauses.append('text:"' + " ".join(terms) + '"')
        if query.text.strip() and not clauses:
            return SearchResult(total=0, hits=[])
        params: dict[str, Any] = {
            "fl": FIELDS,
            "start": query.offset,
            "rows": query.limit,
            "fq": [f"-id:{MARKER_ID}", "-kind:media"],
        }
        for field in ("media_id", "owner", "language"):
            value = getattr(query, field)
            if value:
                params["fq"].append(f"{{!term f={field} v=$p_{field}}}")
                params[f"p_{field}"] = value
        if query.tag:  # multi-valued: the term matches any one of a document's tags
            params["fq"].append("{!term f=tags v=$p_tag}")
            params["p_tag"] = query.tag
        if query.speaker:
            params["fq"].append("{!bool should=$p_by_name should=$p_by_label}")
            params["p_by_name"] = "{!term f=speaker_name v=$p_speaker}"
            params["p_by_label"] = "{!term f=speaker v=$p_speaker}"
            params["p_speaker"] = query.speaker
        if query.date_from or query.date_to:
            low = _solr_date(query.date_from) if query.date_from else "*"
            high = _solr_date(query.date_to) if query.date_to else "*"
            params["fq"].append(f"ingested_at:[{low} TO {high}]")
        if query.sort == "time":
            params["sort"] = "start asc,id asc"
        if query.highlight and clauses:
            params.update(
                {
                    "hl": "true",
                    "hl.fl": "text",
                    "hl.method": "unified",
                    "hl.encoder": "html",
                    "hl.tag.pre": "<b>",
                    "hl.tag.post": "</b>",
                    "hl.fragsize": 0,
                }
            )
        if query.facets:
            params.update(
                {"facet": "true", "facet.field": list(FACET_FIELDS), "facet.mincount": 1, "facet.limit": 20}
            )
        q = " AND ".join(clauses) or "*:*"
        core = self._core(self.name)
        result = self._retry(lambda: core.search(q, **params))
        hits = []
        for doc in result.docs:
            highlighted = (result.highlighting.get(doc["id"], {}).get("text") or [None])[0]
            hits.append(
                SearchHit(
                    id=doc["id"],
                    media_id=doc["media_id"],
                    run_id=doc.get("run_id", ""),
                    seq=doc.get("seq", 0),
                    start=doc["start"],
                    end=doc["end"],
                    speaker=doc.get("speaker", ""),
                    speaker_name=doc.get("speaker_name", ""),
                    text=doc.get("text", ""),
                    title=doc.get("title", ""),
                    snippet=highlighted or html.escape(doc.get("text", "")),
                    score=float(doc.get("score", 0.0)) if query.sort == "relevance" else 0.0,
                )
            )
        facets: dict[str, dict[str, int]] = {}
        for name, pairs in (result.facets or {}).get("facet_fields", {}).items():
            facets[name] = {
                str(pairs[i]): int(pairs[i + 1])
                for i in range(0, len(pairs), 2)
                if pairs[i] not in ("", MARKER_ID)
            }
        return SearchResult(total=int(result.hits), hits=hits, facets=facets)
