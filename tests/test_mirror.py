"""Backups: the mirror against real local directories and moto S3 (directly and through a fault proxy)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from mediavault.access.audit import AuditRecord, write_records
from mediavault.access.tokens import TokenStore
from mediavault.errors import ConfigurationError
from mediavault.index.projection import project
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import run
from mediavault.lifecycle.fixity import check_vault
from mediavault.lifecycle.mirror import (
    SMALL_OBJECT_BYTES,
    adopt_hot_copies,
    configured_mirror_lag,
    mirror_checkpoint,
    mirror_lag,
    mirror_vault,
)
from mediavault.lifecycle.policy import Policies, PolicyOverride, Rule
from mediavault.media import edits
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, Vault, journal, manifests
from mediavault.vault.keys import media_original
from mediavault.vault.models import utc_now
from mediavault.vault.reports import write_report
from mediavault.vault.s3 import S3Vault, make_s3_client
from mediavault.vault.tiers import ArtifactReader
from tests.conftest import REAL, hardening_scale
from tests.helpers import JFK_MEDIA, make_wav

DAYS = timedelta(days=1)
NOT_MIRRORED = ("gc/", "staging/", "archive/")
"""Leases, uploads in flight and (on S3) the default archive tier inside the vault's prefix."""


class Crash(BaseException):
    pass


@pytest.fixture
def settings(tmp_path: Path) -> MediavaultSettings:
    return MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")


def ingest_jfk(vault: Vault, settings: MediavaultSettings, **metadata) -> str:
    request = IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json")), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
        metadata=metadata or {"title": "JFK", "owner": "archive-team"},
    )
    return ingest(vault, request, settings).media_id


LARGE_SECONDS = 560
"""A WAV of this length (8.96 MB) is above the mirror's small-object size: it is streamed."""


def ingest_board(
    vault: Vault,
    settings: MediavaultSettings,
    tmp_path: Path,
    frequency: int = 300,
    seconds: float = 300,
    **metadata,
) -> str:
    media = make_wav(tmp_path / "media" / f"board-{frequency}-{seconds}.wav", seconds, frequency)
    request = IngestRequest(
        media=str(media),
        outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
        metadata=metadata or {"title": "School board", "owner": "board"},
    )
    return ingest(vault, request, settings).media_id


def contents(vault: Vault) -> dict[str, str]:
    """Key -> SHA-256 of every object a mirror must hold."""
    return {
        key: hashlib.sha256(vault.get_bytes(key)).hexdigest()
        for key in vault.list_keys("")
        if not key.startswith(NOT_MIRRORED)
    }


def s3_target(s3_options, name: str = "mirror") -> S3Vault:
    bucket = f"mirror-{uuid.uuid4().hex[:12]}"
    make_s3_client(s3_options).create_bucket(Bucket=bucket)
    return S3Vault(bucket, name, s3_options)


def assert_records_complete(mirror: Vault) -> None:
    """The mirror's invariant at any moment: a journal record it holds has its manifest version, and
    that manifest's hot artifacts and edits, in the mirror (a record is copied last)."""
    for record in journal.read(mirror):
        manifest = manifests.read_manifest(mirror, record.media_id, record.manifest_version)
        for artifact in manifest.artifacts:
            if artifact.tier == "hot":
                info = mirror.head(artifact.key)
                assert info is not None and info.size == artifact.size, f"record {record.seq}: {artifact.key}"
        for edit in manifest.edits:
            assert mirror.head(edit.key) is not None


