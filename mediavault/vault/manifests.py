"""Manifest versions: ``manifests/<media_id>/v<N>.json``, each created only if absent.

Optimistic concurrency: a writer reads the latest version N, derives N+1 from it and creates
``vN+1`` if absent. When another writer got there first, it re-reads and re-derives, so no update
is lost. Artifacts are checked to exist before the manifest is written (commit record last), and
the journal record follows the manifest.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from mediavault.errors import ConflictError, IntegrityError, MediaForgotten
from mediavault.vault import journal
from mediavault.vault.base import Vault
from mediavault.vault.keys import (
    MANIFESTS_PREFIX,
    SHA256_RE,
    edits_prefix,
    manifest_journaled_key,
    manifest_key,
    manifest_prefix,
    media_prefix,
    parse_manifest_version,
)
from mediavault.vault.models import Manifest

MAX_COMMIT_ATTEMPTS = 50
SWEEP_GRACE_SECONDS = 120.0
"""Manifest versions younger than this are left to their writer, which may still be journaling them."""

log = logging.getLogger(__name__)
_sweep_locks: dict[str, threading.Lock] = {}
_sweep_locks_guard = threading.Lock()


def manifest_versions(vault: Vault, media_id: str) -> list[int]:
    versions = (parse_manifest_version(k) for k in vault.list_keys(manifest_prefix(media_id)))
    return sorted(v for v in versions if v is not None)


def newest_manifest(vault: Vault, media_id: str) -> Manifest | None:
    """The newest version as written, a forget's tombstone included."""
    versions = manifest_versions(vault, media_id)
    if not versions:
        return None
    return Manifest.from_bytes(vault.get_bytes(manifest_key(media_id, versions[-1])))


def latest_manifest(vault: Vault, media_id: str) -> Manifest | None:
    """The committed media item, or None when there is none (never committed, or erased on
    request: its tombstone holds no content and every reader treats the item as absent)."""
    manifest = newest_manifest(vault, media_id)
    return None if manifest is None or manifest.forgotten is not None else manifest


def manifest_at(vault: Vault, media_id: str, at: datetime) -> Manifest | None:
    """The version that was newest at ``at`` (a point-in-time view); None before the first."""
    for version in reversed(manifest_versions(vault, media_id)):
        manifest = read_manifest(vault, media_id, version)
        if manifest.created_at <= at:
            return manifest
    return None


def read_manifest(vault: Vault, media_id: str, version: int) -> Manifest:
    return Manifest.from_bytes(vault.get_bytes(manifest_key(media_id, version)))


def list_media_ids(vault: Vault) -> list[str]:
    """Media ids that have at least one committed manifest."""
    ids = {key.split("/")[1] for key in vault.list_keys("manifests/") if key.endswith(".json")}
    return sorted(ids)


@dataclass(frozen=True)
class CommitResult:
    manifest: Manifest
    changed: bool
    journal_seq: int | None


def ensure_journaled(vault: Vault, manifest: Manifest, run_id: str | None = None) -> int | None:
    """Append the journal record for a manifest version unless its marker says it is there.

    A crash between manifest and journal leaves the marker absent; the next writer repairs it.
    The journal is therefore at-least-once: a crash after the record but before the marker gives
    a duplicate, which consumers ignore because records are keyed by (media_id, version).
    """
    marker = manifest_journaled_key(manifest.media_id, manifest.version)
    if vault.head(marker) is not None:
        return None
    record = journal.append(
        vault,
        manifest.change,
        manifest.media_id,
        manifest.version,
        manifest_key(manifest.media_id, manifest.version),
        run_id,
    )
    vault.put_bytes(marker, json.dumps({"seq": record.seq}).encode(), "application/json")
    return record.seq


def _check_artifacts_exist(vault: Vault, manifest: Manifest) -> None:
    for artifact in manifest.artifacts:
        if artifact.tier != "hot":
            continue  # archived copies were verified by the lifecycle step; expired ones are gone
        info = vault.head(artifact.key)
        if info is None:
            raise IntegrityError(f"refusing to commit manifest: artifact {artifact.key} is missing")
        if info.size != artifact.size:
            raise IntegrityError(
                f"refusing to commit manifest: {artifact.key} has {info.size} bytes, "
                f"manifest says {artifact.size}"
            )


def erase_hot_objects(
    vault: Vault, media_id: str, before_delete: Callable[[str], None] | None = None
) -> list[str]:
    """Delete an erased item's hot objects and edits, as listed now; returns their keys. A forget
    calls it, and so does a commit the tombstone refuses: a writer that raced the forget (or
    re-ingested the same bytes after it) stored before committing. Everything under these
    prefixes belongs to the erased item, so nothing anyone may still use goes; archive copies left
    by a raced lifecycle run are the next lifecycle run's (``erase-leftover``)."""
    keys = [*vault.list_keys(media_prefix(media_id)), *vault.list_keys(edits_prefix(media_id))]
    for key in keys:
        if before_delete is not None:
            before_delete(key)
        vault.delete(key)
    return keys


