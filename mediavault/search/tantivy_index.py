"""The embedded search backend: Tantivy indexes in generation directories under one base path.

``CURRENT.json`` names the live generation and the previous one; it is replaced atomically
(write, fsync, rename), so readers always open a complete generation.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tantivy

from mediavault.errors import ConfigurationError
from mediavault.index.projection import doc_digest
from mediavault.search import (
    FACET_FIELDS,
    MediaHit,
    SearchHit,
    SearchQuery,
    SearchResult,
    analysis,
    split_query,
)

RAW_FIELDS = (
    "id",
    "kind",
    "media_id",
    "run_id",
    "owner",
    "speaker",
    "speaker_name",
    "language",
    "tags",
    "title",
)
POINTER = "CURRENT.json"
FACET_AGGREGATIONS = {name: {"terms": {"field": name, "size": 20}} for name in FACET_FIELDS}

ANALYSIS_MARKER = "ANALYSIS"


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in RAW_FIELDS:
        builder.add_text_field(name, stored=True, fast=name != "title", tokenizer_name="raw")
    for field in analysis.ANALYZERS:  # the analysed text fields; only the written text is stored
        builder.add_text_field(
            field, stored=field == analysis.EXACT_FIELD, tokenizer_name=field, index_option="position"
        )
    builder.add_integer_field("seq", stored=True, indexed=False)
    builder.add_float_field("start", stored=True, fast=True, indexed=True)
    builder.add_float_field("end", stored=True, fast=True, indexed=False)
    builder.add_date_field("ingested_at", stored=True, fast=True, indexed=True)
    builder.add_integer_field("digest_a", fast=True, indexed=False)
    builder.add_integer_field("digest_b", fast=True, indexed=False)
    return builder.build()


class TantivySearchIndex:
    """SearchIndex on local disk. One writer per generation at a time (Tantivy's own lock)."""

    def __init__(self, base: Path, writer_heap_bytes: int = 128 * 1024 * 1024) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.schema = build_schema()
        self.heap = writer_heap_bytes
        self._writers: dict[int, Any] = {}
        self._indexes: dict[int, tantivy.Index] = {}
        self._reloaded: dict[int, tuple[int, int, int] | None] = {}
        self._lock = threading.RLock()

    def _dir(self, generation: int) -> Path:
        return self.base / f"gen-{generation:06d}"

    def _open(self, path: Path, reuse: bool) -> tantivy.Index:
        """Open (or create) a generation; one built with another text analysis is refused, since
        its terms would not match the queries (the version is kept beside it, ``ANALYSIS``)."""
        stale = ConfigurationError(
            f"the search index at {path} was built by an older mediavault (its text analysis "
            "differs); rebuild it: mediavault reindex --full"
        )
        marker = path / ANALYSIS_MARKER
        if reuse and (not marker.exists() or marker.read_text().strip() != str(analysis.ANALYSIS_VERSION)):
            raise stale
        try:
            index = tantivy.Index(self.schema, path=str(path), reuse=reuse)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            raise stale from None
        if not reuse:
            marker.write_text(f"{analysis.ANALYSIS_VERSION}\n")
        for name, analyzer in analysis.ANALYZERS.items():
            index.register_tokenizer(name, analyzer)
        return index

    def _index(self, generation: int) -> tantivy.Index:
        with self._lock:
            if generation not in self._indexes:
                path = self._dir(generation)
                if not path.is_dir():
                    raise ConfigurationError(f"search generation {generation} does not exist at {path}")
                self._indexes[generation] = self._open(path, reuse=True)
                self._reloaded.pop(generation, None)
            return self._indexes[generation]

    def _writer(self, generation: int) -> Any:
        with self._lock:
            if generation not in self._writers:
                self._writers[generation] = self._index(generation).writer(heap_size=self.heap, num_threads=1)
            return self._writers[generation]

    def create_generation(self, generation: int) -> None:
        path = self._dir(generation)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        with self._lock:
            self._indexes.pop(generation, None)
            self._writers.pop(generation, None)
            self._reloaded.pop(generation, None)
            self._indexes[generation] = self._open(path, reuse=False)

    def add(self, generation: int, documents: list[dict[str, Any]]) -> None:
        prepared = [self._document(d) for d in documents]
        with self._lock:
            writer = self._writer(generation)
            for document in prepared:
                writer.add_document(document)

    @staticmethod
    def _document(document: dict[str, Any]) -> tantivy.Document:
        digest_a, digest_b = (
            (document["digest_a"], document["digest_b"]) if "digest_a" in document else doc_digest(document)
        )
        fields = {k: v for k, v in document.items() if k != "ingested_at" and v is not None}
        fields["ingested_at"] = datetime.fromisoformat(document["ingested_at"])
        fields["digest_a"], fields["digest_b"] = digest_a, digest_b
        if not fields.get("tags"):
            fields.pop("tags", None)
        fields.update(analysis.text_fields(fields.get("text", ""), fields.get("language")))
        return tantivy.Document(**fields)

    def delete_media(self, generation: int, media_id: str) -> None:
        with self._lock:
            self._writer(generation).delete_documents_by_term("media_id", media_id)

    def commit(self, generation: int) -> None:
        with self._lock:
            writer = self._writers.pop(generation, None)
        if writer is not None:
            writer.commit()
            writer.wait_merging_threads()
        self._index(generation).reload()

    def summary(self, generation: int) -> tuple[int, int, int]:
        index = self._index(generation)
        index.reload()
        searcher = index.searcher()
        if searcher.num_docs == 0:
            return 0, 0, 0
        result = searcher.aggregate(
            tantivy.Query.all_query(),
            {"a": {"sum": {"field": "digest_a"}}, "b": {"sum": {"field": "digest_b"}}},
        )
        return searcher.num_docs, int(result["a"]["value"]), int(result["b"]["value"])

    def _read_pointer(self) -> dict[str, Any]:
        try:
            return json.loads((self.base / POINTER).read_text())
        except FileNotFoundError:
            return {}

    def _write_pointer(self, pointer: dict[str, Any]) -> None:
        tmp = self.base / f".{POINTER}.tmp"
        with open(tmp, "w") as handle:
            json.dump(pointer, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.base / POINTER)

    def live_generation(self) -> int | None:
        return self._read_pointer().get("live")

    def previous_generation(self) -> int | None:
        return self._read_pointer().get("previous")

    def switch(self, generation: int) -> None:
        self._index(generation)
        pointer = self._read_pointer()
        self._write_pointer({"live": generation, "previous": pointer.get("live")})

    def rollback(self) -> int:
        pointer = self._read_pointer()
        previous = pointer.get("previous")
        if previous is None or not self._dir(previous).is_dir():
            raise ConfigurationError("no previous search generation to roll back to")
        self._write_pointer({"live": previous, "previous": pointer.get("live")})
        return previous

    def drop_generation(self, generation: int) -> None:
        with self._lock:
            self._writers.pop(generation, None)
            self._indexes.pop(generation, None)
            self._reloaded.pop(generation, None)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._dir(generation))

    def drop_previous(self) -> int | None:
        pointer = self._read_pointer()
        previous = pointer.get("previous")
        if previous is None:
            return None
        self._write_pointer({"live": pointer.get("live"), "previous": None})
        if previous != pointer.get("live"):
            self.drop_generation(previous)
        return previous

    def destroy(self) -> None:
        with self._lock:
            self._writers.clear()
            self._indexes.clear()
            self._reloaded.clear()
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True, exist_ok=True)

    def generations(self) -> list[int]:
        return sorted(int(p.name[4:]) for p in self.base.glob("gen-*") if p.name[4:].isdigit())

    def _filters(self, query: SearchQuery) -> list[tantivy.Query]:
        """The filters that apply to statements and media documents alike."""
        schema = self.schema
        filters: list[tantivy.Query] = []
        for name in ("media_id", "owner", "language"):
            value = getattr(query, name)
            if value:
                filters.append(tantivy.Query.term_query(schema, name, value))
        if query.tag:  # a raw multi-valued field: the term matches any one of a document's tags
            filters.append(tantivy.Query.term_query(schema, "tags", query.tag))
        if query.date_from or query.date_to:
            filters.append(
                tantivy.Query.range_query(
                    schema,
                    "ingested_at",
                    tantivy.FieldType.Date,
                    query.date_from or datetime(1970, 1, 1, tzinfo=UTC),
                    query.date_to or datetime(2262, 1, 1, tzinfo=UTC),
                )
            )
        return filters

    def _text_parts(
        self, query: SearchQuery, searcher: Any = None, within: tantivy.Query | None = None
    ) -> list[tantivy.Query]:
        phrases, words = split_query(query.text)
        parts = [
            analysis.piece_query(self.schema, piece, query.language, within, searcher)
            for piece in [*phrases, *words]
        ]
        return [part for part in parts if part is not None]

    def _query(self, query: SearchQuery, text_parts: list[tantivy.Query]) -> tantivy.Query:
        """Statements matching every word and filter (media documents are left out)."""
        schema = self.schema
        if query.text.strip() and not text_parts:
            return tantivy.Query.empty_query()
        clauses = [(tantivy.Occur.Must, q) for q in [*text_parts, *self._filters(query)]]
        if query.speaker:
            by_name = tantivy.Query.term_query(schema, "speaker_name", query.speaker)
            by_label = tantivy.Query.term_query(schema, "speaker", query.speaker)
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.boolean_query(
                        [(tantivy.Occur.Should, by_name), (tantivy.Occur.Should, by_label)]
                    ),
                )
            )
        clauses.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        clauses.append((tantivy.Occur.MustNot, tantivy.Query.term_query(schema, "kind", "media")))
        return tantivy.Query.boolean_query(clauses)

    def _reload_if_committed(self, generation: int, index: tantivy.Index) -> None:
        """Reload the generation's reader when a commit (of any process) replaced its meta.json
        since the last reload: one stat instead of a reload per search (a reload costs as much
        as a cheap query)."""
        try:
            stat = os.stat(self._dir(generation) / "meta.json")
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = None
        if seen is None or self._reloaded.get(generation) != seen:
            index.reload()
            self._reloaded[generation] = seen

    def search(self, query: SearchQuery) -> SearchResult:
        live = self.live_generation()
        if live is None:
            return SearchResult(total=0, hits=[])
        index = self._index(live)
        self._reload_if_committed(live, index)
        searcher = index.searcher()
        text_parts = self._text_parts(query, searcher)
        combined = self._query(query, text_parts)
        kwargs: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
        if query.sort == "time":
            kwargs.update(order_by_field="start", order=tantivy.Order.Asc)
        # A match found through folding or stemming is highlighted too (the first field whose
        # terms occur in the statement wins).
        text_query = (
            tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in text_parts])
            if text_parts
            else None
        )
        highlights = _Snippets(searcher, text_query, self.schema) if text_query and query.highlight else None
        result = searcher.search(combined, **kwargs)
        hits = []
        for score, address in result.hits:
            stored = searcher.doc(address).to_dict()
            values = {k: v[0] for k, v in stored.items() if v}
            text = values.get("text", "")
            hits.append(
                SearchHit(
                    id=values["id"],
                    media_id=values["media_id"],
                    run_id=values["run_id"],
                    seq=values["seq"],
                    start=values["start"],
                    end=values["end"],
                    speaker=values.get("speaker", ""),
                    speaker_name=values.get("speaker_name", ""),
                    text=text,
                    title=values.get("title", ""),
                    tags=stored.get("tags", []),
                    kind=values.get("kind", "statement"),
                    snippet=_highlighted(highlights, text, values.get("language")),
                    score=float(score) if query.sort == "relevance" else 0.0,
                )
            )
        facets: dict[str, dict[str, int]] = {}
        # The facets and the media matches run after the hits, in this thread. Beside them, in a
        # pool, they cut one search's latency by a millisecond or so, but under load every core
        # already runs other searches, and the hand-offs only cost: bench/serve.py (8 clients,
        # 2 cores) got about 7 % more searches through inline, at a lower p95.
        if query.facets and result.count:
            aggregations = searcher.aggregate(combined, FACET_AGGREGATIONS)
            facets = {
                name: {
                    str(b["key"]): int(b["doc_count"])
                    for b in aggregations[name]["buckets"]
                    if b["key"] != ""
                }
                for name in FACET_FIELDS
            }
        media = self._media_hits(searcher, query, highlights) if text_parts and query.wants_media() else []
        return SearchResult(total=result.count, hits=hits, facets=facets, media=media)

    def _media_hits(self, searcher: Any, query: SearchQuery, snippets: _Snippets | None) -> list[MediaHit]:
        """Media items whose title, description or tags hold every word, best first."""
        kind = tantivy.Query.term_query(self.schema, "kind", "media")
        text_parts = self._text_parts(query, searcher, within=kind)
        clauses = [(tantivy.Occur.Must, q) for q in [kind, *text_parts, *self._filters(query)]]
        found = searcher.search(tantivy.Query.boolean_query(clauses), limit=query.media_limit)
        media = []
        for score, address in found.hits:
            stored = searcher.doc(address).to_dict()
            values = {k: v[0] for k, v in stored.items() if v}
            media.append(
                MediaHit(
                    media_id=values["media_id"],
                    title=values.get("title", ""),
                    tags=stored.get("tags", []),
                    language=values.get("language", ""),
                    snippet=_highlighted(snippets, values.get("text", ""), values.get("language")),
                    score=float(score),
                )
            )
        return media


