"""Who is calling, and may they: bearer tokens, browser sessions, roles, CSRF, login throttling.

A request is authenticated by ``Authorization: Bearer <token>`` or by the session cookie a
browser got from ``POST /login``. Session cookies are signed (itsdangerous), HttpOnly and
SameSite=Strict, and name only the token id: each request re-checks that token, so a revocation
or an expiry ends its sessions too. Unsafe methods under cookie auth must echo the CSRF value of
the ``mv_csrf`` cookie in an ``X-CSRF-Token`` header (double submit, bound to the session).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from itsdangerous import BadSignature
from starlette.concurrency import run_in_threadpool

from mediavault.access.audit import AuditRecord, redact
from mediavault.access.tokens import Principal, Role
from mediavault.vault.models import utc_now
from mediavault.web.errors import ApiError
from mediavault.web.services import Services

SESSION_COOKIE = "mv_session"
CSRF_COOKIE = "mv_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Caller:
    principal: Principal
    via: str  # "bearer" | "session"
    session: str  # a per-session id (bearer: the token id), for once-per-session audit records
    client: str | None

    def audit(
        self, services: Services, action: str, media_id: str | None = None, outcome: str = "ok", **detail: Any
    ) -> None:
        services.audit.record(
            AuditRecord(
                at=utc_now(),
                action=action,
                outcome=outcome,
                token_id=self.principal.token_id,
                owner=self.principal.owner,
                role=self.principal.role,
                media_id=media_id,
                client=self.client,
                detail=detail,
            )
        )


async def get_services(request: Request) -> Services:
    """The app's services. Async, since it cannot block: FastAPI runs a plain ``def`` dependency in
    a worker thread, one thread hop per request for nothing."""
    return request.app.state.services


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_denied(
    services: Services,
    request: Request,
    reason: str,
    principal: Principal | None = None,
    media_id: str | None = None,
) -> None:
    services.audit.record(
        AuditRecord(
            at=utc_now(),
            action="denied",
            outcome="denied",
            token_id=principal.token_id if principal else None,
            owner=principal.owner if principal else None,
            role=principal.role if principal else None,
            media_id=media_id,
            client=client_address(request),
            detail={"reason": reason, "method": request.method, "path": redact(request.url.path)},
        )
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return "malformed"
    return value.strip()


def _session(services: Services, request: Request) -> tuple[Principal | None, str, dict[str, Any] | None]:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw is None:
        return None, "none", None
    try:
        data = services.signer.loads(
            raw, salt="session", max_age=int(services.settings.web.session_hours * 3600)
        )
    except BadSignature:
        return None, "bad or expired session", None
    principal, reason = principal_for_id(services, str(data.get("tid", "")))
    return principal, reason, data


def principal_for_id(services: Services, token_id: str) -> tuple[Principal | None, str]:
    """A session names its token by id: the token must still be valid (not revoked or expired)."""
    return services.tokens.check_id(token_id)


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_caller(request: Request, services: ServicesDep) -> Caller:
    """The authenticated caller; 401 otherwise (and the failure is audited). A bearer token whose
    record and revocation state are cached is checked here, on the event loop; anything else
    (a first use, a session cookie, a refusal to audit) in a worker thread, since it may read."""
    token = _bearer(request)
    if token is not None:
        principal = services.tokens.check_cached(token)
        if principal is not None:
            return Caller(principal, "bearer", principal.token_id, client_address(request))
    return await run_in_threadpool(_authenticate, request, services)


def _authenticate(request: Request, services: Services) -> Caller:
    token = _bearer(request)
    if token is not None:
        principal, reason = services.tokens.check(token)
        if principal is None:
            audit_denied(services, request, f"token {reason}")
            raise ApiError(401, "authentication required", {"reason": reason}, {"WWW-Authenticate": "Bearer"})
        return Caller(principal, "bearer", principal.token_id, client_address(request))
    principal, reason, data = _session(services, request)
    if principal is None or data is None:
        if reason != "none":
            audit_denied(services, request, f"session: {reason}")
        raise ApiError(401, "authentication required", {"reason": reason}, {"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent.encode(), str(data.get("csrf", "")).encode()):
            audit_denied(services, request, "CSRF token missing or wrong", principal)
            raise ApiError(403, "CSRF token missing or wrong", {"header": CSRF_HEADER})
    return Caller(principal, "session", str(data.get("sid", "")), client_address(request))


CallerDep = Annotated[Caller, Depends(current_caller)]


def require(role: Role):
    """A dependency: the caller, if its role is at least ``role`` (403 otherwise, audited)."""

    def check(request: Request, caller: CallerDep, services: ServicesDep) -> Caller:
        require_role(services, request, caller, role)
        return caller

    return check


def require_role(services: Services, request: Request, caller: Caller, role: Role) -> None:
    if not caller.principal.can(role):
        audit_denied(services, request, f"role {caller.principal.role} < {role}", caller.principal)
        raise ApiError(403, f"needs the {role} role")


def new_session(services: Services, principal: Principal) -> tuple[str, str]:
    """(signed session cookie value, CSRF value)."""
    csrf = secrets.token_urlsafe(24)
    payload = {"tid": principal.token_id, "csrf": csrf, "sid": secrets.token_hex(8)}
    return services.signer.dumps(payload, salt="session"), csrf


def cross_site(request: Request) -> bool:
    """True for a request another site's page made (a forged login or logout): the browser's
    ``Sec-Fetch-Site`` says so, or its ``Origin`` is not this server. Clients that send neither
    (curl, scripts) are not browsers acting for someone else."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")  # "null" (a sandboxed or file page) is cross-site too
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


class LoginThrottle:
    """At most ``per_minute`` failed logins per client address in any 60 seconds."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > 60:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int:
        """Seconds to wait before another attempt, 0 if one is allowed now."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.per_minute:
                return 0
            return max(1, int(60 - (now - failures[0])) + 1)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # forget idle clients
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]
