"""A small Solr stand-in speaking Solr's documented HTTP/JSON contract, for tests on loopback.

Real Solr cannot be installed here. This server checks what the adapter sends against the shipped
configset (``deployments/solr/mediavault/conf/schema.xml``) and answers in the documented response
shapes: the Collections API (CREATE, DELETE, LIST, CREATEALIAS, DELETEALIAS, LISTALIASES), the
CoreAdmin API (CREATE, UNLOAD, SWAP, RENAME, STATUS), ``/update`` (JSON adds, XML deletes by id and
by query, commits; changes become visible only after a commit), ``/select`` and real-time ``/get``.

Text analysis is Lucene's, never ours: every ``solr.TextField`` value (and every ``copyField``
copy) is analysed at add time, and every query value at query time, by the Lucene oracle
(``tests/lucene_oracle``: the schema's own factory chains built with Lucene's ``CustomAnalyzer``).
Nothing here is shared with ``mediavault.search``.

Indexing follows Lucene's limits: a document is refused (400, the whole update request) when a
string value or an indexed token is longer than 32,766 UTF-8 bytes, the way IndexWriter refuses an
"immense term" (and a docValues value of that size).

``/select`` understands only what the adapter may send (anything else is a 400, so a test fails
if the adapter ever sends free-form syntax):

* ``q`` with ``defType=lucene`` (the standard parser, the default) and ``q.op=OR``: either ``*:*``
  or required groups ``+(A B ...) +(...)`` whose members are ``{!field f=FIELD v=$param}`` with an
  optional ``^boost``. As in Solr, the ``field`` parser analyses the dereferenced value with the
  field's query analyzer and builds ``QueryBuilder.createPhraseQuery``: no token -> no clause, one
  token -> a term query, several -> an exact phrase (positions as analysed). The members of a
  group are SHOULD clauses (one must match); a group left with no clause is dropped, and a query
  left with none matches nothing (Solr's null query). More than 1,024 term and phrase queries in
  all is a 400, as Lucene 9 counts them against maxBooleanClauses.
* Scoring is Lucene's BM25 (k1=1.2, b=0.75, no ``k1 + 1`` factor, as in Lucene 8+): idf =
  ln(1 + (docCount - df + 0.5) / (df + 0.5)) per field, a phrase's idf the sum of its terms',
  phrase frequency as tf, field length = number of positions (exact, where Lucene stores it as a
  one-byte norm), clause scores summed and multiplied by their boost. Ties go in index order (an
  overwritten document moves to the end, as a Lucene update re-adds it).
* ``fq``: ``kind:X``, ``-kind:X``, ``-id:X`` (a pure negative filter matches every document
  without that value, missing field included), ``{!term f=F v=$p}`` (the value verbatim; on a
  multi-valued field any value may equal it), ``{!bool should=$a should=$b}``,
  ``ingested_at:[A TO B]``; deletes by query: ``media_id:<hex>``.
* ``fl`` (stored fields only, plus ``score``), ``start``/``rows``, ``sort`` (``start asc,id asc``
  or ``id asc``), ``cursorMark`` (with a sort on ``id``; an opaque mark, ``*`` to begin).
* ``hl`` with ``hl.method=unified``, ``hl.requireFieldMatch=true``, ``hl.fragsize=0`` (the whole
  value is the passage), ``hl.encoder=html``: each stored field of ``hl.fl`` is highlighted with
  the query clauses on that field that match it; a phrase is marked as one span (Solr's default
  ``hl.weightMatches=true``); the text is escaped as Lucene's ``DefaultPassageFormatter`` does
  (``& < > " ' /`` only) and overlapping matches are cut as it cuts them. A field with no match is
  left out of the document's entry.
* ``facet.field`` (with ``facet.mincount``, ``facet.limit``) and ``stats.field`` (min, max, count,
  missing, sum).

With MEDIAVAULT_TEST_SOLR_URL set, the same conformance suite runs against a real Solr instead.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.lucene_oracle import SCHEMA, LuceneOracle, Token, shared_oracle

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
MAX_TERM_BYTES = 32766  # IndexWriter.MAX_TERM_LENGTH, and the limit on a sorted docValues value
BM25_K1, BM25_B = 1.2, 0.75
MAX_CLAUSES = 1024  # Solr's default maxBooleanClauses: term and phrase queries in the whole query


class SolrError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # the fieldType name
    kind: str  # the fieldType class, e.g. solr.StrField
    multi: bool
    stored: bool
    indexed: bool
    doc_values: bool
    required: bool


@dataclass
class Schema:
    fields: dict[str, Field]
    copy_fields: list[tuple[str, str]]

    @classmethod
    def load(cls, path: Path = SCHEMA) -> Schema:
        root = ET.parse(path).getroot()
        types = {t.get("name"): t.attrib for t in root.findall("fieldType")}

        def flag(element: ET.Element, name: str, type_attrs: dict, default: bool) -> bool:
            value = element.get(name, type_attrs.get(name))
            return default if value is None else value == "true"

        fields = {}
        for f in root.findall("field"):
            attrs = types[f.get("type")]
            fields[f.get("name")] = Field(
                name=f.get("name"),
                type=f.get("type"),
                kind=attrs["class"],
                multi=flag(f, "multiValued", attrs, False),
                stored=flag(f, "stored", attrs, True),
                indexed=flag(f, "indexed", attrs, True),
                doc_values=flag(f, "docValues", attrs, False),
                required=flag(f, "required", attrs, False),
            )
        copies = [(c.get("source"), c.get("dest")) for c in root.findall("copyField")]
        return cls(fields, copies)


@dataclass
class Doc:
    """A document as indexed: its field values (copies included) and the tokens of each text field."""

    values: dict[str, object]
    tokens: dict[str, list[Token]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.values["id"])


def values_of(doc: Doc, name: str) -> list:
    value = doc.values.get(name)
    return [v for v in (value if isinstance(value, list) else [value]) if v is not None]


class Collection:
    def __init__(self, schema: Schema, oracle: LuceneOracle) -> None:
        self.schema = schema
        self.oracle = oracle
        self.committed: dict[str, Doc] = {}
        self.pending: list[tuple[str, object]] = []  # ("add", Doc) / ("delete", predicate), in order
        self.log: list[tuple[str, str]] = []  # ("add", id), ("delete-id", id), ("delete-query", q), ...

    def index(self, raw: dict) -> Doc:
        """Validate a document against the schema and analyse it, as Solr does on add."""
        doc_id = raw.get("id")
        for name in [n for n, f in self.schema.fields.items() if f.required]:
            if name not in raw:
                raise SolrError(400, f"[doc={doc_id}] missing required field: {name}")
        values: dict[str, list] = {}
        for name, value in raw.items():
            if name not in self.schema.fields:
                raise SolrError(400, f"ERROR: [doc={doc_id}] unknown field '{name}'")
            values.setdefault(name, []).extend(value if isinstance(value, list) else [value])
        for source, dest in self.schema.copy_fields:
            if source in raw:
                values.setdefault(dest, []).extend(values[source])
        doc = Doc({})
        for name, items in values.items():
            spec = self.schema.fields[name]
            if len(items) > 1 and not spec.multi:
                raise SolrError(
                    400, f"ERROR: [doc={doc_id}] multiple values encountered for non multiValued field {name}"
                )
            for item in items:
                self._check(spec, item, doc_id)
            if spec.kind == "solr.TextField" and spec.indexed:
                doc.tokens[name] = self._tokens(spec, items, doc_id)
            doc.values[name] = items if spec.multi else items[0]
        return doc

    def _check(self, spec: Field, item: object, doc_id: object) -> None:
        ok = {
            "solr.StrField": isinstance(item, str),
            "solr.TextField": isinstance(item, str),
            "solr.IntPointField": isinstance(item, int) and not isinstance(item, bool),
            "solr.LongPointField": isinstance(item, int) and not isinstance(item, bool),
            "solr.DoublePointField": isinstance(item, int | float) and not isinstance(item, bool),
            "solr.DatePointField": isinstance(item, str) and bool(DATE.match(item)),
        }[spec.kind]
        if not ok:
            raise SolrError(400, f"ERROR: [doc={doc_id}] Error adding field '{spec.name}'='{item}'")
        if spec.kind == "solr.StrField" and isinstance(item, str):
            size = len(item.encode("utf-8"))
            if spec.indexed and size > MAX_TERM_BYTES:
                raise SolrError(400, _immense(doc_id, spec.name, item, size))
            if spec.doc_values and size > MAX_TERM_BYTES:
                raise SolrError(
                    400,
                    f"Exception writing document id {doc_id} to the index; possible analysis error: "
                    f'DocValuesField "{spec.name}" is too large, must be <= {MAX_TERM_BYTES}',
                )

    def _tokens(self, spec: Field, items: list, doc_id: object) -> list[Token]:
        """Index-time tokens of a (possibly multi-valued) text field; values are positionIncrementGap
        apart, which no field here uses (text fields are single-valued)."""
        tokens: list[Token] = []
        for item in items:
            for token in self.oracle.analyze(spec.type, str(item), "index"):
                size = len(token.term.encode("utf-8"))
                if size > MAX_TERM_BYTES:
                    raise SolrError(400, _immense(doc_id, spec.name, token.term, size))
                tokens.append(token)
        return tokens

    def realtime(self, doc_id: str) -> Doc | None:
        """Real-time get: the latest version of a document, committed or not."""
        found = self.committed.get(doc_id)
        for kind, item in self.pending:
            if kind == "add" and isinstance(item, Doc) and item.id == doc_id:
                found = item
            elif kind == "delete" and found is not None and item(found):  # type: ignore[operator]
                found = None
        return found

    def commit(self) -> None:
        """Apply pending updates in the order Solr received them."""
        for kind, item in self.pending:
            if kind == "add":
                assert isinstance(item, Doc)
                self.committed.pop(item.id, None)  # an update re-adds: the document moves to the end
                self.committed[item.id] = item
            else:
                for doc_id in [i for i, d in self.committed.items() if item(d)]:  # type: ignore[operator]
                    del self.committed[doc_id]
        self.pending = []
        self.log.append(("commit", ""))


def _immense(doc_id: object, name: str, term: str, size: int) -> str:
    return (
        f"Exception writing document id {doc_id} to the index; possible analysis error: Document "
        f'contains at least one immense term in field="{name}" (whose UTF8 encoding is longer than the '
        f"max length {MAX_TERM_BYTES}), all of which were skipped.  Please correct the analyzer to not "
        f"produce such terms.  The prefix of the first immense term is: '{term[:30]}...', original "
        f"message: bytes can be at most {MAX_TERM_BYTES} in length; got {size}"
    )


class FakeSolr:
    def __init__(self, configsets: tuple[str, ...] = ("mediavault",), schema: Path = SCHEMA) -> None:
        """A server whose every collection uses ``schema`` (the shipped one by default)."""
        self.schema = Schema.load(schema)
        self.oracle = shared_oracle(schema)
        self.configsets = set(configsets)
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}
        self.lock = threading.RLock()
        self.fail_next = 0
        self.requests: list[str] = []
        self.admin_actions: list[tuple[str, str]] = []  # (area, action), e.g. ("cores", "STATUS")
        handler = type("Handler", (_Handler,), {"solr": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/solr"

    def start(self) -> FakeSolr:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def resolve(self, name: str) -> Collection:
        name = self.aliases.get(name, name)
        if name not in self.collections:
            raise SolrError(404, f"Collection/core not found: {name}")
        return self.collections[name]

    def count(self, area: str, action: str) -> int:
        return sum(1 for a in self.admin_actions if a == (area, action))

    def _new_collection(self) -> Collection:
        return Collection(self.schema, self.oracle)

    # admin ---------------------------------------------------------------------------------------
    def collections_api(self, p: dict) -> dict:
        action = p.get("action")
        if action == "CREATE":
            if p.get("collection.configName") not in self.configsets:
                raise SolrError(
                    400, f"Can not find the specified config set: {p.get('collection.configName')}"
                )
            if p["name"] in self.collections:
                raise SolrError(400, f"collection already exists: {p['name']}")
            self.collections[p["name"]] = self._new_collection()
            return {}
        if action == "DELETE":
            if p["name"] in self.aliases.values():
                raise SolrError(
                    400, f"Collection : {p['name']} is part of aliases, remove or modify the aliases"
                )
            self.collections.pop(p["name"], None)
            return {}
        if action == "LIST":
            return {"collections": sorted(self.collections)}
        if action == "CREATEALIAS":
            for target in p["collections"].split(","):
                if target not in self.collections:
                    raise SolrError(400, f"Can't create collection alias for collections='{target}'")
            self.aliases[p["name"]] = p["collections"]
            return {}
        if action == "DELETEALIAS":
            self.aliases.pop(p["name"], None)
            return {}
        if action == "LISTALIASES":
            return {"aliases": dict(self.aliases), "properties": {}}
        raise SolrError(400, f"Unsupported collections action {action}")

    def cores_api(self, p: dict) -> dict:
        action = p.get("action")
        if action == "CREATE":
            if p.get("configSet") not in self.configsets:
                raise SolrError(400, f"Could not load configuration for core {p.get('name')}")
            if p["name"] in self.collections:
                raise SolrError(400, f"Core with name '{p['name']}' already exists.")
            self.collections[p["name"]] = self._new_collection()
            return {"core": p["name"]}
        if action == "UNLOAD":
            self.collections.pop(p["core"], None)
            return {}
        if action == "SWAP":
            a, b = p["core"], p["other"]
            if a not in self.collections or b not in self.collections:
                raise SolrError(400, "No such core for SWAP")
            self.collections[a], self.collections[b] = self.collections[b], self.collections[a]
            return {}
        if action == "RENAME":
            if p["other"] in self.collections:
                raise SolrError(400, f"Core with name '{p['other']}' already exists.")
            self.collections[p["other"]] = self.collections.pop(p["core"])
            return {}
        if action == "STATUS":
            return {"status": {name: {"name": name} for name in sorted(self.collections)}}
        raise SolrError(400, f"Unsupported cores action {action}")

    # update --------------------------------------------------------------------------------------
    def update(self, collection: Collection, body: bytes, content_type: str, p: dict) -> dict:
        text = body.decode("utf-8")
        if "json" in content_type:
            raw = json.loads(text) if text.strip() else []
            docs = [collection.index(doc) for doc in raw]  # one bad document refuses the whole request
            for doc in docs:
                collection.pending.append(("add", doc))
                collection.log.append(("add", doc.id))
        elif text.strip():
            root = ET.fromstring(text)
            if root.tag == "delete":
                for element in root:
                    if element.tag == "id":
                        collection.pending.append(("delete", lambda d, v=element.text: d.id == v))
                        collection.log.append(("delete-id", element.text or ""))
                    else:
                        collection.pending.append(("delete", parse_filter(element.text or "", {})))
                        collection.log.append(("delete-query", element.text or ""))
            elif root.tag == "commit":
                collection.commit()
            else:
                raise SolrError(400, f"Unexpected update element <{root.tag}>")
        if p.get("commit") == "true":
            collection.commit()
        return {}

    # select --------------------------------------------------------------------------------------
    def select(self, collection: Collection, params: dict[str, list[str]]) -> dict:
        p = {k: v[-1] for k, v in params.items()}
        if p.get("defType", "lucene") != "lucene" or p.get("q.op", "OR") != "OR":
            raise SolrError(400, "fake Solr: only defType=lucene with q.op=OR is modelled")
        query = parse_q(p.get("q", "*:*"), p, self.schema, self.oracle)
        filters = [parse_filter(f, p, self.schema) for f in params.get("fq", [])]
        live = list(collection.committed.values())
        stats = FieldStats(live)
        scored = []
        for order, doc in enumerate(live):
            score = query.score(doc, stats) if query is not None else None
            if score is not None and all(f(doc) for f in filters):
                scored.append((score, order, doc))
        sort = p.get("sort")
        if sort == "start asc,id asc":
            scored.sort(key=lambda item: (item[2].values["start"], item[2].id))
        elif sort == "id asc":
            scored.sort(key=lambda item: item[2].id)
        elif sort:
            raise SolrError(400, f"fake Solr does not support sort={sort}")
        else:
            scored.sort(key=lambda item: (-item[0], item[1]))
        start, rows = int(p.get("start", 0)), int(p.get("rows", 10))
        out: dict = {"responseHeader": {"status": 0, "QTime": 0}}
        if "cursorMark" in p:
            if sort is None or "id" not in sort or start != 0:
                raise SolrError(400, "Cursor functionality requires a sort containing a uniqueKey field")
            mark = p["cursorMark"]
            if mark != "*":
                after = base64.urlsafe_b64decode(mark.encode()).decode()
                scored = [item for item in scored if item[2].id > after]
            page = scored[:rows]
            out["nextCursorMark"] = (
                base64.urlsafe_b64encode(page[-1][2].id.encode()).decode() if page else mark
            )
        else:
            page = scored[start : start + rows]
        fields = p.get("fl", "*").split(",")
        out["response"] = {
            "numFound": len(scored),
            "start": start,
            "docs": [
                {
                    k: v
                    for k, v in d.values.items()
                    if (fields == ["*"] or k in fields) and self.schema.fields[k].stored
                }
                | ({"score": float(score)} if "score" in fields else {})
                for score, _, d in page
            ],
        }
        if p.get("hl") == "true":
            out["highlighting"] = highlighting(query, [d for _, _, d in page], p, self.schema)
        if p.get("facet") == "true":
            out["facet_counts"] = {"facet_queries": {}, "facet_fields": {}}
            docs = [d for _, _, d in scored]
            for name in params.get("facet.field", []):
                out["facet_counts"]["facet_fields"][name] = facet_field(collection, docs, name, p)
        if p.get("stats") == "true":
            out["stats"] = {"stats_fields": {}}
            for name in params.get("stats.field", []):
                values = [v for _, _, d in scored for v in values_of(d, name)]
                out["stats"]["stats_fields"][name] = {
                    "min": min(values) if values else None,
                    "max": max(values) if values else None,
                    "count": len(values),
                    "missing": len(scored) - len(values),
                    "sum": float(sum(values)),
                }
        return out


def facet_field(collection: Collection, docs: list[Doc], name: str, p: dict) -> list:
    """``facet.field`` as Solr documents it: for each indexed term, the number of matching
    documents containing it (a document counts once per term, however many values it has).
    ``facet.mincount`` defaults to 0, so terms of non-matching documents are listed with count 0;
    ``facet.limit`` defaults to 100 (negative: unlimited); ties are in index (term) order."""
    if name not in collection.schema.fields:
        raise SolrError(400, f"undefined field {name}")
    mincount = int(p.get(f"f.{name}.facet.mincount", p.get("facet.mincount", 0)))
    limit = int(p.get(f"f.{name}.facet.limit", p.get("facet.limit", 100)))
    counts: dict[str, int] = {}
    if mincount <= 0:
        for doc in collection.committed.values():
            counts.update(dict.fromkeys({str(v) for v in values_of(doc, name)} - counts.keys(), 0))
    for doc in docs:
        for value in {str(v) for v in values_of(doc, name)}:
            counts[value] = counts.get(value, 0) + 1
    ordered = sorted(((k, v) for k, v in counts.items() if v >= mincount), key=lambda kv: (-kv[1], kv[0]))
    return [x for pair in (ordered if limit < 0 else ordered[:limit]) for x in pair]


# queries -----------------------------------------------------------------------------------------
class FieldStats:
    """Per-field collection statistics for BM25, over the committed documents."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self._cache: dict[str, tuple[int, float]] = {}
        self._df: dict[tuple[str, str], int] = {}

    def field(self, name: str) -> tuple[int, float]:
        """(docCount, average field length)."""
        if name not in self._cache:
            lengths = [len(d.tokens[name]) for d in self.docs if name in d.tokens]
            self._cache[name] = (len(lengths), (sum(lengths) / len(lengths)) if lengths else 0.0)
        return self._cache[name]

    def idf(self, name: str, term: str) -> float:
        key = (name, term)
        if key not in self._df:
            self._df[key] = sum(
                1 for d in self.docs if name in d.tokens and any(t.term == term for t in d.tokens[name])
            )
        count, _ = self.field(name)
        df = self._df[key]
        return math.log(1 + (count - df + 0.5) / (df + 0.5))

    def bm25(self, name: str, freq: int, length: int, idf: float) -> float:
        _, average = self.field(name)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / average) if average else BM25_K1
        return idf * freq / (freq + norm)


