"""The restore drill against a real live index (SecantusDB + Tantivy) and mirrors on disk and moto S3."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from mediavault.errors import IntegrityError
from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle import restore_drill
from mediavault.lifecycle.engine import run
from mediavault.lifecycle.mirror import mirror_vault
from mediavault.lifecycle.policy import Policies, PolicyOverride, Rule
from mediavault.lifecycle.restore_drill import check, choose_sample, run_drill
from mediavault.media import edits
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, Vault, manifests
from mediavault.vault.models import utc_now
from mediavault.vault.s3 import S3Vault, make_s3_client
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav


@pytest.fixture
def live(tmp_path: Path, mongo_db) -> IndexTarget:
    return IndexTarget(
        LocalVault(tmp_path / "vault"), MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "search")
    )


@pytest.fixture
def settings(tmp_path: Path) -> MediavaultSettings:
    return MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")


def make_mirror(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Vault:
    if kind == "local":
        return LocalVault(tmp_path / "mirror")
    options = request.getfixturevalue("s3_options")
    bucket = f"mirror-{uuid.uuid4().hex[:12]}"
    make_s3_client(options).create_bucket(Bucket=bucket)
    return S3Vault(bucket, "backup", options)


def populate(live: IndexTarget, settings: MediavaultSettings, tmp_path: Path) -> dict[str, str]:
    """Two items: JFK with its media archived, a diarized board meeting with edits; indexed."""
    vault = live.vault
    jfk = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[
                OutputSpec(str(REAL / "whisper_en_jfk.json")),
                OutputSpec(str(REAL / "whisper_en_jfk.srt")),
            ],
            metadata={"title": "JFK", "owner": "archive-team", "tags": ["speech"]},
        ),
        settings,
    ).media_id
    board = ingest(
        vault,
        IngestRequest(
            media=str(make_wav(tmp_path / "media" / "board.wav", 300, 300)),
            outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
            metadata={"title": "School board", "owner": "board", "language": "en"},
        ),
        settings,
    ).media_id
    edits.add_edit(vault, board, "rename-speaker", {"speaker": "SPEAKER_00", "display_name": "Chair"})
    run_id = manifests.latest_manifest(vault, board).current_run().run_id
    edits.add_edit(vault, board, "correct-text", {"run_id": run_id, "seq": 2, "text": "Corrected words."})
    policies = Policies(owners={"board": PolicyOverride(media=Rule(action="keep", after_days=0))})
    assert not run(vault, policies, dry_run=False, now=utc_now() + timedelta(days=100)).errors
    reindex.full_rebuild(live)
    return {"jfk": jfk, "board": board}


def drill_databases(live: IndexTarget) -> list[str]:
    database = live.store.database
    return [n for n in database.client.list_database_names() if n.startswith(f"{database.name}_drill_")]


@pytest.mark.parametrize("mirror_kind", ["local", "s3"])
def test_the_drill_passes_on_a_healthy_mirror_and_leaves_nothing_behind(
    live: IndexTarget, settings, tmp_path: Path, mirror_kind: str, request
) -> None:
    ids = populate(live, settings, tmp_path)
    mirror = make_mirror(mirror_kind, tmp_path, request)
    assert mirror_vault(live.vault, mirror).ok

    report = check(run_drill(mirror, live, percent=100, seed=7, workdir=tmp_path / "work"))

    assert report.sample == sorted(ids.values()) and report.compared == 2
    assert report.statements_compared == report.rebuild["statements"] == 29 and not report.skipped
    assert report.rebuild["media"] == 2 and not report.rebuild["quarantined"]
    assert report.restored_objects >= 2 + 7 + 2, "manifest versions, artifacts, edit overlays"
    assert drill_databases(live) == [] and list((tmp_path / "work").iterdir()) == []


def _flip_byte(mirror: Vault, key: str, offset: int = 200) -> None:
    """Damage one object through the mirror's own storage (bypassing create-if-absent)."""
    if isinstance(mirror, LocalVault):
        data = bytearray(mirror.local_path(key).read_bytes())
        data[offset] ^= 0x01
        mirror.local_path(key).write_bytes(bytes(data))
        return
    assert isinstance(mirror, S3Vault)
    data = bytearray(mirror.get_bytes(key))
    data[offset] ^= 0x01
    mirror.client.put_object(Bucket=mirror.bucket, Key=mirror.prefix + key, Body=bytes(data))


