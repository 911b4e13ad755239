"""The index can always be rebuilt: poison records are quarantined, a lost MongoDB or a crash
between the two switches is recovered, and one lease serializes re-indexes across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mediavault.index import reindex, status
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget, LeaseBusy, LeaseLost, RebuildLease
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.search import SearchQuery
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, journal, manifests
from tests.conftest import REAL
from tests.helpers import make_wav

UINT64_MAX = 2**64 - 1


class Crash(BaseException):
    """Stands in for the process dying."""


@pytest.fixture
def target(tmp_path: Path, mongo_db, search_index) -> IndexTarget:
    return IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), search_index)


@pytest.fixture
def settings(tmp_path: Path) -> MediavaultSettings:
    return MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")


def add_media(target: IndexTarget, settings, tmp_path: Path, number: int, **provenance) -> str:
    media = make_wav(tmp_path / "media" / f"{number}.wav", 300, frequency=300 + 40 * number)
    return ingest(
        target.vault,
        IngestRequest(
            media=str(media),
            outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
            metadata={"title": f"meeting {number}", "owner": "board", "language": "en"},
            provenance={"model": "whisperx", **provenance},
        ),
        settings,
    ).media_id


def searchable(target: IndexTarget, media_id: str) -> int:
    return target.search.search(SearchQuery(media_id=media_id, limit=1)).total


def test_a_uint64_seed_is_stored_and_every_rebuild_still_works(target, settings, tmp_path) -> None:
    media_id = add_media(target, settings, tmp_path, 1, parameters={"seed": UINT64_MAX, "beam": 5})
    manifest = manifests.latest_manifest(target.vault, media_id)
    assert manifest.runs[0].provenance.parameters["seed"] == UINT64_MAX, "the vault keeps the value"
    fields = status.manifest_fields(target.vault, manifest)
    target.store.database["media"].insert_one({"_id": media_id, **fields})  # the ingest status write
    reindex.full_rebuild(target)
    edits.add_edit(
        target.vault, media_id, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": "Chair"}
    )
    assert reindex.incremental(target)["records"] == 1
    reindex.full_rebuild(target)
    document = target.store.documents(target.store.live_generation())[0]
    assert document["runs"][0]["parameters"] == {"seed": str(UINT64_MAX), "beam": 5}
    assert searchable(target, media_id) == 28


def _corrupt_statements(target: IndexTarget, media_id: str) -> tuple[Path, bytes]:
    artifact = next(
        a for a in manifests.latest_manifest(target.vault, media_id).artifacts if a.kind == "statements"
    )
    path = target.vault.root / artifact.key
    original = path.read_bytes()
    path.write_bytes(b"PAR1" + b"\0" * (len(original) - 8) + b"PAR1")  # bit rot: same size, bad bytes
    return path, original


def test_a_record_that_cannot_be_projected_is_quarantined_and_heals(target, settings, tmp_path) -> None:
    good, bad = add_media(target, settings, tmp_path, 1), add_media(target, settings, tmp_path, 2)
    reindex.full_rebuild(target)
    path, original = _corrupt_statements(target, bad)
    edits.add_edit(target.vault, bad, "fix-metadata", {"title": "renamed"})
    edits.add_edit(target.vault, good, "fix-metadata", {"title": "also renamed"})

    report = reindex.incremental(target)
    assert [q["media_id"] for q in report["quarantined"]] == [bad]
    assert "deserialize" in report["quarantined"][0]["error"], "the reason is recorded"
    assert report["checkpoint"] == max(r.seq for r in journal.read(target.vault))
    assert searchable(target, good) == 28 and searchable(target, bad) == 0, "no partial documents"
    assert target.store.documents(target.store.live_generation())[0]["title"] in ("also renamed", "renamed")

    rebuilt = reindex.full_rebuild(target)
    assert rebuilt.switched and [q["media_id"] for q in rebuilt.quarantined] == [bad]
    assert [q["media_id"] for q in target.store.quarantined(None)] == [bad]

    path.write_bytes(original)  # the fix: a restore from backup, or a new run
    healed = reindex.incremental(target)
    assert healed["retried"] == 1 and healed["quarantined"] == []
    assert searchable(target, bad) == 28


def test_rebuild_after_mongodb_is_lost_keeps_search_serving(target, settings, tmp_path) -> None:
    media_id = add_media(target, settings, tmp_path, 1)
    reindex.full_rebuild(target)
    reindex.full_rebuild(target)  # a previous generation exists too (Solr: the _previous alias)
    before = target.search.search(SearchQuery(limit=50, sort="time")).hits
    target.store.database.client.drop_database(target.store.database.name)

    def still_serving() -> None:
        assert searchable(target, media_id) == 28, "the live search generation must keep serving"

    rebuilt = reindex.full_rebuild(target, before_switch=still_serving)
    assert rebuilt.switched
    assert reindex.incremental(target)["mode"] == "incremental"
    again = reindex.full_rebuild(target, before_switch=still_serving)
    assert target.store.live_generation() == target.search.live_generation() == again.generation
    assert target.search.search(SearchQuery(limit=50, sort="time")).hits == before


def test_a_crash_between_the_two_switches_is_finished_by_the_next_run(target, settings, tmp_path) -> None:
    media_id = add_media(target, settings, tmp_path, 1)
    first = reindex.full_rebuild(target)

    def die() -> None:
        raise Crash

    with pytest.raises(Crash):
        reindex.full_rebuild(target, between_switches=die)
    assert target.search.live_generation() != target.store.live_generation() == first.generation
    report = reindex.incremental(target)
    assert report["recovered"].startswith("finished the interrupted switch")
    assert target.store.live_generation() == target.search.live_generation() != first.generation
    assert searchable(target, media_id) == 28
    assert reindex.rollback(target) == first.generation
    assert target.store.live_generation() == target.search.live_generation() == first.generation


def test_a_crash_before_the_search_switch_is_abandoned(target, settings, tmp_path) -> None:
    add_media(target, settings, tmp_path, 1)
    first = reindex.full_rebuild(target)
    generation, start_seq, _ = reindex.start_rebuild(target)
    target.store.begin_switch(generation, first.generation, start_seq)  # then the process died
    assert reindex.recover_switch(target).startswith("abandoned")
    assert target.store.pending_switch() is None and target.store.live_generation() == first.generation


@pytest.fixture
def tantivy_target(tmp_path: Path, mongo_db) -> IndexTarget:
    return IndexTarget(
        LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "t")
    )


def test_one_lease_holder_at_a_time_and_a_lost_lease_never_switches(
    tantivy_target, settings, tmp_path
) -> None:
    target = tantivy_target
    add_media(target, settings, tmp_path, 1)
    first = reindex.full_rebuild(target)
    holder = RebuildLease(target.store, ttl=1.0).acquire()
    with pytest.raises(LeaseBusy, match="another re-index holds the lease"):
        reindex.full_rebuild(target)
    with pytest.raises(LeaseBusy):
        reindex.incremental(target)
    holder._stop.set()  # the holder freezes (a long GC pause, a suspended VM): no more renewals
    time.sleep(1.5)
    generation, start_seq, media_ids = reindex.start_rebuild(target)
    digests = reindex.ProjectedDigests()
    reindex.project_media(target, generation, media_ids, replace=False, digests=digests)
    taker = RebuildLease(target.store, ttl=30).acquire()
    try:
        with pytest.raises(LeaseLost):
            reindex.finish_rebuild(target, generation, start_seq, digests, 0.0, lease=holder)
        assert target.search.live_generation() == target.store.live_generation() == first.generation
    finally:
        taker.release()
    assert reindex.full_rebuild(target).switched


def test_the_lease_works_across_processes(tantivy_target, mongo_url) -> None:
    target = tantivy_target
    code = textwrap.dedent(
        f"""
        import sys, time
        from pymongo import MongoClient
        from mediavault.index.index_store import MongoIndexStore
        from mediavault.index.reindex import RebuildLease
        store = MongoIndexStore(MongoClient({mongo_url!r}, tz_aware=True)[{target.store.database.name!r}])
        RebuildLease(store, ttl=2.0).acquire()
        print("held", flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        time.sleep(2.5)  # renewed by the other process meanwhile
        with pytest.raises(LeaseBusy):
            RebuildLease(target.store).acquire()
        child.kill()  # the holder dies without releasing
        child.wait()
        lease = RebuildLease(target.store).acquire(wait_seconds=10)
        assert json.dumps(target.store.lease()["holder"]) == json.dumps(lease.holder)
        lease.release()
    finally:
        child.kill()


def test_a_search_sees_what_another_process_committed(tmp_path) -> None:
    """Searches reload the reader only when a commit replaced the generation's meta.json: a commit
    by another process (a re-index flow beside `mediavault serve`) is seen at the next search."""
    from tests.test_search_conformance import doc

    base = tmp_path / "search"
    served = TantivySearchIndex(base)
    served.create_generation(1)
    served.add(1, [doc("a" * 64, 0, "first words")])
    served.commit(1)
    served.switch(1)
    assert served.search(SearchQuery(text="first")).total == 1
    assert served.search(SearchQuery(text="second")).total == 0
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from mediavault.search.tantivy_index import TantivySearchIndex
        from tests.test_search_conformance import doc
        writer = TantivySearchIndex(Path({str(base)!r}))
        writer.add(1, [doc("b" * 64, 0, "second words")])
        writer.commit(1)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[1], timeout=60)
    assert served.search(SearchQuery(text="second")).total == 1
    assert served.search(SearchQuery(text="words")).total == 2


def test_only_short_query_words_are_cached() -> None:
    """The query-term cache holds short words and phrases only, so no query text can grow it past
    16,384 entries of 64 characters."""
    from mediavault.search import analysis

    analysis._cached_terms.cache_clear()
    phrase = "予算" * 1000
    assert analysis._query_terms("text", phrase) == tuple(analysis.terms("text", phrase))
    assert analysis._cached_terms.cache_info().currsize == 0
    assert analysis._query_terms("text", "Budget") == ("budget",)
    assert analysis._query_terms("text", "Budget") == ("budget",)
    info = analysis._cached_terms.cache_info()
    assert (info.currsize, info.hits) == (1, 1)
