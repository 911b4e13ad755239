"""HTTP API benchmark: `mediavault serve` on the embedded backends (SecantusDB + Tantivy). Not a test.

Builds a synthetic vault of MEDIA x STATEMENTS statements (default 1,000 x 1,000 = 1M) with
bench/reindex.py's builder (the real ingest path) and bench/corpus.py's text (word frequencies
follow Zipf's law; --corpus dense takes reindex.py's 34 words instead, each in a quarter of all
statements: a worst case, not a target), adds one STREAM_GIB WAV (default 2 GiB), indexes
everything, creates an admin token and runs `mediavault serve` on loopback in its own process (so
its memory is its own and the clients do not share its GIL). Then prints, with CLIENTS concurrent
clients (default 8, one thread and one keep-alive connection each):
  * search p50 / p95 of GET /api/v1/search (target p95 < 50 ms) for corpus.py's query mix (words
    and phrases people type; the dense corpus keeps reindex.py's two-word mix), beside the same queries run in
    this process on the same Tantivy index by as many threads (ratio = HTTP / in-process)
  * Range streaming of the WAV: the clients fetch every 8 MiB range of it, and one client reads it
    whole with `Range: bytes=0-`; each throughput as a ratio to reading the same file from disk in
    this process in 1 MiB chunks, the file's pages dropped before each read (POSIX_FADV_DONTNEED)
    (target >= 0.8). The same with the page cache warm, against a cached read (a memory copy; no
    target). Medians of 8 runs each, alternated, each kind first in turn, after one uncounted pass
    of each: a VM's host may still cache what the guest dropped. On a VM whose balloon returns
    freed memory to its host (free page reporting), each cold pass waits --settle seconds
    (default 5) after the eviction, so that every kind starts with its memory in the same state.
    The server sends with sendfile and reads ahead in another thread (mediavault.web.server); for
    reference, the kernel's part alone is measured too: sendfile of the file to a loopback socket
    in this process, no HTTP, no read-ahead.
    Search uses httpx; streaming reads with the standard library's http.client, which costs far
    less CPU per byte
  * the server's RSS before streaming and its peak (VmHWM, reset first) while streaming
    (target flat: rise < 64 MiB)
All data lives in a temporary directory (MEDIAVAULT_BENCH_DIR, default the system temp dir; needs
about 2 x STREAM_GIB free), removed on exit, Ctrl-C included, with the server stopped first.
Usage: python bench/serve.py [--media 1000] [--statements 1000] [--queries 1000] [--clients 8]
                             [--stream-gib 2] [--corpus zipf|dense]
Small run: python bench/serve.py --media 20 --statements 100 --stream-gib 0.1
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from mediavault.access.tokens import TokenStore
from mediavault.backends import index_target, search_from_settings
from mediavault.index import embedded
from mediavault.index.reindex import full_rebuild
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.search import SearchIndex, SearchQuery
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests, vault_from_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # "python bench/serve.py" finds bench.*
from bench.corpus import Corpus, sample_statements
from bench.reindex import WORDS, build_vault, make_whisperx

MIB = 1024 * 1024
RANGE_BYTES = 8 * MIB
DISK_CHUNK = MIB
SEARCH_P95_TARGET_MS = 50.0
STREAM_RATIO_TARGET = 0.8
TURNS = 8  # streaming passes of each kind, a multiple of the 4 kinds
RSS_RISE_TARGET_MIB = 64

Client = TypeVar("Client")
Item = TypeVar("Item")


# --- data set -----------------------------------------------------------------------------------


def write_big_wav(path: Path, size_bytes: int) -> Path:
    """A valid 16-bit stereo 48 kHz WAV of ``size_bytes`` (rounded to whole frames): header and
    zeros, written fast."""
    frame_bytes, header_bytes = 4, 44
    remaining = max(48_000, (size_bytes - header_bytes) // frame_bytes) * frame_bytes
    chunk = bytes(8 * MIB)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48_000)
        # not only zeros, so its content hash is its own whatever else is in the vault
        out.writeframes(b"\x01\x00" * 2)
        remaining -= frame_bytes
        while remaining > 0:
            piece = chunk if remaining >= len(chunk) else bytes(remaining)
            out.writeframes(piece)
            remaining -= len(piece)
    return path


def build(root: Path, args: argparse.Namespace) -> tuple[MediavaultSettings, str, Path, int]:
    """The vault (MEDIA x STATEMENTS plus the big WAV), indexed; returns the settings the server
    uses, the big WAV's media id, its path in the vault and the number of statements indexed."""
    started = time.perf_counter()
    draw = Corpus().statement if args.corpus == "zipf" else None
    vault = build_vault(root, args.media, args.statements, draw=draw)
    settings = MediavaultSettings(home=root / "home", vault_url=vault.url, mongo_mode="embedded")
    ingest_settings = settings.model_copy(update={"mongo_mode": "disabled"})
    wav = write_big_wav(root / "inputs" / "big.wav", int(args.stream_gib * 1024 * MIB))
    transcript = make_whisperx(root / "inputs" / "big.json", 20, random.Random(3), draw=draw)
    big = ingest(
        vault,
        IngestRequest(
            media=str(wav),
            outputs=[OutputSpec(str(transcript))],
            metadata={"title": "long recording", "owner": "team-0"},
        ),
        ingest_settings,
    )
    wav.unlink()
    transcript.unlink()
    manifest = manifests.latest_manifest(vault, big.media_id)
    media_key = next(a.key for a in manifest.artifacts if a.kind == "media")
    built = time.perf_counter() - started
    target = index_target(settings)
    started = time.perf_counter()
    report = full_rebuild(target)
    print(
        f"synthetic vault ({args.corpus} corpus): {args.media} media x {args.statements} statements + a "
        f"{args.stream_gib:g} GiB WAV, built in {built:.0f}s, indexed ({report.statements:,} statements) "
        f"in {time.perf_counter() - started:.0f}s",
        flush=True,
    )
    return settings, big.media_id, vault.local_path(media_key), report.statements


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mediavault_command() -> str:
    beside = Path(sys.executable).with_name("mediavault")
    found = str(beside) if beside.exists() else shutil.which("mediavault")
    if found is None:
        raise SystemExit("the 'mediavault' command is not installed (pip install -e .)")
    return found


