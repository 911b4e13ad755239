"""The Prefect flows against a real temporary Prefect API, SecantusDB and moto S3."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Failed

from flows.ingest import batch_ingest_flow, ingest_flow
from mediavault.errors import InputError, TransientError
from mediavault.ingest.pipeline import IngestRequest
from mediavault.settings import S3Options
from mediavault.vault import LocalVault, manifests, open_vault
from mediavault.vault.s3 import make_s3_client
from tasks.common import retry_only_transient
from tasks.ingest import validate_inputs
from tests.conftest import REAL
from tests.helpers import JFK_JSON, JFK_MEDIA, make_wav, stored_keys

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def env_for(monkeypatch, tmp_path: Path, mongo_url: str):
    def apply(vault_url: str, s3: S3Options | None = None) -> None:
        monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MEDIAVAULT_VAULT_URL", vault_url)
        monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "external")
        monkeypatch.setenv("MEDIAVAULT_MONGO_URL", mongo_url)
        monkeypatch.setenv("MEDIAVAULT_MONGO_DATABASE", f"flows_{tmp_path.name[-20:]}")
        if s3:
            monkeypatch.setenv("MEDIAVAULT_S3__ENDPOINT_URL", s3.endpoint_url)
            monkeypatch.setenv("MEDIAVAULT_S3__ACCESS_KEY_ID", s3.access_key_id)
            monkeypatch.setenv("MEDIAVAULT_S3__SECRET_ACCESS_KEY", s3.secret_access_key.get_secret_value())
            monkeypatch.setenv("MEDIAVAULT_S3__PATH_STYLE", "true")

    return apply


def mongo(mongo_url: str, tmp_path: Path):
    from pymongo import MongoClient

    return MongoClient(mongo_url, tz_aware=True)[f"flows_{tmp_path.name[-20:]}"]


async def _artifacts(key: str):
    async with get_client() as client:
        response = await client._client.post(
            "/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "limit": 50}
        )
        return response.json()


JFK_PARAMETERS = {
    "media": str(JFK_MEDIA), "outputs": [str(JFK_JSON)], "title": "JFK", "owner": "archive",
    "tags": ["speech"], "language": "en", "model": "openai-whisper", "model_version": "20231117",
    "model_parameters": {"model": "tiny"},
}  # fmt: skip


def test_ingest_flow_commits_and_records_status(tmp_path: Path, env_for, mongo_url: str) -> None:
    vault_dir = tmp_path / "vault"
    env_for(vault_dir.as_uri())
    result = ingest_flow(**JFK_PARAMETERS)
    assert result["changed"] and result["manifest_version"] == 1
    manifest = manifests.latest_manifest(LocalVault(vault_dir), result["media_id"])
    assert manifest.metadata.owner == "archive"
    assert manifest.runs[0].provenance.parameters == {"model": "tiny"}
    db = mongo(mongo_url, tmp_path)
    record = db.media.find_one({"_id": result["media_id"]})
    assert record["status"] == "committed" and record["title"] == "JFK"
    events = [e["event"] for e in db.job_events.find({"media_id": result["media_id"]}).sort("at", 1)]
    assert events == ["media-stored", "committed"]
    summaries = asyncio.run(_artifacts("ingest-summary"))
    assert any(result["media_id"][:16] in (a["data"] or "") for a in summaries)
    again = ingest_flow(**JFK_PARAMETERS)
    assert again["created_objects"] == 0 and not again["changed"]


def test_ingest_flow_over_s3(tmp_path: Path, env_for, s3_options, s3_bucket) -> None:
    env_for(f"s3://{s3_bucket}/vault", s3_options)
    result = ingest_flow(media=str(JFK_MEDIA), outputs=[str(JFK_JSON), str(REAL / "whisper_en_jfk.vtt")])
    vault = open_vault(f"s3://{s3_bucket}/vault", s3_options)
    manifest = manifests.latest_manifest(vault, result["media_id"])
    assert {a.kind for a in manifest.artifacts} >= {"media", "raw-output", "statements", "words", "vtt"}


def test_ingest_flow_from_s3_source_media(tmp_path: Path, env_for, s3_options, s3_bucket) -> None:
    env_for((tmp_path / "vault").as_uri(), s3_options)
    client = make_s3_client(s3_options)
    client.upload_file(str(JFK_MEDIA), s3_bucket, "inbox/jfk.flac")
    client.upload_file(str(JFK_JSON), s3_bucket, "inbox/jfk.json")
    result = ingest_flow(
        media=f"s3://{s3_bucket}/inbox/jfk.flac", outputs=[f"s3://{s3_bucket}/inbox/jfk.json"]
    )
    manifest = manifests.latest_manifest(LocalVault(tmp_path / "vault"), result["media_id"])
    assert manifest.media.size == JFK_MEDIA.stat().st_size
    assert manifest.media.probe.container == "flac"


def _transcript(path: Path, text: str) -> Path:
    path.write_text(json.dumps({"segments": [{"start": 0.0, "end": 1.0, "text": text}], "language": "en"}))
    return path


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_source_overwritten_with_other_bytes_of_the_same_size_is_not_served_from_cache(
    tmp_path: Path, env_for, s3_options, s3_bucket, where: str
) -> None:
    """The media cache must key on the content's identity, not on name and size: otherwise the
    second run's transcripts are committed against the first run's media."""
    import hashlib
    import os

    env_for((tmp_path / "vault").as_uri(), s3_options)
    first, second = (
        make_wav(tmp_path / "a" / "talk.wav", 2, 440),
        make_wav(tmp_path / "b" / "talk.wav", 2, 660),
    )
    assert first.stat().st_size == second.stat().st_size and first.read_bytes() != second.read_bytes()
    client = make_s3_client(s3_options)
    local = tmp_path / "inbox" / "talk.wav"
    local.parent.mkdir()
    results = []
    for number, (media, text) in enumerate([(first, "first words"), (second, "second words")]):
        transcript = _transcript(tmp_path / f"t{number}.json", text)
        if where == "s3":
            client.upload_file(str(media), s3_bucket, "inbox/talk.wav")
            location = f"s3://{s3_bucket}/inbox/talk.wav"
        else:
            shutil.copyfile(media, local)
            os.utime(local, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))  # same mtime
            location = str(local)
        results.append(ingest_flow(media=location, outputs=[str(transcript)]))
    vault = LocalVault(tmp_path / "vault")
    assert results[1]["media_id"] == hashlib.sha256(second.read_bytes()).hexdigest()
    manifest = manifests.latest_manifest(vault, results[1]["media_id"])
    raw = next(a for a in manifest.artifacts if a.kind == "raw-output")
    assert b"second words" in vault.get_bytes(raw.key)
    assert (
        "second words"
        not in vault.get_bytes(
            next(
                a.key
                for a in manifests.latest_manifest(vault, results[0]["media_id"]).artifacts
                if a.kind == "txt"
            )
        ).decode()
    )


def test_bad_input_fails_without_retry_and_writes_nothing(tmp_path: Path, env_for, mongo_url) -> None:
    vault_dir = tmp_path / "vault"
    env_for(vault_dir.as_uri())
    bad = tmp_path / "bad.json"
    bad.write_text('{"segments": [{"start": 1, "end": 0.5, "text": "x"}]}')
    state = ingest_flow(media=str(JFK_MEDIA), outputs=[str(bad)], return_state=True)
    assert state.is_failed()
    with pytest.raises(InputError, match=r"bad.json: segments\[0\].end"):
        state.result()
    assert not vault_dir.exists() or stored_keys(LocalVault(vault_dir)) == []
    rejected = mongo(mongo_url, tmp_path).job_events.find_one({"event": "rejected"})
    assert "segments[0].end" in rejected["detail"]["error"]


def test_retry_condition_retries_only_transient_faults() -> None:
    class FakeState:  # the shape Prefect passes: .data holds the raised exception
        def __init__(self, error: BaseException) -> None:
            self.data = error

    assert retry_only_transient(None, None, FakeState(TransientError("503")))
    assert retry_only_transient(None, None, FakeState(EndpointConnectionError(endpoint_url="http://x")))
    assert not retry_only_transient(None, None, FakeState(InputError("f", "x", "bad")))
    assert not retry_only_transient(None, None, FakeState(ValueError("bug")))


def test_validation_task_runs_once_and_a_transient_fault_is_retried(tmp_path: Path) -> None:
    calls = {"flaky": 0}
    from prefect import task

    from tasks.common import RETRYING

    @task(**{**RETRYING, "retry_delay_seconds": 0})
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise TransientError("HTTP 503 from the object store")
        return "ok"

    @flow
    def probe_flow():
        bad = validate_inputs(
            IngestRequest(media=str(tmp_path / "missing.flac")), _settings(tmp_path), return_state=True
        )
        return flaky(), bad

    flaky_result, bad_state = probe_flow()
    assert flaky_result == "ok" and calls["flaky"] == 3
    assert bad_state.is_failed()
    task_run_id = bad_state.state_details.task_run_id

    async def run_count() -> int:
        async with get_client() as client:
            return (await client.read_task_run(task_run_id)).run_count

    assert asyncio.run(run_count()) == 1, "validation errors must never be retried"


def _settings(tmp_path: Path):
    from mediavault.settings import MediavaultSettings

    return MediavaultSettings(home=tmp_path / "h", mongo_mode="disabled")


def make_inbox(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copyfile(JFK_MEDIA, folder / "jfk.flac")
    shutil.copyfile(JFK_JSON, folder / "jfk.json")
    shutil.copyfile(REAL / "whisper_en_jfk.srt", folder / "jfk.srt")
    (folder / "jfk.meta.json").write_text(
        json.dumps({"metadata": {"title": "Ask not"}, "provenance": {"model": "openai-whisper"}})
    )
    make_wav(folder / "tone.wav", seconds=2)
    make_wav(folder / "broken.wav", seconds=3, frequency=300)
    (folder / "broken.json").write_text('{"segments": [')
    (folder / "orphan.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n\n")
    (folder / "README.txt").write_text("ignored")
    return folder


def check_report(report: dict) -> None:
    by_name = {r["name"]: r for r in report["results"]}
    assert set(by_name) == {"jfk", "tone", "broken", "orphan"}
    assert by_name["jfk"]["ok"] and by_name["tone"]["ok"]
    assert not by_name["broken"]["ok"] and "broken.json" in by_name["broken"]["error"]
    assert "line 1" in by_name["broken"]["error"] and by_name["broken"]["attempts"] == 1
    assert not by_name["orphan"]["ok"] and "no media file" in by_name["orphan"]["error"]
    assert report["succeeded"] == 2 and report["failed"] == 2
    assert report["ignored"] == ["README.txt"], "every file is accounted for"


def test_batch_ingest_from_a_folder(tmp_path: Path, env_for) -> None:
    env_for((tmp_path / "vault").as_uri())
    inbox_dir = make_inbox(tmp_path / "inbox")
    state = batch_ingest_flow(
        source=str(inbox_dir), owner="team-a", chunk_size=1, max_concurrency=2, return_state=True
    )
    assert isinstance(state, type(Failed())) or state.is_failed()
    report = state.result(raise_on_failure=False)
    check_report(report)
    vault = LocalVault(tmp_path / "vault")
    assert len(manifests.list_media_ids(vault)) == 2
    jfk = manifests.latest_manifest(
        vault, next(r["media_id"] for r in report["results"] if r["name"] == "jfk")
    )
    assert jfk.metadata.title == "Ask not" and jfk.metadata.owner == "team-a"
    assert asyncio.run(_artifacts("batch-ingest-report"))


def test_batch_ingest_from_an_s3_inbox(tmp_path: Path, env_for, s3_options, s3_bucket) -> None:
    env_for(f"s3://{s3_bucket}/vault", s3_options)
    local = make_inbox(tmp_path / "inbox")
    client = make_s3_client(s3_options)
    for path in local.iterdir():
        client.upload_file(str(path), s3_bucket, f"inbox/{path.name}")
    client.put_object(Bucket=s3_bucket, Key="inbox/", Body=b"")  # a folder marker, as consoles make
    state = batch_ingest_flow(source=f"s3://{s3_bucket}/inbox/", chunk_size=3, return_state=True)
    check_report(state.result(raise_on_failure=False))
    assert len(manifests.list_media_ids(open_vault(f"s3://{s3_bucket}/vault", s3_options))) == 2
