"""Reading artifacts wherever their tier keeps them, and the archive tier itself.

An archive tier is another vault: a prefix of the same bucket, a separate bucket (Garage has no
storage classes; this works there), or a local directory; on S3 it may also write objects with a
storage class. AI outputs are zstd-compressed on the way in; media are stored as they are.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import pyarrow as pa

from mediavault.models import Artifact
from mediavault.settings import S3Options
from mediavault.vault import Vault, open_vault
from mediavault.vault.s3 import S3Vault


def same_credentials(vault: Vault) -> S3Options | None:
    return vault.options if isinstance(vault, S3Vault) else None


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
        if artifact.tier == "hot" or artifact.archive is None:
            return self.vault.open_read(artifact.key)
        stream = self.archive_vault(artifact.archive.tier_url).open_read(artifact.archive.key)
        if artifact.archive.compression == "zstd":
            # Compressed artifacts are AI outputs, bounded by the ingest limits: decompress in memory.
            with stream:
                data = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "zstd").read()
            return io.BytesIO(data.to_pybytes() if hasattr(data, "to_pybytes") else data)
        return stream

    def read_bytes(self, artifact: Artifact) -> bytes:
        with self.open(artifact) as stream:
            data = stream.read()
        return data.to_pybytes() if hasattr(data, "to_pybytes") else data


def compress_stream(source: BinaryIO) -> BinaryIO:
    """zstd-compress a stream into a spooled buffer (AI outputs are bounded by the ingest limits)."""
    sink = pa.BufferOutputStream()
    compressed = pa.CompressedOutputStream(sink, "zstd")
    while chunk := source.read(8 * 1024 * 1024):
        compressed.write(chunk)
    compressed.close()
    return io.BytesIO(sink.getvalue().to_pybytes())
