"""User input never reaches a MongoDB filter as an operator (SecantusDB speaks the real protocol)."""

from __future__ import annotations

import pytest

from mediavault.errors import InputError
from mediavault.index_store import MongoIndexStore

A, B = "a" * 64, "b" * 64


@pytest.fixture
def store(mongo_db) -> MongoIndexStore:
    store = MongoIndexStore(mongo_db)
    store.create_generation(1)
    store.upsert(
        1,
        [
            {"_id": A, "owner": "alice", "tags": ["x"], "status": "committed"},
            {"_id": B, "owner": "bob", "tags": ["y"], "status": "committed"},
        ],
    )
    store.switch(1, checkpoint=0)
    return store


def test_exact_matches_work(store: MongoIndexStore) -> None:
    assert [d["_id"] for d in store.find_media(owner="alice")] == [A]
    assert [d["_id"] for d in store.find_media(tag="y")] == [B]
    assert store.media(A)["owner"] == "alice"


@pytest.mark.parametrize(
    "value", ['{"$ne": null}', "$where", "'; return true; '", "alice' || 'a'=='a", "$gt", "{$regex: '.*'}"]
)
def test_operator_looking_strings_are_literal(store: MongoIndexStore, value: str) -> None:
    assert store.find_media(owner=value) == []
    assert store.find_media(tag=value) == []


@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["alice", "bob"], {"$where": "true"}])
def test_non_string_values_are_rejected(store: MongoIndexStore, value) -> None:
    with pytest.raises(InputError):
        store.find_media(owner=value)


@pytest.mark.parametrize("media_id", [{"$ne": None}, "$where", A[:10], A + "x", "", None])
def test_media_lookup_requires_a_real_id(store: MongoIndexStore, media_id) -> None:
    with pytest.raises(InputError):
        store.media(media_id)
