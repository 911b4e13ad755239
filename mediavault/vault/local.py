"""A vault in a local directory: exclusive create, fsync, atomic link-into-place."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from mediavault.errors import ConfigurationError
from mediavault.hashing import copy_hashing, sha256_bytes
from mediavault.vault.base import ObjectInfo, ProgressCallback, PutResult

_TMP_DIR = ".tmp"
WRITEBACK_BYTES = 64 * 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalVault:
    """Objects are files under ``root``. Writes go to ``root/.tmp`` and are hard-linked into
    place: ``link`` fails with EEXIST when the key exists, which makes create-if-absent atomic,
    and a reader never sees a partial file."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()
        self.fsync = fsync
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
        handle = open(path, "xb")  # noqa: SIM115 - closed by the caller
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
        tmp, handle = self._new_tmp()
        try:
            with handle:
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
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def staging_leftovers(self) -> Iterator[ObjectInfo]:
        for path in sorted((self.root / _TMP_DIR).iterdir()):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                yield ObjectInfo(f"{_TMP_DIR}/{path.name}", stat.st_size, None, stat.st_mtime)

    def delete_staging(self, key: str) -> None:
        name = key.removeprefix(f"{_TMP_DIR}/")
        if "/" in name or name in ("", ".", "..") or not key.startswith(f"{_TMP_DIR}/"):
            raise ValueError(f"not a staging key of this vault: {key!r}")
        with contextlib.suppress(FileNotFoundError):
            (self.root / _TMP_DIR / name).unlink()
