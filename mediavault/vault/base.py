"""The Vault protocol: an immutable, create-if-absent object store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class PutResult:
    """Outcome of a create-if-absent write. ``created`` is False when the key already existed."""

    key: str
    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str | None
    """The SHA-256 recorded at write time, when the backend keeps one (never an ETag)."""
    modified: float | None = None
    """Last modification as a POSIX timestamp."""


@runtime_checkable
class Vault(Protocol):
    """What every vault backend offers. Keys are '/'-separated relative paths."""

    url: str

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> PutResult:
        """Store ``data`` at ``key`` unless the key exists. An existing key is success."""
        ...

    def put_stream(
        self,
        stream: BinaryIO,
        key_for: Callable[[str], str],
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        """Stream bytes in one pass, hashing them, then commit at ``key_for(sha256)`` if absent."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a whole (small) object. Raises KeyError when absent."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """Open an object for streaming reads. Raises KeyError when absent."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and recorded checksum of an object, or None when absent."""
        ...

    def list_keys(self, prefix: str = "", start_after: str | None = None) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order, strictly after ``start_after``."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""
        ...

    def staging_leftovers(self) -> Iterator[ObjectInfo]:
        """In-flight upload and temp objects, with size and modification time. One that stays old
        was left by a writer that died; it is referenced by nothing."""
        ...

    def delete_staging(self, key: str) -> None:
        """Remove one object listed by ``staging_leftovers``."""
        ...
