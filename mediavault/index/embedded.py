"""The embedded MongoDB stand-in: a SecantusDB server (GPL-2.0) run as a separate process.

It is started with ``python -m secantus`` and reached over the wire protocol on loopback; this
project never imports it.

Its state file and signals follow ``mediavault.stack.processes``: nothing is signalled unless the
process behind the recorded pid still has the recorded identity. Starting and stopping hold an
exclusive lock on ``server.lock``, so two processes can never start two servers on one data
directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediavault.errors import ConfigurationError, TransientError
from mediavault.stack import processes
from mediavault.stack.processes import process_identity

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"


@dataclass(frozen=True)
class EmbeddedMongo:
    pid: int
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_our_server(pid: int, info: dict[str, Any]) -> bool:
    """Whether ``pid`` is still the server the state file describes."""
    current = process_identity(pid)
    if current is None:
        return False
    recorded = info.get("identity")
    if recorded:
        return processes.same_process(pid, recorded)
    # A state file written before identities were recorded: accept only a SecantusDB command line
    # on this very data directory.
    cmd = current.cmdline
    return (
        "secantus" in cmd
        and "--storage-path" in cmd
        and cmd.index("--storage-path") + 1 < len(cmd)
        and cmd[cmd.index("--storage-path") + 1] == str(info.get("data_dir"))
    )


def _answers(port: int, timeout: float = 2.0) -> bool:
    from pymongo import MongoClient

    client: MongoClient = MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()


def _read_state(base: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((base / STATE_FILE).read_text())
        int(info["pid"]), int(info["port"]), str(info["data_dir"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return info


def _write_state(base: Path, info: dict[str, Any]) -> None:
    processes.write_state(base / STATE_FILE, info)


def _start_lock(base: Path):
    return processes.exclusive_lock(base / LOCK_FILE)


def running(base: Path) -> EmbeddedMongo | None:
    """The server recorded under ``base`` if it is still up and still the process we started."""
    info = _read_state(base)
    if info is None:
        return None
    server = EmbeddedMongo(int(info["pid"]), int(info["port"]), Path(info["data_dir"]))
    if _is_our_server(server.pid, info) and _answers(server.port):
        return server
    return None


def ensure_running(base: Path, startup_timeout: float = 60.0) -> EmbeddedMongo:
    """Start SecantusDB under ``base`` (data, log and state file) unless it already runs."""
    existing = running(base)
    if existing:
        return existing
    with _start_lock(base):
        existing = running(base)  # another process may have started it while we waited
        if existing:
            return existing
        return _start(base, startup_timeout)


def _start(base: Path, startup_timeout: float) -> EmbeddedMongo:
    data_dir = base / "data"
    port = _free_port()
    log = open(base / "secantus.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data_dir),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot start the embedded SecantusDB server: {exc}") from exc
    finally:
        log.close()
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigurationError(
                f"the embedded SecantusDB server exited with {process.returncode}; "
                f"see {base / 'secantus.log'}"
            )
        if _answers(port, timeout=0.5):
            identity = process_identity(process.pid)
            if identity is None:
                break
            _write_state(
                base,
                {
                    "pid": process.pid,
                    "port": port,
                    "data_dir": str(data_dir),
                    "identity": processes.identity_record(identity),
                },
            )
            return EmbeddedMongo(process.pid, port, data_dir)
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise TransientError(f"the embedded SecantusDB server did not answer within {startup_timeout}s")


def _signal_if_ours(pid: int, info: dict[str, Any], signum: int) -> bool:
    return processes.signal_if(pid, lambda candidate: _is_our_server(candidate, info), signum)


def stop(base: Path, timeout: float = 20.0) -> bool:
    """Stop the server recorded under ``base``; False when none was running.

    A state file whose pid now belongs to another process is removed without signalling anything."""
    if not (base / STATE_FILE).exists():
        return False
    with _start_lock(base):
        info = _read_state(base)
        if info is None:
            (base / STATE_FILE).unlink(missing_ok=True)
            return False
        pid = int(info["pid"])
        stopped = _signal_if_ours(pid, info, signal.SIGTERM)
        if stopped:
            deadline = time.monotonic() + timeout
            while _is_our_server(pid, info) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.1)
            if _signal_if_ours(pid, info, signal.SIGKILL):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        (base / STATE_FILE).unlink(missing_ok=True)
        return stopped
