"""S3-compatible store options reach the boto3 client, and a store without conditional writes works
only for a single writer holding the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediavault.errors import ConfigurationError
from mediavault.settings import S3Options
from mediavault.vault import open_vault
from mediavault.vault.s3 import S3Vault, make_s3_client, release_single_writer_lock

ROOT = Path(__file__).resolve().parents[1]


def test_client_options_for_s3_compatible_servers() -> None:
    client = make_s3_client(
        S3Options(
            endpoint_url="http://127.0.0.1:9",
            path_style=True,
            checksum_mode="when_required",
            max_concurrency=24,
            max_pool_connections=4,
        )
    )
    config = client.meta.config
    assert config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.max_pool_connections >= 24


def test_vault_url_scheme_picks_the_backend(tmp_path, s3_options) -> None:
    assert type(open_vault(tmp_path.as_uri())).__name__ == "LocalVault"
    assert type(open_vault(str(tmp_path / "plain-path"))).__name__ == "LocalVault"
    vault = open_vault("s3://some-bucket/deep/prefix/", s3_options)
    assert isinstance(vault, S3Vault) and vault.bucket == "some-bucket" and vault.prefix == "deep/prefix/"


def test_fallback_without_conditional_writes(s3_options, s3_bucket, tmp_path) -> None:
    lock = tmp_path / "writer.lock"
    options = s3_options.model_copy(update={"conditional_writes": False, "single_writer_lock": lock})
    try:
        vault = S3Vault(s3_bucket, "no-cond", options)
        assert vault.put_bytes("k", b"first").created
        again = vault.put_bytes("k", b"second")
        assert not again.created and vault.get_bytes("k") == b"first"
        assert str(os.getpid()) in lock.read_text(), "the lock file names its holder"
    finally:
        release_single_writer_lock(lock)


def test_fallback_without_the_single_writer_lock_is_refused(s3_options, s3_bucket) -> None:
    options = s3_options.model_copy(update={"conditional_writes": False})
    with pytest.raises(ConfigurationError) as refused:
        S3Vault(s3_bucket, "no-cond", options)
    assert "s3.conditional_writes" in str(refused.value) and "s3.single_writer_lock" in str(refused.value)


SECOND_PROCESS = """
import json, sys
from mediavault.errors import ConfigurationError
from mediavault.settings import S3Options
from mediavault.vault.s3 import S3Vault
vault = S3Vault(sys.argv[2], "no-cond", S3Options(**json.loads(sys.argv[1])))
print("read:", vault.get_bytes("k").decode(), flush=True)
try:
    vault.put_bytes("from-second-process", b"x")
except ConfigurationError as exc:
    print("refused:", exc, flush=True)
    sys.exit(3)
print("wrote", flush=True)
"""


def run_second_process(options: S3Options, bucket: str) -> subprocess.CompletedProcess[str]:
    values = options.model_dump(mode="json")
    values["secret_access_key"] = options.secret_access_key.get_secret_value()
    return subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, json.dumps(values), bucket],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_writer_process_is_refused_while_the_first_holds_the_lock(
    s3_options, s3_bucket, tmp_path
) -> None:
    lock = tmp_path / "writer.lock"
    options = s3_options.model_copy(update={"conditional_writes": False, "single_writer_lock": lock})
    vault = S3Vault(s3_bucket, "no-cond", options)
    try:
        assert vault.put_bytes("k", b"first").created  # this process is now the writer
        second = run_second_process(options, s3_bucket)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "read: first" in second.stdout, "readers need no lock"
        assert "single-writer lock" in second.stdout and str(lock) in second.stdout
        assert "s3.conditional_writes" in second.stdout
        assert vault.head("from-second-process") is None
    finally:
        release_single_writer_lock(lock)
    after = run_second_process(options, s3_bucket)
    assert after.returncode == 0 and "wrote" in after.stdout, after.stdout + after.stderr
    assert vault.get_bytes("from-second-process") == b"x"