@contextmanager
def running_server(settings: MediavaultSettings, log_path: Path) -> Iterator[tuple[str, int]]:
    """`mediavault serve` on a free loopback port; yields (base URL, pid) and stops it after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAVAULT_")}
    env.update(
        MEDIAVAULT_HOME=str(settings.home),
        MEDIAVAULT_VAULT_URL=settings.resolved_vault_url(),
        MEDIAVAULT_MONGO_MODE=settings.mongo_mode,
    )
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [mediavault_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mediavault serve exited with {process.returncode}:\n{tail(log_path)}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mediavault serve did not answer within 60s:\n{tail(log_path)}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # uvicorn's clean shutdown (flushes the audit log)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def reset_peak_rss(pid: int) -> None:
    """Make the process's VmHWM its current VmRSS (Linux: "5" into /proc/<pid>/clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def proc_status_mib(pid: int, field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak RSS) of a process, in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``interval`` seconds until stopped; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.maximum = pid, interval, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.maximum = max(self.maximum, proc_status_mib(self.pid, "VmRSS"))
            self.done.wait(self.interval)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.maximum


# --- load ---------------------------------------------------------------------------------------


def run_clients(clients: list[Client], work: list[Item], one: Callable[[Client, Item], float]) -> list[float]:
    """Each item of ``work`` done once by one of the ``clients``, each in its own thread; returns
    what ``one`` returned, in completion order."""
    pending: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for item in work:
        pending.put(item)
    results: list[float] = []
    errors: list[BaseException] = []

    def worker(client: Client) -> None:
        try:
            while not errors:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                results.append(one(client, item))
        except BaseException as exc:  # raised again in the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def search_queries(
    count: int, corpus: str = "zipf", vault: LocalVault | None = None, seed: int = 11
) -> list[tuple[str, str | None]]:
    """corpus.py's mix, taken from statements of ``vault``; on the dense corpus reindex.py's: two
    words, a two-word phrase every third query, a speaker every fourth."""
    if corpus == "zipf":
        assert vault is not None, "the Zipf corpus's queries come from the vault's statements"
        return Corpus().queries(count, sample_statements(vault, count, seed), seed)
    rng = random.Random(seed)
    queries = []
    for i in range(count):
        words = rng.sample(WORDS, 2)
        text = f'"{words[0]} {words[1]}"' if i % 3 == 0 else " ".join(words)
        queries.append((text, f"SPEAKER_0{i % 6}" if i % 4 == 0 else None))
    return queries


