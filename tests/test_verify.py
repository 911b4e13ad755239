"""Fixity: recomputed checksums catch corruption and loss on both backends; nothing is deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.verify import verify_flow
from mediavault.errors import IntegrityError
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import set_legal_hold
from mediavault.lifecycle.fixity import check_vault
from mediavault.vault import LocalVault, Vault, journal, manifests
from mediavault.vault.keys import manifest_key
from mediavault.vault.s3 import S3Vault
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav, stored_keys
from tests.test_journal_sweep import Crash, DiesBeforeJournal


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
    assert report.ok and report.checked == 9 and report.bytes_checked > 1_000_000
    assert report.checked_by_kind == {"manifest": 1, "journal": 1, "object": 7}


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
    assert full.checked_by_kind == {"manifest": 12, "journal": 12, "object": 12}
    objects = half.checked_by_kind.get("object", 0)
    assert 2 <= objects <= 10 and 2 <= half.checked_by_kind.get("journal", 0) <= 10
    assert half.checked + half.skipped == full.checked
    assert check_vault(vault, 0).checked_by_kind == {"manifest": 12}, "only each item's newest manifest"


@pytest.mark.usefixtures("prefect_harness")
def test_verify_flow_fails_on_damage_and_leaves_a_report(tmp_path: Path, monkeypatch, settings_for) -> None:
    vault = LocalVault(tmp_path / "vault")
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", vault.url)
    monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "disabled")
    media_id = fill(vault, settings_for(vault))[0]
    ok = verify_flow()
    assert ok["ok"] and ok["checked"] == 9 and ok["journal_sweep"]["repaired"] == 0
    assert ok["checked_by_kind"] == {"manifest": 1, "journal": 1, "object": 7}
    assert json.loads(vault.get_bytes(ok["report_key"]))["kind"] == "verify"

    with pytest.raises(Crash):  # a legal hold whose writer died between manifest and journal
        set_legal_hold(DiesBeforeJournal(vault), media_id, True)
    assert verify_flow()["journal_sweep"]["repaired"] == 0, "too fresh: left to its writer"
    repaired = verify_flow(journal_grace_seconds=0)
    assert repaired["ok"] and repaired["journal_sweep"]["versions"] == [
        {"media_id": media_id, "version": 2, "journal_seq": 2}
    ]
    assert repaired["checked_by_kind"] == {"manifest": 2, "journal": 2, "object": 7}
    assert [(r.media_id, r.manifest_version) for r in journal.read(vault)] == [(media_id, 1), (media_id, 2)]

    garbage = manifest_key(media_id, 3)
    vault.put_bytes(garbage, b"not a manifest")
    with pytest.raises(IntegrityError, match="1 unreadable"):
        verify_flow(repair_journal=False)
    latest = json.loads(vault.get_bytes(sorted(vault.list_keys("reports/verify/"))[-1]))
    assert [e["key"] for e in latest["errors"]] == [garbage] and latest["checked_by_kind"]["object"] == 7
    assert latest["journal_sweep"] == {"enabled": False, "repaired": 0, "versions": []}
    vault.delete(garbage)
    media_key = f"media/{media_id}/original"
    overwrite(vault, media_key, b"x" * 10)
    with pytest.raises(IntegrityError, match="1 mismatched"):
        verify_flow()
    reports = sorted(vault.list_keys("reports/verify/"))
    assert len(reports) == 5
    assert json.loads(vault.get_bytes(reports[-1]))["mismatches"][0]["key"] == media_key
    assert vault.head(media_key) is not None, "the damaged object is reported, not removed"


def test_s3_damage_is_seen_through_the_api(s3_options, s3_bucket, settings_for) -> None:
    vault = S3Vault(s3_bucket, "fix", s3_options)
    media_id = fill(vault, settings_for(vault))[0]
    overwrite(vault, f"media/{media_id}/original", b"tampered")
    assert [m["key"] for m in check_vault(vault).mismatches] == [f"media/{media_id}/original"]
