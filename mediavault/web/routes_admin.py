"""/api/v1/audit (admin) and /api/v1/stats (the caller's scope)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mediavault.access.audit import AUDIT_PREFIX, read_audit
from mediavault.models import utc_now
from mediavault.vault.base import Vault
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
    # read_audit walks the days of the range: bound it by the records that can exist.
    first = _first_audit_day(services.vault)  # None: no record (as read_audit sees it)
    horizon = utc_now() + timedelta(days=1)  # read_audit's own bound: clocks a little ahead
    if first is None or (until is not None and until <= first) or (since is not None and since > horizon):
        return {"items": []}
    since = None if since is not None and since <= first else since
    until = None if until is not None and until > horizon else until
    records = read_audit(
        services.vault, since=since, until=until, actor=actor, media_id=media, action=action, limit=limit
    )
    return {"items": [r.model_dump(mode="json") for r in records]}


def _first_audit_day(vault: Vault) -> datetime | None:
    """The start of the UTC day of the oldest audit object (``audit/<YYYY>/<MM>/<DD>/...``)."""
    key = next(iter(vault.list_keys(AUDIT_PREFIX)), None)
    if key is None:
        return None
    try:
        year, month, day = key.removeprefix(AUDIT_PREFIX).split("/")[:3]
        return datetime(int(year), int(month), int(day), tzinfo=UTC)
    except ValueError:
        return None


@router.get("/stats")
def stats(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Storage by artifact class and tier, and growth by month, for the caller's owner (admins:
    everything). Figures may be up to 30 seconds old."""
    return services.storage_stats(caller.principal.scope_owner())
