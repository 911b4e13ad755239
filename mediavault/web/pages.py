"""The dashboard and player: server-rendered pages over the same handlers the JSON API uses.

Pages authenticate with the browser session (``POST /login``); an anonymous visitor is sent to
the login page. Every page reads through the API's own handler functions, so owner scoping, role
checks and auditing are the API's and are not repeated here.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from mediavault.index import overview
from mediavault.web import routes_media, routes_search
from mediavault.web.auth import Caller, ServicesDep, current_caller
from mediavault.web.errors import ApiError
from mediavault.web.services import Services

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def mark_page(request: Request) -> None:
    """Errors on these routes are answered as pages (see ``error_page``)."""
    request.state.page = True


router = APIRouter(include_in_schema=False, dependencies=[Depends(mark_page)])

Text = Annotated[str | None, Query(max_length=200)]
FACET_TITLES = [
    ("speaker_name", "Speakers"),
    ("media_id", "Media"),
    ("language", "Languages"),
    ("tags", "Tags"),
]
PAGE_SIZE = 20
MAX_OFFSET = 10_000


def highlight(snippet: str | None) -> Markup:
    """A search snippet as safe HTML: only the backends' ``<b>`` markers become ``<mark>``; the text
    between them is escaped again whatever the backend did."""
    parts = re.split(r"(</?b>)", snippet or "")
    out, inside = [], False
    for part in parts:
        if part in ("<b>", "</b>"):
            inside = part == "<b>"
            out.append("<mark>" if inside else "</mark>")
        else:
            out.append(str(escape(html.unescape(part))))
    if inside:
        out.append("</mark>")
    return Markup("".join(out))


templates.env.filters["highlight"] = highlight


PageCaller = Annotated[Caller, Depends(current_caller)]


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, exc: ApiError) -> Response:
    """How an ``ApiError`` looks on a page (the JSON API answers it as JSON)."""
    if exc.status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    headings = {403: "Not allowed", 404: "Not found", 409: "Not available", 410: "Gone"}
    message = exc.detail.get("message") if isinstance(exc.detail, dict) else None
    return render(
        request,
        "error.html",
        status=exc.status,
        caller=None,
        status_code=exc.status,
        heading=headings.get(exc.status, "Something went wrong"),
        message=message or exc.error,
    )


def safe_next(target: str | None) -> str:
    """Only local paths: a login link must not send people to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/search"
    return target


