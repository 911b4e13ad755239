"""Storage metrics through DuckDB over the manifests, for both vault backends."""

from __future__ import annotations

from mediavault.index.stats import storage_stats
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.vault import Vault
from tests.conftest import REAL
from tests.helpers import JFK_MEDIA


def test_stats_by_class_tier_and_month(vault: Vault, settings_for) -> None:
    assert storage_stats(vault)["media"] == 0
    settings = settings_for(vault)
    ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
        settings,
    )
    ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.srt"))]),
        settings,
    )  # a second run: manifest v2 must be counted once, not added to v1
    stats = storage_stats(vault)
    assert stats["media"] == 1
    by_class = {row["class"]: row for row in stats["by_class"]}
    assert by_class["media"]["bytes"] == JFK_MEDIA.stat().st_size and by_class["media"]["objects"] == 1
    assert by_class["raw-output"]["objects"] == 2 and by_class["statements"]["objects"] == 2
    assert [row["tier"] for row in stats["by_tier"]] == ["hot"]
    assert stats["bytes"] == sum(row["bytes"] for row in stats["by_class"])
    assert len(stats["growth"]) == 1 and stats["growth"][0]["media"] == 1


def test_stats_scoped_to_media_ids(vault: Vault, settings_for) -> None:
    """The dashboard scopes by the owner the index knows (owner edits applied), as a list of ids."""
    settings = settings_for(vault)
    first = ingest(
        vault,
        IngestRequest(media=str(JFK_MEDIA), outputs=[OutputSpec(str(REAL / "whisper_en_jfk.json"))]),
        settings,
    ).media_id
    assert storage_stats(vault, media_ids=[first])["media"] == 1
    assert storage_stats(vault, media_ids=[])["media"] == 0
    assert storage_stats(vault, media_ids=["f" * 64])["bytes"] == 0
