"""/api/v1/audit (admin) and /api/v1/stats (the caller's scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mediavault.access.audit import read_audit
from mediavault.web.auth import Caller, CallerDep, ServicesDep, require
from mediavault.web.errors import query_time

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