@pytest.mark.parametrize("target_kind", ["local", "s3"])
def test_round_trip_copies_every_object_verified_and_a_rerun_copies_nothing(
    vault: Vault, target_kind: str, tmp_path: Path, settings: MediavaultSettings, request
) -> None:
    first = ingest_jfk(vault, settings)
    second = ingest_board(vault, settings, tmp_path, seconds=LARGE_SECONDS)
    assert vault.head(media_original(second)).size > SMALL_OBJECT_BYTES
    edits.add_edit(vault, second, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": "Chair"})
    token, _ = TokenStore(vault).create("board", "viewer", name="reader")
    TokenStore(vault).revoke(token.id, by="test")
    write_records(vault, [AuditRecord(action="login", outcome="ok", actor="test")])
    write_report(vault, "verify", {"ok": True})
    target = (
        LocalVault(tmp_path / "mirror")
        if target_kind == "local"
        else s3_target(request.getfixturevalue("s3_options"))
    )

    report = mirror_vault(vault, target, concurrency=3)

    assert report.ok and report.records == journal.find_tail(vault) == 3 and report.lag == 0
    assert report.listed_copied == 4  # the token, its revocation, the audit object, the report
    assert contents(target) == contents(vault)
    assert mirror_checkpoint(target) == 3 and mirror_lag(vault, target) == 0
    assert check_vault(target).ok, "the mirror is a vault that passes its own fixity check"
    assert [project(target, m)[0].media_doc for m in (first, second)] == [
        project(vault, m)[0].media_doc for m in (first, second)
    ]
    again = mirror_vault(vault, target)
    assert again.ok and (again.records, again.objects_copied, again.listed_copied) == (0, 0, 0)


def test_incremental_run_copies_only_what_the_new_records_name(
    tmp_path: Path, settings: MediavaultSettings
) -> None:
    vault, target = LocalVault(tmp_path / "vault"), LocalVault(tmp_path / "mirror")
    first = ingest_jfk(vault, settings)
    assert mirror_vault(vault, target).checkpoint == 1
    second = ingest_board(vault, settings, tmp_path)
    edits.add_edit(vault, first, "fix-metadata", {"title": "JFK, inaugural"})
    assert mirror_lag(vault, target) == 2
    lagging = settings.model_copy(update={"vault_url": vault.url, "mirror_url": target.url})
    assert configured_mirror_lag(lagging) == 2

    copied: list[str] = []
    report = mirror_vault(vault, target, hook=lambda step, key: copied.append(key))

    assert report.ok and report.records == 2 and report.checkpoint_before == 1 and report.lag == 0
    assert mirror_lag(vault, target) == 0
    configured = settings.model_copy(update={"vault_url": vault.url, "mirror_url": target.url})
    assert configured_mirror_lag(configured) == 0 and configured_mirror_lag(settings) is None
    assert not any(key.startswith(f"media/{first}/") for key in copied), "old objects are not copied again"
    assert any(key.startswith(f"media/{second}/") for key in copied)
    assert any(key.startswith(f"edits/{first}/") for key in copied)
    assert contents(target) == contents(vault)


def test_a_lifecycle_deletion_in_the_vault_is_not_propagated(
    vault: Vault, settings: MediavaultSettings, tmp_path
) -> None:
    media_id = ingest_jfk(vault, settings)
    target = LocalVault(tmp_path / "mirror")
    assert mirror_vault(vault, target).ok
    key = media_original(media_id)
    mirrored = target.get_bytes(key)

    archived = run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS)
    assert not archived.errors and vault.head(key) is None
    expiring = Policies(ai_outputs=Rule(action="expire", after_days=0))
    expired = run(vault, expiring, dry_run=False, now=utc_now() + 100 * DAYS)
    assert not expired.errors and expired.done
    gone = [a.key for a in manifests.latest_manifest(vault, media_id).artifacts if a.tier == "expired"]
    assert gone and all(vault.head(k) is None for k in gone)

    report = mirror_vault(vault, target)
    assert report.ok and report.records == 2 and report.lag == 0
    assert target.get_bytes(key) == mirrored, "the archived media stays in the mirror"
    assert all(target.head(k) is not None for k in gone), "expired outputs stay in the mirror"
    latest = manifests.latest_manifest(target, media_id)
    assert latest.change == "delete" and latest.version == 3


