"""Vault backends. The URL scheme picks one: ``file://`` (or a plain path) or ``s3://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from mediavault.errors import ConfigurationError
from mediavault.settings import MediavaultSettings, S3Options
from mediavault.vault.base import ObjectInfo, PutResult, Vault
from mediavault.vault.local import LocalVault


def open_vault(url: str, s3: S3Options | None = None) -> Vault:
    """Open the vault a URL names: ``file:///abs/path``, ``/abs/path`` or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme else url
        if not path:
            raise ConfigurationError(f"vault URL has no path: {url!r}")
        return LocalVault(Path(path))
    if parsed.scheme == "s3":
        from mediavault.vault.s3 import S3Vault

        return S3Vault(parsed.netloc, parsed.path, s3 or S3Options())
    raise ConfigurationError(f"unsupported vault URL scheme {parsed.scheme!r} in {url!r}")


def vault_from_settings(settings: MediavaultSettings) -> Vault:
    return open_vault(settings.resolved_vault_url(), settings.s3)


__all__ = ["LocalVault", "ObjectInfo", "PutResult", "Vault", "open_vault", "vault_from_settings"]
