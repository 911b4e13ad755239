"""A plain local file put into any vault: local (kernel copy, hashed from the copy) and S3 (hashed
first, then uploaded straight to its key, or not at all when the vault holds it). One suite for
both backends."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import tempfile
import threading
import zlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from mediavault.errors import SourceChanged, TransientError
from mediavault.vault.base import Vault
from mediavault.vault.hashing import PartsInOrder, digest_file
from mediavault.vault.s3 import S3Vault
from tests.conftest import GIVE_UP
from tests.fault_proxy import Fault, Rule

MIB = 1024 * 1024


def key_for(digest: str) -> str:
    return f"media/{digest}/original"


def staging_leftovers(vault: Vault) -> list:
    return list(vault.staging_leftovers()) if isinstance(vault, S3Vault) else []


@pytest.mark.parametrize("size", [0, 1, 5 * MIB + 3, 17 * MIB + 1])
def test_a_file_is_stored_under_the_hash_of_its_bytes(vault: Vault, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    seen: list[int] = []
    with open(path, "rb") as stream:
        result = vault.put_stream(stream, key_for, "audio/wav", progress=seen.append)
        assert stream.tell() == size, "the stream is left at its end, as the other paths leave it"
    digest = hashlib.sha256(data).hexdigest()
    assert (result.key, result.sha256, result.size, result.created) == (key_for(digest), digest, size, True)
    assert sum(seen) == size
    with vault.open_read(result.key) as stored:
        assert stored.read() == data
    info = vault.head(result.key)
    assert info is not None and info.size == size
    if isinstance(vault, S3Vault):
        assert info.sha256 == digest, "the digest is recorded with the object (multipart ETags are not)"
    assert staging_leftovers(vault) == []


def test_a_file_the_vault_holds_is_not_stored_again(vault: Vault, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(data)
    second.write_bytes(data)
    with open(first, "rb") as stream:
        assert vault.put_stream(stream, key_for).created
    with open(second, "rb") as stream:
        stream.read(1)  # a stream part-read already: what remains is what is stored
        stream.seek(0)
        again = vault.put_stream(stream, key_for)
    assert not again.created and again.sha256 == hashlib.sha256(data).hexdigest()
    assert staging_leftovers(vault) == []


def test_a_file_written_to_while_it_is_stored_is_refused(vault: Vault, tmp_path: Path) -> None:
    """Someone appends to the media while it uploads: the ingest must not keep an object whose key
    is not the hash of its bytes. It raises SourceChanged (transient: retried) and keeps nothing."""
    data = os.urandom(20 * MIB)
    path = tmp_path / "growing.bin"
    path.write_bytes(data)
    appended: list[bool] = []

    def append_once(count: int) -> None:
        if not appended:
            appended.append(True)
            with open(path, "ab") as writer:
                writer.write(b"late bytes")

    with open(path, "rb") as stream, pytest.raises(SourceChanged):
        vault.put_stream(stream, key_for, progress=append_once)
    assert appended
    assert vault.head(key_for(hashlib.sha256(data + b"late bytes").hexdigest())) is None
    first_version = key_for(hashlib.sha256(data).hexdigest())
    if isinstance(vault, S3Vault) and vault.head(first_version) is not None:
        # Each part went up only after its CRC32 matched the hashing pass: the object is the first
        # version's bytes, and is kept, since another ingest of those bytes may count on it.
        assert vault.get_bytes(first_version) == data
    else:
        assert vault.head(first_version) is None
    assert staging_leftovers(vault) == []


def test_an_upload_a_killed_writer_left_on_a_media_key_is_collected(s3_options, s3_bucket) -> None:
    """A writer killed mid-upload leaves an unfinished multipart upload on the media key (not an
    object): the staging sweep lists it, and deleting it aborts the upload."""
    vault = S3Vault(s3_bucket, "killed", s3_options)
    key = key_for("f" * 64)
    started = vault.client.create_multipart_upload(Bucket=s3_bucket, Key=f"killed/{key}")
    vault.client.upload_part(
        Bucket=s3_bucket, Key=f"killed/{key}", UploadId=started["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    [left] = [info for info in vault.staging_leftovers() if info.key.startswith(key)]
    vault.delete_staging(left.key)
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="killed/").get("Uploads", []) == []
    assert list(vault.staging_leftovers()) == [] and vault.head(key) is None
    with pytest.raises(ValueError):
        vault.delete_staging(key)  # a media object itself is never staging


@pytest.mark.parametrize("size", [3 * MIB + 5, 12 * MIB + 5], ids=["one-put", "three-parts"])
def test_bytes_changed_behind_unchanged_file_times_are_not_stored_under_the_old_hash(
    s3_options, s3_bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The upload reads the file a second time. A write whose times do not show (coarse timestamps:
    two writes in one clock tick) must still not put bytes under a key they do not hash to: what
    the upload read is hashed again before the object is completed. Not a CRC32: this rewrite
    keeps each part's (``same_crc32``), and would then be stored under the old hash."""
    import mediavault.vault.s3 as s3_module

    monkeypatch.setattr(s3_module, "file_version", lambda info: (info.st_ino, info.st_size))
    vault = S3Vault(s3_bucket, "coarse", s3_options)
    data = os.urandom(size)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    changed: list[str] = []
    first_part = data[: s3_options.multipart_chunksize]  # or the whole file
    rewritten = same_crc32(first_part, at=MIB)
    assert rewritten != first_part and zlib.crc32(rewritten) == zlib.crc32(first_part)

    def key_after_a_rewrite(digest: str) -> str:
        with open(path, "r+b") as writer:  # same size, the CRC32 of every part kept
            writer.write(rewritten)
        changed.append(digest)
        return key_for(digest)

    with open(path, "rb") as stream, pytest.raises(SourceChanged):
        vault.put_stream(stream, key_after_a_rewrite)
    assert changed == [hashlib.sha256(data).hexdigest()]
    assert vault.head(key_for(changed[0])) is None
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="coarse/").get("Uploads", []) == []


