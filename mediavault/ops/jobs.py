"""Ingest jobs as operators see them: the job event log grouped by job, with a status and the
reason of a failure; kept for a number of days, exportable as CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from mediavault.index.status import FAILURE_EVENTS, JOB_EVENTS
from mediavault.vault.models import utc_now

CSV_COLUMNS = ("at", "job_id", "event", "media_id", "item", "error", "detail")


@dataclass
class Job:
    job_id: str
    status: str  # committed, failed, partial (a batch with failures), running
    started_at: datetime
    last_at: datetime
    media_ids: list[str] = field(default_factory=list)
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"], data["last_at"] = self.started_at.isoformat(), self.last_at.isoformat()
        data["events"] = [_event_json(e) for e in self.events]
        return data


def _event_json(event: dict[str, Any]) -> dict[str, Any]:
    at = event.get("at")
    return {
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "event": event.get("event"),
        "media_id": event.get("media_id"),
        "detail": event.get("detail") or {},
    }


def job_status(events: list[str]) -> str:
    failed = any(e in FAILURE_EVENTS for e in events)
    committed = "committed" in events
    if failed and committed:
        return "partial"
    if failed:
        return "failed"
    return "committed" if committed else "running"


def _reason(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("event") in FAILURE_EVENTS:
            detail = event.get("detail") or {}
            where = detail.get("item") or detail.get("media")
            error = str(detail.get("error") or event.get("event"))
            # An error about the media file itself already starts with its name.
            return f"{where}: {error}" if where and not error.startswith(f"{where}: ") else error
    return None


def list_jobs(
    database: Database,
    since: datetime | None = None,
    failed_only: bool = False,
    media_ids: list[str] | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs newest first. ``media_ids`` scopes to jobs that touched those items (an owner's view:
    jobs rejected before any media was stored belong to no owner and are left out).

    Two steps, so that no server-side document grows with a job's size (MongoDB caps one at
    16 MB, and a batch of thousands of files has thousands of events): a summary per job (times
    and the set of its event kinds), sorted, filtered and cut to ``limit`` by the server; then the
    events of just those jobs, read through a cursor."""
    match: dict[str, Any] = {}
    if since is not None:
        match["at"] = {"$gte": since}
    if media_ids is not None:
        match["media_id"] = {"$in": media_ids}
    pipeline: list[dict[str, Any]] = [
        *([{"$match": match}] if match else []),
        {
            "$group": {
                "_id": "$job_id",
                "last": {"$max": "$at"},
                "last_event": {"$max": "$_id"},  # a stable order for jobs whose last events tie
                "kinds": {"$addToSet": "$event"},
            }
        },
        {"$sort": {"last": -1, "last_event": -1}},
        *([{"$match": {"kinds": {"$in": list(FAILURE_EVENTS)}}}] if failed_only else []),
        {"$limit": limit},
    ]
    summaries = list(database[JOB_EVENTS].aggregate(pipeline, allowDiskUse=True))
    events: dict[str, list[dict[str, Any]]] = {summary["_id"]: [] for summary in summaries}
    cursor = (
        database[JOB_EVENTS]
        .find(
            {**match, "job_id": {"$in": list(events)}},
            {"_id": 0, "job_id": 1, "at": 1, "event": 1, "media_id": 1, "detail": 1},
        )
        .sort([("at", 1), ("_id", 1)])
    )
    for event in cursor:
        events[event.pop("job_id")].append(event)
    jobs: list[Job] = []
    for summary in summaries:
        # Status, reason and times come from the events read, so that a job is consistent with
        # its own events when one was written (or pruned) between the two queries.
        job_events = events[summary["_id"]]
        if not job_events:
            continue  # pruned in between
        jobs.append(
            Job(
                job_id=summary["_id"],
                status=job_status([e["event"] for e in job_events]),
                started_at=job_events[0]["at"],
                last_at=job_events[-1]["at"],
                media_ids=sorted({e["media_id"] for e in job_events if e.get("media_id")}),
                reason=_reason(job_events),
                events=job_events,
            )
        )
    return jobs


def events_csv(jobs: list[Job]) -> str:
    """Every event of these jobs, one row each (``detail`` holds the rest as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for job in jobs:
        for event in job.events:
            detail = dict(event.get("detail") or {})
            item, error = detail.pop("item", None), detail.pop("error", None)
            at = event.get("at")
            writer.writerow(
                [
                    at.isoformat() if isinstance(at, datetime) else at,
                    job.job_id,
                    event.get("event"),
                    event.get("media_id") or "",
                    _csv_safe(str(item or "")),
                    _csv_safe(error or ""),
                    _csv_safe(json.dumps(detail, sort_keys=True, default=str) if detail else ""),
                ]
            )
    return out.getvalue()


def _csv_safe(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (error texts quote user file names)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def prune_events(database: Database, keep_days: float, now: datetime | None = None) -> int:
    """Delete job events older than ``keep_days``; returns how many went."""
    horizon = (now or utc_now()) - timedelta(days=keep_days)
    return database[JOB_EVENTS].delete_many({"at": {"$lt": horizon}}).deleted_count
