"""Hostile parameters against the live HTTP API, on the local and the S3 vault.

Whatever a caller sends (huge or negative numbers, garbage cursors, ``$`` operators and dict-like
parameter names, search syntax, path tricks in ids, bad Range headers), the answer is a valid HTTP
answer in the API's error shape ``{"error": ..., "detail": ...}``, never a 500, a 422 names the
offending field, and alice never sees anything of bob's (media, titles, speakers, facets).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import time
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediavault.ingest.pipeline import IngestRequest, ingest
from tests import web_site
from tests.helpers import JFK_MEDIA
from tests.web_site import BOB_SPEAKERS, Site

module_site = web_site.module_site  # the fixture: one site per backend for this module

BOB_TEXT = ("School board", "Bobsecret", *BOB_SPEAKERS.values())


@pytest.fixture(scope="module")
def alice(module_site: Site) -> Iterator[httpx.Client]:
    with module_site.client("alice-viewer") as client:
        yield client


@pytest.fixture(scope="module")
def admin(module_site: Site) -> Iterator[httpx.Client]:
    with module_site.client("admin") as client:
        yield client


def named_fields(body: dict[str, Any]) -> set[str]:
    """The fields a 422 names: validation errors list them, the API's own 422s carry one."""
    detail = body["detail"]
    if isinstance(detail, list):
        return {str(item["field"]) for item in detail}
    if isinstance(detail, dict) and "field" in detail:
        return {str(detail["field"])}
    return set()


def check(
    answer: httpx.Response,
    site: Site,
    allowed: set[int],
    fields: set[str] | None = None,
) -> None:
    """A valid answer: an allowed status, the JSON error shape for errors, the field named on a
    422 (one of ``fields``, when given), and nothing of bob's."""
    where = f"{answer.request.method} {str(answer.request.url)[:300]}"
    assert answer.status_code in allowed, f"{where}: {answer.status_code} {answer.text[:300]}"
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"error", "detail"} and isinstance(body["error"], str), f"{where}: {body}"
        assert "Traceback" not in answer.text
        if answer.status_code == 422:
            named = named_fields(body)
            assert named, f"{where}: a 422 must name the field: {body}"
            if fields is not None:
                assert any(f in n for n in named for f in fields), f"{where}: names {named}, not {fields}"
    for text in (site.bob_media, *BOB_TEXT):
        assert text not in answer.text, f"{where}: leaks {text!r} to alice"


def cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# (params, allowed statuses, the field a 422 must name)
LIST_CASES: list[tuple[dict[str, str], set[int], str | None]] = [
    ({"limit": str(10**12)}, {422}, "limit"),
    ({"limit": "-1"}, {422}, "limit"),
    ({"limit": "0"}, {422}, "limit"),
    ({"limit": "1e3"}, {422}, "limit"),
    ({"limit": "NaN"}, {422}, "limit"),
    ({"limit": "9" * 5000}, {422}, "limit"),
    ({"cursor": cursor({"v": 10**1000, "id": "y", "s": "-created"})}, {422}, "cursor"),
    ({"cursor": "garbage!"}, {422}, "cursor"),
    ({"cursor": "A" * 1999}, {422}, "cursor"),
    ({"cursor": "A" * 5000}, {422}, "cursor"),
    ({"cursor": cursor({"v": {"$gt": ""}, "id": "x", "s": "-created"})}, {422}, "cursor"),
    ({"cursor": cursor({"v": "x", "id": {"$ne": None}, "s": "-created"})}, {422}, "cursor"),
    ({"cursor": cursor({"v": "x", "id": "y", "s": "title"})}, {422}, "cursor"),  # another sort's cursor
    ({"cursor": cursor([1, 2])}, {422}, "cursor"),
    ({"cursor": cursor("x")}, {422}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, {422}, "cursor"),
    ({"cursor": cursor({"v": "$where", "id": "$gt", "s": "-created"})}, {200}, None),
    ({"cursor": cursor({"v": None, "id": "", "s": "title"}), "sort": "title"}, {200}, None),
    ({"q": "x" * 20_000}, {422}, "q"),
    ({"q": ".* ( [ \\ $where {$ne:1}"}, {200}, None),
    ({"q": "\x00"}, {200}, None),
    ({"q": "ask\x00not"}, {200}, None),
    ({"since": "yesterday"}, {422}, "since"),
    ({"since": "2024-01-01T00:00:00"}, {422}, "since"),  # no time zone
    ({"since": "0001-01-01T00:00:00+05:00"}, {422}, "since"),  # before year 1 in UTC
    ({"until": "9999-12-31T23:59:59-05:00"}, {422}, "until"),  # after year 9999 in UTC
    ({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}, {200}, None),
    ({"until": "1e30"}, {422}, "until"),
    ({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}, {200}, None),
    ({"owner[$ne]": "x"}, {200}, None),
    ({"owner": '{"$ne": "alice"}'}, {403}, None),
    ({"owner": "bob"}, {403}, None),
    ({"tag": '{"$gt": ""}'}, {200}, None),
    ({"tag[$gt]": ""}, {200}, None),
    ({"status[$ne]": "x", "$where": "1", "__proto__": "x"}, {200}, None),
    ({"tier": "$ne"}, {422}, "tier"),
    ({"tier": "hot", "language": "\x00" * 35}, {200}, None),
    ({"language": "x" * 36}, {422}, "language"),
    ({"sort": "$natural"}, {422}, "sort"),
    ({"sort": "-password"}, {422}, "sort"),
    ({"sort": "title", "limit": "1"}, {200}, None),
]


