"""The MongoDB side of the index, in generations.

Media documents of generation N live in ``media_g<N>``. The single document ``index_state/live``
names the live generation, the previous one (kept for rollback) and each generation's journal
checkpoint; switching is one atomic update of that document. Readers resolve the pointer on
every access, so they never see a half-built generation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, ReplaceOne, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mediavault.errors import ConfigurationError, ConflictError, InputError
from mediavault.index.projection import DigestSet
from mediavault.vault.models import utc_now

STATE = "index_state"
LIVE = "live"
LEASE = "lease:reindex"
QUARANTINE = "quarantine"
DUPLICATE_KEY = 11000
UPSERT_ATTEMPTS = 5
LEGACY_MEDIA = "media"
UNSETTLED = ("ingesting", "failed")  # ingest statuses only MongoDB records
INGEST_STATUS_FIELDS = ("status", "last_job_id", "updated_at")


SORT_FIELDS = {
    "created": ("ingested_at", False),
    "-created": ("ingested_at", True),
    "title": ("title", False),
}


@dataclass
class MediaListQuery:
    """Filters of a media listing; every value is a plain string (checked by the caller's model)."""

    owner: str | None = None
    tag: str | None = None
    status: str | None = None
    tier: str | None = None
    language: str | None = None
    since: str | None = None  # ISO 8601 UTC, compared with the stored ISO strings
    until: str | None = None
    words: list[str] = dataclass_field(default_factory=list)
    sort: str = "-created"
    limit: int = 50
    after: tuple[Any, str] | None = None


def collection_name(generation: int) -> str:
    return f"media_g{generation}"


def live_media_collection(database: Database) -> Collection:
    """The media collection readers and status updates use right now."""
    state = database[STATE].find_one({"_id": LIVE}) or {}
    generation = state.get("generation")
    return database[collection_name(generation)] if generation is not None else database[LEGACY_MEDIA]


class MongoIndexStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def state(self) -> dict[str, Any] | None:
        return self.database[STATE].find_one({"_id": LIVE})

    def live_generation(self) -> int | None:
        return (self.state() or {}).get("generation")

    def generations(self) -> list[int]:
        names = self.database.list_collection_names()
        return sorted(int(n[7:]) for n in names if n.startswith("media_g") and n[7:].isdigit())

    def next_generation(self) -> int:
        state = self.state() or {}
        known = [*self.generations(), state.get("generation") or 0, state.get("previous") or 0]
        return max(known) + 1

    def create_generation(self, generation: int) -> None:
        self.database.drop_collection(collection_name(generation))
        collection = self.database[collection_name(generation)]
        collection.create_index([("owner", ASCENDING)])
        collection.create_index([("status", ASCENDING)])
        collection.create_index([("tags", ASCENDING)])

    def upsert(self, generation: int, documents: list[dict[str, Any]]) -> None:
        """Replace media documents with their projection. An ingest in flight or failed on the
        same manifest version keeps its status (the vault does not record it; MongoDB does)."""
        if not documents:
            return
        collection = self.database[collection_name(generation)]
        pending = self._keeping_ingest_status(collection, documents)
        for _ in range(UPSERT_ATTEMPTS):
            try:
                collection.bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in pending], ordered=False
                )
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                # Two upserts of one new _id raced and one lost the insert: replace again.
                pending = [pending[e["index"]] for e in errors]
        raise ConflictError(f"{len(pending)} media document(s) kept colliding in {collection.name}")

    @staticmethod
    def _keeping_ingest_status(
        collection: Collection, documents: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        ids = [d["_id"] for d in documents]
        held = {
            d["_id"]: d
            for d in collection.find(
                {"_id": {"$in": ids}, "status": {"$in": list(UNSETTLED)}},
                {field: 1 for field in (*INGEST_STATUS_FIELDS, "manifest_version")},
            )
        }
        if not held:
            return list(documents)
        kept = []
        for document in documents:
            old = held.get(document["_id"])
            if old is not None and old.get("manifest_version") == document.get("manifest_version"):
                document = {**document, **{f: old[f] for f in INGEST_STATUS_FIELDS if f in old}}
            kept.append(document)
        return kept

    def carry_ingest_status(self, source: int, target: int) -> int:
        """After a full rebuild: the ingests that were in flight or had failed when the rebuild
        started keep their status in the new generation (a rebuild reads only manifests).

        A record is carried when nothing touched its item in ``target`` since it was projected
        (no ``last_job_id`` there) and no newer manifest superseded it. Returns how many."""
        old_collection = self.database[collection_name(source)]
        new_collection = self.database[collection_name(target)]
        carried = 0
        for old in old_collection.find({"status": {"$in": list(UNSETTLED)}}):
            version = old.get("manifest_version")
            if version is None:  # never committed: the vault knows nothing of it
                try:
                    new_collection.insert_one(old)
                    carried += 1
                except DuplicateKeyError:
                    pass
                continue
            status = {f: old[f] for f in INGEST_STATUS_FIELDS if f in old}
            updated = new_collection.update_one(
                {"_id": old["_id"], "manifest_version": version, "last_job_id": {"$exists": False}},
                {"$set": status},
            )
            carried += updated.modified_count
        return carried

    def delete(self, generation: int, media_id: str) -> None:
        self.database[collection_name(generation)].delete_one({"_id": media_id})

    def documents(self, generation: int):
        return self.database[collection_name(generation)].find({}).sort("_id", ASCENDING)

    def summary(self, generation: int) -> tuple[int, int, int]:
        digest = DigestSet()
        for document in self.documents(generation):
            digest.add(document)
        return digest.as_tuple()

    def previous_generation(self) -> int | None:
        return (self.state() or {}).get("previous")

    def begin_switch(self, generation: int, previous: int | None, checkpoint: int) -> None:
        """Record the switch about to happen, so a crash between the search switch and this
        store's switch can be finished (``pending_switch`` / ``apply_switch``)."""
        pending = {"generation": generation, "previous": previous, "checkpoint": checkpoint}
        self.database[STATE].update_one({"_id": LIVE}, {"$set": {"pending": pending}}, upsert=True)

    def pending_switch(self) -> dict[str, Any] | None:
        return (self.state() or {}).get("pending")

    def abandon_switch(self) -> None:
        self.database[STATE].update_one({"_id": LIVE}, {"$unset": {"pending": ""}})

    def apply_switch(self, generation: int, previous: int | None, checkpoint: int | None) -> None:
        """Make ``generation`` live with ``previous`` kept for rollback, in one replace of the
        pointer document; ``checkpoint`` None keeps the generation's own checkpoint."""
        state = self.state() or {}
        checkpoints = dict(state.get("checkpoints") or {})
        if checkpoint is not None:
            checkpoints[str(generation)] = checkpoint
        keep = {str(generation), str(previous)}
        self.database[STATE].replace_one(
            {"_id": LIVE},
            {
                "_id": LIVE,
                "generation": generation,
                "previous": previous,
                "switched_at": utc_now(),
                "checkpoints": {k: v for k, v in checkpoints.items() if k in keep},
            },
            upsert=True,
        )

    def switch(self, generation: int, checkpoint: int) -> None:
        self.apply_switch(generation, self.live_generation(), checkpoint)

    def rollback(self) -> int:
        state = self.state()
        if not state or state.get("previous") is None:
            raise ConfigurationError("no previous index generation to roll back to")
        self.apply_switch(state["previous"], state["generation"], None)
        return state["previous"]

    # -- quarantine: media items a re-index could not project --------------------------------
    def quarantine(self, generation: int, media_id: str, error: str) -> None:
        now = utc_now()
        self.database[QUARANTINE].update_one(
            {"_id": f"{generation}:{media_id}"},
            {
                "$set": {
                    "generation": generation,
                    "media_id": media_id,
                    "error": error[:2000],
                    "last_at": now,
                },
                "$setOnInsert": {"first_at": now},
                "$inc": {"attempts": 1},
            },
            upsert=True,
        )

    def release_quarantine(self, generation: int, media_ids: list[str]) -> None:
        if media_ids:
            self.database[QUARANTINE].delete_many({"_id": {"$in": [f"{generation}:{m}" for m in media_ids]}})

    def quarantined(self, generation: int | None) -> list[dict[str, Any]]:
        """Quarantined items of a generation (of the live one when None)."""
        generation = self.live_generation() if generation is None else generation
        if generation is None:
            return []
        return list(
            self.database[QUARANTINE].find({"generation": {"$eq": generation}}).sort("_id", ASCENDING)
        )

    # -- the re-index lease -------------------------------------------------------------------
    def acquire_lease(self, holder: str, ttl_seconds: float) -> int | None:
        """Take (or renew) the re-index lease; returns its epoch, or None when another live holder has it."""
        now = utc_now()
        try:
            document = self.database[STATE].find_one_and_update(
                {"_id": LEASE, "$or": [{"expires_at": {"$lt": now}}, {"holder": holder}]},
                {
                    "$set": {
                        "holder": holder,
                        "expires_at": now + timedelta(seconds=ttl_seconds),
                        "renewed_at": now,
                    },
                    "$inc": {"epoch": 1},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        return int(document["epoch"]) if document else None

    def renew_lease(self, holder: str, ttl_seconds: float) -> bool:
        now = utc_now()
        result = self.database[STATE].update_one(
            {"_id": LEASE, "holder": holder, "expires_at": {"$gte": now}},
            {"$set": {"expires_at": now + timedelta(seconds=ttl_seconds), "renewed_at": now}},
        )
        return result.matched_count == 1

    def release_lease(self, holder: str) -> None:
        self.database[STATE].delete_one({"_id": LEASE, "holder": holder})

    def lease(self) -> dict[str, Any] | None:
        return self.database[STATE].find_one({"_id": LEASE})

    def checkpoint(self, generation: int) -> int:
        state = self.state() or {}
        return int((state.get("checkpoints") or {}).get(str(generation), 0))

    def set_checkpoint(self, generation: int, seq: int) -> bool:
        """Advance the checkpoint of ``generation`` if it is still live (compare-and-set)."""
        field = f"checkpoints.{generation}"
        result = self.database[STATE].update_one(
            {
                "_id": LIVE,
                "generation": generation,
                "$or": [{field: {"$lt": seq}}, {field: {"$exists": False}}],
            },
            {"$set": {field: seq}},
        )
        return result.modified_count == 1

    def find_media(
        self, owner: str | None = None, tag: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Media documents of the live generation matching exact values.

        Every value must be a plain string and is compared with ``$eq``, so a value such as
        ``{"$ne": null}`` or ``"$where"`` can never become an operator."""
        query: dict[str, Any] = {}
        for field, value in (("owner", owner), ("tags", tag), ("status", status)):
            if value is None:
                continue
            if not isinstance(value, str):
                raise InputError("query", field, f"must be a string, got {type(value).__name__}")
            query[field] = {"$eq": value}
        return list(live_media_collection(self.database).find(query).sort("_id", ASCENDING).limit(limit))

    def list_media(self, query: MediaListQuery) -> tuple[list[dict[str, Any]], tuple[Any, str] | None]:
        """One page of live media documents and the key to continue after (keyset paging).

        Values are compared with ``$eq``/``$gte``/``$lt`` only, and ``words`` are matched as
        escaped literals, so nothing a caller sends can become a query operator."""
        clauses: list[dict[str, Any]] = []
        for name, value in (
            ("owner", query.owner),
            ("tags", query.tag),
            ("status", query.status),
            ("tier", query.tier),
            ("language", query.language),
        ):
            if value is not None:
                clauses.append({name: {"$eq": value}})
        if query.since is not None:
            clauses.append({"ingested_at": {"$gte": query.since}})
        if query.until is not None:
            clauses.append({"ingested_at": {"$lt": query.until}})
        for word in query.words:
            clauses.append({"title": {"$regex": re.escape(word), "$options": "i"}})
        key, descending = SORT_FIELDS[query.sort]
        if query.after is not None:
            value, last_id = query.after
            beyond = "$lt" if descending else "$gt"
            if value is None:  # null sorts first ascending: every non-null title comes after
                clauses.append({"$or": [{key: {"$ne": None}}, {key: None, "_id": {"$gt": last_id}}]})
            else:
                tie = {key: {"$eq": value}, "_id": {beyond: last_id}}
                clauses.append({"$or": [{key: {beyond: value}}, tie]})
        direction = -1 if descending else ASCENDING
        cursor = (
            live_media_collection(self.database)
            .find({"$and": clauses} if clauses else {})
            .sort([(key, direction), ("_id", direction)])
            .limit(query.limit + 1)
        )
        documents = list(cursor)
        page, more = documents[: query.limit], len(documents) > query.limit
        after = (page[-1].get(key), page[-1]["_id"]) if more and page else None
        return page, after

    def media(self, media_id: str) -> dict[str, Any] | None:
        """The live media document of one item (``mediavault show``); only a full hex id is accepted."""
        if not isinstance(media_id, str) or not re.fullmatch(r"[0-9a-f]{64}", media_id):
            raise InputError("query", "media_id", "must be a 64-character hex media id")
        return live_media_collection(self.database).find_one({"_id": {"$eq": media_id}})

    def purge_media(self, media_id: str) -> dict[str, int]:
        """Remove an erased item from every generation, the job events and the quarantine."""
        from mediavault.index.status import JOB_EVENTS

        names = [collection_name(g) for g in self.generations()] + [LEGACY_MEDIA]
        documents = sum(
            self.database[name].delete_many({"_id": {"$eq": media_id}}).deleted_count for name in names
        )
        events = self.database[JOB_EVENTS].delete_many({"media_id": {"$eq": media_id}}).deleted_count
        self.database[QUARANTINE].delete_many({"media_id": {"$eq": media_id}})
        return {"media_documents": documents, "job_events": events}

    def drop_generation(self, generation: int) -> None:
        self.database.drop_collection(collection_name(generation))
