"""Fixity covers manifests, the journal and archive copies (read back, decompressed), on both
backends; one bad object never stops the run, and a cold copy is never counted as checked."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest

from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import run
from mediavault.lifecycle.fixity import check_media, check_vault
from mediavault.lifecycle.policy import Policies
from mediavault.vault import LocalVault, Vault, manifests
from mediavault.vault.keys import journal_key, manifest_key
from mediavault.vault.models import ArchiveCopy, JournalRecord, Manifest, utc_now
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader, compress_stream
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav

ARCHIVE_NOW = Policies.model_validate(
    {
        "media": {"action": "archive", "after_days": 0},
        "ai_outputs": {"action": "archive", "after_days": 0, "compress": True},
    }
)


def ingest_jfk(vault: Vault, settings) -> str:
    request = IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json")), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
    )
    return ingest(vault, request, settings).media_id


def ingest_tone(vault: Vault, settings, tmp_path, frequency: int = 300) -> str:
    media = make_wav(tmp_path / f"tone-{frequency}.wav", 0.2, frequency=frequency)
    return ingest(vault, IngestRequest(media=str(media)), settings).media_id


def rot(store: Vault, key: str, data: bytes) -> None:
    """Change stored bytes behind mediavault's back, as bit rot would: on S3 the SHA-256 recorded in
    the object's metadata (and its storage class) stays what it was."""
    if isinstance(store, LocalVault):
        path = store.root / key
        path.chmod(0o644)
        path.write_bytes(data)
        return
    head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)
    store.client.put_object(
        Bucket=store.bucket,
        Key=store.prefix + key,
        Body=data,
        Metadata=head.get("Metadata", {}),
        StorageClass=head.get("StorageClass", "STANDARD"),
    )


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def archived(vault: Vault, media_id: str, kind: str, format_name: str | None = None):
    manifest = manifests.latest_manifest(vault, media_id)
    artifact = next(a for a in manifest.artifacts if a.kind == kind and (format_name in (None, a.format)))
    assert artifact.tier == "archive" and artifact.archive is not None
    return artifact, ArtifactReader(vault).archive_vault(artifact.archive.tier_url)


def keys_of(entries: list[dict]) -> list[str]:
    return [e["key"] for e in entries]


