"""The MongoDB side of the index, in generations.

Media documents of generation N live in ``media_g<N>``. The single document ``index_state/live``
names the live generation, the previous one (kept for rollback) and each generation's journal
checkpoint; switching is one atomic update of that document. Readers resolve the pointer on
every access, so they never see a half-built generation.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from mediavault.errors import ConfigurationError, InputError
from mediavault.models import utc_now
from mediavault.projection import DigestSet

STATE = "index_state"
LIVE = "live"
LEGACY_MEDIA = "media"


def collection_name(generation: int) -> str:
    return f"media_g{generation}"


def live_media_collection(database: Database) -> Collection:
    """The media collection readers and status updates use right now."""
    state = database[STATE].find_one({"_id": LIVE})
    return database[collection_name(state["generation"])] if state else database[LEGACY_MEDIA]


class MongoIndexStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def state(self) -> dict[str, Any] | None:
        return self.database[STATE].find_one({"_id": LIVE})

    def live_generation(self) -> int | None:
        state = self.state()
        return state["generation"] if state else None

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
        if not documents:
            return
        operations = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents]
        try:
            self.database[collection_name(generation)].bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # A duplicate key on retry means the document is already written.
            real = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if real:
                raise

    def delete(self, generation: int, media_id: str) -> None:
        self.database[collection_name(generation)].delete_one({"_id": media_id})

    def documents(self, generation: int):
        return self.database[collection_name(generation)].find({}).sort("_id", ASCENDING)

    def summary(self, generation: int) -> tuple[int, int, int]:
        digest = DigestSet()
        for document in self.documents(generation):
            digest.add(document)
        return digest.as_tuple()

    def switch(self, generation: int, checkpoint: int) -> None:
        state = self.state() or {}
        checkpoints = {k: v for k, v in (state.get("checkpoints") or {}).items()}
        checkpoints[str(generation)] = checkpoint
        previous = state.get("generation")
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

    def rollback(self) -> int:
        state = self.state()
        if not state or state.get("previous") is None:
            raise ConfigurationError("no previous index generation to roll back to")
        previous = state["previous"]
        self.database[STATE].update_one(
            {"_id": LIVE, "generation": state["generation"]},
            {"$set": {"generation": previous, "previous": state["generation"], "switched_at": utc_now()}},
        )
        return previous

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

    def media(self, media_id: str) -> dict[str, Any] | None:
        if not isinstance(media_id, str) or not re.fullmatch(r"[0-9a-f]{64}", media_id):
            raise InputError("query", "media_id", "must be a 64-character hex media id")
        return live_media_collection(self.database).find_one({"_id": {"$eq": media_id}})

    def drop_generation(self, generation: int) -> None:
        self.database.drop_collection(collection_name(generation))
