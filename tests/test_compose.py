"""deployments/compose.yaml: syntax and references. (Docker cannot run here, so it is not started.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mediavault.settings import MediavaultSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deployments" / "compose.yaml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_and_references() -> None:
    compose = load()
    services = compose["services"]
    assert {"minio", "mongo", "solr", "prefect-server", "worker"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "image" in service:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), f"{name}: pin an image tag"
        depends = service.get("depends_on", {})
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on unknown service {other}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in compose["volumes"], f"{name}: named volume {source} is not declared"
    build = services["worker"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
    assert (COMPOSE.parent / "solr" / "mediavault" / "conf" / "schema.xml").is_file()


def test_worker_settings_are_real_settings_and_pool_matches_prefect_yaml() -> None:
    worker = load()["services"]["worker"]
    fields = MediavaultSettings.model_fields
    nested = {"s3": MediavaultSettings.model_fields["s3"].annotation.model_fields}
    for key in worker["environment"]:
        if not key.startswith("MEDIAVAULT_"):
            continue
        name = key.removeprefix("MEDIAVAULT_").lower()
        if "__" in name:
            outer, inner = name.split("__", 1)
            assert inner in nested[outer], f"{key} is not a setting"
        else:
            assert name in fields, f"{key} is not a setting"
    pools = {
        d["work_pool"]["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    assert pools == {worker["command"][worker["command"].index("--pool") + 1]}


def test_every_required_variable_is_in_the_env_example() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (COMPOSE.parent / ".env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert required <= defined
