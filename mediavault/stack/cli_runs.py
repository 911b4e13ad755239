"""Flow runs that a CLI process runs in itself, and the ones such a process left "Running" when
it was killed without a chance to say so (SIGKILL, a lost machine, an out-of-memory kill).

Each run the CLI starts carries two tags: ``mediavault-cli`` and one naming the process (host,
pid, boot and start time). Before it runs a flow, the CLI looks for runs of its host still
running or pending whose process is gone, and marks them Crashed, with their task runs, so the
Prefect UI stops showing them as under way. A pid reused by another process does not keep a run
alive: the process must also have the recorded boot and start time.
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
from typing import Any

from mediavault.stack.processes import process_identity

RUN_TAG = "mediavault-cli"
_OWNER_PREFIX = RUN_TAG + ":"
UNFINISHED = ["RUNNING", "PENDING"]

logger = logging.getLogger(__name__)


def owner_tag(pid: int | None = None) -> str | None:
    """The tag naming this process (or ``pid``): ``mediavault-cli:HOST:PID:BOOT:START``; None
    when the process cannot be identified."""
    import os

    pid = os.getpid() if pid is None else pid
    identity = process_identity(pid)
    if identity is None:
        return None
    host = socket.gethostname().replace(":", "_")
    start = identity.start_time.replace(":", "_").replace(" ", "_")
    return f"{_OWNER_PREFIX}{host}:{pid}:{identity.boot_id[:8]}:{start}"


def process_gone(tag: str) -> bool:
    """Whether the process an owner tag names, on this host, no longer runs. A tag of another
    host, or one that does not parse, is never taken for gone."""
    parts = tag.removeprefix(_OWNER_PREFIX).split(":")
    if not tag.startswith(_OWNER_PREFIX) or len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid, boot, start = parts
    if host != socket.gethostname().replace(":", "_"):
        return False
    identity = process_identity(int(pid))
    return identity is None or (
        identity.boot_id[:8] != boot or identity.start_time.replace(":", "_").replace(" ", "_") != start
    )


def reap_orphaned_runs(api_url: str, request: Any) -> list[str]:
    """Mark Crashed the CLI flow runs (and their unfinished task runs) whose process is gone;
    returns their names. ``request(url, body)`` POSTs JSON and returns the decoded answer."""
    base = api_url.rstrip("/")
    found = request(
        f"{base}/flow_runs/filter",
        {
            "flow_runs": {"tags": {"all_": [RUN_TAG]}, "state": {"type": {"any_": UNFINISHED}}},
            "limit": 200,
        },
    )
    reaped: list[str] = []
    for run in found or []:
        owners = [t for t in run.get("tags") or [] if t.startswith(_OWNER_PREFIX)]
        if len(owners) != 1 or not process_gone(owners[0]):
            continue
        pid = owners[0].split(":")[2]
        message = f"the mediavault CLI process that ran it (pid {pid}) ended without finishing it"
        _crash(request, f"{base}/flow_runs/{urllib.parse.quote(run['id'])}/set_state", message)
        tasks = request(
            f"{base}/task_runs/filter",
            {
                "flow_runs": {"id": {"any_": [run["id"]]}},
                "task_runs": {"state": {"type": {"any_": UNFINISHED}}},
                "limit": 200,
            },
        )
        for task in tasks or []:
            _crash(request, f"{base}/task_runs/{urllib.parse.quote(task['id'])}/set_state", message)
        reaped.append(str(run.get("name") or run["id"]))
        logger.warning("flow run %s marked Crashed: %s", run.get("name"), message)
    return reaped


def _crash(request: Any, url: str, message: str) -> None:
    request(url, {"state": {"type": "CRASHED", "name": "Crashed", "message": message}, "force": True})
