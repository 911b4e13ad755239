"""Streaming SHA-256: hash bytes in the same pass that moves them."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
PIPE_CHUNK_SIZE = 8 * 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_version(info: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written to: compare it before and after reading the file."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def regular_file_fd(stream: BinaryIO) -> int | None:
    """The descriptor behind a plain file opened for reading, when it is a regular file.

    Only ``open(path, "rb")`` objects qualify: a wrapper with a ``fileno`` (gzip, a hashing
    reader) transforms what it reads, so its descriptor's bytes are not the stream's."""
    raw = stream.raw if type(stream) is io.BufferedReader else stream
    if type(raw) is not io.FileIO or not stream.readable():
        return None
    try:
        fd = stream.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class FileDigest:
    """A file's SHA-256 and length, and the part size an upload of it uses."""

    sha256: str
    size: int
    part_size: int

    @property
    def parts(self) -> int:
        """How many parts of ``part_size`` the bytes make (an empty file is one empty part)."""
        return max(1, -(-self.size // self.part_size))


def digest_file(fd: int, start: int, part_size: int, chunk: int = 2 * CHUNK_SIZE) -> FileDigest:
    """The SHA-256 and length of a regular file's bytes from ``start`` to its end, read with
    ``pread`` (the file position is left alone) into one buffer reused for every chunk (no fresh
    pages to fault in)."""
    digest = hashlib.sha256()
    offset = start
    buffer = memoryview(bytearray(chunk))
    while count := _pread_into(fd, buffer, offset):
        digest.update(buffer[:count])
        offset += count
    return FileDigest(digest.hexdigest(), offset - start, part_size)


class PartsInOrder:
    """The SHA-256 of parts read by several threads, taken in part order: the thread holding part
    ``n`` waits until parts ``0 .. n-1`` are hashed, so no part waits in memory for another. Once
    ``abandoned`` is set, waiting threads return at once (without hashing)."""

    def __init__(self, abandoned: threading.Event) -> None:
        self._digest = hashlib.sha256()
        self._next = 0
        self._turn = threading.Condition()
        self._abandoned = abandoned

    def add(self, number: int, data: bytes) -> None:
        with self._turn:
            while not self._turn.wait_for(
                lambda: self._next == number or self._abandoned.is_set(), timeout=0.25
            ):
                pass
            if self._next != number:
                return
            self._digest.update(data)
            self._next += 1
            self._turn.notify_all()

    def hexdigest(self, parts: int) -> str | None:
        """The digest of parts ``0 .. parts-1``; None unless every one of them was added."""
        with self._turn:
            return self._digest.hexdigest() if self._next == parts else None


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def read_exactly(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``, or fewer only at the end of the file (a network filesystem
    may return a short read before it)."""
    data = os.pread(fd, size, offset)
    while 0 < len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


class HashingReader(io.RawIOBase):
    """A read-only, non-seekable stream that hashes and counts what passes through it.

    Being non-seekable matters: it forces boto3's transfer manager to read sequentially,
    so the digest covers the bytes in order while they are uploaded.
    """

    def __init__(self, source: BinaryIO, on_progress: Callable[[int], None] | None = None):
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0
        self._on_progress = on_progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._hash.update(data)
            self.size += len(data)
            if self._on_progress:
                self._on_progress(len(data))
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def sha256_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """Hash a stream to its end; returns (hex digest, size)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def copy_hashing(
    source: BinaryIO, write: Callable[[bytes], object], on_progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Copy ``source`` to ``write`` in one pass, hashing each chunk on a worker thread.

    hashlib and file writes both release the GIL, so hashing overlaps the write. One worker keeps
    the chunks in order, and at most one chunk is in flight, so memory stays bounded.
    """
    digest = hashlib.sha256()
    size = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        pending: Future | None = None
        while chunk := source.read(PIPE_CHUNK_SIZE):
            if pending is not None:
                pending.result()
            pending = hasher.submit(digest.update, chunk)
            write(chunk)
            size += len(chunk)
            if on_progress:
                on_progress(len(chunk))
        if pending is not None:
            pending.result()
    return digest.hexdigest(), size