@pytest.mark.parametrize("batch_records", [1, 200])
def test_first_mirror_after_archive_and_expiry_reads_the_archive_and_skips_what_expired(
    vault: Vault, settings: MediavaultSettings, tmp_path: Path, batch_records: int
) -> None:
    """One record per batch: the record of version 1 names hot objects that are gone from the hot
    tier, so the newest manifest says where they went. Larger batches read the newest version first."""
    archived_id = ingest_jfk(vault, settings, title="archived", owner="cold")
    expired_id = ingest_board(vault, settings, tmp_path, owner="short-lived")
    policies = Policies(
        media=Rule(action="keep", after_days=0),
        owners={
            "cold": PolicyOverride(
                media=Rule(action="archive", after_days=0),
                ai_outputs=Rule(action="archive", after_days=0, compress=True),
            ),
            "short-lived": PolicyOverride(ai_outputs=Rule(action="expire", after_days=0)),
        },
    )
    lifecycle = run(vault, policies, dry_run=False, now=utc_now() + DAYS)
    assert not lifecycle.errors
    archived = manifests.latest_manifest(vault, archived_id).artifacts
    assert {a.tier for a in archived} == {"archive"} and all(vault.head(a.key) is None for a in archived)
    assert any(a.archive.compression == "zstd" for a in archived)

    target = LocalVault(tmp_path / "mirror")
    report = mirror_vault(vault, target, batch_records=batch_records)

    assert report.ok, report.errors
    for artifact in archived:  # the original bytes, decompressed and verified, at the hot key
        assert hashlib.sha256(target.get_bytes(artifact.key)).hexdigest() == artifact.sha256
    expired = [a for a in manifests.latest_manifest(vault, expired_id).artifacts if a.tier == "expired"]
    assert expired and all(target.head(a.key) is None for a in expired)
    assert {s["key"] for s in report.skipped} == {a.key for a in expired}
    assert all(s["reason"] == "expired in the vault" for s in report.skipped)
    assert target.head(media_original(expired_id)) is not None
    assert report.lag == 0 and mirror_checkpoint(target) == journal.find_tail(vault)


def test_a_cold_archive_copy_is_skipped_until_a_restore_makes_it_hot(
    s3_options, s3_bucket, settings: MediavaultSettings, tmp_path: Path
) -> None:
    from mediavault.lifecycle.engine import restore_media

    vault = S3Vault(s3_bucket, "hot", s3_options)
    media_id = ingest_jfk(vault, settings)
    cold = Policies.model_validate(
        {"archive": {"url": f"s3://{s3_bucket}/cold/", "storage_class": "GLACIER"}}
    )
    assert not run(vault, cold, dry_run=False, now=utc_now() + 100 * DAYS).errors
    target = LocalVault(tmp_path / "mirror")

    report = mirror_vault(vault, target)
    assert report.ok and report.lag == 0, "a legitimately cold item does not fail the mirror"
    assert [(s["key"], "not thawed" in s["reason"]) for s in report.skipped] == [
        (media_original(media_id), True)
    ]
    assert target.head(media_original(media_id)) is None

    assert restore_media(vault, media_id)["pending"] == [media_original(media_id)]  # thaw requested
    assert restore_media(vault, media_id)["restored"] == [media_original(media_id)]
    again = mirror_vault(vault, target)
    assert again.ok and again.records == 1 and not again.skipped
    assert target.get_bytes(media_original(media_id)) == JFK_MEDIA.read_bytes()


@pytest.mark.parametrize("kind", ["statements", "media"])
def test_a_source_object_that_does_not_match_its_manifest_stops_the_checkpoint_before_it(
    tmp_path: Path, settings: MediavaultSettings, kind: str, s3_options
) -> None:
    """Small objects (copied in memory) and large ones (streamed) alike: a digest that differs from
    the manifest's stores nothing under the key."""
    vault = LocalVault(tmp_path / "vault")
    target = LocalVault(tmp_path / "mirror") if kind == "statements" else s3_target(s3_options)
    ingest_jfk(vault, settings)
    damaged_id = ingest_board(vault, settings, tmp_path, seconds=LARGE_SECONDS)
    third = ingest_board(vault, settings, tmp_path, frequency=500)
    manifest = manifests.latest_manifest(vault, damaged_id)
    statements = next(a for a in manifest.artifacts if a.kind == kind)
    path = vault.local_path(statements.key)
    with open(path, "r+b") as handle:  # flip one byte in place: same size, other digest
        handle.seek(5000)
        byte = handle.read(1)
        handle.seek(5000)
        handle.write(bytes([byte[0] ^ 0xFF]))

    report = mirror_vault(vault, target)

    assert not report.ok and report.checkpoint == 1 and report.lag == 2
    assert [e["key"] for e in report.errors] == [statements.key]
    assert "hash" in report.errors[0]["error"] and report.errors[0]["media_id"] == damaged_id
    assert target.head(statements.key) is None, "a bad copy is never stored"
    assert mirror_checkpoint(target) == 1
    assert target.head(manifests.manifest_prefix(third) + "v00000001.json") is None
    assert_records_complete(target)
    if isinstance(target, S3Vault):
        assert list(target.list_keys("staging/")) == [], "the staged upload is removed"


