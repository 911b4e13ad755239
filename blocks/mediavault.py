"""Blocks hold configuration and secrets (as SecretStr); the domain never imports Prefect."""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from mediavault.settings import MediavaultSettings, load_settings


class S3VaultCredentials(Block):
    """Credentials and client options for an S3-compatible vault (AWS, MinIO, Garage, SeaweedFS)."""

    _block_type_name = "mediavault S3 credentials"
    _block_type_slug = "mediavault-s3-credentials"
    _description = "Access to an S3-compatible object store used as the mediavault vault."

    endpoint_url: str | None = Field(None, description="Leave empty for AWS S3.")
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    path_style: bool = Field(False, description="Path-style addressing (MinIO, Garage, SeaweedFS).")
    checksum_mode: Literal["when_supported", "when_required"] = Field(
        "when_required", description="'when_required' stops boto3>=1.36 default CRC checksums."
    )
    part_checksums: bool = Field(
        True, description="Send each media part's CRC32 for the store to check (dropped if refused)."
    )
    conditional_writes: bool = Field(True, description="Use If-None-Match: * for create-if-absent.")
    server_side_encryption: Literal["none", "AES256", "aws:kms"] = Field(
        "none",
        description="Encryption at rest of every object written: AES256 (SSE-S3), aws:kms (SSE-KMS with "
        "the key below) or none. Checked by a probe write before the first write.",
    )
    sse_kms_key_id: str | None = Field(None, description="KMS key id, ARN or alias for aws:kms.")
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    max_concurrency: int = 8

    def s3_options(self) -> dict[str, Any]:
        values = self.model_dump(exclude={"block_type_slug"})
        values = {k: v for k, v in values.items() if not k.startswith("_")}
        values["max_pool_connections"] = max(16, self.max_concurrency)
        return values


class MediavaultConfig(Block):
    """Where the vault and the index live. Values left empty fall back to MEDIAVAULT_* env vars."""

    _block_type_name = "mediavault config"
    _block_type_slug = "mediavault-config"
    _description = "Vault URL, S3 credentials and MongoDB connection for mediavault flows."

    vault_url: str | None = Field(None, description="file:///path or s3://bucket/prefix")
    s3: S3VaultCredentials | None = None
    mongo_mode: Literal["embedded", "external", "disabled"] | None = None
    mongo_url: SecretStr | None = Field(None, description="mongodb://user:pass@host/ (a secret)")
    mongo_database: str | None = None
    batch_chunk_size: int | None = None
    batch_max_concurrency: int | None = None
    mirror_url: str | None = Field(None, description="Backup mirror: file:///path or s3://bucket/prefix")

    def settings_layer(self) -> dict[str, Any]:
        layer: dict[str, Any] = {
            "vault_url": self.vault_url,
            "mongo_mode": self.mongo_mode,
            "mongo_url": self.mongo_url,
            "mongo_database": self.mongo_database,
            "batch_chunk_size": self.batch_chunk_size,
            "batch_max_concurrency": self.batch_max_concurrency,
            "mirror_url": self.mirror_url,
        }
        if self.s3 is not None:
            layer["s3"] = self.s3.s3_options()
        return {k: v for k, v in layer.items() if v is not None}


class LifecyclePolicy(Block):
    """Retention policies (the same fields as the YAML file), editable in the UI."""

    _block_type_name = "mediavault lifecycle policy"
    _block_type_slug = "mediavault-lifecycle-policy"
    _description = (
        "When media and AI outputs move to the archive tier or expire; per-owner and per-tag overrides."
    )

    policies: dict[str, Any] = Field(
        default_factory=dict,
        description="e.g. {'media': {'action': 'archive', 'after_days': 90}, 'owners': {...}, 'tags': {...}}",
    )


def resolve_settings(config_block: str | None = None, **overrides: Any) -> MediavaultSettings:
    """Explicit parameters over the named block over environment over embedded defaults."""
    layer = MediavaultConfig.load(config_block).settings_layer() if config_block else {}
    return load_settings(layer, **overrides)


def register_blocks() -> None:
    """Make the block types appear in the Prefect UI."""
    S3VaultCredentials.register_type_and_schema()
    MediavaultConfig.register_type_and_schema()
    LifecyclePolicy.register_type_and_schema()