def http_search(client: httpx.Client, query: tuple[str, str | None]) -> float:
    """Milliseconds of one GET /api/v1/search."""
    text, speaker = query
    params = {"q": text} | ({"speaker": speaker} if speaker else {})
    started = time.perf_counter()
    answer = client.get("/api/v1/search", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"search {params}: {answer.status_code} {answer.text[:300]}")
    return elapsed


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


class StreamClient:
    """A keep-alive stdlib HTTP connection that reads bodies into one 1 MiB buffer. httpx costs about
    a core at 500 MiB/s on loopback (a 64 KiB bytes object per chunk), so with it the benchmark would
    measure its own client; this one costs a fraction of that, like curl."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.buffer = memoryview(bytearray(MIB))

    def fetch(self, range_request: tuple[str, int, int]) -> float:
        """GET one byte range, reading the body as it arrives; returns its size."""
        path, start, end = range_request
        headers = self.headers | {"Range": f"bytes={start}-{end}"}
        try:
            self.connection.request("GET", path, headers=headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the connection while it was idle (keep-alive timeout): a new one,
            # as browsers and curl do.
            self.connection.close()
            self.connection.request("GET", path, headers=headers)
            answer = self.connection.getresponse()
        if answer.status != 206:
            raise RuntimeError(f"range {start}-{end}: {answer.status} {answer.read()[:300]!r}")
        received = 0
        while count := answer.readinto(self.buffer):
            received += count
        if received != end - start + 1:
            raise RuntimeError(f"range {start}-{end}: got {received} bytes")
        return float(received)

    def close(self) -> None:
        self.connection.close()


def evict_from_page_cache(path: Path) -> None:
    """Drop the file's cached pages (POSIX_FADV_DONTNEED; clean pages go), so the next read of it,
    by this process or the server, comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def host_takes_back_freed_memory() -> bool:
    """Whether this is a VM whose balloon reports freed memory to the host (virtio device 5 with
    feature bit 5, VIRTIO_BALLOON_F_REPORTING): the host unmaps those pages, and touching them again
    costs the guest a fault each, roughly two seconds after they were freed."""
    for device in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            kind = (device / "device").read_text().strip()
            features = (device / "features").read_text().strip()
        except OSError:
            continue
        if kind == "0x0005" and len(features) > 5 and features[5] == "1":
            return True
    return False


def read_from_disk(path: Path) -> float:
    """Seconds to read ``path`` in 1 MiB chunks."""
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as source:
        while source.read(DISK_CHUNK):
            pass
    return time.perf_counter() - started


