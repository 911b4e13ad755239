"""One read of the figures an operator watches: storage by class and tier, ingest outcomes,
re-index lag, the last successful run of each maintenance flow, fixity problems and free space.

Metrics (``metrics.py``) and the capacity check (``capacity.py``) are both computed from it, so the
web app, the flows and the CLI report the same numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.database import Database

from mediavault.index import stats
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.status import JOB_EVENTS
from mediavault.settings import MediavaultSettings
from mediavault.vault import journal
from mediavault.vault.base import Vault
from mediavault.vault.local import LocalVault

MAINTENANCE_FLOWS = ("lifecycle", "verify", "mirror", "restore-drill")
INGEST_EVENTS = ("committed", "rejected", "failed", "item-failed")
REPORTS_SCANNED = 50  # newest reports read per flow when looking for the last success


@dataclass
class FlowRuns:
    last_run: datetime | None = None
    last_success: datetime | None = None


@dataclass
class Snapshot:
    media: int = 0
    storage: list[dict[str, Any]] = field(default_factory=list)  # class, tier, objects, bytes
    ingest_events: dict[str, int] = field(default_factory=dict)
    journal_tail: int = 0
    index_checkpoint: int | None = None  # None: no live index generation
    flows: dict[str, FlowRuns] = field(default_factory=dict)
    fixity_problems: int | None = None  # mismatches + missing objects in the newest verify report
    mirror_lag: int | None = None  # journal records not yet mirrored; None: no mirror configured
    local_free_bytes: int | None = None  # None: not a local vault
    local_total_bytes: int | None = None

    @property
    def vault_bytes(self) -> int:
        """Bytes the vault itself holds (hot tier; archived copies live in the archive tier)."""
        return sum(row["bytes"] for row in self.storage if row["tier"] == "hot")

    @property
    def reindex_lag(self) -> int | None:
        """Journal records not yet in the live index (None without a live index)."""
        return None if self.index_checkpoint is None else max(self.journal_tail - self.index_checkpoint, 0)


def _report_succeeded(kind: str, body: dict[str, Any]) -> bool:
    if body.get("error"):
        return False
    if kind == "verify":
        return bool(body.get("ok"))
    if body.get("dry_run"):
        return False
    return not body.get("errors") and body.get("ok", True) is not False


def flow_runs(vault: Vault, kind: str) -> FlowRuns:
    """The newest report of a maintenance flow, and the newest one that succeeded (report keys
    sort by time; only the newest ``REPORTS_SCANNED`` are read)."""
    keys = sorted(vault.list_keys(f"reports/{kind}/"), reverse=True)[:REPORTS_SCANNED]
    runs = FlowRuns()
    for key in keys:
        try:
            body = json.loads(vault.get_bytes(key))
            created = datetime.fromisoformat(body["created_at"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged report neither proves a success nor hides an older one
        runs.last_run = runs.last_run or created
        if _report_succeeded(kind, body):
            runs.last_success = created
            break
    return runs


def newest_verify_problems(vault: Vault) -> int | None:
    keys = sorted(vault.list_keys("reports/verify/"), reverse=True)
    for key in keys[:REPORTS_SCANNED]:
        try:
            body = json.loads(vault.get_bytes(key))
        except ValueError:
            continue
        return len(body.get("mismatches") or []) + len(body.get("missing") or [])
    return None


def storage_by_class_and_tier(vault: Vault) -> tuple[int, list[dict[str, Any]]]:
    found = stats.storage_stats(vault)
    return found["media"], [
        {"class": r["class"], "tier": r["tier"], "objects": int(r["objects"]), "bytes": int(r["bytes"])}
        for r in found.get("by_class_tier", [])
    ]


def take_for(settings: MediavaultSettings, database: Database | None) -> Snapshot:
    """``take`` for these settings: their vault, and their mirror when one is configured."""
    from mediavault.vault import open_vault, vault_from_settings

    vault = vault_from_settings(settings)
    mirror = open_vault(settings.mirror_url, settings.s3) if settings.mirror_url else None
    return take(vault, database, mirror)


def take(vault: Vault, database: Database | None, mirror: Vault | None = None) -> Snapshot:
    """Read every figure once. Without MongoDB, the index figures stay empty; without a mirror,
    its lag."""
    snapshot = Snapshot()
    snapshot.media, snapshot.storage = storage_by_class_and_tier(vault)
    snapshot.journal_tail = journal.find_tail(vault)
    if database is not None:
        store = MongoIndexStore(database)
        live = store.live_generation()
        snapshot.index_checkpoint = store.checkpoint(live) if live is not None else None
        rows = database[JOB_EVENTS].aggregate(
            [
                {"$match": {"event": {"$in": list(INGEST_EVENTS)}}},
                {"$group": {"_id": "$event", "n": {"$sum": 1}}},
            ]
        )
        counted = {row["_id"]: int(row["n"]) for row in rows}
        snapshot.ingest_events = {event: counted.get(event, 0) for event in INGEST_EVENTS}
    if mirror is not None:
        from mediavault.lifecycle.mirror import mirror_checkpoint

        snapshot.mirror_lag = max(snapshot.journal_tail - mirror_checkpoint(mirror), 0)
    snapshot.flows = {kind: flow_runs(vault, kind) for kind in MAINTENANCE_FLOWS}
    snapshot.fixity_problems = newest_verify_problems(vault)
    if isinstance(vault, LocalVault):
        snapshot.local_free_bytes, snapshot.local_total_bytes = vault.disk_space()
    return snapshot
