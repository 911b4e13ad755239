"""The HTTP API (and, next, the dashboard): a FastAPI app over the domain modules.

``create_app`` is the factory; routers are grouped by resource in ``routes_*`` modules; auth and
owner scoping are FastAPI dependencies (``auth``). Prefect-free."""

from mediavault.web.app import create_app

__all__ = ["create_app"]
