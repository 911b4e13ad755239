"""Backups: replicate the vault to a mirror (another bucket, prefix or local directory).

The mirror is itself a vault with the same key layout, opened with ``open_vault``. It is filled
incrementally from the journal, and in an order that makes the mirror's own journal the
checkpoint:

1. for each journal record after the mirror's journal tail: every object its manifest version
   names (artifacts and edit overlays) that the mirror does not hold yet, copied with bounded
   concurrency and streamed (never a whole media file in memory);
2. then that manifest version, then the journal record itself, then its ``.journaled`` marker.

Records are copied in sequence order and a record only once everything it names is in the
mirror, so ``journal.find_tail(mirror)`` is the last fully mirrored record and nothing mutable
has to be kept: a crash re-copies at most one batch (objects already there are skipped by size),
and every copy is create-if-absent, so re-runs are idempotent.

Every copied object is verified: its SHA-256 is computed while it streams and compared with the
one the manifest records (large objects; the mirror's size is checked after), or the copy is read
back from the mirror and hashed (small objects). A mismatch never stores anything under the key
and stops the run before the checkpoint passes the record that names the object.

Tiers: a hot artifact is copied from the vault. An archived one is copied as its original bytes
(decompressed, verified against the artifact's own SHA-256) to its hot key in the mirror, so the
mirror does not depend on the archive tier; when the vault still holds a hot copy, that is read
instead. An archive copy in a cold storage class that has not been thawed cannot be read: it is
listed as skipped, and copied when a later record (a restore) makes it hot. An expired artifact is
skipped: its bytes are gone on purpose, and what the mirror already holds stays.

Nothing is ever deleted from the mirror: an expiry, archive or orphan collection in the vault is
not propagated. Objects that no journal record names (``vault.json``, ``access/``, ``audit/``,
``reports/``) are immutable or append-only; they are mirrored by listing both sides and copying
what is missing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from mediavault.errors import ConfigurationError, IntegrityError, MediavaultError, is_transient
from mediavault.lifecycle.forget import erase_copy
from mediavault.settings import MediavaultSettings
from mediavault.vault import Vault, journal, manifests, open_vault, vault_from_settings
from mediavault.vault.keys import (
    JOURNAL_PREFIX,
    VAULT_DESCRIPTOR,
    journal_key,
    manifest_journaled_key,
    parse_journal_seq,
)
from mediavault.vault.models import Artifact, EditRef, Manifest
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader

SMALL_OBJECT_BYTES = 8 * 1024 * 1024
"""Objects up to this size are copied in memory and verified by reading the mirror's copy back."""
LISTED_PREFIXES = ("access/", "audit/", "reports/")
"""Objects no journal record names; mirrored by listing (``vault.json`` is checked first)."""
BATCH_RECORDS = 200
DEFAULT_CONCURRENCY = 4
LISTED_SHOWN = 200
"""At most this many skipped items and errors are kept in a report (the counts are complete)."""

Hook = Callable[[str, str], None]
"""Called as hook(step, key) before each object is copied; tests raise from it to inject crashes."""


def _no_hook(step: str, key: str) -> None:
    return None


class MirrorMismatch(IntegrityError):
    """An object's bytes do not match what the vault records for them (never stored in the mirror)."""


# -- opening the mirror ------------------------------------------------------------------------


def mirror_url_from(settings: MediavaultSettings, override: str | None = None) -> str:
    url = override or settings.mirror_url
    if not url:
        raise ConfigurationError(
            "no mirror configured: set MEDIAVAULT_MIRROR_URL (file:///path or s3://bucket/prefix) "
            "or pass the mirror URL (--to, the flow's mirror_url parameter)"
        )
    return url


def open_mirror(settings: MediavaultSettings, override: str | None = None) -> Vault:
    """The mirror vault (same S3 options as the vault), refused when it overlaps the vault."""
    mirror = open_vault(mirror_url_from(settings, override), settings.s3)
    check_separate(vault_from_settings(settings), mirror)
    return mirror


