"""prefect.yaml: every deployment points at a real flow whose parameters the UI can describe."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]


def test_every_deployment_entrypoint_loads_and_documents_its_parameters() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in config["deployments"]}
    assert {
        "ingest",
        "batch-ingest",
        "reindex",
        "reindex-incremental",
        "verify-weekly",
        "lifecycle-nightly",
        "lifecycle-plan",
        "restore",
        "capacity-check",
        "forget",
        "add-run",
        "mirror-hourly",
        "restore-drill-weekly",
    } <= names
    for deployment in config["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        schema = flow.parameters.model_dump()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{deployment['name']}: parameter {name} has no description"
        assert deployment["work_pool"]["name"] == "mediavault-process"


def test_lifecycle_runs_nightly_at_three_without_overlap() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    nightly = next(d for d in config["deployments"] if d["name"] == "lifecycle-nightly")
    assert nightly["schedules"][0]["cron"] == "0 3 * * *"
    assert nightly["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert nightly["parameters"] == {"dry_run": False}
