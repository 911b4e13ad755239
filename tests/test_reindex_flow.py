"""The reindex flow and the search/edit/export API against real SecantusDB, Tantivy and Prefect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.reindex import reindex_flow
from mediavault import api
from mediavault.index.reindex import describe_reindex
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA, make_wav

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch, mongo_url: str) -> MediavaultSettings:
    database = f"rf_{tmp_path.name[-20:]}"
    monkeypatch.setenv("MEDIAVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIAVAULT_VAULT_URL", (tmp_path / "vault").as_uri())
    monkeypatch.setenv("MEDIAVAULT_MONGO_MODE", "external")
    monkeypatch.setenv("MEDIAVAULT_MONGO_URL", mongo_url)
    monkeypatch.setenv("MEDIAVAULT_MONGO_DATABASE", database)
    return MediavaultSettings()


async def _artifact_keys() -> set[str]:
    async with get_client() as client:
        response = await client._client.post("/artifacts/filter", json={"limit": 200})
        return {a["key"] for a in response.json() if a.get("key")}


def test_reindex_flow_modes_and_api(settings: MediavaultSettings, tmp_path: Path) -> None:
    vault = vault_from_settings(settings)
    french = ingest(
        vault,
        IngestRequest(
            media=str(make_wav(tmp_path / "fr.wav", 200)),
            outputs=[OutputSpec(str(REAL / "whisperx_fr_call_diarized.json"))],
            metadata={"title": "Appel", "owner": "support"},
        ),
        settings,
    ).media_id
    full = reindex_flow(mode="full", chunk_size=1)
    assert full["mode"] == "full" and full["statements"] == 54 and full["switched"]
    assert {"reindex-progress", "reindex-summary"} <= asyncio.run(_artifact_keys())
    hits = api.search("Denise", settings=settings)
    assert hits.total >= 1 and hits.hits[0].media_id == french

    jfk = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))],
            metadata={"owner": "archive"},
        ),
        settings,
    ).media_id
    inc = reindex_flow(mode="incremental")
    assert inc["records"] == 1 and api.search('"fellow Americans"', settings=settings).hits[0].media_id == jfk

    api.rename_speaker(french, "SPEAKER_01", "Denise", settings=settings)
    assert api.search(speaker="Denise", settings=settings).total > 0, "edits apply to the live index at once"
    assert "[Denise]:" in api.export_transcript(french, "vtt", settings=settings)

    targeted = reindex_flow(mode="targeted", owner="archive")
    assert targeted == {"mode": "targeted", "media": 1, "statements": 1}
    second = reindex_flow(mode="full")
    assert second["generation"] == full["generation"] + 1
    rolled_back = reindex_flow(mode="rollback")
    assert rolled_back["generation"] == full["generation"]
    reindex_flow(mode="incremental")  # the restored generation catches up on the rename
    idle = reindex_flow(mode="incremental")

    first, again = full["generation"], second["generation"]
    assert describe_reindex(full) == [
        f"full rebuild: generation {first} is live: 1 media item(s), 54 statement(s) "
        f"in {full['seconds']:.1f} s"
    ]
    assert describe_reindex(inc) == [
        f"applied 1 journal record(s) to 1 media item(s) in generation {first} "
        f"(journal position {inc['from_checkpoint']} → {inc['checkpoint']})"
    ]
    assert describe_reindex(targeted) == ["re-indexed 1 media item(s): 1 statement(s)"]
    assert describe_reindex(second)[0].startswith(
        f"full rebuild: generation {again} is live, replacing generation {first}: 2 media item(s)"
    )
    assert describe_reindex(rolled_back) == [f"rolled back: generation {first} is live again"]
    assert describe_reindex(idle) == [
        f"generation {first} is up to date (journal position {idle['checkpoint']})"
    ]