@pytest.mark.parametrize("params,allowed,field", LIST_CASES)
def test_media_listing_refuses_or_ignores_hostile_parameters(
    module_site: Site, alice: httpx.Client, params: dict[str, str], allowed: set[int], field: str | None
) -> None:
    answer = alice.get("/api/v1/media", params=params)
    check(answer, module_site, allowed, {field} if field else None)
    if answer.status_code == 200:
        assert all(item["owner"] == "alice" for item in answer.json()["items"])


def test_listing_pages_through_with_its_own_cursors(module_site: Site, admin: httpx.Client) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1", "sort": "title"}
    for _ in range(10):
        page = admin.get("/api/v1/media", params=params)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        if page.json()["next_cursor"] is None:
            break
        params["cursor"] = page.json()["next_cursor"]
    assert len(seen) == len(set(seen)) and {module_site.alice_media, module_site.bob_media} <= set(seen)


SEARCH_SYNTAX = [
    "title:*",
    "owner:bob",
    "owner:bob OR *",
    "*:*",
    "*",
    '"unbalanced',
    'ask "not',
    "(ask",
    "ask)",
    "((((((((((",
    "AND OR NOT",
    "NOT ask",
    "ask AND owner:bob",
    "speaker_name:Bobsecret",
    "media_id:*",
    "\\",
    "ask\\ not",
    "\\\\\\",
    "ask\x00not",
    "\x00",
    "{!term f=owner}bob",
    "ask~2",
    "ask^10",
    "[* TO *]",
    "/.*/",
    "you " * 300,
    "Bobsecret",
    "school board",
]


@pytest.mark.parametrize("q", SEARCH_SYNTAX)
def test_search_syntax_is_only_words_and_stays_in_scope(
    module_site: Site, alice: httpx.Client, q: str
) -> None:
    answer = alice.get("/api/v1/search", params={"q": q})
    check(answer, module_site, {200})
    body = answer.json()
    assert {hit["media_id"] for hit in body["hits"]} <= {module_site.alice_media}
    for values in body["facets"].values():
        assert module_site.bob_media not in values and not set(values) & set(BOB_SPEAKERS.values())


