"""Re-index: project the vault into MongoDB and the search index.

* Full rebuild: build generation N+1 beside the live one, catch up with the journal, verify counts
  and digests against what was projected from the vault, switch atomically, keep N for rollback.
  A rebuild that fails or is killed never switches, so the old generation keeps serving.
* Incremental: replay the journal from the live generation's checkpoint (idempotent).
* Targeted: re-project chosen media items into the live generation.

Every mode runs under the re-index lease (one holder across processes and machines, renewed while
it works) and first finishes or abandons a switch that a crash interrupted. A media item that
cannot be projected is quarantined (recorded with its reason, left out of the generation) instead
of failing the run; every later run retries it, so a fix heals it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mediavault.errors import (
    ConfigurationError,
    ConflictError,
    IntegrityError,
    MediavaultError,
    TransientError,
    is_transient,
)
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.projection import DigestSet, project
from mediavault.search import SearchIndex
from mediavault.vault import journal, manifests
from mediavault.vault.base import Vault

JOURNAL_CHUNK = 500
PROJECTION_ATTEMPTS = 5
Progress = Callable[[int, int], None]


@dataclass
class IndexTarget:
    vault: Vault
    store: MongoIndexStore
    search: SearchIndex


@dataclass
class ProjectedDigests:
    """What was projected into a generation, per media item, so replays replace old entries."""

    media: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    statements: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)

    def forget(self, media_id: str) -> None:
        self.media.pop(media_id, None)
        self.statements.pop(media_id, None)

    def merge(self, part: ProjectedDigests) -> None:
        self.media.update(part.media)
        self.statements.update(part.statements)
        for media_id in part.media:
            self.quarantined.pop(media_id, None)
        self.quarantined.update(part.quarantined)

    def totals(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        def total(values: Iterable[tuple[int, int, int]]) -> tuple[int, int, int]:
            count = a = b = 0
            for c, x, y in values:
                count, a, b = count + c, a + x, b + y
            return count, a, b

        return total(self.media.values()), total(self.statements.values())


def project_media(
    target: IndexTarget,
    generation: int,
    media_ids: Iterable[str],
    replace: bool,
    digests: ProjectedDigests | None = None,
) -> int:
    """Project media items into a generation; returns how many statements were written.

    An item that fails for a reason retrying cannot fix is quarantined (see ``quarantined``);
    transient faults propagate, so the caller's retry covers them."""
    written, projected = 0, []
    for media_id in media_ids:
        try:
            written += _project_settled(target, generation, media_id, replace, digests)
            projected.append(media_id)
        except Exception as exc:
            if is_transient(exc):
                raise
            _quarantine(target, generation, media_id, exc, digests)
    target.store.release_quarantine(generation, projected)
    return written


def _project_settled(
    target: IndexTarget, generation: int, media_id: str, replace: bool, digests: ProjectedDigests | None
) -> int:
    """Project one item. A failure while a concurrent commit changed the item (the lifecycle
    archived or expired an object the older manifest named as hot) is retried from the newer
    manifest; only a failure on an unchanged manifest is the record's own."""
    for attempt in range(1, PROJECTION_ATTEMPTS + 1):
        seen: list[int] = []
        try:
            return _project_one(target, generation, media_id, replace or attempt > 1, digests, seen)
        except Exception as exc:
            if is_transient(exc) or attempt == PROJECTION_ATTEMPTS or not seen:
                raise
            if manifests.manifest_versions(target.vault, media_id)[-1:] == seen:
                raise
    raise AssertionError("unreachable")


def _project_one(
    target: IndexTarget,
    generation: int,
    media_id: str,
    replace: bool,
    digests: ProjectedDigests | None,
    seen_version: list[int] | None = None,
) -> int:
    if replace:
        target.search.delete_media(generation, media_id)
    projected = project(target.vault, media_id)
    if projected is None:
        target.store.delete(generation, media_id)
        if digests is not None:
            digests.forget(media_id)
        return 0
    projection, batches = projected
    if seen_version is not None:
        seen_version.append(projection.media_doc["manifest_version"])
    target.store.upsert(generation, [projection.media_doc])
    statement_digest, statements = DigestSet(), 0
    for batch in batches:  # the media's own search document (title, description, tags), then statements
        for document in batch:
            document["digest_a"], document["digest_b"] = statement_digest.add(document)
            statements += document["kind"] != "media"
        target.search.add(generation, batch)
    if digests is not None:
        media_digest = DigestSet()
        media_digest.add(projection.media_doc)
        digests.media[media_id] = media_digest.as_tuple()
        digests.statements[media_id] = statement_digest.as_tuple()
        digests.quarantined.pop(media_id, None)
    return statements


