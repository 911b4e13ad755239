"""Settings resolution order and the Prefect blocks (a small block standards suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import MediavaultConfig, S3VaultCredentials, resolve_settings
from mediavault.settings import MediavaultSettings, S3Options

ALL_BLOCKS = [S3VaultCredentials, MediavaultConfig]


def test_embedded_defaults_live_under_home(monkeypatch, tmp_path: Path) -> None:
    for name in ("MEDIAVAULT_VAULT_URL", "MEDIAVAULT_MONGO_MODE", "MEDIAVAULT_MONGO_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path))
    settings = MediavaultSettings()
    assert settings.resolved_vault_url() == (tmp_path / "vault").as_uri()
    assert settings.mongo_mode == "embedded"
    assert settings.s3.checksum_mode == "when_required"


def test_pool_is_at_least_the_concurrency() -> None:
    assert S3Options(max_concurrency=32, max_pool_connections=4).max_pool_connections == 32


@pytest.mark.usefixtures("prefect_harness")
def test_resolution_order_parameter_block_env_default(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", "file:///from/env")
    monkeypatch.setenv("MEDIAVAULT_MONGO_DATABASE", "env_db")
    monkeypatch.setenv("MEDIAVAULT_BATCH_CHUNK_SIZE", "3")
    MediavaultConfig(
        vault_url="s3://from-block/prefix",
        mongo_database="block_db",
        s3=S3VaultCredentials(
            endpoint_url="http://127.0.0.1:9000",
            access_key_id="AK",
            secret_access_key="very-secret",
            path_style=True,
        ),
    ).save("order-test", overwrite=True)
    from_block = resolve_settings("order-test")
    assert from_block.vault_url == "s3://from-block/prefix", "block beats env"
    assert from_block.mongo_database == "block_db"
    assert from_block.batch_chunk_size == 3, "env fills what the block leaves empty"
    assert from_block.s3.path_style and from_block.s3.secret_access_key.get_secret_value() == "very-secret"
    explicit = resolve_settings("order-test", vault_url="file:///explicit")
    assert explicit.vault_url == "file:///explicit", "explicit parameter beats block"
    assert resolve_settings(None).vault_url == "file:///from/env", "env beats default"


@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_block_standards(block) -> None:
    assert block._block_type_slug.startswith("mediavault-")
    assert block._description
    assert block.__doc__ and block.__doc__.strip()
    schema = block.model_json_schema()
    assert schema["properties"], "a block must expose fields to the UI"
    for name, field in block.model_fields.items():
        if "secret" in name or "token" in name or name == "mongo_url":
            assert field.annotation in (SecretStr, SecretStr | None), f"{name} must be a SecretStr"


def test_secrets_do_not_leak_into_dumps_or_repr() -> None:
    credentials = S3VaultCredentials(access_key_id="AK", secret_access_key="super-secret-value")
    config = MediavaultConfig(mongo_url="mongodb://user:pw-secret@host/", s3=credentials)
    for text in (
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
    ):
        assert "super-secret-value" not in text and "pw-secret" not in text
    settings = MediavaultSettings(**config.settings_layer())
    assert "super-secret-value" not in repr(settings) and "pw-secret" not in repr(settings)


def test_settings_that_differ_only_in_a_secret_never_share_cached_clients(tmp_path, mongo_url) -> None:
    """``model_dump_json`` masks secrets, so keying a cache on it made two MongoDB URLs share a
    client: one flow run could write into another configuration's database."""
    from tasks.reindex import target_for

    joiner = "&" if "?" in mongo_url else "?"
    first = MediavaultSettings(
        home=tmp_path, mongo_mode="external", mongo_url=f"{mongo_url}{joiner}appname=first"
    )
    second = first.model_copy(update={"mongo_url": SecretStr(f"{mongo_url}{joiner}appname=second")})
    assert first.model_dump_json() == second.model_dump_json(), "the masked dumps are identical"
    assert first.identity() != second.identity()
    assert first.identity() == first.model_copy().identity()
    one, other = target_for(first), target_for(second)
    assert one is not other and target_for(first) is one
    assert one.store.database.client.options.pool_options.metadata["application"]["name"] == "first"
    assert other.store.database.client.options.pool_options.metadata["application"]["name"] == "second"
