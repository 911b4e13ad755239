"""Prefect blocks: configuration and credentials, editable in the Prefect UI."""

from blocks.mediavault import MediavaultConfig, S3VaultCredentials, register_blocks, resolve_settings

__all__ = ["MediavaultConfig", "S3VaultCredentials", "register_blocks", "resolve_settings"]
