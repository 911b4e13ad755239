"""Forget (erasure on request): after it, no byte of the item or its text is left in the vault,
the archive tier or the index; a neighbour is intact; a legal hold refuses it; a run killed at
any step converges when run again."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from mediavault.errors import InputError, LegalHold, MediaForgotten
from mediavault.index import reindex, status
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle import engine, fixity
from mediavault.lifecycle.forget import forget
from mediavault.lifecycle.policy import Policies
from mediavault.media import edits
from mediavault.search import SearchQuery
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests
from mediavault.vault.base import Vault
from mediavault.vault.models import utc_now
from tests.conftest import REAL
from tests.helpers import JFK_JSON, JFK_MEDIA, make_wav

SECRET_TITLE = "Zygomorphic interview of Quillon Varga"
SECRET_EDIT = "Quillon said xylophonics in confidence"
STEPS = ("delete-archive", "tombstone", "delete", "delete-manifest", "index")


class Crash(Exception):
    pass


def crash_at(step: str, after: int = 0):
    seen = {"n": 0}

    def hook(name: str, key: str) -> None:
        if name == step:
            if seen["n"] >= after:
                raise Crash(f"killed at {step} {key}")
            seen["n"] += 1

    return hook


@pytest.fixture
def world(tmp_path: Path, vault: Vault, mongo_db):
    target = IndexTarget(vault, MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "search"))
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    secret = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(JFK_JSON))],
            metadata={"title": SECRET_TITLE, "description": "about Quillon Varga", "owner": "newsroom"},
        ),
        settings,
    ).media_id
    run_id = manifests.latest_manifest(vault, secret).current_run().run_id
    edits.add_edit(vault, secret, "correct-text", {"run_id": run_id, "seq": 0, "text": SECRET_EDIT})
    neighbour_media = make_wav(tmp_path / "neighbour.wav", 300, 330)
    neighbour = ingest(
        vault,
        IngestRequest(
            media=str(neighbour_media),
            outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
            metadata={"title": "School board", "owner": "newsroom"},
        ),
        settings,
    ).media_id
    archived = engine.run(vault, Policies(), dry_run=False, now=utc_now() + timedelta(days=400))
    assert not archived.errors and archived.done, "both items have archive copies"
    reindex.full_rebuild(target)
    status.record_event(mongo_db, "job-1", "committed", secret)
    assert target.search.search(SearchQuery(text="xylophonics")).total == 1
    return target, secret, neighbour, JFK_MEDIA.read_bytes()[4096:4160], tmp_path


def forget_with_index(
    target: IndexTarget, media_id: str, reason: str = "takedown", by: str = "admin", **options
):
    """An applied forget that also purges the index (as the CLI, flow and API do)."""
    return forget(
        target.vault,
        media_id,
        reason,
        by,
        apply=True,
        remove_from_index=lambda m: reindex.purge_media(target, m),
        **options,
    )


def every_object(vault: Vault) -> dict[str, bytes]:
    """Every object of the vault and its archive tier (the S3 archive shares the bucket)."""
    found = {key: vault.get_bytes(key) for key in vault.list_keys("")}
    if isinstance(vault, LocalVault):
        archive = LocalVault(Path(engine.default_archive_url(vault).removeprefix("file://")))
        found.update({f"archive:{key}": archive.get_bytes(key) for key in archive.list_keys("")})
    return found


def disk_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def mongo_text(database) -> str:
    return "\n".join(
        json.dumps(list(database[name].find({})), default=str) for name in database.list_collection_names()
    )


def assert_vault_erased(vault: Vault, secret: str, audio: bytes) -> None:
    objects = every_object(vault)
    left = sorted(k for k in objects if secret in k)
    tombstone = manifests.manifest_versions(vault, secret)[-1]
    assert left == [
        f"manifests/{secret}/v{tombstone:08d}.journaled",
        f"manifests/{secret}/v{tombstone:08d}.json",
    ], left
    for key, data in objects.items():
        for needle in (SECRET_TITLE.encode(), b"xylophonics", b"Quillon", audio):
            assert needle not in data, f"{needle[:20]!r} left in {key}"


def assert_erased(target: IndexTarget, secret: str, audio: bytes, tmp_path: Path) -> None:
    assert_vault_erased(target.vault, secret, audio)
    search_files = disk_bytes(tmp_path / "search")
    assert b"xylophonics" not in search_files and b"Quillon" not in search_files
    database = target.store.database
    text = mongo_text(database)
    assert secret not in text and "Quillon" not in text and "xylophonics" not in text
    assert target.search.search(SearchQuery(text="xylophonics")).total == 0
    assert target.search.search(SearchQuery(text="Quillon")).media == []


def assert_neighbour_intact(target: IndexTarget, neighbour: str) -> None:
    report = fixity.check_vault(target.vault)
    assert report.ok, (report.mismatches, report.missing, report.errors)
    assert fixity.check_media(target.vault, neighbour).checked > 0
    assert target.search.search(SearchQuery(text="board", media_id=neighbour)).total > 0
    assert target.store.database is not None


def test_a_dry_run_lists_every_tier_and_changes_nothing(world) -> None:
    target, secret, _, _, _ = world
    before = every_object(target.vault)
    plan = forget(target.vault, secret, "consent withdrawn", "editor@newsroom").plan.as_dict()
    assert any(a["key"].endswith("/original") for a in plan["archive"]), "the media itself is archived"
    assert any(k.startswith("edits/") for k in plan["hot"]) and plan["manifests"]
    assert every_object(target.vault) == before


def test_forget_erases_everything_and_keeps_a_tombstone(world) -> None:
    target, secret, neighbour, audio, tmp_path = world
    result = forget_with_index(target, secret, "consent withdrawn", "editor@newsroom")
    assert result.applied and result.index["media_documents"] >= 1 and result.index["job_events"] == 1
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)
    stone = manifests.newest_manifest(target.vault, secret)
    assert stone.forgotten.reason == "consent withdrawn" and stone.forgotten.by == "editor@newsroom"
    assert (stone.runs, stone.artifacts, stone.metadata.title) == ([], [], None)
    assert manifests.latest_manifest(target.vault, secret) is None
    # Nothing brings it back: a full re-index, a new ingest of the same bytes, an edit.
    reindex.full_rebuild(target)
    assert target.search.search(SearchQuery(text="xylophonics")).total == 0
    settings = MediavaultSettings(home=tmp_path / "home2", mongo_mode="disabled")
    with pytest.raises(MediaForgotten, match="erased on request"):
        ingest(
            target.vault,
            IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={}),
            settings,
        )
    with pytest.raises(InputError):
        edits.add_edit(target.vault, secret, "fix-metadata", {"title": "back"})
    assert_erased(target, secret, audio, tmp_path)  # the refused ingest took back what it stored
    # Running it again changes nothing and says it was already done.
    again = forget(target.vault, secret, "consent withdrawn", "editor@newsroom", apply=True)
    assert again.plan.tombstone is not None and again.tombstone_version == result.tombstone_version


def test_a_legal_hold_blocks_forget(world) -> None:
    target, secret, _, _, _ = world
    engine.set_legal_hold(target.vault, secret, True)
    before = every_object(target.vault)
    with pytest.raises(LegalHold, match="legal hold"):
        forget(target.vault, secret, "takedown", "admin", apply=True)
    assert every_object(target.vault) == before
    with pytest.raises(InputError, match="reason"):
        forget(target.vault, secret, "  ", "admin")


@pytest.mark.hardening
@pytest.mark.parametrize("step", STEPS)
def test_a_forget_killed_at_any_step_converges_on_a_rerun(world, step: str) -> None:
    target, secret, neighbour, audio, tmp_path = world

    with pytest.raises(Crash):
        forget_with_index(target, secret, hook=crash_at(step))
    forget_with_index(target, secret)
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)


def test_a_writer_refused_by_the_tombstone_leaves_nothing_behind(world) -> None:
    """A writer stores before it commits: an edit overlay, a run's objects. When the commit meets the
    tombstone, what the writer stored goes with the refusal."""
    target, secret, neighbour, audio, tmp_path = world
    forget_with_index(target, secret)
    raced = {
        f"edits/{secret}/00000000000000000001-raced.json": b'{"text": "Quillon again"}',
        f"media/{secret}/runs/raced/raw/0.json": b'{"segments": [{"text": "xylophonics"}]}',
    }
    for key, data in raced.items():
        target.vault.put_bytes(key, data)
    with pytest.raises(MediaForgotten):
        manifests.commit(target.vault, secret, lambda current: current)
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)


@pytest.mark.parametrize("interrupted", [False, True], ids=["raced-writers", "interrupted-forget"])
def test_the_lifecycle_erases_what_is_left_of_a_forgotten_item(world, interrupted: bool) -> None:
    """What a crashed writer stored after a forget (hot, edits, archive), or what a forget killed
    part-way left, is planned as ``erase-leftover`` and erased by the next lifecycle run."""
    target, secret, neighbour, audio, _ = world
    vault = target.vault
    if interrupted:
        with pytest.raises(Crash):
            forget(vault, secret, "takedown", "admin", apply=True, hook=crash_at("delete-manifest", after=1))
    else:
        forget_with_index(target, secret)
        archive = engine.open_archive(vault, Policies())
        vault.put_bytes(f"media/{secret}/original", audio)
        vault.put_bytes(f"edits/{secret}/00000000000000000001-raced.json", b'{"text": "Quillon"}')
        archive.put_bytes(f"media/{secret}/runs/raced/raw/0.json.zst", b"xylophonics")
    planned = engine.run(vault, Policies(), dry_run=True)
    leftovers = [a for a in planned.actions if a.action == "erase-leftover"]
    assert leftovers and {a.media_id for a in leftovers} == {secret}
    assert {a.tier for a in leftovers} == ({"manifest"} if interrupted else {"hot", "archive"})
    done = engine.run(vault, Policies(), dry_run=False)
    assert not done.errors and len([a for a in done.done if a.action == "erase-leftover"]) == len(leftovers)
    assert_vault_erased(vault, secret, audio)  # the index side is the forget's, or the next re-index's
    assert_neighbour_intact(target, neighbour)
    assert not [a for a in engine.run(vault, Policies()).actions if a.action == "erase-leftover"]


@pytest.mark.usefixtures("prefect_harness")
def test_the_cli_plans_then_applies_through_the_flow_and_audits(tmp_path: Path, mongo_url: str) -> None:
    from typer.testing import CliRunner

    from mediavault.access.audit import read_audit
    from mediavault.cli import app

    env = {
        "MEDIAVAULT_HOME": str(tmp_path / "home"),
        "MEDIAVAULT_MONGO_MODE": "external",
        "MEDIAVAULT_MONGO_URL": mongo_url,
        "MEDIAVAULT_MONGO_DATABASE": f"forget_{tmp_path.name[-16:]}",
    }
    vault = LocalVault(tmp_path / "home" / "vault")
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    request = IngestRequest(
        media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={"title": SECRET_TITLE}
    )
    media_id = ingest(vault, request, settings).media_id
    runner = CliRunner()
    assert runner.invoke(app, ["reindex", "--full"], env=env).exit_code == 0
    planned = runner.invoke(app, ["forget", media_id, "--reason", "consent withdrawn"], env=env)
    assert planned.exit_code == 0, planned.output
    assert "would be erased" in planned.output and "nothing changed" in " ".join(planned.output.split())
    listed = json.loads(
        runner.invoke(app, ["forget", media_id, "--reason", "check", "--json"], env=env).output
    )
    assert f"media/{media_id}/original" in listed["hot"] and listed["applied"] is False
    assert manifests.latest_manifest(vault, media_id) is not None
    prefix = runner.invoke(app, ["forget", media_id[:12], "--reason", "x"], env=env)
    assert prefix.exit_code == 2 and "media_id" in prefix.output, "a prefix never erases"
    applied = runner.invoke(app, ["forget", media_id, "--reason", "consent withdrawn", "--apply"], env=env)
    assert applied.exit_code == 0, applied.output
    assert "forgotten" in applied.output and manifests.latest_manifest(vault, media_id) is None
    found = runner.invoke(app, ["search", "fellow"], env=env)
    assert "0 hit(s)" in found.output, found.output
    records = [r for r in read_audit(vault, action="forget") if r.media_id == media_id]
    assert sorted(r.outcome for r in records) == ["ok", "planned", "planned"]  # the --json plan too
    assert all(r.actor == "cli" and r.detail["reason"] in ("consent withdrawn", "check") for r in records)


def test_the_api_forgets_for_admins_only(tmp_path: Path, mongo_url: str) -> None:
    from mediavault.settings import S3Options, WebOptions
    from tests import web_site

    web = WebOptions(audit_flush_seconds=0.2)
    vault_url = (tmp_path / "vault").resolve().as_uri()
    with web_site.running_site(tmp_path, vault_url, S3Options(), mongo_url, web, "local") as site:
        path = f"/api/v1/media/{site.alice_media}/forget"
        with site.client("admin") as admin, site.client("alice-editor") as editor:
            assert editor.post(path, json={"reason": "mine"}).status_code == 403
            plan = admin.post(path, json={"reason": "takedown"})
            assert plan.status_code == 200 and plan.json()["applied"] is False and plan.json()["objects"] > 3
            assert admin.post(path, json={"reason": "   "}).status_code == 422
            assert admin.post(path, json={"reason": "x", "colour": 1}).status_code == 422
            engine.set_legal_hold(site.vault, site.alice_media, True)
            assert admin.post(path, json={"reason": "takedown", "apply": True}).status_code == 409
            engine.set_legal_hold(site.vault, site.alice_media, False)
            done = admin.post(path, json={"reason": "takedown", "apply": True})
            assert done.status_code == 200 and done.json()["index"]["media_documents"] >= 1
            assert admin.get(f"/api/v1/media/{site.alice_media}").status_code == 404
            assert admin.get("/api/v1/search", params={"q": "ask not"}).json()["total"] == 0
            assert admin.post(f"/api/v1/media/{'0' * 64}/forget", json={"reason": "x"}).status_code == 404
            audit = admin.get("/api/v1/audit", params={"action": "forget"}).json()["items"]
            assert sorted(r["outcome"] for r in audit) == ["ok", "planned", "refused"]


def test_an_incremental_reindex_applies_a_forget_made_without_the_index(world) -> None:
    target, secret, neighbour, audio, tmp_path = world
    reindex.full_rebuild(target)  # a previous generation, kept for rollback, holds the item too
    forget(target.vault, secret, "takedown", "admin", apply=True)  # no index at hand
    assert target.search.search(SearchQuery(text="xylophonics")).total == 1, "the index has not heard yet"
    report = reindex.incremental(target)
    assert report["reason"] == "forget" and report["erased"] == [secret] and report["dropped_generations"]
    # Erased as an applied forget erases: no generation, segment or job event keeps its text.
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)
    assert target.search.generations() == [target.store.live_generation()]
    again = reindex.incremental(target)
    assert "erased" not in again and again["records"] == 0, "the rebuild's checkpoint is past the forget"


def test_a_failed_rebuild_leaves_the_forget_to_the_next_reindex(world, monkeypatch) -> None:
    """The checkpoint stays before a forget until the rebuild that purges it has switched."""
    target, secret, neighbour, audio, tmp_path = world
    forget(target.vault, secret, "takedown", "admin", apply=True)  # no index at hand
    live = target.store.live_generation()
    before = target.store.checkpoint(live)

    def failing_rebuild(*args, **kwargs):
        raise ConnectionError("search went away mid-rebuild")

    monkeypatch.setattr(reindex, "full_rebuild", failing_rebuild)
    with pytest.raises(ConnectionError):
        reindex.incremental(target)
    assert target.store.live_generation() == live and target.store.checkpoint(live) == before
    monkeypatch.undo()
    assert reindex.incremental(target)["erased"] == [secret]
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)


def test_a_full_rebuild_purges_a_forget_the_index_never_heard_of(world) -> None:
    """``reindex --full`` after a forget without its index step keeps no rollback generation that
    still holds the item."""
    target, secret, neighbour, audio, tmp_path = world
    forget(target.vault, secret, "takedown", "admin", apply=True)  # no index at hand
    report = reindex.full_rebuild(target)
    assert report.erased == [secret] and report.dropped_generations and report.previous is None
    assert target.search.generations() == [report.generation]
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)
    with pytest.raises(Exception, match="cannot roll back"):
        reindex.rollback(target)
    assert reindex.full_rebuild(target).erased == [], "the next rebuild has nothing left to purge"


def test_a_full_rebuild_after_mongodb_was_lost_keeps_no_generation_from_before(world) -> None:
    """MongoDB wiped and a forget never applied to the index: nothing says which journal records
    the old search generations saw, so the rebuild keeps none of them."""
    target, secret, neighbour, audio, tmp_path = world
    reindex.full_rebuild(target)  # a previous generation, kept for rollback, holds the item too
    forget(target.vault, secret, "takedown", "admin", apply=True)  # no index at hand
    database = target.store.database
    for name in database.list_collection_names():
        database.drop_collection(name)
    report = reindex.full_rebuild(target)
    assert report.previous is None and report.dropped_generations
    assert target.search.generations() == [report.generation]
    assert_erased(target, secret, audio, tmp_path)
    assert_neighbour_intact(target, neighbour)


def test_forget_leaves_no_generation_holding_the_item_on_any_search_backend(
    tmp_path: Path, mongo_db, search_index
) -> None:
    from mediavault.errors import ConfigurationError

    vault = LocalVault(tmp_path / "vault")
    target = IndexTarget(vault, MongoIndexStore(mongo_db), search_index)
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    secret = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={"title": SECRET_TITLE}
        ),
        settings,
    ).media_id
    reindex.full_rebuild(target)
    reindex.full_rebuild(target)  # a previous generation, kept for rollback, holds the item too
    assert search_index.previous_generation() is not None
    forget_with_index(target, secret)
    assert search_index.search(SearchQuery(text="fellow")).total == 0
    assert search_index.generations() == [search_index.live_generation()]
    assert search_index.previous_generation() is None
    assert target.store.generations() == [target.store.live_generation()]
    with pytest.raises(ConfigurationError):
        reindex.rollback(target)


def test_nothing_is_deleted_when_a_hold_lands_before_the_tombstone(world) -> None:
    target, secret, _, _, _ = world
    before = every_object(target.vault)

    def hold_first(step: str, key: str) -> None:
        if step == "tombstone":  # a legal hold set between the plan and the tombstone's commit
            engine.set_legal_hold(target.vault, secret, True)

    with pytest.raises(LegalHold):
        forget(target.vault, secret, "takedown", "admin", apply=True, hook=hold_first)
    after = every_object(target.vault)
    assert {k: v for k, v in after.items() if k in before} == before, "no archive copy or object went"
    with pytest.raises(InputError, match="requested_by"):
        forget(target.vault, secret, "takedown", " ", apply=True)


def test_the_api_finishes_a_forget_that_stopped_after_its_tombstone(tmp_path: Path, mongo_url: str) -> None:
    from mediavault.settings import S3Options, WebOptions
    from tests import web_site

    web = WebOptions(audit_flush_seconds=0.2)
    vault_url = (tmp_path / "vault").resolve().as_uri()
    with web_site.running_site(tmp_path, vault_url, S3Options(), mongo_url, web, "local") as site:
        with pytest.raises(Crash):
            forget(site.vault, site.alice_media, "takedown", "admin", apply=True, hook=crash_at("delete"))
        path = f"/api/v1/media/{site.alice_media}/forget"
        with site.client("admin") as admin, site.client("alice-editor") as editor:
            assert editor.post(path, json={"reason": "takedown", "apply": True}).status_code == 403
            done = admin.post(path, json={"reason": "takedown", "apply": True})
            assert done.status_code == 200 and done.json()["already_forgotten"] is not None
        assert not any(k.startswith(f"media/{site.alice_media}/") for k in site.vault.list_keys("media/"))


def test_planning_a_forget_creates_no_directory_for_an_archive_tier_never_used(tmp_path: Path) -> None:
    """Planning reads every tier; a local archive tier that was never written stays absent."""
    vault = LocalVault(tmp_path / "vault")
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    media_id = ingest(vault, IngestRequest(media=str(JFK_MEDIA)), settings).media_id
    plan = forget(vault, media_id, "takedown", "admin").plan
    assert any(key.endswith("/original") for key in plan.hot_keys) and not plan.archive_keys
    assert not (tmp_path / "vault-archive").exists(), "planning created the archive tier's directory"