@dataclass
class FieldQuery:
    """What ``{!field f=F v=...}`` builds: a term query (one term) or an exact phrase."""

    field: str
    terms: list[tuple[int, str]]  # (relative position, term)
    boost: float = 1.0

    def spans(self, doc: Doc) -> list[tuple[int, int]]:
        """(startOffset, endOffset) of every match in the document's field."""
        tokens = doc.tokens.get(self.field, [])
        by_position: dict[int, list[Token]] = {}
        for token in tokens:
            by_position.setdefault(token.position, []).append(token)
        out = []
        for token in tokens:
            if token.term != self.terms[0][1]:
                continue
            base = token.position - self.terms[0][0]
            ends = []
            for offset, term in self.terms:
                match = [t for t in by_position.get(base + offset, []) if t.term == term]
                if not match:
                    break
                ends.append(match[0])
            else:
                out.append((min(t.start for t in ends), max(t.end for t in ends)))
        return out

    def score(self, doc: Doc, stats: FieldStats) -> float | None:
        freq = len(self.spans(doc))
        if not freq:
            return None
        idf = sum(stats.idf(self.field, term) for _, term in self.terms)
        return self.boost * stats.bm25(self.field, freq, len(doc.tokens[self.field]), idf)


@dataclass
class BooleanQuery:
    must: list[BooleanQuery | FieldQuery] = field(default_factory=list)
    should: list[BooleanQuery | FieldQuery] = field(default_factory=list)

    def score(self, doc: Doc, stats: FieldStats) -> float | None:
        total = 0.0
        for clause in self.must:
            score = clause.score(doc, stats)
            if score is None:
                return None
            total += score
        matched = [s for s in (c.score(doc, stats) for c in self.should) if s is not None]
        if self.should and not self.must and not matched:
            return None
        return total + sum(matched)

    def leaves(self) -> list[FieldQuery]:
        out: list[FieldQuery] = []
        for clause in [*self.must, *self.should]:
            out.extend(clause.leaves() if isinstance(clause, BooleanQuery) else [clause])
        return out


