"""Reading artifacts wherever their tier keeps them, and the archive tier itself.

An archive tier is another vault: a prefix of the same bucket, a separate bucket (Garage has no
storage classes; this works there), or a local directory; on S3 it may also write objects with a
storage class. AI outputs are zstd-compressed on the way in; media may be too (policy ``compress``).

Everything here streams with bounded memory whatever the object size: compression and
decompression work chunk by chunk, and random access (Parquet) uses the file itself, HTTP range
requests, or a temporary file for a compressed archive copy.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from typing import Any, BinaryIO

import pyarrow as pa

from mediavault.settings import S3Options
from mediavault.vault import LocalVault, Vault, open_vault
from mediavault.vault.models import Artifact
from mediavault.vault.s3 import SEEK_BUFFER, S3RangeReader, S3Vault

CHUNK_SIZE = 1024 * 1024
SMALL_OBJECT_BYTES = 8 * 1024 * 1024
"""S3 objects up to this size are fetched whole in one GET; larger ones are read by range."""


def same_credentials(vault: Vault) -> S3Options | None:
    return vault.options if isinstance(vault, S3Vault) else None


class _Drain(io.RawIOBase):
    """The sink of a pyarrow compressor: collects what it writes until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class ZstdCompressingReader(io.RawIOBase):
    """A read-only stream of the zstd compression of ``source``, produced as it is read.

    Each refill compresses one chunk of the source, so memory stays at a few chunks whatever the
    source size. ``source`` stays open; its owner closes it.
    """

    def __init__(self, source: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self._drain = _Drain()
        self._compressor = pa.CompressedOutputStream(pa.PythonFile(self._drain, mode="w"), "zstd")
        self._pending = memoryview(b"")
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._finished:
            chunk = self._source.read(self._chunk_size)
            if chunk:
                self._compressor.write(chunk)
            else:
                self._compressor.close()
                self._finished = True
            self._pending = memoryview(self._drain.take())
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._compressor.close()
            self._pending = memoryview(b"")
        super().close()


class ZstdDecompressingReader(io.RawIOBase):
    """A read-only stream of the decompressed bytes of a zstd stream, decompressed as it is read.

    Closing it closes ``compressed``.
    """

    def __init__(self, compressed: BinaryIO) -> None:
        self._compressed = compressed
        self._decompressor = pa.CompressedInputStream(pa.PythonFile(compressed, mode="r"), "zstd")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._decompressor.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            try:
                self._decompressor.close()
            finally:
                self._compressed.close()
        super().close()


def compress_stream(source: BinaryIO) -> BinaryIO:
    """zstd-compress a stream lazily: each read compresses just enough of ``source``."""
    return io.BufferedReader(ZstdCompressingReader(source), buffer_size=CHUNK_SIZE)


def decompress_stream(compressed: BinaryIO) -> BinaryIO:
    """Decompress a zstd stream lazily; closing the result closes ``compressed``."""
    return io.BufferedReader(ZstdDecompressingReader(compressed), buffer_size=CHUNK_SIZE)


def _open_seekable_object(vault: Vault, key: str, size: int) -> BinaryIO:
    """Random access to one stored object without reading it whole (except small S3 objects)."""
    if isinstance(vault, S3Vault):
        if size <= SMALL_OBJECT_BYTES:
            return io.BytesIO(vault.get_bytes(key))
        info = vault.head(key)
        if info is None:
            raise KeyError(key)
        reader = S3RangeReader(vault.client, vault.bucket, vault._key(key), info.size)
        return io.BufferedReader(reader, buffer_size=SEEK_BUFFER)
    stream = vault.open_read(key)
    if stream.seekable():
        return stream
    with stream:
        return _spool(stream)


def _spool(stream: BinaryIO) -> BinaryIO:
    """Copy a stream into an anonymous temporary file (removed when closed), positioned at 0."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        shutil.copyfileobj(stream, spool, CHUNK_SIZE)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]


class ArtifactReader:
    """Opens an artifact's bytes from the hot vault or from its archive copy."""

    def __init__(self, vault: Vault, archive_options: S3Options | None = None) -> None:
        self.vault = vault
        self.archive_options = archive_options or same_credentials(vault)
        self._archives: dict[str, Vault] = {}

    def archive_vault(self, url: str) -> Vault:
        if url not in self._archives:
            self._archives[url] = open_vault(url, self.archive_options)
        return self._archives[url]

    def open(self, artifact: Artifact) -> BinaryIO:
        """A sequential stream of the artifact's original bytes (decompressed as they are read)."""
        if artifact.tier == "hot" or artifact.archive is None:
            return self.vault.open_read(artifact.key)
        stream = self.archive_vault(artifact.archive.tier_url).open_read(artifact.archive.key)
        if artifact.archive.compression == "zstd":
            return decompress_stream(stream)
        return stream

    def open_seekable(self, artifact: Artifact) -> BinaryIO:
        """A seekable handle on the artifact's original bytes, with bounded memory: the local
        file, HTTP range requests on S3, or for a compressed archive copy a temporary file it is
        decompressed into (removed on close)."""
        if artifact.tier == "hot" or artifact.archive is None:
            return _open_seekable_object(self.vault, artifact.key, artifact.size)
        copy = artifact.archive
        archive = self.archive_vault(copy.tier_url)
        if copy.compression is None:
            return _open_seekable_object(archive, copy.key, copy.stored_size)
        with self.open(artifact) as stream:
            return _spool(stream)

    def read_bytes(self, artifact: Artifact) -> bytes:
        """The whole artifact in memory: only for objects known to be small."""
        with self.open(artifact) as stream:
            data = stream.read()
        return data.to_pybytes() if hasattr(data, "to_pybytes") else data


def default_archive_url(vault: Vault) -> str:
    """The archive tier when the policies name none: a sibling directory, or ``archive/`` in the
    vault's bucket prefix."""
    if isinstance(vault, LocalVault):
        return vault.root.with_name(vault.root.name + "-archive").as_uri()
    return vault.url + "archive/"
