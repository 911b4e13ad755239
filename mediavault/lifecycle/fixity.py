"""Fixity checks: recompute checksums of stored objects and compare with what the vault recorded.

Covers every manifest version (bytes, schema, key, version chain), the journal (records, sequence,
the manifests they name), the hot objects of each item's newest manifest and their archive copies,
read back byte for byte (and decompressed). A copy in a cold storage class that is not restored
cannot be read: it is listed as unverified, never counted as checked. Problems are reported; nothing
is deleted or rewritten because of them, and one bad object never stops the run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from botocore.exceptions import ClientError

from mediavault.vault import manifests
from mediavault.vault.base import Vault
from mediavault.vault.hashing import CHUNK_SIZE, HashingReader, sha256_bytes, sha256_stream
from mediavault.vault.keys import (
    JOURNAL_PREFIX,
    MANIFESTS_PREFIX,
    journal_key,
    manifest_key,
    manifest_prefix,
    parse_journal_seq,
    parse_manifest_version,
)
from mediavault.vault.models import Artifact, JournalRecord, Manifest
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader

ERROR_TEXT_LIMIT = 500


@dataclass
class FixityReport:
    checked: int = 0
    bytes_checked: int = 0
    skipped: int = 0
    checked_by_kind: dict[str, int] = field(default_factory=dict)
    """Checked objects per kind: manifest, journal, object (hot), archive-copy."""
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    unverified: list[dict[str, Any]] = field(default_factory=list)
    """Objects that could not be read (a cold copy not restored): neither checked nor failed."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missing or self.errors)

    def count(self, kind: str, size: int = 0) -> None:
        self.checked += 1
        self.bytes_checked += size
        self.checked_by_kind[kind] = self.checked_by_kind.get(kind, 0) + 1

    def error(self, check: str, key: str, exc: BaseException | str, **context: Any) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.errors.append({"check": check, **context, "key": key, "error": text[:ERROR_TEXT_LIMIT]})

    def merge(self, other: FixityReport) -> None:
        self.checked += other.checked
        self.bytes_checked += other.bytes_checked
        self.skipped += other.skipped
        for kind, count in other.checked_by_kind.items():
            self.checked_by_kind[kind] = self.checked_by_kind.get(kind, 0) + count
        self.mismatches += other.mismatches
        self.missing += other.missing
        self.errors += other.errors
        self.unverified += other.unverified

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_checked": self.bytes_checked,
            "skipped": self.skipped,
            "checked_by_kind": dict(sorted(self.checked_by_kind.items())),
            "mismatches": self.mismatches,
            "missing": self.missing,
            "errors": self.errors,
            "unverified": self.unverified,
            "seconds": round(self.seconds, 3),
        }


def in_sample(key: str, percent: float, salt: str) -> bool:
    """Deterministic per run (salt), uniform over keys: the same key is in or out for one run."""
    if percent >= 100:
        return True
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:4], "big") % 10_000
    return bucket < percent * 100


def _mismatch(report: FixityReport, check: str, media_id: str | None, key: str, **detail: Any) -> None:
    report.mismatches.append({"check": check, "media_id": media_id, "key": key, **detail})


# --- manifests ---------------------------------------------------------------------------------


def _check_manifest_version(
    vault: Vault, media_id: str, version: int, key: str, report: FixityReport
) -> Manifest | None:
    """Check one manifest version; returns it when it is sound (bytes, schema, key, chain)."""
    info = vault.head(key)
    if info is None:
        report.missing.append({"check": "manifest", "media_id": media_id, "key": key})
        return None
    data = vault.get_bytes(key)
    actual = sha256_bytes(data)
    report.count("manifest", len(data))
    sound = True
    if info.sha256 is not None and actual != info.sha256:
        _mismatch(report, "manifest", media_id, key, expected_sha256=info.sha256, actual_sha256=actual)
        sound = False
    try:
        manifest = Manifest.from_bytes(data)
    except ValueError as exc:  # JSON and pydantic validation errors are ValueErrors
        report.error("manifest", key, f"not a valid manifest: {exc}", media_id=media_id)
        return None
    expected_previous = version - 1 if version > 1 else None
    for name, expected, found in (
        ("media_id", media_id, manifest.media_id),
        ("version", version, manifest.version),
        ("previous_version", expected_previous, manifest.previous_version),
    ):
        if expected != found:
            _mismatch(report, "manifest", media_id, key, field=name, expected=expected, actual=found)
            sound = False
    return manifest if sound else None


