"""Re-index the vault into MongoDB (SecantusDB) and Tantivy: round trip, continuity, edits, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mediavault.errors import InputError
from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore, live_media_collection
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.media.export import export
from mediavault.search import SearchQuery
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, journal, manifests
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav

FIXTURES = [
    ("whisperx_fr_call_diarized.json", 210, "support"),
    ("whisperx_en_call2_nospeaker.json", 230, "support"),
    ("whisperx_en_schoolboard_short.json", 300, "board"),
]


@pytest.fixture
def target(tmp_path: Path, mongo_db, search_index) -> IndexTarget:
    """The vault and MongoDB with every search backend (Tantivy, Solr cloud and standalone)."""
    return IndexTarget(LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), search_index)


@pytest.fixture
def settings(tmp_path: Path) -> MediavaultSettings:
    return MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")


def ingest_fixtures(target: IndexTarget, settings: MediavaultSettings, tmp_path: Path) -> dict[str, str]:
    ids = {}
    for i, (name, seconds, owner) in enumerate(FIXTURES):
        media = make_wav(tmp_path / "media" / f"{i}.wav", seconds, frequency=200 + 50 * i)
        result = ingest(
            target.vault,
            IngestRequest(
                media=str(media),
                outputs=[OutputSpec(str(REAL / name))],
                metadata={"title": name, "owner": owner, "language": "en"},
                provenance={"model": "whisperx"},
            ),
            settings,
        )
        ids[name] = result.media_id
    return ids


def snapshot(target: IndexTarget) -> tuple:
    generation = target.store.live_generation()
    media_docs = list(target.store.documents(generation))
    hits = target.search.search(SearchQuery(limit=200, sort="time", facets=True))
    return (
        json.dumps(media_docs, sort_keys=True, default=str),
        target.search.summary(target.search.live_generation()),
        sorted((h.id, h.text, h.speaker_name, h.start) for h in hits.hits),
        hits.facets,
    )


def test_full_rebuild_projects_everything(target, settings, tmp_path) -> None:
    ids = ingest_fixtures(target, settings, tmp_path)
    report = reindex.full_rebuild(target)
    assert report.switched and report.media == 3 and report.statements == 54 + 53 + 28
    hit = target.search.search(SearchQuery(text="Denise")).hits[0]
    assert hit.media_id == ids["whisperx_fr_call_diarized.json"] and hit.speaker_name.startswith("SPEAKER_")
    doc = live_media_collection(target.store.database).find_one(
        {"_id": ids["whisperx_fr_call_diarized.json"]}
    )
    assert doc["status"] == "committed" and doc["counts"]["statements"] == 54 and doc["tier"] == "hot"
    assert [s["label"] for s in doc["speakers"]] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert target.search.search(SearchQuery(owner="support")).total == 54 + 53


def test_edits_apply_at_once_survive_a_wipe_and_export(target, settings, tmp_path) -> None:
    ids = ingest_fixtures(target, settings, tmp_path)
    reindex.full_rebuild(target)
    french = ids["whisperx_fr_call_diarized.json"]
    manifest = manifests.latest_manifest(target.vault, french)
    run_id = manifest.current_run().run_id
    edits.add_edit(target.vault, french, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": "Agent"})
    edits.add_edit(
        target.vault, french, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": "Dr. Lee"}
    )
    edits.add_edit(
        target.vault, french, "correct-text", {"run_id": run_id, "seq": 2, "text": "Bonjour, Denise Dupont?"}
    )
    edits.add_edit(target.vault, french, "fix-metadata", {"title": "Appel client", "tags": ["call", "fr"]})
    reindex.reindex_media(target, [french])
    assert target.search.search(SearchQuery(speaker="Dr. Lee", media_id=french)).total > 0
    assert target.search.search(SearchQuery(speaker="Agent")).total == 0, "the latest rename wins"
    fixed = target.search.search(SearchQuery(text="Dupont")).hits
    assert len(fixed) == 1 and fixed[0].seq == 2 and fixed[0].title == "Appel client"
    raw = manifests.latest_manifest(target.vault, french)
    raw_json = next(a for a in raw.artifacts if a.kind == "raw-output")
    assert target.vault.get_bytes(raw_json.key) == (REAL / "whisperx_fr_call_diarized.json").read_bytes()
    assert [r.change for r in journal.read(target.vault)][-4:] == ["edit"] * 4

    before = snapshot(target)
    target.store.database.client.drop_database(target.store.database.name)
    target.search.destroy()
    assert target.search.live_generation() is None and target.store.live_generation() is None
    wiped = target
    reindex.full_rebuild(wiped)
    after = snapshot(wiped)
    assert after == before, "wipe + re-index must reproduce the index exactly, edits included"

    srt = export(target.vault, french, "srt")
    assert "[Dr. Lee]: Bonjour, Denise Dupont?" in srt and "SPEAKER_00" not in srt
    exported = json.loads(export(target.vault, french, "whisperx-json"))
    assert exported["segments"][2]["text"] == "Bonjour, Denise Dupont?"  # keeps the source spacing
    assert "WEBVTT" in export(target.vault, french, "vtt")


def test_bad_edits_are_rejected(target, settings, tmp_path) -> None:
    ids = ingest_fixtures(target, settings, tmp_path)
    media = ids["whisperx_en_call2_nospeaker.json"]
    run_id = manifests.latest_manifest(target.vault, media).current_run().run_id
    with pytest.raises(InputError, match=r"payload\.seq"):
        edits.add_edit(target.vault, media, "correct-text", {"run_id": run_id, "seq": 10_000, "text": "x"})
    with pytest.raises(InputError, match="kind"):
        edits.add_edit(target.vault, media, "delete-everything", {})
    with pytest.raises(InputError, match=r"payload\.display_name"):
        edits.add_edit(target.vault, media, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": ""})
    assert manifests.latest_manifest(target.vault, media).edits == []


def test_incremental_follows_the_journal_idempotently(target, settings, tmp_path) -> None:
    ingest_fixtures(target, settings, tmp_path)
    reindex.full_rebuild(target)
    jfk = ingest(
        target.vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))],
            metadata={"title": "JFK"},
        ),
        settings,
    )
    assert target.search.search(SearchQuery(text="Americans")).total == 0
    first = reindex.incremental(target)
    assert first["records"] == 1 and target.search.search(SearchQuery(text="Americans")).total == 1
    state = snapshot(target)
    second = reindex.incremental(target)
    assert second["records"] == 0 and snapshot(target) == state
    gen = target.store.live_generation()
    target.store.database.index_state.update_one({"_id": "live"}, {"$set": {f"checkpoints.{gen}": 0}})
    reindex.incremental(target)
    assert snapshot(target) == state, "replaying the whole journal again changes nothing"
    assert live_media_collection(target.store.database).count_documents({"_id": jfk.media_id}) == 1


def test_rebuild_misses_nothing_that_lands_while_it_runs(target, settings, tmp_path) -> None:
    ingest_fixtures(target, settings, tmp_path)
    reindex.full_rebuild(target)
    landed: list[str] = []

    def ingest_during_projection(done: int, total: int) -> None:
        if not landed:
            media = make_wav(tmp_path / "late.wav", 12, frequency=777)
            landed.append(
                ingest(
                    target.vault,
                    IngestRequest(media=str(media), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
                    settings,
                ).media_id
            )

    def ingest_just_before_switch() -> None:
        landed.append(
            ingest(
                target.vault,
                IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.srt"))]),
                settings,
            ).media_id
        )

    report = reindex.full_rebuild(
        target, chunk_size=1, progress=ingest_during_projection, before_switch=ingest_just_before_switch
    )
    assert report.caught_up_records >= 1
    assert target.search.search(SearchQuery(media_id=landed[0])).total == 1, "caught up from the journal"
    reindex.incremental(target)
    assert target.search.search(SearchQuery(media_id=landed[1])).total == 1, "the next incremental run has it"
    assert target.store.summary(target.store.live_generation())[0] == 5


def test_killed_rebuild_leaves_the_old_generation_serving(target, settings, tmp_path) -> None:
    ingest_fixtures(target, settings, tmp_path)
    first = reindex.full_rebuild(target)
    before = snapshot(target)

    class Killed(BaseException):
        pass

    def die(done: int, total: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        reindex.full_rebuild(target, chunk_size=1, progress=die)
    assert target.store.live_generation() == first.generation == target.search.live_generation()
    assert snapshot(target) == before

    target.search.create_generation(99)
    second = reindex.full_rebuild(target)
    assert second.generation not in (first.generation, 99) and snapshot(target)[1] == before[1]
    assert 99 not in target.search.generations(), "stale generations are cleaned up"
    assert reindex.rollback(target) == first.generation
    assert target.store.live_generation() == first.generation and snapshot(target) == before


def test_verification_refuses_to_switch_to_an_incomplete_generation(target, settings, tmp_path) -> None:
    ingest_fixtures(target, settings, tmp_path)
    first = reindex.full_rebuild(target)
    generation, start_seq, media_ids = reindex.start_rebuild(target)
    digests = reindex.ProjectedDigests()
    reindex.project_media(target, generation, media_ids, replace=False, digests=digests)
    target.search.delete_media(generation, media_ids[0])  # a document goes missing
    from mediavault.errors import IntegrityError

    with pytest.raises(IntegrityError, match="search holds"):
        reindex.finish_rebuild(target, generation, start_seq, digests, 0.0)
    assert target.search.live_generation() == first.generation


def test_targeted_selection(target, settings, tmp_path) -> None:
    ids = ingest_fixtures(target, settings, tmp_path)
    reindex.full_rebuild(target)
    assert sorted(reindex.select_media(target, owner="support")) == sorted(
        [ids["whisperx_fr_call_diarized.json"], ids["whisperx_en_call2_nospeaker.json"]]
    )
    some = ids["whisperx_en_schoolboard_short.json"]
    assert reindex.select_media(target, prefix=some[:6]) == [some]
    assert reindex.reindex_media(target, [some]) == 28
