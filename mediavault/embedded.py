"""The embedded MongoDB stand-in: a SecantusDB server (GPL-2.0) run as a separate process.

It is started with ``python -m secantus`` and reached over the wire protocol on loopback; this
project never imports it.
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

from mediavault.errors import ConfigurationError, TransientError

STATE_FILE = "server.json"


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def running(base: Path) -> EmbeddedMongo | None:
    """The server recorded under ``base`` if it is still up."""
    state = base / STATE_FILE
    try:
        info = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return None
    server = EmbeddedMongo(int(info["pid"]), int(info["port"]), Path(info["data_dir"]))
    if _alive(server.pid) and _answers(server.port):
        return server
    return None


def ensure_running(base: Path, startup_timeout: float = 60.0) -> EmbeddedMongo:
    """Start SecantusDB under ``base`` (data, log and state file) unless it already runs."""
    existing = running(base)
    if existing:
        return existing
    base.mkdir(parents=True, exist_ok=True)
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
            server = EmbeddedMongo(process.pid, port, data_dir)
            (base / STATE_FILE).write_text(
                json.dumps({"pid": process.pid, "port": port, "data_dir": str(data_dir)})
            )
            return server
        time.sleep(0.2)
    process.kill()
    raise TransientError(f"the embedded SecantusDB server did not answer within {startup_timeout}s")


def stop(base: Path, timeout: float = 20.0) -> bool:
    """Stop the server recorded under ``base``; False when none was running."""
    state = base / STATE_FILE
    try:
        info = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        return False
    pid = int(info["pid"])
    stopped = False
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    state.unlink(missing_ok=True)
    return stopped
