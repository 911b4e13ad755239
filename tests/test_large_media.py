"""Large media are streamed: the ingesting process's memory stays bounded whatever the file size.

The ingest runs in a child process so that only its own peak RSS is measured (moto's server, which
keeps objects in memory, runs in the test process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from mediavault.vault import Vault
from mediavault.vault.s3 import S3Vault


def big_wav(path: Path, mib: int) -> Path:
    rate = 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        second = os.urandom(rate * 4)
        for i in range(mib * 1024 * 1024 // len(second)):
            out.writeframes(second if i % 2 else second[::-1])
    return path


CHILD = """
import resource, sys
from mediavault.ingest.pipeline import IngestRequest, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
settings = MediavaultSettings()
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = ingest(vault_from_settings(settings), IngestRequest(media=sys.argv[1]), settings)
print(result.media_id, baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_ingest_of_large_media_keeps_memory_bounded(vault: Vault, tmp_path: Path) -> None:
    media = big_wav(tmp_path / "big.wav", mib=400)
    env = {
        **os.environ,
        "MEDIAVAULT_HOME": str(tmp_path / "home"),
        "MEDIAVAULT_MONGO_MODE": "disabled",
        "MEDIAVAULT_VAULT_URL": vault.url,
    }
    if isinstance(vault, S3Vault):
        env.update(
            {
                "MEDIAVAULT_S3__ENDPOINT_URL": vault.options.endpoint_url,
                "MEDIAVAULT_S3__ACCESS_KEY_ID": "testing",
                "MEDIAVAULT_S3__SECRET_ACCESS_KEY": "testing-secret",
                "MEDIAVAULT_S3__PATH_STYLE": "true",
                "MEDIAVAULT_S3__MULTIPART_CHUNKSIZE": str(8 * 1024 * 1024),
            }
        )
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(media)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    media_id, before_kib, peak_kib = done.stdout.split()
    assert vault.head(f"media/{media_id}/original").size == media.stat().st_size
    growth_mib = (int(peak_kib) - int(before_kib)) / 1024
    assert growth_mib < 200, f"ingest of a 400 MiB file grew peak RSS by {growth_mib:.0f} MiB"