SEARCH_CASES: list[tuple[dict[str, str], set[int], str | None]] = [
    ({"q": "x" * 20_000}, {422}, "q"),
    ({"q": "you", "limit": str(10**12)}, {422}, "limit"),
    ({"q": "you", "limit": "-5"}, {422}, "limit"),
    ({"q": "you", "offset": str(10**12)}, {422}, "offset"),
    ({"q": "you", "offset": "-1"}, {422}, "offset"),
    ({"q": "you", "facets": "maybe"}, {422}, "facets"),
    ({"q": "you", "sort": "$natural"}, {422}, "sort"),
    ({"q": "you", "media": "../../etc/passwd"}, {422}, "media"),
    ({"q": "you", "owner": "bob"}, {403}, None),
    ({"q": "you", "owner[$ne]": "alice"}, {200}, None),
    ({"q": "you", "speaker": "Bobsecret Chair"}, {200}, None),
    ({"q": "you", "speaker": '{"$ne": ""}'}, {200}, None),
    ({"q": "you", "language": "*"}, {200}, None),
    ({"q": "you", "date_from": "nonsense"}, {422}, "date_from"),
    ({"q": "you", "date_from": "0001-01-01T00:00:00Z"}, {200}, None),
    ({"q": "you", "date_from": "0001-01-01T00:00:00+05:00"}, {422}, "date_from"),
    ({"q": "you", "date_to": "9999-12-31T23:59:59-05:00"}, {422}, "date_to"),
    ({"q": "you", "date_from": "1000-01-01T00:00:00Z", "date_to": "1001-01-01T00:00:00Z"}, {200}, None),
    ({"q": "you", "date_from": "3000-01-01T00:00:00Z"}, {200}, None),
    ({"q": "you", "tag": '{"$ne": ""}'}, {200}, None),
    ({"q": "you", "tag": "x" * 201}, {422}, "tag"),
    ({"q": "you", "date_to": "9999-12-31T23:59:59Z"}, {200}, None),
    ({"q": "you", "date_from": "2030-01-01T00:00:00Z", "date_to": "2020-01-01T00:00:00Z"}, {200}, None),
    ({"q": "you", "date_from": "2024-01-01T00:00:00"}, {200}, None),  # naive: UTC
]


@pytest.mark.parametrize("params,allowed,field", SEARCH_CASES)
def test_search_refuses_or_ignores_hostile_parameters(
    module_site: Site, alice: httpx.Client, params: dict[str, str], allowed: set[int], field: str | None
) -> None:
    answer = alice.get("/api/v1/search", params=params)
    check(answer, module_site, allowed, {field} if field else None)
    if answer.status_code == 200:
        assert {hit["media_id"] for hit in answer.json()["hits"]} <= {module_site.alice_media}


def test_bobs_media_and_speakers_are_searchable_only_by_bob(module_site: Site, alice: httpx.Client) -> None:
    """The filters work (bob finds his own), so alice's empty answers above mean scoping."""
    with module_site.client("bob-viewer") as bob:
        own = bob.get("/api/v1/search", params={"q": "board", "speaker": "Bobsecret Chair"}).json()
        assert own["total"] > 0 and "Bobsecret Chair" in own["facets"]["speaker_name"]
        by_id = bob.get("/api/v1/search", params={"q": "board", "media": module_site.bob_media}).json()
        assert by_id["total"] > 0
    foreign = alice.get("/api/v1/search", params={"q": "board", "media": module_site.bob_media})
    check(foreign, module_site, {200})
    assert foreign.json()["total"] == 0


AUDIT_CASES: list[tuple[dict[str, str], set[int], str | None]] = [
    ({"since": "0001-01-01T00:00:00Z"}, {200}, None),
    ({"until": "0001-01-01T00:00:00Z"}, {200}, None),
    ({"until": "0001-01-01T00:00:00+05:00"}, {422}, "until"),
    ({"since": "9999-12-31T23:59:59Z"}, {200}, None),
    ({"until": "9999-12-31T23:59:59Z"}, {200}, None),
    ({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}, {200}, None),
    ({"since": "9999-12-31T23:59:59-05:00"}, {422}, "since"),
    ({"since": "2024-01-01T00:00:00"}, {200}, None),  # naive: UTC
    ({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}, {200}, None),
    ({"since": "nonsense"}, {422}, "since"),
    ({"limit": str(10**12)}, {422}, "limit"),
    ({"actor": '{"$ne": null}'}, {200}, None),
    ({"action": "x" * 41}, {422}, "action"),
    ({"media": "../x"}, {422}, "media"),
]


@pytest.mark.parametrize("params,allowed,field", AUDIT_CASES)
def test_audit_refuses_or_ignores_hostile_parameters(
    module_site: Site, admin: httpx.Client, params: dict[str, str], allowed: set[int], field: str | None
) -> None:
    started = time.monotonic()
    answer = admin.get("/api/v1/audit", params=params)
    assert answer.status_code in allowed, answer.text
    assert time.monotonic() - started < 5, "the time range must not be walked month by month"
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"error", "detail"}
        if answer.status_code == 422:
            assert any(field in name for name in named_fields(body)), body


