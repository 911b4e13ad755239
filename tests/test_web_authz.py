"""The authorization matrix of the HTTP API: every endpoint x every kind of caller, on both vaults.

One table (``ENDPOINTS``) lists every API route with the least role it needs and whether it is about
one media item; ``test_the_table_covers_every_route`` fails when an API route has no row.
Callers (``CALLERS``) are: no token, a malformed, an unknown, an expired and a revoked token;
viewer, editor and admin tokens of alice (who owns the media under test); viewer and editor
tokens of bob; an admin of every owner; and alice's editor through a browser session, with and
without the CSRF header. The admin role covers every owner, whatever owner its token names
(``Principal.sees_owner``). The expected answer of every cell follows from the contract:

- 401 without a valid credential (no, malformed, unknown, expired or revoked token);
- 403 for an unsafe method under a cookie session without the CSRF header;
- 404 for another owner's media on every media endpoint, byte for byte the answer to an unknown id;
- 403 when the role is too low, on the caller's own media;
- the endpoint's success code otherwise.

Every refusal except "no credential at all" must leave exactly one ``denied`` audit record.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from mediavault.access.tokens import ROLE_RANK, Role, TokenStore
from mediavault.media import catalog
from mediavault.vault.models import utc_now
from mediavault.web.routes_media import EXPORT_TYPES
from tests import web_site
from tests.web_site import Site

module_site = web_site.module_site  # the fixture: one site per backend for this module

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MISSING_ID = "0" * 64
SPEAKER_EDIT = {"kind": "rename-speaker", "payload": {"speaker": "SPEAKER_00", "display_name": "JFK"}}
OWNER_EDIT = {"kind": "fix-metadata", "payload": {"owner": "alice"}}  # an admin "changes" it to itself


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # a template: {id} is the media id, {signed} a share-link signature
    role: Role | None  # the least role it needs; None: no authentication at all
    media: bool = False  # about one media item: another owner's gets 404
    ok: int | dict[str, int] = 200  # success status, or per backend
    json: dict[str, Any] | None = None
    form: bool = False  # a login form carrying a valid token
    headers: dict[str, str] = field(default_factory=dict)
    deny_reason: Callable[[Role], str] | None = None  # the audited reason when the role is too low

    def success(self, backend: str) -> int:
        return self.ok if isinstance(self.ok, int) else self.ok[backend]


def _role_reason(needed: Role) -> Callable[[Role], str]:
    return lambda role: f"role {role} < {needed}"


def _owner_change_reason(role: Role) -> str:
    return f"role {role} < editor" if ROLE_RANK[role] < ROLE_RANK["editor"] else "changing the owner"


MEDIA = "/api/v1/media/{id}"
ENDPOINTS: list[Endpoint] = [
    Endpoint("list", "GET", "/api/v1/media", "viewer"),
    Endpoint("detail", "GET", MEDIA, "viewer", media=True),
    Endpoint("transcript", "GET", f"{MEDIA}/transcript", "viewer", media=True),
    *(
        Endpoint(f"export-{fmt}", "GET", f"{MEDIA}/export/{fmt}", "viewer", media=True)
        for fmt in ("srt", "vtt", "txt", "whisperx-json")
    ),
    Endpoint(
        "stream",
        "GET",
        f"{MEDIA}/stream",
        "viewer",
        media=True,
        ok={"local": 206, "s3": 307},
        headers={"Range": "bytes=0-9"},
    ),
    Endpoint("stream-head", "HEAD", f"{MEDIA}/stream", "viewer", media=True, ok={"local": 200, "s3": 307}),
    Endpoint("share-url", "GET", f"{MEDIA}/url", "viewer", media=True),
    Endpoint("output", "GET", f"{MEDIA}/output", "viewer", media=True),
    Endpoint("search", "GET", "/api/v1/search?q=you", "viewer"),
    Endpoint("audit", "GET", "/api/v1/audit?limit=5", "admin", deny_reason=_role_reason("admin")),
    Endpoint("stats", "GET", "/api/v1/stats", "viewer"),
    Endpoint("me", "GET", "/api/v1/me", "viewer"),
    Endpoint("jobs", "GET", "/api/v1/jobs", "viewer"),
    Endpoint("metrics", "GET", "/metrics", "admin", deny_reason=_role_reason("admin")),
    Endpoint(
        "forget-plan",  # a dry run: changes nothing
        "POST",
        f"{MEDIA}/forget",
        "admin",
        media=True,
        json={"reason": "authorization matrix"},
        deny_reason=_role_reason("admin"),
    ),
    # State-changing rows last: they add manifest versions (each cell sends a fresh If-Match).
    Endpoint(
        "edit",
        "POST",
        f"{MEDIA}/edits",
        "editor",
        media=True,
        ok=201,
        json=SPEAKER_EDIT,
        deny_reason=_role_reason("editor"),
    ),
    Endpoint(
        "owner-change",
        "POST",
        f"{MEDIA}/edits",
        "admin",
        media=True,
        ok=201,
        json=OWNER_EDIT,
        deny_reason=_owner_change_reason,
    ),
    Endpoint(
        "restore",
        "POST",
        f"{MEDIA}/restore",
        "editor",
        media=True,
        ok=202,
        deny_reason=_role_reason("editor"),
    ),
    # No authentication: the same answer for every caller.
    Endpoint("login", "POST", "/login", None, form=True),
    Endpoint("logout", "POST", "/logout", None),
    Endpoint("shared-link", "GET", "/shared/{signed}", None, ok={"local": 200, "s3": 410}),
    Endpoint("health", "GET", "/healthz", None),
    Endpoint("openapi", "GET", "/api/openapi.json", None),
    Endpoint("docs", "GET", "/api/docs", None),
]


@dataclass(frozen=True)
class Caller:
    name: str
    token: str | None = None  # a key of Site.tokens
    authorization: str | None = None  # a raw Authorization header instead
    role: Role | None = None  # None: not authenticated
    owner: str | None = None
    session: str | None = None  # "csrf" | "no-csrf": a browser session of alice's editor
    denied_as: str | None = None  # the audited reason authentication fails

    def sees_alice(self) -> bool:
        return self.role == "admin" or self.owner == "alice"


CALLERS: list[Caller] = [
    Caller("anonymous"),
    Caller("malformed", authorization="Bearer not-a-token", denied_as="token malformed"),
    Caller("wrong-scheme", authorization="Basic YWxpY2U6c2VjcmV0", denied_as="token malformed"),
    Caller("unknown", token="unknown", denied_as="token unknown"),
    Caller("expired", token="expired", denied_as="token expired"),
    Caller("revoked", token="revoked", denied_as="token revoked"),
    Caller("alice-viewer", token="alice-viewer", role="viewer", owner="alice"),
    Caller("alice-editor", token="alice-editor", role="editor", owner="alice"),
    Caller("alice-admin", token="alice-admin", role="admin", owner="alice"),
    Caller("bob-viewer", token="bob-viewer", role="viewer", owner="bob"),
    Caller("bob-editor", token="bob-editor", role="editor", owner="bob"),
    Caller("admin", token="admin", role="admin", owner="*"),
    Caller("session-csrf", role="editor", owner="alice", session="csrf"),
    Caller("session-no-csrf", role="editor", owner="alice", session="no-csrf"),
]


CALLERS_BY_NAME = {caller.name: caller for caller in CALLERS}


def expected(endpoint: Endpoint, caller: Caller, backend: str) -> tuple[int, str | None]:
    """(status, audited denial reason or None) of one cell."""
    if endpoint.role is None:
        return endpoint.success(backend), None
    if caller.role is None:
        return 401, caller.denied_as
    if caller.session == "no-csrf" and endpoint.method not in SAFE_METHODS:
        return 403, "CSRF token missing or wrong"
    if endpoint.media and not caller.sees_alice():
        return 404, "another owner's media"
    if ROLE_RANK[caller.role] < ROLE_RANK[endpoint.role]:
        assert endpoint.deny_reason is not None, f"{endpoint.name}: say how its refusal is audited"
        return 403, endpoint.deny_reason(caller.role)
    return endpoint.success(backend), None


@dataclass
class Matrix:
    """The site, and one client per caller (a client costs ~50 ms to make: reuse them)."""

    site: Site
    session: httpx.Cookies
    csrf: str
    signed: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, caller: Caller) -> httpx.Client:
        client = self.clients.get(caller.name)
        if client is None:
            headers: dict[str, str] = {}
            if caller.authorization is not None:
                headers["Authorization"] = caller.authorization
            elif caller.token is not None:
                headers["Authorization"] = f"Bearer {self.site.tokens[caller.token]}"
            if caller.session is not None:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.session.items())
            if caller.session == "csrf":
                headers["X-CSRF-Token"] = self.csrf
            client = self.clients[caller.name] = httpx.Client(
                base_url=self.site.url, headers=headers, timeout=30
            )
        return client

    def send(self, caller: Caller, endpoint: Endpoint, media_id: str) -> httpx.Response:
        path = endpoint.path.format(id=media_id, signed=self.signed)
        headers = dict(endpoint.headers)
        if endpoint.json is not None:
            headers["If-Match"] = self.fresh_etag()
        data = {"token": self.site.tokens["alice-viewer"]} if endpoint.form else None
        client = self.client(caller)
        answer = client.request(endpoint.method, path, json=endpoint.json, data=data, headers=headers)
        client.cookies.clear()  # a login sets cookies: they must not carry over to the next cell
        return answer

    def fresh_etag(self) -> str:
        admin = self.client(CALLERS_BY_NAME["admin"])
        return admin.get(f"/api/v1/media/{self.site.alice_media}").headers["ETag"]


@pytest.fixture(scope="module")
def matrix(module_site: Site) -> Iterator[Matrix]:
    site = module_site
    with site.client() as browser:
        login = browser.post("/login", data={"token": site.tokens["alice-editor"]})
        assert login.status_code == 200, login.text
        cookies = httpx.Cookies(browser.cookies)
    view = catalog.media_view(site.vault, site.alice_media)
    assert view is not None and view.media is not None
    if site.backend == "local":
        with site.client("alice-viewer") as alice:
            signed = alice.get(f"/api/v1/media/{site.alice_media}/url").json()["url"].rsplit("/", 1)[1]
    else:  # a link this app signed, as if for a local vault: an S3 vault has no such downloads
        payload = {"m": site.alice_media, "k": view.media.key, "n": "x"}
        signed = site.app.state.services.signer.dumps(payload, salt="share")
    built = Matrix(site, cookies, cookies["mv_csrf"], signed)
    yield built
    for client in built.clients.values():
        client.close()


def denied_records(matrix: Matrix, since: datetime) -> list[dict[str, Any]]:
    """The ``denied`` audit records since ``since``, read back through the admin endpoint."""
    admin = matrix.client(CALLERS_BY_NAME["admin"])
    answer = admin.get("/api/v1/audit", params={"since": since.isoformat(), "action": "denied"})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


BOB_TEXT = ("School board", "Bobsecret")
ALICE_TEXT = ("Ask not",)


def assert_nothing_leaks(site: Site, caller: Caller, answer: httpx.Response, cell: str) -> None:
    """A non-admin's answers never name the other owner's media, title or speakers."""
    if caller.role in (None, "admin"):
        return
    foreign = (site.bob_media, *BOB_TEXT) if caller.owner == "alice" else (site.alice_media, *ALICE_TEXT)
    for text in foreign:
        assert text not in answer.text, f"{cell}: leaks {text!r}"


def assert_error_shape(answer: httpx.Response, cell: str) -> None:
    if answer.request.method == "HEAD":
        return
    body = answer.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str), f"{cell}: {body}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_authorization_matrix(matrix: Matrix, endpoint: Endpoint) -> None:
    site = matrix.site
    started = utc_now()
    wrong: list[str] = []
    audits: Counter[tuple[str | None, str | None, str]] = Counter()
    for caller in CALLERS:
        status, reason = expected(endpoint, caller, site.backend)
        answer = matrix.send(caller, endpoint, site.alice_media)
        cell = f"{endpoint.name} x {caller.name} ({site.backend})"
        if answer.status_code != status:
            wrong.append(f"{cell}: {answer.status_code} (expected {status}) {answer.text[:200]}")
            continue
        if status >= 400:
            assert_error_shape(answer, cell)
        if status == 401:
            assert answer.headers.get("WWW-Authenticate") == "Bearer", cell
        assert_nothing_leaks(site, caller, answer, cell)
        if reason is not None:
            token_id = site.token_ids.get(caller.token or "") if caller.role else None
            if caller.session:
                token_id = site.token_ids["alice-editor"]
            audits[(reason, token_id, answer.request.url.path)] += 1
    assert not wrong, "\n".join(wrong)
    recorded = Counter(
        (r["detail"]["reason"], r["token_id"], r["detail"]["path"]) for r in denied_records(matrix, started)
    )
    assert recorded == audits, "every refusal but 'no credential' is audited exactly once"


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.media], ids=[e.name for e in ENDPOINTS if e.media]
)
def test_another_owners_media_answers_exactly_like_a_missing_id(matrix: Matrix, endpoint: Endpoint) -> None:
    """Status, headers and body of bob's answer about alice's media equal the answer to an unknown id
    (and alice's answer about bob's media equals hers about an unknown id)."""

    def shape(answer: httpx.Response) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in answer.headers.items() if k not in ("date", "server")}
        return answer.status_code, headers, answer.content

    site = matrix.site
    by_name = CALLERS_BY_NAME
    for caller, foreign in (("bob-viewer", site.alice_media), ("bob-editor", site.alice_media)):
        hidden = shape(matrix.send(by_name[caller], endpoint, foreign))
        missing = shape(matrix.send(by_name[caller], endpoint, MISSING_ID))
        assert hidden == missing and hidden[0] == 404, (caller, hidden, missing)
    for caller in ("alice-viewer", "alice-editor"):
        hidden = shape(matrix.send(by_name[caller], endpoint, site.bob_media))
        missing = shape(matrix.send(by_name[caller], endpoint, MISSING_ID))
        assert hidden == missing and hidden[0] == 404, (caller, hidden, missing)


def test_the_table_covers_every_route(matrix: Matrix) -> None:
    """A new API route without a row in ENDPOINTS fails here: decide who may call it, add the row.

    The API is every route in the OpenAPI document and every route under /api/. The dashboard's
    HTML pages (outside /api/, not in the document) are not part of it."""
    routes = [r for r in iter_route_contexts(matrix.site.app.routes) if r.path is not None and r.methods]
    served = {(method, route.path) for route in routes for method in route.methods}
    api = {
        (method, route.path)
        for route in routes
        if route.path.startswith("/api/") or getattr(route, "include_in_schema", False)
        for method in route.methods
        # Starlette adds HEAD to every plain GET route (the OpenAPI document): not an API endpoint.
        if method != "HEAD" or isinstance(route.original_route, APIRoute)
    }
    tabled = {route_of(endpoint) for endpoint in ENDPOINTS}
    assert api - tabled == set(), "API routes without a row in the authorization table"
    assert tabled - served == set(), "rows for routes the app does not serve"
    exported = {e.path.rsplit("/", 1)[1] for e in ENDPOINTS if "/export/" in e.path}
    assert exported == set(EXPORT_TYPES), "one row per export format"


def route_of(endpoint: Endpoint) -> tuple[str, str]:
    """(method, the route's path template) an endpoint's row stands for."""
    path = endpoint.path.split("?")[0].replace("{id}", "{media_id}")
    return endpoint.method, re.sub(r"/export/[^/]+$", "/export/{format_name}", path)


def test_browser_sessions(matrix: Matrix) -> None:
    """A session's CSRF value works only with its own session; tampered cookies, and sessions whose
    token was revoked since, are refused (401, audited); revoked and expired tokens cannot log in."""
    site = matrix.site
    edit = f"/api/v1/media/{site.alice_media}/edits"
    started = utc_now()
    with site.client() as other:
        assert other.post("/login", data={"token": site.tokens["alice-editor"]}).status_code == 200
        other_csrf = other.cookies["mv_csrf"]
        assert other_csrf != matrix.csrf
    with httpx.Client(base_url=site.url, cookies=matrix.session, timeout=30) as browser:
        crossed = browser.post(edit, json=SPEAKER_EDIT, headers={"X-CSRF-Token": other_csrf})
        assert crossed.status_code == 403 and crossed.json()["detail"] == {"header": "X-CSRF-Token"}
        assert browser.get("/api/v1/me").json()["owner"] == "alice"
    tampered = httpx.Cookies(matrix.session)
    tampered.set("mv_session", matrix.session["mv_session"][:-2] + "xx")
    with httpx.Client(base_url=site.url, cookies=tampered, timeout=30) as forged:
        answer = forged.get("/api/v1/me")
        assert answer.status_code == 401 and answer.json()["detail"] == {"reason": "bad or expired session"}
    for who, reason in (("revoked", "revoked"), ("expired", "expired"), ("unknown", "unknown")):
        with site.client() as browser:
            refused = browser.post("/login", data={"token": site.tokens[who]})
            assert refused.status_code == 401 and refused.json()["detail"] == {"reason": reason}
            assert "mv_session" not in browser.cookies
    record, token = TokenStore(site.vault).create("alice", "editor", name="to be revoked")
    with site.client() as browser:
        assert browser.post("/login", data={"token": token}).status_code == 200
        assert browser.get("/api/v1/me").status_code == 200
        site.app.state.services.tokens.revoke(record.id, by="test")  # the server's own store
        ended = browser.get("/api/v1/me")
        assert ended.status_code == 401 and ended.json()["detail"] == {"reason": "revoked"}
    reasons = Counter((r["detail"]["reason"], r["token_id"]) for r in denied_records(matrix, started))
    assert reasons == Counter(
        {
            ("CSRF token missing or wrong", site.token_ids["alice-editor"]): 1,
            ("session: bad or expired session", None): 1,
            ("session: revoked", None): 1,
        }
    )


def test_the_openapi_document_names_every_operation_once(matrix: Matrix) -> None:
    """Client generators need unique operation ids (GET and HEAD of /stream once shared one)."""
    document = matrix.client(CALLERS_BY_NAME["anonymous"]).get("/api/openapi.json").json()
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
