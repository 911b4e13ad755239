"""User input never reaches a MongoDB filter as an operator (SecantusDB speaks the real protocol).

The production query paths are tested: ``mediavault ls --owner/--tag/--status`` (the CLI app run in
this process) reads the index through ``MongoIndexStore.find_media``, or the vault when MongoDB is
disabled; ``mediavault show`` reads an item's index record through ``MongoIndexStore.media``. Every
test has data that an injected operator would return.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import PREFECT_ENV_DEFAULTS, app
from mediavault.errors import InputError
from mediavault.index.index_store import MongoIndexStore
from mediavault.ingest.pipeline import IngestRequest, ingest
from mediavault.vault import LocalVault
from tests.helpers import JFK_MEDIA

A, B = "a" * 64, "b" * 64
HOSTILE = [
    '{"$ne": null}',
    "$where",
    "'; return true; '",
    "alice' || 'a'=='a",
    "$gt",
    "{$regex: '.*'}",
    ".*",
    "*",
    '{"$exists": true}',
]


@pytest.fixture
def store(mongo_db) -> MongoIndexStore:
    store = MongoIndexStore(mongo_db)
    store.create_generation(1)
    store.upsert(
        1,
        [
            {"_id": A, "owner": "alice", "tags": ["x"], "status": "committed", "manifest_version": 1},
            {"_id": B, "owner": "bob", "tags": ["y"], "status": "failed"},
        ],
    )
    store.switch(1, checkpoint=0)
    return store


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest):
    """Run the CLI app in this process; every variable it touches is restored afterwards."""
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    for name in PREFECT_ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)

    def configure(mongo_db=None) -> None:
        if mongo_db is None:
            monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "disabled")
            return
        monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "external")
        monkeypatch.setenv("MEDIAVAULT_MONGO_URL", request.getfixturevalue("mongo_url"))
        monkeypatch.setenv("MEDIAVAULT_MONGO_DATABASE", mongo_db.name)

    return configure


def ls(*args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["ls", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def ids(documents: list[dict]) -> list[str]:
    return [d["_id"] for d in documents]


def test_ls_filters_read_the_index(store: MongoIndexStore, mongo_db, cli_env) -> None:
    cli_env(mongo_db)
    assert ids(ls("--owner", "alice")) == [A]
    assert ids(ls("--tag", "y")) == [B]
    assert ids(ls("--status", "failed")) == [B], "only the index knows failed ingests"
    assert ids(ls("--owner", "alice", "--tag", "y")) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_ls_filter_values_are_literal_in_the_index(store: MongoIndexStore, mongo_db, cli_env, value) -> None:
    cli_env(mongo_db)
    for option in ("--owner", "--tag", "--status"):
        assert ls(option, value) == [], f"{option} {value!r} matched documents"


@pytest.fixture
def vault_item(tmp_path: Path, settings_for) -> str:
    vault = LocalVault(tmp_path / "home" / "vault")
    request = IngestRequest(media=str(JFK_MEDIA), metadata={"owner": "alice", "tags": ["x"]})
    return ingest(vault, request, settings_for(vault)).media_id


def test_ls_filters_read_the_vault_when_mongodb_is_off(vault_item: str, cli_env) -> None:
    cli_env(None)
    assert ids(ls("--owner", "alice")) == [vault_item]
    assert ids(ls("--tag", "x", "--status", "committed")) == [vault_item]
    assert ls("--owner", "bob") == [] and ls("--status", "failed") == []
    for value in HOSTILE:
        assert ls("--owner", value) == [] and ls("--tag", value) == [], value


def test_show_reads_the_index_record(vault_item: str, mongo_db, cli_env) -> None:
    store = MongoIndexStore(mongo_db)
    store.create_generation(1)
    store.upsert(1, [{"_id": vault_item, "owner": "alice", "status": "committed", "manifest_version": 1}])
    store.switch(1, checkpoint=0)
    cli_env(mongo_db)
    shown = CliRunner().invoke(app, ["show", vault_item[:12]])
    assert shown.exit_code == 0, (shown.output, shown.exception)
    assert "index: committed, manifest v1" in shown.stdout


# find_media and media are what the CLI calls; values a program (not a shell) could pass:


@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["alice", "bob"], {"$where": "true"}])
def test_non_string_values_are_rejected(store: MongoIndexStore, value) -> None:
    with pytest.raises(InputError, match="must be a string"):
        store.find_media(owner=value)


@pytest.mark.parametrize("media_id", [{"$ne": None}, "$where", A[:10], A + "x", "", None])
def test_media_lookup_requires_a_real_id(store: MongoIndexStore, media_id) -> None:
    assert store.media(A)["owner"] == "alice"
    with pytest.raises(InputError, match="64-character hex media id"):
        store.media(media_id)