def check_separate(vault: Vault, mirror: Vault) -> None:
    """A mirror inside the vault (or the other way round) would copy itself and die with it."""
    a, b = vault.url.rstrip("/") + "/", mirror.url.rstrip("/") + "/"
    if a.startswith(b) or b.startswith(a):
        raise ConfigurationError(
            f"the mirror {mirror.url} overlaps the vault {vault.url}: a backup must live elsewhere "
            "(another bucket, prefix or directory)"
        )


# -- lag and checkpoint ------------------------------------------------------------------------


def mirror_checkpoint(mirror: Vault) -> int:
    """The last journal record the mirror holds together with everything it names."""
    return journal.find_tail(mirror)


def mirror_lag(vault: Vault, mirror: Vault) -> int:
    """Journal records of the vault not mirrored yet (0 when the mirror is up to date)."""
    return max(journal.find_tail(vault) - mirror_checkpoint(mirror), 0)


def configured_mirror_lag(settings: MediavaultSettings) -> int | None:
    """``mirror_lag`` of the configured mirror (``mirror_url``); None when none is configured."""
    if not settings.mirror_url:
        return None
    return mirror_lag(vault_from_settings(settings), open_mirror(settings))


# -- reports -----------------------------------------------------------------------------------


_REPORT_LOCK = threading.Lock()
"""Copies run on worker threads and count into one report (kept out of it: reports are pickled)."""


@dataclass
class MirrorReport:
    source: str
    target: str
    checkpoint_before: int = 0
    checkpoint: int = 0
    journal_tail: int = 0
    records: int = 0
    objects_copied: int = 0
    bytes_copied: int = 0
    objects_present: int = 0
    listed_copied: int = 0
    erased: int = 0  # objects a forget erased from the vault, removed from the mirror too
    skipped_count: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def lag(self) -> int:
        return max(self.journal_tail - self.checkpoint, 0)

    def copied(self, size: int) -> None:
        with _REPORT_LOCK:
            self.objects_copied += 1
            self.bytes_copied += size

    def present(self) -> None:
        with _REPORT_LOCK:
            self.objects_present += 1

    def skip(self, key: str, media_id: str | None, reason: str) -> None:
        with _REPORT_LOCK:
            self.skipped_count += 1
            if len(self.skipped) < LISTED_SHOWN:
                self.skipped.append({"key": key, "media_id": media_id, "reason": reason})

    def error(
        self, key: str, exc: BaseException | str, media_id: str | None = None, seq: int | None = None
    ) -> None:
        message = exc if isinstance(exc, str) else describe(exc)
        with _REPORT_LOCK:
            if len(self.errors) < LISTED_SHOWN:
                self.errors.append({"key": key, "media_id": media_id, "seq": seq, "error": message})

    def merge(self, other: MirrorReport) -> None:
        self.checkpoint = max(self.checkpoint, other.checkpoint)
        self.journal_tail = max(self.journal_tail, other.journal_tail)
        for name in (
            "records",
            "objects_copied",
            "bytes_copied",
            "objects_present",
            "listed_copied",
            "erased",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped_count += other.skipped_count
        self.skipped = (self.skipped + other.skipped)[:LISTED_SHOWN]
        self.errors = (self.errors + other.errors)[:LISTED_SHOWN]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "lag": self.lag, **asdict(self)}