class MatchAll:
    def score(self, doc: Doc, stats: FieldStats) -> float | None:
        return 1.0

    def leaves(self) -> list[FieldQuery]:
        return []


_FIELD_PARSER = re.compile(r"\{!field f=(\w+) v=\$(\w+)\}(?:\^(\d+(?:\.\d+)?))?")
_GROUP = re.compile(r"\+\(([^()]*)\)")


def field_query(
    name: str, value: str, boost: float, schema: Schema, oracle: LuceneOracle
) -> FieldQuery | None:
    spec = schema.fields.get(name)
    if spec is None:
        raise SolrError(400, f"undefined field {name}")
    if spec.kind != "solr.TextField":
        raise SolrError(400, f"fake Solr: {{!field}} is modelled for text fields only, not {name}")
    tokens = oracle.analyze(spec.type, value, "query")
    if not tokens:
        return None
    positions = [t.position for t in tokens]
    if len(set(positions)) != len(positions) or any(t.length != 1 for t in tokens):
        raise SolrError(400, f"fake Solr: stacked or graph tokens in {name} are not modelled")
    first = positions[0]
    return FieldQuery(name, [(t.position - first, t.term) for t in tokens], boost)


def parse_q(q: str, p: dict, schema: Schema, oracle: LuceneOracle) -> BooleanQuery | MatchAll | None:
    """``*:*``, or ``+( {!field ...}[^b] ... ) +( ... )``; None when nothing is left to match."""
    if q == "*:*":
        return MatchAll()
    groups = _GROUP.findall(q)
    if not groups or _GROUP.sub("", q).strip():
        raise SolrError(400, f"fake Solr: unsupported query {q!r}")
    top = BooleanQuery()
    for group in groups:
        members = _FIELD_PARSER.findall(group)
        if not members or _FIELD_PARSER.sub("", group).strip():
            raise SolrError(400, f"fake Solr: unsupported query clause {group!r}")
        inner = BooleanQuery()
        for name, param, boost in members:
            if param not in p:
                raise SolrError(400, f"Missing param ${param}")
            built = field_query(name, p[param], float(boost or 1), schema, oracle)
            if built is not None:
                inner.should.append(built)
        if inner.should:
            top.must.append(inner)
    if len(top.leaves()) > MAX_CLAUSES:
        raise SolrError(400, f"too many boolean clauses (maxClauseCount is set to {MAX_CLAUSES})")
    return top if top.must else None


