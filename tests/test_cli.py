"""The mediavault CLI, in-process, against a temporary Prefect API."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediavault import embedded
from tests.conftest import REAL
from tests.helpers import JFK_JSON, JFK_MEDIA

pytestmark = pytest.mark.usefixtures("prefect_harness")


@dataclass
class Result:
    exit_code: int
    output: str


class Runner:
    """Runs the installed ``mediavault`` console script against the test's Prefect API."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def invoke(self, args: list[str]) -> Result:
        from prefect.settings import PREFECT_API_URL

        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200", **self.env}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "mediavault"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Result(done.returncode, done.stdout + done.stderr)


runner = Runner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    runner.env = {"MEDIAVAULT_HOME": str(tmp_path / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}
    return tmp_path / "home"


JFK_INGEST = [
    "ingest", str(JFK_MEDIA), "-o", str(JFK_JSON), "-o", str(REAL / "whisper_en_jfk.vtt"),
    "--title", "Ask not", "--tag", "speech", "--model", "openai-whisper",
    "--param", "beam_size=5", "--param", "model=tiny",
]  # fmt: skip


def test_ingest_ls_show_journal(home: Path) -> None:
    result = runner.invoke(JFK_INGEST)
    assert result.exit_code == 0, result.output
    assert "manifest v1 (committed)" in result.output
    media_id = next(word for word in result.output.split() if len(word) == 64)
    listing = runner.invoke(["ls"])
    assert listing.exit_code == 0 and "Ask not" in listing.output and media_id[:16] in listing.output
    shown = runner.invoke(["show", media_id[:10]])
    assert shown.exit_code == 0, shown.output
    assert media_id in shown.output and "statements" in shown.output and '"beam_size": 5' in shown.output
    assert "1,152,693" in shown.output
    as_json = runner.invoke(["show", media_id, "--json"])
    assert '"schema_version": 1' in as_json.output
    journal = runner.invoke(["journal"])
    assert "ingest" in journal.output and media_id[:16] in journal.output
    again = runner.invoke(JFK_INGEST)
    assert "nothing written" in again.output and "0 new object(s)" in again.output


def test_bad_input_exit_code_and_message(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"segments": [{"start": "zero", "end": 1, "text": "x"}]}')
    result = runner.invoke(["ingest", str(JFK_MEDIA), "-o", str(bad)])
    assert result.exit_code == 2
    assert "broken.json: segments[0].start: must be a number" in result.output.replace("\n", "")
    unknown = runner.invoke(["show", "ffff"])
    assert unknown.exit_code == 2 and "no media item matches" in unknown.output


def test_demo_runs_on_embedded_defaults(home: Path) -> None:
    runner.env = {"MEDIAVAULT_HOME": str(home), "MEDIAVAULT_MONGO_MODE": "embedded"}
    try:
        result = runner.invoke(["demo"])
        assert result.exit_code == 0, result.output
        assert "Inaugural address" in result.output and "1 media item(s)" in result.output
        assert (home / "vault" / "vault.json").exists()
        server = embedded.running(home / "mongo")
        assert server is not None, "the embedded SecantusDB server should be up"
        from pymongo import MongoClient

        record = MongoClient(server.url).mediavault.media.find_one({})
        assert record["status"] == "committed" and record["owner"] == "demo"
    finally:
        embedded.stop(home / "mongo")


def test_search_edit_export_reindex(home: Path, tmp_path: Path, mongo_url: str) -> None:
    runner.env.update(
        {
            "MEDIAVAULT_MONGO_MODE": "external",
            "MEDIAVAULT_MONGO_URL": mongo_url,
            "MEDIAVAULT_MONGO_DATABASE": f"cli_{tmp_path.name[-16:]}",
        }
    )
    ingested = runner.invoke(["ingest", str(JFK_MEDIA), "-o", str(JFK_JSON), "--title", "Ask not"])
    assert ingested.exit_code == 0, ingested.output
    media_id = next(word for word in ingested.output.split() if len(word) == 64)
    full = runner.invoke(["reindex", "--full"])
    assert full.exit_code == 0 and "switched: True" in full.output, full.output
    found = runner.invoke(["search", '"ask not"'])
    assert found.exit_code == 0 and media_id[:12] in found.output and "0:00:00.000" in found.output
    assert "<b>ask</b>" in found.output.lower()
    renamed = runner.invoke(["edit", "correct-text", media_id[:8], "0", "Ask not what your country can do."])
    assert renamed.exit_code == 0 and "1 statements re-indexed" in renamed.output, renamed.output
    assert (
        "Ask not what your country can do." in runner.invoke(["export", media_id, "--format", "srt"]).output
    )
    bad = runner.invoke(["edit", "correct-text", media_id, "99", "x"])
    assert bad.exit_code == 2 and "payload.seq" in bad.output
    injected = runner.invoke(["search", "owner:other OR *", "--owner", "nobody"])
    assert injected.exit_code == 0 and "0 hit(s)" in injected.output