def _quarantine(
    target: IndexTarget, generation: int, media_id: str, exc: Exception, digests: ProjectedDigests | None
) -> None:
    """Leave the item out of the generation (no partial documents) and record why."""
    reason = str(exc) if isinstance(exc, MediavaultError) else f"{type(exc).__name__}: {exc}"
    target.search.delete_media(generation, media_id)
    target.store.delete(generation, media_id)
    target.store.quarantine(generation, media_id, reason)
    if digests is not None:
        digests.forget(media_id)
        digests.quarantined[media_id] = reason


def chunks_of(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


@dataclass
class RebuildReport:
    generation: int
    previous: int | None
    media: int
    statements: int
    checkpoint: int
    caught_up_records: int
    seconds: float
    switched: bool
    quarantined: list[dict[str, str]] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)  # forgotten items purged (see finish_rebuild)
    dropped_generations: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def quarantine_list(problems: dict[str, str]) -> list[dict[str, str]]:
    return [{"media_id": m, "error": e} for m, e in sorted(problems.items())]


# -- the lease ---------------------------------------------------------------------------------
LEASE_TTL = 120.0


class LeaseBusy(ConflictError):
    """Another re-index holds the lease."""


class LeaseLost(TransientError):
    """This re-index lost its lease (it could not renew in time); it must not switch."""


