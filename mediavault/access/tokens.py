"""API tokens with roles, kept in the vault so they survive an index wipe.

A token is shown once as ``mvt_<id>_<secret>``: ``id`` is 12 random hex characters, ``secret`` the
URL-safe base64 (no padding) of 32 random bytes. The vault keeps only the SHA-256 of the whole
token string, in ``access/tokens/<id>.json``; a revocation is a second object,
``access/tokens/<id>.revoked.json``. Both are created once and never overwritten.

Authentication looks the record up by the id part of the token (never a scan) and compares hashes
in constant time. Records and revocations are cached in memory for ``REVOCATION_CACHE_SECONDS`` at
most, so a revocation made by another process takes effect within that window (at once in the
process that made it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediavault.errors import InputError
from mediavault.vault.base import Vault
from mediavault.vault.models import MediaMetadata, utc_now

logger = logging.getLogger(__name__)

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_RANK: dict[str, int] = {"viewer": 0, "editor": 1, "admin": 2}
CheckReason = Literal["ok", "malformed", "unknown", "expired", "revoked"]

TOKEN_PREFIX = "mvt_"
TOKENS_PREFIX = "access/tokens/"
TOKEN_SCHEMA_VERSION = 1
REVOCATION_CACHE_SECONDS = 5.0
MAX_CACHE_ENTRIES = 10_000
MAX_EXPIRES_DAYS = 36_500
MAX_NAME_LENGTH = 200
ALL_OWNERS = "*"

TOKEN_ID_RE = re.compile(r"[0-9a-f]{12}")
# 32 bytes in URL-safe base64 without padding are 43 characters.
TOKEN_RE = re.compile(r"mvt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
TOKEN_LENGTH = len(TOKEN_PREFIX) + 12 + 1 + 43
_NO_SUCH_HASH = hashlib.sha256(b"no such token").hexdigest()


def token_key(token_id: str) -> str:
    return f"{TOKENS_PREFIX}{check_token_id(token_id)}.json"


def revocation_key(token_id: str) -> str:
    return f"{TOKENS_PREFIX}{check_token_id(token_id)}.revoked.json"


def check_token_id(token_id: str) -> str:
    if not isinstance(token_id, str) or not TOKEN_ID_RE.fullmatch(token_id):
        raise InputError("token", "id", f"not a token id (12 hex characters): {str(token_id)[:40]!r}")
    return token_id


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of the full token string: all the vault ever keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRecord(BaseModel):
    """``access/tokens/<id>.json``. Holds the token's hash, never the token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = TOKEN_SCHEMA_VERSION
    id: str = Field(pattern=r"^[0-9a-f]{12}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str | None = None
    owner: str
    role: Role
    created_at: datetime
    expires_at: datetime | None = None
    created_by: str | None = None


class RevocationRecord(BaseModel):
    """``access/tokens/<id>.revoked.json``: who revoked the token, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = TOKEN_SCHEMA_VERSION
    id: str = Field(pattern=r"^[0-9a-f]{12}$")
    revoked_at: datetime
    revoked_by: str | None = None


class TokenInfo(BaseModel):
    """What may be shown about a token: its record without the hash, and its state."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None
    owner: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    created_by: str | None
    revoked: bool
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    expired: bool = False

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired


@dataclass(frozen=True)
class Principal:
    """The caller a valid token stands for."""

    token_id: str
    owner: str
    role: Role
    name: str | None = None

    def can(self, role: Role) -> bool:
        """True when this principal's role ranks at least ``role``."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def sees_owner(self, owner: str | None) -> bool:
        """Admins see every owner; anyone else only media of exactly its own owner."""
        return self.is_admin or (owner is not None and owner == self.owner)

    def scope_owner(self) -> str | None:
        """The owner every read must be limited to; None (every owner) for an admin."""
        return None if self.is_admin else self.owner


def _validate_text(field: str, value: str | None, required: bool = False) -> str | None:
    """The rule ``MediaMetadata.owner`` follows (at most 200 characters, no control characters),
    plus: not blank when required, and never anything that looks like a token."""
    if value is None:
        if required:
            raise InputError("token", field, "is required")
        return None
    if not isinstance(value, str):
        raise InputError("token", field, "must be text")
    try:
        MediaMetadata(owner=value)
    except ValidationError as exc:
        raise InputError("token", field, exc.errors()[0]["msg"]) from None
    if required and not value.strip():
        raise InputError("token", field, "must not be blank")
    if TOKEN_PREFIX in value:
        raise InputError("token", field, f"must not contain {TOKEN_PREFIX!r} (it looks like a token)")
    return value


def validate_owner(owner: str, role: str) -> str:
    """A token's owner: a valid media owner name, or ``*`` (every owner) for an admin token."""
    if owner == ALL_OWNERS:
        if role != "admin":
            raise InputError("token", "owner", f"{ALL_OWNERS!r} (every owner) is allowed only for role admin")
        return owner
    checked = _validate_text("owner", owner, required=True)
    assert checked is not None
    return checked


def _validate_role(role: str) -> Role:
    if role not in ROLE_RANK:
        raise InputError("token", "role", f"must be one of {', '.join(ROLES)}, not {str(role)[:40]!r}")
    return role  # type: ignore[return-value]


def _validate_expires_days(expires_days: float | None) -> float | None:
    if expires_days is None:
        return None
    if isinstance(expires_days, bool) or not isinstance(expires_days, int | float):
        raise InputError("token", "expires_days", "must be a number of days")
    if not math.isfinite(expires_days) or expires_days <= 0:
        raise InputError("token", "expires_days", f"must be > 0, not {expires_days}")
    if expires_days > MAX_EXPIRES_DAYS:
        raise InputError("token", "expires_days", f"must be at most {MAX_EXPIRES_DAYS}")
    return float(expires_days)


def parse_token(token: object) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token string, else None."""
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return None
    match = TOKEN_RE.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def new_token() -> tuple[str, str]:
    """A fresh ``(id, token string)``."""
    token_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"


def _is_expired(record: TokenRecord, now: datetime) -> bool:
    return record.expires_at is not None and now >= record.expires_at


def _info(record: TokenRecord, revocation: RevocationRecord | None, now: datetime) -> TokenInfo:
    return TokenInfo(
        id=record.id,
        name=record.name,
        owner=record.owner,
        role=record.role,
        created_at=record.created_at,
        expires_at=record.expires_at,
        created_by=record.created_by,
        revoked=revocation is not None,
        revoked_at=revocation.revoked_at if revocation else None,
        revoked_by=revocation.revoked_by if revocation else None,
        expired=_is_expired(record, now),
    )


class _TimedCache:
    """A small, bounded map whose entries live ``ttl`` seconds of ``monotonic`` time."""

    def __init__(self, ttl: float, monotonic: Callable[[], float]) -> None:
        self.ttl = ttl
        self.monotonic = monotonic
        self._entries: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, object]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if self.monotonic() >= entry[0]:
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: str, value: object) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self.monotonic() + self.ttl, value)
            while len(self._entries) > MAX_CACHE_ENTRIES:
                del self._entries[next(iter(self._entries))]

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


class TokenStore:
    """Create, list, revoke and check API tokens kept in a vault.

    ``clock`` gives the wall time (expiry, created/revoked times); ``monotonic`` drives the cache.
    Both are parameters so tests can move time without patching anything."""

    def __init__(
        self,
        vault: Vault,
        clock: Callable[[], datetime] = utc_now,
        cache_seconds: float = REVOCATION_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vault = vault
        self.clock = clock
        self.cache_seconds = min(cache_seconds, REVOCATION_CACHE_SECONDS)
        self._records = _TimedCache(self.cache_seconds, monotonic)
        self._revocations = _TimedCache(self.cache_seconds, monotonic)

    def create(
        self,
        owner: str,
        role: Role,
        name: str | None = None,
        expires_days: float | None = None,
        created_by: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Store a new token's record; returns it and the token string (shown once, stored nowhere)."""
        role = _validate_role(role)
        owner = validate_owner(owner, role)
        name = _validate_text("name", name)
        created_by = _validate_text("created_by", created_by)
        days = _validate_expires_days(expires_days)
        now = self.clock()
        expires_at = now + timedelta(days=days) if days is not None else None
        for _ in range(8):
            token_id, token = new_token()
            record = TokenRecord(
                id=token_id,
                sha256=hash_token(token),
                name=name,
                owner=owner,
                role=role,
                created_at=now,
                expires_at=expires_at,
                created_by=created_by,
            )
            data = record.model_dump_json(indent=2).encode()
            if self.vault.put_bytes(token_key(token_id), data, "application/json").created:
                self._records.drop(token_id)
                return record, token
        raise RuntimeError("could not find an unused token id after 8 attempts")  # pragma: no cover

    def _record(self, token_id: str) -> TokenRecord | None:
        hit, cached = self._records.get(token_id)
        if hit:
            return cached  # type: ignore[return-value]
        try:
            record: TokenRecord | None = TokenRecord.model_validate_json(
                self.vault.get_bytes(token_key(token_id))
            )
        except KeyError:
            record = None
        except ValidationError as exc:
            logger.warning("token record %s is unreadable, refusing it: %s", token_key(token_id), exc)
            record = None
        if record is not None and record.id != token_id:
            logger.warning("token record %s names id %s, refusing it", token_key(token_id), record.id)
            record = None
        self._records.put(token_id, record)
        return record

    def _revocation(self, token_id: str) -> RevocationRecord | None:
        hit, cached = self._revocations.get(token_id)
        if hit:
            return cached  # type: ignore[return-value]
        try:
            data = self.vault.get_bytes(revocation_key(token_id))
        except KeyError:
            revocation = None
        else:
            try:
                revocation = RevocationRecord.model_validate_json(data)
            except ValidationError:
                # Unreadable, but present: the token was revoked.
                revocation = RevocationRecord(id=token_id, revoked_at=datetime.fromtimestamp(0, UTC))
        self._revocations.put(token_id, revocation)
        return revocation

    def check(self, token: str) -> tuple[Principal | None, CheckReason]:
        """The principal a token stands for, and why not when it stands for none."""
        parsed = parse_token(token)
        if parsed is None:
            return None, "malformed"
        token_id = parsed[0]
        record = self._record(token_id)
        expected = record.sha256 if record is not None else _NO_SUCH_HASH
        matches = hmac.compare_digest(hash_token(token).encode(), expected.encode())
        if record is None or not matches:
            return None, "unknown"
        return self._principal(record)

    def check_cached(self, token: str) -> Principal | None:
        """The principal of a valid token when everything ``check`` needs is cached; None otherwise
        (then call ``check``). Reads nothing, so an event loop can call it."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        hit, record = self._records.get(parsed[0])
        if not hit or not isinstance(record, TokenRecord):
            return None
        hit, revocation = self._revocations.get(record.id)
        if not hit or revocation is not None:
            return None
        if not hmac.compare_digest(hash_token(token).encode(), record.sha256.encode()):
            return None
        if _is_expired(record, self.clock()):
            return None
        return Principal(token_id=record.id, owner=record.owner, role=record.role, name=record.name)

    def _principal(self, record: TokenRecord) -> tuple[Principal | None, CheckReason]:
        """The principal of a known token, unless it was revoked or has expired."""
        if self._revocation(record.id) is not None:
            return None, "revoked"
        if _is_expired(record, self.clock()):
            return None, "expired"
        return Principal(token_id=record.id, owner=record.owner, role=record.role, name=record.name), "ok"

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid token; None when it is malformed, unknown, expired or revoked."""
        return self.check(token)[0]

    def revoke(self, token_id: str, by: str | None = None) -> bool:
        """Revoke a token; False when it was already revoked. InputError when there is no such token."""
        check_token_id(token_id)
        by = _validate_text("revoked_by", by)
        if self.vault.head(token_key(token_id)) is None:
            raise InputError("token", "id", f"no token with id {token_id}")
        revocation = RevocationRecord(id=token_id, revoked_at=self.clock(), revoked_by=by)
        created = self.vault.put_bytes(
            revocation_key(token_id), revocation.model_dump_json(indent=2).encode(), "application/json"
        ).created
        self._revocations.drop(token_id)
        return created

    def check_id(self, token_id: str) -> tuple[Principal | None, CheckReason]:
        """Like ``check`` for a caller already proven to hold the token (a signed session that
        names its id): the token must still exist and be neither revoked nor expired. Cached."""
        if not isinstance(token_id, str) or not TOKEN_ID_RE.fullmatch(token_id):
            return None, "malformed"
        record = self._record(token_id)
        if record is None:
            return None, "unknown"
        return self._principal(record)

    def get(self, token_id: str) -> TokenInfo | None:
        """A token's public description, or None when there is no such (or no valid) id. Served from
        the same short cache as ``authenticate``."""
        if not isinstance(token_id, str) or not TOKEN_ID_RE.fullmatch(token_id):
            return None
        record = self._record(token_id)
        if record is None:
            return None
        return _info(record, self._revocation(token_id), self.clock())

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, with its state. Never the hashes."""
        records, revocations = _read_all(self.vault)
        now = self.clock()
        infos = [_info(record, revocations.get(record.id), now) for record in records]
        return sorted(infos, key=lambda info: (info.created_at, info.id))


def _read_all(vault: Vault) -> tuple[list[TokenRecord], dict[str, RevocationRecord]]:
    records: list[TokenRecord] = []
    revocations: dict[str, RevocationRecord] = {}
    for key in vault.list_keys(TOKENS_PREFIX):
        name = key.removeprefix(TOKENS_PREFIX)
        token_id, _, suffix = name.partition(".")
        if not TOKEN_ID_RE.fullmatch(token_id) or "/" in name:
            continue
        try:
            data = vault.get_bytes(key)
        except KeyError:
            continue
        if suffix == "json":
            try:
                record = TokenRecord.model_validate_json(data)
            except ValidationError as exc:
                logger.warning("skipping unreadable token record %s: %s", key, exc)
                continue
            if record.id == token_id:
                records.append(record)
        elif suffix == "revoked.json":
            try:
                revocations[token_id] = RevocationRecord.model_validate_json(data)
            except ValidationError:
                revocations[token_id] = RevocationRecord(
                    id=token_id, revoked_at=datetime.fromtimestamp(0, UTC)
                )
    return records, revocations


def any_tokens(vault: Vault, now: datetime | None = None) -> bool:
    """True when the vault holds at least one token that is neither revoked nor expired."""
    keys = set(vault.list_keys(TOKENS_PREFIX))
    now = now or utc_now()
    for key in sorted(keys):
        token_id = key.removeprefix(TOKENS_PREFIX).removesuffix(".json")
        if not TOKEN_ID_RE.fullmatch(token_id) or revocation_key(token_id) in keys:
            continue
        try:
            record = TokenRecord.model_validate_json(vault.get_bytes(key))
        except (KeyError, ValidationError):
            continue
        if record.id == token_id and not _is_expired(record, now):
            return True
    return False
