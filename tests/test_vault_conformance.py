"""One conformance suite, run against every vault backend (the ``vault`` fixture)."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from mediavault.vault import Vault
from mediavault.vault.keys import STAGING_PREFIX


def test_put_bytes_creates_then_reports_existing(vault: Vault) -> None:
    first = vault.put_bytes("a/b/c.json", b'{"x": 1}')
    assert first.created
    assert first.sha256 == hashlib.sha256(b'{"x": 1}').hexdigest()
    assert first.size == 8
    second = vault.put_bytes("a/b/c.json", b"different bytes")
    assert not second.created
    assert vault.get_bytes("a/b/c.json") == b'{"x": 1}', "existing object must never be overwritten"


def test_head_reports_size_and_recorded_sha(vault: Vault) -> None:
    vault.put_bytes("k/one", b"12345")
    info = vault.head("k/one")
    assert info is not None and info.size == 5
    if info.sha256 is not None:
        assert info.sha256 == hashlib.sha256(b"12345").hexdigest()
    assert vault.head("k/missing") is None


def test_missing_key_raises_key_error(vault: Vault) -> None:
    with pytest.raises(KeyError):
        vault.get_bytes("nope/nothing")
    with pytest.raises(KeyError):
        vault.open_read("nope/nothing")


@pytest.mark.parametrize("size", [0, 1, 6 * 1024 * 1024 + 17])
def test_put_stream_hashes_in_one_pass_and_is_content_addressed(vault: Vault, size: int) -> None:
    data = os.urandom(size)
    expected = hashlib.sha256(data).hexdigest()
    progress: list[int] = []
    result = vault.put_stream(io.BytesIO(data), lambda sha: f"blobs/{sha}", progress=progress.append)
    assert result.created and result.sha256 == expected and result.size == size
    assert result.key == f"blobs/{expected}"
    assert sum(progress) == size
    with vault.open_read(result.key) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == expected
    again = vault.put_stream(io.BytesIO(data), lambda sha: f"blobs/{sha}")
    assert not again.created and again.key == result.key
    assert list(vault.list_keys(STAGING_PREFIX)) == [], "staging objects must be cleaned up"


def test_put_stream_reads_a_non_seekable_source_sequentially(vault: Vault) -> None:
    data = os.urandom(11 * 1024 * 1024)
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        result = vault.put_stream(pipe, lambda sha: f"blobs/{sha}")
    writer.join()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert vault.get_bytes(result.key) == data


def test_list_keys_is_sorted_and_honours_prefix_and_start_after(vault: Vault) -> None:
    for key in ["j/003", "j/001", "j/002", "other/x", "jx/1"]:
        vault.put_bytes(key, key.encode())
    assert list(vault.list_keys("j/")) == ["j/001", "j/002", "j/003"]
    assert list(vault.list_keys("j/", start_after="j/001")) == ["j/002", "j/003"]
    assert list(vault.list_keys("nothing/")) == []


def test_delete_is_idempotent(vault: Vault) -> None:
    vault.put_bytes("d/x", b"1")
    vault.delete("d/x")
    vault.delete("d/x")
    assert vault.head("d/x") is None


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "/abs", "a//b", "nul\0key", ""])
def test_rejects_keys_that_could_escape(vault: Vault, bad: str) -> None:
    with pytest.raises(ValueError):
        vault.put_bytes(bad, b"x")


def test_concurrent_create_if_absent_has_exactly_one_winner(vault: Vault) -> None:
    results = []
    barrier = threading.Barrier(6)

    def write(i: int) -> None:
        barrier.wait()
        results.append(vault.put_bytes("race/key", f"writer-{i}".encode()))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r.created]
    assert len(winners) == 1
    stored = vault.get_bytes("race/key")
    assert hashlib.sha256(stored).hexdigest() == winners[0].sha256
