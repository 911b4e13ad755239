"""A small Solr stand-in speaking Solr's documented HTTP/JSON contract, for tests on loopback.

Real Solr cannot be installed here. This server checks what the adapter sends against the shipped
configset (``deployments/solr/mediavault/conf/schema.xml``: unknown fields and wrong types are
rejected) and answers in the documented response shapes: the Collections API (CREATE, DELETE,
LIST, CREATEALIAS, LISTALIASES), the CoreAdmin API (CREATE, UNLOAD, SWAP, RENAME, STATUS),
``/update`` (JSON adds, XML deletes and commits; adds become visible only after a commit),
``/select`` (q, fq, fl, start, rows, sort, hl, facet, stats) and real-time ``/get``.

Only the query grammar the adapter is allowed to emit is understood; anything else is a 400,
so a test fails if the adapter ever sends free-form syntax. With MEDIAVAULT_TEST_SOLR_URL set,
the same conformance suite runs against a real Solr instead.
"""

from __future__ import annotations

import html
import json
import re
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SCHEMA = Path(__file__).resolve().parents[1] / "deployments" / "solr" / "mediavault" / "conf" / "schema.xml"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
WORD = re.compile(r"[^\W_]+")


class SolrError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def load_schema(path: Path = SCHEMA) -> dict[str, dict]:
    root = ET.parse(path).getroot()
    types = {t.get("name"): t.get("class") for t in root.findall("fieldType")}
    return {
        f.get("name"): {
            "type": types[f.get("type")],
            "multi": f.get("multiValued") == "true",
            "stored": f.get("stored", "true") == "true",
            "required": f.get("required") == "true",
        }
        for f in root.findall("field")
    }


class Collection:
    def __init__(self, schema: dict[str, dict]) -> None:
        self.schema = schema
        self.committed: dict[str, dict] = {}
        self.pending: list[tuple[str, object]] = []  # ("add", doc) / ("delete", predicate), in order

    def validate(self, doc: dict) -> dict:
        for name in [n for n, f in self.schema.items() if f["required"]]:
            if name not in doc:
                raise SolrError(400, f"[doc={doc.get('id')}] missing required field: {name}")
        for name, value in doc.items():
            field = self.schema.get(name)
            if field is None:
                raise SolrError(400, f"ERROR: [doc={doc.get('id')}] unknown field '{name}'")
            values = value if isinstance(value, list) else [value]
            if isinstance(value, list) and not field["multi"]:
                raise SolrError(400, f"multiple values encountered for non multiValued field {name}")
            for item in values:
                kind = field["type"]
                ok = {
                    "solr.StrField": isinstance(item, str),
                    "solr.TextField": isinstance(item, str),
                    "solr.IntPointField": isinstance(item, int) and not isinstance(item, bool),
                    "solr.LongPointField": isinstance(item, int) and not isinstance(item, bool),
                    "solr.DoublePointField": isinstance(item, int | float) and not isinstance(item, bool),
                    "solr.DatePointField": isinstance(item, str) and bool(DATE.match(item)),
                }[kind]
                if not ok:
                    raise SolrError(400, f"ERROR: [doc={doc.get('id')}] Error adding field '{name}'='{item}'")
        return doc

    def commit(self) -> None:
        """Apply pending updates in the order Solr received them."""
        for kind, item in self.pending:
            if kind == "add":
                self.committed[item["id"]] = item
            else:
                for doc_id in [i for i, d in self.committed.items() if item(d)]:
                    del self.committed[doc_id]
        self.pending = []


