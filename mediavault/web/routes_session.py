"""Browser sessions: trade a token for a signed session cookie at POST /login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from mediavault.access.audit import AuditRecord
from mediavault.vault.models import utc_now
from mediavault.web import pages
from mediavault.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    ServicesDep,
    audit_denied,
    client_address,
    cross_site,
    new_session,
)
from mediavault.web.errors import ApiError

router = APIRouter(tags=["session"])


@router.post("/login", response_model=None)
def login(
    request: Request,
    response: Response,
    services: ServicesDep,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str | None, Form(max_length=2000, description="Page form: where to go")] = None,
) -> dict[str, Any] | Response:
    """Check the token, then set an HttpOnly, SameSite=Strict session cookie (Secure over https)
    and a readable CSRF cookie whose value unsafe requests echo in ``X-CSRF-Token``.

    The login page's form sends ``next``: it gets a redirect there, or the page again with the
    error; other clients get JSON."""
    if cross_site(request):
        audit_denied(services, request, "cross-site login")
        raise ApiError(403, "cross-site login refused")
    client = client_address(request) or "unknown"
    wait = services.login_throttle.retry_after(client)
    if wait:
        if next is not None:
            return pages.login_failed_page(request, next, f"Too many failed logins: wait {wait} s.", 429)
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
        if next is not None:
            return pages.login_failed_page(request, next, f"That token is not valid ({reason}).", 401)
        raise ApiError(401, "invalid token", {"reason": reason})
    if next is not None:
        response = RedirectResponse(pages.safe_next(next), status_code=303)
    cookie, csrf = new_session(services, principal)
    secure = request.url.scheme == "https"
    max_age = int(services.settings.web.session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/"
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure, path="/"
    )
    if next is not None:
        return response
    return {"owner": principal.owner, "role": principal.role, "name": principal.name, "csrf": csrf}


@router.post("/logout", response_model=None)
def logout(request: Request, response: Response) -> dict[str, Any] | Response:
    """Drop the session cookies; a browser form gets the login page again. Another site cannot
    log people out."""
    if cross_site(request):
        raise ApiError(403, "cross-site logout refused")
    if "text/html" in request.headers.get("accept", ""):
        response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response if isinstance(response, RedirectResponse) else {"ok": True}


@router.get("/api/v1/me")
def me(caller: CallerDep) -> dict[str, Any]:
    principal = caller.principal
    return {
        "token_id": principal.token_id,
        "owner": principal.owner,
        "role": principal.role,
        "name": principal.name,
    }
