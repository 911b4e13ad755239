"""What the dashboard shows: counts of the live index, recent ingests and failures, and the last
lifecycle and verify reports from the vault. Read-only, and scoped to one owner when asked."""

from __future__ import annotations

import json
from typing import Any

from pymongo.database import Database

from mediavault.index.index_store import live_media_collection
from mediavault.index.status import FAILURE_EVENTS, JOB_EVENTS
from mediavault.vault.base import Vault

REPORT_KINDS = ("lifecycle", "verify")
OWNED_SCAN = 10_000  # an owner's media items considered for their recent events


def counts(database: Database, owner: str | None = None) -> dict[str, dict[str, int]]:
    """Media items by status, tier and owner (only ``owner``'s items when given)."""
    match = {"owner": {"$eq": owner}} if owner is not None else {}
    result: dict[str, dict[str, int]] = {}
    for field in ("status", "tier", "owner"):
        pipeline: list[dict[str, Any]] = [{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        if match:
            pipeline.insert(0, {"$match": match})
        rows = live_media_collection(database).aggregate(pipeline)
        result[field] = dict(
            sorted(((str(r["_id"]) if r["_id"] is not None else "none"), int(r["n"])) for r in rows)
        )
    return result


def recent_events(
    database: Database, owner: str | None = None, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """The newest commits and failures, with titles. Failures of files that never became a media
    item (an inbox file rejected before commit) belong to no owner: only the unscoped view has them."""
    events = database[JOB_EVENTS]
    media = live_media_collection(database)

    def titled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = sorted({r["media_id"] for r in rows if r.get("media_id")})
        found = {
            d["_id"]: d
            for d in media.find({"_id": {"$in": ids}}, {"title": 1, "owner": 1, "original_filename": 1})
        }
        out = []
        for row in rows:
            document = found.get(row.get("media_id"))
            if owner is not None and (document is None or document.get("owner") != owner):
                continue
            detail = row.get("detail") or {}
            out.append(
                {
                    "at": row["at"].isoformat() if hasattr(row.get("at"), "isoformat") else row.get("at"),
                    "event": row["event"],
                    "media_id": row.get("media_id"),
                    "title": (document or {}).get("title") or (document or {}).get("original_filename"),
                    "item": detail.get("item") or detail.get("media"),
                    "error": detail.get("error"),
                    "job_id": row.get("job_id"),
                }
            )
            if len(out) >= limit:
                break
        return out

    scope: dict[str, Any] = {}
    if owner is not None:
        scope = {"media_id": {"$in": owned_media_ids(database, owner)}}
    committed = list(
        events.find({"event": {"$eq": "committed"}, **scope}, {"_id": 0}).sort("at", -1).limit(limit)
    )
    failed = list(
        events.find({"event": {"$in": list(FAILURE_EVENTS)}, **scope}, {"_id": 0}).sort("at", -1).limit(limit)
    )
    return {"ingests": titled(committed), "failures": titled(failed)}


def latest_reports(vault: Vault, per_kind: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The newest lifecycle and verify run reports (their keys sort by time)."""
    reports: dict[str, list[dict[str, Any]]] = {}
    for kind in REPORT_KINDS:
        keys = sorted(vault.list_keys(f"reports/{kind}/"), reverse=True)[:per_kind]
        reports[kind] = []
        for key in keys:
            try:
                body = json.loads(vault.get_bytes(key))
            except Exception as exc:  # a damaged report is shown as such, not hidden
                body = {"error": f"unreadable report: {type(exc).__name__}"}
            reports[kind].append({"key": key, **summarize_report(kind, body)})
    return reports


def summarize_report(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The few figures a person scans for, plus the Prefect flow run when the report names one."""
    summary: dict[str, Any] = {
        "created_at": body.get("created_at"),
        "flow_run_id": body.get("flow_run_id"),
        "error": body.get("error"),
    }
    if kind == "verify":
        summary.update(
            ok=body.get("ok"),
            media=body.get("media"),
            checked=body.get("checked"),
            mismatches=len(body.get("mismatches") or []),
            missing=len(body.get("missing") or []),
            errors=len(body.get("errors") or []),
        )
    else:
        done = body.get("done") or {}
        summary.update(
            dry_run=body.get("dry_run"),
            done={k: v for k, v in done.items() if v} if isinstance(done, dict) else done,
            errors=len(body.get("errors") or []),
        )
    return summary


def owned_media_ids(database: Database, owner: str) -> list[str]:
    """The owner's media items as the live index knows them (owner edits applied)."""
    media = live_media_collection(database)
    return [d["_id"] for d in media.find({"owner": {"$eq": owner}}, {"_id": 1}).limit(OWNED_SCAN)]


def titles(database: Database, media_ids: list[str], owner: str | None = None) -> dict[str, str]:
    """Display titles of media items (the file name when a title is missing); with ``owner``,
    only that owner's items are named."""
    query: dict[str, Any] = {"_id": {"$in": [str(m) for m in media_ids]}}
    if owner is not None:
        query["owner"] = {"$eq": owner}
    found = live_media_collection(database).find(query, {"title": 1, "original_filename": 1})
    return {d["_id"]: d.get("title") or d.get("original_filename") or d["_id"][:12] for d in found}


def cumulative_series(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Month rows of (month, key, bytes) as running totals per key, for a stacked chart."""
    months = sorted({r["month"] for r in rows if r.get("month")})
    names = sorted({str(r[key]) for r in rows})
    added = {(r["month"], str(r[key])): int(r["bytes"] or 0) for r in rows if r.get("month")}
    series: dict[str, list[int]] = {}
    for name in names:
        total, points = 0, []
        for month in months:
            total += added.get((month, name), 0)
            points.append(total)
        series[name] = points
    peak = max((sum(values[i] for values in series.values()) for i in range(len(months))), default=0)
    return {"months": months, "series": series, "peak": peak}