def test_audit_ranges_wider_than_the_log_find_every_record(module_site: Site, admin: httpx.Client) -> None:
    # A record of its own (a share URL issued), so that the test does not rely on earlier ones.
    assert admin.get(f"/api/v1/media/{module_site.alice_media}/url").status_code == 200
    everything = admin.get("/api/v1/audit", params={"limit": "5000"}).json()["items"]
    assert everything
    for params in (
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "9999-12-31T23:59:59Z"},
        {"since": "1970-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z"},
    ):
        wide = admin.get("/api/v1/audit", params={**params, "limit": "5000"}).json()["items"]
        assert wide[: len(everything)] == everything, params


def raw_get(site: Site, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    """GET a path byte for byte as given (httpx would normalise dot segments and encodings)."""
    address = urlsplit(site.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Authorization", f"Bearer {token}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


HOSTILE_IDS = [
    "..%2f..%2fetc%2fpasswd",
    "..%252f..%252fetc%252fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "../../etc/passwd",
    "..%5c..%5cwindows",
    "%00",
    "0" * 63 + "%00",
    "%00" + "0" * 64,
    "A" * 64,
    "%C3%A9" * 64,
    "%EF%BC%90" * 64,  # fullwidth digit zero
    "a" * 10_240,
    "%" * 3,
    "%zz",
    "%20" + "0" * 64,
    "manifests%2f" + "0" * 64,
    "*",
    "$ne",
    "[$ne]=1",
    "%7B%22%24ne%22%3A1%7D",
]
MEDIA_SUFFIXES = ["", "/transcript", "/export/srt", "/stream", "/url"]


@pytest.mark.parametrize("media_id", HOSTILE_IDS)
def test_path_tricks_in_ids_answer_404_or_422(module_site: Site, media_id: str) -> None:
    for suffix in MEDIA_SUFFIXES:
        status, _, body = raw_get(
            module_site, f"/api/v1/media/{media_id}{suffix}", module_site.tokens["alice-viewer"]
        )
        where = f"{media_id[:40]}{suffix}"
        assert status in (404, 422), f"{where}: {status} {body[:200]!r}"
        data = json.loads(body)
        assert set(data) == {"error", "detail"}, where
        if status == 422:
            assert any("media_id" in f for f in named_fields(data)), f"{where}: {data}"
        assert b"root:" not in body and b"passwd" not in body.replace(b"etc%2fpasswd", b"")


EXPORT_FORMATS = [
    ("%2e%2e%2fx", {404}),
    ("..%2fx", {404}),
    ("x", {422}),
    ("SRT", {422}),
    ("srt%00", {422}),
    ("srt%2f", {307}),  # Starlette redirects to the path without its trailing slash
    ("srt.json", {422}),
    ("%24ne", {422}),
    ("w" * 5000, {422}),
]


@pytest.mark.parametrize("fmt,allowed", EXPORT_FORMATS)
def test_the_export_format_is_one_of_four(module_site: Site, fmt: str, allowed: set[int]) -> None:
    status, _, body = raw_get(
        module_site,
        f"/api/v1/media/{module_site.alice_media}/export/{fmt}",
        module_site.tokens["alice-viewer"],
    )
    assert status in allowed, f"{fmt[:40]}: {status} {body[:200]!r}"
    if status == 307:
        return
    data = json.loads(body)
    assert set(data) == {"error", "detail"}
    if status == 422:
        assert any("format_name" in f for f in named_fields(data)), data


@pytest.mark.parametrize("run", ["../x", "0" * 31, "0" * 32 + "\x00", "Z" * 32, "x" * 5000])
def test_transcript_and_export_runs_must_be_run_ids(module_site: Site, alice: httpx.Client, run: str) -> None:
    for suffix in ("/transcript", "/export/vtt"):
        answer = alice.get(f"/api/v1/media/{module_site.alice_media}{suffix}", params={"run": run})
        check(answer, module_site, {422}, {"run"})
    unknown = alice.get(f"/api/v1/media/{module_site.alice_media}/transcript", params={"run": "0" * 32})
    check(unknown, module_site, {422}, {"run"})


@pytest.mark.parametrize(
    "seq,allowed",
    [
        (["abc"], {422}),
        (["1.5"], {422}),
        (["-1"], {200}),
        ([str(10**30)], {200}),
        (["0"] * 1001, {422}),
        (["0", "0", "99999"], {200}),
    ],
)
def test_transcript_statement_filters(
    module_site: Site, alice: httpx.Client, seq: list[str], allowed: set[int]
) -> None:
    answer = alice.get(f"/api/v1/media/{module_site.alice_media}/transcript", params={"seq": seq})
    check(answer, module_site, allowed, {"seq"})
    if answer.status_code == 200:
        wanted = {int(n) for n in seq}
        assert {s["seq"] for s in answer.json()["statements"]} <= wanted


@pytest.mark.parametrize(
    "if_match",
    [
        '"v' + "9" * 5000 + '"',
        '"v٣"',
        '"v-1"',
        '"v1.0"',
        "v1",
        '"1"',
        "garbage",
        '"v99999999999999999999"',
        ",",
    ],
)
def test_if_match_takes_only_an_etag_this_api_made(module_site: Site, if_match: str) -> None:
    """Anything but a current ``"v<version>"`` (or ``*``) is refused with 412, and nothing commits."""
    edit = {"kind": "fix-metadata", "payload": {"title": "Should not commit"}}
    with module_site.client("alice-editor") as editor:
        before = editor.get(f"/api/v1/media/{module_site.alice_media}").headers["ETag"]
        answer = editor.post(
            f"/api/v1/media/{module_site.alice_media}/edits",
            json=edit,
            headers={"If-Match": if_match.encode()},
        )
        check(answer, module_site, {412})
        assert editor.get(f"/api/v1/media/{module_site.alice_media}").headers["ETag"] == before


# --- Range headers --------------------------------------------------------------------------------


def check_ranged(answer: httpx.Response, data: bytes) -> None:
    """Whatever the answer to a Range request is, it is a valid one for these file bytes."""
    size = len(data)
    status = answer.status_code
    where = f"Range {answer.request.headers.get('range')!r}"
    head = answer.request.method == "HEAD"
    if status == 200:
        assert head or answer.content == data, where
        assert int(answer.headers["content-length"]) == size, where
    elif status == 416:
        assert answer.headers["content-range"] == f"bytes */{size}", where
    elif status == 206:
        content_type = answer.headers["content-type"]
        if content_type.startswith("multipart/byteranges"):
            if head:
                return
            boundary = content_type.split("boundary=", 1)[1].strip('"')
            parts = parse_byteranges(answer.content, boundary)
            assert len(parts) >= 2, where
            for (start, end, total), body in parts:
                assert total == size and body == data[start : end + 1], where
        else:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", answer.headers["content-range"])
            assert match, where
            start, end, total = map(int, match.groups())
            assert total == size and 0 <= start <= end < size, where
            assert int(answer.headers["content-length"]) == end - start + 1, where
            assert head or answer.content == data[start : end + 1], where
    else:
        raise AssertionError(f"{where}: {status} {answer.text[:200]}")
    if not head and "content-length" in answer.headers:
        assert int(answer.headers["content-length"]) == len(answer.content), where


def parse_byteranges(body: bytes, boundary: str) -> list[tuple[tuple[int, int, int], bytes]]:
    delimiter = f"--{boundary}".encode()
    assert body.endswith(delimiter + b"--"), "the closing delimiter ends the body"
    parts = []
    for chunk in body[: -len(delimiter) - 2].split(delimiter)[1:]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        headers, _, content = chunk[2:-2].partition(b"\r\n\r\n")
        match = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", headers)
        assert match, headers
        parts.append((tuple(map(int, match.groups())), content))
    return parts  # type: ignore[return-value]


SIZE = JFK_MEDIA.stat().st_size
RANGES = [
    "bytes=0-9",
    "bytes=100-",
    "bytes=-100",
    f"bytes=-{SIZE * 10}",
    f"bytes=0-{10**20}",
    f"bytes={SIZE - 1}-",
    f"bytes={SIZE}-",
    "bytes=99999999-",
    f"bytes={SIZE}-{SIZE + 10}",
    "bytes=-0",
    "bytes=10-5",
    "bytes=5-5",
    "bytes=abc",
    "bytes=",
    "bytes=-",
    "bytes=--1",
    "bytes=1-2-3",
    "bytes=0x10-0x20",
    "bytes=1_0-2_0",
    "bytes=+1-+5",
    "bits=0-9",
    "bytes 0-9",
    "0-9",
    "",
    "bytes=0-9,20-29",
    "bytes=0-9,5-14",
    "bytes=0-9,10-19",
    "bytes=20-29,0-9",
    "bytes=0-0,-1",
    "bytes=0-9,abc",
    "bytes=0-9," + ",".join(f"{i * 10}-{i * 10 + 4}" for i in range(1, 150)),
    "bytes=" + ",".join(["0-0"] * 99),
    "bytes=0-9, 20-29 ,  40-49",
    f"bytes=0-9,{SIZE}-",
]


@pytest.mark.parametrize("value", RANGES)
def test_any_range_header_gets_a_valid_answer(module_site: Site, alice: httpx.Client, value: str) -> None:
    path = f"/api/v1/media/{module_site.alice_media}/stream"
    for method in ("GET", "HEAD"):
        answer = alice.request(method, path, headers={"Range": value})
        if module_site.backend == "s3":  # the API never reads Range there: the presigned URL does
            assert answer.status_code == 307 and "X-Amz-Signature" in answer.headers["location"]
            continue
        check_ranged(answer, JFK_MEDIA.read_bytes())


def test_ranges_the_contract_names(module_site: Site, alice: httpx.Client) -> None:
    """416 with ``Content-Range: bytes */size`` beyond the end; suffix and open ranges; a unit
    other than bytes and a reversed range are ignored (RFC 9110 section 14.2): the whole file."""
    if module_site.backend == "s3":
        pytest.skip("ranges are served by S3 through the presigned URL (tests/test_web_api.py)")
    data, path = JFK_MEDIA.read_bytes(), f"/api/v1/media/{module_site.alice_media}/stream"

    def get(value: str) -> httpx.Response:
        return alice.get(path, headers={"Range": value})

    beyond = get(f"bytes={SIZE}-")
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{SIZE}"
    suffix = get("bytes=-100")
    assert suffix.status_code == 206 and suffix.content == data[-100:]
    assert suffix.headers["content-range"] == f"bytes {SIZE - 100}-{SIZE - 1}/{SIZE}"
    for ignored in ("bits=0-9", "bytes=10-5", "bytes=abc", "items=0-1"):
        whole = get(ignored)
        assert whole.status_code == 200 and whole.content == data, ignored
    overlapping = get("bytes=0-9,5-14")
    assert overlapping.status_code == 206 and overlapping.content == data[:15]


@pytest.mark.hardening
@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, SIZE + 100), st.one_of(st.none(), st.integers(0, SIZE + 100))).map(
                lambda r: f"{r[0]}-{'' if r[1] is None else r[1]}"
            ),
            st.integers(0, SIZE + 100).map(lambda n: f"-{n}"),
            st.text(alphabet="0123456789-, =abx", max_size=12),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["bytes=", "bytes = ", "BYTES=", "bytes=,", "x="]),
)
def test_fuzzed_ranges_get_valid_answers(module_site: Site, alice: httpx.Client, specs, unit) -> None:
    path = f"/api/v1/media/{module_site.alice_media}/stream"
    answer = alice.get(path, headers={"Range": (unit + ",".join(specs)).strip()})
    if module_site.backend == "s3":
        assert answer.status_code == 307
        return
    check_ranged(answer, JFK_MEDIA.read_bytes())


