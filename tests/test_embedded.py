"""The embedded SecantusDB launcher with real processes: pid identity and the start lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mediavault.index import embedded
from tests.conftest import hardening_scale

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated live process whose pid a stale state file may name."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def write_state(base: Path, info: dict) -> None:
    base.mkdir(parents=True, exist_ok=True)
    (base / embedded.STATE_FILE).write_text(json.dumps(info))


def identity_of(pid: int) -> dict:
    identity = embedded.process_identity(pid)
    assert identity is not None
    return {"boot_id": identity.boot_id, "start_time": identity.start_time, "cmdline": identity.cmdline}


def servers_on(data_dir: Path) -> list[int]:
    """Pids of SecantusDB processes serving ``data_dir`` (a path unique to the test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        identity = embedded.process_identity(int(entry.name))
        if identity and "secantus" in identity.cmdline and str(data_dir) in identity.cmdline:
            found.append(int(entry.name))
    return found


def assert_alive(process: subprocess.Popen) -> None:
    time.sleep(0.2)
    assert process.poll() is None, f"the unrelated process was killed ({process.returncode})"


def test_stop_spares_an_unrelated_process_with_the_recorded_pid(tmp_path: Path, bystander) -> None:
    base = tmp_path / "mongo"
    recycled = identity_of(bystander.pid)
    recycled["start_time"] = str(int(recycled["start_time"]) - 1)  # same pid and command, started later
    write_state(base, {"pid": bystander.pid, "port": 1, "data_dir": str(base / "data"), "identity": recycled})
    assert embedded.running(base) is None
    assert embedded.stop(base) is False
    assert_alive(bystander)
    assert not (base / embedded.STATE_FILE).exists(), "the stale state file is cleared"


def test_stop_spares_an_unrelated_process_named_by_an_old_state_file(tmp_path: Path, bystander) -> None:
    base = tmp_path / "mongo"
    write_state(base, {"pid": bystander.pid, "port": 1, "data_dir": str(base / "data")})
    assert embedded.stop(base) is False
    assert_alive(bystander)


def test_running_rejects_a_live_port_behind_a_recycled_pid(tmp_path: Path, mongo_url: str, bystander) -> None:
    """The port answers and the pid is alive, but the pid is not the server: not ours."""
    if os.environ.get("MEDIAVAULT_TEST_MONGO_URL"):
        pytest.skip("needs the embedded server")
    base = tmp_path / "mongo"
    port = urlparse(mongo_url).port
    write_state(base, {"pid": bystander.pid, "port": port, "data_dir": str(base / "data")})
    assert embedded.running(base) is None


def test_start_running_stop_round_trip_checks_identity(tmp_path: Path) -> None:
    base = tmp_path / "mongo"
    server = embedded.ensure_running(base)
    try:
        state = json.loads((base / embedded.STATE_FILE).read_text())
        assert state["identity"] == identity_of(server.pid)
        assert embedded.running(base) == server
    finally:
        assert embedded.stop(base) is True
    assert embedded.process_identity(server.pid) is None
    assert embedded.running(base) is None


STARTER = """
import json, sys, time
from pathlib import Path
from mediavault.index import embedded
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
server = embedded.ensure_running(Path(sys.argv[1]))
print(json.dumps({"pid": server.pid, "port": server.port}))
"""


@pytest.mark.hardening
def test_concurrent_starts_from_processes_share_one_server(tmp_path: Path) -> None:
    base = tmp_path / "mongo"
    go = tmp_path / "go"
    count = int(hardening_scale(2, 6))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(base), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(1.0)  # let every starter import and wait at the barrier
        go.touch()
        results = []
        for starter in starters:
            out, err = starter.communicate(timeout=120)
            assert starter.returncode == 0, err
            results.append(json.loads(out))
        assert len({(r["pid"], r["port"]) for r in results}) == 1, results
        assert servers_on(base / "data") == [results[0]["pid"]]
    finally:
        for starter in starters:
            if starter.poll() is None:
                starter.kill()
        embedded.stop(base)
        for pid in servers_on(base / "data"):  # only servers this test started (unique data dir)
            os.kill(pid, signal.SIGKILL)
