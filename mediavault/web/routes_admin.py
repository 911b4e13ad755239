"""/api/v1/audit and /api/v1/media/{id}/forget (admin), /api/v1/stats and /api/v1/jobs (the
caller's scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from mediavault.access.audit import read_audit
from mediavault.errors import InputError
from mediavault.vault import manifests
from mediavault.web import routes_media
from mediavault.web.auth import Caller, CallerDep, ServicesDep, require, require_role
from mediavault.web.errors import ApiError, query_time

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/audit")
def audit(
    services: ServicesDep,
    caller: Annotated[Caller, Depends(require("admin"))],
    since: datetime | None = None,
    until: datetime | None = None,
    actor: Annotated[str | None, Query(max_length=200, description="Token id or owner")] = None,
    media: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Audit records, newest first (records of the last few seconds may still be buffered)."""
    services.audit.flush()
    since, until = query_time(since, "since", True), query_time(until, "until", True)
    records = read_audit(
        services.vault, since=since, until=until, actor=actor, media_id=media, action=action, limit=limit
    )
    return {"items": [r.model_dump(mode="json") for r in records]}


@router.get("/stats")
def stats(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Storage by artifact class and tier, and growth by month, for the caller's owner (admins:
    everything). Figures may be up to 30 seconds old."""
    return services.storage_stats(caller.principal.scope_owner())


@router.get("/jobs", response_model=None)
def jobs(
    services: ServicesDep,
    caller: CallerDep,
    failed: Annotated[bool, Query(description="Only jobs with a failure")] = False,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every event of these jobs")] = "json",
) -> dict[str, Any] | Response:
    """Ingest jobs, newest first, with their status (committed, failed, partial, running), the
    reason of a failure and their events. Non-admins see the jobs of their owner's media only
    (a file rejected before any media was stored belongs to no owner)."""
    from mediavault.index import overview
    from mediavault.ops.jobs import events_csv, list_jobs

    database = services.database()
    scope = caller.principal.scope_owner()
    media_ids = overview.owned_media_ids(database, scope) if scope is not None else None
    found = list_jobs(
        database, since=query_time(since, "since", True), failed_only=failed, media_ids=media_ids, limit=limit
    )
    if format == "csv":
        return Response(
            events_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="mediavault-jobs.csv"'},
        )
    return {"items": [job.as_dict() for job in found]}


class ForgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description='Why, e.g. "consent withdrawn"')
    apply: bool = Field(False, description="False lists what would go; True erases")


@router.post("/media/{media_id}/forget")
def forget(
    media_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    body: ForgetRequest,
    services: ServicesDep,
    caller: CallerDep,
    request: Request,
) -> dict[str, Any]:
    """Erase a media item on request (admin only): its media, runs, edits, archived copies, earlier
    manifest versions, index and search documents. A tombstone remains. The search index is
    rebuilt, so this can take a while. Refused (409) under legal hold."""
    from mediavault.backends import index_target
    from mediavault.errors import LegalHold
    from mediavault.index.reindex import purge_media
    from mediavault.lifecycle.forget import forget as forget_media

    newest = manifests.newest_manifest(services.vault, media_id)
    if newest is None or newest.forgotten is None:
        routes_media.visible(services, request, caller, media_id)  # unknown or another owner's: 404
    require_role(services, request, caller, "admin")  # a tombstone: only an admin may finish it
    by = f"token:{caller.principal.token_id}"
    try:
        result = forget_media(
            services.vault,
            media_id,
            body.reason,
            by,
            apply=body.apply,
            remove_from_index=lambda m: purge_media(index_target(services.settings), m),
        )
    except LegalHold as exc:
        caller.audit(services, "forget", media_id, outcome="refused", reason=body.reason, error=str(exc))
        raise ApiError(409, str(exc)) from None
    except InputError as exc:
        if exc.field == "reason":
            raise ApiError(422, exc.message, {"field": "body.reason"}) from None
        raise ApiError(404, "no such media item", {"field": "path.media_id"}) from None
    except Exception as exc:  # part-way: audited, and a retry finishes it
        caller.audit(services, "forget", media_id, outcome="failed", reason=body.reason, error=str(exc)[:500])
        raise
    outcome = "ok" if result.applied else "planned"
    caller.audit(
        services,
        "forget",
        media_id,
        outcome=outcome,
        reason=body.reason,
        objects=result.plan.as_dict()["objects"],
    )
    services.forget_storage_stats()
    return result.as_dict()