@pytest.fixture(scope="module")
def big_media(module_site: Site, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A 48 MiB WAV of noise, alice's, in the vault (local only: S3 answers with a redirect)."""
    if module_site.backend != "local":
        pytest.skip("the local vault serves the bytes; S3 answers 307 to a presigned URL")
    path = tmp_path_factory.mktemp("big") / "noise.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        for _ in range(48):
            out.writeframes(os.urandom(1 << 20))
    request = IngestRequest(media=str(path), metadata={"title": "Noise", "owner": "alice"})
    return ingest(module_site.vault, request, module_site.settings).media_id, path


def test_an_open_range_on_a_big_file_streams_it_all(
    module_site: Site, alice: httpx.Client, big_media: tuple[str, Path]
) -> None:
    media_id, path = big_media
    size = path.stat().st_size
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    digest, received = hashlib.sha256(), 0
    url = f"/api/v1/media/{media_id}/stream"
    with alice.stream("GET", url, headers={"Range": "bytes=0-"}) as answer:
        assert answer.status_code == 206
        assert answer.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        assert int(answer.headers["content-length"]) == size
        for chunk in answer.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
    assert received == size and digest.hexdigest() == expected
    tail = alice.get(url, headers={"Range": f"bytes={size - 10}-{size + 10**9}"})
    assert tail.status_code == 206 and tail.content == path.read_bytes()[-10:]


# --- Fuzzed query strings ---------------------------------------------------------------------------

LIST_PARAMS = ["owner", "tag", "status", "tier", "language", "since", "until", "q", "sort", "limit", "cursor"]
SEARCH_PARAMS = [
    "q",
    "speaker",
    "media",
    "owner",
    "language",
    "tag",
    "date_from",
    "date_to",
    "sort",
    "limit",
    "offset",
    "facets",
]
HOSTILE_KEYS = ["owner[$ne]", "$where", "tag[$gt]", "__proto__", "q[]", "limit[$gt]", "sort[0]", ""]
HOSTILE_VALUES = [
    "",
    "$ne",
    '{"$gt": ""}',
    "[]",
    "null",
    "-1",
    str(10**30),
    "1e309",
    "NaN",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "2024-02-30T00:00:00Z",
    "*:*",
    "owner:bob",
    '"',
    "(",
    "\\",
    "\x00",
    "bob",
    "Bobsecret Chair",
    "title",
    "-created",
    "$natural",
    "true",
    "hot",
    "x" * 3000,
]
text_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


TIME_PARAMS = {"since", "until", "date_from", "date_to"}
NUMBER_PARAMS = {"limit", "offset"}
any_values = st.one_of(st.sampled_from(HOSTILE_VALUES), text_values, st.integers().map(str))
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
times = st.datetimes(timezones=st.none() | offsets).map(datetime.isoformat)  # years 1 to 9999


def value_for(name: str) -> st.SearchStrategy[str]:
    """Values for a parameter: anything, plus (often) values of its own type at their extremes."""
    if name in TIME_PARAMS:
        return st.one_of(times, times, any_values)
    if name in NUMBER_PARAMS:
        return st.one_of(st.integers(-(10**20), 10**20).map(str), any_values)
    return any_values


def query_strings(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    known = st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), value_for(name)))
    foreign = st.tuples(st.one_of(st.sampled_from(HOSTILE_KEYS), text_values), any_values)
    return st.lists(st.one_of(known, known, foreign), max_size=6)