def describe(exc: BaseException) -> str:
    if isinstance(exc, MediavaultError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing object {exc.args[0] if exc.args else ''}"
    return f"{type(exc).__name__}: {exc}"


# -- copying one object ------------------------------------------------------------------------


def _read_all(stream: BinaryIO) -> bytes:
    data = stream.read()
    return data.to_pybytes() if hasattr(data, "to_pybytes") else data


def copy_small(
    mirror: Vault, key: str, data: bytes, content_type: str | None, expected_sha256: str | None
) -> bool:
    """Create ``key`` in the mirror from ``data`` and read it back. True when this call created it.

    An existing object must hold the same bytes (it is immutable); one that does not is a
    ``MirrorMismatch`` naming the key, and stays as it is for a person to look at."""
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise MirrorMismatch(
            f"{key}: the vault's bytes hash to {digest}, the manifest records {expected_sha256}; "
            "not copied (run verify on the vault)"
        )
    created = mirror.put_bytes(key, data, content_type).created
    stored = hashlib.sha256(mirror.get_bytes(key)).hexdigest()
    if stored != digest:
        raise MirrorMismatch(
            f"{key}: the mirror's copy hashes to {stored}, the vault's to {digest}"
            + ("" if created else " (the mirror held another object under this key)")
        )
    return created


def copy_stream(
    mirror: Vault, key: str, stream: BinaryIO, size: int, expected_sha256: str, content_type: str | None
) -> bool:
    """Stream ``stream`` into ``key`` of the mirror, hashing it on the way; nothing is stored
    under ``key`` unless the digest matches. True when this call created the object."""

    def key_for(digest: str) -> str:
        if digest != expected_sha256:
            raise MirrorMismatch(
                f"{key}: the bytes read from the vault hash to {digest}, the manifest records "
                f"{expected_sha256}; not copied (run verify on the vault)"
            )
        return key

    result = mirror.put_stream(stream, key_for, content_type)
    info = mirror.head(key)
    if info is None or info.size != size or (info.sha256 is not None and info.sha256 != expected_sha256):
        raise MirrorMismatch(
            f"{key}: the mirror's copy has {info.size if info else 'no'} bytes"
            f"{f' and SHA-256 {info.sha256}' if info and info.sha256 else ''}, expected {size} bytes, "
            f"SHA-256 {expected_sha256}"
        )
    return result.created


# -- the journal part --------------------------------------------------------------------------


@dataclass
class _Record:
    seq: int
    key: str
    raw: bytes
    media_id: str
    manifest_version: int
    manifest_key: str
    manifest_raw: bytes | None = None
    manifest: Manifest | None = None
    erased: bool = False  # a version a forget erased from the vault: only the record is mirrored


class _Copier:
    """Copies the objects of journal records from a vault to its mirror."""

    def __init__(
        self, vault: Vault, mirror: Vault, report: MirrorReport, concurrency: int, hook: Hook
    ) -> None:
        self.vault, self.mirror, self.report, self.hook = vault, mirror, report, hook
        self.reader = ArtifactReader(vault)
        self.concurrency = max(1, concurrency)
        # Large objects upload in parts, each buffering a few chunks: fewer of them at once.
        self.large_slots = threading.BoundedSemaphore(max(1, self.concurrency // 2))
        self._latest: dict[str, Manifest | None] = {}
        self._latest_lock = threading.Lock()

    # the newest manifest of an item: where an object went after the record was written
    def latest(self, media_id: str) -> Manifest | None:
        from mediavault.vault import manifests

        with self._latest_lock:
            if media_id in self._latest:
                return self._latest[media_id]
        manifest = manifests.latest_manifest(self.vault, media_id)
        with self._latest_lock:
            self._latest[media_id] = manifest
        return manifest

    def _present(self, key: str, size: int | None, sha256: str | None) -> bool:
        info = self.mirror.head(key)
        if info is None:
            return False
        if (size is not None and info.size != size) or (sha256 and info.sha256 and info.sha256 != sha256):
            raise MirrorMismatch(
                f"{key}: the mirror already holds {info.size} bytes"
                f"{f' with SHA-256 {info.sha256}' if info.sha256 else ''} under this key, the vault "
                f"records {size} bytes, SHA-256 {sha256}; left as it is (objects are never overwritten)"
            )
        return True

    def _source_of(self, artifact: Artifact, media_id: str) -> tuple[Callable[[], BinaryIO] | None, str]:
        """How to read an artifact's original bytes now, or (None, why not)."""
        if artifact.tier == "expired":
            return None, "expired in the vault"
        hot = self.vault.head(artifact.key)
        if hot is not None and hot.size == artifact.size:
            return (lambda: self.vault.open_read(artifact.key)), ""
        current = artifact
        if artifact.tier == "hot" or artifact.archive is None:
            # Moved since this version was written: the newest manifest says where it is now.
            latest = self.latest(media_id)
            current = next((a for a in latest.artifacts if a.key == artifact.key), None) if latest else None
            if current is None or current.tier == "expired":
                return None, "expired in the vault"
            if current.tier == "hot" or current.archive is None:
                raise KeyError(artifact.key)
        copy = current.archive
        assert copy is not None
        archive = self.reader.archive_vault(copy.tier_url)
        if archive.head(copy.key) is None:
            latest = self.latest(media_id)
            now = next((a for a in latest.artifacts if a.key == artifact.key), None) if latest else None
            if now is not None and now.tier == "expired":
                return None, "expired in the vault"
            raise KeyError(f"{copy.tier_url}{copy.key}")
        if copy.storage_class and isinstance(archive, S3Vault) and archive.restore_state(copy.key) != "ready":
            return (
                None,
                f"archived in storage class {copy.storage_class} and not thawed; copied once restored",
            )
        return (lambda: self.reader.open(current)), ""

    def forget_latest(self, media_id: str) -> None:
        with self._latest_lock:
            self._latest.pop(media_id, None)

    def copy_artifact(self, artifact: Artifact, media_id: str) -> None:
        if self._present(artifact.key, artifact.size, artifact.sha256):
            self.report.present()
            return
        for attempt in (1, 2):
            opener, why_not = self._source_of(artifact, media_id)
            if opener is None:
                self.report.skip(artifact.key, media_id, why_not)
                return
            self.hook("copy", artifact.key)
            try:
                self._copy_from(opener, artifact)
                break
            except KeyError:
                # The lifecycle moved the object between the look and the read (an archive's
                # delete of the hot copy, an expiry): look again where the newest manifest says.
                if attempt == 2:
                    raise
                self.forget_latest(media_id)
        self.report.copied(artifact.size)

    def _copy_from(self, opener: Callable[[], BinaryIO], artifact: Artifact) -> None:
        if artifact.size <= SMALL_OBJECT_BYTES:
            with opener() as stream:
                data = _read_all(stream)
            copy_small(self.mirror, artifact.key, data, artifact.content_type, artifact.sha256)
        else:
            with self.large_slots, opener() as stream:
                copy_stream(
                    self.mirror, artifact.key, stream, artifact.size, artifact.sha256, artifact.content_type
                )

    def copy_edit(self, edit: EditRef, media_id: str) -> None:
        if self._present(edit.key, None, edit.sha256):
            self.report.present()
            return
        self.hook("copy", edit.key)
        data = self.vault.get_bytes(edit.key)
        copy_small(self.mirror, edit.key, data, "application/json", edit.sha256)
        self.report.copied(len(data))

    def copy_exact(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        """A small object named by key only (manifest version, journal record, marker)."""
        self.hook("copy", key)
        if copy_small(self.mirror, key, data, content_type, None):
            self.report.copied(len(data))
        else:
            self.report.present()


def _read_records(vault: Vault, after_seq: int, limit: int) -> list[_Record]:
    """Up to ``limit`` journal records after ``after_seq``, in order, stopping at any gap."""
    records: list[_Record] = []
    start_after = journal_key(after_seq) if after_seq > 0 else None
    expected = after_seq + 1
    for key in vault.list_keys(JOURNAL_PREFIX, start_after=start_after):
        seq = parse_journal_seq(key)
        if seq is None:
            continue
        if seq != expected:
            break  # a record being written right now; the next run continues from here
        raw = vault.get_bytes(key)
        document = json.loads(raw)
        records.append(
            _Record(
                seq,
                key,
                raw,
                document["media_id"],
                int(document["manifest_version"]),
                document["manifest_key"],
            )
        )
        expected += 1
        if len(records) >= limit:
            break
    return records


def _wait_all(futures: dict[Future, tuple[str, str | None, int | None]], report: MirrorReport) -> set[str]:
    """Collect results; returns the keys that failed. Transient faults and crashes propagate
    (after every copy has settled), so the task's retry covers them."""
    failed: set[str] = set()
    transient: BaseException | None = None
    for future, (key, media_id, seq) in futures.items():
        try:
            future.result()
        except Exception as exc:
            if is_transient(exc):
                transient = transient or exc
                continue
            failed.add(key)
            report.error(key, exc, media_id, seq)
    if transient is not None:
        raise transient
    return failed


def _mirror_batch(copier: _Copier, pool: ThreadPoolExecutor, records: list[_Record]) -> int:
    """Mirror one batch of records; returns the new checkpoint (the last record fully mirrored)."""
    vault, report = copier.vault, copier.report
    checkpoint = records[0].seq - 1

    def load(record: _Record) -> None:
        try:
            record.manifest_raw = vault.get_bytes(record.manifest_key)
        except KeyError:
            newest = manifests.newest_manifest(vault, record.media_id)
            if newest is None or newest.forgotten is None:
                raise
            record.erased = True
            return
        record.manifest = Manifest.from_bytes(record.manifest_raw)

    loading = {pool.submit(load, r): (r.manifest_key, r.media_id, r.seq) for r in records}
    unreadable = _wait_all(loading, report)

    # Each key once per batch, from the newest version that names it (closest to where it is now).
    jobs: dict[str, tuple[Callable[[], None], str, int]] = {}
    needs: dict[int, set[str]] = {}
    for record in reversed(records):
        if record.manifest is None:
            continue
        keys = needs.setdefault(record.seq, set())
        for artifact in record.manifest.artifacts:
            keys.add(artifact.key)
            if artifact.key not in jobs:
                jobs[artifact.key] = (
                    lambda a=artifact, m=record.media_id: copier.copy_artifact(a, m),
                    record.media_id,
                    record.seq,
                )
        for edit in record.manifest.edits:
            keys.add(edit.key)
            if edit.key not in jobs:
                jobs[edit.key] = (
                    lambda e=edit, m=record.media_id: copier.copy_edit(e, m),
                    record.media_id,
                    record.seq,
                )
    copying = {pool.submit(job): (key, media_id, seq) for key, (job, media_id, seq) in jobs.items()}
    failed = _wait_all(copying, report)

    for record in records:
        if record.manifest_key in unreadable or needs.get(record.seq, set()) & failed:
            break  # never past a record whose objects are not all in the mirror
        try:
            if record.erased:  # the record holds ids only; what it named is gone
                copier.copy_exact(record.key, record.raw)
                checkpoint = record.seq
                report.records += 1
                continue
            assert record.manifest_raw is not None and record.manifest is not None
            copier.copy_exact(record.manifest_key, record.manifest_raw)
            if record.manifest.forgotten is not None:  # a forget reaches the mirror too
                report.erased += len(
                    erase_copy(copier.mirror, record.media_id, record.manifest_version, copier.hook)
                )
            copier.copy_exact(record.key, record.raw)
            marker = manifest_journaled_key(record.media_id, record.manifest_version)
            if vault.head(marker) is not None:
                copier.copy_exact(marker, vault.get_bytes(marker))
        except Exception as exc:
            if is_transient(exc):
                raise
            report.error(record.key, exc, record.media_id, record.seq)
            break
        checkpoint = record.seq
        report.records += 1
    report.checkpoint = max(report.checkpoint, checkpoint)
    return checkpoint


def check_identity(vault: Vault, mirror: Vault) -> None:
    """The mirror must be a copy of this vault: its ``vault.json`` (created once per vault, with
    the time it was made) is copied first and must match, so a mirror reused for another vault
    never mixes two journals."""
    try:
        descriptor = vault.get_bytes(VAULT_DESCRIPTOR)
    except KeyError:
        return
    if mirror.head(VAULT_DESCRIPTOR) is None and journal.find_tail(mirror) > 0:
        raise ConfigurationError(
            f"the mirror {mirror.url} holds a journal but no vault.json: it is not a mirror of {vault.url}"
        )
    mirror.put_bytes(VAULT_DESCRIPTOR, descriptor, "application/json")
    if mirror.get_bytes(VAULT_DESCRIPTOR) != descriptor:
        raise ConfigurationError(
            f"the mirror {mirror.url} is a copy of another vault (its vault.json differs from that of "
            f"{vault.url}); choose an empty target for this vault"
        )


def _finish_last_marker(copier: _Copier, checkpoint: int) -> None:
    """A crash between a record and its ``.journaled`` marker leaves the marker behind the
    checkpoint; copy it now (without it, a vault restored from the mirror journals that manifest
    version a second time: harmless, the journal is at-least-once, but noisy)."""
    if checkpoint <= 0:
        return
    document = json.loads(copier.mirror.get_bytes(journal_key(checkpoint)))
    marker = manifest_journaled_key(document["media_id"], int(document["manifest_version"]))
    if copier.mirror.head(marker) is None and copier.vault.head(marker) is not None:
        copier.copy_exact(marker, copier.vault.get_bytes(marker))


def mirror_journal(
    vault: Vault,
    mirror: Vault,
    max_records: int | None = None,
    batch_records: int = BATCH_RECORDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    hook: Hook | None = None,
) -> MirrorReport:
    """Mirror journal records after the mirror's checkpoint, batch by batch, until caught up,
    ``max_records`` were mirrored, or a record could not be mirrored (listed in ``errors``)."""
    started = time.monotonic()
    report = MirrorReport(vault.url, mirror.url)
    report.checkpoint_before = report.checkpoint = mirror_checkpoint(mirror)
    copier = _Copier(vault, mirror, report, concurrency, hook or _no_hook)
    _finish_last_marker(copier, report.checkpoint)
    with ThreadPoolExecutor(max_workers=copier.concurrency, thread_name_prefix="mirror") as pool:
        while max_records is None or report.records < max_records:
            limit = batch_records if max_records is None else min(batch_records, max_records - report.records)
            records = _read_records(vault, report.checkpoint, max(1, limit))
            if not records:
                break
            reached = _mirror_batch(copier, pool, records)
            if reached < records[-1].seq:
                break
    report.journal_tail = max(journal.find_tail(vault), report.checkpoint)
    report.seconds = round(time.monotonic() - started, 3)
    return report


# -- the listed part ---------------------------------------------------------------------------


def _missing(source: Iterator[str], target: Iterator[str]) -> Iterator[str]:
    """Keys of sorted ``source`` that sorted ``target`` lacks (a merge: one key of each at a time)."""
    sentinel = object()
    other: Any = next(target, sentinel)
    for key in source:
        while other is not sentinel and other < key:
            other = next(target, sentinel)
        if other is sentinel or other != key:
            yield key


def mirror_listed(
    vault: Vault,
    mirror: Vault,
    concurrency: int = DEFAULT_CONCURRENCY,
    hook: Hook | None = None,
    prefixes: tuple[str, ...] = LISTED_PREFIXES,
) -> MirrorReport:
    """Copy objects no journal record names (tokens, revocations, audit, reports) that the mirror
    lacks. They are immutable, so an object present in the mirror is left alone."""
    started = time.monotonic()
    hook = hook or _no_hook
    report = MirrorReport(vault.url, mirror.url)

    def copy(key: str) -> None:
        info = vault.head(key)
        if info is None:
            return  # removed since listed (a token store may clean up); nothing to copy
        hook("copy", key)
        if info.size <= SMALL_OBJECT_BYTES:
            data = vault.get_bytes(key)
            if copy_small(mirror, key, data, "application/json", info.sha256):
                report.copied(len(data))
        else:
            with vault.open_read(key) as stream:
                digest = info.sha256
                if digest is None:  # a local vault keeps no digest: hash it first, then stream it
                    digest = hashlib.sha256()
                    while chunk := stream.read(1024 * 1024):
                        digest.update(chunk)
                    digest = digest.hexdigest()
            with vault.open_read(key) as stream:
                copy_stream(mirror, key, stream, info.size, digest, None)
            report.copied(info.size)
        report.listed_copied += 1

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="mirror-list") as pool:
        for prefix in prefixes:
            window: dict[Future, tuple[str, str | None, int | None]] = {}
            for key in _missing(vault.list_keys(prefix), mirror.list_keys(prefix)):
                window[pool.submit(copy, key)] = (key, None, None)
                if len(window) >= 4 * max(1, concurrency):  # bounded: listings can be long
                    _wait_all(window, report)
                    window = {}
            _wait_all(window, report)
    report.seconds = round(time.monotonic() - started, 3)
    return report


# -- everything --------------------------------------------------------------------------------


def mirror_vault(
    vault: Vault,
    mirror: Vault,
    batch_records: int = BATCH_RECORDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    hook: Hook | None = None,
) -> MirrorReport:
    """One complete mirror run: identity check, the journal until caught up, then listed objects."""
    started = time.monotonic()
    check_separate(vault, mirror)
    check_identity(vault, mirror)
    report = mirror_journal(vault, mirror, batch_records=batch_records, concurrency=concurrency, hook=hook)
    report.merge(mirror_listed(vault, mirror, concurrency, hook))
    report.seconds = round(time.monotonic() - started, 3)
    return report


# -- after a restore from the mirror -----------------------------------------------------------


def adopt_hot_copies(vault: Vault, dry_run: bool = False) -> list[dict[str, Any]]:
    """After restoring a vault from its mirror when the archive tier was lost with it.

    The mirror keeps archived artifacts as their original bytes at their hot keys, but the
    restored manifests still point at archive copies. For every artifact whose archive copy cannot
    be found while its hot key holds bytes with the artifact's SHA-256, commit one manifest version
    per item marking it hot again (change ``restore``, journaled), so readers find it. Items under a
    legal hold are left alone. Returns one entry per artifact: adopted, or why not."""
    from mediavault.vault import manifests
    from mediavault.vault.hashing import sha256_stream
    from mediavault.vault.models import utc_now

    reader = ArtifactReader(vault)
    outcome: list[dict[str, Any]] = []
    for media_id in manifests.list_media_ids(vault):
        manifest = manifests.latest_manifest(vault, media_id)
        if manifest is None:
            continue
        adoptable: set[str] = set()
        for artifact in manifest.artifacts:
            if artifact.tier != "archive" or artifact.archive is None:
                continue
            archive = reader.archive_vault(artifact.archive.tier_url)
            if archive.head(artifact.archive.key) is not None:
                continue  # the archive copy exists: nothing to adopt
            entry = {"media_id": media_id, "key": artifact.key}
            info = vault.head(artifact.key)
            if info is None or info.size != artifact.size:
                outcome.append({**entry, "result": "lost: neither the archive copy nor a hot copy exists"})
                continue
            with vault.open_read(artifact.key) as stream:
                digest = sha256_stream(stream)[0]
            if digest != artifact.sha256:
                outcome.append({**entry, "result": f"not adopted: the hot copy hashes to {digest}"})
                continue
            if manifest.legal_hold:
                outcome.append({**entry, "result": "not adopted: legal hold"})
                continue
            adoptable.add(artifact.key)
            outcome.append({**entry, "result": "adopted" if not dry_run else "would adopt"})
        if not adoptable or dry_run:
            continue

        def derive(current: Manifest | None, keys: set[str] = adoptable) -> Manifest | None:
            assert current is not None
            now = utc_now()
            if current.legal_hold or not any(
                a.key in keys and a.tier == "archive" for a in current.artifacts
            ):
                return None
            updated = current.model_copy(deep=True)
            updated.created_at, updated.change = now, "restore"
            for artifact in updated.artifacts:
                if artifact.key in keys and artifact.tier == "archive":
                    artifact.tier, artifact.tier_changed_at = "hot", now
            return updated

        manifests.commit(vault, media_id, derive)
    return outcome
