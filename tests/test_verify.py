"""Fixity: recomputed checksums catch corruption and loss on both backends; nothing is deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.verify import verify_flow
from mediavault import manifests
from mediavault.errors import IntegrityError
from mediavault.fixity import check_vault
from mediavault.ingest import IngestRequest, OutputSpec, ingest
from mediavault.vault import LocalVault, Vault
from mediavault.vault.s3 import S3Vault
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav, stored_keys


def fill(vault: Vault, settings) -> list[str]:
    ids = [
        ingest(
            vault,
            IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
            settings,
        ).media_id
    ]
    return ids


def overwrite(vault: Vault, key: str, data: bytes) -> None:
    """Damage a stored object behind mediavault's back, as bit rot or a bad disk would."""
    if isinstance(vault, LocalVault):
        path = vault.root / key
        path.chmod(0o644)
        path.write_bytes(data)
    else:
        vault.client.put_object(Bucket=vault.bucket, Key=vault.prefix + key, Body=data)


def test_clean_vault_passes(vault: Vault, settings_for) -> None:
    fill(vault, settings_for(vault))
    report = check_vault(vault)
    assert report.ok and report.checked == 7 and report.bytes_checked > 1_000_000


def test_corruption_and_loss_are_reported_and_nothing_is_deleted(vault: Vault, settings_for) -> None:
    media_id = fill(vault, settings_for(vault))[0]
    manifest = manifests.latest_manifest(vault, media_id)
    by_kind = {a.kind: a for a in manifest.artifacts}
    overwrite(vault, by_kind["statements"].key, b"not parquet any more")
    vault.delete(by_kind["srt"].key)
    keys_before = stored_keys(vault)
    report = check_vault(vault)
    assert not report.ok
    assert [m["key"] for m in report.mismatches] == [by_kind["statements"].key]
    assert [m["key"] for m in report.missing] == [by_kind["srt"].key]
    assert stored_keys(vault) == keys_before, "verify must never delete or rewrite"


def test_sampling_checks_about_the_requested_share(tmp_path: Path, settings_for) -> None:
    vault = LocalVault(tmp_path / "v")
    settings = settings_for(vault)
    for i in range(12):
        ingest(
            vault, IngestRequest(media=str(make_wav(tmp_path / f"{i}.wav", 1, frequency=100 + i))), settings
        )
    full = check_vault(vault, 100)
    half = check_vault(vault, 50, salt="run-1")
    assert full.checked == 12 and 2 <= half.checked <= 10 and half.checked + half.skipped == 12
    assert check_vault(vault, 0).checked == 0


@pytest.mark.usefixtures("prefect_harness")
def test_verify_flow_fails_on_damage_and_leaves_a_report(tmp_path: Path, monkeypatch, settings_for) -> None:
    vault = LocalVault(tmp_path / "vault")
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", vault.url)
    monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "disabled")
    media_id = fill(vault, settings_for(vault))[0]
    ok = verify_flow()
    assert ok["ok"] and ok["checked"] == 7
    assert json.loads(vault.get_bytes(ok["report_key"]))["kind"] == "verify"
    media_key = f"media/{media_id}/original"
    overwrite(vault, media_key, b"x" * 10)
    with pytest.raises(IntegrityError, match="1 mismatched"):
        verify_flow()
    reports = list(vault.list_keys("reports/verify/"))
    assert len(reports) == 2
    assert json.loads(vault.get_bytes(reports[-1]))["mismatches"][0]["key"] == media_key
    assert vault.head(media_key) is not None, "the damaged object is reported, not removed"


def test_s3_damage_is_seen_through_the_api(s3_options, s3_bucket, settings_for) -> None:
    vault = S3Vault(s3_bucket, "fix", s3_options)
    media_id = fill(vault, settings_for(vault))[0]
    overwrite(vault, f"media/{media_id}/original", b"tampered")
    assert [m["key"] for m in check_vault(vault).mismatches] == [f"media/{media_id}/original"]