class FakeSolr:
    def __init__(self, configsets: tuple[str, ...] = ("mediavault",)) -> None:
        self.schema = load_schema()
        self.configsets = set(configsets)
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}
        self.lock = threading.RLock()
        self.fail_next = 0
        self.requests: list[str] = []
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
            self.collections[p["name"]] = Collection(self.schema)
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
            self.collections[p["name"]] = Collection(self.schema)
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
            docs = json.loads(text) if text.strip() else []
            for doc in docs:
                collection.pending.append(("add", collection.validate(doc)))
        elif text.strip():
            root = ET.fromstring(text)
            if root.tag == "delete":
                for element in root:
                    if element.tag == "id":
                        collection.pending.append(("delete", lambda d, v=element.text: d["id"] == v))
                    else:
                        collection.pending.append(("delete", parse_filter(element.text or "", {})))
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
        matcher, terms = parse_q(p.get("q", "*:*"))
        filters = [parse_filter(f, p, collection.schema) for f in params.get("fq", [])]
        docs = [d for d in collection.committed.values() if matcher(d) and all(f(d) for f in filters)]
        scored = [(sum(tokens(d.get("text", "")).count(t) for t in terms), d) for d in docs]
        sort = p.get("sort")
        if sort:
            if sort not in ("start asc,id asc", "start asc"):
                raise SolrError(400, f"fake Solr does not support sort={sort}")
            scored.sort(key=lambda item: (item[1]["start"], item[1]["id"]))
        else:
            scored.sort(key=lambda item: (-item[0], item[1]["id"]))
        start, rows = int(p.get("start", 0)), int(p.get("rows", 10))
        fields = p.get("fl", "*").split(",")
        page = scored[start : start + rows]
        out: dict = {
            "responseHeader": {"status": 0, "QTime": 0},
            "response": {
                "numFound": len(docs),
                "start": start,
                "docs": [
                    {
                        k: v
                        for k, v in d.items()
                        if (fields == ["*"] or k in fields) and self.schema.get(k, {}).get("stored", True)
                    }
                    | ({"score": float(score)} if "score" in fields else {})
                    for score, d in page
                ],
            },
        }
        if p.get("hl") == "true":
            if p.get("hl.encoder") != "html" or p.get("hl.fl") != "text":
                raise SolrError(400, "fake Solr expects hl.fl=text and hl.encoder=html")
            out["highlighting"] = {
                d["id"]: {"text": [highlight(d.get("text", ""), terms, p)]} for _, d in page
            }
        if p.get("facet") == "true":
            out["facet_counts"] = {"facet_queries": {}, "facet_fields": {}}
            for name in params.get("facet.field", []):
                out["facet_counts"]["facet_fields"][name] = facet_field(collection, docs, name, p)
        if p.get("stats") == "true":
            out["stats"] = {"stats_fields": {}}
            for name in params.get("stats.field", []):
                values = [d[name] for d in docs if name in d]
                out["stats"]["stats_fields"][name] = {
                    "min": min(values) if values else None,
                    "max": max(values) if values else None,
                    "count": len(values),
                    "missing": len(docs) - len(values),
                    "sum": float(sum(values)),
                }
        return out


def values_of(doc: dict, field: str) -> set[str]:
    """The distinct indexed values of a (possibly multi-valued) field of a document."""
    value = doc.get(field)
    return {str(v) for v in (value if isinstance(value, list) else [value]) if v is not None}


def facet_field(collection: Collection, docs: list[dict], name: str, p: dict) -> list:
    """``facet.field`` as Solr documents it: for each indexed term, the number of matching
    documents containing it (a document counts once per term, however many values it has).
    ``facet.mincount`` defaults to 0, so terms of non-matching documents are listed with count 0;
    ``facet.limit`` defaults to 100 (negative: unlimited); ties are in index (term) order."""
    if name not in collection.schema:
        raise SolrError(400, f"undefined field {name}")
    mincount = int(p.get(f"f.{name}.facet.mincount", p.get("facet.mincount", 0)))
    limit = int(p.get(f"f.{name}.facet.limit", p.get("facet.limit", 100)))
    counts: dict[str, int] = {}
    if mincount <= 0:
        for doc in collection.committed.values():
            counts.update(dict.fromkeys(values_of(doc, name) - counts.keys(), 0))
    for doc in docs:
        for value in values_of(doc, name):
            counts[value] = counts.get(value, 0) + 1
    ordered = sorted(((k, v) for k, v in counts.items() if v >= mincount), key=lambda kv: (-kv[1], kv[0]))
    return [x for pair in (ordered if limit < 0 else ordered[:limit]) for x in pair]


