"""Concurrency stress: separate processes ingest, edit, run the lifecycle (policies at 0 days,
with restores) and re-index one vault for a bounded time, on the local and the S3 vault. Then
the histories and the vault are checked against the invariants:

- no operation failed except in a way a flow retries (transient, lost race, vanished objects);
- every latest manifest names objects that exist and hash right; every version is journaled;
- the index the re-index process kept up to date, caught up incrementally, equals a full
  rebuild into a fresh index, and nothing is quarantined.

Bounded: ``hardening_scale`` seconds (short in CI, ``MEDIAVAULT_HARDENING=long`` by hand).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import S3Options
from mediavault.vault import LocalVault, Vault, manifests
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader
from tests.conftest import hardening_scale
from tests.helpers import JFK_JSON, SAMPLES, make_wav
from tests.stress_workers import WorkerSpec, work

pytestmark = pytest.mark.hardening

ROLES = ["ingest", "ingest", "edit", "lifecycle", "reindex"]


@pytest.fixture(params=["local", "s3"])
def stress_vault(request: pytest.FixtureRequest, tmp_path: Path) -> Vault:
    if request.param == "local":
        return LocalVault(tmp_path / "vault")
    options, bucket = request.getfixturevalue("s3_options"), request.getfixturevalue("s3_bucket")
    return S3Vault(bucket, "stress", options)


def test_processes_racing_on_one_vault_keep_every_invariant(
    tmp_path: Path, stress_vault: Vault, mongo_url: str
) -> None:
    vault = stress_vault
    media = [str(make_wav(tmp_path / "media" / f"{n}.wav", 12, 250 + 60 * n)) for n in range(4)]
    outputs = [str(JFK_JSON), str(SAMPLES / "whisper_en_jfk.srt"), str(SAMPLES / "whisper_en_jfk.vtt")]
    s3 = vault.options.model_dump() if isinstance(vault, S3Vault) else S3Options().model_dump()
    database = f"stress_{uuid.uuid4().hex[:10]}"
    seconds = hardening_scale(20, 300)
    deadline = time.time() + 10 + seconds  # spawned interpreters take a while to import
    specs = [
        WorkerSpec(
            role=role,
            seed=1000 + number,
            vault_url=vault.url,
            s3=s3,
            home=str(tmp_path / f"home-{number}"),
            deadline=deadline,
            history=str(tmp_path / f"history-{number}.json"),
            media=media,
            outputs=outputs,
            mongo_url=mongo_url,
            database=database,
            search_dir=str(tmp_path / "search"),
        )
        for number, role in enumerate(ROLES)
    ]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=work, args=(spec,)) for spec in specs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=seconds + 240)
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]

    histories = [json.loads(Path(spec.history).read_text()) for spec in specs]
    entries = [entry for history in histories for entry in history]
    failures = [e for e in entries if e["outcome"] == "error"]
    counts = {(e["role"], e["outcome"]) for e in entries}
    print(
        {
            f"{role}:{outcome}": sum(1 for e in entries if (e["role"], e["outcome"]) == (role, outcome))
            for role, outcome in counts
        }
    )
    assert not failures, "\n\n".join(f"{e['role']}: {e.get('traceback', e['error'])}" for e in failures)
    for spec, history in zip(specs, histories, strict=True):
        assert any(e["outcome"] == "ok" for e in history), f"{spec.role} never succeeded: {history[:3]}"

    assert_manifests_name_intact_objects(vault)
    assert manifests.sweep_unjournaled(vault, grace_seconds=0) == [], "every version is journaled"

    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    try:
        kept = IndexTarget(vault, MongoIndexStore(client[database]), TantivySearchIndex(tmp_path / "search"))
        caught_up = reindex.incremental(kept)
        assert not caught_up["quarantined"]
        fresh = IndexTarget(
            vault, MongoIndexStore(client[database + "_full"]), TantivySearchIndex(tmp_path / "full")
        )
        rebuilt = reindex.full_rebuild(fresh)
        assert rebuilt.switched and not rebuilt.quarantined
        live, reference = kept.store.live_generation(), fresh.store.live_generation()
        assert kept.store.summary(live) == fresh.store.summary(reference)
        assert kept.search.summary(live) == fresh.search.summary(reference)
    finally:
        client.drop_database(database)
        client.drop_database(database + "_full")
        client.close()


def assert_manifests_name_intact_objects(vault: Vault) -> None:
    reader = ArtifactReader(vault)
    for media_id in manifests.list_media_ids(vault):
        manifest = manifests.latest_manifest(vault, media_id)
        for artifact in manifest.artifacts:
            if artifact.tier == "expired":
                continue
            data = reader.read_bytes(artifact)  # KeyError: a manifest names a deleted object
            assert hashlib.sha256(data).hexdigest() == artifact.sha256, artifact.key
