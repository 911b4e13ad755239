"""/api/v1/search: full-text search over statements, always within the caller's scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from mediavault.search import SearchQuery, SearchResult
from mediavault.web.auth import CallerDep, ServicesDep, audit_denied
from mediavault.web.errors import ApiError, query_time

router = APIRouter(prefix="/api/v1", tags=["search"])

# Every search backend can filter on these ingest times (Tantivy's dates end in 2262). Nothing was
# ingested outside them, so clamping a filter into them changes no answer.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


def _ingest_time(value: datetime | None, name: str) -> datetime | None:
    instant = query_time(value, name, naive_is_utc=True)
    return None if instant is None else min(max(instant, EARLIEST), LATEST)


@router.get("/search", response_model=SearchResult)
def search(
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
    q: Annotated[str, Query(max_length=2000, description='Words and "quoted phrases"; all must match')] = "",
    speaker: Annotated[str | None, Query(max_length=200)] = None,
    media: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    sort: Literal["relevance", "time"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=200)] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    facets: bool = True,
    media_limit: Annotated[
        int, Query(ge=0, le=50, description="Media whose title, description or tags match (first page)")
    ] = 5,
) -> Response:
    """Statements matching ``q``, and (under ``media``) the media items whose title, description or
    tags match it. Non-admins search only their owner's media, so hits and facets (speakers,
    media, languages, tags) never name another owner's data."""
    scope = caller.principal.scope_owner()
    if owner is not None and scope is not None and owner != scope:
        audit_denied(services, request, "searching another owner", caller.principal)
        raise ApiError(403, "only an admin can search another owner's media", {"field": "query.owner"})
    query = SearchQuery(
        text=q,
        speaker=speaker,
        media_id=media,
        owner=scope if scope is not None else owner,
        language=language,
        tag=tag,
        date_from=_ingest_time(date_from, "date_from"),
        date_to=_ingest_time(date_to, "date_to"),
        sort=sort,
        limit=limit,
        offset=offset,
        facets=facets,
        media_limit=media_limit,
    )
    # Serialised once, by the model itself (a returned dict would be validated and encoded again).
    return Response(services.search.search(query).model_dump_json(), media_type="application/json")
