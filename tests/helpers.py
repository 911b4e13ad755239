"""Test helpers: real media generation and vault invariant checks."""

from __future__ import annotations

import math
import socket
import struct
import wave
from pathlib import Path

from mediavault.vault import Vault, manifests
from mediavault.vault.keys import STAGING_PREFIX

SAMPLES = Path(__file__).resolve().parents[1] / "mediavault" / "samples"
JFK_MEDIA = SAMPLES / "jfk.flac"
JFK_JSON = SAMPLES / "whisper_en_jfk.json"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (the kernel's pick, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_wav(path: Path, seconds: float, frequency: float = 440.0, rate: int = 8000) -> Path:
    """Write a real PCM WAV tone (distinct frequency => distinct bytes => distinct media id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        chunk = 8000
        for offset in range(0, frames, chunk):
            count = min(chunk, frames - offset)
            out.writeframes(
                b"".join(
                    struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * (offset + i) / rate)))
                    for i in range(count)
                )
            )
    return path


def stored_keys(vault: Vault) -> list[str]:
    """Every committed object key, staging excluded."""
    return [k for k in vault.list_keys("") if not k.startswith(STAGING_PREFIX)]


def assert_no_manifest_names_a_missing_object(vault: Vault) -> int:
    """Checks every manifest version; returns how many media items are committed."""
    media_ids = manifests.list_media_ids(vault)
    for media_id in media_ids:
        for version in manifests.manifest_versions(vault, media_id):
            manifest = manifests.read_manifest(vault, media_id, version)
            for artifact in manifest.artifacts:
                info = vault.head(artifact.key)
                assert info is not None, f"manifest v{version} names missing {artifact.key}"
                assert info.size == artifact.size
    return len(media_ids)


def plant_staging_leftover(vault: Vault) -> str:
    """What a writer killed mid-upload leaves: a temp file (local) or an unfinished upload (S3)."""
    from mediavault.vault import LocalVault

    if isinstance(vault, LocalVault):
        path = vault.root / ".tmp" / "killed-writer"
        path.write_bytes(b"half a file")
        return ".tmp/killed-writer"
    key = vault.prefix + STAGING_PREFIX + "killed-writer"
    upload = vault.client.create_multipart_upload(Bucket=vault.bucket, Key=key)
    vault.client.upload_part(
        Bucket=vault.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    return f"{STAGING_PREFIX}killed-writer#multipart-upload={upload['UploadId']}"
