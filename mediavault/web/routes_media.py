"""/api/v1/media: list, detail, transcript, export, AI outputs as received, stream, share URLs,
edits, restore."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from itsdangerous import BadSignature
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import Send

from mediavault.errors import InputError
from mediavault.index import reindex
from mediavault.index.index_store import MediaListQuery, MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.media import catalog, edits
from mediavault.media.export import export, run_output
from mediavault.vault import LocalVault
from mediavault.vault.hashing import read_exactly
from mediavault.vault.s3 import S3Vault, content_disposition
from mediavault.web.auth import Caller, CallerDep, ServicesDep, audit_denied, require_role
from mediavault.web.errors import ApiError, etag, not_found, parse_if_match, query_time
from mediavault.web.server import ZERO_COPY
from mediavault.web.services import Services

router = APIRouter(prefix="/api/v1/media", tags=["media"])
shared = APIRouter(tags=["media"])

MediaId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64-character hex media id")]
Label = Annotated[str | None, Query(max_length=200)]
EXPORT_TYPES = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "whisperx-json": "application/json",
}
EXPORT_SUFFIX = {"srt": "srt", "vtt": "vtt", "txt": "txt", "whisperx-json": "json"}
RunId = Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")]


def visible(services: Services, request: Request, caller: Caller, media_id: str) -> catalog.MediaView:
    """The media item if the caller may see it; 404 for unknown and for other owners alike."""
    view = catalog.media_view(services.vault, media_id)
    if view is None:
        raise not_found()
    if not caller.principal.sees_owner(view.owner):
        audit_denied(services, request, "another owner's media", caller.principal, media_id)
        raise not_found()
    return view


def _encode_cursor(after: tuple[Any, str], sort: str) -> str:
    raw = json.dumps({"v": after[0], "id": after[1], "s": sort}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, last_id = data["v"], data["id"]
        if data["s"] != sort or not isinstance(last_id, str) or not isinstance(value, str | None):
            raise ValueError("cursor of another listing")
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(422, "invalid cursor", {"field": "query.cursor", "message": str(exc)}) from None
    return value, last_id


def _iso(value: datetime | None, name: str) -> str | None:
    instant = query_time(value, name)
    return instant.isoformat() if instant is not None else None


@router.get("")
def list_media(
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    owner: Label = None,
    tag: Label = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    tier: Annotated[Literal["hot", "archive", "expired"] | None, Query()] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=500, description="Words in the title")] = None,
    sort: Literal["created", "-created", "title"] = "-created",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    """Media items in the caller's scope (admins: every owner, or ``owner``)."""
    scope = caller.principal.scope_owner()
    if owner is not None and scope is not None and owner != scope:
        audit_denied(services, request, "listing another owner", caller.principal)
        raise ApiError(403, "only an admin can list another owner's media", {"field": "query.owner"})
    query = MediaListQuery(
        owner=scope if scope is not None else owner,
        tag=tag,
        status=status,
        tier=tier,
        language=language,
        since=_iso(since, "since"),
        until=_iso(until, "until"),
        words=(q or "").split()[:20],
        sort=sort,
        limit=limit,
        after=_decode_cursor(cursor, sort) if cursor else None,
    )
    documents, after = services.index().list_media(query)
    return {
        "items": [
            {
                "id": d["_id"],
                "title": d.get("title"),
                "owner": d.get("owner"),
                "tags": d.get("tags", []),
                "language": d.get("language"),
                "duration": d.get("duration_seconds"),
                "created": d.get("ingested_at"),
                "updated": d.get("updated_at"),
                "status": d.get("status"),
                "tier": d.get("tier"),
                "speakers": d.get("speakers", []),
                "counts": d.get("counts", {}),
            }
            for d in documents
        ],
        "next_cursor": _encode_cursor(after, sort) if after else None,
    }


@router.get("/{media_id}")
def media_detail(
    media_id: MediaId, services: ServicesDep, caller: CallerDep, request: Request, response: Response
) -> dict[str, Any]:
    view = visible(services, request, caller, media_id)
    body = catalog.detail(view)
    body["status"], body["events"] = _status_and_events(services, media_id)
    response.headers["ETag"] = etag(view.manifest.version)
    return body


