"""/metrics: Prometheus metrics. A client on loopback that reached us directly (no proxy header)
scrapes without authentication, as a Prometheus on the same host does; anyone else needs an
admin token (401/403 otherwise)."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediavault.web.auth import ServicesDep, client_address, current_caller, require_role

router = APIRouter(tags=["operations"])
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def direct_loopback(request: Request) -> bool:
    address = client_address(request)
    try:
        loopback = address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in PROXY_HEADERS)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Storage, ingest outcomes, re-index lag, last successful maintenance runs, fixity problems,
    free space, and search and stream latency, in Prometheus' text format."""
    if not (services.settings.ops.metrics_open_on_loopback and direct_loopback(request)):
        caller = await current_caller(request, services)
        require_role(services, request, caller, "admin")
    body = await run_in_threadpool(generate_latest, services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


STREAM_PATH = re.compile(r"^/api/v1/media/[0-9a-f]{64}/stream$")
SEARCH_PATHS = ("/api/v1/search", "/search")


class LatencyMiddleware:
    """Observes search and stream latency: the time until the response starts (a stream's body
    may take minutes to send; what a player waits for is the first byte)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Any]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in SEARCH_PATHS:
            histogram = self.metrics().search_seconds
        elif STREAM_PATH.match(path):
            histogram = self.metrics().stream_seconds
        else:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                histogram.observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