def sendfile_over_loopback(path: Path) -> None:
    """The kernel's part of streaming alone: ``sendfile`` the whole file to a loopback TCP socket
    that a thread drains into a 1 MiB buffer, as StreamClient does. No HTTP, no server process."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()

    def drain() -> None:
        buffer = bytearray(MIB)
        while receiver.recv_into(buffer):
            pass

    drainer = threading.Thread(target=drain)
    drainer.start()
    with sender, receiver, open(path, "rb") as source:
        size, offset = os.fstat(source.fileno()).st_size, 0
        while offset < size:
            offset += os.sendfile(sender.fileno(), source.fileno(), offset, size - offset)
        sender.shutdown(socket.SHUT_WR)
        drainer.join()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --- main ---------------------------------------------------------------------------------------


def measure_search(
    url: str, token: str, settings: MediavaultSettings, statements: int, args: argparse.Namespace
) -> list[str]:
    """p50 / p95 over HTTP with CLIENTS clients, then of the same queries in this process."""
    vault = vault_from_settings(settings)
    assert isinstance(vault, LocalVault)
    queries = search_queries(args.queries, args.corpus, vault)
    warm_up = search_queries(4 * args.clients, args.corpus, vault, seed=12)
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
            )
            for _ in range(args.clients)
        ]
        run_clients(clients, warm_up, http_search)
        started = time.perf_counter()
        p50, p95 = percentiles(run_clients(clients, queries, http_search))
        rate = len(queries) / (time.perf_counter() - started)

    matched: list[int] = []

    def direct_search(index: SearchIndex, query: tuple[str, str | None]) -> float:
        started = time.perf_counter()
        result = index.search(SearchQuery(text=query[0], speaker=query[1]))
        result.model_dump_json()
        elapsed = (time.perf_counter() - started) * 1000
        matched.append(result.total)
        return elapsed

    indexes = [search_from_settings(settings)] * args.clients
    run_clients(indexes, warm_up, direct_search)
    matched.clear()
    direct_p50, direct_p95 = percentiles(run_clients(indexes, queries, direct_search))
    matched.sort()
    return [
        f"search over HTTP, {statements:,} statements ({args.corpus} corpus), {args.clients} clients, "
        f"{len(queries)} queries ({rate:.0f} q/s): "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p95 < {SEARCH_P95_TARGET_MS:.0f} ms) "
        f"{verdict(p95 < SEARCH_P95_TARGET_MS)}",
        f"  baseline: the same queries in this process, {args.clients} threads: p50 {direct_p50:.1f} ms, "
        f"p95 {direct_p95:.1f} ms; HTTP / in-process: p50 {p50 / direct_p50:.2f}, p95 {p95 / direct_p95:.2f}",
        f"  statements matched per query: median {statistics.median(matched):,.0f}, "
        f"p95 {matched[int(0.95 * (len(matched) - 1))]:,}, max {matched[-1]:,}",
    ]


def measure_streaming(
    url: str, token: str, pid: int, media_id: str, path: Path, args: argparse.Namespace
) -> list[str]:
    """Range and whole reads of the big WAV over HTTP against reading it in this process, from
    disk (the target) and from the page cache; the server's RSS before and its peak."""
    size = path.stat().st_size
    stream_path = f"/api/v1/media/{media_id}/stream"
    ranges = [
        (stream_path, start, min(start + RANGE_BYTES, size) - 1) for start in range(0, size, RANGE_BYTES)
    ]
    whole = [(stream_path, 0, size - 1)]
    with ExitStack() as stack:
        clients = [stack.enter_context(closing(StreamClient(url, token))) for _ in range(args.clients)]
        with open(path, "rb") as original:  # warms the server's stream path up, and checks it
            first = httpx.get(
                f"{url}{stream_path}", headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-65535"}
            )
            if first.status_code != 206 or first.content != original.read(65536):
                raise RuntimeError(f"the stream does not serve the file: {first.status_code}")
        reset_peak_rss(pid)  # the peak below is the streaming's own, not the search's
        rss_before = proc_status_mib(pid, "VmRSS")
        sampler = RssSampler(pid)
        sampler.start()
        rates: dict[str, list[float]] = {}

        def rate_of(label: str, cold: bool, read: Callable[[], None]) -> Callable[..., None]:
            def run(counted: bool = True) -> None:
                if cold:
                    evict_from_page_cache(path)
                    time.sleep(args.settle)
                else:
                    read_from_disk(path)  # page cache warm for both sides
                started = time.perf_counter()
                read()
                if counted:
                    rates.setdefault(label, []).append(size / MIB / (time.perf_counter() - started))

            return run

        def over_http(work: list[tuple[str, int, int]], count: int) -> Callable[[], None]:
            return lambda: run_clients(clients[:count], work, StreamClient.fetch)

        def in_process() -> None:
            read_from_disk(path)

        # Each kind TURNS times, alternated, each going first equally often: a virtual disk's host
        # may cache what the guest dropped, which favours whichever side reads second. One pass of
        # each kind first, not counted: the first cold reads of a run were the slowest (the host's
        # cache fills), and whichever kind came first took that penalty.
        for cold in (True, False):
            state = "cold" if cold else "warm"
            runs = [
                rate_of(f"{state} disk", cold, in_process),
                rate_of(f"{state} ranges", cold, over_http(ranges, args.clients)),
                rate_of(f"{state} whole", cold, over_http(whole, 1)),
                rate_of(f"{state} sendfile", cold, lambda: sendfile_over_loopback(path)),
            ]
            for run in runs:
                run(counted=False)
            for turn in range(TURNS):
                for run in runs[turn % len(runs) :] + runs[: turn % len(runs)]:
                    run()
        sampled = sampler.stop()
        rss_after = proc_status_mib(pid, "VmHWM")
    median = {label: statistics.median(values) for label, values in rates.items()}

    def runs_of(label: str) -> str:
        return ", ".join(f"{rate:.0f}" for rate in rates[label])

    lines = []
    kinds = (
        (f"{args.clients} clients, {len(ranges)} Range requests of {RANGE_BYTES // MIB} MiB", "ranges"),
        ("1 client, one 'Range: bytes=0-' read", "whole"),
    )
    for label, kind in kinds:
        rate, ratio = median[f"cold {kind}"], median[f"cold {kind}"] / median["cold disk"]
        lines.append(
            f"stream {size / MIB:.0f} MiB over HTTP from disk (page cache dropped), {label}: "
            f"{rate:.0f} MiB/s = {ratio:.2f} x reading it from disk (target >= {STREAM_RATIO_TARGET}) "
            f"{verdict(ratio >= STREAM_RATIO_TARGET)} (runs {runs_of(f'cold {kind}')})"
        )
    lines.append(
        f"  baseline: the same file read from disk in this process (page cache dropped), 1 MiB chunks: "
        f"{median['cold disk']:.0f} MiB/s; medians of {TURNS} runs each, alternated "
        f"(runs {runs_of('cold disk')})"
    )
    lines.append(
        f"  each cold pass started {args.settle:g} s after the eviction"
        + (
            " (this VM's balloon returns freed memory to its host about 2 s after it is freed; a read "
            "that starts sooner reuses pages still mapped and runs up to 3x faster, so without the "
            "wait the fastest kind was also the one least charged for refaults)"
            if args.settle
            else ""
        )
    )
    lines.append(
        f"  the kernel alone: sendfile of the file to a loopback socket in this process, no HTTP: "
        f"{median['cold sendfile']:.0f} MiB/s = {median['cold sendfile'] / median['cold disk']:.2f} x "
        f"the disk read (runs {runs_of('cold sendfile')}); the whole read over HTTP = "
        f"{median['cold whole'] / median['cold sendfile']:.2f} x this"
    )
    for label, kind in kinds:
        rate, ratio = median[f"warm {kind}"], median[f"warm {kind}"] / median["warm disk"]
        lines.append(
            f"stream {size / MIB:.0f} MiB over HTTP from the page cache, {label}: {rate:.0f} MiB/s "
            f"= {ratio:.2f} x the cached read (no target: see below)"
        )
    lines.append(
        f"  baseline: the same file read in this process from the page cache: "
        f"{median['warm disk']:.0f} MiB/s, a memory copy; over loopback HTTP the client and the "
        "server share the cores with the kernel's TCP work"
    )
    rise = rss_after - rss_before
    lines.append(
        f"server RSS before streaming {rss_before:.0f} MiB, peak while streaming {rss_after:.0f} MiB "
        f"(VmHWM; max sampled VmRSS {sampled:.0f} MiB): rise {rise:.0f} MiB, peak/baseline "
        f"{rss_after / rss_before:.2f} (target: flat, rise < {RSS_RISE_TARGET_MIB} MiB) "
        f"{verdict(rise < RSS_RISE_TARGET_MIB)}"
    )
    return lines


