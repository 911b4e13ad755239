"""Pins and claims: how garbage collection and writers agree on objects nobody references yet.

An unreferenced object under ``media/<id>/`` may be garbage (a failed ingest left it) or the base
of a commit in flight (an ingest that deduplicated against it, so its age says nothing). Both
sides write their intent first and read the other's second, so at least one of them sees the
other (stores are linearizable: S3 since 2020, a local directory always):

* a **writer** pins the media id (``gc/pins/<id>/<token>.json``), then waits until no collector
  claims the id, then checks that every object it will reference exists (storing it again if a
  collector removed it), commits its manifest and removes the pin;
* a **collector** claims the id (``gc/claims/<id>.json``, create-if-absent), then re-reads the pins
  and the latest manifest, deletes only objects that no manifest references while no live pin
  exists, and releases the claim.

Pins and claims are leases: a pin older than ``PIN_TTL`` belongs to a dead writer and is ignored
(then removed); a claim older than ``CLAIM_TTL`` belongs to a dead collector and may be broken.
A collector stops deleting once half its lease has passed, so a claim is never broken while its
holder still deletes.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from mediavault.errors import ConflictError
from mediavault.vault.base import Vault
from mediavault.vault.keys import check_media_id

PIN_PREFIX = "gc/pins/"
CLAIM_PREFIX = "gc/claims/"
PIN_TTL = 24 * 3600.0
CLAIM_TTL = 600.0
POLL_SECONDS = 0.2


def pin_prefix(media_id: str) -> str:
    return f"{PIN_PREFIX}{check_media_id(media_id)}/"


def claim_key(media_id: str) -> str:
    return f"{CLAIM_PREFIX}{check_media_id(media_id)}.json"


def _holder() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}


def _age(vault: Vault, key: str, now: float) -> float | None:
    """Seconds since ``key`` was written, or None when it is gone."""
    info = vault.head(key)
    if info is None:
        return None
    return max(0.0, now - (info.modified if info.modified is not None else now))


def pin(vault: Vault, media_id: str) -> str:
    """Announce a commit in flight on ``media_id``; returns the pin's key (pass it to ``unpin``)."""
    key = f"{pin_prefix(media_id)}{uuid.uuid4().hex}.json"
    vault.put_bytes(key, json.dumps(_holder()).encode(), "application/json")
    return key


def unpin(vault: Vault, key: str) -> None:
    vault.delete(key)


def live_pins(vault: Vault, media_id: str, now: float | None = None) -> list[str]:
    """Pins of writers that may still be alive; stale ones are removed on the way."""
    now = time.time() if now is None else now
    live = []
    for key in vault.list_keys(pin_prefix(media_id)):
        age = _age(vault, key, now)
        if age is None:
            continue
        if age > PIN_TTL:
            vault.delete(key)
        else:
            live.append(key)
    return live


def wait_unclaimed(vault: Vault, media_id: str, timeout: float = CLAIM_TTL + 60) -> None:
    """Block while a live collector claims ``media_id``; break a claim older than CLAIM_TTL."""
    key = claim_key(media_id)
    deadline = time.monotonic() + timeout
    while True:
        age = _age(vault, key, time.time())
        if age is None:
            return
        if age > CLAIM_TTL:
            vault.delete(key)
            return
        if time.monotonic() > deadline:
            raise ConflictError(f"media {media_id} stays claimed by garbage collection ({key})")
        time.sleep(POLL_SECONDS)


@dataclass
class Claim:
    media_id: str
    key: str
    acquired: float

    def expiring(self) -> bool:
        """True once half the lease has passed: stop deleting, a writer may break the claim soon."""
        return time.monotonic() - self.acquired > CLAIM_TTL / 2


def claim(vault: Vault, media_id: str) -> Claim | None:
    """Claim ``media_id`` for collection; None when another live collector holds it."""
    key = claim_key(media_id)
    for _ in range(2):
        started = time.monotonic()
        if vault.put_bytes(key, json.dumps(_holder()).encode(), "application/json").created:
            return Claim(media_id, key, started)
        age = _age(vault, key, time.time())
        if age is not None and age <= CLAIM_TTL:
            return None
        if age is not None:
            vault.delete(key)  # left by a collector that died
    return None


def release(vault: Vault, held: Claim) -> None:
    vault.delete(held.key)


def collect(
    vault: Vault,
    media_id: str,
    candidates: list[str],
    referenced: Callable[[], set[str]],
    delete: Callable[[str], None],
) -> tuple[list[str], str | None]:
    """Delete the ``candidates`` of one media id that are still garbage, under a claim.

    ``referenced`` is called after the claim is held and returns every key a committed manifest
    names. Returns the deleted keys and, when something was kept, the reason.
    """
    held = claim(vault, media_id)
    if held is None:
        return [], "another collector holds the claim"
    deleted: list[str] = []
    try:
        if live_pins(vault, media_id):
            return [], "a commit is in flight (pinned)"
        keep = referenced()
        for key in candidates:
            if key in keep:
                continue
            if held.expiring():
                return deleted, "claim lease ran out; the rest waits for the next run"
            delete(key)
            deleted.append(key)
    finally:
        release(vault, held)
    kept = [k for k in candidates if k not in deleted]
    return deleted, ("referenced by a committed manifest" if kept else None)
