"""Restore drill: prove that the mirror can rebuild what the live index serves.

A random sample of media items (seeded; the seed is in the report, so a run can be repeated) is
restored from the mirror into a scratch vault (a temporary local directory), re-indexed with a
full rebuild into a scratch MongoDB database on the live server and a scratch Tantivy index, and
compared with the live side:

* every restored object (each manifest version, the artifacts and edit overlays of the newest
  one) is hashed as it is restored and compared with the SHA-256 and size the live vault records;
* the media document of each item in the scratch index against the live one, field by field,
  except the fields an ingest writes beside the projection (``IGNORED_MEDIA_FIELDS``);
* the item's search documents (every statement: id, run, sequence, times, speaker, text, title,
  tags) in both search indexes.

Any difference fails the drill with a message listing each one. An item whose live index entry
is at another manifest version than the mirror holds (changed since the last mirror run) cannot
be compared with the live index; it is listed as skipped, its objects are still checked. The
scratch vault, database and index are removed afterwards, whether the drill passed or not.

Archived artifacts: the mirror holds their original bytes at their hot key and the drill checks
them, but the restored manifests still name the archive copies (manifests are copied byte for
byte), so the scratch re-index reads those from the live archive tier.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import secrets
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mediavault.errors import IntegrityError
from mediavault.index.index_store import INGEST_STATUS_FIELDS, UNSETTLED, MongoIndexStore
from mediavault.index.reindex import IndexTarget, full_rebuild
from mediavault.search import SearchIndex, SearchQuery
from mediavault.vault import LocalVault, Vault, journal, manifests
from mediavault.vault.keys import manifest_journaled_key, manifest_key
from mediavault.vault.models import Manifest

IGNORED_MEDIA_FIELDS = frozenset({"created_at", "last_job_id"})
"""Written by an ingest beside the projection (its clock, its job); a re-index projects the rest
from the vault alone, so every other field must be equal."""
UNSETTLED_FIELDS = frozenset(INGEST_STATUS_FIELDS)
"""Also ignored while the live item has an ingest in flight or failed (MongoDB alone records it)."""
HIT_FIELDS = (
    "id",
    "media_id",
    "run_id",
    "seq",
    "start",
    "end",
    "speaker",
    "speaker_name",
    "text",
    "title",
    "tags",
)
SEARCH_PAGE = 200
MAX_SEARCH_OFFSET = 10_000
"""Search pages stop here (the query model's bound): statements beyond are compared by count only."""
DIFFERENCES_IN_MESSAGE = 20
VALUE_SHOWN = 120


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_SHOWN else text[: VALUE_SHOWN - 1] + "…"


@dataclass
class DrillReport:
    mirror: str
    seed: int
    mirror_media: int = 0
    sample: list[str] = field(default_factory=list)
    restored_objects: int = 0
    restored_bytes: int = 0
    compared: int = 0
    statements_compared: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    inconclusive: str | None = None
    rebuild: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences and not self.inconclusive

    def differ(self, media_id: str, what: str, detail: str, key: str | None = None) -> None:
        self.differences.append({"media_id": media_id, "what": what, "key": key, "detail": detail})

    def skip(self, media_id: str, reason: str, key: str | None = None) -> None:
        self.skipped.append({"media_id": media_id, "key": key, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def failure_message(self) -> str:
        if not self.differences and self.inconclusive:
            return f"restore drill inconclusive (seed {self.seed}): {self.inconclusive}"
        lines = [
            f"restore drill failed: {len(self.differences)} difference(s) between the mirror "
            f"{self.mirror} and the live vault/index (seed {self.seed}, {len(self.sample)} media item(s)):"
        ]
        for d in self.differences[:DIFFERENCES_IN_MESSAGE]:
            where = f" {d['key']}" if d["key"] else ""
            lines.append(f"- {d['media_id']}: {d['what']}{where}: {d['detail']}")
        if len(self.differences) > DIFFERENCES_IN_MESSAGE:
            lines.append(f"- … and {len(self.differences) - DIFFERENCES_IN_MESSAGE} more (see the report)")
        return "\n".join(lines)


def choose_sample(media_ids: list[str], count: int | None, percent: float | None, seed: int) -> list[str]:
    """``percent`` of the items (rounded up) when given, else ``count``; at least one item when
    the mirror has any and the request is not zero. The same seed picks the same items."""
    if not media_ids:
        return []
    if percent is not None:
        wanted = math.ceil(len(media_ids) * max(0.0, min(percent, 100.0)) / 100)
    else:
        wanted = max(0, count if count is not None else 1)
    wanted = min(len(media_ids), wanted)
    return sorted(random.Random(seed).sample(sorted(media_ids), wanted))


# -- restoring ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _restore_object(mirror: Vault, scratch: Vault, key: str, content_type: str | None) -> tuple[str, int]:
    """Stream one object from the mirror into the scratch vault as it is (it is hashed on the way,
    and compared afterwards: a restore gives what the mirror holds, damaged or not)."""
    with mirror.open_read(key) as stream:
        result = scratch.put_stream(stream, lambda _sha: key, content_type)
    return result.sha256, result.size


def restore_media(
    mirror: Vault, scratch: Vault, live_vault: Vault, media_id: str, report: DrillReport
) -> Manifest | None:
    """Copy one item from the mirror into ``scratch``: every manifest version, then the artifacts
    and edit overlays of the newest one, each compared with what the live vault records. Returns
    the newest mirrored manifest (None when it cannot be read)."""
    versions = manifests.manifest_versions(mirror, media_id)
    for version in versions:
        key = manifest_key(media_id, version)
        data = mirror.get_bytes(key)
        scratch.put_bytes(key, data, "application/json")
        report.restored_objects += 1
        report.restored_bytes += len(data)
        try:
            live = live_vault.get_bytes(key)
        except KeyError:
            report.differ(media_id, "manifest", "in the mirror, not in the live vault", key)
            continue
        if _sha256(data) != _sha256(live):
            report.differ(
                media_id, "manifest", f"restored SHA-256 {_sha256(data)}, live vault {_sha256(live)}", key
            )
    if not versions:
        report.differ(media_id, "manifest", "no manifest version in the mirror")
        return None
    newest = manifest_key(media_id, versions[-1])
    try:
        mirrored = Manifest.from_bytes(scratch.get_bytes(newest))
    except ValueError as exc:
        report.differ(media_id, "manifest", f"the mirrored manifest cannot be read: {exc}", newest)
        return None
    try:
        live_manifest = manifests.read_manifest(live_vault, media_id, mirrored.version)
    except (KeyError, ValueError):
        live_manifest = mirrored  # already reported; still check the objects against what it names
    live_artifacts = {a.key: a for a in live_manifest.artifacts}
    for artifact in mirrored.artifacts:
        expected = live_artifacts.get(artifact.key, artifact)
        if artifact.tier == "expired":
            continue
        if mirror.head(artifact.key) is None:
            if artifact.tier == "archive" and artifact.archive and artifact.archive.storage_class:
                report.skip(media_id, "archived in a cold storage class; not in the mirror yet", artifact.key)
            else:
                report.differ(media_id, "object", "not in the mirror", artifact.key)
            continue
        digest, size = _restore_object(mirror, scratch, artifact.key, artifact.content_type)
        report.restored_objects += 1
        report.restored_bytes += size
        if (digest, size) != (expected.sha256, expected.size):
            report.differ(
                media_id,
                "object",
                f"restored {size} bytes with SHA-256 {digest}; the live manifest records {expected.size} "
                f"bytes, SHA-256 {expected.sha256}",
                artifact.key,
            )
    live_edits = {e.key: e for e in live_manifest.edits}
    for edit in mirrored.edits:
        expected_sha = live_edits.get(edit.key, edit).sha256
        try:
            digest, size = _restore_object(mirror, scratch, edit.key, "application/json")
        except KeyError:
            report.differ(media_id, "edit", "not in the mirror", edit.key)
            continue
        report.restored_objects += 1
        report.restored_bytes += size
        if digest != expected_sha:
            report.differ(
                media_id,
                "edit",
                f"restored SHA-256 {digest}; the live manifest records {expected_sha}",
                edit.key,
            )
    return mirrored


# -- comparing ---------------------------------------------------------------------------------


def comparable(document: dict[str, Any], unsettled: bool) -> dict[str, Any]:
    ignored = IGNORED_MEDIA_FIELDS | (UNSETTLED_FIELDS if unsettled else frozenset())
    return {k: v for k, v in document.items() if k not in ignored}


def _statements(search: SearchIndex, media_id: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """(total, the first pages of statements by id) of one media item."""
    found: dict[str, dict[str, Any]] = {}
    offset, total = 0, 0
    while offset <= MAX_SEARCH_OFFSET:
        result = search.search(
            SearchQuery(
                media_id=media_id,
                sort="time",
                limit=SEARCH_PAGE,
                offset=offset,
                facets=False,
                highlight=False,
                media_limit=0,
            )
        )
        total = result.total
        for hit in result.hits:
            values = hit.model_dump()
            found[hit.id] = {name: values[name] for name in HIT_FIELDS}
        offset += SEARCH_PAGE
        if not result.hits or offset >= total:
            break
    return total, found


def compare_documents(
    media_id: str, live: dict[str, Any], restored: dict[str, Any], report: DrillReport
) -> None:
    unsettled = live.get("status") in UNSETTLED
    a, b = comparable(live, unsettled), comparable(restored, unsettled)
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            report.differ(
                media_id,
                "media-document",
                f"{name}: live {_short(a.get(name))}, restored {_short(b.get(name))}",
            )


def compare_statements(media_id: str, live: SearchIndex, restored: SearchIndex, report: DrillReport) -> None:
    live_total, live_hits = _statements(live, media_id)
    restored_total, restored_hits = _statements(restored, media_id)
    report.statements_compared += min(len(live_hits), len(restored_hits))
    if live_total != restored_total:
        report.differ(
            media_id,
            "search",
            f"the live index holds {live_total} statement(s), the restored one {restored_total}",
        )
    for statement_id in sorted(set(live_hits) | set(restored_hits)):
        a, b = live_hits.get(statement_id), restored_hits.get(statement_id)
        if a == b:
            continue
        if a is None or b is None:
            if len(live_hits) == len(restored_hits) or max(live_total, restored_total) <= MAX_SEARCH_OFFSET:
                where = "live" if b is None else "restored"
                report.differ(media_id, "search", f"statement {statement_id} only in the {where} index")
            continue
        fields = [name for name in HIT_FIELDS if a[name] != b[name]]
        report.differ(
            media_id,
            "search",
            f"statement {statement_id}: "
            + "; ".join(f"{n}: live {_short(a[n])}, restored {_short(b[n])}" for n in fields),
        )


def _journal_seq(mirror: Vault, media_id: str, version: int) -> int | None:
    """The journal record of a manifest version, from its ``.journaled`` marker in the mirror."""
    try:
        return int(json.loads(mirror.get_bytes(manifest_journaled_key(media_id, version)))["seq"])
    except (KeyError, ValueError, TypeError):
        return None


def compare_media(
    media_id: str,
    mirrored: Manifest,
    mirror: Vault,
    live: IndexTarget,
    restored: IndexTarget,
    report: DrillReport,
) -> None:
    """Compare one restored item with the live index, when the live index has caught up with the
    version the mirror holds (an index that lags the vault is not a backup problem)."""
    generation = live.store.live_generation()
    if generation is None:
        report.skip(media_id, "there is no live index to compare with")
        return
    checkpoint = live.store.checkpoint(generation)
    seq = _journal_seq(mirror, media_id, mirrored.version) or journal.find_tail(mirror)
    if checkpoint < seq:
        report.skip(
            media_id,
            f"the live index has not applied journal record {seq} (v{mirrored.version}) yet: its "
            f"checkpoint is {checkpoint}; objects checked, index not compared",
        )
        return
    live_doc = live.store.media(media_id)
    restored_doc = restored.store.media(media_id)
    if live_doc is None:
        held = next(
            (q["error"] for q in live.store.quarantined(generation) if q["media_id"] == media_id), None
        )
        if held is not None:
            report.skip(media_id, f"quarantined in the live index: {held}")
        elif restored_doc is not None:
            report.differ(media_id, "media-document", "in the restored index, missing from the live index")
        else:
            report.skip(media_id, "in neither index")
        return
    if live_doc.get("manifest_version") != mirrored.version:
        report.skip(
            media_id,
            f"changed since the last mirror run: the live index has v{live_doc.get('manifest_version')}, "
            f"the mirror v{mirrored.version}; objects checked, index not compared",
        )
        return
    report.compared += 1
    if restored_doc is None:
        why = next(
            (q["error"] for q in restored.store.quarantined(None) if q["media_id"] == media_id),
            "not projected",
        )
        report.differ(media_id, "media-document", f"missing from the restored index: {why}")
    else:
        compare_documents(media_id, live_doc, restored_doc, report)
    compare_statements(media_id, live.search, restored.search, report)


# -- the drill ---------------------------------------------------------------------------------


def run_drill(
    mirror: Vault,
    live: IndexTarget,
    count: int | None = 5,
    percent: float | None = None,
    seed: int | None = None,
    workdir: Path | None = None,
) -> DrillReport:
    """Restore a sample from ``mirror``, re-index it beside the live index and compare. Scratch
    state (a temp directory under ``workdir``, a ``<database>_drill_<id>`` database on the live
    MongoDB server) is removed at the end, also when something fails."""
    from mediavault.search.tantivy_index import TantivySearchIndex

    started = time.monotonic()
    report = DrillReport(mirror.url, seed if seed is not None else secrets.randbits(32))
    media_ids = manifests.list_media_ids(mirror)
    report.mirror_media = len(media_ids)
    report.sample = choose_sample(media_ids, count, percent, report.seed)
    for media_id in list(report.sample):  # an item erased on request has nothing left to restore
        if manifests.latest_manifest(mirror, media_id) is None:
            report.sample.remove(media_id)
            report.skip(media_id, "erased on request (forget)")
        elif manifests.latest_manifest(live.vault, media_id) is None:
            report.sample.remove(media_id)
            report.skip(media_id, "erased on request since the last mirror run (the mirror erases it next)")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="mediavault-drill-", dir=workdir))
    live_database = live.store.database
    scratch_name = f"{live_database.name}_drill_{uuid.uuid4().hex[:10]}"
    search: TantivySearchIndex | None = None
    try:
        scratch = LocalVault(root / "vault", fsync=False)
        mirrored = {m: restore_media(mirror, scratch, live.vault, m, report) for m in report.sample}
        search = TantivySearchIndex(root / "search")
        restored = IndexTarget(scratch, MongoIndexStore(live_database.client[scratch_name]), search)
        if report.sample:
            report.rebuild = full_rebuild(restored).as_dict()
        for media_id, manifest in mirrored.items():
            if manifest is not None:
                compare_media(media_id, manifest, mirror, live, restored, report)
        if report.sample and not report.compared and not report.differences:
            report.inconclusive = (
                "no sampled item could be compared with the live index (see skipped): run the mirror "
                "and the re-index, then the drill again"
            )
    finally:
        with contextlib.suppress(Exception):
            live_database.client.drop_database(scratch_name)
        if search is not None:
            with contextlib.suppress(Exception):
                search.destroy()
        shutil.rmtree(root, ignore_errors=True)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def check(report: DrillReport) -> DrillReport:
    """Raise ``IntegrityError`` listing every difference; the report when there is none."""
    if not report.ok:
        raise IntegrityError(report.failure_message())
    return report
