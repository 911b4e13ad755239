"""Media status state machine and job events against a real SecantusDB server."""

from __future__ import annotations

import pytest

from mediavault.index import embedded, status


def test_state_machine_allows_the_documented_paths(mongo_db) -> None:
    media_id = "a" * 64
    assert status.transition(mongo_db, media_id, "ingesting", "job1") is None
    assert status.transition(mongo_db, media_id, "failed", "job1") == "ingesting"
    assert status.transition(mongo_db, media_id, "ingesting", "job2") == "failed"
    assert status.transition(mongo_db, media_id, "committed", "job2", {"title": "t"}) == "ingesting"
    doc = mongo_db.media.find_one({"_id": media_id})
    assert doc["status"] == "committed" and doc["title"] == "t" and doc["last_job_id"] == "job2"


def test_state_machine_rejects_invalid_transitions(mongo_db) -> None:
    with pytest.raises(status.InvalidTransition):
        status.transition(mongo_db, "b" * 64, "failed", "job")
    status.transition(mongo_db, "b" * 64, "committed", "job")
    with pytest.raises(status.InvalidTransition):
        status.transition(mongo_db, "b" * 64, "failed", "job")


def test_job_events_are_an_ordered_log(mongo_db) -> None:
    for event in ("validated", "media-stored", "committed"):
        status.record_event(mongo_db, "job9", event, media_id="c" * 64, step=event)
    events = list(mongo_db.job_events.find({"job_id": "job9"}).sort("at", 1))
    assert [e["event"] for e in events] == ["validated", "media-stored", "committed"]
    assert events[0]["detail"] == {"step": "validated"}


def test_embedded_server_is_reused_and_stopped(tmp_path) -> None:
    first = embedded.ensure_running(tmp_path / "m")
    again = embedded.ensure_running(tmp_path / "m")
    assert again.pid == first.pid and again.port == first.port
    assert embedded.stop(tmp_path / "m")
    assert embedded.running(tmp_path / "m") is None
