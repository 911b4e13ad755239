"""Background processes that mediavault starts and later stops, identified beyond their pid.

A state file records each process's identity (boot id, process start time, command line) next to
its pid. Nothing is signalled unless the process behind the pid still has that identity, so a
recycled pid is never killed. Starting and stopping hold an exclusive lock, so two commands can
never start the same service twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells one process apart from a later one that reuses its pid."""

    boot_id: str
    start_time: str
    cmdline: list[str]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (the command name, field 2, may hold spaces or ')')."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_identity(pid: int) -> ProcessIdentity | None:
    """The identity of a live process, or None if there is none (zombies count as gone)."""
    if Path("/proc/self/stat").exists():
        fields = _proc_stat_fields(pid)
        try:
            raw_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if fields is None or fields[0] in ("Z", "X"):
            return None
        cmdline = [part.decode(errors="replace") for part in raw_cmdline.split(b"\0")[:-1]]
        return ProcessIdentity(_boot_id(), fields[19], cmdline)
    return _ps_identity(pid)


def _ps_identity(pid: int) -> ProcessIdentity | None:
    """Without /proc (e.g. macOS): ps gives the start time to the second and the command line."""
    done = subprocess.run(
        ["ps", "-ww", "-o", "stat=", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},  # lstart is local time: the same in every shell
    )
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) < 7 or parts[0].startswith("Z"):
        return None
    return ProcessIdentity("", " ".join(parts[1:6]), parts[6:])


def identity_record(identity: ProcessIdentity) -> dict[str, Any]:
    return asdict(identity)


def same_process(pid: int, recorded: dict[str, Any]) -> bool:
    """Whether ``pid`` is still the process whose identity was recorded."""
    current = process_identity(pid)
    return current is not None and (
        current.boot_id == recorded.get("boot_id")
        and current.start_time == recorded.get("start_time")
        and current.cmdline == recorded.get("cmdline")
    )


def descendants(pid: int) -> dict[int, ProcessIdentity]:
    """Every live process below ``pid`` (children that started their own session included)."""
    if not Path("/proc/self/stat").exists():
        return {}
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[int, ProcessIdentity] = {}
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        identity = process_identity(child)
        if identity is not None and child not in found:
            found[child] = identity
            pending.extend(children.get(child, []))
    return found


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_state(path: Path) -> dict[str, Any] | None:
    """A process record (it has a pid), or None."""
    info = read_json(path)
    try:
        int(info["pid"])
    except (KeyError, ValueError, TypeError):
        return None
    return info


def write_state(path: Path, info: dict[str, Any]) -> None:
    """Replace a state file atomically, so a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(info))
    os.replace(temporary, path)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (released when the holder exits, even by a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def signal_if(pid: int, is_ours, signum: int) -> bool:
    """Send ``signum`` to ``pid`` only if ``is_ours(pid)`` still holds; True if sent.

    With a pidfd the check and the signal refer to the same process, so the pid cannot be recycled
    in between."""
    pidfd: int | None = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        except OSError:
            pidfd = None  # kernel without pidfds: check, then signal by pid
    try:
        if not is_ours(pid):
            return False
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate_tree(pid: int, is_ours, timeout: float) -> bool:
    """SIGTERM ``pid`` (if still ours) and everything below it, then SIGKILL what outlives
    ``timeout``. Each descendant is signalled only while it keeps the identity it had when the tree
    was walked. False when ``pid`` was not ours to begin with."""
    tree = descendants(pid)
    if not signal_if(pid, is_ours, signal.SIGTERM):
        return False

    def child_is_ours(child: int) -> bool:
        current = process_identity(child)
        return current is not None and current == tree[child]

    deadline = time.monotonic() + timeout
    signalled: set[int] = set()
    while time.monotonic() < deadline:
        for child in set(tree) - signalled:  # children started while it shut down too
            signal_if(child, child_is_ours, signal.SIGTERM)
            signalled.add(child)
        _reap(pid)
        if not is_ours(pid) and not any(child_is_ours(child) for child in tree):
            return True
        time.sleep(0.1)
        if is_ours(pid):
            tree.update({k: v for k, v in descendants(pid).items() if k not in tree})
    signal_if(pid, is_ours, signal.SIGKILL)
    for child in tree:
        signal_if(child, child_is_ours, signal.SIGKILL)
    _reap(pid)
    return True