def _check_manifests(
    vault: Vault, media_id: str, sample_percent: float, salt: str, report: FixityReport
) -> Manifest | None:
    """Check the versions of one media item; returns its newest sound manifest.

    The newest version is always read (its artifacts are checked next); older ones when sampled.
    When the newest is damaged, older versions are read until a sound one is found, and the
    artifacts that one names are checked.
    """
    versions: dict[int, str] = {}
    for key in vault.list_keys(manifest_prefix(media_id)):
        version = parse_manifest_version(key)
        if version is not None and key == manifest_key(media_id, version):
            versions[version] = key
    if not versions:
        report.missing.append({"check": "manifest", "media_id": media_id, "key": manifest_prefix(media_id)})
        return None
    gaps = [v for v in range(1, max(versions)) if v not in versions]
    newest: Manifest | None = None
    for position, version in enumerate(sorted(versions, reverse=True)):
        key = versions[version]
        if position > 0 and newest is not None and not in_sample(key, sample_percent, salt):
            report.skipped += 1
            continue
        try:
            manifest = _check_manifest_version(vault, media_id, version, key, report)
        except KeyError:
            report.missing.append({"check": "manifest", "media_id": media_id, "key": key})
            continue
        except Exception as exc:  # reported, never acted on
            report.error("manifest", key, exc, media_id=media_id)
            continue
        newest = newest or manifest
    if newest is None or newest.forgotten is None:  # a forget erases every version before its tombstone
        report.missing.extend(
            {"check": "manifest", "media_id": media_id, "key": manifest_key(media_id, v)} for v in gaps
        )
    return newest


# --- objects and archive copies ----------------------------------------------------------------


def _check_object(
    store: Vault, media_id: str, key: str, sha256: str, size: int | None, report: FixityReport
) -> None:
    with store.open_read(key) as stream:
        actual, actual_size = sha256_stream(stream)
    report.count("object", actual_size)
    if actual != sha256 or (size is not None and actual_size != size):
        _mismatch(
            report,
            "object",
            media_id,
            key,
            expected_sha256=sha256,
            actual_sha256=actual,
            expected_size=size,
            actual_size=actual_size,
        )


def _content_digest(stored: HashingReader, compression: str | None) -> tuple[str, int, str | None] | None:
    """Hash the decompressed content while the stored bytes pass through ``stored`` (one read).
    None for an uncompressed copy: its content is its bytes."""
    if compression is None:
        return None
    digest = hashlib.sha256()
    size = 0
    try:
        content = pa.CompressedInputStream(pa.PythonFile(stored, mode="r"), compression)
        while chunk := content.read(CHUNK_SIZE):
            data = chunk if isinstance(chunk, bytes) else chunk.to_pybytes()
            digest.update(data)
            size += len(data)
    except (OSError, pa.ArrowException) as exc:
        return "", size, f"cannot decompress: {type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
    return digest.hexdigest(), size, None


