"""A plain local file put into any vault: local (kernel copy, hashed from the copy) and S3 (hashed
first, then uploaded straight to its key, or not at all when the vault holds it). One suite for
both backends."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mediavault.errors import SourceChanged
from mediavault.vault.base import Vault
from mediavault.vault.s3 import S3Vault

MIB = 1024 * 1024


def key_for(digest: str) -> str:
    return f"media/{digest}/original"


def staging_leftovers(vault: Vault) -> list:
    return list(vault.staging_leftovers()) if isinstance(vault, S3Vault) else []


@pytest.mark.parametrize("size", [0, 1, 5 * MIB + 3, 17 * MIB + 1])
def test_a_file_is_stored_under_the_hash_of_its_bytes(vault: Vault, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "media.bin"
    path.write_bytes(data)
    seen: list[int] = []
    with open(path, "rb") as stream:
        result = vault.put_stream(stream, key_for, "audio/wav", progress=seen.append)
        assert stream.tell() == size, "the stream is left at its end, as the other paths leave it"
    digest = hashlib.sha256(data).hexdigest()
    assert (result.key, result.sha256, result.size, result.created) == (key_for(digest), digest, size, True)
    assert sum(seen) == size
    with vault.open_read(result.key) as stored:
        assert stored.read() == data
    info = vault.head(result.key)
    assert info is not None and info.size == size
    if isinstance(vault, S3Vault):
        assert info.sha256 == digest, "the digest is recorded with the object (multipart ETags are not)"
    assert staging_leftovers(vault) == []


def test_a_file_the_vault_holds_is_not_stored_again(vault: Vault, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(data)
    second.write_bytes(data)
    with open(first, "rb") as stream:
        assert vault.put_stream(stream, key_for).created
    with open(second, "rb") as stream:
        stream.read(1)  # a stream part-read already: what remains is what is stored
        stream.seek(0)
        again = vault.put_stream(stream, key_for)
    assert not again.created and again.sha256 == hashlib.sha256(data).hexdigest()
    assert staging_leftovers(vault) == []


def test_a_file_written_to_while_it_is_stored_is_refused(vault: Vault, tmp_path: Path) -> None:
    """Someone appends to the media while it uploads: the ingest must not keep an object whose key
    is not the hash of its bytes. It raises SourceChanged (transient: retried) and keeps nothing."""
    data = os.urandom(20 * MIB)
    path = tmp_path / "growing.bin"
    path.write_bytes(data)
    appended: list[bool] = []

    def append_once(count: int) -> None:
        if not appended:
            appended.append(True)
            with open(path, "ab") as writer:
                writer.write(b"late bytes")

    with open(path, "rb") as stream, pytest.raises(SourceChanged):
        vault.put_stream(stream, key_for, progress=append_once)
    assert appended
    for content in (data, data + b"late bytes"):
        assert vault.head(key_for(hashlib.sha256(content).hexdigest())) is None
    assert staging_leftovers(vault) == []


def test_an_upload_a_killed_writer_left_on_a_media_key_is_collected(s3_options, s3_bucket) -> None:
    """A writer killed mid-upload leaves an unfinished multipart upload on the media key (not an
    object): the staging sweep lists it, and deleting it aborts the upload."""
    vault = S3Vault(s3_bucket, "killed", s3_options)
    key = key_for("f" * 64)
    started = vault.client.create_multipart_upload(Bucket=s3_bucket, Key=f"killed/{key}")
    vault.client.upload_part(
        Bucket=s3_bucket, Key=f"killed/{key}", UploadId=started["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    [left] = [info for info in vault.staging_leftovers() if info.key.startswith(key)]
    vault.delete_staging(left.key)
    assert vault.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="killed/").get("Uploads", []) == []
    assert list(vault.staging_leftovers()) == [] and vault.head(key) is None
    with pytest.raises(ValueError):
        vault.delete_staging(key)  # a media object itself is never staging
