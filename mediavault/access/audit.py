"""The audit log: who was granted media bytes, who changed what, and who was refused.

``AuditLog.record`` only appends to an in-memory buffer. A background thread flushes the buffer
every ``flush_seconds`` (sooner when ``max_batch`` records are waiting) as immutable JSON-lines
objects, ``audit/<YYYY>/<MM>/<DD>/<HHMMSS>-<uuid hex>.jsonl``; every record in an object is of that
UTC day, and HHMMSS is the time of its earliest record. A flush that fails keeps its records and
the next flush writes them again under the same keys (so a write that landed but lost its answer
leaves no duplicate). ``close`` (also run at exit) writes everything still buffered.

Loss window: a crash (kill -9, power loss) loses the records not yet flushed, that is at most the
last ``flush_seconds`` of records or one batch of ``max_batch``, plus whatever was buffered while
the vault was unreachable. A clean close loses nothing unless the vault stays unreachable.

Records never hold a token or a full signed URL: ``AuditRecord`` refuses any string that contains
``mvt_``, ``X-Amz-Signature`` or ``signature=`` (``redact`` cleans text before it goes in). The
objects are plain newline-delimited JSON, e.g.
``duckdb.read_json_auto('<vault>/audit/**/*.jsonl')``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from mediavault.vault.base import Vault
from mediavault.vault.models import utc_now

logger = logging.getLogger(__name__)

AUDIT_PREFIX = "audit/"
AUDIT_CONTENT_TYPE = "application/x-ndjson"
SECRET_MARKERS = ("mvt_", "x-amz-signature", "signature=")
CLOSE_ATTEMPTS = 3
MAX_RETRY_PAUSE_SECONDS = 60.0

_TOKEN_TEXT = re.compile(r"mvt_[A-Za-z0-9_\-]*", re.IGNORECASE)
_SIGNED_QUERY = re.compile(r"\?[^\s#\"']*?(?:x-amz-signature|signature=)[^\s#\"']*", re.IGNORECASE)
_MARKER = re.compile("|".join(re.escape(m) for m in SECRET_MARKERS), re.IGNORECASE)


def _secret_marker(value: str) -> str | None:
    found = _MARKER.search(value)
    return found.group(0) if found else None


def redact(text: str) -> str:
    """``text`` without tokens or signed-URL query strings, safe to put in an audit record."""
    text = _TOKEN_TEXT.sub("[token]", text)
    text = _SIGNED_QUERY.sub("?[signed query removed]", text)
    return _MARKER.sub("[redacted]", text)


def _refuse_secrets(value: Any, where: str) -> None:
    if isinstance(value, str):
        marker = _secret_marker(value)
        if marker is not None:
            raise ValueError(
                f"{where} contains {marker!r}: audit records never hold a token or a signed URL "
                "(pass the text through mediavault.access.audit.redact)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_secrets(key, f"{where} key")
            _refuse_secrets(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{index}]")


class AuditRecord(BaseModel):
    """One audited event. ``at`` is UTC (a naive time is taken as UTC)."""

    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(default_factory=utc_now)
    action: str = Field(min_length=1, max_length=100)
    outcome: str = Field(min_length=1, max_length=100)
    token_id: str | None = None
    owner: str | None = None
    role: str | None = None
    media_id: str | None = None
    client: str | None = None
    actor: str | None = None
    """Who acted when no token did (e.g. ``cli``)."""
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("action", "outcome", "token_id", "owner", "role", "media_id", "client", "actor")
    @classmethod
    def _no_secret_in_field(cls, value: str | None) -> str | None:
        if value is not None:
            _refuse_secrets(value, "field")
        return value

    @field_validator("detail")
    @classmethod
    def _no_secret_in_detail(cls, value: dict[str, Any]) -> dict[str, Any]:
        _refuse_secrets(value, "detail")
        return value

    @field_serializer("at", when_used="json")
    def _fixed_format(self, value: datetime) -> str:
        # One format for every record, so DuckDB infers a TIMESTAMP column.
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_prefix(day: date) -> str:
    return f"{AUDIT_PREFIX}{day:%Y/%m/%d}/"


def _object_key(records: list[AuditRecord]) -> str:
    first = min(record.at for record in records)
    return f"{day_prefix(first.date())}{first:%H%M%S}-{uuid.uuid4().hex}.jsonl"


def _encode(records: list[AuditRecord]) -> bytes:
    return b"".join(record.model_dump_json().encode() + b"\n" for record in records)


def plan_objects(records: list[AuditRecord]) -> list[tuple[str, bytes]]:
    """The objects that hold ``records``: one per UTC day, records in arrival order."""
    by_day: dict[date, list[AuditRecord]] = {}
    for record in records:
        by_day.setdefault(record.at.date(), []).append(record)
    return [(_object_key(group), _encode(group)) for group in by_day.values()]


def write_records(vault: Vault, records: list[AuditRecord]) -> list[str]:
    """Write records at once (no buffer), e.g. from a short-lived command. Returns the keys."""
    planned = plan_objects(records)
    for key, data in planned:
        vault.put_bytes(key, data, AUDIT_CONTENT_TYPE)
    return [key for key, _ in planned]


class AuditLog:
    """A buffered, thread-safe writer of audit records to the vault (see the module docstring)."""

    def __init__(self, vault: Vault, flush_seconds: float = 2.0, max_batch: int = 500) -> None:
        if flush_seconds <= 0 or max_batch < 1:
            raise ValueError("flush_seconds must be > 0 and max_batch >= 1")
        self.vault = vault
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self.last_error: BaseException | None = None
        self._buffer: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # The objects planned for the head of the buffer by a flush that failed: written again as
        # they are, so an object that landed is not written twice under another key.
        self._planned: tuple[int, list[tuple[str, bytes]]] | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mediavault-audit", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    @property
    def pending(self) -> int:
        """Records recorded but not yet in the vault."""
        with self._lock:
            return len(self._buffer)

    def record(self, rec: AuditRecord) -> None:
        """Queue a record. Never waits for the vault (after ``close``, writes it at once)."""
        if not isinstance(rec, AuditRecord):
            raise TypeError(f"expected an AuditRecord, got {type(rec).__name__}")
        with self._lock:
            self._buffer.append(rec)
            full = len(self._buffer) >= self.max_batch
            closed = self._closed
        if closed:
            self.flush()
        elif full:
            self._wake.set()

    def flush(self) -> int:
        """Write every buffered record; returns how many. Raises the vault's error when a write
        fails, keeping the unwritten records for the next flush."""
        with self._flush_lock:
            written = 0
            while True:
                with self._lock:
                    if self._planned is not None:
                        count, planned = self._planned
                    else:
                        batch = self._buffer[: self.max_batch]
                        count, planned = len(batch), plan_objects(batch)
                if count == 0:
                    return written
                try:
                    for key, data in planned:
                        self.vault.put_bytes(key, data, AUDIT_CONTENT_TYPE)
                except BaseException as exc:
                    self._planned = (count, planned)
                    self.last_error = exc
                    raise
                with self._lock:
                    del self._buffer[:count]
                self._planned = None
                self.last_error = None
                written += count

    def _run(self) -> None:
        failures = 0
        while True:
            pause = min(self.flush_seconds * 2**failures, max(self.flush_seconds, MAX_RETRY_PAUSE_SECONDS))
            self._wake.wait(pause)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                failures = 0
            except Exception as exc:
                failures = min(failures + 1, 16)
                logger.warning("audit flush failed (%d record(s) kept, will retry): %s", self.pending, exc)

    def close(self) -> None:
        """Stop the flusher and write everything still buffered. Idempotent. When the vault stays
        unreachable (a few attempts), raises; the records stay in ``pending``."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        with contextlib.suppress(Exception):
            atexit.unregister(self._close_at_exit)
        for attempt in range(1, CLOSE_ATTEMPTS + 1):
            try:
                self.flush()
                return
            except Exception:
                if attempt == CLOSE_ATTEMPTS:
                    raise
                time.sleep(0.5 * attempt)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:
            logger.error("audit log: %d record(s) could not be written at exit: %s", self.pending, exc)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _previous_month(first: date) -> date:
    return (first - timedelta(days=1)).replace(day=1)


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def _day_of(key: str) -> date | None:
    parts = key.removeprefix(AUDIT_PREFIX).split("/")
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except (ValueError, IndexError):
        return None