def same_crc32(data: bytes, at: int) -> bytes:
    """``data`` with the byte at ``at`` changed and the 4 bytes after it set so that the CRC32 stays
    the same. A CRC is affine over GF(2): the change's own CRC is cancelled by solving for the 32
    bits that follow it."""
    length = len(data)
    zero = zlib.crc32(bytes(length))

    def linear(position: int, value: bytes) -> int:  # the CRC's linear part of one change
        return zlib.crc32(bytes(position) + value + bytes(length - position - len(value))) ^ zero

    target = linear(at, b"\x01")
    columns = [linear(at + 1, (1 << bit).to_bytes(4, "little")) for bit in range(32)]
    # Gaussian elimination: express ``target`` as the XOR of some columns.
    rows: list[tuple[int, int]] = []  # (vector, which columns make it), one per pivot bit
    for bit, column in enumerate(columns):
        combination = 1 << bit
        for vector, made_of in rows:
            if column ^ vector < column:
                column, combination = column ^ vector, combination ^ made_of
        if column:
            rows.append((column, combination))
            rows.sort(reverse=True)
    chosen = 0
    for vector, made_of in rows:
        if target ^ vector < target:
            target, chosen = target ^ vector, chosen ^ made_of
    assert target == 0, "32 consecutive bits always reach every CRC"
    patch = bytes([data[at] ^ 1]) + bytes(
        a ^ b for a, b in zip(data[at + 1 : at + 5], chosen.to_bytes(4, "little"), strict=True)
    )
    return data[:at] + patch + data[at + 5 :]


