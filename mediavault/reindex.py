"""Re-index: project the vault into MongoDB and the search index.

* Full rebuild: build generation N+1 beside the live one, catch up with the journal, verify counts
  and digests against what was projected from the vault, switch atomically, keep N for rollback.
  A rebuild that fails or is killed never switches, so the old generation keeps serving.
* Incremental: replay the journal from the live generation's checkpoint (idempotent).
* Targeted: re-project chosen media items into the live generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mediavault import journal, manifests
from mediavault.errors import IntegrityError
from mediavault.index_store import MongoIndexStore
from mediavault.projection import DigestSet, project
from mediavault.search import SearchIndex
from mediavault.vault.base import Vault

JOURNAL_CHUNK = 500
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
    """Project media items into a generation; returns how many statements were written."""
    written = 0
    for media_id in media_ids:
        if replace:
            target.search.delete_media(generation, media_id)
        projected = project(target.vault, media_id)
        if projected is None:
            target.store.delete(generation, media_id)
            if digests is not None:
                digests.media.pop(media_id, None)
                digests.statements.pop(media_id, None)
            continue
        projection, batches = projected
        target.store.upsert(generation, [projection.media_doc])
        statement_digest = DigestSet()
        for batch in batches:
            for document in batch:
                document["digest_a"], document["digest_b"] = statement_digest.add(document)
            target.search.add(generation, batch)
        written += statement_digest.count
        if digests is not None:
            media_digest = DigestSet()
            media_digest.add(projection.media_doc)
            digests.media[media_id] = media_digest.as_tuple()
            digests.statements[media_id] = statement_digest.as_tuple()
    return written


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

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def start_rebuild(target: IndexTarget) -> tuple[int, int, list[str]]:
    """Create the next generation; returns (generation, journal position, media ids to project)."""
    live, previous = target.store.live_generation(), (target.store.state() or {}).get("previous")
    for stale in set(target.search.generations()) | set(target.store.generations()):
        if stale not in (live, previous):
            target.search.drop_generation(stale)
            target.store.drop_generation(stale)
    generation = max([target.store.next_generation(), *(g + 1 for g in target.search.generations())])
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
            f"generation {generation}: search holds {stored_statements[0]} statements, "
            f"expected {expected_statements[0]} (or their digests differ)"
        )


def finish_rebuild(
    target: IndexTarget,
    generation: int,
    start_seq: int,
    digests: ProjectedDigests,
    started: float,
    before_switch: Callable[[], None] | None = None,
) -> RebuildReport:
    """Catch up with the journal, verify, then switch search and MongoDB to the new generation."""
    last_seq, replayed = catch_up(target, generation, start_seq, digests)
    target.search.commit(generation)
    verify_generation(target, generation, digests)
    if before_switch:
        before_switch()
    previous = target.store.live_generation()
    target.search.switch(generation)
    target.store.switch(generation, checkpoint=last_seq)
    media_total, statement_total = digests.totals()
    return RebuildReport(
        generation,
        previous,
        media_total[0],
        statement_total[0],
        last_seq,
        replayed,
        round(time.monotonic() - started, 3),
        True,
    )


def full_rebuild(
    target: IndexTarget,
    chunk_size: int = 64,
    progress: Progress | None = None,
    before_switch: Callable[[], None] | None = None,
) -> RebuildReport:
    """Rebuild everything beside the live generation (single process; the flow maps chunks)."""
    started = time.monotonic()
    generation, start_seq, media_ids = start_rebuild(target)
    digests = ProjectedDigests()
    done = 0
    for chunk in chunks_of(media_ids, chunk_size):
        project_media(target, generation, chunk, replace=False, digests=digests)
        done += len(chunk)
        if progress:
            progress(done, len(media_ids))
    return finish_rebuild(target, generation, start_seq, digests, started, before_switch)


def incremental(target: IndexTarget) -> dict[str, Any]:
    """Apply journal records after the live generation's checkpoint. Safe to run any time."""
    generation = target.store.live_generation()
    if generation is None:
        report = full_rebuild(target)
        return {"mode": "full", **report.as_dict()}
    checkpoint = target.store.checkpoint(generation)
    applied, media_touched = 0, 0
    batch: list[Any] = []

    def flush() -> None:
        nonlocal media_touched
        media_ids = list(dict.fromkeys(r.media_id for r in batch))
        project_media(target, generation, media_ids, replace=True)
        target.search.commit(generation)
        target.store.set_checkpoint(generation, batch[-1].seq)
        media_touched += len(media_ids)

    for record in journal.read(target.vault, checkpoint):
        batch.append(record)
        applied += 1
        if len(batch) >= JOURNAL_CHUNK:
            flush()
            batch = []
    if batch:
        flush()
    return {
        "mode": "incremental",
        "generation": generation,
        "from_checkpoint": checkpoint,
        "records": applied,
        "media": media_touched,
        "checkpoint": target.store.checkpoint(generation),
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


def rollback(target: IndexTarget) -> int:
    generation = target.search.rollback()
    target.store.rollback()
    return generation
