"""Lifecycle: retention, archive, restore and legal hold, with faults injected at every step."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from mediavault.index.projection import project
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import plan, restore_media, run, set_legal_hold
from mediavault.lifecycle.fixity import check_vault
from mediavault.lifecycle.policy import Policies, load_policies
from mediavault.media.export import export
from mediavault.vault import LocalVault, Vault, journal, manifests
from mediavault.vault.models import utc_now
from mediavault.vault.tiers import ArtifactReader
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, plant_staging_leftover, stored_keys

DAYS = timedelta(days=1)


class Crash(BaseException):
    pass


def ingest_jfk(vault: Vault, settings, **metadata) -> str:
    request = IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json")), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
        metadata=metadata or {"title": "JFK", "owner": "archive-team"},
    )
    return ingest(vault, request, settings).media_id


def tiers(vault: Vault, media_id: str) -> dict[str, str]:
    return {
        a.kind + (f":{a.format}" if a.format else ""): a.tier
        for a in manifests.latest_manifest(vault, media_id).artifacts
    }


def assert_every_artifact_has_a_copy(vault: Vault, media_id: str) -> None:
    """The invariant: whatever happened, each artifact can still be read and hashes right."""
    reader = ArtifactReader(vault)
    for artifact in manifests.latest_manifest(vault, media_id).artifacts:
        if artifact.tier == "expired":
            continue
        data = reader.read_bytes(artifact)
        assert hashlib.sha256(data).hexdigest() == artifact.sha256, artifact.key


def test_dry_run_plans_and_changes_nothing(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    before = stored_keys(vault)
    report = run(vault, Policies(), dry_run=True, now=utc_now() + 100 * DAYS)
    assert [(a.action, a.artifact_class) for a in report.actions] == [("archive", "media")]
    assert report.summary()["planned"] == {
        "archive:media:hot": {"objects": 1, "bytes": JFK_MEDIA.stat().st_size}
    }
    assert stored_keys(vault) == before and tiers(vault, media_id)["media"] == "hot"
    assert run(vault, Policies(), dry_run=True, now=utc_now() + 10 * DAYS).actions == []


def test_media_archived_after_90_days_then_restored_identically(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS)
    assert not report.errors and [a.action for a in report.done] == ["archive"]
    manifest = manifests.latest_manifest(vault, media_id)
    media = next(a for a in manifest.artifacts if a.kind == "media")
    assert media.tier == "archive" and media.archive.compression is None and manifest.change == "archive"
    assert vault.head(media.key) is None, "the hot copy goes after the manifest says archive"
    assert all(t == "hot" for k, t in tiers(vault, media_id).items() if k != "media")
    assert_every_artifact_has_a_copy(vault, media_id)
    assert check_vault(vault).ok, "fixity checks the archive copy"
    assert [r.change for r in journal.read(vault)] == ["ingest", "archive"]

    restored = restore_media(vault, media_id)
    assert restored["restored"] == [media.key]
    assert (
        hashlib.sha256(vault.get_bytes(media.key)).hexdigest()
        == media.sha256
        == hashlib.sha256(JFK_MEDIA.read_bytes()).hexdigest()
    )
    assert tiers(vault, media_id)["media"] == "hot" and journal.find_tail(vault) == 3
    again = run(vault, Policies(), dry_run=True, now=utc_now() + 30 * DAYS)
    assert again.actions == [], "a restore resets the clock; it is not archived again at once"


def test_ai_outputs_compressed_after_a_year_stay_searchable_and_exportable(
    vault: Vault, settings_for
) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    srt_before = export(vault, media_id, "srt")
    projected_before = [d for batch in project(vault, media_id)[1] for d in batch]
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 400 * DAYS)
    assert not report.errors
    manifest = manifests.latest_manifest(vault, media_id)
    raw = next(a for a in manifest.artifacts if a.format == "whisper-json")
    assert raw.tier == "archive" and raw.archive.compression == "zstd" and raw.archive.key.endswith(".zst")
    assert set(tiers(vault, media_id).values()) == {"archive"}
    assert export(vault, media_id, "srt") == srt_before
    projection, batches = project(vault, media_id)
    assert [d for batch in batches for d in batch] == projected_before
    assert projection.media_doc["tier"] == "archive" and projection.media_doc["stream_key"] is None
    assert_every_artifact_has_a_copy(vault, media_id)


def test_legal_hold_blocks_every_transition_and_is_journaled(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    set_legal_hold(vault, media_id, True)
    held = run(vault, Policies(), dry_run=False, now=utc_now() + 400 * DAYS)
    assert [a.action for a in held.actions] == ["held"] and held.done == []
    assert set(tiers(vault, media_id).values()) == {"hot"}
    set_legal_hold(vault, media_id, False)
    assert [r.change for r in journal.read(vault)] == ["ingest", "legal-hold", "legal-hold"]
    assert run(vault, Policies(), dry_run=False, now=utc_now() + 400 * DAYS).done


def test_overrides_per_owner_and_tag(tmp_path, settings_for) -> None:
    from mediavault.vault import LocalVault

    vault = LocalVault(tmp_path / "v")
    policy_file = tmp_path / "lifecycle.yaml"
    policy_file.write_text(
        "owners:\n  legal:\n    media: {action: keep, after_days: 0}\n"
        "tags:\n  slow:\n    media: {action: archive, after_days: 200}\n"
    )
    policies = load_policies(policy_file)
    assert policies.rule_for("media", "legal", []).action == "keep"
    assert policies.rule_for("media", "other", ["slow"]).after_days == 200
    assert policies.rule_for("media", "other", []).after_days == 90
    assert policies.rule_for("ai_outputs", "legal", ["slow"]).after_days == 365
    ingest_jfk(vault, settings_for(vault), owner="legal")
    assert plan(vault, policies, utc_now() + 100 * DAYS) == []


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("media: {action: delete, after_days: 1}", "media.action"),
        ("staging: {action: archive, after_days: 1}", "(document)"),
        ("media: {action: archive, after_days: -3}", "media.after_days"),
        ("edits: {action: expire, after_days: 1}", "edits"),
    ],
)
def test_bad_policy_files_name_the_field(tmp_path, yaml_text: str, field: str) -> None:
    from mediavault.errors import InputError

    path = tmp_path / "p.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InputError) as caught:
        load_policies(path)
    assert caught.value.file == str(path) and field in caught.value.field


def test_expiry_only_where_a_policy_says_so(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    assert not [a for a in plan(vault, Policies(), utc_now() + 5000 * DAYS) if a.action == "expire"]
    policies = Policies.model_validate(
        {"ai_outputs": {"action": "expire", "after_days": 30}, "media": {"action": "keep", "after_days": 0}}
    )
    report = run(vault, policies, dry_run=False, now=utc_now() + 31 * DAYS)
    assert {a.action for a in report.done} == {"expire"} and len(report.done) == 7
    manifest = manifests.latest_manifest(vault, media_id)
    assert {a.kind: a.tier for a in manifest.artifacts}["media"] == "hot"
    assert all(vault.head(a.key) is None for a in manifest.artifacts if a.tier == "expired")
    assert manifest.edits == [] and vault.head(f"manifests/{media_id}/v00000001.json"), "manifests stay"


def test_ingesting_again_after_archive_and_expiry_commits_and_revives_what_expired(
    vault: Vault, settings_for
) -> None:
    """Found by the model test: the same media and outputs again, after the media was archived
    and the outputs expired, must not fail (nothing it names as hot is missing); the outputs
    the user supplied again are hot again, the archived media stays archived."""
    settings = settings_for(vault)
    media_id = ingest_jfk(vault, settings)
    policies = Policies.model_validate(
        {"ai_outputs": {"action": "expire", "after_days": 0}, "media": {"action": "archive", "after_days": 0}}
    )
    assert not run(vault, policies, dry_run=False, now=utc_now() + DAYS).errors
    assert set(tiers(vault, media_id).values()) == {"archive", "expired"}

    assert ingest_jfk(vault, settings) == media_id
    revived = tiers(vault, media_id)
    assert revived.pop("media") == "archive" and set(revived.values()) == {"hot"}, revived
    assert_every_artifact_has_a_copy(vault, media_id)
    assert manifests.latest_manifest(vault, media_id).change == "restore"
    assert ingest(vault, IngestRequest(media=str(JFK_MEDIA)), settings).changed is False


def test_media_is_archived_after_a_policy_expired_its_outputs(vault: Vault, settings_for) -> None:
    """Found by the stress test: outputs expired on purpose are not "damaged" outputs."""
    media_id = ingest_jfk(vault, settings_for(vault))
    expire_outputs = {
        "ai_outputs": {"action": "expire", "after_days": 0},
        "media": {"action": "keep", "after_days": 0},
    }
    assert not run(vault, Policies.model_validate(expire_outputs), dry_run=False, now=utc_now() + DAYS).errors
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS)
    assert not report.errors, report.errors
    assert tiers(vault, media_id)["media"] == "archive" and vault.head(f"media/{media_id}/original") is None


def test_staging_and_failed_ingest_leftovers_expire(vault: Vault, settings_for) -> None:
    ingest_jfk(vault, settings_for(vault))
    leftover = plant_staging_leftover(vault)
    orphan = "media/" + "f" * 64 + "/original"
    vault.put_bytes(orphan, b"a crashed ingest left me")
    referenced = set(stored_keys(vault)) - {orphan}
    assert [i.key for i in vault.staging_leftovers()] == [leftover]
    early = {a.key for a in plan(vault, Policies(), utc_now() + 0.5 * DAYS) if a.action.startswith("delete")}
    assert orphan not in early, "young leftovers may belong to ingests still in flight"
    if isinstance(vault, LocalVault):  # moto dates every multipart upload 2010; real S3 gives the start time
        assert leftover not in early
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 8 * DAYS)
    assert sorted((a.action, a.key) for a in report.done) == [
        ("delete-orphan", orphan),
        ("delete-staging", leftover),
    ]
    assert set(stored_keys(vault)) == referenced
    assert list(vault.staging_leftovers()) == []


def test_audio_is_not_deleted_while_a_derived_output_is_damaged(vault: Vault, settings_for) -> None:
    media_id = ingest_jfk(vault, settings_for(vault))
    words = next(a for a in manifests.latest_manifest(vault, media_id).artifacts if a.kind == "words")
    vault.delete(words.key)
    report = run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS)
    assert report.errors and report.errors[0]["step"] == "safety"
    assert tiers(vault, media_id)["media"] == "hot"
    assert vault.head(f"media/{media_id}/original") is not None


@pytest.mark.parametrize("step", ["copy", "verify", "manifest", "delete"])
@pytest.mark.parametrize("fault", ["kill", "s3-error"])
def test_a_fault_at_any_step_converges_on_rerun(vault: Vault, settings_for, step: str, fault: str) -> None:
    from botocore.exceptions import ClientError

    media_id = ingest_jfk(vault, settings_for(vault))
    now = utc_now() + 400 * DAYS

    def hook(at: str, key: str) -> None:
        if at == step:
            if fault == "kill":
                raise Crash(f"killed before {at} of {key}")
            raise ClientError(
                {
                    "Error": {"Code": "InternalError", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                "PutObject",
            )

    if fault == "kill":
        with pytest.raises(Crash):
            run(vault, Policies(), dry_run=False, now=now, hook=hook)
    else:  # an S3 error is recorded for the item; the run goes on and finishes
        failed = run(vault, Policies(), dry_run=False, now=now, hook=hook)
        assert failed.errors and "InternalError" in failed.errors[0]["error"]
        assert failed.errors[0]["media_id"] == media_id
    assert_every_artifact_has_a_copy(vault, media_id)
    final = run(vault, Policies(), dry_run=False, now=now)
    assert not final.errors
    assert set(tiers(vault, media_id).values()) == {"archive"}
    manifest = manifests.latest_manifest(vault, media_id)
    assert all(vault.head(a.key) is None for a in manifest.artifacts), "no hot copy is left behind"
    assert_every_artifact_has_a_copy(vault, media_id)
    assert run(vault, Policies(), dry_run=True, now=now).actions == []


def test_a_checksum_mismatch_keeps_the_hot_copy(vault: Vault, settings_for) -> None:
    from mediavault.lifecycle.engine import open_archive

    media_id = ingest_jfk(vault, settings_for(vault))
    archive = open_archive(vault, Policies())

    def corrupt_copy(at: str, key: str) -> None:
        if at == "verify" and key.endswith("/original"):
            archive.delete(key)
            archive.put_bytes(key, b"bit rot")

    report = run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS, hook=corrupt_copy)
    assert report.errors and "does not match" in report.errors[0]["error"]
    assert tiers(vault, media_id)["media"] == "hot" and vault.head(f"media/{media_id}/original")
    assert archive.head(f"media/{media_id}/original") is None, "the bad copy is removed"
    assert not run(vault, Policies(), dry_run=False, now=utc_now() + 100 * DAYS).errors
    assert tiers(vault, media_id)["media"] == "archive"


def test_index_reflects_the_tier_and_a_full_rebuild_works_when_archived(
    tmp_path, settings_for, mongo_db
) -> None:
    from mediavault.index import reindex
    from mediavault.index.index_store import MongoIndexStore
    from mediavault.index.reindex import IndexTarget
    from mediavault.search import SearchQuery
    from mediavault.search.tantivy_index import TantivySearchIndex
    from mediavault.vault import LocalVault

    vault = LocalVault(tmp_path / "vault")
    media_id = ingest_jfk(vault, settings_for(vault))
    target = IndexTarget(vault, MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "tantivy"))
    reindex.full_rebuild(target)
    assert target.store.media(media_id)["stream_key"] == f"media/{media_id}/original"
    run(vault, Policies(), dry_run=False, now=utc_now() + 400 * DAYS)
    assert reindex.incremental(target)["records"] == 1
    record = target.store.media(media_id)
    assert record["tier"] == "archive" and record["stream_key"] is None, "no stream until restored"
    assert target.search.search(SearchQuery(text="fellow Americans")).total == 1, "still searchable"
    rebuilt = reindex.full_rebuild(target)
    assert rebuilt.statements == 1 and target.store.media(media_id)["tier"] == "archive"
    restore_media(vault, media_id)
    reindex.incremental(target)
    assert target.store.media(media_id)["stream_key"] == f"media/{media_id}/original"


@pytest.mark.usefixtures("prefect_harness")
def test_lifecycle_flow_reports(tmp_path, monkeypatch, settings_for) -> None:
    import json

    from flows.lifecycle import lifecycle_flow
    from mediavault.vault import LocalVault

    vault = LocalVault(tmp_path / "vault")
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", vault.url)
    media_id = ingest_jfk(vault, settings_for(vault))
    now_policy = {"media": {"action": "archive", "after_days": 0}}
    plan_result = lifecycle_flow(dry_run=True, policies=now_policy)
    plan_file = json.loads(Path(plan_result["report"]).read_text())
    assert plan_file["dry_run"] and plan_file["planned"]["archive:media:hot"]["objects"] == 1
    assert tiers(vault, media_id)["media"] == "hot" and not list(vault.list_keys("reports/"))
    done = lifecycle_flow(dry_run=False, policies=now_policy)
    assert done["done"]["archive:media:archive"]["objects"] == 1
    assert json.loads(vault.get_bytes(done["report"]))["kind"] == "lifecycle"


def test_cold_storage_class_archive_and_thaw_then_restore(s3_options, s3_bucket, settings_for) -> None:
    from mediavault.vault.s3 import S3Vault

    vault = S3Vault(s3_bucket, "hot", s3_options)
    media_id = ingest_jfk(vault, settings_for(vault))
    policies = Policies.model_validate(
        {"archive": {"url": f"s3://{s3_bucket}/cold/", "storage_class": "GLACIER"}}
    )
    report = run(vault, policies, dry_run=False, now=utc_now() + 400 * DAYS)
    assert not report.errors
    manifest = manifests.latest_manifest(vault, media_id)
    media = next(a for a in manifest.artifacts if a.kind == "media")
    raw = next(a for a in manifest.artifacts if a.kind == "raw-output")
    assert media.archive.storage_class == "GLACIER" and raw.archive.storage_class is None
    head = vault.client.head_object(Bucket=s3_bucket, Key="cold/" + media.archive.key)
    assert head["StorageClass"] == "GLACIER"
    assert check_vault(vault).ok, "cold copies are checked against the SHA-256 recorded at write time"
    assert export(vault, media_id, "srt"), "AI outputs stay readable for search and export"

    first = restore_media(vault, media_id)
    assert first["pending"] == [media.key], "a cold copy is thawed first; nothing blocks meanwhile"
    assert vault.head(media.key) is None
    second = restore_media(vault, media_id)  # moto finishes the thaw at once; S3 takes hours
    assert media.key in second["restored"] and second["pending"] == []
    assert hashlib.sha256(vault.get_bytes(media.key)).hexdigest() == media.sha256


@pytest.mark.usefixtures("prefect_harness")
def test_restore_follow_up_is_scheduled_not_waited_for() -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.lifecycle import restore_flow, schedule_follow_up

    async def make_deployment() -> str:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(restore_flow.name)
            return str(await client.create_deployment(flow_id=flow_id, name=f"restore-{uuid4().hex[:6]}"))

    deployment_id = asyncio.run(make_deployment())
    run_id = schedule_follow_up(deployment_id, {"media_id": "a" * 64}, minutes=30)

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    follow_up = asyncio.run(read())
    assert follow_up.state.type.value == "SCHEDULED"
    assert (follow_up.state.state_details.scheduled_time - utc_now()).total_seconds() > 25 * 60
    assert follow_up.parameters == {"media_id": "a" * 64}