def composite_crc32(data: bytes, part_size: int) -> str:
    """What S3 reports for a multipart object with CRC32 part checksums: the CRC32 of the parts'
    big-endian CRC32s, base64, then "-" and the part count."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    joined = b"".join(zlib.crc32(part).to_bytes(4, "big") for part in parts)
    return f"{base64.b64encode(zlib.crc32(joined).to_bytes(4, 'big')).decode()}-{len(parts)}"


@pytest.mark.parametrize("size", [3 * MIB, 11 * MIB + 7])
def test_each_part_carries_the_crc32_of_the_bytes_hashed(
    s3_options, s3_bucket, tmp_path: Path, size: int
) -> None:
    """The store receives a CRC32 with every part (or the whole object), so a store that checks
    them refuses bytes altered on the way; the object's checksum is the one of the file's bytes."""
    vault = S3Vault(s3_bucket, "sums", s3_options)
    data = os.urandom(size)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    sent: dict[str, list] = {"PutObject": [], "UploadPart": [], "CompleteMultipartUpload": []}

    def record(request, event_name: str, **kwargs) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation in sent and "/media/" in request.url:  # not the store's probes
            sent[operation].append((request.url, request.headers.get("x-amz-checksum-crc32"), request.body))
            if operation == "UploadPart":  # the same shape as the whole object's PUT
                assert request.headers.get("x-amz-sdk-checksum-algorithm") == b"CRC32"

    vault.client.meta.events.register("before-send.s3", record)
    with open(path, "rb") as stream:
        result = vault.put_stream(stream, key_for)
    part_size = s3_options.multipart_chunksize if size >= s3_options.multipart_threshold else size
    expected_parts = {
        number + 1: base64.b64encode(zlib.crc32(data[offset : offset + part_size]).to_bytes(4, "big"))
        for number, offset in enumerate(range(0, size, part_size))
    }
    if len(expected_parts) == 1:
        assert [header for _, header, _ in sent["PutObject"]] == [expected_parts[1]]
    else:
        headers = {
            int(url.split("partNumber=")[1].split("&")[0]): header for url, header, _ in sent["UploadPart"]
        }
        assert headers == expected_parts, "each part carries the CRC32 of its own bytes"
        [(_, _, completion)] = sent["CompleteMultipartUpload"]
        for value in expected_parts.values():
            assert b"<ChecksumCRC32>" + value + b"</ChecksumCRC32>" in completion
    head = vault.client.head_object(Bucket=s3_bucket, Key=f"sums/{result.key}", ChecksumMode="ENABLED")
    if size < s3_options.multipart_threshold:
        expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    else:
        expected = composite_crc32(data, s3_options.multipart_chunksize)
    reported = head.get("ChecksumCRC32") or ""
    if "-" not in reported:  # moto leaves out the part count that S3 appends
        expected = expected.split("-")[0]
    assert reported == expected


@pytest.mark.parametrize(
    "sizes", [(11 * MIB, 2 * MIB, 12 * MIB), (2 * MIB, 11 * MIB)], ids=["parts-first", "whole-first"]
)
def test_a_store_that_refuses_checksum_headers_gets_the_media_without_them(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path, sizes: tuple[int, ...]
) -> None:
    """An S3-compatible store that answers 400 to the checksum headers: the first upload repeats
    its request without them, and later uploads never send them."""
    vault = S3Vault(s3_bucket, "plain", proxied_options)
    stored = []
    with fault_proxy.faults(
        Rule(Fault.error(400, "InvalidArgument"), header="x-amz-checksum-algorithm"),
        Rule(Fault.error(400, "InvalidArgument"), header="x-amz-checksum-crc32"),
    ) as rules:
        for size in sizes:
            data = os.urandom(size)
            path = tmp_path / f"media-{size}.bin"
            path.write_bytes(data)
            with open(path, "rb") as stream:
                result = vault.put_stream(stream, key_for)
            stored.append((result, data))
    fired = [rule.fired for rule in rules]
    assert sum(fired) == 1 and fired[sizes[0] < proxied_options.multipart_threshold] == 1, (
        "refused once, on the first upload's first request, then never sent again"
    )
    for result, data in stored:
        assert vault.get_bytes(result.key) == data
        assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="plain/").get("Uploads", []) == []


def test_a_part_the_store_finds_altered_is_a_transient_error(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path
) -> None:
    """BadDigest: the part arrived other than it left (it was read back and compared before it was
    sent). The upload is abandoned and the error is transient, so the ingest sends it again."""
    vault = S3Vault(s3_bucket, "digest", proxied_options)
    data = os.urandom(11 * MIB)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    altered = Rule(Fault.error(400, "BadDigest"), method="PUT", path=r"partNumber=2", nth=1)
    with (
        fault_proxy.faults(altered),
        open(path, "rb") as stream,
        pytest.raises(TransientError, match="BadDigest"),
    ):
        vault.put_stream(stream, key_for)
    assert vault.head(key_for(hashlib.sha256(data).hexdigest())) is None
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="digest/").get("Uploads", []) == []
    with open(path, "rb") as stream:
        assert vault.put_stream(stream, key_for).created


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    size=st.integers(0, 300),
    part_size=st.integers(1, 64),
    chunk=st.integers(1, 50),
    start=st.integers(0, 20),
)
def test_the_hashing_pass_and_the_parts_hashed_in_order_agree(
    size: int, part_size: int, chunk: int, start: int
) -> None:
    """Whatever the read size and where the stream starts, the hashing pass gives the digest and
    length of the bytes from the start; the parts they make (an empty file is one empty part),
    added in any order, hash to the same digest, and to none while one is missing."""
    data = random.Random(size * 7919 + part_size).randbytes(start + size)
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.flush()
        digest = digest_file(file.fileno(), start, part_size, chunk=chunk)
    body = data[start:]
    parts = [body[i : i + part_size] for i in range(0, len(body), part_size)] or [b""]
    assert digest.parts == len(parts)
    in_order = PartsInOrder(threading.Event())
    order = list(range(len(parts)))
    random.Random(size).shuffle(order)
    threads = [threading.Thread(target=in_order.add, args=(n, parts[n])) for n in order[:-1]]
    for thread in threads:
        thread.start()
    assert in_order.hexdigest(len(parts)) is None, "a part is missing"
    in_order.add(order[-1], parts[order[-1]])
    for thread in threads:
        thread.join()
    assert in_order.hexdigest(len(parts)) == digest.sha256
    assert (digest.sha256, digest.size, digest.part_size) == (
        hashlib.sha256(body).hexdigest(),
        size,
        part_size,
    )


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(400, "InvalidRequest", message="x-amz-checksum-crc32 is not supported for UploadPart"),
        Fault.error(
            501,
            "NotImplemented",
            message="A header you provided implies functionality that is not implemented",
        ),
    ],
    ids=["400-naming-the-checksum", "501"],
)
def test_a_refusal_of_the_part_checksums_alone_is_transient_and_gives_them_up(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path, fault: Fault
) -> None:
    """A store that takes ChecksumAlgorithm when the upload is created but refuses the CRC32 of a
    part: that upload is aborted with a transient error, and the next attempt sends no checksums."""
    vault = S3Vault(s3_bucket, f"parts-{fault.status}", proxied_options)
    data = os.urandom(11 * MIB)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    refusal = Rule(fault, method="PUT", path="partNumber=", header="x-amz-checksum-crc32")
    with fault_proxy.faults(refusal):
        with open(path, "rb") as stream, pytest.raises(TransientError, match="checksum header"):
            vault.put_stream(stream, key_for)
        assert (
            vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix=vault.prefix).get("Uploads", [])
            == []
        )
        with open(path, "rb") as stream:
            assert vault.put_stream(stream, key_for).created
    assert refusal.fired >= 1 and vault.get_bytes(key_for(hashlib.sha256(data).hexdigest())) == data


@pytest.mark.parametrize(
    ("status", "code", "count", "attempts"),
    [(400, "InvalidArgument", 2, 2), (503, "SlowDown", GIVE_UP, GIVE_UP)],
    ids=["400-again-without", "503-not-a-refusal"],
)
def test_a_refusal_that_is_not_about_checksums_keeps_them(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path, status: int, code: str, count: int, attempts: int
) -> None:
    """A 400 that the same request without checksums gets as well is not the checksums' fault, and
    a 503 is not a refusal at all (not even tried without them): the error stands, and the next
    upload still carries checksums."""
    vault = S3Vault(s3_bucket, "other", proxied_options)
    path = tmp_path / "media.bin"
    path.write_bytes(os.urandom(11 * MIB))
    create = Rule(Fault.error(status, code), method="POST", path=r"\?uploads", nth=1, count=count)
    with (
        fault_proxy.faults(create),
        open(path, "rb") as stream,
        pytest.raises(ClientError, match=code),
    ):
        vault.put_stream(stream, key_for)
    assert create.matched == attempts, "a 400 is tried once more without checksums, a 503 is not"
    fault_proxy.clear_log()
    with open(path, "rb") as stream:
        assert vault.put_stream(stream, key_for).created
    parts = [e for e in fault_proxy.log() if "partNumber=" in e.target]
    assert parts and all("x-amz-checksum-crc32" in {k.lower() for k in e.headers} for e in parts)


def test_after_a_part_fails_no_further_part_is_sent(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path
) -> None:
    """Part 1 is refused at once while the next parts are under way: the parts not yet started are
    not sent (a failed upload does not go on reading and sending the rest of the file)."""
    vault = S3Vault(s3_bucket, "stop", proxied_options)
    path = tmp_path / "media.bin"
    path.write_bytes(os.urandom(8 * 5 * MIB))  # eight parts, four at a time
    refusal = Rule(Fault.error(400, "InvalidRequest"), method="PUT", path=r"partNumber=1(&|$)", nth=1)
    slow = Rule(Fault.delay(0.5), method="PUT", path=r"partNumber=[2-8](&|$)")  # still under way
    with fault_proxy.faults(refusal, slow), open(path, "rb") as stream, pytest.raises(ClientError):
        vault.put_stream(stream, key_for)
    sent = {
        e.target.split("partNumber=")[1].split("&")[0] for e in fault_proxy.log() if "partNumber=" in e.target
    }
    assert refusal.fired == 1 and len(sent) <= proxied_options.max_concurrency, sorted(sent)
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="stop/").get("Uploads", []) == []


@pytest.mark.parametrize(
    ("size", "rule"),
    [
        (11 * MIB, Rule(Fault.error(400, "InvalidPart"), method="POST", path=r"uploadId=", nth=1)),
        (11 * MIB, Rule(Fault.error(400, "InvalidRequest"), method="PUT", path=r"partNumber=2(&|$)", nth=1)),
        (2 * MIB, Rule(Fault.error(400, "XAmzContentSHA256Mismatch"), method="PUT", path="/media/", nth=1)),
        (2 * MIB, Rule(Fault.error(400, "IncompleteBody"), method="PUT", path="/media/", nth=1)),
    ],
    ids=["completion-400", "part-400", "whole-sha256-mismatch", "whole-incomplete-body"],
)
def test_an_error_that_does_not_name_the_checksums_never_gives_them_up(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path, size: int, rule: Rule
) -> None:
    """A part or completion refused for another reason is not taken for a refusal of the checksums
    (it cannot be tried alone without them); a body that arrived altered or cut short is sent again
    (transient), checksums and all. Either way the next upload still carries checksums."""
    import mediavault.vault.s3 as s3_module

    vault = S3Vault(s3_bucket, f"keep-{size}", proxied_options)
    path = tmp_path / "media.bin"
    path.write_bytes(os.urandom(size))
    with (
        fault_proxy.faults(rule),
        open(path, "rb") as stream,
        pytest.raises((ClientError, TransientError)) as failed,
    ):
        vault.put_stream(stream, key_for)
    assert rule.fired == 1
    assert "checksum header" not in str(failed.value)
    assert isinstance(failed.value, TransientError) == (rule.fault.code in s3_module.CORRUPTION_CODES)
    assert vault._scope not in s3_module._checksums_refused
    fault_proxy.clear_log()
    with open(path, "rb") as stream:
        assert vault.put_stream(stream, key_for).created
    sent = [e for e in fault_proxy.log() if e.method == "PUT" and "/media/" in e.target]
    assert sent and all("x-amz-checksum-crc32" in {k.lower() for k in e.headers} for e in sent)


def test_a_progress_callback_that_fails_stops_the_upload(
    proxied_options, s3_bucket, fault_proxy, tmp_path: Path
) -> None:
    """An exception from ``progress`` fails the upload like a failed part: the parts not started
    are not sent, and the upload is aborted."""
    vault = S3Vault(s3_bucket, "progress", proxied_options)
    path = tmp_path / "media.bin"
    path.write_bytes(os.urandom(8 * 5 * MIB))  # eight parts, four at a time
    slow = Rule(Fault.delay(0.5), method="PUT", path=r"partNumber=[2-8](&|$)")  # part 1 ends first

    def progress(count: int) -> None:
        raise RuntimeError("the progress display went away")

    with (
        fault_proxy.faults(slow),
        open(path, "rb") as stream,
        pytest.raises(RuntimeError, match="progress display"),
    ):
        vault.put_stream(stream, key_for, progress=progress)
    sent = {
        e.target.split("partNumber=")[1].split("&")[0] for e in fault_proxy.log() if "partNumber=" in e.target
    }
    assert len(sent) <= proxied_options.max_concurrency, sorted(sent)
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="progress/").get("Uploads", []) == []


def test_a_part_waiting_for_its_turn_gives_up_when_the_upload_is_abandoned() -> None:
    abandoned = threading.Event()
    in_order = PartsInOrder(abandoned)
    waiting = threading.Thread(target=in_order.add, args=(1, b"second"))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive(), "part 1 waits for part 0"
    abandoned.set()
    waiting.join(5)
    assert not waiting.is_alive() and in_order.hexdigest(2) is None
