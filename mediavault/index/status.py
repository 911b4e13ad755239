"""Ingest status in MongoDB: a media record with a state machine, and a job event log.

MongoDB is part of the derived index: the vault stays the source of truth, so these writes come
after the vault commit and a full re-index can rebuild them.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from mediavault.errors import TerminalError
from mediavault.index import embedded
from mediavault.settings import MediavaultSettings
from mediavault.vault.base import Vault
from mediavault.vault.models import Manifest, utc_now

MEDIA = "media"
JOB_EVENTS = "job_events"
# Job events that end an ingest (or a batch item) unsuccessfully: refused input, or a failure.
FAILURE_EVENTS = ("rejected", "failed", "item-failed")

# status -> statuses it may move to
TRANSITIONS: dict[str | None, set[str]] = {
    None: {"ingesting", "committed"},
    "ingesting": {"ingesting", "committed", "failed"},
    "failed": {"ingesting", "committed", "failed"},
    "committed": {"ingesting", "committed"},
}


class InvalidTransition(TerminalError):
    pass


def connect(settings: MediavaultSettings) -> Database | None:
    """The configured database, starting the embedded server if needed; None when disabled."""
    if settings.mongo_mode == "disabled":
        return None
    if settings.mongo_mode == "embedded" and settings.mongo_url is None:
        url = embedded.ensure_running(settings.home / "mongo").url
    elif settings.mongo_url is None:
        raise TerminalError("mongo_mode is 'external' but MEDIAVAULT_MONGO_URL is not set")
    else:
        url = settings.mongo_url.get_secret_value()
    database = _client(url)[settings.mongo_database]
    key = (url, settings.mongo_database)
    with _clients_lock:
        indexing = _indexing.setdefault(key, threading.Lock())
    # No thread of this process uses the database before its indexes exist: on a new database,
    # creating a collection for an index while another connection's insert creates it too can
    # deadlock the embedded server (SecantusDB).
    with indexing:
        if key not in _indexed:
            ensure_indexes(database)
            _indexed.add(key)
    return database


_clients: dict[str, MongoClient] = {}
_indexed: set[tuple[str, str]] = set()
_indexing: dict[tuple[str, str], threading.Lock] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> MongoClient:
    """One pooled client per URL for the whole process (MongoClient is thread-safe)."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = MongoClient(url, serverSelectionTimeoutMS=10_000, tz_aware=True)
        return _clients[url]


def close_clients() -> None:
    """Close every pooled client (their monitor threads stop at their next wake-up)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
        _indexed.clear()
    for client in clients:
        client.close()


def ensure_indexes(database: Database) -> None:
    database[MEDIA].create_index([("status", ASCENDING)])
    database[MEDIA].create_index([("owner", ASCENDING)])
    database[JOB_EVENTS].create_index([("job_id", ASCENDING), ("at", ASCENDING)])
    database[JOB_EVENTS].create_index([("media_id", ASCENDING), ("at", ASCENDING)])


def record_event(
    database: Database, job_id: str, event: str, media_id: str | None = None, **detail: Any
) -> None:
    database[JOB_EVENTS].insert_one(
        {"job_id": job_id, "media_id": media_id, "event": event, "at": utc_now(), "detail": detail}
    )


def transition(
    database: Database, media_id: str, to: str, job_id: str, fields: dict[str, Any] | None = None
) -> str | None:
    """Move a media record to ``to`` with a conditional update; returns the previous status."""
    from mediavault.index.index_store import live_media_collection

    media: Collection = live_media_collection(database)
    allowed_from = [status for status, targets in TRANSITIONS.items() if to in targets]
    now: datetime = utc_now()
    update = {"$set": {"status": to, "updated_at": now, "last_job_id": job_id, **(fields or {})}}
    for _ in range(5):
        current = media.find_one({"_id": media_id}, {"status": 1})
        if current is None:
            if None not in allowed_from:
                raise InvalidTransition(f"media {media_id}: cannot start in status {to!r}")
            try:
                media.insert_one(
                    {
                        "_id": media_id,
                        "created_at": now,
                        "status": to,
                        "updated_at": now,
                        "last_job_id": job_id,
                        **(fields or {}),
                    }
                )
                return None
            except DuplicateKeyError:
                continue
        previous = current.get("status")
        if previous not in allowed_from:
            raise InvalidTransition(f"media {media_id}: {previous!r} -> {to!r} is not allowed")
        if media.update_one({"_id": media_id, "status": previous}, update).matched_count:
            return previous
    raise InvalidTransition(f"media {media_id}: status kept changing under us")


def manifest_fields(vault: Vault, manifest: Manifest) -> dict[str, Any]:
    """The media record for a committed manifest: the same projection a re-index writes."""
    from mediavault.index.projection import load_applied_edits, media_document

    document = media_document(manifest, load_applied_edits(vault, manifest))
    return {k: v for k, v in document.items() if k not in ("_id", "status")}


def status_document(database: Database, media_id: str) -> dict[str, Any] | None:
    """The live media record's status fields (``media_id`` must be a validated id)."""
    from mediavault.index.index_store import live_media_collection

    return live_media_collection(database).find_one(
        {"_id": {"$eq": media_id}}, {"status": 1, "updated_at": 1, "last_job_id": 1}
    )


def recent_events(database: Database, media_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest job events of one media item, JSON-ready."""
    events = (
        database[JOB_EVENTS].find({"media_id": {"$eq": media_id}}, {"_id": 0}).sort("at", -1).limit(limit)
    )
    return [
        {**e, "at": e["at"].isoformat() if hasattr(e.get("at"), "isoformat") else e.get("at")} for e in events
    ]