def _deref(value: str, p: dict) -> str:
    if value.startswith("$"):
        if value[1:] not in p:
            raise SolrError(400, f"Missing param {value}")
        return p[value[1:]]
    return value


def parse_filter(fq: str, p: dict, schema: Schema | None = None):
    if m := re.fullmatch(r"(-?)(id|kind):(\w+)", fq):  # a term on a string field, or a pure negative one
        negate, name, value = m.groups()
        return lambda d: (str(d.values.get(name)) == value) != bool(negate)
    if m := re.fullmatch(r"media_id:([0-9a-f]{64})", fq):
        media = m.group(1)
        return lambda d: d.values.get("media_id") == media
    if m := re.fullmatch(r"\{!term f=(\w+) v=(\$\w+)\}", fq):
        # The term parser takes the dereferenced value verbatim (no syntax, no analysis on a StrField);
        # on a multi-valued field a document matches when any one of its values equals it.
        name, value = m.group(1), _deref(m.group(2), p)
        if schema is not None and name not in schema.fields:
            raise SolrError(400, f"undefined field {name}")
        if schema is not None and not schema.fields[name].indexed:
            raise SolrError(400, f"can not search on field {name}: it is not indexed")
        return lambda d: value in {str(v) for v in values_of(d, name)}
    if m := re.fullmatch(r"\{!bool should=(\$\w+) should=(\$\w+)\}", fq):
        left, right = (parse_filter(_deref(m.group(i), p), p, schema) for i in (1, 2))
        return lambda d: left(d) or right(d)
    if m := re.fullmatch(r"ingested_at:\[(\S+) TO (\S+)\]", fq):
        low, high = m.group(1), m.group(2)
        for bound in (low, high):
            if bound != "*" and not DATE.match(bound):
                raise SolrError(400, f"Invalid Date String:'{bound}'")
        return lambda d: (
            (low == "*" or d.values["ingested_at"] >= low)
            and (high == "*" or d.values["ingested_at"] <= high)
        )
    raise SolrError(400, f"fake Solr: unsupported filter {fq!r}")


