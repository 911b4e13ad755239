"""Solr search backend (pysolr), for SolrCloud (alias switch) and standalone Solr (core SWAP).

Generations are collections (cloud) or cores (standalone) named ``<name>_g<N>``.
* SolrCloud: the alias ``<name>`` points at the live collection and ``<name>_previous`` at the one
  before; CREATEALIAS replaces an alias atomically.
* Standalone: the live core is called ``<name>`` and the previous one ``<name>_previous``; a new
  generation is swapped in with the CoreAdmin SWAP action (atomic), and each core carries a marker
  document (id ``__generation__``) saying which generation it holds.
Text is analysed by Solr, with the configset's chains (``deployments/solr/mediavault/conf/schema.xml``
mirrors the Tantivy fields: ``text``, ``text_folded``, ``text_<lang>``). Each query word or quoted
phrase is sent as its own request parameter and matched with ``{!field f=... v=$qN}`` in each
field (Solr analyses it and builds a term or phrase query; no syntax is ever read from it); all
pieces must match. Every filter value is likewise a parameter behind ``{!term f=... v=$param}``.

Updates replace documents by id (ids are deterministic) and delete only the ids of a media item
that its new projection no longer has; standalone mode remembers which core holds a generation
instead of asking CoreAdmin on every update.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import pysolr
import requests

from mediavault.errors import ConfigurationError, InputError, TransientError
from mediavault.index.projection import doc_digest
from mediavault.search import FACET_FIELDS, MediaHit, SearchHit, SearchQuery, SearchResult, split_query

MARKER_ID = "__generation__"
FIELDS = "id,kind,media_id,run_id,seq,start,end,speaker,speaker_name,language,text,title,tags,score"
MEDIA_FIELDS = "id,media_id,language,text,title,tags,score"
T = TypeVar("T")
_GEN = re.compile(r"_g(\d+)$")

EXACT_FIELD, FOLDED_FIELD = "text", "text_folded"
EXACT_BOOST = 2
# The configset's stemmed fields, text_<code> (the same languages as the Tantivy backend).
STEMMED_LANGUAGES = ("en", "de", "fr", "it", "es", "pt", "nl", "ru")
# Indexed string fields: Lucene refuses a term over 32,766 UTF-8 bytes, and with it the document.
STRING_FIELDS = ("id", "media_id", "run_id", "owner", "speaker", "speaker_name", "language", "tags")
MAX_TERM_BYTES = 32766
# Each word or phrase is matched in up to 10 fields; Lucene refuses a query of more than 1,024
# term/phrase clauses in all (Solr's maxBooleanClauses), so a query may hold at most 100 of them.
MAX_PIECES = 100
_MARK = re.compile(r"(<b>|</b>)")


def language_key(language: str | None) -> str | None:
    """``en``, ``en-US``, ``EN_gb`` -> ``en`` when the configset has a stemmed field for it."""
    if not language:
        return None
    key = language.strip().lower().replace("_", "-").split("-", 1)[0]
    return key if key in STEMMED_LANGUAGES else None


def stem_field(language: str) -> str:
    return f"text_{language}"


def query_fields(language: str | None) -> list[str]:
    """The fields a query piece is matched in: the written form, the folded form, and the stems of
    the query's language (all languages' when it has none)."""
    key = language_key(language)
    stems = [stem_field(key)] if key else [stem_field(code) for code in STEMMED_LANGUAGES]
    return [EXACT_FIELD, FOLDED_FIELD, *stems]


def _snippet(marked: str) -> str:
    """Solr's unified highlighter escapes only ``& < > " ' /``; re-escape the text between the
    marks the way the Tantivy backend does, so both return the same HTML."""
    return "".join(
        part if part in ("<b>", "</b>") else html.escape(html.unescape(part)) for part in _MARK.split(marked)
    )


@dataclass
class _Replacement:
    """A media item being re-projected: its ids visible before, and the ids added since."""

    media_id: str
    before: set[str]
    kept: set[str] = field(default_factory=set)


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
        self._lock = threading.RLock()
        self._cores: dict[int, str] = {}  # standalone: which core holds a generation (cached)
        self._fresh: set[int] = set()  # generations created here and not committed since
        self._unflushed: dict[int, set[str]] = {}  # media ids added here since the last commit
        # (thread, generation) -> the media item that thread is re-projecting
        self._replacing: dict[tuple[int, int], _Replacement] = {}

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
        previous core it was swapped into. Standalone resolutions are cached until this adapter
        creates, switches, rolls back or drops a generation, or the cached core is gone (404)."""
        own = self.collection(generation)
        if self.mode == "cloud":
            return own
        with self._lock:
            cached = self._cores.get(generation)
        if cached is not None:
            return cached
        names = self._names()
        found = own if own in names else None
        for fixed in (self.name, f"{self.name}_previous"):
            if found is None and fixed in names and self._core_generation(fixed) == generation:
                found = fixed
        if found is None:
            raise ConfigurationError(f"search generation {generation} does not exist in Solr at {self.url}")
        with self._lock:
            self._cores[generation] = found
        return found

    def _forget_cores(self) -> None:
        with self._lock:
            self._cores.clear()

    def _on_core(self, generation: int, action: Callable[[pysolr.Solr], T]) -> T:
        """Run ``action`` on the generation's core; a cached core that has gone (another process
        swapped or dropped it) is resolved again once."""
        try:
            return self._retry(lambda: action(self._core(self._target(generation))))
        except pysolr.SolrError as exc:
            if self.mode == "cloud" or "HTTP 404" not in str(exc):
                raise
            self._forget_cores()
            return self._retry(lambda: action(self._core(self._target(generation))))

    def _names(self) -> list[str]:
        if self.mode == "cloud":
            return list(self._admin("collections", action="LIST").get("collections", []))
        # indexInfo=false: the names only, without opening every core's index for its statistics
        return list(self._admin("cores", action="STATUS", indexInfo="false").get("status", {}).keys())

    # -- generations --------------------------------------------------------------------------
    def create_generation(self, generation: int) -> None:
        name = self.collection(generation)
        if name in self._names():
            self.drop_generation(generation)
        self._forget_cores()
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
        with self._lock:
            self._fresh.add(generation)
            self._unflushed.pop(generation, None)
            for key in [k for k in self._replacing if k[1] == generation]:
                del self._replacing[key]

    def add(self, generation: int, documents: list[dict[str, Any]]) -> None:
        prepared = [self._document(d) for d in documents]
        with self._lock:
            replacing = self._replacing.get((threading.get_ident(), generation))
            added = self._unflushed.setdefault(generation, set())
            for document in prepared:
                added.add(document["media_id"])
                if replacing is not None and document["media_id"] == replacing.media_id:
                    replacing.kept.add(document["id"])
        for start in range(0, len(prepared), self.batch_size):
            batch = prepared[start : start + self.batch_size]
            self._on_core(generation, lambda core, batch=batch: core.add(batch, commit=False))

    @staticmethod
    def _document(document: dict[str, Any]) -> dict[str, Any]:
        """The Solr document of a projected statement: its fields, the digests, and the text again
        in the stemmed field of its language (``text_folded`` is a copyField of ``text``)."""
        digest_a, digest_b = (
            (document["digest_a"], document["digest_b"]) if "digest_a" in document else doc_digest(document)
        )
        fields = {k: v for k, v in document.items() if v not in (None, [])}
        for name in STRING_FIELDS:
            values = fields.get(name)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and len(value.encode("utf-8")) > MAX_TERM_BYTES:
                    raise InputError(
                        f"media {document.get('media_id')}",
                        name,
                        f"a value of {len(value.encode('utf-8'))} UTF-8 bytes is longer than the "
                        f"{MAX_TERM_BYTES} bytes Solr (Lucene) can index as one term",
                    )
        fields["ingested_at"] = _solr_date(document["ingested_at"])
        fields["digest_a"], fields["digest_b"] = digest_a, digest_b
        key = language_key(fields.get("language"))
        if key and "text" in fields:
            fields[stem_field(key)] = fields["text"]
        return fields

    def delete_media(self, generation: int, media_id: str) -> None:
        """Make way for a media item's new projection without a delete-by-query: documents are
        replaced by id when re-added, and the ids the item had before but no longer adds are
        deleted by id once its projection is done (at the next ``delete_media`` of this thread or
        at ``commit``). Only an item this adapter added since the last commit, whose documents a
        search cannot see yet, is removed by query."""
        if not re.fullmatch(r"[0-9a-f]{64}", media_id):
            raise ValueError(f"not a media id: {media_id!r}")
        self._finish_replacements(generation, threading.get_ident())
        with self._lock:
            unseen = media_id in self._unflushed.get(generation, set())
            fresh = generation in self._fresh
        if unseen:
            self._on_core(generation, lambda core: core.delete(q=f"media_id:{media_id}", commit=False))
            return
        before = set() if fresh else self._ids_of(generation, media_id)
        if before:
            with self._lock:
                self._replacing[(threading.get_ident(), generation)] = _Replacement(media_id, before)

    def purge_media(self, generation: int, media_id: str) -> None:
        """Remove every document of a media item, committed or not, whoever added it: a
        delete-by-query, for erasure (``delete_media`` sees only what a search sees)."""
        if not re.fullmatch(r"[0-9a-f]{64}", media_id):
            raise ValueError(f"not a media id: {media_id!r}")
        with self._lock:
            for key in [
                k for k, r in self._replacing.items() if k[1] == generation and r.media_id == media_id
            ]:
                del self._replacing[key]
        self._on_core(generation, lambda core: core.delete(q=f"media_id:{media_id}", commit=False))

    def _ids_of(self, generation: int, media_id: str) -> set[str]:
        """The ids of a media item's documents in a generation (committed ones: what a search sees)."""
        ids: set[str] = set()
        mark = "*"
        while True:
            params = {
                "fq": "{!term f=media_id v=$p_media}",
                "p_media": media_id,
                "fl": "id",
                "sort": "id asc",
                "rows": self.batch_size,
                "cursorMark": mark,
            }
            result = self._on_core(generation, lambda core, params=params: core.search("*:*", **params))
            ids.update(doc["id"] for doc in result.docs)
            if not result.docs or result.nextCursorMark in (None, mark):
                return ids
            mark = result.nextCursorMark

    def _finish_replacements(self, generation: int, thread: int | None = None) -> None:
        """Delete, by id, what finished re-projections no longer have (one thread's, or all)."""
        with self._lock:
            keys = [k for k in self._replacing if k[1] == generation and thread in (None, k[0])]
            done = [self._replacing.pop(k) for k in keys]
        gone = sorted(i for r in done for i in r.before - r.kept)
        self._delete_ids(generation, gone)

    def _delete_ids(self, generation: int, ids: Iterable[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start : start + self.batch_size]
            self._on_core(generation, lambda core, batch=batch: core.delete(id=batch, commit=False))

    def commit(self, generation: int) -> None:
        self._finish_replacements(generation)
        self._on_core(generation, lambda core: core.commit())
        with self._lock:
            self._fresh.discard(generation)
            self._unflushed.pop(generation, None)

    def summary(self, generation: int) -> tuple[int, int, int]:
        result = self._on_core(
            generation,
            lambda core: core.search(
                "*:*",
                **{
                    "fq": f"-id:{MARKER_ID}",
                    "rows": 0,
                    "stats": "true",
                    "stats.field": ["digest_a", "digest_b"],
                },
            ),
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
        self._forget_cores()
        try:
            self._switch(generation)
        finally:
            self._forget_cores()

    def _switch(self, generation: int) -> None:
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
        self._forget_cores()
        try:
            return self._rollback()
        finally:
            self._forget_cores()

    def _rollback(self) -> int:
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
        self._forget_cores()
        with self._lock:
            self._fresh.discard(generation)
            self._unflushed.pop(generation, None)
            for key in [k for k in self._replacing if k[1] == generation]:
                del self._replacing[key]
        name = self.collection(generation)
        if name not in self._names():
            return
        if self.mode == "cloud":
            self._admin("collections", action="DELETE", name=name)
        else:
            self._admin("cores", action="UNLOAD", core=name, deleteIndex="true", deleteInstanceDir="true")

    def drop_previous(self) -> int | None:
        self._forget_cores()
        try:
            if self.mode == "cloud":
                previous = self._aliases().get(f"{self.name}_previous")
                if not previous:
                    return None
                self._admin("collections", action="DELETEALIAS", name=f"{self.name}_previous")
                generation = self._generation_of(previous)
                if previous in self._names():
                    self._admin("collections", action="DELETE", name=previous)
                return generation
            core = f"{self.name}_previous"
            if core not in self._names():
                return None
            generation = self._core_generation(core)
            self._admin("cores", action="UNLOAD", core=core, deleteIndex="true", deleteInstanceDir="true")
            return generation
        finally:
            self._forget_cores()

    def destroy(self) -> None:
        self._forget_cores()
        with self._lock:
            self._fresh.clear()
            self._unflushed.clear()
            self._replacing.clear()
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
        phrases, words = split_query(query.text)
        pieces = list(dict.fromkeys([*phrases, *words]))
        if query.text.strip() and not pieces:
            return SearchResult(total=0, hits=[])
        if len(pieces) > MAX_PIECES:
            raise InputError(
                "search", "text", f"{len(pieces)} words and phrases; Solr takes at most {MAX_PIECES}"
            )
        params, q = _text_query(pieces, query.language, query.highlight)
        params.update({"fl": FIELDS, "start": query.offset, "rows": query.limit})
        filters, values = _filters(query)
        params.update(values)
        params["fq"] = [f"-id:{MARKER_ID}", *filters, "-kind:media"]
        if query.speaker:
            params["fq"].append("{!bool should=$p_by_name should=$p_by_label}")
            params["p_by_name"] = "{!term f=speaker_name v=$p_speaker}"
            params["p_by_label"] = "{!term f=speaker v=$p_speaker}"
            params["p_speaker"] = query.speaker
        if query.sort == "time":
            params["sort"] = "start asc,id asc"
        if query.facets:
            params.update(
                {"facet": "true", "facet.field": list(FACET_FIELDS), "facet.mincount": 1, "facet.limit": 20}
            )
        result = self._select(q, params)
        hits = []
        for doc in result.docs:
            text = doc.get("text", "")
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
                    text=text,
                    title=doc.get("title", ""),
                    tags=doc.get("tags", []),
                    kind=doc.get("kind") or "statement",
                    snippet=_highlighted(result, doc["id"], text, doc.get("language")),
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
        media = self._media_hits(query, pieces) if pieces and query.wants_media() else []
        return SearchResult(total=int(result.hits), hits=hits, facets=facets, media=media)

    def _media_hits(self, query: SearchQuery, pieces: list[str]) -> list[MediaHit]:
        """Media items whose title, description or tags hold every word, best first."""
        params, q = _text_query(pieces, query.language, query.highlight)
        filters, values = _filters(query)
        params.update({"fl": MEDIA_FIELDS, "start": 0, "rows": query.media_limit, **values})
        params["fq"] = [*filters, "kind:media"]
        result = self._select(q, params)
        return [
            MediaHit(
                media_id=doc["media_id"],
                title=doc.get("title", ""),
                tags=doc.get("tags", []),
                language=doc.get("language", ""),
                snippet=_highlighted(result, doc["id"], doc.get("text", ""), doc.get("language")),
                score=float(doc.get("score", 0.0)),
            )
            for doc in result.docs
        ]

    def _select(self, q: str, params: dict[str, Any]) -> pysolr.Results:
        """A search on the live generation; one built with an older configset (a field the
        query names is missing) is reported with how to rebuild it."""
        core = self._core(self.name)
        try:
            return self._retry(lambda: core.search(q, **params))
        except pysolr.SolrError as exc:
            if "undefined field" not in str(exc):
                raise
            raise ConfigurationError(
                f"the live Solr generation ({self.name}) was built with an older configset: upload "
                "deployments/solr/mediavault as a new configset (MEDIAVAULT_SOLR_CONFIGSET) and "
                f"rebuild it: mediavault reindex --full ({exc})"
            ) from None


def _text_query(pieces: list[str], language: str | None, highlight: bool) -> tuple[dict[str, Any], str]:
    """Request parameters and ``q`` matching every piece (word or phrase) in one of the fields.

    Each piece is a parameter that Solr analyses per field: ``{!field}`` builds a term or a phrase
    query from it and reads no syntax. ``*:*`` when there are no pieces."""
    params: dict[str, Any] = {"defType": "lucene", "q.op": "OR"}
    fields = query_fields(language)
    clauses = []
    for number, piece in enumerate(pieces):
        params[f"q{number}"] = piece
        members = " ".join(
            f"{{!field f={name} v=$q{number}}}" + (f"^{EXACT_BOOST}" if name == EXACT_FIELD else "")
            for name in fields
        )
        clauses.append(f"+({members})")
    if highlight and clauses:
        params.update(
            {
                "hl": "true",
                "hl.fl": ",".join(fields),
                "hl.method": "unified",
                "hl.requireFieldMatch": "true",
                "hl.encoder": "html",
                "hl.tag.pre": "<b>",
                "hl.tag.post": "</b>",
                "hl.fragsize": 0,
            }
        )
    return params, " ".join(clauses) or "*:*"


def _filters(query: SearchQuery) -> tuple[list[str], dict[str, Any]]:
    """The ``fq`` of the exact-value filters (not the speaker), and the parameters holding their
    values: a value is never part of the query string."""
    filters, params = [], {}
    for name in ("media_id", "owner", "language"):
        value = getattr(query, name)
        if value:
            filters.append(f"{{!term f={name} v=$p_{name}}}")
            params[f"p_{name}"] = value
    if query.tag:  # multi-valued: the term matches any one of a document's tags
        filters.append("{!term f=tags v=$p_tag}")
        params["p_tag"] = query.tag
    if query.date_from or query.date_to:
        low = _solr_date(query.date_from) if query.date_from else "*"
        high = _solr_date(query.date_to) if query.date_to else "*"
        filters.append(f"ingested_at:[{low} TO {high}]")
    return filters, params


def _highlighted(result: pysolr.Results, doc_id: str, text: str, language: str | None) -> str:
    """The statement as HTML with the matches in <b>: through the written form first, then the
    folded form, then the stems of the statement's language (as the Tantivy backend does)."""
    marked = (result.highlighting or {}).get(doc_id) or {}
    key = language_key(language)
    for name in (EXACT_FIELD, FOLDED_FIELD, *([stem_field(key)] if key else [])):
        snippets = marked.get(name) or []
        if snippets and snippets[0]:
            return _snippet(snippets[0])
    return html.escape(text)
