"""Prefect blocks: configuration and credentials, editable in the Prefect UI."""

from blocks.mediavault import (
    LifecyclePolicy,
    MediavaultConfig,
    S3VaultCredentials,
    register_blocks,
    resolve_settings,
)

__all__ = ["LifecyclePolicy", "MediavaultConfig", "S3VaultCredentials", "register_blocks", "resolve_settings"]
