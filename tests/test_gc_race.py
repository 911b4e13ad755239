"""Garbage collection never deletes what a concurrent commit references (the pin/claim protocol)."""

from __future__ import annotations

import hashlib
import threading
import time
import traceback
from pathlib import Path

import pytest

from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest, prepare, store_media, store_run
from mediavault.lifecycle.engine import run
from mediavault.lifecycle.policy import Policies, Rule
from mediavault.vault import Vault, manifests, pins
from mediavault.vault.models import utc_now
from tests.helpers import JFK_JSON, JFK_MEDIA

DAYS = __import__("datetime").timedelta(days=1)


def jfk() -> IngestRequest:
    return IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={"title": "jfk"})


def leave_orphans(vault: Vault, settings) -> str:
    """What an ingest that died before its commit leaves: media and run objects, no manifest."""
    prepared = prepare(jfk(), settings)
    media, _ = store_media(vault, prepared)
    store_run(vault, media.sha256, prepared)
    assert manifests.latest_manifest(vault, media.sha256) is None
    return media.sha256


def assert_manifests_name_intact_objects(vault: Vault) -> int:
    checked = 0
    for media_id in manifests.list_media_ids(vault):
        for version in manifests.manifest_versions(vault, media_id):
            for artifact in manifests.read_manifest(vault, media_id, version).artifacts:
                if artifact.tier != "hot":
                    continue
                data = vault.get_bytes(artifact.key)  # KeyError: a manifest names a deleted object
                assert hashlib.sha256(data).hexdigest() == artifact.sha256, artifact.key
                checked += 1
    return checked


def test_an_ingest_that_deduplicates_during_collection_keeps_its_objects(vault: Vault, settings_for) -> None:
    """The reported race: plan sees old unreferenced objects, an ingest of the same bytes commits
    against them, then the delete runs. The ingest must end with a manifest naming intact objects."""
    settings = settings_for(vault)
    media_id = leave_orphans(vault, settings)
    outcome: dict[str, object] = {}

    def ingest_same_bytes() -> None:
        try:
            outcome["result"] = ingest(vault, jfk(), settings)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    worker: threading.Thread | None = None

    def hook(step: str, key: str) -> None:
        nonlocal worker
        if step == "delete" and worker is None:
            # The ingest runs between the plan and the first delete. Give it every chance to
            # commit before the collector goes on (without the protocol it does, in well under 5 s).
            worker = threading.Thread(target=ingest_same_bytes)
            worker.start()
            worker.join(timeout=5)

    report = run(vault, Policies(), dry_run=False, now=utc_now() + 8 * DAYS, hook=hook)
    assert worker is not None, "the plan must have found the orphans"
    worker.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].media_id == media_id
    assert assert_manifests_name_intact_objects(vault) >= 3
    assert not report.errors
    assert list(vault.list_keys(pins.PIN_PREFIX)) == [] and list(vault.list_keys(pins.CLAIM_PREFIX)) == []


def test_a_commit_before_the_claim_makes_the_collector_keep_everything(vault: Vault, settings_for) -> None:
    settings = settings_for(vault)
    leave_orphans(vault, settings)

    def hook(step: str, key: str) -> None:
        if step == "claim":
            ingest(vault, jfk(), settings)

    report = run(vault, Policies(), dry_run=False, now=utc_now() + 8 * DAYS, hook=hook)
    assert not [a for a in report.done if a.action == "delete-orphan"]
    assert report.skipped and {s["reason"] for s in report.skipped} == {"referenced by a committed manifest"}
    assert assert_manifests_name_intact_objects(vault) >= 3


def test_a_live_pin_blocks_collection_and_a_stale_one_does_not(vault: Vault, settings_for) -> None:
    settings = settings_for(vault)
    media_id = leave_orphans(vault, settings)
    pin = pins.pin(vault, media_id)
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 8 * DAYS)
    assert not report.done and report.skipped[0]["reason"] == "a commit is in flight (pinned)"
    assert vault.head(f"media/{media_id}/original") is not None
    pins.unpin(vault, pin)
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 8 * DAYS)
    assert {a.key for a in report.done} >= {f"media/{media_id}/original"}
    assert not list(vault.list_keys(f"media/{media_id}/"))


def test_a_claim_left_by_a_dead_collector_is_broken_after_its_lease(
    vault: Vault, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = leave_orphans(vault, settings_for(vault))
    assert pins.claim(vault, media_id) is not None
    assert pins.claim(vault, media_id) is None, "a live claim is exclusive"
    started = time.monotonic()
    with pytest.raises(Exception, match="stays claimed"):
        pins.wait_unclaimed(vault, media_id, timeout=0.5)
    assert time.monotonic() - started >= 0.5
    monkeypatch.setattr(pins, "CLAIM_TTL", 0.0)  # the lease has run out
    time.sleep(1.1)
    pins.wait_unclaimed(vault, media_id, timeout=5)
    assert vault.head(pins.claim_key(media_id)) is None


def test_concurrent_collections_and_ingests_never_lose_a_referenced_object(
    tmp_path: Path, vault: Vault, settings_for
) -> None:
    """Bounded stress: ingests of the same bytes race repeated collections on one vault."""
    from tests.conftest import hardening_scale

    settings = settings_for(vault)
    rounds = int(hardening_scale(3, 30))
    for _ in range(rounds):
        leave_orphans(vault, settings)
        errors: list[BaseException] = []

        def ingester(errors: list[BaseException] = errors) -> None:
            try:
                ingest(vault, jfk(), settings)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=ingester) for _ in range(2)]
        # Orphans of any age are collected, so objects of ingests in flight are candidates too;
        # in-flight temp files are left to the staging rule's time bound.
        eager = Policies(
            failed_ingest=Rule(action="expire", after_days=0), staging=Rule(action="keep", after_days=0)
        )
        threads += [
            threading.Thread(target=run, args=(vault, eager), kwargs={"dry_run": False}) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, "".join(traceback.format_exception(errors[0]))
        assert assert_manifests_name_intact_objects(vault) >= 3
        # Forget the committed item for the next round by starting from a new vault prefix.
        for key in list(vault.list_keys("")):
            vault.delete(key)
