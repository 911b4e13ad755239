"""The local fast path: a plain local file is copied into a local vault by the kernel
(copy_file_range, else sendfile, else read/write) while a thread hashes the copy."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediavault.errors import SourceChanged
from mediavault.vault.local import FILE_COPY_CHUNK, LocalVault, copy_file_hashing, regular_file_fd

MIB = 1024 * 1024
SIZES = [0, 1, 4097, FILE_COPY_CHUNK - 1, FILE_COPY_CHUNK, FILE_COPY_CHUNK + 1, 2 * FILE_COPY_CHUNK + 12345]


def write_source(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def assert_stored_exactly(vault: LocalVault, data: bytes, key: str) -> None:
    sha = hashlib.sha256(data).hexdigest()
    assert key == f"blobs/{sha}"
    assert vault.get_bytes(key) == data


def assert_nothing_stored(vault: LocalVault) -> None:
    assert list(vault.staging_leftovers()) == [], "the temp file must be removed"
    assert list(vault.list_keys()) == [], "no object may become visible"
    assert not [t for t in threading.enumerate() if t.name == "sha256-copy"], "the hasher must stop"


def kernel_release() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["kernel", "read-write"])
@pytest.mark.parametrize("size", SIZES)
def test_a_local_file_is_stored_byte_identical_at_its_sha256(
    tmp_path: Path, size: int, kernel_copy: bool
) -> None:
    data = write_source(tmp_path / "media.bin", size)
    vault = LocalVault(tmp_path / "vault", kernel_copy=kernel_copy)
    progress: list[int] = []
    with open(tmp_path / "media.bin", "rb") as stream:
        assert regular_file_fd(stream) is not None
        result = vault.put_stream(stream, lambda sha: f"blobs/{sha}", progress=progress.append)
        assert stream.tell() == size, "the stream is left at its end, as a read loop would"
    assert result.created and result.size == size and result.sha256 == hashlib.sha256(data).hexdigest()
    assert_stored_exactly(vault, data, result.key)
    assert sum(progress) == size and all(0 < step <= FILE_COPY_CHUNK for step in progress)
    assert list(vault.staging_leftovers()) == []
    with open(tmp_path / "media.bin", "rb") as stream:
        again = vault.put_stream(stream, lambda sha: f"blobs/{sha}")
    assert not again.created and again.key == result.key


@pytest.mark.parametrize("size", [1, 3 * MIB + 7, 2 * FILE_COPY_CHUNK + 1])
def test_the_kernel_copies_a_file_on_the_same_filesystem(tmp_path: Path, size: int) -> None:
    data = write_source(tmp_path / "source", size)
    source = os.open(tmp_path / "source", os.O_RDONLY)
    target = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        copied = copy_file_hashing(source, target)
    finally:
        os.close(source)
        os.close(target)
    assert copied.method == "copy_file_range"
    assert (copied.sha256, copied.size) == (hashlib.sha256(data).hexdigest(), size)
    assert (tmp_path / "copy").read_bytes() == data


def test_a_stream_already_partly_read_is_stored_from_its_position(tmp_path: Path) -> None:
    data = write_source(tmp_path / "media.bin", FILE_COPY_CHUNK + 999)
    vault = LocalVault(tmp_path / "vault")
    with open(tmp_path / "media.bin", "rb") as stream:
        stream.read(1234)  # the buffered reader holds more than that: its position is what counts
        result = vault.put_stream(stream, lambda sha: f"blobs/{sha}")
        assert stream.read() == b""
    assert result.size == len(data) - 1234
    assert_stored_exactly(vault, data[1234:], result.key)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_a_file_on_another_filesystem_falls_back_to_sendfile(tmp_path: Path) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the vault")
    source = Path("/dev/shm") / f"mediavault-test-{uuid.uuid4().hex}"
    try:
        data = write_source(source, FILE_COPY_CHUNK + 4321)
        fd = os.open(source, os.O_RDONLY)
        target = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            copied = copy_file_hashing(fd, target)
        finally:
            os.close(fd)
            os.close(target)
        if kernel_release() >= (5, 19):  # older kernels copy across filesystems themselves
            assert copied.method == "sendfile"
        assert (tmp_path / "copy").read_bytes() == data
        vault = LocalVault(tmp_path / "vault")
        with open(source, "rb") as stream:
            result = vault.put_stream(stream, lambda sha: f"blobs/{sha}")
        assert_stored_exactly(vault, data, result.key)
    finally:
        source.unlink(missing_ok=True)


@pytest.mark.parametrize("proc_file", ["/proc/self/status", "/proc/version"])
def test_a_proc_file_the_kernel_will_not_copy_is_read_instead(tmp_path: Path, proc_file: str) -> None:
    """procfs reports size 0 and declines copy_file_range (and sendfile, for status): the
    content still arrives whole, and the key is the hash of exactly what was stored."""
    if not Path(proc_file).exists():
        pytest.skip(f"no {proc_file}")
    vault = LocalVault(tmp_path / "vault")
    with open(proc_file, "rb") as stream:
        assert regular_file_fd(stream) is not None, "procfs files are regular files: the fast path runs"
        result = vault.put_stream(stream, lambda sha: f"blobs/{sha}")
    stored = vault.get_bytes(result.key)
    assert result.size == len(stored) > 0
    assert result.key == f"blobs/{hashlib.sha256(stored).hexdigest()}"
    first_line = Path(proc_file).read_bytes().split(b"\n", 1)[0]
    assert stored.split(b"\n", 1)[0] == first_line
    fd = os.open(proc_file, os.O_RDONLY)
    target = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        copied = copy_file_hashing(fd, target)
    finally:
        os.close(fd)
        os.close(target)
    assert copied.method in ("sendfile", "read") and copied.size > 0


def test_a_fifo_is_streamed_by_the_read_loop(tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 5)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    vault = LocalVault(tmp_path / "vault")
    with open(fifo, "rb") as stream:
        assert regular_file_fd(stream) is None
        result = vault.put_stream(stream, lambda sha: f"blobs/{sha}")
    writer.join()
    assert_stored_exactly(vault, data, result.key)


CHILD_WITH_FILE_SIZE_LIMIT = """
import errno, resource, signal, sys
from pathlib import Path
from mediavault.vault.local import LocalVault

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
vault = LocalVault(Path(sys.argv[1]), kernel_copy=sys.argv[4] == "kernel")
progress = []
try:
    with open(sys.argv[2], "rb") as stream:
        vault.put_stream(stream, lambda sha: "blobs/" + sha, progress=progress.append)