def test_a_mirror_that_overlaps_the_vault_or_copies_another_vault_is_refused(
    tmp_path: Path, settings: MediavaultSettings
) -> None:
    vault = LocalVault(tmp_path / "vault")
    ingest_jfk(vault, settings)
    with pytest.raises(ConfigurationError, match="overlaps"):
        mirror_vault(vault, LocalVault(tmp_path / "vault" / "backup"))
    with pytest.raises(ConfigurationError, match="overlaps"):
        mirror_vault(LocalVault(tmp_path / "vault" / "inner"), LocalVault(tmp_path / "vault"))
    target = LocalVault(tmp_path / "mirror")
    assert mirror_vault(vault, target).ok
    other = LocalVault(tmp_path / "other")
    ingest_board(other, settings, tmp_path)
    with pytest.raises(ConfigurationError, match="another vault"):
        mirror_vault(other, target)


def crash_after(count: int):
    """A hook that raises on its ``count``-th call (from any worker thread)."""
    lock, calls = threading.Lock(), [0]

    def hook(step: str, key: str) -> None:
        with lock:
            calls[0] += 1
            if calls[0] == count:
                raise Crash(key)

    return hook


def _count_copies(vault: Vault, tmp_path: Path) -> int:
    calls: list[str] = []
    mirror_vault(
        vault, LocalVault(tmp_path / f"count-{uuid.uuid4().hex[:6]}"), hook=lambda s, k: calls.append(k)
    )
    return len(calls)