def _status_and_events(services: Services, media_id: str) -> tuple[str, list[dict[str, Any]]]:
    from mediavault.index import status as status_module

    try:
        database = services.database()
    except Exception:  # the vault answers even when the index is down
        return "committed", []
    document = status_module.status_document(database, media_id)
    events = status_module.recent_events(database, media_id, limit=20)
    return (document or {}).get("status", "committed"), events


@router.get("/{media_id}/transcript")
def media_transcript(
    media_id: MediaId,
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    response: Response,
    run: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    seq: Annotated[list[int] | None, Query(max_length=1000, description="Only these statements")] = None,
) -> dict[str, Any]:
    view = visible(services, request, caller, media_id)
    _not_a_summary(view, media_id, run)
    response.headers["ETag"] = etag(view.manifest.version)
    return catalog.transcript(services.vault, view, run, set(seq) if seq else None)


def _not_a_summary(view: catalog.MediaView, media_id: str, run_id: str | None) -> None:
    """A summary has no statements: point at the endpoint that returns it."""
    run = view.manifest.run(run_id) if run_id else None
    if run is not None and run.kind == "summary":
        raise InputError(
            "query",
            "run",
            f"run {run_id} is a summary, not a transcript; get it from "
            f"/api/v1/media/{media_id}/output?run={run_id}",
        )


@router.get("/{media_id}/export/{format_name}")
def media_export(
    media_id: MediaId,
    format_name: Literal["srt", "vtt", "txt", "whisperx-json"],
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    run: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
) -> Response:
    view = visible(services, request, caller, media_id)
    _not_a_summary(view, media_id, run)
    text = export(services.vault, media_id, format_name, run)
    caller.audit(services, "export", media_id, format=format_name)
    stem = (view.document.get("title") or view.document.get("original_filename") or media_id[:12])[:100]
    return Response(
        text.encode(),
        media_type=EXPORT_TYPES[format_name],
        headers={"Content-Disposition": content_disposition(f"{stem}.{EXPORT_SUFFIX[format_name]}")},
    )


@router.get("/{media_id}/output")
def media_run_output(
    media_id: MediaId,
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    run: RunId = None,
    format_name: Annotated[
        str | None,
        Query(
            alias="format",
            pattern=r"^[a-z][a-z-]{0,39}$",
            description="One of the run's output formats (default: its primary output)",
        ),
    ] = None,
) -> Response:
    """A run's AI output byte-exact as it was received (default: the current transcript run's
    primary output): a summary's Markdown or JSON, a translation's or transcript's original file."""
    view = visible(services, request, caller, media_id)
    output = run_output(services.vault, media_id, run, format_name)
    caller.audit(services, "export", media_id, format=f"original:{output.format}", run=output.run.run_id)
    stem = (view.document.get("title") or view.document.get("original_filename") or media_id[:12])[:100]
    language = f".{output.run.language}" if output.run.kind != "transcript" and output.run.language else ""
    return Response(
        output.data,
        media_type=output.content_type,
        headers={
            "Content-Disposition": content_disposition(
                f"{stem}.{output.run.kind}{language}.{output.extension}"
            )
        },
    )


_RANGE_SPEC = re.compile(r"([0-9]{0,1000})-([0-9]{0,1000})")


def valid_byte_ranges(value: str) -> bool:
    """True for a ``Range`` value RFC 9110 (section 14.1) calls a valid ``bytes`` ranges-specifier."""
    unit, equals, specs = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return False
    found = False
    for spec in specs.split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue  # empty list elements are allowed
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None or match.group(1) == match.group(2) == "":
            return False
        first, last = match.groups()
        if first and last and int(last) < int(first):
            return False
        found = True
    return found


