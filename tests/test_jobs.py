"""Job visibility: ingest jobs from the event log (CLI, API, CSV), their retention, and ingest
statuses that only MongoDB records surviving a full re-index."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import app
from mediavault.index import reindex, status
from mediavault.index.index_store import MongoIndexStore, live_media_collection
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.ops import jobs
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings, S3Options, WebOptions
from mediavault.vault import LocalVault
from mediavault.vault.models import utc_now
from tests import web_site
from tests.helpers import JFK_JSON, JFK_MEDIA

NEVER_STORED = "f" * 64


def record_jobs(database, media_id: str) -> None:
    """What the ingest flows record: a committed job, a rejected one (nothing stored), a failed
    one, a batch with one bad item, and one still running."""
    status.record_event(database, "job-ok", "media-stored", media_id)
    status.record_event(database, "job-ok", "committed", media_id, manifest_version=1)
    status.record_event(
        database, "job-bad", "rejected", error='=HYPERLINK("x") bad.json: segments.0.start', media="a.wav"
    )
    status.record_event(database, "job-crash", "media-stored", NEVER_STORED)
    status.record_event(database, "job-crash", "failed", NEVER_STORED, error="connection reset")
    status.record_event(database, "job-batch", "committed", media_id, manifest_version=1)
    status.record_event(database, "job-batch", "item-failed", item="=talk-2", error="talk-2.json: not UTF-8")
    status.record_event(database, "job-live", "media-stored", media_id)


def test_an_error_about_the_media_names_it_once(mongo_db) -> None:
    status.record_event(mongo_db, "job-gone", "rejected", error="b.wav: media: file not found", media="b.wav")
    status.record_event(mongo_db, "job-json", "rejected", error="b.json: segments: missing", media="b.wav")
    found = {j.job_id: j.reason for j in jobs.list_jobs(mongo_db)}
    assert found["job-gone"] == "b.wav: media: file not found"
    assert found["job-json"] == "b.wav: b.json: segments: missing"


def test_jobs_are_grouped_with_status_reason_and_events(mongo_db) -> None:
    record_jobs(mongo_db, "a" * 64)
    found = {j.job_id: j for j in jobs.list_jobs(mongo_db)}
    assert {k: j.status for k, j in found.items()} == {
        "job-ok": "committed",
        "job-bad": "failed",
        "job-crash": "failed",
        "job-batch": "partial",
        "job-live": "running",
    }
    assert found["job-bad"].reason == 'a.wav: =HYPERLINK("x") bad.json: segments.0.start'
    assert found["job-batch"].reason == "=talk-2: talk-2.json: not UTF-8"
    assert [e["event"] for e in found["job-crash"].events] == ["media-stored", "failed"]
    assert next(iter(found)) == "job-live", "newest first"
    failed = [j.job_id for j in jobs.list_jobs(mongo_db, failed_only=True)]
    assert sorted(failed) == ["job-bad", "job-batch", "job-crash"]
    assert [j.job_id for j in jobs.list_jobs(mongo_db, media_ids=[NEVER_STORED])] == ["job-crash"]
    assert jobs.list_jobs(mongo_db, since=utc_now() + timedelta(minutes=1)) == []
    assert len(jobs.list_jobs(mongo_db, limit=2)) == 2

    rows = list(csv.DictReader(io.StringIO(jobs.events_csv(list(found.values())))))
    assert len(rows) == 8 and set(rows[0]) == set(jobs.CSV_COLUMNS)
    assert all(not r["item"].startswith(("=", "+", "-", "@")) for r in rows)
    rejected = next(r for r in rows if r["event"] == "rejected")
    assert rejected["error"].startswith("'="), "a formula is never handed to a spreadsheet"
    assert json.loads(rejected["detail"]) == {"media": "a.wav"}


def test_a_big_batch_is_listed_whole_and_limits_count_the_jobs_that_match(mongo_db) -> None:
    """A batch of thousands of items is one job: all its events, in order, with the first failure
    as its reason; the limit counts only the jobs that match. This guards the two-step query (a
    summary per job, then the listed jobs' events), which keeps every server-side document small.
    It cannot show the failure that query avoids: MongoDB caps a document at 16 MB, some 100,000
    events, and SecantusDB, which these tests run on, has no cap."""
    start = utc_now().replace(microsecond=0) - timedelta(hours=1)  # MongoDB keeps milliseconds
    batch = [
        {
            "job_id": "job-big",
            "media_id": f"{i:064x}",
            "event": "committed",
            "at": start + timedelta(milliseconds=i),
        }
        for i in range(3000)
    ]
    batch[1700] = {
        **batch[1700],
        "event": "item-failed",
        "detail": {"item": "talk-1700", "error": "not UTF-8"},
    }
    batch[2500] = {
        **batch[2500],
        "event": "item-failed",
        "detail": {"item": "talk-2500", "error": "too long"},
    }
    mongo_db[status.JOB_EVENTS].insert_many(random.Random(7).sample(batch, len(batch)))  # not in time order
    for minute in range(1, 4):  # newer jobs that did not fail
        status.record_event(mongo_db, f"job-newer-{minute}", "committed", "a" * 64)
    [big] = jobs.list_jobs(mongo_db, failed_only=True, limit=1)
    assert (big.job_id, big.status, big.reason) == ("job-big", "partial", "talk-1700: not UTF-8")
    assert [e["media_id"] for e in big.events] == [e["media_id"] for e in batch], "in order"
    assert len(big.media_ids) == 3000
    newest = jobs.list_jobs(mongo_db, limit=2)
    assert [j.status for j in newest] == ["committed", "committed"]
    assert all(j.job_id.startswith("job-newer-") for j in newest)
    [scoped] = jobs.list_jobs(mongo_db, media_ids=[batch[2500]["media_id"]])
    assert [e["event"] for e in scoped.events] == ["item-failed"], "an owner sees only its items' events"
    recent = {j.job_id: j for j in jobs.list_jobs(mongo_db, since=batch[2999]["at"])}
    assert [e["media_id"] for e in recent["job-big"].events] == [batch[2999]["media_id"]]


def test_job_events_are_pruned_after_the_retention(mongo_db) -> None:
    record_jobs(mongo_db, "a" * 64)
    assert jobs.prune_events(mongo_db, keep_days=30) == 0
    assert jobs.prune_events(mongo_db, keep_days=30, now=utc_now() + timedelta(days=29)) == 0
    assert jobs.prune_events(mongo_db, keep_days=30, now=utc_now() + timedelta(days=31)) == 8
    assert jobs.list_jobs(mongo_db) == []


def test_failed_and_running_statuses_survive_a_full_reindex(tmp_path: Path, mongo_db) -> None:
    vault = LocalVault(tmp_path / "vault")
    target = IndexTarget(vault, MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "search"))
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    request = IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={})
    media_id = ingest(vault, request, settings).media_id
    reindex.full_rebuild(target)
    # A second AI run of the committed item failed; a new item is stuck mid-ingest.
    status.transition(mongo_db, media_id, "ingesting", "job-rerun")
    status.transition(mongo_db, media_id, "failed", "job-rerun")
    status.transition(mongo_db, NEVER_STORED, "ingesting", "job-new")

    def statuses() -> dict[str, tuple[str, str | None]]:
        return {d["_id"]: (d["status"], d.get("last_job_id")) for d in live_media_collection(mongo_db).find()}

    before = statuses()
    assert before == {media_id: ("failed", "job-rerun"), NEVER_STORED: ("ingesting", "job-new")}
    report = reindex.full_rebuild(target)
    assert report.switched and statuses() == before
    reindex.reindex_media(target, [media_id])  # the same manifest again: the status stays
    assert statuses() == before
    edits.add_edit(vault, media_id, "fix-metadata", {"title": "Inaugural"})
    reindex.incremental(target)  # a newer manifest supersedes the failed run's status
    assert statuses()[media_id] == ("committed", None)
    assert statuses()[NEVER_STORED] == ("ingesting", "job-new")
    reindex.full_rebuild(target)
    assert statuses() == {media_id: ("committed", None), NEVER_STORED: ("ingesting", "job-new")}


def test_jobs_command_lists_filters_and_exports(tmp_path: Path, mongo_url: str) -> None:
    database_name = f"jobs_{tmp_path.name[-16:]}"
    env = {
        "MEDIAVAULT_HOME": str(tmp_path / "home"),
        "MEDIAVAULT_MONGO_MODE": "external",
        "MEDIAVAULT_MONGO_URL": mongo_url,
        "MEDIAVAULT_MONGO_DATABASE": database_name,
    }
    settings = MediavaultSettings(
        home=tmp_path / "home", mongo_mode="external", mongo_url=mongo_url, mongo_database=database_name
    )
    record_jobs(status.connect(settings), "a" * 64)
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "--failed"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "3 job(s)" in listed.output and "job-ok" not in listed.output and "not UTF-8" in listed.output
    as_json = json.loads(runner.invoke(app, ["jobs", "--json", "--limit", "1"], env=env).output)
    assert [j["job_id"] for j in as_json] == ["job-live"]
    exported = tmp_path / "jobs.csv"
    written = runner.invoke(app, ["jobs", "--csv", str(exported)], env=env)
    assert written.exit_code == 0 and "8 event(s) of 5 job(s)" in written.output
    assert len(exported.read_text().splitlines()) == 9
    bad = runner.invoke(app, ["jobs", "--since", "yesterday-ish"], env=env)
    assert bad.exit_code == 2 and "--since" in bad.output and "jobs" in bad.output


@pytest.fixture
def local_site(tmp_path: Path, mongo_url: str):
    web = WebOptions(audit_flush_seconds=0.2)
    vault_url = (tmp_path / "vault").resolve().as_uri()
    with web_site.running_site(tmp_path, vault_url, S3Options(), mongo_url, web, "local") as built:
        yield built


def test_jobs_api_is_scoped_to_the_owner(local_site) -> None:
    site = local_site
    record_jobs(status.connect(site.settings), site.alice_media)
    with (
        site.client("admin") as admin,
        site.client("alice-viewer") as alice,
        site.client("bob-viewer") as bob,
    ):
        everything = admin.get("/api/v1/jobs").json()["items"]
        assert {j["job_id"] for j in everything} == {
            "job-ok",
            "job-bad",
            "job-crash",
            "job-batch",
            "job-live",
        }
        # An owner sees the events of their own media only: a rejected file or a failed batch item
        # never became anyone's media (its name may be another owner's file).
        mine = {j["job_id"]: j["status"] for j in alice.get("/api/v1/jobs").json()["items"]}
        assert mine == {"job-ok": "committed", "job-batch": "committed", "job-live": "running"}
        assert alice.get("/api/v1/jobs", params={"failed": "true"}).json()["items"] == []
        assert bob.get("/api/v1/jobs").json()["items"] == []
        exported = admin.get("/api/v1/jobs", params={"format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        assert (
            "attachment" in exported.headers["content-disposition"] and len(exported.text.splitlines()) == 9
        )
        assert admin.get("/api/v1/jobs", params={"limit": 0}).status_code == 422
        assert site.client().get("/api/v1/jobs").status_code == 401


def test_the_dashboard_lists_every_failed_job_a_rejected_file_too(mongo_db) -> None:
    """The dashboard's recent failures are the failures the jobs list shows, a file refused before
    it stored anything included (named by its file, since it never became a media item)."""
    from mediavault.index.overview import recent_events

    record_jobs(mongo_db, "a" * 64)
    failures = recent_events(mongo_db)["failures"]
    assert {(f["job_id"], f["item"]) for f in failures} == {
        ("job-bad", "a.wav"),
        ("job-crash", None),
        ("job-batch", "=talk-2"),
    }
    failed_jobs = {j.job_id for j in jobs.list_jobs(mongo_db, failed_only=True)}
    assert {f["job_id"] for f in failures} == failed_jobs
    assert recent_events(mongo_db, owner="alice")["failures"] == [], "a refused file belongs to no owner"


def test_no_thread_uses_a_new_database_before_its_indexes_exist(tmp_path: Path, mongo_url: str) -> None:
    """Threads of one process connecting at once to a new database all wait for its indexes. (An
    insert racing the collection an index creates can deadlock the embedded server.)"""
    import threading

    settings = MediavaultSettings(
        home=tmp_path / "home",
        mongo_mode="external",
        mongo_url=mongo_url,
        mongo_database=f"ix_{tmp_path.name[-16:]}",
    )
    start = threading.Barrier(6)
    found: list[set[str]] = []

    def connect() -> None:
        start.wait()
        database = status.connect(settings)
        found.append(set(database[status.JOB_EVENTS].index_information()))

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(found) == 6
    assert all({"job_id_1_at_1", "media_id_1_at_1"} <= names for names in found), found
