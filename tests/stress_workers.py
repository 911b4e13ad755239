"""Worker processes of the concurrency stress test (tests/test_concurrency_stress.py).

Each worker repeats one role against a shared vault until its deadline and writes its history
(one entry per operation: what, outcome, error) as JSON. Nothing here asserts: the test checks
the histories and the invariants afterwards.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from mediavault import errors
from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import restore_media
from mediavault.lifecycle.engine import run as run_lifecycle
from mediavault.lifecycle.policy import Policies, Rule
from mediavault.media import edits
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings, S3Options
from mediavault.vault import Vault, manifests, open_vault
from mediavault.vault.models import utc_now


@dataclass
class WorkerSpec:
    role: str
    seed: int
    vault_url: str
    s3: dict[str, Any]
    home: str
    deadline: float  # time.time()
    history: str  # JSON file written at the end
    media: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    mongo_url: str = ""
    database: str = ""
    search_dir: str = ""


def retryable(exc: BaseException) -> bool:
    """What a flow retries: transient faults, lost races (ConflictError), vanished objects."""
    return errors.is_transient(exc) or isinstance(exc, errors.ConflictError | errors.ObjectsVanished)


def _settings(spec: WorkerSpec) -> MediavaultSettings:
    return MediavaultSettings(
        home=Path(spec.home), vault_url=spec.vault_url, s3=S3Options(**spec.s3), mongo_mode="disabled"
    )


def _ingest(vault: Vault, spec: WorkerSpec, rng: random.Random) -> str:
    media = rng.choice(spec.media)
    output = rng.randrange(len(spec.outputs))
    result = ingest(
        vault,
        IngestRequest(
            media=media,
            outputs=[OutputSpec(spec.outputs[output])],
            metadata={"title": Path(media).stem, "owner": "stress"},
            provenance={"model": f"whisper-{output}"},
        ),
        _settings(spec),
    )
    return f"{result.media_id[:12]} v{result.manifest_version}"


def _edit(vault: Vault, spec: WorkerSpec, rng: random.Random) -> str:
    media_ids = manifests.list_media_ids(vault)
    if not media_ids:
        return "nothing to edit yet"
    media_id = rng.choice(media_ids)
    if rng.random() < 0.5:
        result = edits.add_edit(vault, media_id, "fix-metadata", {"title": f"title {rng.randrange(1000)}"})
    else:
        payload = {"speaker": "SPEAKER_00", "display_name": f"Speaker {rng.randrange(1000)}"}
        result = edits.add_edit(vault, media_id, "rename-speaker", payload)
    return f"{media_id[:12]} v{result.manifest_version}"


def _lifecycle(vault: Vault, spec: WorkerSpec, rng: random.Random) -> str:
    media_ids = manifests.list_media_ids(vault)
    if media_ids and rng.random() < 0.25:
        restored = restore_media(vault, rng.choice(media_ids))
        return f"restored {len(restored['restored'])}"
    actions = ["archive", "expire", "keep"]
    policies = Policies(
        # In-flight staging files look 8 days old too; their protection is the grace period.
        staging=Rule(action="keep", after_days=0),
        media=Rule(action=rng.choice(actions), after_days=0, compress=rng.random() < 0.5),
        ai_outputs=Rule(action=rng.choice(actions), after_days=0, compress=rng.random() < 0.5),
    )
    report = run_lifecycle(vault, policies, dry_run=False, now=utc_now() + timedelta(days=8))
    if report.errors:
        raise RuntimeError(f"lifecycle recorded errors: {report.errors}")
    return f"{len(report.done)} done, {len(report.skipped)} skipped"


def _reindex(vault: Vault, spec: WorkerSpec, rng: random.Random, state: dict[str, Any]) -> str:
    if "target" not in state:
        from pymongo import MongoClient

        client: MongoClient = MongoClient(spec.mongo_url, tz_aware=True)
        state["target"] = IndexTarget(
            vault, MongoIndexStore(client[spec.database]), TantivySearchIndex(Path(spec.search_dir))
        )
    target = state["target"]
    if rng.random() < 0.2:
        report = reindex.full_rebuild(target)
        if report.quarantined:
            raise RuntimeError(f"quarantined: {report.quarantined}")
        return f"full: generation {report.generation}"
    result = reindex.incremental(target)
    if result["quarantined"]:
        raise RuntimeError(f"quarantined: {result['quarantined']}")
    return f"{result['mode']}: {result.get('records', 0)} records"


ROLES = {"ingest": _ingest, "edit": _edit, "lifecycle": _lifecycle}


def work(spec: WorkerSpec) -> None:
    """Repeat the role until the deadline; every outcome goes into the history."""
    rng = random.Random(spec.seed)
    vault = open_vault(spec.vault_url, S3Options(**spec.s3))
    history: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    while time.time() < spec.deadline:
        started = time.time()
        entry: dict[str, Any] = {"role": spec.role, "started": started}
        try:
            if spec.role == "reindex":
                entry["result"] = _reindex(vault, spec, rng, state)
            else:
                entry["result"] = ROLES[spec.role](vault, spec, rng)
            entry["outcome"] = "ok"
        except Exception as exc:  # recorded; the test judges it
            entry["outcome"] = "retryable" if retryable(exc) else "error"
            entry["error"] = f"{type(exc).__name__}: {exc}"
            if entry["outcome"] == "error":
                entry["traceback"] = traceback.format_exc()
        entry["seconds"] = round(time.time() - started, 3)
        history.append(entry)
        time.sleep(rng.random() * 0.05)
    Path(spec.history).write_text(json.dumps(history))