# highlighting ------------------------------------------------------------------------------------
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "/": "&#x2F;"}


def _escape(text: str) -> str:
    """DefaultPassageFormatter's HTML escaping (only these six characters)."""
    return "".join(_ESCAPES.get(c, c) for c in text)


def highlighting(query, docs: list[Doc], p: dict, schema: Schema) -> dict:
    checks = {
        "hl.method": "unified",
        "hl.encoder": "html",
        "hl.fragsize": "0",
        "hl.requireFieldMatch": "true",
    }
    for name, expected in checks.items():
        if p.get(name) != expected:
            raise SolrError(400, f"fake Solr models the highlighter only with {name}={expected}")
    pre, post = p.get("hl.tag.pre", "<em>"), p.get("hl.tag.post", "</em>")
    names = [n for n in re.split(r"[,\s]+", p.get("hl.fl", "")) if n]
    leaves = query.leaves() if query is not None else []
    out: dict[str, dict] = {}
    for doc in docs:
        entry: dict[str, list[str]] = {}
        for name in names:
            spec = schema.fields.get(name)
            if spec is None or not spec.stored or name not in doc.values:
                continue
            spans = sorted(s for leaf in leaves if leaf.field == name for s in leaf.spans(doc))
            if spans:
                entry[name] = [_format(str(doc.values[name]), spans, pre, post)]
        out[doc.id] = entry
    return out


