"""Fixity checks: recompute the SHA-256 of stored objects and compare with the manifests.

Reports mismatches and missing objects; never deletes or rewrites anything because of them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from mediavault import manifests
from mediavault.hashing import sha256_stream
from mediavault.tiers import ArtifactReader
from mediavault.vault.base import Vault


@dataclass
class FixityReport:
    checked: int = 0
    bytes_checked: int = 0
    skipped: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missing or self.errors)

    def merge(self, other: FixityReport) -> None:
        self.checked += other.checked
        self.bytes_checked += other.bytes_checked
        self.skipped += other.skipped
        self.mismatches += other.mismatches
        self.missing += other.missing
        self.errors += other.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_checked": self.bytes_checked,
            "skipped": self.skipped,
            "mismatches": self.mismatches,
            "missing": self.missing,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def in_sample(key: str, percent: float, salt: str) -> bool:
    """Deterministic per run (salt), uniform over keys: the same key is in or out for one run."""
    if percent >= 100:
        return True
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:4], "big") % 10_000
    return bucket < percent * 100


def check_media(vault: Vault, media_id: str, sample_percent: float = 100.0, salt: str = "") -> FixityReport:
    """Check every artifact and edit overlay of one media item's latest manifest."""
    report = FixityReport()
    started = time.monotonic()
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        report.missing.append({"media_id": media_id, "key": "manifest", "reason": "no manifest"})
        return report
    reader = ArtifactReader(vault)
    expected: list[tuple[str, str, int | None, Vault]] = []
    cold: dict[str, bool] = {}
    for artifact in manifest.artifacts:
        if artifact.tier == "hot":
            expected.append((artifact.key, artifact.sha256, artifact.size, vault))
        elif artifact.tier == "archive" and artifact.archive is not None:
            copy = artifact.archive
            expected.append(
                (copy.key, copy.stored_sha256, copy.stored_size, reader.archive_vault(copy.tier_url))
            )
            cold[copy.key] = copy.storage_class not in (None, "STANDARD")
    expected += [(e.key, e.sha256, None, vault) for e in manifest.edits]
    for key, sha256, size, store in expected:
        if not in_sample(key, sample_percent, salt):
            report.skipped += 1
            continue
        try:
            if cold.get(key):
                info = store.head(key)
                if info is None:
                    raise KeyError(key)
                actual, actual_size = info.sha256 or "", info.size  # cold: the SHA-256 recorded at write
            else:
                with store.open_read(key) as stream:
                    actual, actual_size = sha256_stream(stream)
        except KeyError:
            report.missing.append({"media_id": media_id, "key": key, "expected_sha256": sha256})
            continue
        except Exception as exc:  # reported, never acted on
            report.errors.append({"media_id": media_id, "key": key, "error": f"{type(exc).__name__}: {exc}"})
            continue
        report.checked += 1
        report.bytes_checked += actual_size
        if actual != sha256 or (size is not None and actual_size != size):
            report.mismatches.append(
                {
                    "media_id": media_id,
                    "key": key,
                    "expected_sha256": sha256,
                    "actual_sha256": actual,
                    "expected_size": size,
                    "actual_size": actual_size,
                }
            )
    report.seconds = time.monotonic() - started
    return report


def check_vault(vault: Vault, sample_percent: float = 100.0, salt: str = "") -> FixityReport:
    total = FixityReport()
    started = time.monotonic()
    for media_id in manifests.list_media_ids(vault):
        total.merge(check_media(vault, media_id, sample_percent, salt))
    total.seconds = time.monotonic() - started
    return total