def check_fuzzed(site: Site, answer: httpx.Response, params: list[tuple[str, str]]) -> None:
    sent = {key for key, _ in params}
    allowed = {200, 400, 422}
    if any(key == "owner" and value != "alice" for key, value in params):
        allowed.add(403)  # only an admin may name another owner
    check(answer, site, allowed, sent)


@pytest.mark.hardening
@given(query_strings(LIST_PARAMS))
def test_fuzzed_listing_queries(module_site: Site, alice: httpx.Client, params) -> None:
    answer = alice.get("/api/v1/media", params=params)
    check_fuzzed(module_site, answer, params)
    if answer.status_code == 200:
        assert all(item["owner"] == "alice" for item in answer.json()["items"])


@pytest.mark.hardening
@given(query_strings(SEARCH_PARAMS))
def test_fuzzed_search_queries(module_site: Site, alice: httpx.Client, params) -> None:
    answer = alice.get("/api/v1/search", params=params)
    check_fuzzed(module_site, answer, params)
    if answer.status_code == 200:
        body = answer.json()
        assert {hit["media_id"] for hit in body["hits"]} <= {module_site.alice_media}
        assert module_site.bob_media not in body["facets"].get("media_id", {})


@pytest.mark.parametrize("path", ["/api/v1/media", "/api/v1/search"])
def test_a_100_kb_query_string_is_refused_before_the_app(module_site: Site, path: str) -> None:
    """uvicorn refuses a request line this long (400) before the app sees it; never a 500."""
    status, _, body = raw_get(module_site, f"{path}?q={'x' * 100_000}", module_site.tokens["alice-viewer"])
    assert status in (400, 414, 422, 431), (status, body[:200])


def test_the_raw_client_sends_dot_segments_verbatim(module_site: Site) -> None:
    """Normalised, this path would be /api/v1/me (401 for a bad token); sent as is, no route."""
    status, _, body = raw_get(module_site, "/api/v1/media/../me", "mvt_x")
    assert status == 404 and json.loads(body) == {"error": "Not Found", "detail": None}