def tokens(text: str) -> list[str]:
    return [t.lower() for t in WORD.findall(text)]


def parse_q(q: str):
    """``*:*`` or ``text:tok`` / ``text:"tok tok"`` clauses joined by `` AND ``."""
    if q == "*:*":
        return (lambda d: True), []
    checks, terms = [], []
    for clause in q.split(" AND "):
        single = re.fullmatch(r"text:([^\W_]+)", clause)
        phrase = re.fullmatch(r'text:"([^\W_]+(?: [^\W_]+)+)"', clause)
        if single:
            term = single.group(1)
            terms.append(term)
            checks.append(lambda d, t=term: t in tokens(d.get("text", "")))
        elif phrase:
            words = phrase.group(1).split(" ")
            terms.extend(words)

            def has_phrase(d, w=words):
                toks = tokens(d.get("text", ""))
                return any(toks[i : i + len(w)] == w for i in range(len(toks) - len(w) + 1))

            checks.append(has_phrase)
        else:
            raise SolrError(400, f"fake Solr: unsupported query clause {clause!r}")
    return (lambda d: all(c(d) for c in checks)), terms


def _deref(value: str, p: dict) -> str:
    if value.startswith("$"):
        if value[1:] not in p:
            raise SolrError(400, f"Missing param {value}")
        return p[value[1:]]
    return value


def parse_filter(fq: str, p: dict, schema: dict[str, dict] | None = None):
    if m := re.fullmatch(r"-(id|kind):(\w+)", fq):  # a pure negative filter on a string field
        field, excluded = m.groups()
        return lambda d: d.get(field) != excluded
    if m := re.fullmatch(r"media_id:([0-9a-f]{64})", fq):
        media = m.group(1)
        return lambda d: d.get("media_id") == media
    if m := re.fullmatch(r"\{!term f=(\w+) v=(\$\w+)\}", fq):
        # The term parser takes the dereferenced value verbatim (no syntax, no analysis on a StrField);
        # on a multi-valued field a document matches when any one of its values equals it.
        field, value = m.group(1), _deref(m.group(2), p)
        if schema is not None and field not in schema:
            raise SolrError(400, f"undefined field {field}")
        return lambda d: value in values_of(d, field)
    if m := re.fullmatch(r"\{!bool should=(\$\w+) should=(\$\w+)\}", fq):
        left, right = (parse_filter(_deref(m.group(i), p), p, schema) for i in (1, 2))
        return lambda d: left(d) or right(d)
    if m := re.fullmatch(r"ingested_at:\[(\S+) TO (\S+)\]", fq):
        low, high = m.group(1), m.group(2)
        for bound in (low, high):
            if bound != "*" and not DATE.match(bound):
                raise SolrError(400, f"Invalid Date String:'{bound}'")
        return lambda d: (low == "*" or d["ingested_at"] >= low) and (high == "*" or d["ingested_at"] <= high)
    raise SolrError(400, f"fake Solr: unsupported filter {fq!r}")


def highlight(text: str, terms: list[str], p: dict) -> str:
    pre, post = p.get("hl.tag.pre", "<em>"), p.get("hl.tag.post", "</em>")
    out, cursor = [], 0
    for match in WORD.finditer(text):
        if match.group(0).lower() in terms:
            out.append(html.escape(text[cursor : match.start()]))
            out.append(f"{pre}{html.escape(match.group(0))}{post}")
            cursor = match.end()
    out.append(html.escape(text[cursor:]))
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
                    result = self.solr.collections_api(p)
                elif parts[:3] == ["solr", "admin", "cores"]:
                    result = self.solr.cores_api(p)
                elif len(parts) >= 3 and parts[0] == "solr":
                    collection = self.solr.resolve(parts[1])
                    handler = parts[2]
                    if handler == "update":
                        result = self.solr.update(collection, body, self.headers.get("Content-Type", ""), p)
                    elif handler == "select":
                        result = self.solr.select(collection, params)
                    elif handler == "get":
                        result = {"doc": collection.committed.get(p.get("id"))}
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