def bench(root: Path, args: argparse.Namespace) -> None:
    settings, media_id, path, statements = build(root, args)
    token = TokenStore(vault_from_settings(settings)).create("*", "admin", name="bench")[1]
    with running_server(settings, root / "serve.log") as (url, pid):
        lines = measure_search(url, token, settings, statements, args)
        lines += measure_streaming(url, token, pid, media_id, path, args)
    print("\n".join(lines))


def interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=int, default=1000)
    parser.add_argument("--statements", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--stream-gib", type=float, default=2.0, help="size of the streamed WAV")
    parser.add_argument(
        "--corpus", choices=["zipf", "dense"], default="zipf", help="the statements' text (see above)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds each cold streaming pass waits after dropping the file's pages (default 5 on a "
        "VM whose balloon reports freed memory to its host, else 0)",
    )
    args = parser.parse_args()
    if args.settle is None:
        args.settle = 5.0 if host_takes_back_freed_memory() else 0.0
    signal.signal(signal.SIGTERM, interrupted)  # unwinds like Ctrl-C: servers stopped, data removed
    with tempfile.TemporaryDirectory(dir=os.environ.get("MEDIAVAULT_BENCH_DIR")) as tmp:
        root = Path(tmp)
        try:
            bench(root, args)
        finally:
            embedded.stop(root / "home" / "mongo")


if __name__ == "__main__":
    main()
