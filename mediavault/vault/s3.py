"""A vault in an S3-compatible bucket (AWS S3, MinIO, Garage, SeaweedFS) through boto3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from mediavault.errors import ConfigurationError
from mediavault.hashing import HashingReader, sha256_bytes
from mediavault.settings import S3Options
from mediavault.vault.base import ObjectInfo, ProgressCallback, PutResult
from mediavault.vault.keys import STAGING_PREFIX, staging_key

SHA256_METADATA = "sha256"
SINGLE_COPY_LIMIT = 5 * 1024**3
UPLOAD_MARK = "#multipart-upload="


def make_s3_client(options: S3Options) -> Any:
    """A boto3 S3 client configured for picky S3-compatible servers."""
    config = Config(
        region_name=options.region,
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


def _is_already_exists(exc: ClientError) -> bool:
    # 412: If-None-Match failed. 409 ConditionalRequestConflict: a concurrent conditional write.
    return _status(exc) == 412 or _code(exc) in {"PreconditionFailed"}


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
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options
        self.url = f"s3://{bucket}/{self.prefix}"
        self.storage_class = storage_class
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

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> PutResult:
        full_key = self._key(key)
        digest = sha256_bytes(data)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full_key,
            "Body": data,
            "Metadata": {SHA256_METADATA: digest},
            "ContentType": content_type or "application/octet-stream",
        }
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.options.conditional_writes:
            args["IfNoneMatch"] = "*"
        elif self._exists(full_key):
            return PutResult(key, digest, len(data), created=False)
        try:
            self.client.put_object(**args)
        except ClientError as exc:
            if _is_already_exists(exc):
                return PutResult(key, digest, len(data), created=False)
            raise
        return PutResult(key, digest, len(data), created=True)

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
        """
        reader = HashingReader(stream, progress)
        staged = self.prefix + staging_key(uuid.uuid4().hex)
        self.client.upload_fileobj(
            reader,
            self.bucket,
            staged,
            Config=self.transfer,
            ExtraArgs={"ContentType": content_type or "application/octet-stream"},
        )
        try:
            key = key_for(reader.sha256)
            full_key = self._key(key)
            created = not self._exists(full_key)
            if created:
                self._server_side_copy(staged, full_key, reader.size, reader.sha256, content_type)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=staged)
        return PutResult(key, reader.sha256, reader.size, created=created)

    def _server_side_copy(
        self, source_key: str, target_key: str, size: int, sha256: str, content_type: str | None
    ) -> None:
        """One CopyObject up to S3's 5 GiB limit (far faster than a multipart copy), else multipart."""
        extra = {
            "Metadata": {SHA256_METADATA: sha256},
            "MetadataDirective": "REPLACE",
            "ContentType": content_type or "application/octet-stream",
        }
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        source = {"Bucket": self.bucket, "Key": source_key}
        if size <= SINGLE_COPY_LIMIT:
            self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=target_key, **extra)
        else:
            self.client.copy(source, self.bucket, target_key, ExtraArgs=extra, Config=self.transfer)

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

        uploads = self.client.get_paginator("list_multipart_uploads")
        for page in uploads.paginate(Bucket=self.bucket, Prefix=self.prefix + STAGING_PREFIX):
            for upload in page.get("Uploads", []):
                key = upload["Key"][len(self.prefix) :]
                yield ObjectInfo(
                    f"{key}{UPLOAD_MARK}{upload['UploadId']}", 0, None, upload["Initiated"].timestamp()
                )

    def delete_staging(self, key: str) -> None:
        """Delete a staging object, or abort an unfinished multipart upload a killed writer left."""
        if not key.startswith(STAGING_PREFIX):
            raise ValueError(f"not a staging key of this vault: {key!r}")
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
        self.delete(key)
