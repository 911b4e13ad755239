"""The mediavault CLI, in-process, against a temporary Prefect API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediavault.cli import PREFECT_ENV_DEFAULTS
from mediavault.index import embedded
from mediavault.vault import LocalVault
from tests.conftest import REAL
from tests.helpers import JFK_JSON, JFK_MEDIA

JFK_MEDIA_ID = "63a4b1e4c1dc655ac70961ffbf518acd249df237e5a0152faae9a4a836949715"

pytestmark = pytest.mark.usefixtures("prefect_harness")


@dataclass
class Result:
    exit_code: int
    output: str


class Runner:
    """Runs the installed ``mediavault`` console script against the test's Prefect API."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def invoke(self, args: list[str], ephemeral_prefect: bool = False) -> Result:
        """``ephemeral_prefect``: no API URL and no PREFECT_HOME, as for a user on a new machine."""
        from prefect.settings import PREFECT_API_URL

        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200", **self.env}
        if ephemeral_prefect:
            for name in ("PREFECT_API_URL", "PREFECT_HOME", *PREFECT_ENV_DEFAULTS):
                env.pop(name, None)
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


MARKUP_TITLE = "[bold red]x[/] [link=https://example.com]click[/link] :smile:"
MARKUP_OWNER = "[red]owner[/red]"
MARKUP_TAG = "[b]tag"


def test_new_deep_home_ingest_and_markup_prints_literally(tmp_path: Path) -> None:
    """A MEDIAVAULT_HOME that does not exist yet, with Prefect's own ephemeral API (no harness)."""
    home = tmp_path / "not" / "there" / "yet" / "home"
    runner.env = {"MEDIAVAULT_HOME": str(home), "MEDIAVAULT_MONGO_MODE": "disabled"}
    ingest = [
        "ingest", str(JFK_MEDIA), "-o", str(JFK_JSON),
        "--title", MARKUP_TITLE, "--owner", MARKUP_OWNER, "--tag", MARKUP_TAG,
    ]  # fmt: skip
    result = runner.invoke(ingest, ephemeral_prefect=True)
    assert result.exit_code == 0, result.output
    assert "manifest v1 (committed)" in result.output
    assert (home / "prefect").is_dir() and (home / "vault" / "vault.json").exists()
    for args in (["ls"], ["ls", "--owner", MARKUP_OWNER], ["ls", "--tag", MARKUP_TAG]):
        listing = runner.invoke(args)
        assert listing.exit_code == 0, listing.output
        assert MARKUP_TITLE in listing.output and MARKUP_OWNER in listing.output, args
    shown = runner.invoke(["show", JFK_MEDIA_ID[:8]])
    assert shown.exit_code == 0, shown.output
    assert f"title: {MARKUP_TITLE}   owner: {MARKUP_OWNER}   tags: {MARKUP_TAG}" in shown.output
    missing = runner.invoke(["show", "[bold]f"])
    assert missing.exit_code == 2 and "no media item matches '[bold]f'" in missing.output


