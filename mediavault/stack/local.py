"""``mediavault up / down / status``: a Prefect server with its UI, the embedded MongoDB stand-in,
the process work pool with a worker, the deployments of ``prefect.yaml`` and the dashboard, all
under ``$MEDIAVAULT_HOME``.

Each background process is recorded in ``stack/<name>.json`` with its identity (see
``mediavault.stack.processes``); ``down`` signals only processes that still have it. Prefect is
driven through its CLI and REST API, so this module never imports Prefect.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mediavault.errors import ConfigurationError, TransientError
from mediavault.index import embedded
from mediavault.settings import MediavaultSettings
from mediavault.stack import processes

SERVICES = ("prefect", "worker", "web")
PREFECT = (sys.executable, "-m", "prefect")
# Prefect settings every part of the stack gets: nothing tries to reach the internet.
QUIET_PREFECT = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
}

# What the CLI sets for its own quiet console (mediavault.cli.QUIET_PREFECT_LOGGING).
QUIET_CLI_LOGGING = ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL")

Say = Callable[[str], None]


@dataclass
class ServiceState:
    name: str
    running: bool
    pid: int | None = None
    url: str | None = None
    since: str | None = None
    log: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "name"}


@dataclass
class StackStatus:
    home: Path
    prefect_api_url: str
    prefect_ui_url: str
    web_url: str
    services: dict[str, ServiceState]
    deployments: list[dict[str, Any]] = field(default_factory=list)
    admin_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "prefect_api_url": self.prefect_api_url,
            "prefect_ui_url": self.prefect_ui_url,
            "web_url": self.web_url,
            "services": {name: state.as_json() for name, state in self.services.items()},
            "deployments": self.deployments,
        }


class LocalStack:
    """The processes of one ``$MEDIAVAULT_HOME``."""

    def __init__(self, settings: MediavaultSettings) -> None:
        self.settings = settings
        self.home = settings.home.expanduser().resolve()
        self.state_dir = self.home / "stack"
        self.log_dir = self.home / "logs"
        options = settings.stack
        self.prefect_url = f"http://{options.host}:{options.prefect_port}"
        self.api_url = f"{self.prefect_url}/api"
        self.web_url = f"http://{options.host}:{options.web_port}"
        # A running part answers where it was started, whatever the settings say now.
        prefect, web = self.record("prefect"), self.record("web")
        self.prefect_running = prefect is not None
        if prefect and prefect.get("url"):
            self.prefect_url = prefect["url"]
            self.api_url = f"{self.prefect_url}/api"
        if web and web.get("url"):
            self.web_url = web["url"]

    # --- records -------------------------------------------------------------------------------

    def _state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def record(self, name: str) -> dict[str, Any] | None:
        """The recorded process of a service while it still runs (its identity unchanged)."""
        info = processes.read_state(self._state_file(name))
        if info is None or not processes.same_process(int(info["pid"]), info.get("identity") or {}):
            return None
        return info

    def _is_ours(self, info: dict[str, Any]) -> Callable[[int], bool]:
        return lambda pid: processes.same_process(pid, info.get("identity") or {})

    def service_states(self) -> dict[str, ServiceState]:
        states: dict[str, ServiceState] = {}
        for name in SERVICES:
            info = self.record(name)
            states[name] = (
                ServiceState(
                    name, True, int(info["pid"]), info.get("url"), info.get("since"), info.get("log")
                )
                if info
                else ServiceState(name, False, log=str(self.log_dir / f"{name}.log"))
            )
        if self._embedded_mongo():
            server = embedded.running(self.home / "mongo")
            states["mongo"] = (
                ServiceState(
                    "mongo", True, server.pid, server.url, log=str(self.home / "mongo" / "secantus.log")
                )
                if server
                else ServiceState("mongo", False)
            )
        return states

    def _embedded_mongo(self) -> bool:
        return self.settings.mongo_mode == "embedded" and self.settings.mongo_url is None

    # --- environment ---------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        """The environment of every process of the stack: this one's, pointed at the stack."""
        env = dict(os.environ)
        for name in QUIET_CLI_LOGGING:  # the CLI's own quiet console: the stack logs everything
            env.pop(name, None)
        env.update(QUIET_PREFECT)
        env["MEDIAVAULT_HOME"] = str(self.home)
        env["PREFECT_HOME"] = env.get("PREFECT_HOME") or str(self.home / "prefect")
        env["PREFECT_API_URL"] = self.api_url
        env["PREFECT_UI_URL"] = self.prefect_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        root = code_root()
        if root is not None:
            env["MEDIAVAULT_CODE_DIR"] = str(root)
        return env

    # --- up ------------------------------------------------------------------------------------

    def up(self, say: Say, first_token: bool = True) -> StackStatus:
        """Start every part that is not running yet and wait until each answers. Idempotent.
        With ``first_token``, a home without any API token gets an admin token (returned once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        Path(self.child_env()["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
        timeout = self.settings.stack.startup_timeout_seconds
        with processes.exclusive_lock(self.state_dir / "stack.lock"):
            host = self.settings.stack.host
            self._start(
                "prefect",
                [
                    *PREFECT,
                    "server",
                    "start",
                    "--host",
                    host,
                    "--port",
                    str(self.settings.stack.prefect_port),
                ],
                url=self.prefect_url,
                port=self.settings.stack.prefect_port,
                ready=lambda: _api(f"{self.api_url}/health") is True,
                timeout=timeout,
                say=say,
            )
            if self._embedded_mongo():
                server = embedded.ensure_running(self.home / "mongo")
                say(f"MongoDB stand-in (SecantusDB) at {server.url}")
            self._ensure_work_pool(say)
            self._ensure_deployments(say)
            pool = self.settings.stack.work_pool
            worker = f"mediavault-{hashlib.sha256(str(self.home).encode()).hexdigest()[:10]}"
            since = datetime.now(UTC)
            self._start(
                "worker",
                [*PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", worker],
                url=None,
                port=None,
                ready=lambda: self._worker_online(pool, worker, since),
                timeout=timeout,
                say=say,
            )
            self._start(
                "web",
                [
                    sys.executable,
                    "-m",
                    "mediavault",
                    "serve",
                    "--host",
                    host,
                    "--port",
                    str(self.settings.stack.web_port),
                ],
                url=self.web_url,
                port=self.settings.stack.web_port,
                ready=lambda: _answers(f"{self.web_url}/healthz"),
                timeout=timeout,
                say=say,
            )
            token = self._first_admin_token() if first_token else None
        status = self.status(runs_per_deployment=0)
        status.admin_token = token
        return status

    def _start(
        self,
        name: str,
        argv: list[str],
        *,
        url: str | None,
        port: int | None,
        ready: Callable[[], bool],
        timeout: float,
        say: Say,
    ) -> None:
        existing = self.record(name)
        if existing is not None:
            if _wait(ready, timeout):
                say(f"{name}: already running (pid {existing['pid']})")
                return
            raise TransientError(
                f"{name} (pid {existing['pid']}) runs but does not answer; see {existing.get('log')}, "
                "or 'mediavault down' and 'mediavault up' again"
            )
        if port is not None and _port_taken(self.settings.stack.host, port):
            raise ConfigurationError(
                f"{name}: port {port} on {self.settings.stack.host} is taken by another program; "
                f"stop it, or choose another port with MEDIAVAULT_STACK__{name.upper()}_PORT"
            )
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    argv,
                    env=self.child_env(),
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ConfigurationError(f"{name}: cannot start {argv[0]}: {exc.strerror}") from exc
        identity = processes.process_identity(process.pid)
        if identity is None:
            raise TransientError(f"{name} exited at once; see {log_path}")
        info = {
            "pid": process.pid,
            "identity": processes.identity_record(identity),
            "url": url,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "log": str(log_path),
            "argv": argv,
        }
        processes.write_state(self._state_file(name), info)
        say(f"{name}: starting (pid {process.pid}) ...")
        if not _wait(ready, timeout, alive=lambda: process.poll() is None):
            code = process.poll()  # before _stop, which reaps the process itself
            self._stop(name, info)
            reason = f"exited with {code}" if code is not None else f"did not answer within {timeout:.0f}s"
            raise TransientError(f"{name} {reason}; see {log_path}")

    def _worker_online(self, pool: str, name: str, since: datetime) -> bool:
        """Whether this stack's worker (by its name) has sent a heartbeat since ``since``: the
        pool's own status would also count another worker, or a heartbeat of the previous one."""
        workers = _api(f"{self.api_url}/work_pools/{pool}/workers/filter", {}) or []
        for worker in workers:
            beat = worker.get("last_heartbeat_time")
            if (
                worker.get("name") == name
                and worker.get("status") == "ONLINE"
                and beat
                and datetime.fromisoformat(beat.replace("Z", "+00:00")) >= since - timedelta(seconds=1)
            ):
                return True
        return False

    def _ensure_work_pool(self, say: Say) -> None:
        pool = self.settings.stack.work_pool
        if _api(f"{self.api_url}/work_pools/{pool}") is not None:
            return
        self._prefect_cli(["work-pool", "create", pool, "--type", "process"], "work pool")
        say(f"work pool '{pool}' created")

    def _ensure_deployments(self, say: Say) -> None:
        """Register every deployment of prefect.yaml when one is missing or the file changed."""
        root = code_root()
        if root is None:
            say("deployments: prefect.yaml not found beside the flows; none registered")
            return
        wanted = deployment_names(root / "prefect.yaml")
        digest = hashlib.sha256((root / "prefect.yaml").read_bytes() + str(root).encode()).hexdigest()
        marker = self.state_dir / "deployments.json"
        recorded = processes.read_json(marker)
        present = {deployment["name"] for deployment in self.deployments()}
        if recorded.get("digest") == digest and recorded.get("api") == self.api_url and wanted <= present:
            return
        say(f"deployments: registering {len(wanted)} from {root / 'prefect.yaml'} ...")
        self._prefect_cli(["--no-prompt", "deploy", "--all"], "deploy", cwd=root)
        processes.write_state(marker, {"digest": digest, "api": self.api_url})

    def _prefect_cli(self, args: list[str], what: str, cwd: Path | None = None) -> None:
        log_path = self.log_dir / "prefect-cli.log"
        with open(log_path, "ab") as log:
            done = subprocess.run(
                [*PREFECT, *args],
                env=self.child_env(),
                cwd=cwd or self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            )
        if done.returncode != 0:
            raise TransientError(f"prefect {what} failed (exit {done.returncode}); see {log_path}")

    def _first_admin_token(self) -> str | None:
        """On the first start, an admin token for the dashboard (shown once)."""
        from mediavault.access.tokens import TokenStore, any_tokens
        from mediavault.vault import vault_from_settings

        store = vault_from_settings(self.settings)
        if any_tokens(store):
            return None
        return TokenStore(store).create("*", "admin", name="stack-admin")[1]

    # --- down ----------------------------------------------------------------------------------

    def down(self, say: Say, timeout: float = 30.0) -> list[str]:
        """Stop every part, each by its recorded pid and only while it is still ours."""
        stopped: list[str] = []
        with processes.exclusive_lock(self.state_dir / "stack.lock"):
            for name in ("worker", "web", "prefect"):
                info = processes.read_state(self._state_file(name))
                if info is None:
                    continue
                if self._stop(name, info, timeout):
                    stopped.append(name)
                    say(f"{name}: stopped (pid {info['pid']})")
                else:
                    say(f"{name}: was not running")
            if self._embedded_mongo() and embedded.stop(self.home / "mongo"):
                stopped.append("mongo")
                say("mongo: stopped")
        return stopped

    def _stop(self, name: str, info: dict[str, Any], timeout: float = 30.0) -> bool:
        stopped = processes.terminate_tree(int(info["pid"]), self._is_ours(info), timeout)
        self._state_file(name).unlink(missing_ok=True)
        return stopped

    # --- status --------------------------------------------------------------------------------

    def status(self, runs_per_deployment: int = 3) -> StackStatus:
        services = self.service_states()
        deployments: list[dict[str, Any]] = []
        if services["prefect"].running:
            deployments = self.deployment_report(runs_per_deployment)
        return StackStatus(self.home, self.api_url, self.prefect_url, self.web_url, services, deployments)

    def deployments(self) -> list[dict[str, Any]]:
        found = _api(f"{self.api_url}/deployments/filter", {"limit": 200}) or []
        flows = _api(f"{self.api_url}/flows/filter", {"limit": 200}) or []
        flow_names = {flow["id"]: flow["name"] for flow in flows}
        return [{**d, "flow_name": flow_names.get(d["flow_id"], "?")} for d in found]

    def deployment_report(self, runs_per_deployment: int) -> list[dict[str, Any]]:
        """Each deployment with its schedule state and last runs (newest first)."""
        report = []
        for deployment in sorted(self.deployments(), key=lambda d: (d["flow_name"], d["name"])):
            runs = []
            if runs_per_deployment:
                found = _api(
                    f"{self.api_url}/flow_runs/filter",
                    {
                        "deployments": {"id": {"any_": [deployment["id"]]}},
                        "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}},
                        "sort": "START_TIME_DESC",
                        "limit": runs_per_deployment,
                    },
                )
                runs = [
                    {
                        "name": run["name"],
                        "state": (run.get("state") or {}).get("name") or run.get("state_name"),
                        "start_time": run.get("start_time"),
                        "url": f"{self.prefect_url}/runs/flow-run/{run['id']}",
                    }
                    for run in found or []
                ]
            report.append(
                {
                    "name": f"{deployment['flow_name']}/{deployment['name']}",
                    "schedules": len(deployment.get("schedules") or []),
                    "paused": bool(deployment.get("paused")),
                    "last_runs": runs,
                }
            )
        return report


def api_url_if_up(settings: MediavaultSettings) -> str | None:
    """The Prefect API of this home's running stack, from its record alone (no network)."""
    stack = LocalStack(settings)
    return stack.api_url if stack.prefect_running else None


def code_root() -> Path | None:
    """The project directory that holds prefect.yaml beside the flows package."""
    import flows

    root = Path(flows.__file__).resolve().parents[1]
    return root if (root / "prefect.yaml").is_file() else None


def deployment_names(prefect_yaml: Path) -> set[str]:
    """The deployment names declared in prefect.yaml."""
    import yaml

    document = yaml.safe_load(prefect_yaml.read_text()) or {}
    return {str(item["name"]) for item in document.get("deployments") or []}


# --- small HTTP helpers (urllib: the CLI stays light) ---------------------------------------------


def _request(url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST" if data else "GET", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _api(url: str, body: Any = None) -> Any:
    """GET (or POST ``body``) and decode JSON; None when the server does not answer well."""
    try:
        return _request(url, body)
    except (OSError, ValueError):
        return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if unhappy (e.g. a 503 naming a degraded part)
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _wait(ready: Callable[[], bool], timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if ready():
                return True
        if not alive():
            return False
        time.sleep(0.3)
    return False
