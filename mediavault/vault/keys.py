"""The vault key layout. Every key the project writes is built here."""

from __future__ import annotations

import re

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MANIFEST_VERSION_DIGITS = 8
JOURNAL_SEQ_DIGITS = 20

VAULT_DESCRIPTOR = "vault.json"
STAGING_PREFIX = "staging/"
MANIFESTS_PREFIX = "manifests/"
JOURNAL_PREFIX = "journal/"


def check_media_id(media_id: str) -> str:
    if not SHA256_RE.match(media_id):
        raise ValueError(f"not a media id (64 hex chars): {media_id!r}")
    return media_id


def media_prefix(media_id: str) -> str:
    return f"media/{check_media_id(media_id)}/"


def edits_prefix(media_id: str) -> str:
    return f"edits/{media_id}/"


def edit_key(media_id: str, edit_id: str) -> str:
    return f"{edits_prefix(media_id)}{edit_id}.json"


def media_original(media_id: str) -> str:
    return media_prefix(media_id) + "original"


def run_prefix(media_id: str, run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"not a run id (32 hex chars): {run_id!r}")
    return media_prefix(media_id) + f"runs/{run_id}/"


def run_raw(media_id: str, run_id: str, format_name: str, extension: str) -> str:
    return run_prefix(media_id, run_id) + f"raw/{format_name}.{extension}"


def run_derived(media_id: str, run_id: str, filename: str) -> str:
    return run_prefix(media_id, run_id) + filename


def manifest_prefix(media_id: str) -> str:
    return f"{MANIFESTS_PREFIX}{check_media_id(media_id)}/"


def manifest_key(media_id: str, version: int) -> str:
    return manifest_prefix(media_id) + f"v{version:0{MANIFEST_VERSION_DIGITS}d}.json"


def manifest_journaled_key(media_id: str, version: int) -> str:
    """Marker written after the journal record for a manifest version is appended."""
    return manifest_prefix(media_id) + f"v{version:0{MANIFEST_VERSION_DIGITS}d}.journaled"


def parse_manifest_version(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    if name.startswith("v") and name.endswith(".json"):
        digits = name[1:-5]
        if digits.isdigit():
            return int(digits)
    return None


def journal_key(seq: int) -> str:
    return f"{JOURNAL_PREFIX}{seq:0{JOURNAL_SEQ_DIGITS}d}.json"


def parse_journal_seq(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    digits = name.removesuffix(".json")
    return int(digits) if digits.isdigit() else None


def staging_key(token: str) -> str:
    return f"{STAGING_PREFIX}{token}"