@pytest.mark.hardening
def test_a_crash_after_any_number_of_copies_converges_on_rerun(
    tmp_path: Path, settings: MediavaultSettings
) -> None:
    vault = LocalVault(tmp_path / "vault")
    ingest_jfk(vault, settings)
    board = ingest_board(vault, settings, tmp_path)
    edits.add_edit(vault, board, "rename-speaker", {"speaker": "SPEAKER_01", "display_name": "Clerk"})
    write_report(vault, "verify", {"ok": True})
    total = _count_copies(vault, tmp_path)
    crash_points = range(1, total + 1, max(1, int(hardening_scale(total // 12 or 1, 1))))
    expected = contents(vault)
    for crash_at in crash_points:
        target = LocalVault(tmp_path / f"mirror-{crash_at}")
        with pytest.raises(Crash):
            mirror_vault(vault, target, concurrency=2, batch_records=2, hook=crash_after(crash_at))
        assert_records_complete(target)
        report = mirror_vault(vault, target, concurrency=2, batch_records=2)
        assert report.ok and report.lag == 0, (crash_at, report.errors)
        assert contents(target) == expected, crash_at


@pytest.mark.hardening
def test_s3_faults_while_mirroring_converge(
    tmp_path: Path, settings: MediavaultSettings, proxied_options, s3_options, fault_proxy
) -> None:
    from tests.fault_proxy import Fault
    from tests.fault_proxy import Rule as FaultRule

    vault = LocalVault(tmp_path / "vault")
    ingest_jfk(vault, settings)
    ingest_board(vault, settings, tmp_path)
    write_report(vault, "lifecycle", {"ok": True})
    proxied = s3_target(proxied_options)
    direct = S3Vault(proxied.bucket, "mirror", s3_options)
    rounds, fired = int(hardening_scale(4, 40)), 0
    for round_number in range(rounds):
        with fault_proxy.faults(
            FaultRule(Fault.error(503), probability=0.15, seed=round_number),
            FaultRule(Fault.reset(after_forward=True), probability=0.05, seed=100 + round_number),
        ) as rules:
            try:
                report = mirror_vault(vault, proxied, concurrency=3, batch_records=1)
            except Exception:  # a transient fault botocore gave up on: the task's retry repeats the run
                report = None
            fired += sum(rule.fired for rule in rules)
        assert_records_complete(direct)
        if report is not None and report.ok and report.lag == 0:
            break
    assert fired > 0
    final = mirror_vault(vault, proxied)
    assert final.ok and final.lag == 0
    assert contents(direct) == contents(vault)
    assert check_vault(direct).ok


def test_a_vault_lost_with_its_archive_is_restored_from_the_mirror(
    tmp_path: Path, settings: MediavaultSettings
) -> None:
    """The runbook: mirror --from MIRROR --to NEW, adopt the hot copies, re-index."""
    import shutil

    vault = LocalVault(tmp_path / "vault")
    archived_id = ingest_jfk(vault, settings)
    hot_id = ingest_board(vault, settings, tmp_path)
    policies = Policies(owners={"board": PolicyOverride(media=Rule(action="keep", after_days=0))})
    assert not run(vault, policies, dry_run=False, now=utc_now() + 100 * DAYS).errors
    target = LocalVault(tmp_path / "mirror")
    assert mirror_vault(vault, target).ok
    expected = {m: project(vault, m)[0].media_doc for m in (archived_id, hot_id)}
    archive_dir = tmp_path / "vault-archive"
    assert archive_dir.is_dir()
    shutil.rmtree(tmp_path / "vault")
    shutil.rmtree(archive_dir)

    restored = LocalVault(tmp_path / "vault")
    report = mirror_vault(target, restored)
    assert report.ok and report.lag == 0
    outcome = adopt_hot_copies(restored)
    assert [(o["key"], o["result"]) for o in outcome] == [(media_original(archived_id), "adopted")]
    latest = manifests.latest_manifest(restored, archived_id)
    assert latest.change == "restore" and all(a.tier == "hot" for a in latest.artifacts)
    assert check_vault(restored).ok
    for media_id in (archived_id, hot_id):
        reader = ArtifactReader(restored)
        for artifact in manifests.latest_manifest(restored, media_id).artifacts:
            assert hashlib.sha256(reader.read_bytes(artifact)).hexdigest() == artifact.sha256
    doc = project(restored, archived_id)[0].media_doc
    assert doc["tier"] == "hot" and doc["title"] == expected[archived_id]["title"]
    assert project(restored, hot_id)[0].media_doc == expected[hot_id]
    assert adopt_hot_copies(restored) == [], "adopting twice changes nothing"
    follow_up = mirror_vault(restored, target)  # the restored vault goes on mirroring to the same target
    assert (
        follow_up.ok
        and follow_up.records == 1
        and follow_up.checkpoint_before == journal.find_tail(target) - 1
    )


@pytest.mark.parametrize("mirrored_before", [True, False])
def test_a_forget_reaches_the_mirror(
    tmp_path: Path, settings: MediavaultSettings, mirrored_before: bool
) -> None:
    from mediavault.lifecycle.forget import forget

    vault, target = LocalVault(tmp_path / "vault"), LocalVault(tmp_path / "mirror")
    erased = ingest_jfk(vault, settings, title="Quillon Varga interview", owner="newsroom")
    edits.add_edit(vault, erased, "fix-metadata", {"description": "Quillon speaks"})
    kept = ingest_board(vault, settings, tmp_path)
    if mirrored_before:
        assert mirror_vault(vault, target).ok
        assert any(k.startswith(f"media/{erased}/") for k in target.list_keys(""))
    forget(vault, erased, "consent withdrawn", "dpo", apply=True)

    report = mirror_vault(vault, target)

    assert report.ok and report.lag == 0, report.errors
    assert (report.erased > 0) == mirrored_before
    left = sorted(k for k in target.list_keys("") if erased in k)
    tombstone = manifests.manifest_versions(vault, erased)[-1]
    assert left == [
        f"manifests/{erased}/v{tombstone:08d}.journaled",
        f"manifests/{erased}/v{tombstone:08d}.json",
    ]
    for key in target.list_keys(""):
        if key.startswith(("media/", "edits/", "manifests/")):
            assert b"Quillon" not in target.get_bytes(key), key
    assert manifests.latest_manifest(target, erased) is None
    assert manifests.latest_manifest(target, kept) is not None
    assert contents(target) == contents(vault), "the mirror is the vault again, the forget included"
    report = check_vault(target)
    assert report.ok, (report.missing, report.mismatches, report.errors)
    assert mirror_vault(vault, target).records == 0, "a re-run has nothing to do"
