"""Errors are reported where they happen and as what they are: nothing swallowed, nothing misreported."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from mediavault.ingest.inbox import InboxItem, ingest_item
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests
from tests.helpers import JFK_JSON, JFK_MEDIA


def test_a_committed_item_is_reported_ok_even_when_its_status_write_fails(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "vault")
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    unreachable = MongoClient("mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=300)
    item = InboxItem(name="jfk", media=str(JFK_MEDIA), outputs=[str(JFK_JSON)])
    result = ingest_item(vault, item, {}, settings, unreachable["mv"], "job-1", backoff_seconds=0.01)
    assert result.ok and result.error is None and result.attempts == 1
    assert "status record was not written" in result.warning
    assert manifests.latest_manifest(vault, result.media_id).version == 1


def test_a_duplicate_key_error_is_never_dropped_silently(mongo_db) -> None:
    """A duplicate key that is not a race between two upserts of one new _id is a real failure:
    the document was not written, so the caller must hear about it."""
    import pytest

    from mediavault.errors import ConflictError
    from mediavault.index.index_store import MongoIndexStore, collection_name

    store = MongoIndexStore(mongo_db)
    store.create_generation(1)
    mongo_db[collection_name(1)].create_index("title", unique=True)
    store.upsert(1, [{"_id": "a" * 64, "title": "same"}])
    with pytest.raises(ConflictError, match="kept colliding"):
        store.upsert(1, [{"_id": "b" * 64, "title": "same"}])
    assert mongo_db[collection_name(1)].count_documents({}) == 1


def test_concurrent_upserts_of_new_documents_all_land(mongo_db) -> None:
    import threading

    from mediavault.index.index_store import MongoIndexStore, collection_name

    store = MongoIndexStore(mongo_db)
    store.create_generation(1)
    ids = [f"{i:064x}" for i in range(40)]
    errors: list[BaseException] = []

    def writer(value: int) -> None:
        try:
            store.upsert(1, [{"_id": i, "value": value} for i in ids])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert mongo_db[collection_name(1)].count_documents({}) == len(ids)
