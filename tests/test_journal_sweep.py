"""The journal sweep: a manifest version a crash left without its journal record gets one, once."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import set_legal_hold
from mediavault.lifecycle.fixity import check_journal
from mediavault.vault import Vault, journal, manifests
from mediavault.vault.keys import JOURNAL_PREFIX, manifest_journaled_key, manifest_key
from tests.conftest import REAL, hardening_scale
from tests.helpers import JFK_MEDIA, make_wav


class Crash(BaseException):
    """Stands in for the process dying (BaseException: nothing may catch it)."""


class DiesBeforeJournal:
    """A real vault whose process dies as it is about to append to the journal, that is, right
    after a manifest version was written."""

    def __init__(self, inner: Vault) -> None:
        self.inner = inner
        self.url = inner.url

    def put_bytes(self, key, data, content_type=None):
        if key.startswith(JOURNAL_PREFIX):
            raise Crash(f"killed before appending {key}")
        return self.inner.put_bytes(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class CountingVault:
    """A real vault that records which keys were listed, HEADed and read."""

    def __init__(self, inner: Vault) -> None:
        self.inner = inner
        self.url = inner.url
        self.listed: list[str] = []
        self.touched: list[str] = []

    def list_keys(self, prefix="", start_after=None):
        self.listed.append(prefix)
        return self.inner.list_keys(prefix, start_after)

    def head(self, key):
        self.touched.append(key)
        return self.inner.head(key)

    def get_bytes(self, key):
        self.touched.append(key)
        return self.inner.get_bytes(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def journaled(vault: Vault) -> Counter[tuple[str, int]]:
    """How many journal records each (media_id, manifest_version) has."""
    return Counter((r.media_id, r.manifest_version) for r in journal.read(vault))


def ingest_wav(vault: Vault, settings, tmp_path: Path, index: int) -> str:
    media = make_wav(tmp_path / f"tone-{index}.wav", 0.2, frequency=200 + index)
    return ingest(vault, IngestRequest(media=str(media)), settings).media_id


def crash_a_legal_hold(vault: Vault, media_id: str, hold: bool = True) -> None:
    with pytest.raises(Crash):
        set_legal_hold(DiesBeforeJournal(vault), media_id, hold)


def test_a_version_a_crash_left_unjournaled_is_journaled_once(vault: Vault, settings_for, tmp_path) -> None:
    media_id = ingest_wav(vault, settings_for(vault), tmp_path, 0)
    crash_a_legal_hold(vault, media_id)
    assert manifests.manifest_versions(vault, media_id) == [1, 2]
    assert journaled(vault) == {(media_id, 1): 1}, "the crash left v2 out of the journal"
    assert vault.head(manifest_journaled_key(media_id, 2)) is None

    assert manifests.sweep_unjournaled(vault) == [], "a fresh version is left to its writer"
    later = time.time() + manifests.SWEEP_GRACE_SECONDS + 5
    swept = manifests.sweep_unjournaled(vault, now=later)
    assert swept == [manifests.SweptVersion(media_id, 2, 2)]
    assert journaled(vault) == {(media_id, 1): 1, (media_id, 2): 1}
    record = list(journal.read(vault))[-1]
    assert record.change == "legal-hold" and record.manifest_key == manifest_key(media_id, 2)
    assert vault.head(manifest_journaled_key(media_id, 2)) is not None

    assert manifests.sweep_unjournaled(vault, grace_seconds=0) == []
    assert journaled(vault) == {(media_id, 1): 1, (media_id, 2): 1}, "a second sweep adds nothing"
    assert check_journal(vault).ok


def test_the_first_record_of_a_new_item_is_recovered_with_its_run(vault: Vault, settings_for) -> None:
    request = IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))])
    with pytest.raises(Crash):
        ingest(DiesBeforeJournal(vault), request, settings_for(vault))
    [media_id] = manifests.list_media_ids(vault)
    assert list(journal.read(vault)) == [], "the item is committed but invisible to the journal"

    [swept] = manifests.sweep_unjournaled(vault, grace_seconds=0)
    [record] = journal.read(vault)
    manifest = manifests.latest_manifest(vault, media_id)
    assert (swept.media_id, swept.version, swept.journal_seq) == (media_id, 1, 1)
    assert record.change == "ingest" and record.run_id == manifest.runs[0].run_id, "as the commit would"

    ingest(vault, request, settings_for(vault))  # the same ingest again: nothing changes
    assert journaled(vault) == {(media_id, 1): 1}, "the writer sees the sweep's marker"


def test_the_sweep_lists_once_and_touches_only_unjournaled_versions(
    vault: Vault, settings_for, tmp_path
) -> None:
    settings = settings_for(vault)
    ids = [ingest_wav(vault, settings, tmp_path, i) for i in range(3)]
    for media_id in ids[:2]:
        set_legal_hold(vault, media_id, True)
    crash_a_legal_hold(vault, ids[2])
    counting = CountingVault(vault)
    swept = manifests.sweep_unjournaled(counting, grace_seconds=0)
    assert [(s.media_id, s.version) for s in swept] == [(ids[2], 2)]
    assert [p for p in counting.listed if not p.startswith(JOURNAL_PREFIX)] == ["manifests/"]
    touched = {k for k in counting.touched if not k.startswith(JOURNAL_PREFIX)}
    assert touched == {manifest_key(ids[2], 2), manifest_journaled_key(ids[2], 2)}, (
        "no HEAD or GET for versions whose marker is in the listing"
    )


def test_a_damaged_manifest_does_not_stop_the_sweep(vault: Vault, settings_for, tmp_path) -> None:
    settings = settings_for(vault)
    damaged, crashed = ingest_wav(vault, settings, tmp_path, 0), ingest_wav(vault, settings, tmp_path, 1)
    vault.put_bytes(manifest_key(damaged, 2), b"{not a manifest")
    misplaced = manifests.read_manifest(vault, damaged, 1).model_copy(update={"version": 7})
    vault.put_bytes(manifest_key(damaged, 3), misplaced.to_bytes())  # names a version it is not
    crash_a_legal_hold(vault, crashed)
    swept = manifests.sweep_unjournaled(vault, grace_seconds=0)
    assert [(s.media_id, s.version) for s in swept] == [(crashed, 2)]
    assert set(journaled(vault)) == {(damaged, 1), (crashed, 1), (crashed, 2)}


@pytest.mark.hardening
def test_concurrent_sweeps_journal_each_version_exactly_once(vault: Vault, settings_for, tmp_path) -> None:
    settings = settings_for(vault)
    ids = [ingest_wav(vault, settings, tmp_path, i) for i in range(int(hardening_scale(6, 30)))]
    for media_id in ids:
        crash_a_legal_hold(vault, media_id)
    start = threading.Barrier(2)
    results: list[list[manifests.SweptVersion]] = [[], []]
    failures: list[BaseException] = []

    def sweep(slot: int) -> None:
        try:
            start.wait()
            results[slot] = manifests.sweep_unjournaled(vault, grace_seconds=0)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=sweep, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    both = [(s.media_id, s.version) for s in results[0] + results[1]]
    assert sorted(both) == sorted((m, 2) for m in ids), "each version swept by exactly one of the two"
    counts = journaled(vault)
    assert all(counts[(m, v)] == 1 for m in ids for v in (1, 2)) and len(counts) == 2 * len(ids)
    assert [r.seq for r in journal.read(vault)] == list(range(1, 2 * len(ids) + 1))


@pytest.mark.hardening
def test_sweeps_beside_writers_leave_every_version_journaled(vault: Vault, settings_for, tmp_path) -> None:
    """Writers commit (some die before journaling) while sweeps without a grace period run: the
    journal stays gapless, every version ends up journaled, and duplicates are only the accepted
    at-least-once kind (a sweep racing a live writer)."""
    settings = settings_for(vault)
    ids = [ingest_wav(vault, settings, tmp_path, i) for i in range(3)]
    commits = int(hardening_scale(8, 60))
    done = threading.Event()
    failures: list[BaseException] = []

    def writer(media_id: str, seed: int) -> None:
        chance = random.Random(seed)
        try:
            for step in range(commits):
                target = DiesBeforeJournal(vault) if chance.random() < 0.3 else vault
                with contextlib.suppress(Crash):
                    set_legal_hold(target, media_id, step % 2 == 0)
        except BaseException as exc:
            failures.append(exc)

    def sweeper() -> None:
        try:
            while not done.is_set():
                manifests.sweep_unjournaled(vault, grace_seconds=0)
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(m, i)) for i, m in enumerate(ids)]
    sweepers = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in writers + sweepers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in sweepers:
        thread.join()
    assert not failures, failures
    manifests.sweep_unjournaled(vault, grace_seconds=0)

    versions = {(m, v) for m in ids for v in manifests.manifest_versions(vault, m)}
    counts = journaled(vault)
    assert set(counts) == versions, "every manifest version has a journal record"
    assert all(vault.head(manifest_journaled_key(m, v)) for m, v in versions)
    records = list(journal.read(vault))
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), "gapless"
    assert manifests.sweep_unjournaled(vault, grace_seconds=0) == []
    assert check_journal(vault).ok
