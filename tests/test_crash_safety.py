"""Killing ingest at any point, then re-running, ends with one complete media item and no manifest
that names a missing object."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.vault import Vault, journal, manifests
from mediavault.vault.s3 import S3Vault
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, assert_no_manifest_names_a_missing_object


class Crash(BaseException):
    """Stands in for the process dying (BaseException: nothing may catch it)."""


class CrashingVault:
    """Wraps a real vault and dies on the N-th write, like a kill between two steps."""

    def __init__(self, inner: Vault, crash_at_write: int) -> None:
        self.inner = inner
        self.url = inner.url
        self.crash_at_write = crash_at_write
        self.writes = 0

    def _tick(self) -> None:
        self.writes += 1
        if self.writes == self.crash_at_write:
            raise Crash(f"killed at write {self.writes}")

    def put_bytes(self, key, data, content_type=None):
        self._tick()
        return self.inner.put_bytes(key, data, content_type)

    def put_stream(self, stream, key_for, content_type=None, progress=None):
        self._tick()
        return self.inner.put_stream(stream, key_for, content_type, progress)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def request() -> IngestRequest:
    return IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json")), OutputSpec(str(REAL / "whisper_en_jfk.vtt"))],
        metadata={"title": "JFK"},
        provenance={"model": "openai-whisper"},
    )


def count_writes(vault: Vault, settings) -> int:
    probe = CrashingVault(vault, crash_at_write=10**9)
    ingest(probe, request(), settings)
    return probe.writes


def test_crash_at_every_write_then_rerun_converges(vault: Vault, settings_for, tmp_path: Path) -> None:
    settings = settings_for(vault)
    scratch = type(vault)  # the same backend, somewhere else, to count writes
    if isinstance(vault, S3Vault):
        counter_vault = S3Vault(vault.bucket, "write-counter", vault.options)
    else:
        counter_vault = scratch(tmp_path / "counter")
    total = count_writes(counter_vault, settings)
    assert total >= 11, "vault descriptor, media, 2 raw, 2 parquet, 3 renders, manifest, journal, marker"
    for crash_at in range(1, total + 1):
        if isinstance(vault, S3Vault):
            target: Vault = S3Vault(vault.bucket, f"crash-{crash_at}", vault.options)
        else:
            target = type(vault)(tmp_path / f"crash-{crash_at}")
        with pytest.raises(Crash):
            ingest(CrashingVault(target, crash_at), request(), settings)
        committed = assert_no_manifest_names_a_missing_object(target)
        assert committed in (0, 1)
        result = ingest(target, request(), settings)
        assert assert_no_manifest_names_a_missing_object(target) == 1
        manifest = manifests.latest_manifest(target, result.media_id)
        assert manifest.version == 1 and len(manifest.runs) == 1
        records = list(journal.read(target))
        assert {(r.media_id, r.manifest_version) for r in records} == {(result.media_id, 1)}, (
            f"crash at write {crash_at}: the manifest must end up journaled"
        )


def write_noise_wav(path: Path, seconds: int, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        for _ in range(seconds):
            out.writeframes(os.urandom(rate * 4))
    return path


CHILD = """
import sys
from mediavault.ingest.pipeline import IngestRequest, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
settings = MediavaultSettings()
print("started", flush=True)
ingest(vault_from_settings(settings), IngestRequest(media=sys.argv[1], metadata={"title": "big"}), settings)
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_sigkill_during_real_ingest_then_rerun(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    media = write_noise_wav(tmp_path / "big.wav", seconds=200)  # ~38 MB
    env = {**os.environ, "MEDIAVAULT_HOME": str(tmp_path / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}
    if backend == "s3":
        options = request.getfixturevalue("s3_options")
        bucket = request.getfixturevalue("s3_bucket")
        env.update(
            {
                "MEDIAVAULT_VAULT_URL": f"s3://{bucket}/killed",
                "MEDIAVAULT_S3__ENDPOINT_URL": options.endpoint_url,
                "MEDIAVAULT_S3__ACCESS_KEY_ID": "testing",
                "MEDIAVAULT_S3__SECRET_ACCESS_KEY": "testing-secret",
                "MEDIAVAULT_S3__PATH_STYLE": "true",
                "MEDIAVAULT_S3__MULTIPART_THRESHOLD": str(5 * 1024 * 1024),
                "MEDIAVAULT_S3__MULTIPART_CHUNKSIZE": str(5 * 1024 * 1024),
            }
        )
        vault: Vault = S3Vault(bucket, "killed", options)
    else:
        env["MEDIAVAULT_VAULT_URL"] = (tmp_path / "vault").as_uri()
        from mediavault.vault import LocalVault

        vault = LocalVault(tmp_path / "vault")
    scratch = {**env, "MEDIAVAULT_VAULT_URL": env["MEDIAVAULT_VAULT_URL"].rstrip("/") + "-timing"}
    timing = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(media)], env=scratch, stdout=subprocess.PIPE, text=True
    )
    assert timing.stdout.readline().strip() == "started"
    began = time.monotonic()
    assert timing.wait(timeout=300) == 0
    duration = time.monotonic() - began  # an uninterrupted ingest, so kills land inside one
    kills = 0
    for delay in (0.0, *(duration * f for f in (0.15, 0.35, 0.55, 0.75))):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(media)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "started"
        time.sleep(delay)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        assert assert_no_manifest_names_a_missing_object(vault) in (0, 1)
    assert kills >= 2, "the child finished too fast to be killed mid-way"
    final = subprocess.run(
        [sys.executable, "-c", CHILD, str(media)], env=env, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    assert assert_no_manifest_names_a_missing_object(vault) == 1
    media_id = manifests.list_media_ids(vault)[0]
    manifest = manifests.latest_manifest(vault, media_id)
    assert manifest.media.size == media.stat().st_size
    from datetime import timedelta

    from mediavault.lifecycle.engine import run
    from mediavault.lifecycle.policy import Policies
    from mediavault.vault.models import utc_now

    run(vault, Policies(), dry_run=False, now=utc_now() + timedelta(days=2))
    assert list(vault.staging_leftovers()) == [], "what the killed writers left is cleaned up"
    assert assert_no_manifest_names_a_missing_object(vault) == 1
