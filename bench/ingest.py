"""Ingest benchmark: a 512 MiB media file, measured against baselines run in the same process.

Prints two ratios (target <= 1.0 each):
  s3:    full ingest to an S3 vault / raw boto3 upload_file of the same file to the same endpoint,
         with the vault's client and request shape (a CRC32 with every part, as the vault sends
         them with s3.part_checksums on); printed for reference: upload_file with no checksums
         (the vault client's shape before part checksums) and boto3 with its defaults
  local: full ingest to a local vault / copying the file plus computing its sha256
It also prints the local ratio against copy+fsync+sha256: the vault fsyncs every object, so when
the disk writes slower than the page cache copies, the plain-copy baseline (which never waits for
the disk) is below what any durable ingest can reach; the durable ratio shows the distance to it.

The S3 endpoint is a moto server in a separate process on loopback (set MEDIAVAULT_BENCH_S3_URL,
_KEY and _SECRET to use another S3-compatible server instead). This is a benchmark, not a test.
Usage: python bench/ingest.py [--size-mib 512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig

from mediavault.ingest.pipeline import IngestRequest, ingest
from mediavault.settings import MediavaultSettings, S3Options
from mediavault.vault import LocalVault
from mediavault.vault.s3 import S3Vault, make_s3_client

TARGET_RATIO = 1.0


def write_media(path: Path, size_mib: int) -> Path:
    """A real PCM WAV of roughly ``size_mib`` MiB (noise), so probing works."""
    rate, frame_bytes = 48000, 4
    seconds = size_mib * 1024 * 1024 // (rate * frame_bytes)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        block = os.urandom(rate * frame_bytes)
        for i in range(seconds):
            out.writeframes(block if i % 2 else block[::-1])
    return path


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_s3(media: Path, repeat: int, settings: MediavaultSettings) -> tuple[float, ...]:
    server = None
    endpoint = os.environ.get("MEDIAVAULT_BENCH_S3_URL")
    if endpoint is None:
        server, endpoint = start_moto()
    options = S3Options(
        endpoint_url=endpoint,
        access_key_id=os.environ.get("MEDIAVAULT_BENCH_S3_KEY", "bench"),
        secret_access_key=os.environ.get("MEDIAVAULT_BENCH_S3_SECRET", "bench"),
        path_style=True,
    )
    client = make_s3_client(options)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    transfer = TransferConfig(
        multipart_threshold=options.multipart_threshold,
        multipart_chunksize=options.multipart_chunksize,
        max_concurrency=options.max_concurrency,
    )
    settings = settings.with_overrides(s3=options)
    # For reference: boto3 as it comes (8 MiB parts, CRC32 checksums on every part). moto stores
    # checksummed parts faster than the vault client's (checksums only where required).
    stock = boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key.get_secret_value()
        if options.secret_access_key
        else None,
        region_name=options.region,
    )
    baseline, ours, stock_times, plain_times = [], [], [], []
    shape = {"ChecksumAlgorithm": "CRC32"} if options.part_checksums else {}

    def upload(i: int) -> None:
        client.upload_file(str(media), bucket, f"raw/{i}", Config=transfer, ExtraArgs=shape)

    def plain_upload(i: int) -> None:
        client.upload_file(str(media), bucket, f"plain/{i}", Config=transfer)

    def stock_upload(i: int) -> None:
        stock.upload_file(str(media), bucket, f"stock/{i}")

    def ingest_into(i: int) -> None:
        ingest(S3Vault(bucket, f"vault-{i}", options), IngestRequest(media=str(media)), settings)

    def empty_bucket() -> None:
        # The store starts each run as empty as the last: an S3 server that holds every earlier
        # copy (moto keeps them in memory and temp files) slows down as they pile up.
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])

    try:
        for i in range(repeat):
            # Alternated, each going first in turn.
            runs = [
                (baseline, upload),
                (ours, ingest_into),
                (stock_times, stock_upload),
                (plain_times, plain_upload),
            ]
            for times, action in runs[i % 4 :] + runs[: i % 4]:
                times.append(timed(lambda action=action, i=i: action(i)))
                empty_bucket()
    finally:
        if server:
            server.terminate()
    return tuple(statistics.median(times) for times in (baseline, ours, stock_times, plain_times))


def bench_local(media: Path, repeat: int, settings: MediavaultSettings, workdir: Path) -> tuple[float, ...]:
    """Medians of: copy+sha256, copy+fsync+sha256 (as durable as the vault), copy+fsync (the
    disk's floor for any durable copy), ingest, and ingest into a vault that does not fsync."""
    baseline, durable, floor, ours, ours_unsynced = [], [], [], [], []

    def copy_and_hash(target: Path, sync: bool, hash_it: bool = True) -> None:
        shutil.copyfile(media, target)
        if sync:
            with open(target, "rb+") as copied:
                os.fsync(copied.fileno())
        if not hash_it:
            return
        digest = hashlib.sha256()
        with open(media, "rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)

    for i in range(repeat):
        baseline.append(timed(lambda i=i: copy_and_hash(workdir / f"copy-{i}", False)))
        (workdir / f"copy-{i}").unlink()
        durable.append(timed(lambda i=i: copy_and_hash(workdir / f"copy-{i}", True)))
        (workdir / f"copy-{i}").unlink()
        floor.append(timed(lambda i=i: copy_and_hash(workdir / f"copy-{i}", True, hash_it=False)))
        (workdir / f"copy-{i}").unlink()
        vault = LocalVault(workdir / f"vault-{i}")
        ours.append(timed(lambda v=vault: ingest(v, IngestRequest(media=str(media)), settings)))
        shutil.rmtree(workdir / f"vault-{i}")
        vault = LocalVault(workdir / f"vault-{i}", fsync=False)
        ours_unsynced.append(timed(lambda v=vault: ingest(v, IngestRequest(media=str(media)), settings)))
        shutil.rmtree(workdir / f"vault-{i}")
    return tuple(statistics.median(times) for times in (baseline, durable, floor, ours, ours_unsynced))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("MEDIAVAULT_BENCH_DIR")) as tmp:
        workdir = Path(tmp)
        media = write_media(workdir / "media.wav", args.size_mib)
        size = media.stat().st_size
        settings = MediavaultSettings(home=workdir / "home", mongo_mode="disabled")
        local_base, local_durable, local_floor, local_ours, local_unsynced = bench_local(
            media, args.repeat, settings, workdir
        )
        s3_base, s3_ours, s3_stock, s3_plain = bench_s3(media, args.repeat, settings)
    mib = size / 2**20
    print(f"media: {mib:.0f} MiB, median of {args.repeat} runs each")
    print(
        f"local: copy+sha256 {local_base:.2f}s, ingest {local_ours:.2f}s ({mib / local_ours:.0f} MiB/s) "
        f"ratio {local_ours / local_base:.2f} (target <= {TARGET_RATIO})"
    )
    print(
        f"local: copy+fsync+sha256 {local_durable:.2f}s (durable like the vault), "
        f"ratio {local_ours / local_durable:.2f}"
    )
    print(
        f"local: copy+fsync {local_floor:.2f}s (the disk's floor for a durable copy), "
        f"ratio {local_ours / local_floor:.2f}"
    )
    print(
        f"local: ingest into a vault without fsync {local_unsynced:.2f}s (what is not the disk), "
        f"ratio to copy+sha256 {local_unsynced / local_base:.2f}"
    )
    print(
        f"s3:    upload_file {s3_base:.2f}s, ingest {s3_ours:.2f}s ({mib / s3_ours:.0f} MiB/s) "
        f"ratio {s3_ours / s3_base:.2f} (target <= {TARGET_RATIO})"
    )
    print(
        f"s3:    for reference, upload_file without checksums {s3_plain:.2f}s, "
        f"ratio {s3_ours / s3_plain:.2f} (moto stores such parts more slowly: it computes a "
        "checksum of its own for them)"
    )
    print(
        f"s3:    for reference, upload_file with boto3's defaults (CRC32 on every part) {s3_stock:.2f}s, "
        f"ratio {s3_ours / s3_stock:.2f}"
    )


if __name__ == "__main__":
    main()
