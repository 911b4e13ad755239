"""Large objects go through archive (compress + copy + verify), restore (decompress) and re-index
projection with bounded memory.

Each measurement runs in a fresh child process (``python -m tests.test_streaming_memory OP``): it
warms the same code path up on a small object, takes its peak RSS (ru_maxrss) as the baseline,
then handles the large object and reports how far the peak rose above the baseline. Buffering the
object whole would raise it by at least the object's size.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.memory import MIB, commit_big_run, peak_mib, write_noise_wav, write_statements_parquet
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.settings import MediavaultSettings, S3Options
from mediavault.vault import LocalVault, Vault, manifests, open_vault
from mediavault.vault.models import utc_now
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import SMALL_OBJECT_BYTES

ROOT = Path(__file__).resolve().parents[1]
MEDIA_MIB = 160
PARQUET_TEXT_MIB = 200  # random letters: the Parquet file is about 60 % of this
WARM_UP_TEXT_MIB = 20

pytestmark = pytest.mark.slow


# --- the child process ------------------------------------------------------------------------


def _child_vault(spec: dict[str, Any]) -> Vault:
    options = S3Options(**spec["s3"]) if spec.get("s3") else None
    return open_vault(spec["url"], options)


def _archive(vault: Vault, media_id: str) -> dict[str, Any]:
    from mediavault.lifecycle.engine import run
    from mediavault.lifecycle.policy import Policies, Rule

    policies = Policies(media=Rule(action="archive", after_days=1, compress=True))
    report = run(vault, policies, dry_run=False, now=utc_now() + timedelta(days=30))
    media = next(a for a in manifests.latest_manifest(vault, media_id).artifacts if a.kind == "media")
    compression = media.archive.compression if media.archive else None
    return {"errors": report.errors, "tier": media.tier, "compression": compression}


def _child_archive(vault: Vault, spec: dict[str, Any]) -> dict[str, Any]:
    warm_up = _archive(open_vault(spec["warm_up_url"]), spec["warm_up_media_id"])
    assert not warm_up["errors"], warm_up
    baseline = peak_mib()
    return {"baseline": baseline, **_archive(vault, spec["media_id"]), "peak": peak_mib()}


def _child_restore(vault: Vault, spec: dict[str, Any]) -> dict[str, Any]:
    from mediavault.lifecycle.engine import restore_media

    assert restore_media(open_vault(spec["warm_up_url"]), spec["warm_up_media_id"])["restored"]
    baseline = peak_mib()
    result = restore_media(vault, spec["media_id"])
    return {"baseline": baseline, "peak": peak_mib(), "restored": result["restored"]}


def _child_project(vault: Vault, spec: dict[str, Any]) -> dict[str, Any]:
    from mediavault.index.projection import project

    def consume(media_id: str) -> tuple[int, int]:
        projection, batches = project(vault, media_id)
        count, last = 0, -1
        for batch in batches:
            for document in batch:
                if document["kind"] == "media":  # the item's own search document (title, tags) comes first
                    continue
                assert document["seq"] == last + 1
                last = document["seq"]
                count += 1
        return count, projection.statement_count

    consume(spec["small_media_id"])
    baseline = peak_mib()
    count, expected = consume(spec["media_id"])
    return {"baseline": baseline, "peak": peak_mib(), "count": count, "expected": expected}


CHILD_OPS = {"archive": _child_archive, "restore": _child_restore, "project": _child_project}


def run_child(op: str, spec: dict[str, Any]) -> dict[str, Any]:
    # Linux carries the parent's peak RSS into an exec'd child's ru_maxrss; a child forked by a
    # small shell (which then waits, so it cannot just exec) starts from the shell's peak instead.
    completed = subprocess.run(
        ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-m", "tests.test_streaming_memory", op],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def vault_spec(vault: Vault) -> dict[str, Any]:
    if not isinstance(vault, S3Vault):
        return {"url": vault.url}
    options = vault.options.model_dump(mode="json", exclude={"secret_access_key", "session_token"})
    options["secret_access_key"] = vault.options.secret_access_key.get_secret_value()
    return {"url": vault.url, "s3": options}


# --- the tests --------------------------------------------------------------------------------


def settings_for_vault(vault: Vault, tmp_path: Path) -> MediavaultSettings:
    s3 = vault.options if isinstance(vault, S3Vault) else S3Options()
    return MediavaultSettings(home=tmp_path / "home", vault_url=vault.url, s3=s3, mongo_mode="disabled")


@pytest.fixture
def large_media(tmp_path: Path) -> dict[str, Any]:
    """Child spec: a local vault holding a large noise WAV, and a warm-up vault with a small one."""
    from tests.helpers import make_wav

    warm_up = LocalVault(tmp_path / "warm-up")
    request = IngestRequest(media=str(make_wav(tmp_path / "tone.wav", 2.0)))
    warm_up_id = ingest(warm_up, request, settings_for_vault(warm_up, tmp_path)).media_id
    vault = LocalVault(tmp_path / "vault")
    media = write_noise_wav(tmp_path / "noise.wav", MEDIA_MIB, seed=7)
    size_mib = media.stat().st_size / MIB
    media_id = ingest(vault, IngestRequest(media=str(media)), settings_for_vault(vault, tmp_path)).media_id
    media.unlink()
    return {
        **vault_spec(vault),
        "media_id": media_id,
        "size_mib": size_mib,
        "warm_up_url": warm_up.url,
        "warm_up_media_id": warm_up_id,
    }


@pytest.mark.hardening
def test_archiving_large_media_with_compression_stays_flat(large_media: dict[str, Any]) -> None:
    vault, size_mib = open_vault(large_media["url"]), large_media["size_mib"]
    archived = run_child("archive", large_media)
    assert archived["errors"] == [] and archived["tier"] == "archive" and archived["compression"] == "zstd"
    assert vault.head(f"media/{large_media['media_id']}/original") is None
    rise = archived["peak"] - archived["baseline"]
    print(f"archive {size_mib:.0f} MiB: baseline {archived['baseline']:.0f} MiB, rise {rise:.0f} MiB")
    assert rise < size_mib / 4, f"archiving {size_mib:.0f} MiB raised peak RSS by {rise:.0f} MiB"


@pytest.mark.hardening
def test_restoring_large_compressed_media_stays_flat(large_media: dict[str, Any]) -> None:
    vault, size_mib = open_vault(large_media["url"]), large_media["size_mib"]
    key = f"media/{large_media['media_id']}/original"
    with vault.open_read(key) as stream:
        original_sha = hashlib.file_digest(stream, "sha256").hexdigest()
    assert _archive(vault, large_media["media_id"])["compression"] == "zstd"
    warm_up = open_vault(large_media["warm_up_url"])
    assert _archive(warm_up, large_media["warm_up_media_id"])["compression"] == "zstd"
    assert vault.head(key) is None
    restored = run_child("restore", large_media)
    assert restored["restored"] == [key]
    rise = restored["peak"] - restored["baseline"]
    print(f"restore {size_mib:.0f} MiB: baseline {restored['baseline']:.0f} MiB, rise {rise:.0f} MiB")
    assert rise < size_mib / 4, f"restoring {size_mib:.0f} MiB raised peak RSS by {rise:.0f} MiB"
    with vault.open_read(key) as stream:
        assert hashlib.file_digest(stream, "sha256").hexdigest() == original_sha


@pytest.mark.hardening
def test_projecting_a_large_statements_parquet_stays_flat(vault: Vault, tmp_path: Path) -> None:
    from tests.conftest import REAL
    from tests.helpers import make_wav

    settings = settings_for_vault(vault, tmp_path)
    jfk = OutputSpec(str(REAL / "whisper_en_jfk.json"))
    sizes: dict[str, float] = {}
    ids: dict[str, str] = {}
    for name, text_mib, frequency in (("small", WARM_UP_TEXT_MIB, 440.0), ("large", PARQUET_TEXT_MIB, 660.0)):
        wav = make_wav(tmp_path / f"{name}.wav", 12.0, frequency)
        ids[name] = ingest(vault, IngestRequest(media=str(wav), outputs=[jfk]), settings).media_id
        parquet_path = tmp_path / f"{name}.parquet"
        rows = write_statements_parquet(parquet_path, ids[name], text_mib)
        sizes[name] = parquet_path.stat().st_size / MIB
        commit_big_run(vault, ids[name], parquet_path, rows)
        parquet_path.unlink()
    assert sizes["small"] * MIB > SMALL_OBJECT_BYTES, "the warm-up must take the same (ranged) path"

    spec = {**vault_spec(vault), "media_id": ids["large"], "small_media_id": ids["small"]}
    projected = run_child("project", spec)
    assert projected["count"] == projected["expected"] == rows
    rise = projected["peak"] - projected["baseline"]
    size = sizes["large"]
    print(f"project {size:.0f} MiB Parquet: baseline {projected['baseline']:.0f} MiB, rise {rise:.0f} MiB")
    assert rise < sizes["large"] / 2, (
        f"projecting a {sizes['large']:.0f} MiB Parquet raised peak RSS by {rise:.0f} MiB"
    )


def _main() -> None:
    op = sys.argv[1]
    spec = json.loads(sys.stdin.read())
    print(json.dumps(CHILD_OPS[op](_child_vault(spec), spec)))


if __name__ == "__main__":
    _main()