def _check_archive_copy(
    reader: ArtifactReader, media_id: str, artifact: Artifact, report: FixityReport
) -> None:
    """Read the archive copy back: its bytes against stored_sha256/size, its content (decompressed)
    against the artifact's own SHA-256 and size. A cold copy not yet restored is unverified."""
    copy = artifact.archive
    assert copy is not None
    store = reader.archive_vault(copy.tier_url)
    where = {"media_id": media_id, "key": copy.key, "artifact": artifact.key}
    if isinstance(store, S3Vault) and copy.storage_class not in (None, "STANDARD"):
        if store.head(copy.key) is None:
            raise KeyError(copy.key)
        state = store.restore_state(copy.key)
        if state != "ready":
            reason = f"storage class {copy.storage_class}, restore {state}: not readable until restored"
            report.unverified.append({"check": "archive-copy", **where, "reason": reason})
            return
    try:
        with store.open_read(copy.key) as stream:
            stored = HashingReader(stream)
            content = _content_digest(stored, copy.compression)
            while stored.read(CHUNK_SIZE):
                pass  # the rest of the stored bytes (a decompressor may stop early)
    except ClientError as exc:  # e.g. moved to a cold class by a bucket lifecycle rule
        if exc.response.get("Error", {}).get("Code") != "InvalidObjectState":
            raise
        reason = "in a cold storage class and not restored"
        report.unverified.append({"check": "archive-copy", **where, "reason": reason})
        return
    report.count("archive-copy", stored.size)
    content_sha, content_size, content_error = content or (stored.sha256, stored.size, None)
    if stored.sha256 != copy.stored_sha256 or stored.size != copy.stored_size:
        _mismatch(
            report,
            "archive-copy",
            media_id,
            copy.key,
            artifact=artifact.key,
            expected_sha256=copy.stored_sha256,
            actual_sha256=stored.sha256,
            expected_size=copy.stored_size,
            actual_size=stored.size,
        )
    elif content_error or content_sha != artifact.sha256 or content_size != artifact.size:
        _mismatch(
            report,
            "archive-content",
            media_id,
            copy.key,
            artifact=artifact.key,
            expected_sha256=artifact.sha256,
            actual_sha256=content_sha,
            expected_size=artifact.size,
            actual_size=content_size,
            **({"error": content_error} if content_error else {}),
        )


def _check_artifacts(
    vault: Vault,
    manifest: Manifest,
    sample_percent: float,
    salt: str,
    report: FixityReport,
    reader: ArtifactReader,
) -> None:
    media_id = manifest.media_id
    checks: list[tuple[str, Artifact | None, str, int | None]] = []
    for artifact in manifest.artifacts:
        if artifact.tier == "hot":
            checks.append((artifact.key, None, artifact.sha256, artifact.size))
        elif artifact.tier == "archive" and artifact.archive is not None:
            checks.append((artifact.archive.key, artifact, artifact.sha256, artifact.size))
        elif artifact.tier == "archive":
            report.error(
                "object", artifact.key, "manifest says archive but records no archive copy", media_id=media_id
            )
    checks += [(edit.key, None, edit.sha256, None) for edit in manifest.edits]
    for key, archived, sha256, size in checks:
        if not in_sample(key, sample_percent, salt):
            report.skipped += 1
            continue
        try:
            if archived is not None:
                _check_archive_copy(reader, media_id, archived, report)
            else:
                _check_object(vault, media_id, key, sha256, size, report)
        except KeyError:
            kind = "archive-copy" if archived is not None else "object"
            report.missing.append(
                {"check": kind, "media_id": media_id, "key": key, "expected_sha256": sha256}
            )
        except Exception as exc:  # reported, never acted on
            report.error("archive-copy" if archived is not None else "object", key, exc, media_id=media_id)


def check_media(
    vault: Vault,
    media_id: str,
    sample_percent: float = 100.0,
    salt: str = "",
    reader: ArtifactReader | None = None,
) -> FixityReport:
    """Check one media item: its manifest versions, then the objects and archive copies its newest
    sound manifest names. Every failure is recorded in the report; none is raised.

    Pass one ``reader`` for many items: it keeps the archive tiers' clients open between them.
    """
    report = FixityReport()
    started = time.monotonic()
    try:
        manifest = _check_manifests(vault, media_id, sample_percent, salt, report)
        if manifest is not None:
            _check_artifacts(vault, manifest, sample_percent, salt, report, reader or ArtifactReader(vault))
    except Exception as exc:  # e.g. the listing failed: this item is reported, the run goes on
        report.error("media", f"{MANIFESTS_PREFIX}{media_id}/", exc, media_id=media_id)
    report.seconds = time.monotonic() - started
    return report


# --- journal -----------------------------------------------------------------------------------


