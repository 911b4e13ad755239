"""Manifest versions: ``manifests/<media_id>/v<N>.json``, each created only if absent.

Optimistic concurrency: a writer reads the latest version N, derives N+1 from it and creates
``vN+1`` if absent. When another writer got there first, it re-reads and re-derives, so no update
is lost. Artifacts are checked to exist before the manifest is written (commit record last), and
the journal record follows the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from mediavault import journal
from mediavault.errors import ConflictError, IntegrityError
from mediavault.models import Manifest
from mediavault.vault.base import Vault
from mediavault.vault.keys import (
    manifest_journaled_key,
    manifest_key,
    manifest_prefix,
    parse_manifest_version,
)

MAX_COMMIT_ATTEMPTS = 50


def manifest_versions(vault: Vault, media_id: str) -> list[int]:
    versions = (parse_manifest_version(k) for k in vault.list_keys(manifest_prefix(media_id)))
    return sorted(v for v in versions if v is not None)


def latest_manifest(vault: Vault, media_id: str) -> Manifest | None:
    versions = manifest_versions(vault, media_id)
    if not versions:
        return None
    return Manifest.from_bytes(vault.get_bytes(manifest_key(media_id, versions[-1])))


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
        current = latest_manifest(vault, media_id)
        proposed = derive(current)
        if proposed is None:
            assert current is not None, "derive() must create a manifest for a new media item"
            return CommitResult(current, False, ensure_journaled(vault, current, run_id))
        proposed.version = current.version + 1 if current else 1
        proposed.previous_version = current.version if current else None
        _check_artifacts_exist(vault, proposed)
        key = manifest_key(media_id, proposed.version)
        if vault.put_bytes(key, proposed.to_bytes(), "application/json").created:
            return CommitResult(proposed, True, ensure_journaled(vault, proposed, run_id))
    raise ConflictError(f"gave up committing {media_id}: {MAX_COMMIT_ATTEMPTS} concurrent writers won")
