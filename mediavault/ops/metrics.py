"""Prometheus metrics, with the ``prometheus-client`` library.

``SnapshotCollector`` turns a ``Snapshot`` into metric families at scrape time (cached for a while,
since a snapshot reads the manifests). The web app adds latency histograms for search and
streaming. ``registry_for`` builds the registry both the web app and the capacity flow expose."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, push_to_gateway, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediavault.ops.snapshot import Snapshot

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of one snapshot."""
    objects = GaugeMetricFamily(
        "mediavault_vault_objects", "Artifacts in the vault's latest manifests", labels=["class", "tier"]
    )
    stored = GaugeMetricFamily(
        "mediavault_vault_bytes", "Bytes of artifacts by class and tier", labels=["class", "tier"]
    )
    for row in snapshot.storage:
        objects.add_metric([row["class"], row["tier"]], row["objects"])
        stored.add_metric([row["class"], row["tier"]], row["bytes"])
    yield objects
    yield stored
    yield GaugeMetricFamily("mediavault_media_items", "Committed media items", value=snapshot.media)
    events = GaugeMetricFamily(
        "mediavault_ingest_events",
        "Ingest job events kept in the index (committed, rejected, failed, item-failed)",
        labels=["event"],
    )
    for event, count in sorted(snapshot.ingest_events.items()):
        events.add_metric([event], count)
    yield events
    yield GaugeMetricFamily(
        "mediavault_journal_tail", "Newest change journal record", value=snapshot.journal_tail
    )
    if snapshot.reindex_lag is not None:
        yield GaugeMetricFamily(
            "mediavault_reindex_lag_records",
            "Journal records not yet applied to the live index",
            value=snapshot.reindex_lag,
        )
    if snapshot.mirror_lag is not None:
        yield GaugeMetricFamily(
            "mediavault_mirror_lag_records",
            "Journal records not yet in the backup mirror",
            value=snapshot.mirror_lag,
        )
    last_success = GaugeMetricFamily(
        "mediavault_last_success_timestamp_seconds",
        "When each maintenance flow last succeeded (Unix time; absent if never)",
        labels=["flow"],
    )
    last_run = GaugeMetricFamily(
        "mediavault_last_run_timestamp_seconds", "When each maintenance flow last reported", labels=["flow"]
    )
    for flow, runs in sorted(snapshot.flows.items()):
        if runs.last_success is not None:
            last_success.add_metric([flow], runs.last_success.timestamp())
        if runs.last_run is not None:
            last_run.add_metric([flow], runs.last_run.timestamp())
    yield last_success
    yield last_run
    if snapshot.fixity_problems is not None:
        yield GaugeMetricFamily(
            "mediavault_fixity_problems",
            "Checksum mismatches and missing objects in the newest verify report",
            value=snapshot.fixity_problems,
        )
    if snapshot.local_free_bytes is not None:
        yield GaugeMetricFamily(
            "mediavault_local_free_bytes",
            "Free space of the local vault's filesystem",
            value=snapshot.local_free_bytes,
        )
        yield GaugeMetricFamily(
            "mediavault_local_size_bytes",
            "Size of the local vault's filesystem",
            value=snapshot.local_total_bytes,
        )


class SnapshotCollector(Collector):
    """Collects from a fresh snapshot at most every ``cache_seconds``; a failed read is reported
    as ``mediavault_snapshot_up 0`` instead of failing the whole scrape."""

    def __init__(self, take: Callable[[], Snapshot], cache_seconds: float) -> None:
        self._take = take
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, self._take())
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self.snapshot()
        except Exception:
            yield GaugeMetricFamily(
                "mediavault_snapshot_up", "1 if the vault and index could be read", value=0
            )
            return
        yield GaugeMetricFamily("mediavault_snapshot_up", "1 if the vault and index could be read", value=1)
        yield from families(snapshot)


class WebMetrics:
    """The web app's registry: the snapshot plus search and stream latency."""

    def __init__(self, take: Callable[[], Snapshot], cache_seconds: float) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(take, cache_seconds))
        self.search_seconds = Histogram(
            "mediavault_search_seconds", "Search latency", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.stream_seconds = Histogram(
            "mediavault_stream_seconds",
            "Time until a stream request is answered (file opened, or URL presigned)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


def snapshot_registry(snapshot: Snapshot) -> CollectorRegistry:
    """A registry holding one snapshot (for the capacity flow's text file and push)."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot, cache_seconds=float("inf")))
    return registry


def publish(snapshot: Snapshot, textfile: Path | None, pushgateway_url: str | None) -> list[str]:
    """Write the snapshot's metrics to a textfile (atomically) and push them to a Pushgateway, as
    configured; returns where they went."""
    registry = snapshot_registry(snapshot)
    published = []
    if textfile is not None:
        textfile.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(textfile), registry)
        published.append(str(textfile))
    if pushgateway_url:
        push_to_gateway(pushgateway_url, job="mediavault", registry=registry, timeout=30)
        published.append(pushgateway_url)
    return published