def journal_chunks(vault: Vault, report: FixityReport, chunk_size: int = 256) -> Iterator[list[str]]:
    """One listing of ``journal/``: gaps in the sequence (from 1) and foreign keys go into
    ``report``; the record keys come out in chunks for ``check_journal_records``."""
    expected = 1
    chunk: list[str] = []
    for key in vault.list_keys(JOURNAL_PREFIX):
        seq = parse_journal_seq(key)
        if seq is None or key != journal_key(seq):
            report.error("journal", key, "not a journal record key")
            continue
        if seq > expected:
            report.missing.append(
                {
                    "check": "journal",
                    "key": journal_key(expected),
                    "reason": f"gap in the journal: records {expected}..{seq - 1} are missing",
                }
            )
        expected = seq + 1
        chunk.append(key)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_journal_record(vault: Vault, key: str, report: FixityReport) -> None:
    info = vault.head(key)
    if info is None:
        raise KeyError(key)
    data = vault.get_bytes(key)
    actual = sha256_bytes(data)
    report.count("journal", len(data))
    if info.sha256 is not None and actual != info.sha256:
        _mismatch(report, "journal", None, key, expected_sha256=info.sha256, actual_sha256=actual)
    try:
        record = JournalRecord.model_validate_json(data)
    except ValueError as exc:
        report.error("journal", key, f"not a valid journal record: {exc}")
        return
    if record.seq != parse_journal_seq(key):
        _mismatch(
            report,
            "journal",
            record.media_id,
            key,
            field="seq",
            expected=parse_journal_seq(key),
            actual=record.seq,
        )
    try:
        expected_manifest = manifest_key(record.media_id, record.manifest_version)
    except ValueError as exc:
        report.error("journal", key, exc, media_id=record.media_id)
        return
    if record.manifest_key != expected_manifest:
        _mismatch(
            report,
            "journal",
            record.media_id,
            key,
            field="manifest_key",
            expected=expected_manifest,
            actual=record.manifest_key,
        )
    elif vault.head(record.manifest_key) is None and not _forgotten(vault, record.media_id):
        report.missing.append(
            {
                "check": "journal",
                "media_id": record.media_id,
                "key": record.manifest_key,
                "referenced_by": key,
            }
        )


def _forgotten(vault: Vault, media_id: str) -> bool:
    """Erased on request: the journal records of its earlier versions name manifests that are gone."""
    newest = manifests.newest_manifest(vault, media_id)
    return newest is not None and newest.forgotten is not None


def check_journal_records(
    vault: Vault, keys: list[str], sample_percent: float = 100.0, salt: str = ""
) -> FixityReport:
    """Each record parses, its seq matches its key, its bytes match the recorded SHA-256 (S3),
    and the manifest version it names exists."""
    report = FixityReport()
    started = time.monotonic()
    for key in keys:
        if not in_sample(key, sample_percent, salt):
            report.skipped += 1
            continue
        try:
            _check_journal_record(vault, key, report)
        except KeyError:
            report.missing.append({"check": "journal", "key": key})
        except Exception as exc:  # reported, never acted on
            report.error("journal", key, exc)
    report.seconds = time.monotonic() - started
    return report


def check_journal(vault: Vault, sample_percent: float = 100.0, salt: str = "") -> FixityReport:
    report = FixityReport()
    started = time.monotonic()
    try:
        for chunk in journal_chunks(vault, report):
            report.merge(check_journal_records(vault, chunk, sample_percent, salt))
    except Exception as exc:  # the listing failed part-way
        report.error("journal", JOURNAL_PREFIX, exc)
    report.seconds = time.monotonic() - started
    return report


def check_vault(vault: Vault, sample_percent: float = 100.0, salt: str = "") -> FixityReport:
    """Every media item (manifests, objects, archive copies) and the journal. Reads only."""
    total = FixityReport()
    started = time.monotonic()
    reader = ArtifactReader(vault)
    for media_id in manifests.list_media_ids(vault):
        total.merge(check_media(vault, media_id, sample_percent, salt, reader))
    total.merge(check_journal(vault, sample_percent, salt))
    total.seconds = time.monotonic() - started
    return total
