"""The CLI as a person meets it, run as a separate process: one line per problem, no traceback,
and a new home made on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, make_wav

BIN = Path(sys.executable).parent


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mediavault"), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAVAULT_", "PREFECT_"))}
    return {**clean, "MEDIAVAULT_HOME": str(tmp_path / "new" / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}


@pytest.mark.parametrize("command", [["ls"], ["status"], ["token", "list"], ["journal"], ["stats"]])
def test_every_command_creates_a_new_home(env: dict[str, str], command: list[str]) -> None:
    done = run(env, *command)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(env["MEDIAVAULT_HOME"]).is_dir()
    assert "Traceback" not in done.stderr


def test_an_unexpected_error_is_one_line_with_where_the_log_is(env: dict[str, str], tmp_path: Path) -> None:
    """A Prefect API that does not answer is not the user's input: exit 1, one line naming the
    error and the log file, whose traceback tells the rest."""
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    media = make_wav(tmp_path / "tone.wav", 1)
    done = run(env, "ingest", str(media))
    assert done.returncode == 1
    log = Path(env["MEDIAVAULT_HOME"]) / "logs" / "cli.log"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: RuntimeError: Failed to reach API"), lines
    assert f"full log: {log}" in lines[0]
    assert "Traceback (most recent call last)" in log.read_text()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MEDIAVAULT_STACK__WEB_PORT",
            "eighty",
            "MEDIAVAULT_STACK__WEB_PORT: Input should be a valid integer",
        ),
        ("MEDIAVAULT_VAULT_URL", "file:///{tmp}/a-file/vault", "cannot create local vault"),
        ("MEDIAVAULT_WEB", "not json", 'settings: error parsing value for field "web"'),
        ("MEDIAVAULT_WEB__SESSION_SECRETS", "hunter2-typo", "MEDIAVAULT_WEB__SESSION_SECRETS: Extra inputs"),
    ],
)
def test_bad_configuration_is_one_line(
    env: dict[str, str], tmp_path: Path, variable: str, value: str, message: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    env[variable] = value.format(tmp=tmp_path)
    done = run(env, "ls")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
    assert "hunter2" not in done.stderr, "a rejected value is not echoed: it may be a secret"


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "--since", "0001-01-01", "--until", "9999-12-31"],
        ["audit", "--since", "9999-12-31"],
        ["search", "budget", "--since", "0001-01-01", "--until", "9999-12-31"],
    ],
)
def test_the_first_and_last_days_there_are_are_dates_like_any_other(
    env: dict[str, str], command: list[str]
) -> None:
    created = run(env, "token", "create", "--owner", "team", "--role", "viewer")  # one audit record
    assert created.returncode == 0, created.stderr
    done = run(env, *command)
    assert done.returncode == 0, done.stderr
    if command[0] == "audit" and "9999-12-31" not in command[2:3]:
        assert "1 record(s)" in done.stdout, "the record is found, however wide the range"


def test_a_date_that_does_not_exist_names_the_option(env: dict[str, str]) -> None:
    done = run(env, "search", "budget", "--since", "2026-13-01")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: search: --since: not a date: '2026-13-01' (use 2024-05-01)"]