except OSError as exc:
    print(errno.errorcode[exc.errno], sum(progress))
else:
    print("stored")
"""


@pytest.mark.parametrize("kernel_copy", ["kernel", "read-write"])
def test_a_write_error_mid_copy_leaves_no_temp_file_and_no_object(tmp_path: Path, kernel_copy: str) -> None:
    """A real I/O error after some chunks are written: the file-size limit (RLIMIT_FSIZE, in a
    child process) makes the write that crosses it fail with EFBIG."""
    size, limit = 3 * FILE_COPY_CHUNK, FILE_COPY_CHUNK + MIB
    write_source(tmp_path / "media.bin", size)
    arguments = [str(tmp_path / "vault"), str(tmp_path / "media.bin"), str(limit), kernel_copy]
    child = subprocess.run(
        [sys.executable, "-c", CHILD_WITH_FILE_SIZE_LIMIT, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    code, copied = child.stdout.split()
    assert code == errno.errorcode[errno.EFBIG]
    assert int(copied) >= FILE_COPY_CHUNK, "the error came mid-copy, after a chunk was written"
    assert_nothing_stored(LocalVault(tmp_path / "vault"))


def test_a_source_truncated_during_the_copy_is_refused(tmp_path: Path) -> None:
    write_source(tmp_path / "media.bin", 3 * FILE_COPY_CHUNK)
    vault = LocalVault(tmp_path / "vault")

    def truncate_after_first_chunk(_count: int) -> None:
        os.truncate(tmp_path / "media.bin", FILE_COPY_CHUNK + 10)

    with open(tmp_path / "media.bin", "rb") as stream, pytest.raises(SourceChanged):
        vault.put_stream(stream, lambda sha: f"blobs/{sha}", progress=truncate_after_first_chunk)
    assert_nothing_stored(vault)


@pytest.mark.parametrize("where", ["copied", "ahead", "appended"])
def test_a_source_written_during_the_copy_is_refused_or_stored_as_copied(tmp_path: Path, where: str) -> None:
    """Same-size overwrites of what was just copied (before the hasher reads it back) or of what
    is not copied yet, and appends: never an object whose key is not the hash of its bytes."""
    chunks = 3
    write_source(tmp_path / "media.bin", chunks * FILE_COPY_CHUNK)
    vault = LocalVault(tmp_path / "vault")
    copied: list[int] = []

    def write_during_copy(count: int) -> None:
        copied.append(count)
        offset = {
            "copied": len(copied) * FILE_COPY_CHUNK - 4096,
            "ahead": (len(copied) + 1) * FILE_COPY_CHUNK - 4096,
            "appended": chunks * FILE_COPY_CHUNK,
        }[where]
        if len(copied) >= chunks or (where == "appended" and len(copied) > 1):
            return  # a file that keeps growing is copied until it stops, as by a read loop
        with open(tmp_path / "media.bin", "r+b") as source:
            source.seek(offset)
            source.write(b"\xff" * 4096)

    try:
        with open(tmp_path / "media.bin", "rb") as stream:
            result = vault.put_stream(stream, lambda sha: f"blobs/{sha}", progress=write_during_copy)
    except SourceChanged:
        assert_nothing_stored(vault)
    else:
        stored = vault.get_bytes(result.key)
        assert result.key == f"blobs/{hashlib.sha256(stored).hexdigest()}"
        assert result.size == len(stored)
        assert list(vault.staging_leftovers()) == []
    assert copied, "the writes happened during the copy"


@pytest.mark.hardening
@given(
    size=st.integers(min_value=0, max_value=200_000),
    chunk=st.sampled_from([511, 4095, 4096, 65537]),
    start=st.integers(min_value=0, max_value=70_000),
    kernel=st.booleans(),
)
def test_property_the_copy_and_its_hash_match_the_source_for_any_chunking(
    tmp_path_factory: pytest.TempPathFactory, size: int, chunk: int, start: int, kernel: bool
) -> None:
    work = tmp_path_factory.mktemp("copy")
    data = write_source(work / "source", size)
    start = min(start, size)
    source = os.open(work / "source", os.O_RDONLY)
    target = os.open(work / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL)
    progress: list[int] = []
    try:
        copied = copy_file_hashing(
            source, target, start, progress.append, kernel=kernel, durable=False, chunk=chunk
        )
    finally:
        os.close(source)
        os.close(target)
    assert copied.size == size - start and sum(progress) == copied.size
    assert copied.sha256 == hashlib.sha256(data[start:]).hexdigest()
    assert (work / "copy").read_bytes() == data[start:]