class RebuildLease:
    """The re-index lease in MongoDB, renewed by a background thread while held.

    One holder at a time across processes and machines. ``check()`` fences the switch: a holder
    whose lease ran out (a long pause, a lost MongoDB) stops before changing what readers see."""

    def __init__(self, store: MongoIndexStore, ttl: float = LEASE_TTL, holder: str | None = None) -> None:
        self.store, self.ttl = store, ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._lost = False
        self._thread: threading.Thread | None = None
        self._depth = 0
        self.external = False

    def acquire(self, wait_seconds: float = 0.0) -> RebuildLease:
        deadline = time.monotonic() + wait_seconds
        while self.store.acquire_lease(self.holder, self.ttl) is None:
            if time.monotonic() >= deadline:
                current = self.store.lease() or {}
                raise LeaseBusy(
                    f"another re-index holds the lease ({current.get('holder')}, until "
                    f"{current.get('expires_at')}); try again when it has finished"
                )
            time.sleep(min(1.0, self.ttl / 10))
        self._thread = threading.Thread(target=self._renew, name="reindex-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.store.renew_lease(self.holder, self.ttl):
                    self._lost = True
                    return
            except Exception:  # MongoDB unreachable: the lease runs out unless a later renewal lands
                continue

    def check(self) -> None:
        current = self.store.lease() or {}
        if self._lost or current.get("holder") != self.holder:
            raise LeaseLost(f"the re-index lease of {self.holder} ran out; nothing was switched")

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.store.release_lease(self.holder)

    def __enter__(self) -> RebuildLease:
        if self._depth == 0 and self._thread is None and not self.external:
            self.acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and not self.external:
            self.release()


def held_by(store: MongoIndexStore, holder: str) -> RebuildLease:
    """A handle on a lease acquired elsewhere (a flow holds and renews it; its tasks check it)."""
    lease = RebuildLease(store, holder=holder)
    lease.external = True
    return lease


def recover_switch(target: IndexTarget) -> str | None:
    """Finish or abandon a switch a crash interrupted; returns what was done, if anything."""
    pending = target.store.pending_switch()
    if not pending:
        return None
    if target.search.live_generation() == pending["generation"]:
        target.store.apply_switch(pending["generation"], pending.get("previous"), pending.get("checkpoint"))
        return f"finished the interrupted switch to generation {pending['generation']}"
    target.store.abandon_switch()
    return f"abandoned the interrupted switch to generation {pending['generation']}"


def consistent(target: IndexTarget) -> bool:
    """True when MongoDB and search agree on the live generation."""
    return target.store.live_generation() == target.search.live_generation()


def start_rebuild(target: IndexTarget) -> tuple[int, int, list[str]]:
    """Create the next generation; returns (generation, journal position, media ids to project)."""
    recover_switch(target)
    # Keep what either side serves or keeps for rollback: after a lost MongoDB or a crash between
    # the two switches, the two sides disagree, and search's live generation must keep serving.
    protected = {
        target.store.live_generation(),
        target.store.previous_generation(),
        target.search.live_generation(),
        target.search.previous_generation(),
    }
    for stale in set(target.search.generations()) | set(target.store.generations()):
        if stale not in protected:
            target.search.drop_generation(stale)
            target.store.drop_generation(stale)
    known = [g for g in protected if g is not None]
    generation = max(
        [
            target.store.next_generation(),
            *(g + 1 for g in target.search.generations()),
            *(g + 1 for g in known),
        ]
    )
    target.store.create_generation(generation)
    target.search.create_generation(generation)
    start_seq = journal.find_tail(target.vault)
    return generation, start_seq, manifests.list_media_ids(target.vault)


def catch_up(
    target: IndexTarget, generation: int, after_seq: int, digests: ProjectedDigests
) -> tuple[int, int]:
    """Replay journal records after ``after_seq`` into ``generation``; returns (last seq, records)."""
    last, count = after_seq, 0
    pending: list[str] = []
    for record in journal.read(target.vault, after_seq):
        last, count = record.seq, count + 1
        if record.media_id not in pending:
            pending.append(record.media_id)
        if len(pending) >= JOURNAL_CHUNK:
            project_media(target, generation, pending, replace=True, digests=digests)
            pending = []
    project_media(target, generation, pending, replace=True, digests=digests)
    return last, count


def verify_generation(target: IndexTarget, generation: int, digests: ProjectedDigests) -> None:
    """Counts and digest sums of what is stored must equal what was projected from the vault."""
    expected_media, expected_statements = digests.totals()
    stored_media = target.store.summary(generation)
    stored_statements = target.search.summary(generation)
    if stored_media != expected_media:
        raise IntegrityError(
            f"generation {generation}: MongoDB holds {stored_media[0]} media documents "
            f"(digest mismatch or count), expected {expected_media[0]}"
        )
    if stored_statements != expected_statements:
        raise IntegrityError(
            f"generation {generation}: search holds {stored_statements[0]} documents, "
            f"expected {expected_statements[0]} (or their digests differ)"
        )


def finish_rebuild(
    target: IndexTarget,
    generation: int,
    start_seq: int,
    digests: ProjectedDigests,
    started: float,
    before_switch: Callable[[], None] | None = None,
    lease: RebuildLease | None = None,
    between_switches: Callable[[], None] | None = None,
) -> RebuildReport:
    """Catch up with the journal, verify, then switch search and MongoDB to the new generation.

    The switch is recorded first (``begin_switch``), so a crash between the search switch and
    MongoDB's is finished by the next run (``recover_switch``)."""
    target.search.commit(generation)  # other workers' documents become visible before catch-up replaces them
    last_seq, replayed = catch_up(target, generation, start_seq, digests)
    target.search.commit(generation)
    verify_generation(target, generation, digests)
    if before_switch:
        before_switch()
    if lease is not None:
        lease.check()
    previous = target.store.live_generation()
    applied_up_to = target.store.checkpoint(previous) if previous is not None else last_seq
    target.store.begin_switch(generation, previous, last_seq)
    target.search.switch(generation)
    if between_switches:
        between_switches()
    target.store.apply_switch(generation, previous, last_seq)
    if previous is not None:
        target.store.carry_ingest_status(previous, generation)
    # A forget the previous generation never applied (its own index step did not run) is still
    # there, and a rollback would serve it: purge it everywhere and keep no other generation.
    erased = _forgotten_between(target, applied_up_to, last_seq)
    dropped: list[int] = []
    if erased:
        _remove_everywhere(target, erased)
        dropped = _drop_other_generations(target, generation)
        previous = None
    elif previous is None and set(target.search.generations()) - {generation}:
        # MongoDB lost its state: nothing says which journal records (forgets included) the
        # search generations left from before saw, so none of them is kept.
        dropped = _drop_other_generations(target, generation)
    media_total, search_total = digests.totals()
    return RebuildReport(
        generation,
        previous,
        media_total[0],
        search_total[0] - media_total[0],  # each media item has one search document of its own
        last_seq,
        replayed,
        round(time.monotonic() - started, 3),
        True,
        quarantine_list(digests.quarantined),
        erased,
        dropped,
    )


def _forgotten_between(target: IndexTarget, after_seq: int, up_to_seq: int) -> list[str]:
    """Media ids of the forget records after ``after_seq`` up to ``up_to_seq``."""
    if up_to_seq <= after_seq:
        return []
    forgotten: list[str] = []
    for record in journal.read(target.vault, after_seq):
        if record.seq > up_to_seq:
            break
        if record.change == "forget" and record.media_id not in forgotten:
            forgotten.append(record.media_id)
    return forgotten


def full_rebuild(
    target: IndexTarget,
    chunk_size: int = 64,
    progress: Progress | None = None,
    before_switch: Callable[[], None] | None = None,
    lease: RebuildLease | None = None,
    between_switches: Callable[[], None] | None = None,
) -> RebuildReport:
    """Rebuild everything beside the live generation (single process; the flow maps chunks)."""
    with lease or RebuildLease(target.store) as held:
        started = time.monotonic()
        generation, start_seq, media_ids = start_rebuild(target)
        digests = ProjectedDigests()
        done = 0
        for chunk in chunks_of(media_ids, chunk_size):
            project_media(target, generation, chunk, replace=False, digests=digests)
            done += len(chunk)
            if progress:
                progress(done, len(media_ids))
        return finish_rebuild(
            target, generation, start_seq, digests, started, before_switch, held, between_switches
        )


def incremental(target: IndexTarget, lease: RebuildLease | None = None) -> dict[str, Any]:
    """Apply journal records after the live generation's checkpoint. Safe to run any time.

    Quarantined items are retried first; a record that cannot be projected quarantines its item
    and the checkpoint moves past it, so nothing stalls behind a bad record."""
    with lease or RebuildLease(target.store) as held:
        recovered = recover_switch(target)
        generation = target.store.live_generation()
        if generation is None or not consistent(target):
            report = full_rebuild(target, lease=held)
            return {"mode": "full", "recovered": recovered, **report.as_dict()}
        repaired = manifests.sweep_unjournaled(target.vault)
        checkpoint = target.store.checkpoint(generation)
        retried = [q["media_id"] for q in target.store.quarantined(generation)]
        if retried:
            project_media(target, generation, retried, replace=True)
            target.search.commit(generation)
        applied, media_touched = 0, 0
        batch: list[Any] = []

        def flush() -> None:
            nonlocal media_touched
            media_ids = list(dict.fromkeys(r.media_id for r in batch))
            project_media(target, generation, media_ids, replace=True)
            target.search.commit(generation)
            held.check()
            target.store.set_checkpoint(generation, batch[-1].seq)
            media_touched += len(media_ids)

        for record in journal.read(target.vault, checkpoint):
            if record.change == "forget":
                # A forget whose own index step never ran (it died, or had no index at hand):
                # deleting the item from the live generation is not enough, since the previous
                # generation and the live one's search segments still hold its text. A rebuild
                # purges it (finish_rebuild); the checkpoint stays before the forget until then.
                report = full_rebuild(target, lease=held)
                return {"mode": "full", "reason": "forget", "recovered": recovered, **report.as_dict()}
            batch.append(record)
            applied += 1
            if len(batch) >= JOURNAL_CHUNK:
                flush()
                batch = []
        if batch:
            flush()
        quarantined = target.store.quarantined(generation)
        return {
            "mode": "incremental",
            "generation": generation,
            "from_checkpoint": checkpoint,
            "records": applied,
            "media": media_touched,
            "checkpoint": target.store.checkpoint(generation),
            "recovered": recovered,
            "journal_repaired": len(repaired),
            "retried": len(retried),
            "quarantined": [{"media_id": q["media_id"], "error": q["error"]} for q in quarantined],
        }


def reindex_media(target: IndexTarget, media_ids: list[str]) -> int:
    """Re-project chosen media items into the live generation (edits apply at once this way)."""
    generation = target.store.live_generation()
    if generation is None:
        return 0
    written = project_media(target, generation, media_ids, replace=True)
    target.search.commit(generation)
    return written


def select_media(
    target: IndexTarget, media_id: str | None = None, prefix: str | None = None, owner: str | None = None
) -> list[str]:
    """Media ids for a targeted re-index: one id, an id prefix, or an owner (as in the vault)."""
    if media_id:
        return [media_id]
    ids = manifests.list_media_ids(target.vault)
    if prefix:
        ids = [m for m in ids if m.startswith(prefix)]
    if owner is not None:
        selected = []
        for media_id_ in ids:
            projected = project(target.vault, media_id_)
            if projected and projected[0].media_doc["owner"] == owner:
                selected.append(media_id_)
        ids = selected
    return ids


def rollback(target: IndexTarget, lease: RebuildLease | None = None) -> int:
    """Make the previous generation live again on both sides (recorded first, like a switch)."""
    with lease or RebuildLease(target.store) as held:
        recover_switch(target)
        live, previous = target.store.live_generation(), target.store.previous_generation()
        if previous is None or target.search.previous_generation() != previous or not consistent(target):
            raise ConfigurationError(
                f"cannot roll back: MongoDB keeps generation {previous}, search keeps "
                f"{target.search.previous_generation()} (run a full re-index instead)"
            )
        held.check()
        target.store.begin_switch(previous, live, None)
        target.search.rollback()
        target.store.apply_switch(previous, live, None)
        return previous


def purge_media(target: IndexTarget, media_id: str, wait_seconds: float = 600.0) -> dict[str, Any]:
    """Remove an erased item from the index at once, then rebuild, so that no generation kept for
    rollback (nor a deleted document left in a search segment) still holds its text.

    Run after the item's tombstone is committed: the rebuild projects it as absent."""
    with RebuildLease(target.store).acquire(wait_seconds) as lease:
        removed = _remove_everywhere(target, [media_id])
        return {**removed, **_rebuild_alone(target, lease)}


def _remove_everywhere(target: IndexTarget, media_ids: list[str]) -> dict[str, int]:
    """Erased items out of every generation of the index and search, and their job events."""
    removed: dict[str, int] = {}
    for media_id in media_ids:
        for name, count in target.store.purge_media(media_id).items():
            removed[name] = removed.get(name, 0) + count
        for generation in target.search.generations():
            target.search.delete_media(generation, media_id)
    for generation in target.search.generations():
        target.search.commit(generation)
    return removed


def _rebuild_alone(target: IndexTarget, lease: RebuildLease) -> dict[str, Any]:
    """A full rebuild that leaves no other generation: the ones from before an erasure go, and with
    them a rollback to a time the item was there (and any segment still holding its text)."""
    report = full_rebuild(target, lease=lease)
    dropped = {*report.dropped_generations, *_drop_other_generations(target, report.generation)}
    return {"rebuilt_generation": report.generation, "dropped_generations": sorted(dropped)}


def _drop_other_generations(target: IndexTarget, live: int) -> list[int]:
    """Drop every generation but the live one, the one kept for rollback included."""
    dropped = {target.search.drop_previous()} - {None}
    target.store.apply_switch(live, None, None)
    for generation in {*target.search.generations(), *target.store.generations()} - {live}:
        target.search.drop_generation(generation)
        target.store.drop_generation(generation)
        dropped.add(generation)
    return sorted(g for g in dropped if g is not None)


def describe_reindex(result: dict[str, Any]) -> list[str]:
    """What a re-index did, in sentences for a person (the CLI and the flow's artifact)."""
    mode = result.get("mode")
    lines: list[str] = []
    if result.get("recovered"):
        lines.append(f"first {result['recovered']}")
    if mode == "skipped":
        lines.append(f"skipped: {result.get('reason')}")
    elif mode == "rollback":
        lines.append(f"rolled back: generation {result['generation']} is live again")
    elif mode == "targeted":
        lines.append(f"re-indexed {result['media']:,} media item(s): {result['statements']:,} statement(s)")
    elif mode == "incremental":
        records, before, after = result["records"], result["from_checkpoint"], result["checkpoint"]
        if records:
            lines.append(
                f"applied {records:,} journal record(s) to {result['media']:,} media item(s) in "
                f"generation {result['generation']} (journal position {before} → {after})"
            )
        else:
            lines.append(f"generation {result['generation']} is up to date (journal position {after})")
        if result.get("retried"):
            lines.append(f"retried {result['retried']:,} quarantined item(s)")
        if result.get("journal_repaired"):
            lines.append(f"repaired {result['journal_repaired']:,} missing journal record(s)")
    elif mode == "full":
        previous = result.get("previous")
        why = " (an item was forgotten)" if result.get("reason") == "forget" else ""
        lines.append(
            f"full rebuild{why}: generation {result['generation']} is live"
            + (f", replacing generation {previous}" if previous is not None else "")
            + f": {result['media']:,} media item(s), {result['statements']:,} statement(s) in "
            f"{result['seconds']:.1f} s"
        )
        if result.get("caught_up_records"):
            lines.append(f"caught up on {result['caught_up_records']:,} journal record(s) written meanwhile")
        if result.get("erased"):
            lines.append(f"purged {len(result['erased']):,} forgotten item(s)")
        if result.get("dropped_generations"):
            dropped = ", ".join(str(g) for g in result["dropped_generations"])
            lines.append(f"dropped old generation(s) {dropped}")
    else:
        lines.append(", ".join(f"{key}: {value}" for key, value in result.items()))
    return lines