class MediaFileResponse(FileResponse):
    """Starlette's ``FileResponse`` (ranges, 206, 416, HEAD, If-Range), with these changes:
    - a ``Range`` header that is not a valid bytes range (another unit, bad syntax, a reversed
      range) is ignored and the whole file is sent, as RFC 9110 (section 14.2) asks, instead of
      a plain-text 400;
    - when the server offers the ASGI zero-copy send extension (``mediavault serve`` does, see
      ``mediavault.web.server``), the whole file or the single range is one
      ``http.response.zerocopysend`` message: the kernel moves the bytes (``sendfile``);
    - otherwise the body is read 2 MiB at a time (not 64 KiB): each read is a thread hop.
      bench/serve.py measured 1 MiB at about five times 64 KiB for one whole-file stream, and
      2 MiB at another 15 to 20 % (4 MiB more still, but the server's memory then grew by 68 MiB
      with 8 clients: each stream holds about two chunks). Each chunk is one ``os.pread`` in the
      worker thread, the first one opening the file, instead of separate hops to open, seek,
      read and close: a player's seek is a small range request, where those hops were most of
      the cost.
    Multiple ranges in one request stay Starlette's own."""

    chunk_size = 2 * 1024 * 1024

    async def __call__(self, scope, receive, send) -> None:
        value = Headers(scope=scope).get("range")
        if value is not None and not valid_byte_ranges(value):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]}
        self._zero_copy = ZERO_COPY in scope.get("extensions", {})
        await super().__call__(scope, receive, send)

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        if send_header_only or send_pathsend:
            await super()._handle_simple(send, send_header_only, send_pathsend)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await self._send_bytes(send, 0, None)

    async def _handle_single_range(
        self, send: Send, start: int, end: int, file_size: int, send_header_only: bool
    ) -> None:
        if send_header_only:
            await super()._handle_single_range(send, start, end, file_size, send_header_only)
            return
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{file_size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        await self._send_bytes(send, start, end)

    async def _send_bytes(self, send: Send, start: int, end: int | None) -> None:
        """Send bytes ``start`` to ``end`` (exclusive; None: to the end of the file)."""
        if self._zero_copy:
            await self._send_file(send, start, end)
            return
        opened: list[int] = []

        def read(offset: int, size: int) -> bytes:
            if not opened:
                opened.append(os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
            return read_exactly(opened[0], size, offset)

        try:
            more_body = True
            while more_body:
                size = self.chunk_size if end is None else min(self.chunk_size, end - start)
                chunk = await anyio.to_thread.run_sync(read, start, size)
                start += len(chunk)
                more_body = len(chunk) == self.chunk_size and (end is None or start < end)
                await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
        finally:
            if opened:
                os.close(opened[0])

    async def _send_file(self, send: Send, start: int, end: int | None) -> None:
        if end is None:  # the whole file: as long as the Content-Length its stat gave
            end = int(self.headers["content-length"])
        fd = await anyio.to_thread.run_sync(os.open, self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            await send({"type": ZERO_COPY, "file": fd, "offset": start, "count": end - start})
        finally:
            os.close(fd)


def _hot_media(view: catalog.MediaView, media_id: str):
    media = view.media
    if media is None or media.tier == "expired":
        raise ApiError(410, "expired", {"message": "the retention policy removed this media"})
    if media.tier != "hot":
        raise ApiError(
            409,
            "archived",
            {
                "message": "the media is in the archive tier; restore it first",
                "restore": f"POST /api/v1/media/{media_id}/restore",
            },
        )
    return media


@router.get("/{media_id}/stream")
@router.head("/{media_id}/stream", operation_id="media_stream_head")  # one OpenAPI operation each
def media_stream(media_id: MediaId, services: ServicesDep, caller: CallerDep, request: Request) -> Response:
    """The media bytes: with Range support on a local vault, a presigned redirect on S3."""
    view = visible(services, request, caller, media_id)
    media = _hot_media(view, media_id)
    if services.first_stream_of_session(caller.session, media_id):
        caller.audit(services, "stream", media_id, via=caller.via)
    vault = services.vault
    if isinstance(vault, S3Vault):
        url = vault.presigned_get(
            media.key,
            services.settings.web.stream_url_ttl_seconds,
            content_type=media.content_type,
            endpoint_url=services.settings.web.public_s3_endpoint_url,
        )
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    assert isinstance(vault, LocalVault)
    path = vault.local_path(media.key)
    try:
        found = os.stat(path)  # given to the response, which would otherwise stat it in a thread hop
    except FileNotFoundError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise ApiError(503, "media object missing from the vault", {"key": media.key})
    return MediaFileResponse(
        path, media_type=media.content_type, headers={"Cache-Control": "private"}, stat_result=found
    )


@router.get("/{media_id}/url")
def media_share_url(
    media_id: MediaId, services: ServicesDep, caller: CallerDep, request: Request
) -> dict[str, Any]:
    """A signed, expiring download URL to share (anyone holding it can download until it expires)."""
    view = visible(services, request, caller, media_id)
    media = _hot_media(view, media_id)
    ttl = services.settings.web.share_url_ttl_seconds
    name = view.document.get("original_filename") or f"{media_id[:12]}"
    vault = services.vault
    if isinstance(vault, S3Vault):
        url = vault.presigned_get(
            media.key,
            ttl,
            content_type=media.content_type,
            download_name=name,
            endpoint_url=services.settings.web.public_s3_endpoint_url,
        )
    else:
        signed = services.signer.dumps({"m": media_id, "k": media.key, "n": name}, salt="share")
        url = str(request.url_for("shared_download", signed=signed))
    caller.audit(services, "signed-url", media_id, expires_in=ttl)
    return {"url": url, "expires_in": ttl, "expires_at": int(time.time()) + ttl}


@shared.get("/shared/{signed}", name="shared_download", include_in_schema=False)
def shared_download(signed: Annotated[str, Path(max_length=4000)], services: ServicesDep) -> Response:
    """A local-vault download URL made by ``/url``: the HMAC signature is the authorization."""
    try:
        data = services.signer.loads(
            signed, salt="share", max_age=services.settings.web.share_url_ttl_seconds
        )
    except BadSignature:
        raise ApiError(403, "invalid or expired link") from None
    vault = services.vault
    view = catalog.media_view(vault, str(data.get("m", "")))
    if (
        not isinstance(vault, LocalVault)  # links of a local vault the secret signed before a move to S3
        or view is None
        or view.media is None
        or view.media.key != data.get("k")
        or view.media.tier != "hot"
    ):
        raise ApiError(410, "this media is no longer available at this link")
    return MediaFileResponse(
        vault.local_path(view.media.key),
        media_type=view.media.content_type,
        headers={"Content-Disposition": content_disposition(str(data.get("n") or "download"))},
    )


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["rename-speaker", "correct-text", "fix-metadata"]
    payload: dict[str, Any] = Field(description="As for the CLI; see the edit kinds")


@router.post("/{media_id}/edits", status_code=201)
def media_edit(
    media_id: MediaId,
    body: EditRequest,
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Write an edit overlay (committed to the vault, applied to the live index at once)."""
    visible(services, request, caller, media_id)  # another owner's media: 404 before any 403
    require_role(services, request, caller, "editor")
    if body.kind == "fix-metadata" and "owner" in body.payload and not caller.principal.is_admin:
        audit_denied(services, request, "changing the owner", caller.principal, media_id)
        raise ApiError(403, "only an admin can change the owner", {"field": "payload.owner"})
    expected = parse_if_match(if_match)
    result = edits.add_edit(
        services.vault,
        media_id,
        body.kind,
        body.payload,
        author=caller.principal.name or caller.principal.token_id,
        expected_version=expected,
    )
    caller.audit(services, "edit", media_id, kind=body.kind, manifest_version=result.manifest_version)
    reindexed = _apply_to_index(services, media_id)
    services.forget_storage_stats()
    response.headers["ETag"] = etag(result.manifest_version)
    return {
        "edit_id": result.edit.edit_id,
        "manifest_version": result.manifest_version,
        "etag": etag(result.manifest_version),
        "indexed": reindexed,
    }


def _apply_to_index(services: Services, media_id: str) -> bool:
    """Re-project the item into the live index; the vault commit stands even if this fails
    (the next incremental re-index applies the journal record)."""
    try:
        target = IndexTarget(services.vault, MongoIndexStore(services.database()), services.search)
        reindex.reindex_media(target, [media_id])
        return True
    except Exception:
        return False


@router.post("/{media_id}/restore", status_code=202)
def media_restore(
    media_id: MediaId,
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
) -> dict[str, Any]:
    """Bring archived artifacts back to the hot tier (runs in the background)."""
    visible(services, request, caller, media_id)
    require_role(services, request, caller, "editor")
    started = services.start_restore(media_id, caller.principal.token_id)
    caller.audit(services, "restore", media_id, **{k: str(v) for k, v in started.items()})
    return {"status": "started", **started}
