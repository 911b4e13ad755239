"""Point-in-time views: 'history' lists manifest versions, 'show --at' shows one, and a forgotten
item shows only its tombstone."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from mediavault.cli import app
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.forget import forget
from mediavault.media import edits
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, manifests
from tests.helpers import JFK_JSON, JFK_MEDIA


def test_history_and_show_at_a_time_then_a_tombstone(tmp_path: Path) -> None:
    env = {"MEDIAVAULT_HOME": str(tmp_path / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}
    vault = LocalVault(tmp_path / "home" / "vault")
    settings = MediavaultSettings(home=tmp_path / "home", mongo_mode="disabled")
    request = IngestRequest(
        media=str(JFK_MEDIA), outputs=[OutputSpec(str(JFK_JSON))], metadata={"title": "First title"}
    )
    media_id = ingest(vault, request, settings).media_id
    time.sleep(1.1)  # the versions are a second apart, so a time between them is easy to name
    edits.add_edit(vault, media_id, "fix-metadata", {"title": "Second title"})
    first, second = (manifests.read_manifest(vault, media_id, v) for v in (1, 2))
    runner = CliRunner()

    listed = runner.invoke(app, ["history", media_id[:10]], env=env)
    assert listed.exit_code == 0, listed.output
    assert "v1" in listed.output and "First title" in listed.output and "ingest" in listed.output
    assert "v2" in listed.output and "Second title" in listed.output and "edit" in listed.output

    assert manifests.manifest_at(vault, media_id, second.created_at).version == 2
    assert manifests.manifest_at(vault, media_id, second.created_at.replace(microsecond=0)).version == 1
    now = runner.invoke(app, ["show", media_id[:10], "--at", second.created_at.isoformat()], env=env)
    assert "title: Second title" in now.output and "manifest v2" in now.output, now.output
    at_first = runner.invoke(app, ["show", media_id[:10], "--at", first.created_at.isoformat()], env=env)
    assert "title: First title" in at_first.output and "manifest v1" in at_first.output, at_first.output
    before = runner.invoke(app, ["show", media_id[:10], "--at", "2001-01-01"], env=env)
    assert before.exit_code == 2 and "did not exist yet" in before.output
    bad = runner.invoke(app, ["show", media_id[:10], "--at", "last tuesday"], env=env)
    assert bad.exit_code == 2 and "--at" in bad.output

    forget(vault, media_id, "consent withdrawn", "dpo@example.org", apply=True)
    result = runner.invoke(app, ["show", media_id[:10]], env=env)
    shown = " ".join(result.output.split())
    assert result.exit_code == 0 and "erased on request" in shown and "consent withdrawn" in shown
    assert "First title" not in shown
    erased = runner.invoke(app, ["history", media_id[:10]], env=env)
    assert "erased" in erased.output and "consent" in erased.output and "First title" not in erased.output
