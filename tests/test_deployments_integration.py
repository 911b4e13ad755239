"""prefect.yaml end to end: a real `prefect server` on loopback, `prefect deploy --all`, a process
worker, and deployment runs triggered through the API the way the UI triggers them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import JFK_JSON, JFK_MEDIA, free_port, make_wav

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def wait_for(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds}s")


@pytest.fixture
def stack(tmp_path: Path, mongo_url: str) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MEDIAVAULT_CODE_DIR": str(ROOT),
        "MEDIAVAULT_HOME": str(tmp_path / "home"),
        "MEDIAVAULT_MONGO_MODE": "external",
        "MEDIAVAULT_MONGO_URL": mongo_url,
        "MEDIAVAULT_MONGO_DATABASE": f"deploy_{uuid.uuid4().hex[:8]}",
    }
    env.pop("MEDIAVAULT_VAULT_URL", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(logs / "server.log", "w"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health")
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", "mediavault-process", "--type", "process"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        deployed = subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "mediavault-process", "--type", "process"],
            env=env,
            cwd=tmp_path,
            stdout=open(logs / "worker.log", "w"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
        )
        yield env
    finally:
        for process in (worker, server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def run_deployment(env: dict[str, str], name: str, parameters: dict) -> dict:
    """Create a flow run of a deployment through the API (as the UI's Run button does) and wait."""
    script = (
        "import json, sys\n"
        "from prefect.deployments import run_deployment\n"
        "run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=240)\n"
        "print(json.dumps({'state': run.state.type.value, 'message': run.state.message}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, name, json.dumps(parameters)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_deployments_run_through_a_worker(stack: dict[str, str], tmp_path: Path) -> None:
    from mediavault.vault import LocalVault, manifests

    listed = subprocess.run(
        [str(BIN / "prefect"), "deployment", "ls"], env=stack, capture_output=True, text=True, timeout=120
    ).stdout
    for name in ("ingest", "batch-ingest", "reindex", "reindex-incremental", "verify-weekly", "verify-full"):
        assert name in listed

    ingested = run_deployment(
        stack,
        "ingest/ingest",
        {"media": str(JFK_MEDIA), "outputs": [str(JFK_JSON)], "title": "From the UI", "owner": "ops"},
    )
    assert ingested["state"] == "COMPLETED", ingested
    vault = LocalVault(Path(stack["MEDIAVAULT_HOME"]) / "vault")
    media_ids = manifests.list_media_ids(vault)
    assert (
        len(media_ids) == 1 and manifests.latest_manifest(vault, media_ids[0]).metadata.title == "From the UI"
    )
    jfk_id = media_ids[0]

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_wav(inbox / "tone.wav", 2)
    batch = run_deployment(stack, "batch-ingest/batch-ingest", {"source": str(inbox), "owner": "ops"})
    assert batch["state"] == "COMPLETED", batch
    assert len(manifests.list_media_ids(vault)) == 2

    rebuilt = run_deployment(stack, "reindex/reindex", {"mode": "full"})
    assert rebuilt["state"] == "COMPLETED", rebuilt
    env = {**os.environ, **{k: v for k, v in stack.items() if k.startswith("MEDIAVAULT_")}}
    found = subprocess.run(
        [str(BIN / "mediavault"), "search", '"ask not"', "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(found.stdout)["total"] == 1, found.stderr
    incremental = run_deployment(stack, "reindex/reindex-incremental", {})
    assert incremental["state"] == "COMPLETED", incremental

    verified = run_deployment(stack, "verify/verify-weekly", {"sample_percent": 100})
    assert verified["state"] == "COMPLETED", verified
    assert len(list(vault.list_keys("reports/verify/"))) == 1

    archive_now = {"media": {"action": "archive", "after_days": 0}}
    planned = run_deployment(stack, "lifecycle/lifecycle-plan", {"policies": archive_now})
    assert planned["state"] == "COMPLETED", planned
    assert vault.head(f"media/{jfk_id}/original") is not None, "a dry run changes nothing"
    archived = run_deployment(
        stack, "lifecycle/lifecycle-nightly", {"dry_run": False, "policies": archive_now}
    )
    assert archived["state"] == "COMPLETED", archived
    media = next(a for a in manifests.latest_manifest(vault, jfk_id).artifacts if a.kind == "media")
    assert media.tier == "archive" and vault.head(media.key) is None
    # the dashboard's restore button: POST /restore starts a run of the restore deployment
    restored = restore_through_the_web_app(stack, vault, jfk_id)
    assert restored["state_type"] == "COMPLETED", restored
    assert vault.head(media.key) is not None and len(list(vault.list_keys("reports/lifecycle/"))) == 1


def restore_through_the_web_app(stack: dict[str, str], vault, media_id: str) -> dict:
    import httpx

    from mediavault.access.tokens import TokenStore
    from mediavault.settings import MediavaultSettings
    from mediavault.web import create_app
    from mediavault.web.restore import prefect_restore_starter
    from tests.web_site import serve

    api = stack["PREFECT_API_URL"]
    starter = prefect_restore_starter(api, "http://ui.example")
    assert starter is not None, "the restore deployment is found"
    settings = MediavaultSettings(
        home=Path(stack["MEDIAVAULT_HOME"]),
        mongo_mode="external",
        mongo_url=stack["MEDIAVAULT_MONGO_URL"],
        mongo_database=stack["MEDIAVAULT_MONGO_DATABASE"],
    )
    token = TokenStore(vault).create("*", "admin")[1]
    url, server, thread = serve(create_app(settings, restore_starter=starter))
    try:
        for _ in range(3):  # 503 means "try again": the Prefect API may be slow on a busy machine
            answer = httpx.post(
                f"{url}/api/v1/media/{media_id}/restore",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            if answer.status_code != 503:
                break
            time.sleep(2)
        assert answer.status_code == 202, answer.text
        started = answer.json()
        assert started["runner"] == "prefect"
        assert started["flow_run_url"] == f"http://ui.example/runs/flow-run/{started['flow_run_id']}"
        deadline = time.monotonic() + 240
        while True:
            run = httpx.get(f"{api}/flow_runs/{started['flow_run_id']}", timeout=10).json()
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            assert time.monotonic() < deadline, f"the restore flow run did not finish: {run['state_type']}"
            time.sleep(1)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