def test_cli_settings_create_homes_and_turn_prefect_telemetry_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mediavault.cli import _settings

    home = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv("MEDIAVAULT_HOME", str(home))
    monkeypatch.delenv("PREFECT_HOME", raising=False)  # restored after the test, as are these:
    for name in PREFECT_ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    _settings()
    assert (home / "prefect").is_dir()
    assert os.environ["PREFECT_HOME"] == str(home / "prefect")
    probe = (
        "from prefect.settings import get_current_settings as current\n"
        "from prefect._internal.analytics.enabled import is_telemetry_enabled\n"
        "s = current()\n"
        "print(s.server.analytics_enabled, s.cloud.enable_orchestration_telemetry, is_telemetry_enabled())"
    )
    from prefect._internal.analytics.ci_detection import CI_ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in CI_ENV_VARS}  # CI would turn it off anyway
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert seen.stdout.split() == ["False", "False", "False"], seen.stderr


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
        result = runner.invoke(["demo", "--no-stack"])
        assert result.exit_code == 0, result.output
        assert "Inaugural address" in result.output and "School board" in result.output
        assert "2 media item(s)" in result.output
        assert (home / "vault" / "vault.json").exists()
        server = embedded.running(home / "mongo")
        assert server is not None, "the embedded SecantusDB server should be up"
        from pymongo import MongoClient

        from mediavault.access.tokens import TokenStore
        from mediavault.index.index_store import live_media_collection

        records = {r["title"]: r for r in live_media_collection(MongoClient(server.url).mediavault).find({})}
        assert set(records) == {"Inaugural address (excerpt)", "School board (excerpt)"}
        assert all(r["status"] == "committed" and r["owner"] == "demo" for r in records.values())
        meeting = records["School board (excerpt)"]
        assert [s["label"] for s in meeting["speakers"]] == ["SPEAKER_01", "SPEAKER_05", "SPEAKER_06"]
        assert meeting["container"] == "ogg" and meeting["duration_seconds"] > 104.27, "covers the last end"
        assert meeting["runs"][0]["model"] == "whisperx" and meeting["tags"] == ["meeting", "sample"]
        assert meeting["counts"]["statements"] == 28 and meeting["counts"]["words"] > 0
        token = re.findall(r"mvt_[0-9a-f]{12}_[\w-]{43}", result.output)[-1]
        principal, _ = TokenStore(LocalVault(home / "vault")).check(token)
        assert principal is not None and principal.is_admin and principal.name == "demo"
        again = runner.invoke(["demo", "--no-stack"])
        assert again.exit_code == 0, again.output
        assert TokenStore(LocalVault(home / "vault")).check(token)[0] is None, "the old demo token is revoked"
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
    ingest = ["ingest", str(JFK_MEDIA), "-o", str(JFK_JSON), "--title", MARKUP_TITLE, "--owner", "alice"]
    ingested = runner.invoke(ingest)
    assert ingested.exit_code == 0, ingested.output
    media_id = next(word for word in ingested.output.split() if len(word) == 64)
    full = runner.invoke(["reindex", "--full"])
    assert full.exit_code == 0, full.output
    assert "full rebuild: generation 1 is live: 1 media item(s)" in full.output, full.output
    idle = runner.invoke(["reindex", "--json"])
    assert idle.exit_code == 0 and json.loads(idle.output)["mode"] == "incremental", idle.output
    found = runner.invoke(["search", '"ask not"'])
    assert found.exit_code == 0 and media_id[:12] in found.output and "0:00:00.000" in found.output
    snippet = " ".join(found.output.lower().split())
    assert "and so my fellow americans, ask not" in snippet, "the snippet, its <b> marks rendered"
    assert "<b>" not in found.output
    assert MARKUP_TITLE in found.output, "a title is printed as written, never as Rich markup"
    # alice has a statement, so text or a filter read as query syntax ('*') would find it
    assert "1 hit(s)" in runner.invoke(["search", "ask", "--owner", "alice"]).output
    injected = runner.invoke(["search", "owner:other OR *", "--owner", "alice"])
    assert injected.exit_code == 0 and "0 hit(s)" in injected.output, injected.output
    assert "0 hit(s)" in runner.invoke(["search", "ask", "--owner", "*"]).output
    renamed = runner.invoke(["edit", "correct-text", media_id[:8], "0", "Ask not what your country can do."])
    assert renamed.exit_code == 0 and "1 statements re-indexed" in renamed.output, renamed.output
    assert (
        "Ask not what your country can do." in runner.invoke(["export", media_id, "--format", "srt"]).output
    )
    bad = runner.invoke(["edit", "correct-text", media_id, "99", "x"])
    assert bad.exit_code == 2 and "payload.seq" in bad.output
    fixed = runner.invoke(["edit", "fix-metadata", media_id[:8], "--title", "Fixed [i]title[/i]"])
    assert fixed.exit_code == 0, fixed.output
    for args in (["ls"], ["ls", "--owner", "alice"], ["search", "ask"]):
        listing = runner.invoke(args)
        assert "Fixed [i]title[/i]" in listing.output and MARKUP_TITLE not in listing.output, listing.output
    shown = runner.invoke(["show", media_id[:8]])
    assert "title: Fixed [i]title[/i]   owner: alice" in shown.output, shown.output
    assert "index: committed, manifest v3" in shown.output
    described = runner.invoke(["edit", "fix-metadata", media_id[:8], "--description", "Inaugural"])
    assert described.exit_code == 0, described.output
    assert "description: Inaugural" in runner.invoke(["show", media_id[:8]]).output
    by_description = runner.invoke(["search", "inaugural"]).output
    assert "1 media item(s) match" in by_description and "0 hit(s) in statements" in by_description
    assert f"{media_id[:12]} Fixed [i]title[/i]" in by_description, by_description
    cleared = runner.invoke(["edit", "fix-metadata", media_id[:8], "--clear", "description"])
    assert cleared.exit_code == 0, cleared.output
    shown = runner.invoke(["show", media_id[:8]]).output
    assert "description:" not in shown and "title: Fixed [i]title[/i]" in shown
    assert "media item" not in runner.invoke(["search", "inaugural"]).output
    for refused in (["--clear", "owner"], ["--clear", "title", "--title", "x"], ["--clear", "colour"]):
        answer = runner.invoke(["edit", "fix-metadata", media_id[:8], *refused])
        assert answer.exit_code == 2 and "--clear" in answer.output, answer.output
    verified = runner.invoke(["verify"])
    assert verified.exit_code == 0, verified.output
    assert "0 unverified" in verified.output and "journal sweep repaired 0" in verified.output

    statements = next((home / "vault" / "media" / media_id).rglob("statements.parquet"))
    statements.write_bytes(b"PAR1" + b"\0" * (statements.stat().st_size - 8) + b"PAR1")
    poisoned = runner.invoke(["reindex", "--full"])
    assert poisoned.exit_code == 0 and "is live, replacing generation" in poisoned.output, poisoned.output
    assert "quarantined: 1 (retried every run)" in poisoned.output and media_id in poisoned.output