def _keys_by_day_desc(vault: Vault, first_day: date, last_day: date) -> Iterator[tuple[date, list[str]]]:
    """The object keys of each day from ``last_day`` back to ``first_day``. Lists a month's prefix
    when the range covers the whole month, else the prefix of each day in the range."""
    month = _month_start(last_day)
    while month >= _month_start(first_day):
        month_end = _next_month(month) - timedelta(days=1)
        low, high = max(month, first_day), min(month_end, last_day)
        if low == month and high == month_end:
            by_day: dict[date, list[str]] = {}
            for key in vault.list_keys(f"{AUDIT_PREFIX}{month:%Y/%m}/"):
                day = _day_of(key)
                if day is not None and key.endswith(".jsonl"):
                    by_day.setdefault(day, []).append(key)
            for day in sorted(by_day, reverse=True):
                yield day, by_day[day]
        else:
            day = high
            while day >= low:
                keys = [k for k in vault.list_keys(day_prefix(day)) if k.endswith(".jsonl")]
                if keys:
                    yield day, keys
                day -= timedelta(days=1)
        month = _previous_month(month)


def _read_object(vault: Vault, key: str) -> Iterator[AuditRecord]:
    try:
        data = vault.get_bytes(key)
    except KeyError:
        return
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield AuditRecord.model_validate_json(line)
        except ValidationError as exc:
            logger.warning("skipping unreadable audit record %s line %d: %s", key, number, exc)


