"""Flow runs that a CLI process runs in itself, and the ones such a process left "Running" when
it was killed without a chance to say so (SIGKILL, an out-of-memory kill, a reboot).

Each run the CLI starts carries three tags: ``mediavault-cli``, one naming the machine
(``mediavault-cli@HOST``, to find them) and one naming the process (machine id, pid namespace,
boot, pid and start time). Before it runs a flow, the CLI looks for this machine's runs still
running or pending whose process is gone, and marks them Crashed, with their task runs, so the
Prefect UI stops showing them as under way.

Only a run it can judge is touched: one of this machine (host name and machine id) and of this
pid namespace (a container sharing the host name has its own pids). A pid reused by a later
process does not keep a run alive, and a process hidden from us (``hidepid``) is taken as alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediavault.stack.processes import process_identity

RUN_TAG = "mediavault-cli"
_OWNER_PREFIX = RUN_TAG + ":"
UNFINISHED = ["RUNNING", "PENDING"]
PAGE = 200
MAX_PAGES = 10

logger = logging.getLogger(__name__)


def _clean(value: str) -> str:
    return value.replace(":", "_").replace(" ", "_")


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            return Path(path).read_text().strip()[:12]
    return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def host_tag() -> str:
    """The tag of every CLI run of this host."""
    return f"{RUN_TAG}@{_clean(socket.gethostname())}"


def owner_tag(pid: int | None = None) -> str | None:
    """``mediavault-cli:HOST:MACHINE:PIDNS:BOOT:PID:START`` for this process (or ``pid``); None
    when the process cannot be identified."""
    pid = os.getpid() if pid is None else pid
    identity = process_identity(pid)
    if identity is None:
        return None
    fields = (socket.gethostname(), _machine_id(), _pid_namespace(), identity.boot_id[:8])
    return _OWNER_PREFIX + ":".join(_clean(f) for f in fields) + f":{pid}:{_clean(identity.start_time)}"


def process_gone(tag: str) -> bool:
    """Whether the process an owner tag names is known to have ended. A tag of another machine or
    pid namespace, or one that does not parse, is never taken for gone."""
    parts = tag.removeprefix(_OWNER_PREFIX).split(":")
    if not tag.startswith(_OWNER_PREFIX) or len(parts) != 6 or not parts[4].isdigit():
        return False
    host, machine, namespace, boot, pid, start = parts
    ours = (_clean(socket.gethostname()), _clean(_machine_id()), _clean(_pid_namespace()))
    if (host, machine, namespace) != ours or not machine or not namespace:
        return False
    me = process_identity(os.getpid())
    if me is None or _clean(me.boot_id[:8]) != boot:
        return me is not None  # this machine (and namespace) rebooted since the run started
    identity = process_identity(int(pid))
    if identity is None:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, but hidden from us (hidepid): no start time to compare
        return False
    return _clean(identity.start_time) != start


def reap_orphaned_runs(api_url: str, request: Callable[[str, Any], Any]) -> list[str]:
    """Mark Crashed this host's CLI flow runs (and their unfinished task runs) whose process is
    gone; returns their names. ``request(url, body)`` POSTs JSON and returns the decoded answer."""
    base = api_url.rstrip("/")
    reaped: list[str] = []
    for page in range(MAX_PAGES):
        found = request(
            f"{base}/flow_runs/filter",
            {
                "flow_runs": {"tags": {"all_": [host_tag()]}, "state": {"type": {"any_": UNFINISHED}}},
                "sort": "START_TIME_ASC",
                "offset": page * PAGE - len(reaped),  # the ones reaped have left the filter
                "limit": PAGE,
            },
        )
        runs = [run for run in found if isinstance(run, dict)] if isinstance(found, list) else []
        for run in runs:
            owners = [t for t in run.get("tags") or [] if t.startswith(_OWNER_PREFIX)]
            if len(owners) == 1 and process_gone(owners[0]):
                _crash_run(request, base, run, owners[0].split(":")[5])
                reaped.append(str(run.get("name") or run["id"]))
        if len(runs) < PAGE:
            break
    return reaped


def _crash_run(request: Callable[[str, Any], Any], base: str, run: dict[str, Any], pid: str) -> None:
    message = f"the mediavault CLI process that ran it (pid {pid}) ended without finishing it"
    run_id = urllib.parse.quote(str(run["id"]))
    _crash(request, f"{base}/flow_runs/{run_id}/set_state", message)
    tasks = request(
        f"{base}/task_runs/filter",
        {
            "flow_runs": {"id": {"any_": [run["id"]]}},
            "task_runs": {"state": {"type": {"any_": UNFINISHED}}},
            "limit": PAGE,
        },
    )
    for task in tasks if isinstance(tasks, list) else []:
        _crash(request, f"{base}/task_runs/{urllib.parse.quote(str(task['id']))}/set_state", message)
    logger.warning("flow run %s marked Crashed: %s", run.get("name"), message)


def _crash(request: Callable[[str, Any], Any], url: str, message: str) -> None:
    request(url, {"state": {"type": "CRASHED", "name": "Crashed", "message": message}, "force": True})
