"""`mediavault up / status / down` for real: a Prefect server and worker, the embedded MongoDB
stand-in and the dashboard as background processes of a home that does not exist yet; a deployment
run triggered through the Prefect REST API the way the UI's Run button does; CLI runs reported to
that server; and nothing left running after `down`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mediavault.stack import processes
from tests.helpers import JFK_JSON, JFK_MEDIA, free_port, make_wav

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def mediavault(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mediavault"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def api(url: str, body: object = None) -> object:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_run(api_url: str, run_id: str, seconds: float = 240) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = api(f"{api_url}/flow_runs/{run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(1)
    raise TimeoutError(f"flow run {run_id} did not finish within {seconds}s")


def stack_env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MEDIAVAULT_HOME": str(home),
        "MEDIAVAULT_STACK__PREFECT_PORT": str(free_port()),
        "MEDIAVAULT_STACK__WEB_PORT": str(free_port()),
    }
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "MEDIAVAULT_VAULT_URL", "MEDIAVAULT_MONGO_URL"):
        env.pop(name, None)
    for name in [k for k in env if k.startswith("PREFECT_LOGGING_")]:  # in-process CLI tests set them
        env.pop(name)
    env["MEDIAVAULT_MONGO_MODE"] = "embedded"
    return env


def alive(pid: int, identity: processes.ProcessIdentity) -> bool:
    return processes.process_identity(pid) == identity


def log_tail(path: str | None, chars: int = 3000) -> str:
    """The end of a service's log, for a failure message."""
    try:
        return Path(path).read_text(errors="replace")[-chars:] if path else "(no log)"
    except OSError as exc:
        return f"({exc})"


def process_report(home: Path, name: str) -> str:
    """What the stack recorded for a service and what runs under that pid now, for a failure
    message: a dead process and a live one whose identity no longer matches call for different
    fixes."""
    record = processes.read_state(home / "stack" / f"{name}.json")
    if record is None:
        return "(no record)"
    pid = int(record["pid"])
    now = processes.process_identity(pid)
    return f"recorded {record.get('identity')}; pid {pid} now: {now}"


