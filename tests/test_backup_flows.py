"""The mirror and restore-drill flows and their CLI commands, against a real temporary Prefect API,
SecantusDB and local vaults."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from prefect.client.orchestration import get_client
from prefect.flows import load_flow_from_entrypoint
from typer.testing import CliRunner

from flows.mirror import mirror_flow
from flows.restore_drill import restore_drill_flow
from mediavault.backends import index_target
from mediavault.errors import ConfigurationError, IntegrityError, MediavaultError
from mediavault.index import reindex
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle import backup_cli
from mediavault.ops.snapshot import flow_runs
from mediavault.settings import load_settings
from mediavault.vault import LocalVault, manifests
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def environment(monkeypatch, tmp_path: Path, mongo_url: str) -> tuple[LocalVault, LocalVault]:
    """A configured home (vault, mirror, MongoDB, Tantivy) with two items, indexed."""
    vault, mirror = LocalVault(tmp_path / "vault"), LocalVault(tmp_path / "mirror")
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", vault.url)
    monkeypatch.setenv("MEDIAVAULT_MIRROR_URL", mirror.url)
    monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "external")
    monkeypatch.setenv("MEDIAVAULT_MONGO_URL", mongo_url)
    monkeypatch.setenv("MEDIAVAULT_MONGO_DATABASE", f"backup_{tmp_path.name[-20:]}")
    settings = load_settings()
    ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
        settings,
    )
    ingest(
        vault,
        IngestRequest(
            media=str(make_wav(tmp_path / "board.wav", 300, 300)),
            outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
            metadata={"title": "Board"},
        ),
        settings,
    )
    target = index_target(settings)
    reindex.full_rebuild(target)
    yield vault, mirror
    target.store.database.client.drop_database(target.store.database.name)


async def _artifact(key: str):
    async with get_client() as client:
        response = await client._client.post(
            "/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "limit": 5}
        )
        return response.json()


def _newest_report(vault: LocalVault, kind: str) -> dict:
    return json.loads(vault.get_bytes(sorted(vault.list_keys(f"reports/{kind}/"))[-1]))


@pytest.mark.usefixtures("prefect_harness")
def test_the_mirror_and_restore_drill_flows_report_success_and_failure(environment) -> None:
    vault, mirror = environment

    mirrored = mirror_flow()
    assert mirrored["ok"] and mirrored["records"] == 2 and mirrored["lag"] == 0
    assert mirrored["report_key"].startswith("reports/mirror/") and flow_runs(vault, "mirror").last_success
    assert any("Mirror" in (a["data"] or "") for a in asyncio.run(_artifact("mirror-summary")))

    drilled = restore_drill_flow(sample=5, seed=11)
    assert drilled["ok"] and drilled["compared"] == 2 and drilled["seed"] == 11
    assert flow_runs(vault, "restore-drill").last_success
    assert any("seed `11`" in (a["data"] or "") for a in asyncio.run(_artifact("restore-drill-summary")))

    media_id = manifests.list_media_ids(mirror)[0]
    words = next(a for a in manifests.latest_manifest(vault, media_id).artifacts if a.kind == "words")
    data = bytearray(mirror.local_path(words.key).read_bytes())
    data[-20] ^= 0x01
    mirror.local_path(words.key).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=media_id):
        restore_drill_flow(sample=5, seed=11)
    failed = _newest_report(vault, "restore-drill")
    assert failed["ok"] is False and failed["differences"][0]["key"] == words.key

    with pytest.raises(ConfigurationError, match="overlaps"):
        mirror_flow(mirror_url=(vault.root / "inside").as_uri())


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_mirror_run_is_reported_and_names_the_object(environment) -> None:
    vault, _ = environment
    media_id = manifests.list_media_ids(vault)[0]
    artifact = next(a for a in manifests.latest_manifest(vault, media_id).artifacts if a.kind == "statements")
    path = vault.local_path(artifact.key)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(MediavaultError, match=artifact.key):
        mirror_flow()
    report = _newest_report(vault, "mirror")
    assert report["ok"] is False and report["errors"][0]["key"] == artifact.key and report["lag"] >= 1
    assert flow_runs(vault, "mirror").last_success is None and flow_runs(vault, "mirror").last_run


@pytest.mark.usefixtures("prefect_harness")
def test_a_mirror_run_whose_task_fails_still_leaves_a_failed_report(
    environment, s3_options, monkeypatch
) -> None:
    vault, _ = environment
    monkeypatch.setenv("MEDIAVAULT_S3__ENDPOINT_URL", s3_options.endpoint_url)
    monkeypatch.setenv("MEDIAVAULT_S3__ACCESS_KEY_ID", s3_options.access_key_id)
    monkeypatch.setenv("MEDIAVAULT_S3__SECRET_ACCESS_KEY", s3_options.secret_access_key.get_secret_value())
    monkeypatch.setenv("MEDIAVAULT_S3__PATH_STYLE", "true")
    with pytest.raises(MediavaultError, match="NoSuchBucket"):
        mirror_flow(mirror_url="s3://no-such-bucket-for-the-mirror/backup")
    report = _newest_report(vault, "mirror")
    assert report["ok"] is False and "NoSuchBucket" in report["errors"][0]["error"]
    assert report["target"] == "s3://no-such-bucket-for-the-mirror/backup/"


@pytest.mark.usefixtures("prefect_harness")
def test_the_cli_commands_run_the_flows(environment, tmp_path: Path) -> None:
    vault, _ = environment
    app = typer.Typer()
    failures: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        failures.append(exc)
        raise typer.Exit(2)

    backup_cli.configure(load_settings, fail)
    app.command("mirror")(backup_cli.mirror_command)
    app.command("restore-drill")(backup_cli.restore_drill_command)
    app.command("adopt-hot-copies")(backup_cli.adopt_hot_copies_command)
    runner = CliRunner()
    other = LocalVault(tmp_path / "second-mirror")

    result = runner.invoke(app, ["mirror", "--to", other.url])
    assert result.exit_code == 0, (result.output, failures)
    assert "mirrored 2 journal record(s)" in result.output and "lag 0" in result.output
    assert other.head("journal/00000000000000000002.json") is not None

    result = runner.invoke(app, ["restore-drill", "--sample", "1", "--seed", "4", "--mirror", other.url])
    assert result.exit_code == 0, (result.output, failures)
    assert "restore drill passed: 1 item(s) restored (seed 4)" in result.output

    result = runner.invoke(app, ["adopt-hot-copies"])
    assert result.exit_code == 0 and "0 artifact(s) to adopt" in result.output

    result = runner.invoke(app, ["mirror", "--to", (vault.root / "nested").as_uri()])
    assert result.exit_code == 2 and isinstance(failures[-1], ConfigurationError)


@pytest.mark.parametrize(
    "entrypoint", ["flows/mirror.py:mirror_flow", "flows/restore_drill.py:restore_drill_flow"]
)
def test_every_flow_parameter_is_described(entrypoint: str) -> None:
    schema = load_flow_from_entrypoint(str(ROOT / entrypoint)).parameters.model_dump()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{entrypoint}: parameter {name} has no description"
