"""A property-based model test (Hypothesis ``RuleBasedStateMachine``) of the whole write path.

Random sequences of ingest (new media, the same media again, a new run of known media), edits,
crashed ingests, lifecycle runs with policies at 0 days (archive, compress, expire, restore,
orphan collection), full and incremental re-index and wiping MongoDB or search, on the local and
the S3 (moto over HTTP) vault. After every step:

- every latest manifest names objects that exist and whose SHA-256 matches (hot or archive copy);
- no committed object is missing: nothing referenced is ever deleted;

and after each re-index:

- nothing is quarantined and nothing raised: no record wedges the index;
- the incremental index equals a full rebuild of the same vault into a fresh index, edits included
  (MongoDB documents and search statements compared by count and content digests).

Short and seeded in CI; ``MEDIAVAULT_HARDENING=long`` runs many more and longer sequences.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from pymongo import MongoClient

from mediavault.index import reindex
from mediavault.index.index_store import MongoIndexStore
from mediavault.index.reindex import IndexTarget
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest, prepare, store_media, store_run
from mediavault.lifecycle.engine import restore_media
from mediavault.lifecycle.engine import run as run_lifecycle
from mediavault.lifecycle.policy import Policies, Rule
from mediavault.media import edits
from mediavault.search.tantivy_index import TantivySearchIndex
from mediavault.settings import MediavaultSettings
from mediavault.vault import LocalVault, Vault, manifests
from mediavault.vault.models import utc_now
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader
from tests.conftest import LONG_HARDENING, hardening_scale
from tests.helpers import JFK_JSON, SAMPLES, make_wav

pytestmark = pytest.mark.hardening

OUTPUTS = [JFK_JSON, SAMPLES / "whisper_en_jfk.srt", SAMPLES / "whisper_en_jfk.vtt"]
UINT64_MAX = 2**64 - 1
LIFECYCLE_ACTIONS = st.sampled_from(["archive", "expire", "keep"])


def build_machine(tmp_path: Path, new_vault, mongo_url: str) -> type[RuleBasedStateMachine]:
    """The machine class; ``new_vault(name)`` gives an empty vault of the backend under test."""

    class VaultModel(RuleBasedStateMachine):
        media = Bundle("media")

        def __init__(self) -> None:
            super().__init__()
            name = uuid.uuid4().hex[:10]
            self.root = tmp_path / name
            self.vault: Vault = new_vault(name)
            self.settings = MediavaultSettings(
                home=self.root / "home",
                vault_url=self.vault.url,
                s3=getattr(self.vault, "options", None) or MediavaultSettings().s3,
                mongo_mode="disabled",
            )
            self.client: MongoClient = MongoClient(mongo_url, tz_aware=True)
            self.databases = [f"m_{name}_live", f"m_{name}_full"]
            self.target = IndexTarget(
                self.vault,
                MongoIndexStore(self.client[self.databases[0]]),
                TantivySearchIndex(self.root / "search-live"),
            )
            self.reference = IndexTarget(
                self.vault,
                MongoIndexStore(self.client[self.databases[1]]),
                TantivySearchIndex(self.root / "search-full"),
            )
            self.next_tone = 0

        def teardown(self) -> None:
            for name in self.databases:
                self.client.drop_database(name)
            self.client.close()

        # -- writes ---------------------------------------------------------------------------

        def _wav(self) -> Path:
            self.next_tone += 1
            return make_wav(self.root / "media" / f"{self.next_tone}.wav", 12, 200 + 37 * self.next_tone)

        def _ingest(self, media: Path, output: int, poison_seed: bool = False) -> str:
            parameters = {"seed": UINT64_MAX, "beam_size": 5} if poison_seed else {"beam_size": 5}
            result = ingest(
                self.vault,
                IngestRequest(
                    media=str(media),
                    outputs=[OutputSpec(str(OUTPUTS[output]))],
                    metadata={"title": f"item {media.stem}", "owner": "alice", "tags": ["model"]},
                    provenance={"model": f"whisper-{output}", "parameters": parameters},
                ),
                self.settings,
            )
            return result.media_id

        @initialize(target=media)
        def an_indexed_item(self) -> tuple[str, Path]:
            """Every history starts from one item in a built index, so short runs reach deep states."""
            item = self.ingest_new_media(0, False)
            self.reindex_full()
            return item

        @rule(target=media, output=st.integers(0, len(OUTPUTS) - 1), poison_seed=st.booleans())
        def ingest_new_media(self, output: int, poison_seed: bool) -> tuple[str, Path]:
            path = self._wav()
            return self._ingest(path, output, poison_seed), path

        @rule(item=media, output=st.integers(0, len(OUTPUTS) - 1))
        def ingest_known_media(self, item: tuple[str, Path], output: int) -> None:
            """The same bytes again: deduplicated media, the same or a new run."""
            media_id, path = item
            assert self._ingest(path, output) == media_id

        @rule()
        def crash_an_ingest_before_its_commit(self) -> None:
            """Objects stored, no manifest: what a killed ingest leaves for the collector."""
            prepared = prepare(
                IngestRequest(media=str(self._wav()), outputs=[OutputSpec(str(JFK_JSON))]), self.settings
            )
            stored, _ = store_media(self.vault, prepared)
            store_run(self.vault, stored.sha256, prepared)

        @rule(
            item=media,
            kind=st.sampled_from(["rename-speaker", "correct-text", "fix-metadata"]),
            text=st.text(st.characters(categories=["L", "N", "Zs", "P"]), min_size=1, max_size=30),
        )
        def edit(self, item: tuple[str, Path], kind: str, text: str) -> None:
            media_id, _ = item
            text = text.strip() or "x"
            manifest = manifests.latest_manifest(self.vault, media_id)
            assert manifest is not None
            if kind == "rename-speaker":
                payload = {"speaker": "SPEAKER_00", "display_name": text}
            elif kind == "correct-text":
                payload = {"run_id": manifest.runs[-1].run_id, "seq": 0, "text": text}
            else:
                payload = {"title": text}
            edits.add_edit(self.vault, media_id, kind, payload)

        @rule(
            media_action=LIFECYCLE_ACTIONS,
            outputs_action=LIFECYCLE_ACTIONS,
            compress=st.booleans(),
            days_later=st.sampled_from([0, 8]),
        )
        def lifecycle(self, media_action: str, outputs_action: str, compress: bool, days_later: int) -> None:
            policies = Policies(
                media=Rule(action=media_action, after_days=0, compress=compress),
                ai_outputs=Rule(action=outputs_action, after_days=0, compress=compress),
            )
            report = run_lifecycle(
                self.vault, policies, dry_run=False, now=utc_now() + timedelta(days=days_later)
            )
            assert not report.errors, report.errors

        @rule(item=media)
        def restore(self, item: tuple[str, Path]) -> None:
            restore_media(self.vault, item[0])

        # -- the index --------------------------------------------------------------------------

        @rule()
        def reindex_full(self) -> None:
            report = reindex.full_rebuild(self.target)
            assert report.switched and not report.quarantined, report.quarantined

        @rule()
        def reindex_incremental(self) -> None:
            result = reindex.incremental(self.target)
            assert not result["quarantined"], result["quarantined"]
            self._assert_equals_a_full_rebuild()

        @rule()
        def wipe_mongodb(self) -> None:
            self.client.drop_database(self.databases[0])

        @rule()
        def wipe_search(self) -> None:
            self.target.search.destroy()

        def _assert_equals_a_full_rebuild(self) -> None:
            rebuilt = reindex.full_rebuild(self.reference)
            assert rebuilt.switched and not rebuilt.quarantined
            live, reference = self.target.store.live_generation(), self.reference.store.live_generation()
            assert self.target.store.summary(live) == self.reference.store.summary(reference), (
                "MongoDB documents of the incremental index differ from a full rebuild"
            )
            assert self.target.search.summary(live) == self.reference.search.summary(reference), (
                "search statements of the incremental index differ from a full rebuild"
            )

        # -- invariants ---------------------------------------------------------------------------

        @invariant()
        def manifests_name_intact_objects(self) -> None:
            reader = ArtifactReader(self.vault)
            for media_id in manifests.list_media_ids(self.vault):
                manifest = manifests.latest_manifest(self.vault, media_id)
                assert manifest is not None
                for artifact in manifest.artifacts:
                    if artifact.tier == "expired":
                        continue
                    try:
                        data = reader.read_bytes(artifact)
                    except KeyError:
                        pytest.fail(f"v{manifest.version} names {artifact.key} ({artifact.tier}): gone")
                    assert hashlib.sha256(data).hexdigest() == artifact.sha256, artifact.key
                for ref in manifest.edits:
                    assert hashlib.sha256(self.vault.get_bytes(ref.key)).hexdigest() == ref.sha256

    return VaultModel


@pytest.fixture(params=["local", "s3"])
def new_vault(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return lambda name: LocalVault(tmp_path / name / "vault")
    options, bucket = request.getfixturevalue("s3_options"), request.getfixturevalue("s3_bucket")
    return lambda name: S3Vault(bucket, f"model/{name}", options)


def test_random_histories_keep_the_vault_intact_and_the_index_rebuildable(
    tmp_path: Path, new_vault, mongo_url: str
) -> None:
    machine = build_machine(tmp_path, new_vault, mongo_url)
    machine.TestCase.settings = hypothesis_settings(
        max_examples=int(hardening_scale(20, 300)),
        stateful_step_count=int(hardening_scale(16, 50)),
        # Shrinking a failing history can outlast the CI timeout; the long run shrinks.
        phases=list(Phase) if LONG_HARDENING else [p for p in Phase if p is not Phase.shrink],
    )
    machine.TestCase().runTest()
