"""Memory benchmark: peak RSS of archive, restore and re-index projection on large objects.

Each operation runs in a fresh child process, which first does the same operation on a small
object (so imports, allocator arenas and codec contexts are warm), takes its peak RSS
(ru_maxrss) as the baseline, then does the large one. Printed per operation: the baseline, the
peak, the rise (peak - baseline) in MiB and the ratio peak / baseline, with the target beside:

  archive  2 GiB noise WAV, policy media: archive + compress (zstd copy, verify, delete hot)
  restore  the same object back from its compressed archive copy (decompress, store, verify)
  project  a ~100 MiB statements Parquet, every search document of it (re-index)

Target: flat, i.e. the rise stays under 256 MiB whatever the object size (the old code buffered
whole objects: about 2-3x the object size). Local vault; all data lives in a temporary directory
(MEDIAVAULT_BENCH_DIR, default the system temp dir; needs about 2x the media size free) that is
removed afterwards. This is a benchmark, not a test.
Usage: python bench/memory.py [--media-mib 2048] [--transcript-mib 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mediavault.formats.parquet import STATEMENTS_SCHEMA
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, Vault, manifests, open_vault
from mediavault.vault.keys import run_derived
from mediavault.vault.models import Artifact, utc_now

MIB = 1024 * 1024
RISE_TARGET_MIB = 256
BIG_RUN_ID = "b" * 32
JFK_JSON = Path(__file__).resolve().parents[1] / "mediavault" / "samples" / "whisper_en_jfk.json"


def write_noise_wav(path: Path, size_mib: int, seed: int) -> Path:
    """A real PCM WAV of ``size_mib`` MiB of noise (zstd cannot shrink it, like real audio)."""
    rng = np.random.default_rng(seed)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        for _ in range(max(1, size_mib // 8)):
            out.writeframes(rng.bytes(8 * MIB))
    return path


def write_statements_parquet(path: Path, media_id: str, text_mib: int) -> int:
    """Statements in the ingest's layout (one row group, zstd, dictionary), ~1 KB of random letters
    each. Returns the row count."""
    rng = np.random.default_rng(11)
    rows = max(1, text_mib * MIB // 1024)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(rng.integers(512, 1536, rows), out=offsets[1:])
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", dtype=np.uint8)
    data = letters[rng.integers(0, len(letters), int(offsets[-1]), dtype=np.uint8)]
    seq = np.arange(rows, dtype=np.int32)
    columns: dict[str, Any] = {
        "media_id": pa.array([media_id] * rows),
        "run_id": pa.array([BIG_RUN_ID] * rows),
        "seq": seq,
        "start": seq * 2.0,
        "end": seq * 2.0 + 1.5,
        "speaker": pa.array([f"SPEAKER_{i % 5:02d}" for i in range(rows)]),
        "text": pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data)),
        "language": pa.array(["en"] * rows),
        "has_words": np.zeros(rows, dtype=bool),
    }
    arrays = [
        pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(rows, f.type)
        for f in STATEMENTS_SCHEMA
    ]
    table = pa.Table.from_arrays(arrays, schema=STATEMENTS_SCHEMA)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)
    return rows


def commit_big_run(vault: Vault, media_id: str, parquet_path: Path, rows: int) -> None:
    """Make ``parquet_path`` the statements of a new current run of ``media_id``."""
    key = run_derived(media_id, BIG_RUN_ID, "statements.parquet")
    with open(parquet_path, "rb") as stream:
        stored = vault.put_stream(stream, lambda _sha: key, "application/vnd.apache.parquet")

    def derive(current):
        updated = current.model_copy(deep=True)
        updated.runs.append(
            updated.runs[-1].model_copy(update={"run_id": BIG_RUN_ID, "statement_count": rows})
        )
        updated.change, updated.created_at = "new-run", utc_now()
        updated.artifacts.append(
            Artifact(
                key=key,
                sha256=stored.sha256,
                size=stored.size,
                kind="statements",
                content_type="application/vnd.apache.parquet",
                run_id=BIG_RUN_ID,
            )
        )
        return updated

    manifests.commit(vault, media_id, derive)


# --- child side -------------------------------------------------------------------------------


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def archive(vault: Vault, media_id: str) -> None:
    from mediavault.lifecycle.engine import run
    from mediavault.lifecycle.policy import Policies, Rule

    policies = Policies(media=Rule(action="archive", after_days=1, compress=True))
    report = run(vault, policies, dry_run=False, now=utc_now() + timedelta(days=30))
    media = next(a for a in manifests.latest_manifest(vault, media_id).artifacts if a.kind == "media")
    if report.errors or media.tier != "archive" or media.archive.compression != "zstd":
        raise RuntimeError(f"archive failed: {report.errors}")


def restore(vault: Vault, media_id: str) -> None:
    from mediavault.lifecycle.engine import restore_media

    if not restore_media(vault, media_id)["restored"]:
        raise RuntimeError("nothing restored")


def project_all(vault: Vault, media_id: str) -> int:
    from mediavault.index.projection import project

    count = 0
    for batch in project(vault, media_id)[1]:
        count += len(batch)
    return count


def child(op: str, spec: dict[str, Any]) -> dict[str, Any]:
    after_imports = peak_mib()
    small, large = open_vault(spec["small_url"]), open_vault(spec["url"])
    action = {"archive": archive, "restore": restore, "project": project_all}[op]
    action(small, spec["small_media_id"])
    baseline = peak_mib()
    started = time.perf_counter()
    result = action(large, spec["media_id"])
    seconds = time.perf_counter() - started
    return {
        "after_imports": after_imports,
        "baseline": baseline,
        "peak": peak_mib(),
        "seconds": seconds,
        "documents": result,
    }


# --- parent side ------------------------------------------------------------------------------


def run_child(op: str, spec: dict[str, Any]) -> dict[str, Any]:
    # Linux carries the parent's peak RSS into an exec'd child's ru_maxrss; a child forked by a
    # small shell (which then waits, so it cannot just exec) starts from the shell's peak instead.
    command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, __file__, "--child", op]
    completed = subprocess.run(command, input=json.dumps(spec), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"child {op} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def report(label: str, size_mib: float, result: dict[str, Any]) -> None:
    rise = result["peak"] - result["baseline"]
    verdict = "ok" if rise < RISE_TARGET_MIB else "OVER"
    rate = size_mib / result["seconds"] if result["seconds"] else 0.0
    print(
        f"{label:8} {size_mib:7.0f} MiB in {result['seconds']:6.1f}s ({rate:4.0f} MiB/s): "
        f"RSS after imports {result['after_imports']:.0f} MiB, baseline {result['baseline']:.0f} MiB, "
        f"peak {result['peak']:.0f} MiB, rise {rise:.0f} MiB = {rise / size_mib:.1%} of the object, "
        f"peak/baseline {result['peak'] / result['baseline']:.2f} "
        f"(target: flat, rise < {RISE_TARGET_MIB} MiB) {verdict}"
    )


def settings_for(vault: LocalVault, home: Path) -> MediavaultSettings:
    return MediavaultSettings(home=home, vault_url=vault.url, mongo_mode="disabled")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media-mib", type=int, default=2048)
    parser.add_argument("--transcript-mib", type=int, default=100, help="statements Parquet size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(sys.stdin.read()))))
        return

    with tempfile.TemporaryDirectory(dir=os.environ.get("MEDIAVAULT_BENCH_DIR")) as tmp:
        work = Path(tmp)
        home = work / "home"
        small, large = LocalVault(work / "small"), LocalVault(work / "large")

        # archive + restore: a small warm-up item and the large one, media only
        small_wav = write_noise_wav(work / "small.wav", 8, seed=1)
        small_id = ingest(small, IngestRequest(media=str(small_wav)), settings_for(small, home)).media_id
        big_wav = write_noise_wav(work / "big.wav", args.media_mib, seed=2)
        size_mib = big_wav.stat().st_size / MIB
        big_id = ingest(large, IngestRequest(media=str(big_wav)), settings_for(large, home)).media_id
        big_wav.unlink()
        spec = {"url": large.url, "media_id": big_id, "small_url": small.url, "small_media_id": small_id}
        report("archive", size_mib, run_child("archive", spec))
        report("restore", size_mib, run_child("restore", spec))
        for directory in ("large", "large-archive"):  # free the disk early
            shutil.rmtree(work / directory, ignore_errors=True)

        # re-index projection: a ~1/10 warm-up Parquet and the large one, each on its own item
        text_mib = int(args.transcript_mib * 1.6)  # random letters: Parquet is ~60 % of the text
        ids = {}
        for name, mib, seed in (("small", max(16, text_mib // 10), 3), ("large", text_mib, 4)):
            wav = write_noise_wav(work / f"{name}-p.wav", 3, seed=seed)  # 16 s: JFK's output fits
            vault = LocalVault(work / f"{name}-p")
            request = IngestRequest(media=str(wav), outputs=[OutputSpec(str(JFK_JSON))])
            ids[name] = ingest(vault, request, settings_for(vault, home)).media_id
            parquet_path = work / f"{name}.parquet"
            rows = write_statements_parquet(parquet_path, ids[name], mib)
            if name == "large":
                parquet_mib = parquet_path.stat().st_size / MIB
            commit_big_run(vault, ids[name], parquet_path, rows)
            parquet_path.unlink()
        spec = {
            "url": (work / "large-p").as_uri(),
            "media_id": ids["large"],
            "small_url": (work / "small-p").as_uri(),
            "small_media_id": ids["small"],
        }
        result = run_child("project", spec)
        report("project", parquet_mib, result)
        print(f"         projected {result['documents']:,} statement documents")


if __name__ == "__main__":
    main()