def commit(
    vault: Vault,
    media_id: str,
    derive: Callable[[Manifest | None], Manifest | None],
    run_id: str | None = None,
) -> CommitResult:
    """Write the next manifest version derived from the latest one, then journal it.

    ``derive`` returns the new manifest (its version fields are set here) or None for "no change".
    """
    for _ in range(MAX_COMMIT_ATTEMPTS):
        current = newest_manifest(vault, media_id)
        if current is not None and current.forgotten is not None:
            if erased := erase_hot_objects(vault, media_id):
                log.info(
                    "erased %d object(s) of forgotten media %s that a refused writer stored",
                    len(erased),
                    media_id,
                )
            raise MediaForgotten(media_id, f"{current.forgotten.at:%Y-%m-%d}")
        proposed = derive(current)
        if proposed is None:
            assert current is not None, "derive() must create a manifest for a new media item"
            return CommitResult(current, False, ensure_journaled(vault, current, run_id))
        proposed.version = current.version + 1 if current else 1
        proposed.previous_version = current.version if current else None
        try:
            _check_artifacts_exist(vault, proposed)
        except IntegrityError:
            # A concurrent commit (an archive or expiry) moved an object since ``current`` was
            # read: derive again from the newer version. Otherwise the object is really missing.
            if manifest_versions(vault, media_id)[-1:] != [current.version if current else None]:
                continue
            raise
        key = manifest_key(media_id, proposed.version)
        if vault.put_bytes(key, proposed.to_bytes(), "application/json").created:
            return CommitResult(proposed, True, ensure_journaled(vault, proposed, run_id))
    raise ConflictError(f"gave up committing {media_id}: {MAX_COMMIT_ATTEMPTS} concurrent writers won")


@dataclass(frozen=True)
class SweptVersion:
    """A manifest version the sweep journaled: it had no record (or none the marker knew of)."""

    media_id: str
    version: int
    journal_seq: int


def unjournaled_versions(vault: Vault) -> Iterator[tuple[str, int]]:
    """Manifest versions without a ``.journaled`` marker, from one sorted listing of ``manifests/``.

    Keys of one media item are adjacent in the listing, so only one item's names are held at a time.
    """
    current: str | None = None
    names: set[str] = set()

    def unmarked() -> Iterator[tuple[str, int]]:
        if current is None or not SHA256_RE.match(current):
            return
        versions = sorted(v for v in map(parse_manifest_version, names) if v is not None)
        for version in versions:
            if manifest_journaled_key(current, version).rsplit("/", 1)[-1] not in names:
                yield current, version

    for key in vault.list_keys(MANIFESTS_PREFIX):
        parts = key.split("/")
        if len(parts) != 3:
            continue
        if parts[1] != current:
            yield from unmarked()
            current, names = parts[1], set()
        names.add(parts[2])
    yield from unmarked()


def _sweep_lock(vault: Vault) -> threading.Lock:
    with _sweep_locks_guard:
        return _sweep_locks.setdefault(vault.url, threading.Lock())


def _run_id_of(manifest: Manifest) -> str | None:
    """The run a commit passes to the journal: the run an ingest or new-run change added."""
    if manifest.change in ("ingest", "new-run") and manifest.runs:
        return manifest.runs[-1].run_id
    return None


def sweep_unjournaled(
    vault: Vault, grace_seconds: float = SWEEP_GRACE_SECONDS, now: float | None = None
) -> list[SweptVersion]:
    """Journal every manifest version a crash left without its journal record; returns them.

    One listing of ``manifests/`` finds the versions without a marker; only those are read. A
    version written less than ``grace_seconds`` ago is left to its writer (still journaling it,
    most likely). ``ensure_journaled`` re-checks the marker just before appending, and sweeps in
    one process take turns per vault, so concurrent sweeps do not journal a version twice. A
    sweep in another process, or a writer slower than the grace period, can still race it: the
    journal is at-least-once, and consumers key records by (media_id, manifest_version).
    Unreadable manifests are skipped (fixity reports them); transient faults propagate, and a
    re-run is safe.
    """
    swept: list[SweptVersion] = []
    for media_id, version in unjournaled_versions(vault):
        key = manifest_key(media_id, version)
        info = vault.head(key)
        if info is None:
            continue
        clock = time.time() if now is None else now
        if info.modified is not None and clock - info.modified < grace_seconds:
            continue
        try:
            manifest = Manifest.from_bytes(vault.get_bytes(key))
        except (KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("journal sweep: skipping unreadable manifest %s: %s", key, exc)
            continue
        if (manifest.media_id, manifest.version) != (media_id, version):
            log.warning(
                "journal sweep: skipping %s: it names %s v%d", key, manifest.media_id, manifest.version
            )
            continue
        if info.modified is None and clock - manifest.created_at.timestamp() < grace_seconds:
            continue
        with _sweep_lock(vault):
            seq = ensure_journaled(vault, manifest, _run_id_of(manifest))
        if seq is not None:
            log.info("journal sweep: journaled %s as record %d", key, seq)
            swept.append(SweptVersion(media_id, version, seq))
    return swept