def _day(value: str | None, name: str, end: bool = False) -> datetime | None:
    """A date from an ``<input type=date>``; the end of the day for upper bounds."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, f"invalid {name}: use YYYY-MM-DD", {"field": f"query.{name}"}) from None
    moment = datetime.combine(day, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) - timedelta(microseconds=1) if end else moment


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/search", status_code=303)


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return render(request, "login.html", caller=None, next=safe_next(next), error=None)


def login_failed_page(request: Request, next_page: str | None, error: str, status: int) -> Response:
    return render(request, "login.html", status=status, caller=None, next=safe_next(next_page), error=error)


@router.get("/search")
def search_page(
    request: Request,
    services: ServicesDep,
    caller: PageCaller,
    q: Annotated[str, Query(max_length=2000)] = "",
    speaker: Text = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    tag: Text = None,
    media: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    date_from: Annotated[str | None, Query(max_length=10)] = None,
    date_to: Annotated[str | None, Query(max_length=10)] = None,
    sort: Annotated[str, Query(pattern="^(relevance|time)$")] = "relevance",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    params: dict[str, Any] = {
        "q": q,
        "speaker": speaker or None,
        "language": language or None,
        "tag": tag or None,
        "media": media,
        "date_from": date_from or None,
        "date_to": date_to or None,
        "sort": sort,
        "offset": offset,
    }
    if media is not None:
        routes_media.visible(services, request, caller, media)  # another owner's media: 404
    filters = {k: v for k, v in params.items() if k in ("speaker", "language", "tag", "media") and v}
    searching = bool(q.strip() or filters or date_from or date_to)
    result = None
    if searching:
        arguments = {
            "q": q,
            "speaker": params["speaker"],
            "language": params["language"],
            "media": media,
            "tag": params["tag"],
            "date_from": _day(date_from, "date_from"),
            "date_to": _day(date_to, "date_to", end=True),
            "sort": sort,
            "limit": PAGE_SIZE,
            "offset": offset,
        }
        result = json.loads(routes_search.search(services, caller, request, **arguments).body)

    def link(**changes: Any) -> str:
        merged = {**params, **changes}
        return "/search?" + urlencode({k: v for k, v in merged.items() if v not in (None, "", 0)})

    facet_param = {"speaker_name": "speaker", "media_id": "media", "language": "language", "tags": "tag"}
    media_ids = list((result or {}).get("facets", {}).get("media_id", {})) + ([media] if media else [])
    hits = (result or {}).get("hits", [])
    total = (result or {}).get("total", 0)
    return render(
        request,
        "search.html",
        caller=caller,
        nav="search",
        params=params,
        result=result,
        facet_titles=FACET_TITLES,
        facet_link=lambda name, value: link(**{facet_param[name]: value, "offset": 0}),
        media_titles=_titles(services, media_ids, caller.principal.scope_owner()),
        active_filters=[(name, value, link(**{name: None, "offset": 0})) for name, value in filters.items()],
        hit_link=lambda hit: _hit_link(hit, q),
        prev_link=link(offset=max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        next_link=(
            link(offset=offset + PAGE_SIZE)
            if offset + len(hits) < total and offset + PAGE_SIZE <= MAX_OFFSET
            else None
        ),
    )


def _hit_link(hit: dict[str, Any], q: str) -> str:
    query = {"t": f"{hit['start']:.3f}", "run": hit["run_id"], "seq": hit["seq"]}
    if q.strip():
        query["q"] = q
    return f"/media/{hit['media_id']}?{urlencode(query)}"


def _titles(services: Services, media_ids: list[str], owner: str | None) -> dict[str, str]:
    if not media_ids:
        return {}
    try:
        return overview.titles(services.database(), media_ids, owner)
    except Exception:
        return {}


@router.get("/library")
def library_page(
    request: Request,
    services: ServicesDep,
    caller: PageCaller,
    q: Annotated[str | None, Query(max_length=500)] = None,
    tag: Text = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    tier: Annotated[str | None, Query(pattern="^(hot|archive|expired)?$")] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
    owner: Text = None,
    sort: Annotated[str, Query(pattern=r"^(created|-created|title)$")] = "-created",
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    params = {
        "q": q or None,
        "tag": tag or None,
        "status": status or None,
        "tier": tier or None,
        "language": language or None,
        "since": since or None,
        "until": until or None,
        "owner": owner or None,
        "sort": sort,
    }
    listing = routes_media.list_media(
        services,
        caller,
        request,
        owner=params["owner"],
        tag=params["tag"],
        status=params["status"],
        tier=params["tier"],
        language=params["language"],
        since=_day(since, "since"),
        until=_day(until, "until", end=True),
        q=params["q"],
        sort=sort,
        limit=50,
        cursor=cursor or None,
    )
    query = {k: v for k, v in params.items() if v}
    next_cursor = listing["next_cursor"]
    return render(
        request,
        "library.html",
        caller=caller,
        nav="library",
        params=params,
        items=listing["items"],
        next_link=f"/library?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
        first_link=f"/library?{urlencode(query)}" if cursor else None,
    )


@router.get("/media/{media_id}")
def player_page(
    media_id: routes_media.MediaId,
    request: Request,
    services: ServicesDep,
    caller: PageCaller,
    t: Annotated[float | None, Query(ge=0, le=10**7)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    run: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    seq: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    detail = routes_media.media_detail(media_id, services, caller, request, Response())
    playable = [
        r for r in detail["runs"] if r.get("kind", "transcript") != "summary"
    ]  # a summary has no timings
    run_id = run if run in {r["run_id"] for r in playable} else detail["current_run"]
    media_artifact = next((a for a in detail["artifacts"] if a["kind"] == "media"), None)
    content_type = (media_artifact or {}).get("content_type") or ""
    can_edit = caller.principal.can("editor")
    config = {
        "media_id": media_id,
        "etag": f'"v{detail["manifest_version"]}"',
        "version": detail["manifest_version"],
        "run_id": run_id,
        "current_run": detail["current_run"],
        "start": t,
        "seq": seq,
        "q": q,
        "can_edit": can_edit,
        "tier": detail["tier"],
        "speakers": detail["speakers"],
    }
    return render(
        request,
        "player.html",
        caller=caller,
        nav="library",
        media=detail,
        run_id=run_id,
        playable_runs=playable,
        summaries=[r for r in detail["runs"] if r.get("kind") == "summary"],
        q=q,
        can_edit=can_edit,
        is_video=content_type.startswith("video/"),
        stream_url=f"/api/v1/media/{media_id}/stream",
        config=config,
    )


@router.get("/dashboard")
async def dashboard_page(request: Request, services: ServicesDep, caller: PageCaller) -> Response:
    data = await run_in_threadpool(dashboard_data, services, caller)
    return render(request, "dashboard.html", caller=caller, nav="dashboard", **data)


def dashboard_data(services: Services, caller: Caller) -> dict[str, Any]:
    """Counts, recent activity, storage over time and (admins) the last lifecycle and verify runs."""
    from mediavault.index.stats import storage_stats_empty

    owner = caller.principal.scope_owner()
    data: dict[str, Any] = {"index_error": None, "storage_error": None}
    try:
        database = services.database()
        data["counts"] = overview.counts(database, owner)
        data["activity"] = overview.recent_events(database, owner)
    except Exception as exc:
        data["index_error"] = f"the index is not reachable: {type(exc).__name__}"
        data["counts"], data["activity"] = {}, {"ingests": [], "failures": []}
    try:
        data["storage"] = services.storage_stats(owner)
    except Exception as exc:
        data["storage_error"] = f"storage figures unavailable: {type(exc).__name__}"
        data["storage"] = storage_stats_empty()
    data["charts"] = {
        "class": overview.cumulative_series(data["storage"]["growth_by_class"], "class"),
        "tier": overview.cumulative_series(data["storage"]["growth_by_tier"], "tier"),
    }
    data["reports"] = overview.latest_reports(services.vault) if caller.principal.is_admin else {}
    data["prefect_ui"] = services.prefect_ui_url
    return data
