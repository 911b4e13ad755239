"""One error shape for every failure: ``{"error": "...", "detail": ...}``, never a stack trace."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mediavault.errors import ConfigurationError, InputError, PreconditionFailed, TransientError

log = logging.getLogger("mediavault.web")


class ApiError(Exception):
    """An answer other than success, raised by handlers and dependencies."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def not_found() -> ApiError:
    """The same answer for "no such item" and "not yours", so existence is not revealed."""
    return ApiError(404, "not found")


def _answer(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None):
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


PageRenderer = Callable[[Request, ApiError], Response]


def install(app: FastAPI, page_errors: PageRenderer | None = None) -> None:
    """JSON errors everywhere, except on routes marked as pages, which ``page_errors`` renders."""

    def on_page(request: Request) -> bool:
        return page_errors is not None and getattr(request.state, "page", False)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if page_errors is not None and on_page(request):
            return page_errors(request, exc)
        return _answer(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = exc.detail if isinstance(exc.detail, str) else "error"
        return _answer(exc.status_code, error, None, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = [
            {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        first = fields[0]["field"] if fields else "request"
        if page_errors is not None and on_page(request):
            message = f"{first}: {fields[0]['message']}" if fields else "invalid request"
            return page_errors(request, ApiError(422, f"invalid {first}", {"message": message}))
        return _answer(422, f"invalid {first}", fields)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        if page_errors is not None and on_page(request):
            return page_errors(
                request, ApiError(422, exc.message, {"message": f"{exc.field}: {exc.message}"})
            )
        return _answer(422, exc.message, {"field": exc.field, "file": exc.file})

    @app.exception_handler(PreconditionFailed)
    async def stale(request: Request, exc: PreconditionFailed) -> JSONResponse:
        return _answer(
            412,
            "the media item changed since you read it",
            {"expected": exc.expected, "current": exc.current},
            {"ETag": etag(exc.current)},
        )

    @app.exception_handler(ConfigurationError)
    async def unconfigured(request: Request, exc: ConfigurationError) -> JSONResponse:
        return _answer(503, "service not configured", str(exc))

    @app.exception_handler(TransientError)
    async def transient(request: Request, exc: TransientError) -> JSONResponse:
        log.warning("transient failure on %s %s: %s", request.method, request.url.path, exc)
        return _answer(503, "temporarily unavailable; try again", None, {"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(500, "internal error")


def etag(version: int) -> str:
    return f'"v{version}"'


_ETAG = re.compile(r'"v([0-9]{1,18})"')  # ASCII digits, few enough for int()


def parse_if_match(value: str | None) -> int | None:
    """The manifest version an ``If-Match`` names; ``*`` or no header means any version."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.fullmatch(value.strip().removeprefix("W/"))
    if match is None:
        raise ApiError(412, 'If-Match must be an ETag this API returned, e.g. "v3"')
    return int(match.group(1))


def query_time(value: datetime | None, name: str, naive_is_utc: bool = False) -> datetime | None:
    """A time query parameter in UTC; 422 for a naive time (unless ``naive_is_utc``) and for a time
    with no UTC equivalent (an offset that crosses year 1 or year 9999)."""
    if value is None:
        return None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ApiError(422, f"invalid {name}", {"field": f"query.{name}", "message": "needs a time zone"})
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ApiError(
            422, f"invalid {name}", {"field": f"query.{name}", "message": "out of the range of dates"}
        ) from None
