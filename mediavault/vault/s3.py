"""A vault in an S3-compatible bucket (AWS S3, MinIO, Garage, SeaweedFS) through boto3.

Create-if-absent is ``If-None-Match: *``. Before a process first writes to a vault it checks that
the store honours that header (a probe object written twice must be refused the second time).
A store without conditional writes is only usable by one writer process, which holds a local
lock (``s3.single_writer_lock``) and serializes HEAD-then-PUT among its threads.

With ``s3.server_side_encryption`` set, every write (PUT, CreateMultipartUpload, CopyObject)
carries the SSE parameters, and before the first write a probe object checks that the store
applies them: a store that refuses or ignores them gets no object at all.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import ipaddress
import logging
import os
import random
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

from mediavault.errors import ConfigurationError, SourceChanged, TransientError
from mediavault.settings import S3Options
from mediavault.vault.base import ObjectInfo, ProgressCallback, PutResult
from mediavault.vault.hashing import (
    FileDigest,
    HashingReader,
    PartsInOrder,
    digest_file,
    file_version,
    read_exactly,
    regular_file_fd,
    sha256_bytes,
)
from mediavault.vault.keys import STAGING_PREFIX, staging_key

SHA256_METADATA = "sha256"
SINGLE_COPY_LIMIT = 5 * 1024**3
UPLOAD_MARK = "#multipart-upload="
# Under staging/, so a probe object a crash leaves behind is collected like any staging leftover.
PROBE_PREFIX = STAGING_PREFIX + "probes/conditional-write/"
MAX_CONFLICT_PAUSE_SECONDS = 2.0
ENCRYPTION_PROBE_PREFIX = STAGING_PREFIX + "probes/encryption/"
ENCRYPTION_SETTING = "MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION"
KMS_KEY_SETTING = "MEDIAVAULT_S3__SSE_KMS_KEY_ID"

logger = logging.getLogger(__name__)
_warned_plain_http: set[str] = set()
# (endpoint, bucket) of the stores that refused a checksum header: not sent to them again.
_checksums_refused: set[tuple[str, str]] = set()
_warned_guard = threading.Lock()


def sse_args(options: S3Options) -> dict[str, str]:
    """The SSE parameters of every object-creating request (PutObject, CreateMultipartUpload,
    CopyObject); none for ``none``. UploadPart takes none of them (boto3 leaves them out)."""
    if options.server_side_encryption == "none":
        return {}
    args = {"ServerSideEncryption": options.server_side_encryption}
    if options.server_side_encryption == "aws:kms" and options.sse_kms_key_id:
        args["SSEKMSKeyId"] = options.sse_kms_key_id
    return args


def kms_key_matches(configured: str, reported: str | None) -> bool:
    """Whether the key a store reports is the configured one. AWS answers with the key's ARN
    whatever form was sent, and for an alias with the ARN of the key it names (not checkable)."""
    if not reported:
        return False
    if configured.startswith("alias/") or ":alias/" in configured:
        return True
    return reported == configured or reported.endswith(("/" + configured, ":" + configured))


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_plain_http(endpoint_url: str | None) -> None:
    """One warning per process and endpoint when S3 traffic crosses a network unencrypted."""
    if not endpoint_url:
        return
    parsed = urlparse(endpoint_url)
    if parsed.scheme.lower() != "http" or _is_loopback(parsed.hostname):
        return
    endpoint = f"http://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    with _warned_guard:
        if endpoint in _warned_plain_http:
            return
        _warned_plain_http.add(endpoint)
    logger.warning(
        "S3 endpoint %s is plain http:// on a non-loopback host: media, transcripts and metadata cross "
        "the network unencrypted (requests are signed, not encrypted); use an https:// endpoint",
        endpoint,
    )


def make_s3_client(options: S3Options) -> Any:
    """A boto3 S3 client configured for picky S3-compatible servers."""
    warn_if_plain_http(options.endpoint_url)
    config = Config(
        region_name=options.region,
        signature_version="s3v4",  # presigned URLs too (botocore may default them to SigV2)
        s3={"addressing_style": "path" if options.path_style else "auto"},
        request_checksum_calculation=options.checksum_mode,
        response_checksum_validation=options.checksum_mode,
        max_pool_connections=max(options.max_pool_connections, options.max_concurrency),
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
    )
    secret = options.secret_access_key.get_secret_value() if options.secret_access_key else None
    token = options.session_token.get_secret_value() if options.session_token else None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=config,
    )


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: ClientError) -> bool:
    return _status(exc) == 404 or _code(exc) in {"NoSuchKey", "404", "NotFound"}


def _is_conflict(exc: ClientError) -> bool:
    """409 ConditionalRequestConflict: a concurrent conditional write to the key; nothing was decided."""
    return _code(exc) == "ConditionalRequestConflict"


def _is_already_exists(exc: ClientError) -> bool:
    """412: the If-None-Match: * precondition failed, so the key exists. Never a 409."""
    return not _is_conflict(exc) and (_status(exc) == 412 or _code(exc) == "PreconditionFailed")


def _retry_attempts(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)


def _rejects_conditional_header(exc: ClientError) -> bool:
    return _status(exc) == 501 or _code(exc) in {"NotImplemented", "InvalidArgument", "InvalidRequest"}


# The request arrived other than it left (altered or cut short on the way): sent again, not the
# store's refusal of anything.
CORRUPTION_CODES = frozenset(
    {
        "BadDigest",
        "InvalidDigest",
        "XAmzContentChecksumMismatch",
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    }
)


class _Abandoned(Exception):
    """A part not sent because another part of its upload had already failed."""


def _raise_if_corrupted(exc: ClientError) -> None:
    """A part or object refused for its checksum or length left the client intact (it was read back
    and compared) and arrived altered: a transient fault, so the ingest sends it again."""
    if _code(exc) in CORRUPTION_CODES:
        raise TransientError(
            f"the S3 store found that the bytes it received do not match their checksum or length "
            f"({_code(exc)}): they are sent again (if this repeats, the store may not accept this "
            "request shape)"
        ) from exc


def crc32_header(crc: int) -> dict[str, str]:
    """The ``ChecksumCRC32`` parameter (big-endian, base64) of a part or object with this CRC32."""
    return {"ChecksumCRC32": base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")}


def crc32_args(crc: int) -> dict[str, str]:
    """A PutObject's or UploadPart's checksum parameters: the value sent as a header, which botocore
    then neither computes again nor moves to a trailer."""
    return {"ChecksumAlgorithm": "CRC32", **crc32_header(crc)}


def _rejects_encryption(exc: ClientError) -> bool:
    """The store refused a write because of its SSE parameters (an unknown algorithm, no KMS, a
    key it cannot use), as opposed to a transient fault."""
    code = _code(exc)
    message = str(exc.response.get("Error", {}).get("Message", ""))
    if code == "RequestTimeout":  # a 400 too, but about the connection
        return False
    if _status(exc) in (400, 501) or code in {"NotImplemented", "InvalidArgument", "InvalidRequest"}:
        return True
    return code.startswith("KMS") or (_status(exc) == 403 and "kms" in message.lower())


@dataclass
class SingleWriterLock:
    """The fcntl lock a process holds to be the only writer of vaults without conditional writes."""

    path: Path
    fd: int
    pid: int
    mutex: threading.Lock
    """Serializes HEAD-then-PUT among the threads (and vault objects) of the holding process."""


_writer_locks: dict[Path, SingleWriterLock] = {}
_writer_locks_guard = threading.Lock()


def acquire_single_writer_lock(path: Path) -> SingleWriterLock:
    """Take (or return the already held) exclusive lock at ``path`` for this process.

    The lock is held until the process exits or ``release_single_writer_lock`` is called: a
    process opens many vault objects, and letting another writer in between them would break
    an ingest half-way. A second process asking for it gets a ConfigurationError at once.
    """
    import fcntl

    resolved = Path(path).expanduser().resolve()
    with _writer_locks_guard:
        held = _writer_locks.get(resolved)
        if held is not None and held.pid == os.getpid():
            return held
        resolved.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(resolved, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigurationError(
                f"the single-writer lock {resolved} is held by {holder}. With s3.conditional_writes=false "
                "only one process may write to the vault (the store cannot refuse a second writer's "
                "overwrite): stop the other writer, or set s3.conditional_writes=true on a store that "
                "honours If-None-Match: *"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise ConfigurationError(
                f"s3.single_writer_lock {resolved} cannot be locked ({exc}); use a local filesystem"
            ) from None
        os.ftruncate(fd, 0)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        lock = SingleWriterLock(resolved, fd, os.getpid(), threading.Lock())
        _writer_locks[resolved] = lock
        return lock


def release_single_writer_lock(path: Path) -> None:
    """Let another process become the writer (this process must not write afterwards)."""
    import fcntl

    with _writer_locks_guard:
        held = _writer_locks.pop(Path(path).expanduser().resolve(), None)
        if held is not None and held.pid == os.getpid():
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)


# (endpoint, bucket, prefix) -> None when the store honours If-None-Match: *, else why it does not.
_probe_results: dict[tuple[str, str, str], str | None] = {}
_probe_locks: dict[tuple[str, str, str], threading.Lock] = {}
_probe_guard = threading.Lock()
# (endpoint, bucket, prefix, algorithm, KMS key) -> None when the store applies that SSE, else why not.
_encryption_results: dict[tuple[str, ...], str | None] = {}
_encryption_locks: dict[tuple[str, ...], threading.Lock] = {}


class S3Vault:
    """Objects live under ``s3://bucket/prefix``. Create-if-absent uses ``If-None-Match: *``.

    The SHA-256 of every object is kept in its user metadata: multipart ETags are not hashes.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        options: S3Options,
        client: Any = None,
        storage_class: str | None = None,
    ) -> None:
        if not bucket:
            raise ConfigurationError("s3 vault URL needs a bucket: s3://BUCKET/PREFIX")
        if not options.conditional_writes and options.single_writer_lock is None:
            raise ConfigurationError(
                "s3.conditional_writes=false needs s3.single_writer_lock: without If-None-Match two "
                "writers can both see a key absent and the last PUT wins, losing journal records and "
                "manifest versions. Set s3.single_writer_lock (MEDIAVAULT_S3__SINGLE_WRITER_LOCK) to a "
                "local lock file and run exactly one writer machine, or set s3.conditional_writes=true "
                "on a store that honours If-None-Match: *"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options
        self.url = f"s3://{bucket}/{self.prefix}"
        self.storage_class = storage_class
        self._scope = (options.endpoint_url or f"aws:{options.region}", bucket)
        self.client = client or make_s3_client(options)
        self.transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=options.max_concurrency,
            use_threads=options.max_concurrency > 1,
        )
        # Streaming (non-seekable) uploads buffer parts in memory: bound them, so a slow network
        # never makes a GB-sized media file pile up in RAM (chunksize x (concurrency + 2) at most).
        self.transfer.max_in_memory_upload_chunks = options.max_concurrency + 2

    def _key(self, key: str) -> str:
        if (
            not key
            or key.startswith("/")
            or "\0" in key
            or any(part in ("", ".", "..") for part in key.split("/"))
        ):
            raise ValueError(f"invalid vault key: {key!r}")
        return self.prefix + key

    def _exists(self, full_key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=full_key)
            return True
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise

    @property
    def _sse(self) -> dict[str, str]:
        return sse_args(self.options)

    def _ensure_writable(self) -> None:
        """Before any write: the store must apply the configured encryption and honour
        If-None-Match (each probed once per process and vault), or this process must hold the
        single-writer lock. Encryption first: a store refusing SSE would fail the other probe
        with a misleading reason."""
        self._check_encryption()
        if self.options.conditional_writes:
            self._check_conditional_writes()
        else:
            assert self.options.single_writer_lock is not None
            acquire_single_writer_lock(self.options.single_writer_lock)

    def _put_args(self, full_key: str, data: bytes, digest: str, content_type: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full_key,
            "Body": data,
            "Metadata": {SHA256_METADATA: digest},
            "ContentType": content_type or "application/octet-stream",
            **self._sse,
        }
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        return args

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> PutResult:
        full_key = self._key(key)
        digest = sha256_bytes(data)
        self._ensure_writable()
        args = self._put_args(full_key, data, digest, content_type)
        if self.options.conditional_writes:
            created = self._create_if_absent(args, digest)
        else:
            assert self.options.single_writer_lock is not None
            with acquire_single_writer_lock(self.options.single_writer_lock).mutex:
                created = not self._exists(full_key)
                if created:
                    self.client.put_object(**args)
        return PutResult(key, digest, len(data), created=created)

    def _create_if_absent(self, args: dict[str, Any], digest: str) -> bool:
        """PUT with ``If-None-Match: *``: True when this call created the object, False on 412.

        A 409 ConditionalRequestConflict (a concurrent conditional write to the key) decides
        nothing: the same PUT is repeated after a short, growing pause, up to
        ``conflict_attempts`` times, then a TransientError is raised.
        """
        full_key = args["Key"]
        attempts = max(1, self.options.conflict_attempts)
        pause = self.options.conflict_backoff_seconds
        retried = False
        for attempt in range(1, attempts + 1):
            try:
                self.client.put_object(**args, IfNoneMatch="*")
                return True
            except ClientError as exc:
                retried = retried or _retry_attempts(exc) > 0
                if _is_conflict(exc):
                    if attempt < attempts:
                        time.sleep(pause * random.uniform(0.5, 1.5))
                        pause = min(pause * 2, MAX_CONFLICT_PAUSE_SECONDS)
                    continue
                if _is_already_exists(exc):
                    # botocore repeats a PUT whose answer was lost (reset, timeout, 5xx); when an
                    # earlier attempt landed, this 412 is about our own object.
                    return retried and self._recorded_sha256(full_key) == digest
                raise
        raise TransientError(
            f"S3 answered 409 ConditionalRequestConflict {attempts} times to the create of "
            f"s3://{self.bucket}/{full_key}: other writers keep writing that key at the same time; "
            "retry later"
        )

    def _recorded_sha256(self, full_key: str) -> str | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return response.get("Metadata", {}).get(SHA256_METADATA)

    def _check_conditional_writes(self) -> None:
        scope = (self.options.endpoint_url or f"aws:{self.options.region}", self.bucket, self.prefix)
        with _probe_guard:
            lock = _probe_locks.setdefault(scope, threading.Lock())
        with lock:
            if scope not in _probe_results:
                # A transient fault propagates and caches nothing: the next write probes again.
                _probe_results[scope] = self._probe_if_none_match()
            refusal = _probe_results[scope]
        if refusal is not None:
            raise ConfigurationError(refusal)

    def _probe_if_none_match(self) -> str | None:
        """Write a probe object twice with If-None-Match: *; None when the second write is refused."""
        full_key = self.prefix + PROBE_PREFIX + uuid.uuid4().hex
        first, second = b"mediavault conditional-write probe 1", b"mediavault conditional-write probe 2"
        probe_args = {
            "Bucket": self.bucket,
            "Key": full_key,
            "ContentType": "application/octet-stream",
            **self._sse,
        }
        try:
            try:
                created = self._create_if_absent(
                    {**probe_args, "Body": first, "Metadata": {SHA256_METADATA: sha256_bytes(first)}},
                    sha256_bytes(first),
                )
                if not created:
                    return self._refusal("it answered 412 Precondition Failed for a key that did not exist")
                overwritten = self._create_if_absent(
                    {**probe_args, "Body": second, "Metadata": {SHA256_METADATA: sha256_bytes(second)}},
                    sha256_bytes(second),
                )
            except ClientError as exc:
                if _rejects_conditional_header(exc):
                    message = exc.response.get("Error", {}).get("Message", "")
                    return self._refusal(f"it rejects the header ({_status(exc)} {_code(exc)}: {message})")
                raise
            if overwritten:
                return self._refusal("a second If-None-Match: * write to the same key succeeded")
            stored = self.client.get_object(Bucket=self.bucket, Key=full_key)["Body"].read()
            if stored != first:
                return self._refusal("it answered 412 but overwrote the object anyway")
            return None
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=full_key)

    def _refusal(self, reason: str) -> str:
        endpoint = self.options.endpoint_url or "AWS S3"
        return (
            f"the S3 store at {endpoint} (bucket {self.bucket}) does not honour If-None-Match: * "
            f"({reason}), which s3.conditional_writes=true relies on; refusing to write manifests or "
            "the journal, because concurrent writers would silently overwrite each other. For a store "
            "without conditional writes set s3.conditional_writes=false together with "
            "s3.single_writer_lock, and run exactly one writer (see docs/architecture.md)"
        )

    def _check_encryption(self) -> None:
        sse = self._sse
        if not sse:
            return
        scope = (
            self.options.endpoint_url or f"aws:{self.options.region}",
            self.bucket,
            self.prefix,
            sse["ServerSideEncryption"],
            sse.get("SSEKMSKeyId", ""),
        )
        with _probe_guard:
            lock = _encryption_locks.setdefault(scope, threading.Lock())
        with lock:
            if scope not in _encryption_results:
                # A transient fault propagates and caches nothing: the next write probes again.
                _encryption_results[scope] = self._probe_encryption(sse)
            refusal = _encryption_results[scope]
        if refusal is not None:
            raise ConfigurationError(refusal)

    def _probe_encryption(self, sse: dict[str, str]) -> str | None:
        """Write one small object with the SSE parameters; None when both the answer and a HEAD of
        the object report that encryption (and KMS key), else why not. The probe is deleted."""
        full_key = self.prefix + ENCRYPTION_PROBE_PREFIX + uuid.uuid4().hex
        body = b"mediavault encryption probe"
        try:
            try:
                answer = self.client.put_object(
                    Bucket=self.bucket,
                    Key=full_key,
                    Body=body,
                    ContentType="application/octet-stream",
                    Metadata={SHA256_METADATA: sha256_bytes(body)},
                    **sse,
                )
            except ClientError as exc:
                if _rejects_encryption(exc):
                    message = exc.response.get("Error", {}).get("Message", "")
                    return self._encryption_refusal(
                        f"it refused a write with it: {_status(exc)} {_code(exc)}: {message}"
                    )
                raise
            problem = self._encryption_mismatch("its answer to a write", answer)
            if problem is None:
                stored = self.client.head_object(Bucket=self.bucket, Key=full_key)
                problem = self._encryption_mismatch("a HEAD of the object written", stored)
            return None if problem is None else self._encryption_refusal(problem)
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=full_key)

    def _encryption_mismatch(self, where: str, response: dict[str, Any]) -> str | None:
        wanted = self.options.server_side_encryption
        reported = response.get("ServerSideEncryption")
        if reported is None:
            return (
                f"{where} has no x-amz-server-side-encryption header: the store ignores the setting, "
                "so objects would be stored without the encryption asked for"
            )
        if reported != wanted:
            return f"{where} reports server-side encryption {reported!r}, not {wanted!r}"
        key = self.options.sse_kms_key_id
        if wanted == "aws:kms" and key and not kms_key_matches(key, response.get("SSEKMSKeyId")):
            return f"{where} reports KMS key {response.get('SSEKMSKeyId')!r}, not {key!r}"
        return None

    def _encryption_refusal(self, reason: str) -> str:
        endpoint = self.options.endpoint_url or "AWS S3"
        wanted = self.options.server_side_encryption
        if wanted == "aws:kms":
            wanted += f" with KMS key {self.options.sse_kms_key_id}"
        return (
            f"the S3 store at {endpoint} (bucket {self.bucket}) does not apply server-side encryption "
            f"{wanted} ({reason}); refusing to write anything, so that no object is stored unencrypted. "
            f"Check s3.server_side_encryption ({ENCRYPTION_SETTING}) and s3.sse_kms_key_id "
            f"({KMS_KEY_SETTING}): choose a mode this store supports, or, for a store without "
            "server-side encryption, set it to none and encrypt the store's volumes instead "
            "(see docs/operations.md, Encryption at rest)"
        )

    def put_stream(
        self,
        stream: BinaryIO,
        key_for: Callable[[str], str],
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        """Upload to a staging key while hashing, then server-side copy to the final key.

        The final key depends on the digest, which is known only after the last byte. The
        staging object is removed afterwards; one left by a crash is garbage under staging/.
        A plain local file is hashed first instead (see ``_put_file``).
        """
        self._ensure_writable()
        fd = regular_file_fd(stream)
        if fd is not None:
            return self._put_file(stream, fd, key_for, content_type, progress)
        reader = HashingReader(stream, progress)
        staged = self.prefix + staging_key(uuid.uuid4().hex)
        try:
            self.client.upload_fileobj(
                reader,
                self.bucket,
                staged,
                Config=self.transfer,
                ExtraArgs={"ContentType": content_type or "application/octet-stream", **self._sse},
            )
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise
            self._check_completed_upload(staged, reader.size, exc)
        try:
            key = key_for(reader.sha256)
            full_key = self._key(key)
            created = not self._exists(full_key)
            if created:
                self._server_side_copy(staged, full_key, reader.size, reader.sha256, content_type)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=staged)
        return PutResult(key, reader.sha256, reader.size, created=created)

    def _put_file(
        self,
        stream: BinaryIO,
        fd: int,
        key_for: Callable[[str], str],
        content_type: str | None,
        progress: ProgressCallback | None,
    ) -> PutResult:
        """A local file can be read twice: hash it first (at disk speed), then upload it straight
        to its final key, or not at all when the vault already holds it. No staging object, no
        server-side copy. The upload reads the file again, in parts, and hashes what it read in
        order: the object is completed (or a single PUT sent) only if that is the SHA-256 the key
        was named after, so no change to the file (even one its times do not show) can put other
        bytes under this key. With ``part_checksums`` each part also carries its CRC32, for the
        store to check what it received. The file's identity, size and times are compared before
        and after hashing and after uploading. If the bytes or the file moved, ``SourceChanged``
        (transient: the ingest is retried) is raised and the upload abandoned, while an object
        already completed is kept (its bytes were checked)."""
        start = stream.tell()
        name = getattr(stream, "name", f"file descriptor {fd}")
        info = os.fstat(fd)
        before = file_version(info)
        digest = digest_file(fd, start, self._part_size(info.st_size - start))
        if file_version(os.fstat(fd)) != before:
            raise SourceChanged(name)
        key = key_for(digest.sha256)
        full_key = self._key(key)
        created = not self._exists(full_key)
        if created:
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": full_key,
                "ContentType": content_type or "application/octet-stream",
                "Metadata": {SHA256_METADATA: digest.sha256},
                **self._sse,
            }
            if self.storage_class:
                args["StorageClass"] = self.storage_class
            if digest.parts == 1:
                self._upload_whole(fd, start, digest, args, name)
            else:
                self._upload_parts(fd, start, digest, args, name, progress)
            if file_version(os.fstat(fd)) != before:
                # Not deleted: what was uploaded hashed to the key, so the object is right, and
                # another ingest of the same bytes may already count on it.
                raise SourceChanged(name)
        if progress and (not created or digest.parts == 1):
            progress(digest.size)
        stream.seek(start + digest.size)
        return PutResult(key, digest.sha256, digest.size, created=created)

    def _part_size(self, size: int) -> int:
        """The part size of an upload of ``size`` bytes: one part below the multipart threshold,
        else the configured size, grown as S3 needs (at most 10,000 parts, 5 MiB to 5 GiB each)."""
        if size < self.transfer.multipart_threshold:
            return max(self.transfer.multipart_threshold, 1)
        return ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, size)

    def _read_part(self, fd: int, start: int, digest: FileDigest, number: int, name: str) -> bytes:
        """Part ``number`` (from 0), or ``SourceChanged`` when the file is shorter than it was."""
        offset = number * digest.part_size
        expected = min(digest.part_size, digest.size - offset)
        data = read_exactly(fd, expected, start + offset)
        if len(data) != expected:
            raise SourceChanged(name)
        return data

    def _sends_checksums(self) -> bool:
        return self.options.part_checksums and self._scope not in _checksums_refused

    @staticmethod
    def _checksums_suspect(exc: ClientError) -> bool:
        """Refused the way a store that does not know the checksum headers refuses them (400 or
        501, other than bytes altered on the way or a timeout). Only a suspicion: see
        ``_without_checksums`` and ``_refused_in_upload``."""
        code = _code(exc)
        return (
            _status(exc) == 501
            or code == "NotImplemented"
            or (_status(exc) == 400 and code not in CORRUPTION_CODES | {"RequestTimeout"})
        )

    @staticmethod
    def _names_checksums(exc: ClientError) -> bool:
        """The error says it is about a checksum (as S3, R2 or MinIO word such refusals)."""
        error = exc.response.get("Error", {})
        return "checksum" in f"{error.get('Code', '')} {error.get('Message', '')}".lower()

    def _forgo_checksums(self, exc: ClientError) -> None:
        """The store refused the checksum headers: none are sent to it again by this process."""
        if self._scope in _checksums_refused:
            return
        _checksums_refused.add(self._scope)
        logger.warning(
            "the S3 store at %s refused a checksum header (%s %s); media is uploaded without part "
            "checksums from now on (set s3.part_checksums=false to skip the first attempt)",
            self.options.endpoint_url or "AWS S3",
            _status(exc),
            _code(exc),
        )

    def _without_checksums(self, exc: ClientError, sent: dict[str, Any], request: Callable[[], Any]) -> Any:
        """After a refusal that may be the checksum headers', the same request without them. Only
        if that one succeeds were the headers the reason: checksums are then given up for the
        store. Otherwise the first error stands."""
        if not sent or not self._checksums_suspect(exc):
            _raise_if_corrupted(exc)
            raise exc
        try:
            response = request()
        except ClientError:
            raise exc from None
        self._forgo_checksums(exc)
        return response

    def _upload_whole(self, fd: int, start: int, digest: FileDigest, args: dict[str, Any], name: str) -> None:
        data = self._read_part(fd, start, digest, 0, name)
        if hashlib.sha256(data).hexdigest() != digest.sha256:
            raise SourceChanged(name)
        sent = crc32_args(zlib.crc32(data)) if self._sends_checksums() else {}
        try:
            self.client.put_object(**args, Body=data, **sent)
        except ClientError as exc:
            self._without_checksums(exc, sent, lambda: self.client.put_object(**args, Body=data))

    def _upload_parts(
        self,
        fd: int,
        start: int,
        digest: FileDigest,
        args: dict[str, Any],
        name: str,
        progress: ProgressCallback | None,
    ) -> None:
        """A multipart upload, ``max_concurrency`` parts at a time, each read when it is sent (so
        at most that many parts are in memory). The first failure stops the parts not started and
        aborts the upload. ``progress`` is called from the upload threads, one call at a time."""
        checksums = self._sends_checksums()
        algorithm = {"ChecksumAlgorithm": "CRC32"} if checksums else {}
        try:
            created = self.client.create_multipart_upload(**args, **algorithm)
        except ClientError as exc:
            plain = lambda: self.client.create_multipart_upload(**args)  # noqa: E731
            created = self._without_checksums(exc, algorithm, plain)
            checksums = False
        target = {"Bucket": self.bucket, "Key": args["Key"], "UploadId": created["UploadId"]}
        failed = threading.Event()
        reporting = threading.Lock()
        uploaded = PartsInOrder(failed)

        def send(number: int) -> dict[str, Any]:
            if failed.is_set():
                raise _Abandoned
            try:
                data = self._read_part(fd, start, digest, number, name)
                uploaded.add(number, data)  # in part order: waits for the parts before it
                if failed.is_set():
                    raise _Abandoned
                crc = zlib.crc32(data)
                checksum = crc32_header(crc) if checksums else {}
                sent = crc32_args(crc) if checksums else {}
                try:
                    response = self.client.upload_part(**target, PartNumber=number + 1, Body=data, **sent)
                except ClientError as exc:
                    self._refused_in_upload(exc, checksums)
                    raise
                if progress:
                    with reporting:
                        progress(len(data))
            except BaseException:
                failed.set()
                raise
            return {"PartNumber": number + 1, "ETag": response["ETag"], **checksum}

        workers = max(1, self.transfer.max_concurrency)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="mediavault-upload")
        try:
            futures = [pool.submit(send, number) for number in range(digest.parts)]
            wait(futures, return_when=FIRST_EXCEPTION)
            pool.shutdown(cancel_futures=True)  # waits for the parts under way
            errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
            if errors:
                raise next((e for e in errors if not isinstance(e, _Abandoned)), errors[0])
            parts = [future.result() for future in futures]
            if uploaded.hexdigest(digest.parts) != digest.sha256:
                raise SourceChanged(name)  # the file changed since it was hashed: not completed
            try:
                self.client.complete_multipart_upload(**target, MultipartUpload={"Parts": parts})
            except ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    self._refused_in_upload(exc, checksums)
                    raise
                self._check_completed_upload(args["Key"], digest.size, exc)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(**target)
            raise

    def _refused_in_upload(self, exc: ClientError, checksums: bool) -> None:
        """A part or the completion refused for its checksums, after the creation carried them:
        the upload cannot go on without them, so checksums are given up for the store and the
        error is transient (the ingest is run again, without them). Unlike a whole request, a
        part cannot be tried again alone without them, so only an error that says it is about a
        checksum counts, or a 501 (the header is the only feature a part asks for). A mismatch
        stays a mismatch."""
        _raise_if_corrupted(exc)
        not_implemented = _status(exc) == 501 or _code(exc) == "NotImplemented"
        if checksums and (not_implemented or (self._checksums_suspect(exc) and self._names_checksums(exc))):
            self._forgo_checksums(exc)
            raise TransientError(
                f"the S3 store refused a checksum header ({_status(exc)} {_code(exc)}); "
                "send the upload again without checksums"
            ) from exc

    def _check_completed_upload(self, staged: str, size: int, exc: ClientError) -> None:
        """A repeated CompleteMultipartUpload whose first attempt landed (its answer lost) finds
        no upload any more. If the key holds every byte, the upload is done (a staged key is ours
        alone; a media key holds these bytes or the same bytes from another writer)."""
        try:
            stored = int(self.client.head_object(Bucket=self.bucket, Key=staged)["ContentLength"])
        except ClientError as head_exc:
            if not _is_not_found(head_exc):
                raise
            stored = None
        if stored != size:
            raise TransientError(
                f"the multipart upload to s3://{self.bucket}/{staged} disappeared before it completed "
                f"({_code(exc)}; aborted by a staging cleanup?); retry the upload"
            ) from exc

    def _server_side_copy(
        self, source_key: str, target_key: str, size: int, sha256: str, content_type: str | None
    ) -> None:
        """One CopyObject up to S3's 5 GiB limit (far faster than a multipart copy), else multipart.
        The copy re-states the SSE parameters: without them it gets the bucket's default."""
        extra = {
            "Metadata": {SHA256_METADATA: sha256},
            "MetadataDirective": "REPLACE",
            "ContentType": content_type or "application/octet-stream",
            **self._sse,
        }
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        source = {"Bucket": self.bucket, "Key": source_key}
        if size <= SINGLE_COPY_LIMIT:
            self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=target_key, **extra)
        else:
            self.client.copy(source, self.bucket, target_key, ExtraArgs=extra, Config=self.transfer)

    def presigned_get(
        self,
        key: str,
        ttl_seconds: int,
        content_type: str | None = None,
        download_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> str:
        """A presigned GET URL. ``endpoint_url`` signs for the host clients will use when it
        differs from ours (a proxy or split-horizon DNS): SigV4 signs the host."""
        client = self.client if endpoint_url is None else _signing_client(self.options, endpoint_url)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if download_name:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        return client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as body:
            return body.read()

    def open_read(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise KeyError(key) from None
            raise
        return response["Body"]

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(
            key,
            int(response["ContentLength"]),
            response.get("Metadata", {}).get(SHA256_METADATA),
            response["LastModified"].timestamp() if response.get("LastModified") else None,
        )

    def list_keys(self, prefix: str = "", start_after: str | None = None) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after:
            args["StartAfter"] = self.prefix + start_after
        for page in paginator.paginate(**args):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def restore_state(self, key: str) -> str:
        """For objects in a cold storage class: 'not-requested', 'in-progress' or 'ready'."""
        response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        if response.get("StorageClass") in (
            None,
            "STANDARD",
            "STANDARD_IA",
            "ONEZONE_IA",
            "GLACIER_IR",
            "INTELLIGENT_TIERING",
            "REDUCED_REDUNDANCY",
        ):
            return "ready"
        restore = response.get("Restore")
        if not restore:
            return "not-requested"
        return "in-progress" if 'ongoing-request="true"' in restore else "ready"

    def request_restore(self, key: str, days: int = 7, tier: str = "Standard") -> None:
        """Ask S3 to make a cold object readable for ``days`` (answers at once; the work is async)."""
        try:
            self.client.restore_object(
                Bucket=self.bucket,
                Key=self._key(key),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
        except ClientError as exc:
            if _code(exc) != "RestoreAlreadyInProgress":
                raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def staging_leftovers(self) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + STAGING_PREFIX):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"][len(self.prefix) :], int(item["Size"]), None, item["LastModified"].timestamp()
                )

        # Unfinished multipart uploads under staging/ and media/ (local files go straight to
        # their media key); nothing else of a shared bucket.
        uploads = self.client.get_paginator("list_multipart_uploads")
        for area in (STAGING_PREFIX, "media/"):
            for upload in (
                item
                for page in uploads.paginate(Bucket=self.bucket, Prefix=self.prefix + area)
                for item in page.get("Uploads", [])
            ):
                key = upload["Key"][len(self.prefix) :]
                yield ObjectInfo(
                    f"{key}{UPLOAD_MARK}{upload['UploadId']}", 0, None, upload["Initiated"].timestamp()
                )

    def delete_staging(self, key: str) -> None:
        """Delete a staging object, or abort an unfinished multipart upload a killed writer left
        (under staging/, or to a media key)."""
        if UPLOAD_MARK in key:
            object_key, upload_id = key.split(UPLOAD_MARK, 1)
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(object_key), UploadId=upload_id
                )
            except ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    raise
            return
        if not key.startswith(STAGING_PREFIX):
            raise ValueError(f"not a staging key of this vault: {key!r}")
        self.delete(key)


def _signing_client(options: S3Options, endpoint_url: str) -> Any:
    """A client only for signing URLs for another endpoint (no request is sent through it)."""
    return make_s3_client(options.model_copy(update={"endpoint_url": endpoint_url}))


def content_disposition(filename: str) -> str:
    """An ``attachment`` header value safe for any file name (RFC 6266 / RFC 5987)."""
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


SEEK_BUFFER = 256 * 1024
"""Read buffer for seekable S3 streams (Parquet footers, media probes)."""


class S3RangeReader(io.RawIOBase):
    """A seekable read-only view of one S3 object; with ``if_match`` pinned to that ETag."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, if_match: str | None = None) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._extra = {"IfMatch": if_match} if if_match else {}
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}", **self._extra
            )
        except ClientError as exc:
            if self._extra and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
                raise SourceChanged(f"s3://{self._bucket}/{self._key}") from None
            raise
        body = response["Body"].read()
        buffer[: len(body)] = body
        self._pos += len(body)
        return len(body)