class _Snippets:
    """Snippet generators of one search, made on first use: most hits are highlighted through the
    first field tried, and making a generator reads the query's term statistics."""

    def __init__(self, searcher: Any, query: tantivy.Query, schema: tantivy.Schema) -> None:
        self.searcher, self.query, self.schema = searcher, query, schema
        self.made: dict[str, Any] = {}

    def get(self, field: str) -> Any:
        if field not in self.made:
            self.made[field] = tantivy.SnippetGenerator.create(self.searcher, self.query, self.schema, field)
        return self.made[field]


def _highlighted(generators: _Snippets | None, text: str, language: str | None) -> str:
    """The statement as HTML, with the query's matches in <b>: through the folded form first (it
    matches every word typed with or without accents), then the written form, then the statement
    language's stems."""
    if generators is None:
        return html.escape(text)
    key = analysis.language_key(language)
    for field in (analysis.FOLDED_FIELD, analysis.EXACT_FIELD, *([analysis.stem_field(key)] if key else [])):
        generator = generators.get(field)
        snippet = generator.snippet_from_doc(tantivy.Document(**{field: text}))
        if snippet.highlighted():
            return _snippet(snippet, text)
    return html.escape(text)


def _snippet(snippet: Any, text: str) -> str:
    fragment = snippet.fragment().encode()  # highlight offsets are UTF-8 byte offsets
    if not fragment:
        return html.escape(text)

    def piece(start: int, end: int | None = None) -> str:
        return html.escape(fragment[start:end].decode("utf-8", errors="replace"))

    out, cursor = [], 0
    for span in sorted(snippet.highlighted(), key=lambda h: h.start):
        out.append(piece(cursor, span.start))
        out.append(f"<b>{piece(span.start, span.end)}</b>")
        cursor = span.end
    out.append(piece(cursor))
    return "".join(out)