def test_the_command_list_keeps_each_description_on_one_line() -> None:
    """On a wide terminal, no description breaks where its docstring was wrapped in the source."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "mediavault"), "--help"],
        env={**os.environ, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        check=True,
    )
    panel = listed.stdout.split("Commands")[1]
    rows = [line for line in panel.splitlines() if line.startswith("│ ")]
    assert rows and all(not row[2].isspace() for row in rows), f"a continuation line in:\n{panel}"


def test_lifecycle_says_what_a_plan_would_do_and_when_nothing_is_due(home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("media: {action: archive, after_days: 0}\nai_outputs: {action: keep, after_days: 0}\n")
    assert runner.invoke(JFK_INGEST).exit_code == 0
    planned = runner.invoke(["lifecycle", "--policy", str(policy)])
    assert planned.exit_code == 0, planned.output
    assert "archive:media:hot" in planned.output and "--apply' carries out this plan" in planned.output
    applied = runner.invoke(["lifecycle", "--policy", str(policy), "--apply"])
    assert applied.exit_code == 0 and "done" in applied.output and "dry run" not in applied.output, (
        applied.output
    )
    again = runner.invoke(["lifecycle", "--policy", str(policy)])
    assert again.exit_code == 0 and "nothing to do: no object is due" in again.output, again.output
    assert "archive:media" not in again.output


def test_runs_of_a_killed_cli_process_are_marked_crashed(home: Path) -> None:
    """A flow run whose CLI process was killed (SIGKILL: no chance to say so) stays "Running" in
    Prefect. The next CLI command that runs a flow marks it Crashed, with its task runs; the run
    of a process still alive is left alone, and so are the runs of another host and of another
    pid namespace (a container with the same host name). The CLI's own runs carry the tags."""
    import asyncio
    import signal
    import socket

    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import Running

    from mediavault.stack import cli_runs

    doomed = subprocess.Popen(["sleep", "60"])
    dead_tag = cli_runs.owner_tag(doomed.pid)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    live_tag = cli_runs.owner_tag()
    assert dead_tag and live_tag and cli_runs.process_gone(dead_tag) and not cli_runs.process_gone(live_tag)
    assert cli_runs.process_gone(live_tag.rsplit(":", 1)[0] + ":1"), "a reused pid started at another time"
    elsewhere = dead_tag.replace(f":{socket.gethostname()}:", ":another-host:")
    host, machine, namespace, boot, pid, start = dead_tag.removeprefix("mediavault-cli:").split(":")
    container = ":".join(["mediavault-cli", host, machine, "4026599999", boot, pid, start])
    before_reboot = ":".join(["mediavault-cli", host, machine, namespace, "00000000", pid, start])
    assert not cli_runs.process_gone(elsewhere) and not cli_runs.process_gone(container)
    assert cli_runs.process_gone(before_reboot), "same machine and namespace, an earlier boot"

    @flow(name="killed-cli-run")
    def stand_in() -> None: ...

    @task(name="killed-cli-task")
    def step() -> None: ...

    async def start(tags: list[str]) -> tuple[str, str]:
        async with get_client() as client:
            run = await client.create_flow_run(stand_in, tags=[cli_runs.RUN_TAG, *tags])
            await client.set_flow_run_state(run.id, Running(), force=True)
            task_run = await client.create_task_run(step, run.id, dynamic_key="0", state=Running())
            return str(run.id), str(task_run.id)

    async def states(ids: list[str]) -> list[StateType]:
        async with get_client() as client:
            found = []
            for flow_run_id, task_run_id in zip(ids[::2], ids[1::2], strict=True):
                found.append((await client.read_flow_run(flow_run_id)).state_type)
                found.append((await client.read_task_run(task_run_id)).state_type)
            return found

    ours = cli_runs.host_tag()
    runs = [[ours, dead_tag], [ours, live_tag], ["mediavault-cli@another-host", elsewhere], [ours, container]]
    ids = [i for tags in runs for i in asyncio.run(start(tags))]
    result = runner.invoke(JFK_INGEST)
    assert result.exit_code == 0, result.output
    assert result.output.count("is now marked Crashed") == 1, result.output
    crashed, running = StateType.CRASHED, StateType.RUNNING
    assert asyncio.run(states(ids)) == [crashed, crashed, *[running] * 6]

    async def newest_ingest_tags() -> list[str]:
        async with get_client() as client:
            [run] = await client.read_flow_runs(sort="START_TIME_DESC", limit=1)
            return run.tags

    tags = asyncio.run(newest_ingest_tags())
    assert cli_runs.RUN_TAG in tags and ours in tags
    [owner] = [t for t in tags if t.startswith("mediavault-cli:")]
    assert cli_runs.process_gone(owner), "the finished CLI process's own tag names it"