@pytest.mark.parametrize("mirror_kind", ["local", "s3"])
def test_a_corrupted_copy_in_the_mirror_fails_the_drill_naming_the_media_and_the_key(
    live: IndexTarget, settings, tmp_path: Path, mirror_kind: str, request
) -> None:
    ids = populate(live, settings, tmp_path)
    mirror = make_mirror(mirror_kind, tmp_path, request)
    assert mirror_vault(live.vault, mirror).ok
    manifest = manifests.latest_manifest(live.vault, ids["board"])
    statements = next(a for a in manifest.artifacts if a.kind == "statements")
    _flip_byte(mirror, statements.key)

    report = run_drill(mirror, live, count=2, seed=1, workdir=tmp_path / "work")

    assert not report.ok
    damaged = [d for d in report.differences if d["key"] == statements.key]
    assert damaged and damaged[0]["media_id"] == ids["board"] and damaged[0]["what"] == "object"
    assert "SHA-256" in damaged[0]["detail"] and statements.sha256 in damaged[0]["detail"]
    assert all(d["media_id"] == ids["board"] for d in report.differences), "JFK restores cleanly"
    with pytest.raises(IntegrityError) as failure:
        check(report)
    assert ids["board"] in str(failure.value) and statements.key in str(failure.value)
    assert drill_databases(live) == [] and list((tmp_path / "work").iterdir()) == []


def test_a_tampered_manifest_in_the_mirror_shows_in_the_objects_and_the_index(
    live: IndexTarget, settings, tmp_path: Path
) -> None:
    ids = populate(live, settings, tmp_path)
    mirror = LocalVault(tmp_path / "mirror")
    assert mirror_vault(live.vault, mirror).ok
    key = manifests.manifest_key(ids["jfk"], manifests.manifest_versions(mirror, ids["jfk"])[-1])
    document = json.loads(mirror.get_bytes(key))
    document["metadata"]["title"] = "Not what was said"
    mirror.local_path(key).write_bytes(json.dumps(document, indent=2).encode())

    report = run_drill(mirror, live, count=2, seed=3)

    found = {(d["media_id"], d["what"], d["key"]) for d in report.differences}
    assert (ids["jfk"], "manifest", key) in found
    titles = [
        d for d in report.differences if d["what"] == "media-document" and d["detail"].startswith("title:")
    ]
    assert titles and "'JFK'" in titles[0]["detail"] and "Not what was said" in titles[0]["detail"]
    searched = [d for d in report.differences if d["what"] == "search" and "title" in d["detail"]]
    assert searched, "every statement document carries the title"
    assert not report.ok and "Not what was said" in report.failure_message()


def test_items_the_live_index_has_not_caught_up_with_are_skipped_not_compared(
    live: IndexTarget, settings, tmp_path: Path
) -> None:
    reindex.full_rebuild(live)  # an empty live generation
    ingest(
        live.vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
        settings,
    )
    mirror = LocalVault(tmp_path / "mirror")
    assert mirror_vault(live.vault, mirror).ok

    lagging = run_drill(mirror, live, count=1, seed=0)
    assert not lagging.differences and lagging.compared == 0 and not lagging.ok
    assert "has not applied journal record 1" in lagging.skipped[0]["reason"]
    assert "inconclusive" in lagging.failure_message()

    reindex.incremental(live)
    assert check(run_drill(mirror, live, count=1, seed=0)).compared == 1


def test_the_sample_is_seeded_and_sized() -> None:
    ids = [f"{i:064x}" for i in range(40)]
    assert choose_sample(ids, 5, None, 42) == choose_sample(list(reversed(ids)), 5, None, 42)
    assert len(choose_sample(ids, 5, None, 42)) == 5 and choose_sample(ids, 5, None, 43) != choose_sample(
        ids, 5, None, 42
    )
    assert len(choose_sample(ids, None, 10, 1)) == 4 and len(choose_sample(ids, None, 1, 1)) == 1
    assert choose_sample(ids, 500, None, 1) == ids and choose_sample([], 5, None, 1) == []
    assert choose_sample(ids, 0, None, 1) == [] and choose_sample(ids, None, 0, 1) == []


def test_scratch_state_is_removed_when_the_drill_fails_midway(
    live: IndexTarget, settings, tmp_path: Path, monkeypatch
) -> None:
    populate(live, settings, tmp_path)
    mirror = LocalVault(tmp_path / "mirror")
    assert mirror_vault(live.vault, mirror).ok

    def broken_rebuild(target: IndexTarget, *args, **kwargs):
        target.store.create_generation(1)  # something to clean up, then the failure
        target.search.create_generation(1)
        raise RuntimeError("the scratch re-index died")

    monkeypatch.setattr(restore_drill, "full_rebuild", broken_rebuild)
    with pytest.raises(RuntimeError, match="scratch re-index died"):
        run_drill(mirror, live, count=2, seed=5, workdir=tmp_path / "work")
    assert drill_databases(live) == [] and list((tmp_path / "work").iterdir()) == []