def test_a_clean_vault_with_archived_copies_passes(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    hot = check_vault(vault)
    assert hot.ok and hot.checked_by_kind == {"manifest": 1, "journal": 1, "object": 8}
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    report = check_vault(vault)
    assert report.ok, report.as_dict()
    assert report.checked_by_kind == {"manifest": 2, "journal": 2, "archive-copy": 8}
    assert report.unverified == [] and report.skipped == 0
    copies = [a.archive for a in manifests.latest_manifest(vault, media_id).artifacts]
    assert report.bytes_checked >= sum(c.stored_size for c in copies), "archive copies are read whole"


def test_a_corrupt_manifest_is_reported_and_the_run_goes_on(vault: Vault, settings_for, tmp_path) -> None:
    settings = settings_for(vault)
    damaged, other = ingest_jfk(vault, settings), ingest_tone(vault, settings, tmp_path)
    garbage = manifest_key(damaged, 2)
    vault.put_bytes(garbage, b'{"schema_version": 1, "media_id": "truncated')
    report = check_media(vault, damaged)
    assert keys_of(report.errors) == [garbage] and report.errors[0]["check"] == "manifest"
    assert report.checked_by_kind == {"manifest": 2, "object": 8}, "v1's artifacts are still checked"

    total = check_vault(vault)
    assert not total.ok and keys_of(total.errors) == [garbage] and not total.mismatches
    assert total.checked_by_kind["object"] == 9, "the other item is checked too"
    assert check_media(vault, other).ok


def test_a_manifest_at_the_wrong_key_breaks_the_chain(vault: Vault, settings_for, tmp_path) -> None:
    settings = settings_for(vault)
    first, second = ingest_tone(vault, settings, tmp_path, 300), ingest_tone(vault, settings, tmp_path, 400)
    vault.put_bytes(manifest_key(first, 2), vault.get_bytes(manifest_key(first, 1)))
    vault.put_bytes(manifest_key(first, 4), vault.get_bytes(manifest_key(second, 1)))
    report = check_media(vault, first)
    found = {(m["key"], m["field"]) for m in report.mismatches}
    assert found == {
        (manifest_key(first, 2), "version"),
        (manifest_key(first, 2), "previous_version"),
        (manifest_key(first, 4), "media_id"),
        (manifest_key(first, 4), "version"),
        (manifest_key(first, 4), "previous_version"),
    }
    assert keys_of(report.missing) == [manifest_key(first, 3)], "a hole in the version chain"
    assert report.checked_by_kind["object"] == 1, "artifacts of the newest sound version (v1) are checked"


def test_s3_manifest_bytes_are_checked_against_the_recorded_sha256(
    s3_options, s3_bucket, settings_for, tmp_path
) -> None:
    vault = S3Vault(s3_bucket, "fixity", s3_options)
    media_id = ingest_tone(vault, settings_for(vault), tmp_path)
    key = manifest_key(media_id, 1)
    manifest = Manifest.from_bytes(vault.get_bytes(key))
    manifest.metadata.title = "rewritten behind the vault's back"
    rot(vault, key, manifest.to_bytes())  # still a valid manifest at the right key
    report = check_vault(vault)
    assert keys_of(report.mismatches) == [key]
    assert report.mismatches[0]["expected_sha256"] == vault.head(key).sha256


def test_journal_gaps_bad_records_and_dangling_references(vault: Vault, settings_for, tmp_path) -> None:
    settings = settings_for(vault)
    ids = [ingest_tone(vault, settings, tmp_path, f) for f in (300, 400, 500)]
    assert check_vault(vault).ok
    vault.delete(journal_key(2))
    vault.put_bytes(journal_key(4), b"not json")
    dangling = JournalRecord(
        seq=5,
        recorded_at=utc_now(),
        change="edit",
        media_id=ids[0],
        manifest_version=9,
        manifest_key=manifest_key(ids[0], 9),
    )
    vault.put_bytes(journal_key(5), dangling.model_dump_json().encode())
    misnumbered = dangling.model_copy(
        update={"seq": 1, "manifest_version": 1, "manifest_key": manifest_key(ids[0], 1)}
    )
    vault.put_bytes(journal_key(6), misnumbered.model_dump_json().encode())

    report = check_vault(vault)
    assert not report.ok
    assert sorted(keys_of(report.missing)) == sorted([journal_key(2), manifest_key(ids[0], 9)])
    gap = next(m for m in report.missing if m["key"] == journal_key(2))
    assert "2..2" in gap["reason"]
    assert keys_of(report.errors) == [journal_key(4)]
    assert [(m["key"], m["field"]) for m in report.mismatches] == [(journal_key(6), "seq")]
    assert report.checked_by_kind["journal"] == 5


def test_flipped_bytes_in_an_archived_copy_are_found_by_reading_it(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    media, store = archived(vault, media_id, "media")
    assert media.archive.compression is None
    rot(store, media.archive.key, flip_byte(store.get_bytes(media.archive.key), 1000))
    report = check_vault(vault)
    assert keys_of(report.mismatches) == [media.archive.key]
    mismatch = report.mismatches[0]
    assert mismatch["check"] == "archive-copy" and mismatch["expected_sha256"] == media.archive.stored_sha256
    assert mismatch["actual_size"] == mismatch["expected_size"], "same size: only reading the bytes tells"
    assert not report.errors and not report.missing


def test_a_corrupt_compressed_copy_is_found(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    raw, store = archived(vault, media_id, "raw-output", "whisper-json")
    assert raw.archive.compression == "zstd"
    stored = store.get_bytes(raw.archive.key)
    rot(store, raw.archive.key, flip_byte(stored, len(stored) // 2))
    srt, _ = archived(vault, media_id, "srt")
    store.delete(srt.archive.key)
    report = check_vault(vault)
    assert keys_of(report.mismatches) == [raw.archive.key]
    assert report.mismatches[0]["check"] == "archive-copy"
    assert keys_of(report.missing) == [srt.archive.key] and not report.errors


def test_a_compressed_copy_is_decompressed_and_compared_with_the_original(vault: Vault, settings_for) -> None:
    """The stored bytes can match what was recorded for them and still not be the artifact."""
    media_id = ingest_jfk(vault, settings_for(vault))
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    raw, store = archived(vault, media_id, "raw-output", "whisper-json")
    srt, _ = archived(vault, media_id, "srt")
    wrong = compress_stream(io.BytesIO(b'{"segments": []}')).read()
    undecodable = b"these bytes were never zstd"
    replacements: dict[str, ArchiveCopy] = {}
    for artifact, data in ((raw, wrong), (srt, undecodable)):
        key = artifact.archive.key + ".other"
        store.put_bytes(key, data)
        replacements[artifact.key] = artifact.archive.model_copy(
            update={"key": key, "stored_sha256": hashlib.sha256(data).hexdigest(), "stored_size": len(data)}
        )

    def point_elsewhere(current: Manifest | None) -> Manifest:
        updated = current.model_copy(deep=True)
        updated.created_at, updated.change = utc_now(), "archive"
        for artifact in updated.artifacts:
            artifact.archive = replacements.get(artifact.key, artifact.archive)
        return updated

    manifests.commit(vault, media_id, point_elsewhere)
    report = check_vault(vault)
    by_key = {m["key"]: m for m in report.mismatches}
    assert set(by_key) == {replacements[raw.key].key, replacements[srt.key].key}
    assert {m["check"] for m in by_key.values()} == {"archive-content"}
    assert by_key[replacements[raw.key].key]["expected_sha256"] == raw.sha256
    assert "cannot decompress" in by_key[replacements[srt.key].key]["error"]


def test_cold_copies_are_unverified_until_restored_then_read(s3_options, s3_bucket, settings_for) -> None:
    vault = S3Vault(s3_bucket, "hot", s3_options)
    media_id = ingest_jfk(vault, settings_for(vault))
    policies = Policies.model_validate(
        {"archive": {"url": f"s3://{s3_bucket}/cold/", "storage_class": "GLACIER"}}
    )
    assert not run(vault, policies, dry_run=False, now=utc_now() + timedelta(days=100)).errors
    media, store = archived(vault, media_id, "media")
    assert media.archive.storage_class == "GLACIER"

    frozen = check_vault(vault)
    assert frozen.ok, "a copy that cannot be read yet is not a failure"
    assert keys_of(frozen.unverified) == [media.archive.key]
    assert "GLACIER" in frozen.unverified[0]["reason"] and "not-requested" in frozen.unverified[0]["reason"]
    assert "archive-copy" not in frozen.checked_by_kind, "never counted as checked"

    store.request_restore(media.archive.key)  # moto thaws at once; S3 takes hours
    thawed = check_vault(vault)
    assert thawed.ok and thawed.unverified == [] and thawed.checked_by_kind["archive-copy"] == 1

    rot(store, media.archive.key, flip_byte(store.get_bytes(media.archive.key), 1000))
    store.request_restore(media.archive.key)
    assert keys_of(check_vault(vault).mismatches) == [media.archive.key]


def test_a_copy_moved_to_a_cold_class_behind_the_vault_is_unverified(
    s3_options, s3_bucket, settings_for
) -> None:
    """As a bucket lifecycle rule would: the manifest says STANDARD, the store refuses the GET."""
    vault = S3Vault(s3_bucket, "hot", s3_options)
    media_id = ingest_jfk(vault, settings_for(vault))
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    media, store = archived(vault, media_id, "media")
    full_key = store.prefix + media.archive.key
    store.client.copy_object(
        Bucket=store.bucket,
        Key=full_key,
        CopySource={"Bucket": store.bucket, "Key": full_key},
        StorageClass="DEEP_ARCHIVE",
        MetadataDirective="COPY",
    )
    report = check_vault(vault)
    assert report.ok and keys_of(report.unverified) == [media.archive.key]
    assert report.checked_by_kind["archive-copy"] == 7


@pytest.mark.parametrize("percent", [0, 50])
def test_sampling_applies_to_manifests_journal_and_copies(tmp_path, settings_for, percent: float) -> None:
    vault = LocalVault(tmp_path / "v")
    settings = settings_for(vault)
    ids = [ingest_tone(vault, settings, tmp_path, 300 + 10 * i) for i in range(8)]
    for media_id in ids:
        manifests.commit(
            vault, media_id, lambda m: m.model_copy(update={"change": "edit", "created_at": utc_now()})
        )
    assert not run(vault, ARCHIVE_NOW, dry_run=False).errors
    full = check_vault(vault)
    assert full.ok and full.checked_by_kind == {"manifest": 24, "journal": 24, "archive-copy": 8}
    sample = check_vault(vault, percent, salt="run-1")
    assert sample.ok and sample.checked + sample.skipped == full.checked
    assert sample.checked_by_kind["manifest"] >= 8, "the newest manifest of each item is always read"
    if percent == 0:
        assert sample.checked == 8
    else:
        assert 8 < sample.checked < full.checked
