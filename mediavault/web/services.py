"""What the handlers use, built once per app from the settings."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from itsdangerous import URLSafeTimedSerializer

from mediavault.access.audit import AuditLog
from mediavault.access.tokens import TokenStore
from mediavault.errors import ConfigurationError
from mediavault.index import status
from mediavault.index.index_store import MongoIndexStore
from mediavault.search import SearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import Vault, vault_from_settings

STATS_SECONDS = 30.0

RestoreStarter = Callable[[str, str], dict[str, Any]]
"""(media id, actor) -> a description of the started restore (run id, how to follow it)."""


def prefect_ui_url(settings: MediavaultSettings) -> str | None:
    """The Prefect UI the dashboard links to, if one is known."""
    configured = settings.web.prefect_ui_url or os.environ.get("PREFECT_UI_URL")
    if configured:
        return configured.rstrip("/")
    api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    return api.removesuffix("/api") if api.endswith("/api") else None


def session_secret(settings: MediavaultSettings) -> str:
    """The configured secret, or one made once and kept (0600) in the home."""
    if settings.web.session_secret is not None:
        return settings.web.session_secret.get_secret_value()
    path = Path(settings.home) / "web-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


@dataclass
class Services:
    settings: MediavaultSettings
    restore_starter: RestoreStarter | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _streams: dict[tuple[str, str], float] = field(default_factory=dict)
    _stats: dict[str | None, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    login_throttle: Any = None  # mediavault.web.auth.LoginThrottle, set by the app factory

    @cached_property
    def vault(self) -> Vault:
        return vault_from_settings(self.settings)

    @cached_property
    def tokens(self) -> TokenStore:
        return TokenStore(self.vault)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.vault, flush_seconds=self.settings.web.audit_flush_seconds)

    @cached_property
    def signer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(session_secret(self.settings), salt="mediavault")

    def database(self):
        database = status.connect(self.settings)
        if database is None:
            raise ConfigurationError(
                "the index needs MongoDB: set MEDIAVAULT_MONGO_MODE to embedded or external"
            )
        return database

    def index(self) -> MongoIndexStore:
        return MongoIndexStore(self.database())

    @cached_property
    def search(self) -> SearchIndex:
        from mediavault.backends import search_from_settings

        return search_from_settings(self.settings)

    @cached_property
    def metrics(self):
        """The Prometheus registry served at /metrics (mediavault.ops.metrics.WebMetrics)."""
        from mediavault.ops.metrics import WebMetrics
        from mediavault.ops.snapshot import take_for

        def snapshot():
            try:
                database = self.database()
            except ConfigurationError:
                database = None
            return take_for(self.settings, database)

        return WebMetrics(snapshot, self.settings.ops.metrics_cache_seconds)

    @property
    def prefect_ui_url(self) -> str | None:
        return prefect_ui_url(self.settings)

    def storage_stats(self, owner: str | None) -> dict[str, Any]:
        """Storage figures for a scope, cached for ``STATS_SECONDS`` (they scan every manifest).
        An owner's items come from the live index, so an owner change by edit moves them; the
        owner recorded at ingest is the fallback when the index is unreachable."""
        from mediavault.index import overview
        from mediavault.index.stats import storage_stats

        now = time.monotonic()
        with self._lock:
            cached = self._stats.get(owner)
            if cached is not None and now - cached[0] < STATS_SECONDS:
                return cached[1]
        if owner is None:
            figures = storage_stats(self.vault)
        else:
            try:
                owned = overview.owned_media_ids(self.database(), owner)
            except Exception:
                figures = storage_stats(self.vault, owner=owner)
            else:
                figures = storage_stats(self.vault, media_ids=owned)
        with self._lock:
            if len(self._stats) > 1000:
                self._stats.clear()
            self._stats[owner] = (now, figures)
        return figures

    def forget_storage_stats(self) -> None:
        """An edit here changed owners or metadata: the next figures are computed afresh."""
        with self._lock:
            self._stats.clear()

    def first_stream_of_session(self, session: str, media_id: str) -> bool:
        """True once per (session, media) per session lifetime: one audit record per stream
        opened, not one per range request."""
        now = time.monotonic()
        horizon = self.settings.web.session_hours * 3600
        with self._lock:
            if len(self._streams) > 50_000:
                self._streams = {k: t for k, t in self._streams.items() if now - t < horizon}
            seen = self._streams.get((session, media_id))
            if seen is not None and now - seen < horizon:
                return False
            self._streams[(session, media_id)] = now
            return True

    def start_restore(self, media_id: str, actor: str) -> dict[str, Any]:
        if self.restore_starter is not None:
            return self.restore_starter(media_id, actor)
        return restore_in_background(self.vault, media_id)

    def close(self) -> None:
        if "audit" in self.__dict__:
            self.audit.close()


def restore_in_background(vault: Vault, media_id: str) -> dict[str, Any]:
    """Run the restore in a thread of this process (``mediavault serve`` starts the Prefect
    ``restore`` deployment instead when one is deployed)."""
    from mediavault.lifecycle.engine import restore_media

    job_id = uuid.uuid4().hex
    log = logging.getLogger("mediavault.web")

    def run() -> None:
        try:
            result = restore_media(vault, media_id)
            log.info("restore %s of %s: restored %d object(s)", job_id, media_id, len(result["restored"]))
        except Exception:
            log.exception("restore %s of %s failed", job_id, media_id)

    threading.Thread(target=run, name=f"restore-{media_id[:12]}", daemon=True).start()
    return {"job_id": job_id, "runner": "in-process"}
