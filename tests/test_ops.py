"""Operations: the snapshot behind the Prometheus metrics, /metrics on the web app, the capacity
thresholds, and the capacity-check flow (metrics to a textfile and a Pushgateway on loopback)."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mediavault.index import reindex, status
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle import engine
from mediavault.lifecycle.fixity import FixityReport
from mediavault.lifecycle.mirror import mirror_vault
from mediavault.lifecycle.policy import Policies
from mediavault.ops import capacity, metrics, snapshot
from mediavault.ops.snapshot import FlowRuns, Snapshot
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings, OpsOptions, S3Options, WebOptions
from mediavault.vault import LocalVault
from mediavault.vault.models import utc_now
from mediavault.vault.reports import write_report
from tests import web_site
from tests.conftest import REAL
from tests.helpers import JFK_JSON, JFK_MEDIA, make_wav

GiB = 1024**3


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, through prometheus-client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _ingest(vault, tmp_path: Path, name: str, seconds: float, fixture: Path, owner: str) -> str:
    media = make_wav(tmp_path / f"{name}.wav", seconds, frequency=300 + sum(map(ord, name)) % 300)
    request = IngestRequest(media=str(media), outputs=[OutputSpec(str(fixture))], metadata={"owner": owner})
    return ingest(vault, request, MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")).media_id


def test_the_snapshot_and_its_metrics_describe_the_vault_and_index(vault, mongo_db, tmp_path: Path) -> None:
    target = IndexTarget(vault, MongoIndexStore(mongo_db), TantivySearchIndex(tmp_path / "search"))
    _ingest(vault, tmp_path, "call", 230, REAL / "whisperx_en_call2_nospeaker.json", "support")
    _ingest(vault, tmp_path, "board", 300, REAL / "whisperx_en_schoolboard_short.json", "board")
    reindex.full_rebuild(target)
    _ingest(vault, tmp_path, "late", 230, REAL / "whisperx_fr_call_diarized.json", "support")  # not indexed
    for event in ("committed", "committed", "rejected", "failed"):
        status.record_event(mongo_db, "job-1", event)
    failed = FixityReport()
    failed.mismatches.append({"key": "media/x/original", "expected": "a", "actual": "b"})
    write_report(vault, "verify", failed.as_dict())
    healthy = FixityReport(checked=12)
    write_report(vault, "verify", healthy.as_dict())  # the newest: no problem any more
    lifecycle = engine.run(vault, Policies(), dry_run=False)
    write_report(vault, "lifecycle", lifecycle.summary())

    taken = snapshot.take(vault, mongo_db)
    assert taken.media == 3 and taken.journal_tail == 3 and taken.reindex_lag == 1
    assert taken.fixity_problems == 0
    assert taken.flows["verify"].last_success is not None and taken.flows["mirror"] == FlowRuns()
    text = generate_latest(metrics.snapshot_registry(taken)).decode()
    found = samples(text)
    media_bytes = sum(r["bytes"] for r in taken.storage if r["class"] == "media")
    assert media_bytes > 3 * 230 * 8000 * 2  # three WAVs of at least 230 s at 8 kHz, 16-bit
    assert found[("mediavault_vault_bytes", (("class", "media"), ("tier", "hot")))] == media_bytes
    assert found[("mediavault_vault_objects", (("class", "media"), ("tier", "hot")))] == 3
    assert found[("mediavault_media_items", ())] == 3
    assert found[("mediavault_reindex_lag_records", ())] == 1
    assert found[("mediavault_ingest_events", (("event", "committed"),))] == 2
    assert found[("mediavault_ingest_events", (("event", "rejected"),))] == 1
    assert found[("mediavault_fixity_problems", ())] == 0
    verified = found[("mediavault_last_success_timestamp_seconds", (("flow", "verify"),))]
    assert abs(verified - time.time()) < 300
    assert ("mediavault_last_success_timestamp_seconds", (("flow", "lifecycle"),)) in found
    assert ("mediavault_last_success_timestamp_seconds", (("flow", "mirror"),)) not in found
    assert (("mediavault_local_free_bytes", ()) in found) == isinstance(vault, LocalVault)

    reindex.incremental(target)
    write_report(vault, "verify", failed.as_dict())
    later = snapshot.take(vault, mongo_db)
    assert later.reindex_lag == 0 and later.fixity_problems == 1 and later.mirror_lag is None
    mirror = LocalVault(tmp_path / "mirror")
    assert snapshot.take(vault, mongo_db, mirror).mirror_lag == 3, "an empty mirror lags every record"
    mirror_vault(vault, mirror)
    mirrored = snapshot.take(vault, mongo_db, mirror)
    assert mirrored.mirror_lag == 0
    assert (
        samples(generate_latest(metrics.snapshot_registry(mirrored)).decode())[
            ("mediavault_mirror_lag_records", ())
        ]
        == 0
    )
    assert later.flows["verify"].last_success == taken.flows["verify"].last_success, (
        "a failed run is no success"
    )


def _snapshot(**changes) -> Snapshot:
    now = utc_now()
    fresh = FlowRuns(now, now)
    base = Snapshot(
        storage=[{"class": "media", "tier": "hot", "objects": 1, "bytes": 10 * GiB}],
        journal_tail=10,
        index_checkpoint=10,
        flows={"lifecycle": fresh, "verify": fresh},
        local_free_bytes=100 * GiB,
        local_total_bytes=200 * GiB,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


@pytest.mark.parametrize(
    ("changes", "options", "expected"),
    [
        ({}, {}, []),
        ({"local_free_bytes": 8 * GiB}, {}, [("warning", "free space", "free_warning_bytes")]),
        ({"local_free_bytes": 4 * GiB}, {}, [("critical", "free space", "free_critical_bytes")]),
        ({"local_free_bytes": None}, {"free_critical_bytes": 10**15}, []),  # not a local vault
        ({}, {"max_vault_bytes": 9 * GiB}, [("critical", "vault size", "max_vault_bytes")]),
        ({"journal_tail": 2000}, {}, [("warning", "re-index lag", "max_reindex_lag")]),
        ({"journal_tail": 2000}, {"max_reindex_lag": None}, []),
        ({"mirror_lag": 1001}, {}, [("warning", "mirror lag", "max_mirror_lag")]),
        ({"mirror_lag": 1000}, {}, []),
        (
            {
                "flows": {
                    "lifecycle": FlowRuns(),
                    "verify": FlowRuns(utc_now(), utc_now() - timedelta(days=9)),
                }
            },
            {},
            [
                ("warning", "lifecycle age", "max_hours_since_lifecycle"),
                ("warning", "verify age", "max_hours_since_verify"),
            ],
        ),
    ],
)
def test_capacity_thresholds(changes, options, expected) -> None:
    findings = capacity.check(_snapshot(**changes), OpsOptions(**options), utc_now())
    assert [(f.level, f.check, f.setting) for f in findings] == expected
    for finding in findings:
        assert f"MEDIAVAULT_OPS__{finding.setting.upper()}" in finding.line()


def test_critical_findings_come_first_and_name_their_figures() -> None:
    findings = capacity.check(
        _snapshot(local_free_bytes=3 * GiB, journal_tail=5000), OpsOptions(max_vault_bytes=GiB), utc_now()
    )
    assert [f.level for f in findings] == ["critical", "critical", "warning"]
    message = str(capacity.CapacityExceeded(findings))
    assert (
        "3.0 GiB free" in message
        and "10.0 GiB, over 1.0 GiB" in message
        and "4990 journal records" in message
    )


@pytest.fixture
def local_site(tmp_path: Path, mongo_url: str, monkeypatch):
    monkeypatch.setenv("MEDIAVAULT_OPS__METRICS_OPEN_ON_LOOPBACK", "true")
    web = WebOptions(audit_flush_seconds=0.2)
    vault_url = (tmp_path / "vault").resolve().as_uri()
    with web_site.running_site(tmp_path, vault_url, S3Options(), mongo_url, web, "local") as built:
        yield built


def test_metrics_endpoint_needs_an_admin_token_unless_scraped_directly_on_loopback(local_site) -> None:
    site = local_site
    with site.client() as anonymous, site.client("admin") as admin, site.client("alice-viewer") as viewer:
        direct = anonymous.get("/metrics")
        assert direct.status_code == 200 and direct.headers["content-type"].startswith("text/plain")
        assert samples(direct.text)[("mediavault_media_items", ())] == 2
        # uvicorn resolves X-Forwarded-For from a loopback proxy to the real client; a proxy that
        # only says Forwarded (RFC 7239) leaves the peer on loopback, and is refused all the same.
        for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
            assert anonymous.get("/metrics", headers=header).status_code == 401, header
        assert admin.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
        assert viewer.get("/metrics").status_code == 200, "on loopback, directly: open to anyone"
        proxied = {"X-Forwarded-For": "203.0.113.9"}
        assert viewer.get("/metrics", headers=proxied).status_code == 403, "a token that is not admin"

        before = samples(admin.get("/metrics").text)
        assert viewer.get("/api/v1/search", params={"q": "ask"}).status_code == 200
        assert (
            viewer.get(f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=0-9"}).status_code
            == 206
        )
        after = samples(admin.get("/metrics").text)
        for name in ("mediavault_search_seconds_count", "mediavault_stream_seconds_count"):
            assert after[(name, ())] == before[(name, ())] + 1, name


class Pushgateway(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Pushgateway.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def pushgateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pushgateway)
    Pushgateway.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Pushgateway.received
    finally:
        server.shutdown()


@pytest.mark.usefixtures("prefect_harness")
def test_capacity_flow_publishes_metrics_and_fails_when_a_threshold_is_crossed(
    monkeypatch, tmp_path: Path, mongo_url: str
) -> None:
    from flows.capacity import capacity_flow

    vault = LocalVault(tmp_path / "vault")
    ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={}),
        MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled"),
    )
    write_report(vault, "lifecycle", engine.run(vault, Policies(), dry_run=False).summary())
    textfile = tmp_path / "textfile" / "mediavault.prom"
    for name, value in {
        "HOME": str(tmp_path / "home"),
        "VAULT_URL": vault.url,
        "MONGO_MODE": "external",
        "MONGO_URL": mongo_url,
        "MONGO_DATABASE": f"ops_{tmp_path.name[-20:]}",
        "OPS__METRICS_TEXTFILE": str(textfile),
        "OPS__FREE_CRITICAL_BYTES": str(10**18),  # more than any disk: critical
    }.items():
        monkeypatch.setenv(f"MEDIAVAULT_{name}", value)
    with pushgateway() as (url, received):
        monkeypatch.setenv("MEDIAVAULT_OPS__PUSHGATEWAY_URL", url)
        state = capacity_flow(return_state=True)
    assert state.is_failed(), state
    message = str(state.result(raise_on_failure=False))
    assert "CRITICAL free space" in message and "MEDIAVAULT_OPS__FREE_CRITICAL_BYTES" in message
    assert "no successful verify run on record" in message and "lifecycle" not in message
    assert samples(textfile.read_text())[("mediavault_media_items", ())] == 1
    ((method, path, body),) = received
    assert (method, path) == ("PUT", "/metrics/job/mediavault")
    assert samples(body.decode())[("mediavault_media_items", ())] == 1

    write_report(vault, "verify", FixityReport(checked=1).as_dict())
    monkeypatch.setenv("MEDIAVAULT_OPS__FREE_CRITICAL_BYTES", "0")
    monkeypatch.setenv("MEDIAVAULT_OPS__FREE_WARNING_BYTES", "0")
    monkeypatch.delenv("MEDIAVAULT_OPS__PUSHGATEWAY_URL")
    passed = capacity_flow(return_state=True)
    assert passed.is_completed(), passed
    assert passed.result()["findings"] == [] and passed.result()["published"] == [str(textfile)]