def _key_time(key: str, day: date) -> datetime | None:
    name = key.rsplit("/", 1)[-1]
    try:
        clock = datetime.strptime(name[:6], "%H%M%S").time()
    except ValueError:
        return None
    return datetime.combine(day, clock, UTC)


def read_audit(
    vault: Vault,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    media_id: str | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> list[AuditRecord]:
    """Audit records with ``since <= at < until``, newest first, at most ``limit``.

    ``actor`` matches the token id, the owner or the ``actor`` field. Only the day prefixes in the
    range are listed (a month's prefix when the range covers it all); with no ``since``, the range
    starts at the first audit object."""
    if limit < 1:
        return []
    since = _as_utc(since) if since is not None else None
    until = _as_utc(until) if until is not None else None
    if since is not None and until is not None and since >= until:
        return []
    # Walk only the days records can be in: from the oldest audit object to tomorrow (clocks a
    # little ahead), however wide the range asked for.
    first_key = next(iter(vault.list_keys(AUDIT_PREFIX)), None)
    oldest = _day_of(first_key) if first_key else None
    if oldest is None:
        return []
    tomorrow = (utc_now() + timedelta(days=1)).date()
    try:
        last_day = tomorrow if until is None else min(tomorrow, (until - timedelta(microseconds=1)).date())
    except OverflowError:  # until is the first instant there is
        return []
    first_day = oldest if since is None else max(oldest, since.date())
    if first_day > last_day:
        return []
    found: list[AuditRecord] = []
    for day, keys in _keys_by_day_desc(vault, first_day, last_day):
        matches: list[AuditRecord] = []
        for key in keys:
            earliest = _key_time(key, day)
            if until is not None and earliest is not None and earliest >= until:
                continue  # every record in it is at or after its name's time
            for record in _read_object(vault, key):
                if since is not None and record.at < since:
                    continue
                if until is not None and record.at >= until:
                    continue
                if actor is not None and actor not in (record.token_id, record.owner, record.actor):
                    continue
                if media_id is not None and record.media_id != media_id:
                    continue
                if action is not None and record.action != action:
                    continue
                matches.append(record)
        # A day's records are all newer than any earlier day's: stop after the day that fills it.
        found.extend(sorted(matches, key=lambda r: r.at, reverse=True))
        if len(found) >= limit:
            break
    return found[:limit]
