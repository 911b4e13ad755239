"""A vault in a local directory: exclusive create, fsync, atomic link-into-place."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mediavault.errors import ConfigurationError, SourceChanged
from mediavault.vault.base import ObjectInfo, ProgressCallback, PutResult
from mediavault.vault.hashing import copy_hashing, file_version, regular_file_fd, sha256_bytes

_TMP_DIR = ".tmp"
WRITEBACK_BYTES = 64 * 1024 * 1024
FILE_COPY_CHUNK = 8 * 1024 * 1024
# Errors with which the kernel declines a copy it cannot do (another filesystem, a file system
# without the call, a seccomp filter). The next method is tried; a real I/O error recurs there.
_KERNEL_DECLINES = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.ETXTBSY, errno.EIO}
)
COPY_METHODS = ("copy_file_range", "sendfile", "read")
# What this platform's kernel can copy file to file (macOS has no copy_file_range, and its
# sendfile only writes to sockets).
_AVAILABLE = tuple(
    method
    for method in COPY_METHODS
    if method == "read"
    or (method == "copy_file_range" and hasattr(os, "copy_file_range"))
    or (method == "sendfile" and hasattr(os, "sendfile") and sys.platform.startswith("linux"))
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FileCopy:
    sha256: str
    size: int
    method: str
    """The last of ``COPY_METHODS`` used: the kernel declined the ones before it."""


class _TrailingHasher:
    """Hashes a file being written by another thread, reading back each range once it is written.

    It hashes the copy, not the source, so the digest describes exactly the bytes that get
    linked into place even if the source changes meanwhile. With ``writeback`` it also asks the
    kernel to write hashed ranges out and drop them from the page cache."""

    def __init__(self, fd: int, writeback: bool, chunk: int = FILE_COPY_CHUNK) -> None:
        self._fd = fd
        self._chunk = chunk
        self._writeback = writeback and hasattr(os, "posix_fadvise")
        self._ends: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._abandoned = threading.Event()
        self._digest = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256-copy", daemon=True)
        self._thread.start()

    def written_up_to(self, end: int) -> None:
        self._ends.put(end)

    def finish(self) -> str:
        self._ends.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def abandon(self) -> None:
        """Stop early (the copy failed); returns once the thread no longer uses the descriptor."""
        self._abandoned.set()
        self._ends.put(None)
        self._thread.join()

    def _run(self) -> None:
        buffer = memoryview(bytearray(self._chunk))
        hashed = dropped = 0
        try:
            while (end := self._ends.get()) is not None:
                while hashed < end and not self._abandoned.is_set():
                    count = os.preadv(self._fd, [buffer[: min(len(buffer), end - hashed)]], hashed)
                    if count == 0:
                        raise OSError(errno.EIO, "the temp file is shorter than what was copied into it")
                    self._digest.update(buffer[:count])
                    hashed += count
                    if self._writeback and hashed - dropped >= WRITEBACK_BYTES:
                        os.posix_fadvise(self._fd, dropped, hashed - dropped, os.POSIX_FADV_DONTNEED)
                        dropped = hashed
        except BaseException as exc:  # re-raised by finish() in the copying thread
            self._error = exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_chunk(method: str, source: int, target: int, offset: int, chunk: int) -> int:
    """Append up to ``chunk`` bytes of ``source`` at ``offset`` to ``target``; 0 at end of file."""
    if method == "copy_file_range":
        return os.copy_file_range(source, target, chunk, offset)
    if method == "sendfile":
        return os.sendfile(target, source, offset, chunk)
    data = os.pread(source, chunk, offset)
    _write_all(target, data)
    return len(data)


def copy_file_hashing(
    source: int,
    target: int,
    start: int = 0,
    progress: ProgressCallback | None = None,
    *,
    kernel: bool = True,
    durable: bool = True,
    name: str = "",
    chunk: int = FILE_COPY_CHUNK,
) -> FileCopy:
    """Copy regular file ``source`` from ``start`` to its end into ``target``, an empty file.

    The kernel moves the bytes (``copy_file_range``, else ``sendfile``, else a read/write loop when
    it declines both) while a thread hashes what was written. With ``durable`` the copy is
    fsynced, overlapping the end of hashing. Raises SourceChanged when the source's size or times
    moved during the copy: it was written to, and the copy may mix two versions."""
    before = file_version(os.fstat(source))
    hasher = _TrailingHasher(target, writeback=durable, chunk=chunk)
    methods = list(_AVAILABLE if kernel else COPY_METHODS[-1:])
    offset = start
    try:
        while True:
            try:
                count = _copy_chunk(methods[0], source, target, offset, chunk)
            except OSError as exc:
                if len(methods) > 1 and exc.errno in _KERNEL_DECLINES:
                    methods.pop(0)
                    continue
                raise
            if count == 0:
                # Kernel copies report 0 at once for files whose size they cannot see (procfs).
                if len(methods) > 1 and offset == start:
                    methods.pop(0)
                    continue
                break
            if durable and hasattr(os, "posix_fadvise"):
                # Start writeback now (dirty pages stay cached for the hasher), so the disk
                # works during the copy rather than all in the final fsync.
                os.posix_fadvise(target, offset - start, count, os.POSIX_FADV_DONTNEED)
            offset += count
            hasher.written_up_to(offset - start)
            if progress:
                progress(count)
        if file_version(os.fstat(source)) != before:
            raise SourceChanged(name or f"file descriptor {source}")
        if durable:
            os.fsync(target)
        digest = hasher.finish()
    except BaseException:
        hasher.abandon()
        raise
    return FileCopy(digest, offset - start, methods[0])


class LocalVault:
    """Objects are files under ``root``. Writes go to ``root/.tmp`` and are hard-linked into
    place: ``link`` fails with EEXIST when the key exists, which makes create-if-absent atomic,
    and a reader never sees a partial file.

    A stream that is a plain local file is copied by the kernel (see ``copy_file_hashing``);
    ``kernel_copy=False`` keeps that path but copies with read/write."""

    def __init__(self, root: Path, fsync: bool = True, kernel_copy: bool = True) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()
        self.fsync = fsync
        self.kernel_copy = kernel_copy
        # Created by the first write, not here: reading, listing or planning (a dry run) leaves
        # no directory behind. What can never become a directory is an error at once.
        existing = self._existing_ancestor()
        if not existing.is_dir():
            raise ConfigurationError(
                f"cannot create local vault at {self.root}: {existing} is not a directory"
            )

    def _existing_ancestor(self) -> Path:
        """The vault's root, or its nearest ancestor that exists."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    def _make_tmp_dir(self) -> None:
        try:
            (self.root / _TMP_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create local vault at {self.root}: {exc}") from exc

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\\" in key or "\0" in key:
            raise ValueError(f"invalid vault key: {key!r}")
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts) or parts[0] == _TMP_DIR:
            raise ValueError(f"invalid vault key: {key!r}")
        return self.root.joinpath(*parts)

    def _new_tmp(self) -> tuple[Path, BinaryIO]:
        path = self.root / _TMP_DIR / uuid.uuid4().hex
        # Readable too: the copy of a local file is hashed by reading it back.
        try:
            handle = open(path, "xb+")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:  # the vault's first write
            self._make_tmp_dir()
            handle = open(path, "xb+")  # noqa: SIM115 - closed by the caller
        return path, handle

    def _commit_tmp(self, tmp: Path, key: str) -> bool:
        """Link ``tmp`` into place at ``key``; False when ``key`` already existed."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, target)
            created = True
        except FileExistsError:
            created = False
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if created and self.fsync:
            _fsync_dir(target.parent)
        return created

    def _write_tmp(self, handle: BinaryIO, chunks: Iterator[bytes]) -> None:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())

    def _early_writeback(self, handle: BinaryIO) -> Callable[[bytes], object]:
        """A write function that starts disk writeback every 64 MiB, so the final fsync is short
        and large media do not flood the page cache."""
        if not self.fsync or not hasattr(os, "posix_fadvise"):
            return handle.write
        state = {"written": 0, "flushed": 0}

        def write(chunk: bytes) -> None:
            handle.write(chunk)
            state["written"] += len(chunk)
            if state["written"] - state["flushed"] >= WRITEBACK_BYTES:
                handle.flush()
                os.posix_fadvise(
                    handle.fileno(),
                    state["flushed"],
                    state["written"] - state["flushed"],
                    os.POSIX_FADV_DONTNEED,
                )
                state["flushed"] = state["written"]

        return write

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> PutResult:
        target = self._path(key)
        digest = sha256_bytes(data)
        if target.exists():
            return PutResult(key, digest, len(data), created=False)
        tmp, handle = self._new_tmp()
        try:
            self._write_tmp(handle, iter([data]))
            created = self._commit_tmp(tmp, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return PutResult(key, digest, len(data), created=created)

    def put_stream(
        self,
        stream: BinaryIO,
        key_for: Callable[[str], str],
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        source_fd = regular_file_fd(stream)
        tmp, handle = self._new_tmp()
        try:
            with handle:
                if source_fd is not None:
                    digest, size = self._copy_file(stream, source_fd, handle.fileno(), progress)
                else:
                    digest, size = copy_hashing(stream, self._early_writeback(handle), progress)
                    handle.flush()
                    if self.fsync:
                        os.fsync(handle.fileno())
            key = key_for(digest)
            created = self._commit_tmp(tmp, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return PutResult(key, digest, size, created=created)

    def _copy_file(
        self, stream: BinaryIO, source_fd: int, target_fd: int, progress: ProgressCallback | None
    ) -> tuple[str, int]:
        """The rest of a local file, from the stream's position; leaves the stream at its end."""
        start = stream.tell()
        copied = copy_file_hashing(
            source_fd,
            target_fd,
            start,
            progress,
            kernel=self.kernel_copy,
            durable=self.fsync,
            name=str(getattr(stream, "name", "")),
        )
        stream.seek(start + copied.size)
        return copied.sha256, copied.size

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, stat.st_size, None, stat.st_mtime)

    def list_keys(self, prefix: str = "", start_after: str | None = None) -> Iterator[str]:
        base_dir, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*base_dir.split("/")) if base_dir else self.root
        if not start.is_dir():
            return
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d != _TMP_DIR]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        yield from sorted(keys)

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` (for servers that send files themselves, with ranges)."""
        return self._path(key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def free_bytes(self) -> int:
        return self.disk_space()[0]

    def disk_space(self) -> tuple[int, int]:
        """Free and total bytes of the disk the vault is (or will be) on."""
        usage = shutil.disk_usage(self._existing_ancestor())
        return usage.free, usage.total

    def staging_leftovers(self) -> Iterator[ObjectInfo]:
        tmp_dir = self.root / _TMP_DIR
        if not tmp_dir.is_dir():
            return
        for path in sorted(tmp_dir.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                yield ObjectInfo(f"{_TMP_DIR}/{path.name}", stat.st_size, None, stat.st_mtime)

    def delete_staging(self, key: str) -> None:
        name = key.removeprefix(f"{_TMP_DIR}/")
        if "/" in name or name in ("", ".", "..") or not key.startswith(f"{_TMP_DIR}/"):
            raise ValueError(f"not a staging key of this vault: {key!r}")
        with contextlib.suppress(FileNotFoundError):
            (self.root / _TMP_DIR / name).unlink()
