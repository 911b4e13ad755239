"""Ingest end to end against every vault backend."""

from __future__ import annotations

import hashlib
import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from mediavault.formats.parquet import read_transcript
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.vault import Vault, journal, manifests
from mediavault.vault.keys import manifest_key
from tests.conftest import REAL
from tests.helpers import (
    JFK_JSON,
    JFK_MEDIA,
    assert_no_manifest_names_a_missing_object,
    make_wav,
    stored_keys,
)


def jfk_request(**provenance) -> IngestRequest:
    return IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(JFK_JSON)), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
        metadata={
            "title": "Inaugural address",
            "owner": "archive",
            "tags": ["speech", "1961"],
            "language": "en",
            "source_url": "https://example.org/jfk",
        },
        provenance=provenance
        or {"model": "openai-whisper", "version": "20231117", "parameters": {"model": "tiny"}},
    )


def test_ingest_commits_everything_with_checksums(vault: Vault, settings_for) -> None:
    result = ingest(vault, jfk_request(), settings_for(vault))
    media_bytes = JFK_MEDIA.read_bytes()
    assert result.media_id == hashlib.sha256(media_bytes).hexdigest()
    manifest = manifests.latest_manifest(vault, result.media_id)
    assert manifest is not None and manifest.version == 1 and manifest.schema_version == 1
    assert manifest.media.probe.container == "flac"
    assert abs(manifest.media.probe.duration_seconds - 11.0) < 0.01
    assert manifest.media.probe.streams[0].codec == "flac"
    kinds = sorted(a.kind for a in manifest.artifacts)
    assert kinds == sorted(["media", "raw-output", "raw-output", "statements", "words", "srt", "vtt", "txt"])
    for artifact in manifest.artifacts:
        stored = vault.get_bytes(artifact.key)
        assert hashlib.sha256(stored).hexdigest() == artifact.sha256
        assert len(stored) == artifact.size and artifact.tier == "hot" and artifact.schema_version == 1
    raw = next(a for a in manifest.artifacts if a.format == "whisper-json")
    assert vault.get_bytes(raw.key) == JFK_JSON.read_bytes(), "raw output must be byte-exact"
    srt = next(a for a in manifest.artifacts if a.kind == "srt")
    assert vault.get_bytes(srt.key) == (REAL / "whisper_en_jfk.srt").read_bytes()
    run = manifest.runs[0]
    assert run.provenance.model == "openai-whisper" and run.primary_format == "whisper-json"
    records = list(journal.read(vault))
    assert [(r.seq, r.change, r.media_id, r.manifest_version) for r in records] == [
        (1, "ingest", result.media_id, 1)
    ]


def test_reingest_writes_zero_new_objects(vault: Vault, settings_for) -> None:
    settings = settings_for(vault)
    first = ingest(vault, jfk_request(), settings)
    before = stored_keys(vault)
    again = ingest(vault, jfk_request(), settings)
    assert again.created_objects == 0 and not again.changed
    assert again.media_id == first.media_id and again.run_id == first.run_id
    assert stored_keys(vault) == before
    assert len(list(journal.read(vault))) == 1


def test_new_run_adds_and_never_touches_earlier_runs(vault: Vault, settings_for) -> None:
    settings = settings_for(vault)
    first = ingest(vault, jfk_request(), settings)
    v1_bytes = vault.get_bytes(manifest_key(first.media_id, 1))
    earlier = {k: vault.get_bytes(k) for k in stored_keys(vault)}
    second = ingest(
        vault,
        jfk_request(model="openai-whisper", version="20231117", parameters={"model": "large-v3"}),
        settings,
    )
    assert second.media_id == first.media_id and second.run_id != first.run_id
    assert second.manifest_version == 2
    for key, data in earlier.items():
        assert vault.get_bytes(key) == data, f"{key} changed"
    assert vault.get_bytes(manifest_key(first.media_id, 1)) == v1_bytes
    manifest = manifests.latest_manifest(vault, first.media_id)
    assert [r.run_id for r in manifest.runs] == [first.run_id, second.run_id]
    assert manifest.previous_version == 1 and manifest.change == "new-run"
    assert [r.change for r in journal.read(vault)] == ["ingest", "new-run"]


def test_normalized_parquet_of_a_real_whisperx_output(vault: Vault, settings_for, tmp_path) -> None:
    media = make_wav(tmp_path / "call.wav", seconds=210)
    name = "whisperx_fr_call_diarized.json"
    request = IngestRequest(
        media=str(media),
        outputs=[OutputSpec(str(REAL / name))],
        metadata={"title": "Appel"},
        provenance={"model": "whisperx"},
    )
    result = ingest(vault, request, settings_for(vault))
    manifest = manifests.latest_manifest(vault, result.media_id)
    key_of = {a.kind: a.key for a in manifest.artifacts}
    table = pq.read_table(pa.BufferReader(vault.get_bytes(key_of["statements"])))
    assert table.num_rows == 54
    assert set(table.column("speaker").to_pylist()) == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    assert table.column("media_id").to_pylist()[0] == result.media_id
    transcript = read_transcript(vault.get_bytes(key_of["statements"]), vault.get_bytes(key_of["words"]))
    assert transcript.to_json_obj() == json.loads((REAL / name).read_bytes())
    assert manifest.runs[0].speakers == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]


def test_media_without_outputs_is_committed_alone(vault: Vault, settings_for) -> None:
    result = ingest(vault, IngestRequest(media=str(JFK_MEDIA)), settings_for(vault))
    manifest = manifests.latest_manifest(vault, result.media_id)
    assert manifest.runs == [] and [a.kind for a in manifest.artifacts] == ["media"]


def test_concurrent_new_runs_lose_no_update(vault: Vault, settings_for) -> None:
    settings = settings_for(vault)
    base = ingest(vault, IngestRequest(media=str(JFK_MEDIA)), settings)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def add_run(i: int) -> None:
        barrier.wait()
        try:
            ingest(vault, jfk_request(model="whisper", parameters={"beam": i}), settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add_run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert manifests.manifest_versions(vault, base.media_id) == [1, 2, 3, 4, 5]
    manifest = manifests.latest_manifest(vault, base.media_id)
    assert sorted(r.provenance.parameters["beam"] for r in manifest.runs) == [0, 1, 2, 3]
    assert assert_no_manifest_names_a_missing_object(vault) == 1


def test_journal_appends_from_many_writers_are_gapless(vault: Vault) -> None:
    barrier = threading.Barrier(5)

    def write(i: int) -> None:
        barrier.wait()
        for j in range(4):
            journal.append(vault, "ingest", f"{i:064x}", j + 1, f"manifests/{i}/{j}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = list(journal.read(vault))
    assert [r.seq for r in records] == list(range(1, 21))
    assert len({(r.media_id, r.manifest_version) for r in records}) == 20
    assert [r.seq for r in journal.read(vault, after_seq=17)] == [18, 19, 20]
    assert journal.find_tail(vault) == 20
