"""S3-compatible store options reach the boto3 client, and a store without conditional writes works."""

from __future__ import annotations

from mediavault.settings import S3Options
from mediavault.vault import open_vault
from mediavault.vault.s3 import S3Vault, make_s3_client


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


def test_fallback_without_conditional_writes(s3_options, s3_bucket) -> None:
    options = s3_options.model_copy(update={"conditional_writes": False})
    vault = S3Vault(s3_bucket, "no-cond", options)
    assert vault.put_bytes("k", b"first").created
    again = vault.put_bytes("k", b"second")
    assert not again.created and vault.get_bytes("k") == b"first"