def test_up_status_run_from_the_api_and_down(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet" / "home"
    env = stack_env(home)
    started = mediavault(env, "up")
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        lines = started.stdout.strip().splitlines()
        assert lines[-1].startswith("mvt_"), "the first start ends with an admin token alone on its line"
        assert "mediavault down" in started.stdout

        status = json.loads(mediavault(env, "status", "--json").stdout)
        api_url, web_url = status["prefect_api_url"], status["web_url"]
        stopped = [n for n in ("prefect", "worker", "web", "mongo") if not status["services"][n]["running"]]
        assert not stopped, f"not running right after up: {stopped}\n{started.stdout[-2000:]}\n" + "\n".join(
            f"--- {n}: {process_report(home, n)}\n--- {n}.log\n{log_tail(status['services'][n].get('log'))}"
            for n in stopped
        )
        assert api(f"{api_url}/health") is True
        with urllib.request.urlopen(f"{web_url}/healthz", timeout=10) as response:
            assert json.loads(response.read())["ok"] is True
        names = {item["name"] for item in status["deployments"]}
        assert {"ingest/ingest", "reindex/reindex-incremental", "restore/restore"} <= names
        scheduled = next(item for item in status["deployments"] if item["name"] == "verify/verify-weekly")
        assert scheduled["schedules"] == 1 and not scheduled["paused"]

        # the token logs in to the dashboard
        login = urllib.request.Request(
            f"{web_url}/login",
            data=f"token={lines[-1]}".encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(login, timeout=10) as response:
            assert json.loads(response.read())["role"] == "admin"

        # the UI's Run button: create a flow run of the deployment; the worker runs it
        deployment = api(f"{api_url}/deployments/name/ingest/ingest")
        run = api(
            f"{api_url}/deployments/{deployment['id']}/create_flow_run",
            {"parameters": {"media": str(JFK_MEDIA), "outputs": [str(JFK_JSON)], "title": "From the UI"}},
        )
        finished = wait_for_run(api_url, run["id"])
        assert finished["state"]["type"] == "COMPLETED", finished["state"]

        # a CLI command runs against the stack's server: its flow run shows in the UI
        media = make_wav(tmp_path / "tone.wav", 2)
        # found from the stack's record, even without the port settings it was started with
        plain = {k: v for k, v in env.items() if not k.startswith("MEDIAVAULT_STACK__")}
        assert json.loads(mediavault(plain, "status", "--json").stdout)["prefect_api_url"] == api_url
        ingested = mediavault(plain, "ingest", str(media), "--title", "From the CLI")
        assert ingested.returncode == 0, ingested.stderr
        flow_runs = api(
            f"{api_url}/flow_runs/filter",
            {"flows": {"name": {"any_": ["ingest"]}}, "sort": "START_TIME_DESC"},
        )
        assert len(flow_runs) == 2 and {r["state"]["type"] for r in flow_runs} == {"COMPLETED"}
        assert flow_runs[0]["deployment_id"] is None, "the CLI run ran in the CLI's process"

        # a rejected input: one line, exit 2, and its run is in the UI as failed
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"segments": [{"start": 4.2, "end": 3.1, "text": "late"}]}))
        rejected = mediavault(env, "ingest", str(media), "-o", str(bad))
        assert rejected.returncode == 2
        assert rejected.stderr.splitlines() == [
            f"error: {bad}: segments[0].end: ends before it starts (3.1 < start 4.2)"
        ]
        assert "Traceback" not in rejected.stdout + rejected.stderr
        latest = api(
            f"{api_url}/flow_runs/filter",
            {"flows": {"name": {"any_": ["ingest"]}}, "sort": "START_TIME_DESC", "limit": 1},
        )
        assert latest[0]["state"]["type"] == "FAILED" and "segments[0].end" in latest[0]["state"]["message"]
        verbose = mediavault(env, "-v", "ingest", str(media), "-o", str(bad))
        assert verbose.returncode == 2 and "Finished in state Failed" in verbose.stderr, "-v: Prefect's logs"

        status = json.loads(mediavault(env, "status", "--json").stdout)
        ingest_runs = next(item for item in status["deployments"] if item["name"] == "ingest/ingest")
        assert ingest_runs["last_runs"][0]["state"] == "Completed"
        pids = {name: state["pid"] for name, state in status["services"].items()}

        again = mediavault(env, "up")
        assert again.returncode == 0 and "mvt_" not in again.stdout, "a token only on the first start"
        assert again.stdout.count("already running") == 3
        # a part that died is started again, alone
        os.kill(pids["web"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while processes.process_identity(pids["web"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        third = mediavault(env, "up")
        assert third.returncode == 0 and "web: starting" in third.stdout, third.stdout + third.stderr
        after = {
            n: s["pid"] for n, s in json.loads(mediavault(env, "status", "--json").stdout)["services"].items()
        }
        assert after["web"] != pids["web"] and {n: p for n, p in after.items() if n != "web"} == {
            n: p for n, p in pids.items() if n != "web"
        }
    finally:
        tree: dict[int, processes.ProcessIdentity] = {}
        for name in ("prefect", "worker", "web", "mongo"):
            record = processes.read_state(
                home / ("mongo/server.json" if name == "mongo" else f"stack/{name}.json")
            )
            if record:
                pid = int(record["pid"])
                identity = processes.process_identity(pid)
                if identity:
                    tree[pid] = identity
                tree.update(processes.descendants(pid))
        stopped = mediavault(env, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert len(tree) >= 4
    deadline = time.monotonic() + 10
    while any(alive(pid, identity) for pid, identity in tree.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid, identity in tree.items() if alive(pid, identity)], "nothing is left running"
    status = json.loads(mediavault(env, "status", "--json").stdout)
    assert not any(state["running"] for state in status["services"].values())
    assert mediavault(env, "down").stdout.strip() == "nothing was running"


def test_down_never_signals_a_pid_that_is_no_longer_ours(tmp_path: Path) -> None:
    """A record whose pid now belongs to another process (same pid, other start time) is dropped
    without a signal."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = processes.process_identity(bystander.pid)
        assert identity is not None
        state_dir = tmp_path / "home" / "stack"
        state_dir.mkdir(parents=True)
        forged = {**processes.identity_record(identity), "start_time": str(int(identity.start_time) - 1)}
        processes.write_state(state_dir / "worker.json", {"pid": bystander.pid, "identity": forged})
        env = stack_env(tmp_path / "home")
        env["MEDIAVAULT_MONGO_MODE"] = "disabled"
        done = mediavault(env, "down")
        assert done.returncode == 0 and "worker: was not running" in done.stdout
        assert bystander.poll() is None, "the bystander still runs"
        assert not (state_dir / "worker.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_terminate_tree_stops_children_that_left_the_session(tmp_path: Path) -> None:
    """A worker's flow runs start their own session; stopping the worker stops them too."""
    script = (
        "import subprocess, sys, time\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        "child = subprocess.Popen(sleeper, start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    child_identity = processes.process_identity(child)
    record = processes.identity_record(processes.process_identity(parent.pid))
    assert processes.terminate_tree(parent.pid, lambda pid: processes.same_process(pid, record), timeout=10)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(child, child_identity) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child, child_identity)


def test_up_refuses_a_port_another_program_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        env = stack_env(tmp_path / "home")
        env["MEDIAVAULT_STACK__PREFECT_PORT"] = str(holder.getsockname()[1])
        done = mediavault(env, "up", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "is taken by another program" in done.stderr
    assert not (tmp_path / "home" / "stack" / "prefect.json").exists()
