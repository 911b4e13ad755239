"""The app factory: ``create_app(settings)`` wires services, error handling and the routers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mediavault.settings import MediavaultSettings, load_settings
from mediavault.web import (
    errors,
    pages,
    routes_admin,
    routes_media,
    routes_metrics,
    routes_search,
    routes_session,
)
from mediavault.web.auth import LoginThrottle, ServicesDep
from mediavault.web.services import RestoreStarter, Services

STATIC = Path(__file__).with_name("static")


def create_app(
    settings: MediavaultSettings | None = None, restore_starter: RestoreStarter | None = None
) -> FastAPI:
    settings = settings or load_settings()
    services = Services(settings, restore_starter)
    services.login_throttle = LoginThrottle(settings.web.login_attempts_per_minute)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        services.close()  # flushes the audit log: a clean shutdown loses no record

    app = FastAPI(
        title="mediavault",
        version="1",
        summary="Search, play and correct AI transcripts kept in the mediavault vault.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app, page_errors=pages.error_page)
    app.add_middleware(routes_metrics.LatencyMiddleware, metrics=lambda: services.metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(routes_session.router)
    app.include_router(routes_media.router)
    app.include_router(routes_media.shared)
    app.include_router(routes_search.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_metrics.router)
    app.include_router(pages.router)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """Swagger UI from the app's own static files: the docs work offline."""
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="mediavault API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/healthz", tags=["health"])
    async def healthz(services: ServicesDep) -> Any:
        """Reachability of the vault, the index (MongoDB) and search; no authentication."""
        checks = await run_in_threadpool(health, services)
        ok = all(c["ok"] for c in checks.values())
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    return app


def health(services: Services) -> dict[str, dict[str, Any]]:
    def check(probe) -> dict[str, Any]:
        try:
            probe()
            return {"ok": True}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}

    def vault() -> None:
        next(iter(services.vault.list_keys("manifests/")), None)

    def index() -> None:
        services.database().command("ping")

    def search() -> None:
        services.search.live_generation()

    return {"vault": check(vault), "index": check(index), "search": check(search)}
