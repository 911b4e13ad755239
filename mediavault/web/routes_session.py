"""Browser sessions: trade a token for a signed session cookie at POST /login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from mediavault.access.audit import AuditRecord
from mediavault.models import utc_now
from mediavault.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    ServicesDep,
    client_address,
    new_session,
)
from mediavault.web.errors import ApiError

router = APIRouter(tags=["session"])


@router.post("/login")
def login(
    request: Request,
    response: Response,
    services: ServicesDep,
    token: Annotated[str, Form(max_length=200)],
) -> dict[str, Any]:
    """Check the token, then set an HttpOnly, SameSite=Strict session cookie (Secure over https)
    and a readable CSRF cookie whose value unsafe requests echo in ``X-CSRF-Token``."""
    client = client_address(request) or "unknown"
    wait = services.login_throttle.retry_after(client)
    if wait:
        raise ApiError(429, "too many failed logins; try again later", None, {"Retry-After": str(wait)})
    principal, reason = services.tokens.check(token)
    services.audit.record(
        AuditRecord(
            at=utc_now(),
            action="login",
            outcome="ok" if principal else "denied",
            token_id=principal.token_id if principal else None,
            owner=principal.owner if principal else None,
            role=principal.role if principal else None,
            client=client,
            detail={} if principal else {"reason": reason},
        )
    )
    if principal is None:
        services.login_throttle.failed(client)
        raise ApiError(401, "invalid token", {"reason": reason})
    cookie, csrf = new_session(services, principal)
    secure = request.url.scheme == "https"
    max_age = int(services.settings.web.session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure, path="/"
    )
    return {"owner": principal.owner, "role": principal.role, "name": principal.name, "csrf": csrf}


@router.post("/logout")
def logout(response: Response) -> dict[str, Any]:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/v1/me")
def me(caller: CallerDep) -> dict[str, Any]:
    principal = caller.principal
    return {
        "token_id": principal.token_id,
        "owner": principal.owner,
        "role": principal.role,
        "name": principal.name,
    }