def _format(text: str, spans: list[tuple[int, int]], pre: str, post: str) -> str:
    """The whole value as one passage, matches marked the way DefaultPassageFormatter marks them
    (a match overlapping the previous one is marked from where that one ended)."""
    out, cursor = [], 0
    for start, end in spans:
        if start > cursor:
            out.append(_escape(text[cursor:start]))
        if end > cursor:
            out.append(pre + _escape(text[max(cursor, start) : end]) + post)
            cursor = end
    out.append(_escape(text[cursor:]))
    return "".join(out)


class _Handler(BaseHTTPRequestHandler):
    solr: FakeSolr

    def log_message(self, *args) -> None:
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, body: bytes = b"") -> None:
        url = urlparse(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        if self.command == "POST" and "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
            body = b""
        p = {k: v[-1] for k, v in params.items()}
        parts = [x for x in url.path.split("/") if x]
        self.solr.requests.append(f"{self.command} {url.path}")
        try:
            with self.solr.lock:
                if self.solr.fail_next > 0:
                    self.solr.fail_next -= 1
                    raise SolrError(503, "Service Unavailable (injected)")
                if parts[:3] == ["solr", "admin", "collections"]:
                    self.solr.admin_actions.append(("collections", p.get("action", "")))
                    result = self.solr.collections_api(p)
                elif parts[:3] == ["solr", "admin", "cores"]:
                    self.solr.admin_actions.append(("cores", p.get("action", "")))
                    result = self.solr.cores_api(p)
                elif len(parts) >= 3 and parts[0] == "solr":
                    collection = self.solr.resolve(parts[1])
                    handler = parts[2]
                    if handler == "update":
                        result = self.solr.update(collection, body, self.headers.get("Content-Type", ""), p)
                    elif handler == "select":
                        result = self.solr.select(collection, params)
                    elif handler == "get":
                        found = collection.realtime(p.get("id", ""))
                        stored = (
                            {k: v for k, v in found.values.items() if self.solr.schema.fields[k].stored}
                            if found
                            else None
                        )
                        result = {"doc": stored}
                    else:
                        raise SolrError(404, f"no handler {handler}")
                else:
                    raise SolrError(404, f"unknown path {url.path}")
            self._reply(200, {"responseHeader": {"status": 0, "QTime": 0}, **result})
        except SolrError as exc:
            self._reply(
                exc.code,
                {"responseHeader": {"status": exc.code}, "error": {"msg": str(exc), "code": exc.code}},
            )

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))
