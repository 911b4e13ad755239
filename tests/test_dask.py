"""The reindex flow mapped over a real multi-process Dask cluster through prefect-dask.

Workers are separate processes, so each builds its own backends from the (picklable) settings.
Tantivy allows one writer per index, so distributed runs use Solr; here the Solr contract server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flows.reindex import reindex_flow
from mediavault import api
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from tests.conftest import REAL
from tests.helpers import make_wav

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_full_reindex_on_a_dask_cluster(tmp_path: Path, monkeypatch, mongo_url: str, fake_solr) -> None:
    from prefect_dask import DaskTaskRunner

    environment = {
        "MEDIAVAULT_HOME": str(tmp_path / "home"),
        "MEDIAVAULT_VAULT_URL": (tmp_path / "vault").as_uri(),
        "MEDIAVAULT_MONGO_MODE": "external",
        "MEDIAVAULT_MONGO_URL": mongo_url,
        "MEDIAVAULT_MONGO_DATABASE": f"dask_{uuid.uuid4().hex[:8]}",
        "MEDIAVAULT_SEARCH_BACKEND": "solr",
        "MEDIAVAULT_SOLR_URL": fake_solr.url,
        "MEDIAVAULT_SOLR_NAME": f"dask{uuid.uuid4().hex[:6]}",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = MediavaultSettings()
    vault = vault_from_settings(settings)
    names = [
        "whisperx_fr_call_diarized.json",
        "whisperx_en_call2_nospeaker.json",
        "whisper_ru_call_largev3.json",
    ]
    for i, name in enumerate(names):
        media = make_wav(tmp_path / f"{i}.wav", 240, frequency=300 + 40 * i)
        ingest(vault, IngestRequest(media=str(media), outputs=[OutputSpec(str(REAL / name))]), settings)

    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )
    result = reindex_flow.with_options(task_runner=runner)(mode="full", chunk_size=1)
    assert result["switched"] and result["media"] == 3
    assert result["statements"] == 54 + 53 + 19
    assert api.search("Denise", settings=settings).total >= 1
