"""Where input files come from: a local path or an ``s3://bucket/key`` URL."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from botocore.exceptions import ClientError

from mediavault.errors import InputError, SourceChanged
from mediavault.settings import IngestLimits, S3Options
from mediavault.vault.s3 import SEEK_BUFFER, S3RangeReader


def _local_version(info: os.stat_result) -> str:
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def check_filename(name: str, file: str, field: str, limits: IngestLimits) -> str:
    """Reject names that could escape a directory or confuse tools; returns the base name."""
    if "\0" in name:
        raise InputError(file.replace("\0", "\\0"), field, "file name contains a NUL character")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InputError(file, field, "file name contains control characters")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise InputError(file, field, "path traversal ('..') is not allowed in file names")
    base = parts[-1]
    if base in ("", "."):
        raise InputError(file, field, "names a directory, not a file")
    if len(base.encode()) > limits.max_filename_bytes:
        raise InputError(
            file[:80] + "...",
            field,
            f"file name is {len(base.encode())} bytes; the limit is {limits.max_filename_bytes}",
        )
    return base


@dataclass(frozen=True)
class Source:
    """An input file. ``display`` is what error messages call it."""

    display: str
    name: str
    size: int
    local_path: Path | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    s3_client: Any = None
    version: str = ""
    """What identifies these bytes: the S3 ETag, version id and date, or the local inode, size
    and change times. Reads are pinned to it, so a source overwritten after validation fails
    loudly instead of storing other bytes than the ones checked."""

    def current_version(self) -> str:
        """The version as the source is now (local files; S3 reads are pinned by ETag)."""
        if self.local_path is None:
            return self.version
        return _local_version(self.local_path.stat())

    def check_unchanged(self) -> None:
        if self.current_version() != self.version:
            raise SourceChanged(self.display)

    @property
    def s3_etag(self) -> str:
        return self.version.split("|", 1)[0]

    def open_stream(self) -> BinaryIO:
        if self.local_path is not None:
            return open(self.local_path, "rb")
        try:
            response = self.s3_client.get_object(Bucket=self.s3_bucket, Key=self.s3_key, IfMatch=self.s3_etag)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
                raise SourceChanged(self.display) from None
            raise
        return response["Body"]

    def open_seekable(self) -> BinaryIO:
        """Random access for probing; on S3 served by HTTP range requests, never a download."""
        if self.local_path is not None:
            return open(self.local_path, "rb")
        reader = S3RangeReader(
            self.s3_client, self.s3_bucket or "", self.s3_key or "", self.size, self.s3_etag
        )
        return io.BufferedReader(reader, buffer_size=SEEK_BUFFER)

    def read_all(self, limit: int, field: str) -> bytes:
        if self.size > limit:
            raise InputError(
                self.display,
                field,
                f"is {self.size:,} bytes; the limit is {limit:,} (limits.max_transcript_bytes)",
            )
        with self.open_stream() as stream:
            return stream.read()


def parse_s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, unquote(parsed.path.lstrip("/"))


def resolve_source(
    location: str,
    field: str,
    limits: IngestLimits,
    s3: S3Options | None = None,
    s3_client: Any = None,
) -> Source:
    """Check that an input exists and is a readable, non-empty regular file."""
    if not isinstance(location, str) or not location:
        raise InputError(str(location), field, "no file given")
    if location.startswith("s3://"):
        bucket, key = parse_s3_url(location)
        name = check_filename(key, location, field, limits)
        if s3_client is None:
            from mediavault.vault.s3 import make_s3_client

            s3_client = make_s3_client(s3 or S3Options())
        try:
            head = s3_client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (403, 404):
                raise InputError(location, field, f"cannot be read (HTTP {status})") from None
            raise
        size = int(head["ContentLength"])
        version = "|".join([head["ETag"], head.get("VersionId") or "", str(head.get("LastModified") or "")])
        source = Source(
            location, name, size, s3_bucket=bucket, s3_key=key, s3_client=s3_client, version=version
        )
    else:
        path_text = location.removeprefix("file://")
        name = check_filename(path_text, location, field, limits)
        path = Path(path_text)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise InputError(location, field, "file not found") from None
        except OSError as exc:
            raise InputError(location, field, f"cannot be read: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(location, field, "is not a regular file")
        if not os.access(path, os.R_OK):
            raise InputError(location, field, "cannot be read: permission denied")
        source = Source(location, name, info.st_size, local_path=path, version=_local_version(info))
    if source.size == 0:
        raise InputError(location, field, "is empty (0 bytes)")
    return source
