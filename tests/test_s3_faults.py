"""Faults at the wire: a proxy between boto3 and moto injects errors, delays, resets and stripped
headers into real ingests and edits. Every attempt ends in success or a clean (retryable) error,
and after a clean re-run the vault invariants hold."""

from __future__ import annotations

import hashlib
import random
import threading
import wave
from pathlib import Path

import pytest

from mediavault.errors import ConfigurationError, TransientError, is_transient
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media.edits import add_edit
from mediavault.settings import S3Options
from mediavault.vault import journal, manifests
from mediavault.vault.keys import manifest_key
from mediavault.vault.s3 import S3Vault, make_s3_client, release_single_writer_lock
from tests.conftest import GIVE_UP, LONG_HARDENING, PROXIED_READ_TIMEOUT, REAL, hardening_scale
from tests.fault_proxy import Exchange, Fault, FaultProxy, Rule
from tests.helpers import JFK_JSON, JFK_MEDIA

pytestmark = pytest.mark.hardening

SEED = 20261123


def jfk_request() -> IngestRequest:
    return IngestRequest(
        media=str(JFK_MEDIA),
        outputs=[OutputSpec(str(JFK_JSON)), OutputSpec(str(REAL / "whisper_en_jfk.srt"))],
        metadata={"title": "Inaugural address", "owner": "archive"},
        provenance={"model": "openai-whisper", "version": "20231117", "parameters": {"model": "tiny"}},
    )


def ingest_and_edit(vault: S3Vault, settings, request: IngestRequest | None = None) -> str:
    result = ingest(vault, request or jfk_request(), settings)
    add_edit(vault, result.media_id, "fix-metadata", {"title": "Inaugural address, 1961"}, author="qa")
    return result.media_id


def assert_vault_invariants(vault: S3Vault, media_ids: set[str], runs: int = 1) -> None:
    """Read every byte: each manifest version names objects whose SHA-256 matches, every version
    has a journal record, the journal is gapless, and each media item is committed once."""
    assert set(manifests.list_media_ids(vault)) == media_ids
    records = list(journal.read(vault))
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), "the journal has a gap"
    journaled = {(r.media_id, r.manifest_version) for r in records}
    for record in records:
        assert record.manifest_key == manifest_key(record.media_id, record.manifest_version)
        assert vault.head(record.manifest_key) is not None, f"journal record {record.seq} names no manifest"
    digests: dict[str, str] = {}

    def digest(key: str) -> str:
        if key not in digests:
            digests[key] = hashlib.sha256(vault.get_bytes(key)).hexdigest()
        return digests[key]

    for media_id in media_ids:
        versions = manifests.manifest_versions(vault, media_id)
        assert versions == list(range(1, len(versions) + 1)), f"manifest versions {versions}"
        for version in versions:
            manifest = manifests.read_manifest(vault, media_id, version)
            assert manifest.media_id == media_id and manifest.version == version
            for artifact in manifest.artifacts:
                if artifact.tier == "hot":
                    assert digest(artifact.key) == artifact.sha256, f"v{version}: {artifact.key} differs"
            for edit in manifest.edits:
                assert digest(edit.key) == edit.sha256, f"v{version}: edit {edit.key} differs"
            assert (media_id, version) in journaled, f"{media_id} v{version} has no journal record"
        latest = manifests.read_manifest(vault, media_id, versions[-1])
        assert len({r.run_id for r in latest.runs}) == len(latest.runs) == runs
        assert len({e.edit_id for e in latest.edits}) == len(latest.edits) >= 1


def assert_clean_failure(exc: BaseException, what: str) -> None:
    assert is_transient(exc), f"{what}: not a clean, retryable error: {type(exc).__name__}: {exc}"
    assert str(exc), f"{what}: an error without a message"


def describe(exchange: Exchange) -> str:
    return f"#{exchange.index} {exchange.method} {exchange.target.split('?', 1)[0]}"


def attempt_then_rerun(
    proxy: FaultProxy,
    bucket: str,
    prefix: str,
    proxied: S3Options,
    direct: S3Options,
    settings_for,
    rule: Rule,
    what: str,
    request: IngestRequest | None = None,
) -> bool:
    """One faulted attempt (success or a clean error), then a clean re-run and the invariants.
    Returns whether the rule fired."""
    vault = S3Vault(bucket, prefix, proxied)
    settings = settings_for(vault)
    with proxy.faults(rule):
        try:
            ingest_and_edit(vault, settings, request)
        except Exception as exc:
            assert_clean_failure(exc, what)
    media_id = ingest_and_edit(vault, settings, request)
    assert_vault_invariants(
        S3Vault(bucket, prefix, direct), {media_id}, runs=0 if request and not request.outputs else 1
    )
    return rule.fired > 0


def clean_run_log(
    proxy: FaultProxy, bucket: str, proxied: S3Options, settings_for, request=None
) -> list[Exchange]:
    proxy.clear_log()
    vault = S3Vault(bucket, "clean-run", proxied)
    ingest_and_edit(vault, settings_for(vault), request)
    return proxy.log()


SWEEP_FAULTS = {
    "500": Fault.error(500),
    "503": Fault.error(503),
    "reset": Fault.reset(),
    "reset-after-forward": Fault.reset(after_forward=True),
    "delay": Fault.delay(0.2),
    "timeout-after-forward": Fault.delay(PROXIED_READ_TIMEOUT + 0.5, after_forward=True),
}


def sweep_plan(log: list[Exchange], seed: int) -> list[tuple[str, int, int]]:
    """(fault, request index, consecutive requests faulted). Long: every fault at every request.
    Short: a seeded sample, always including a manifest, journal or probe write."""
    rng = random.Random(seed)
    counts = (1, GIVE_UP)  # a glitch botocore's retry gets past, and a fault it gives up on
    everything = [(name, i) for name in SWEEP_FAULTS for i in range(1, len(log) + 1)]
    if LONG_HARDENING:
        return [(name, i, rng.choice(counts)) for name, i in everything]
    key_writes = [
        e.index
        for e in log
        if e.method == "PUT" and any(part in e.target for part in ("/manifests/", "/journal/", "/probes/"))
    ]
    quick = [(name, i) for name, i in everything if name != "timeout-after-forward"]
    picks = rng.sample(quick, 3)
    picks += [("500", rng.choice(key_writes)), ("reset-after-forward", rng.choice(key_writes))]
    return [(name, i, rng.choice(counts)) for name, i in picks]


def test_fault_sweep_over_ingest_and_edit(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    log = clean_run_log(fault_proxy, s3_bucket, proxied_options, settings_for)
    assert any("/probes/" in e.target for e in log) and any("/journal/" in e.target for e in log)
    for name, index, count in sweep_plan(log, SEED):
        what = f"{name} x{count} at {describe(log[index - 1])} of {len(log)}"
        rule = Rule(SWEEP_FAULTS[name], nth=index, count=count)
        fired = attempt_then_rerun(
            fault_proxy, s3_bucket, f"sweep-{name}-{index}-{count}", proxied_options, s3_options,
            settings_for, rule, what,
        )  # fmt: skip
        assert fired, f"{what}: the faulted request never came"


def test_409_sweep_over_conditional_writes(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    log = clean_run_log(fault_proxy, s3_bucket, proxied_options, settings_for)
    conditional = [e for e in log if e.method == "PUT" and "if-none-match" in e.headers]
    assert len(conditional) >= 8
    # once: the same PUT is repeated and wins; conflict_attempts times: a clean TransientError
    plan = [(p, c) for p in range(1, len(conditional) + 1) for c in (1, proxied_options.conflict_attempts)]
    if not LONG_HARDENING:
        plan = random.Random(SEED).sample(plan, 3)
    for position, count in plan:
        what = f"409 x{count} at {describe(conditional[position - 1])}"
        rule = Rule(Fault.error(409), method="PUT", header="If-None-Match", nth=position, count=count)
        attempt_then_rerun(
            fault_proxy, s3_bucket, f"conflict-{position}-{count}", proxied_options, s3_options,
            settings_for, rule, what,
        )  # fmt: skip


def write_noise_wav(path: Path, seconds: int, seed: int, rate: int = 48000) -> Path:
    rng = random.Random(seed)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        for _ in range(seconds):
            out.writeframes(rng.randbytes(rate * 4))
    return path


# A local media file is hashed first and goes up straight to its key (no staging, no copy).
MULTIPART_TARGETS = {
    "is-it-stored": ("HEAD", r"/media/[0-9a-f]{64}/original$"),
    "create-upload": ("POST", r"/media/[0-9a-f]{64}/original\?uploads"),
    "part-2": ("PUT", r"partNumber=2"),
    "complete-upload": ("POST", r"/media/[0-9a-f]{64}/original\?uploadId="),
}
MULTIPART_FAULTS = {
    "500": Fault.error(500),
    "reset": Fault.reset(),
    "reset-after-forward": Fault.reset(after_forward=True),
}


def test_fault_sweep_over_a_multipart_media_upload(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for, tmp_path
) -> None:
    media = write_noise_wav(tmp_path / "noise.wav", seconds=32, seed=SEED)  # ~6 MB: two parts
    request = IngestRequest(media=str(media), metadata={"title": "noise"}, provenance={"model": "none"})
    log = clean_run_log(fault_proxy, s3_bucket, proxied_options, settings_for, request)
    assert sum("partNumber=" in e.target for e in log) == 2, "the media must go up in two parts"
    plan = [(t, f, c) for t in MULTIPART_TARGETS for f in MULTIPART_FAULTS for c in (1, GIVE_UP)]
    if not LONG_HARDENING:
        plan = [*random.Random(SEED).sample(plan, 2), ("complete-upload", "reset-after-forward", 1)]
    for target, name, count in plan:
        method, path = MULTIPART_TARGETS[target]
        rule = Rule(MULTIPART_FAULTS[name], method=method, path=path, nth=1, count=count)
        fired = attempt_then_rerun(
            fault_proxy, s3_bucket, f"multipart-{target}-{name}-{count}", proxied_options, s3_options,
            settings_for, rule, f"{name} x{count} at {target}", request,
        )  # fmt: skip
        assert fired, f"{target}: the faulted request never came"


def test_probabilistic_faults_on_every_request(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    """Seeded random faults everywhere; each ingest+edit is retried until it succeeds."""
    rounds = int(hardening_scale(3, 40))
    for round_number in range(rounds):
        prefix = f"random-{round_number}"
        vault = S3Vault(s3_bucket, prefix, proxied_options)
        settings = settings_for(vault)
        rules = [
            Rule(Fault.error(503), probability=0.04, seed=SEED + round_number),
            Rule(Fault.reset(after_forward=True), probability=0.03, seed=SEED + 100 + round_number),
            Rule(Fault.error(409), method="PUT", header="If-None-Match", probability=0.1, seed=SEED + 200),
        ]
        with fault_proxy.faults(*rules):
            for attempt in range(20):
                try:
                    media_id = ingest_and_edit(vault, settings)
                    break
                except Exception as exc:
                    assert_clean_failure(exc, f"round {round_number} attempt {attempt}")
            else:
                pytest.fail(f"round {round_number}: 20 attempts never succeeded")
        assert_vault_invariants(S3Vault(s3_bucket, prefix, s3_options), {media_id})


@pytest.mark.parametrize(
    "written", [r"/manifests/[0-9a-f]{64}/v\d+\.json$", r"/journal/\d+\.json$"], ids=["manifest", "journal"]
)
def test_a_409_is_answered_by_repeating_the_same_put(
    written: str, fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    """A 409 decided nothing: neither "created" nor "already exists". The same PUT is repeated."""
    vault = S3Vault(s3_bucket, "conflict-once", proxied_options)
    conflict = Rule(Fault.error(409), method="PUT", path=written, nth=1)
    with fault_proxy.faults(conflict):
        result = ingest(vault, jfk_request(), settings_for(vault))
    assert conflict.fired == 1
    assert result.changed and result.manifest_version == 1 and result.journal_seq == 1
    log = fault_proxy.log()
    refused = next(e for e in log if e.status == 409)
    repeated = log[log.index(refused) + 1]
    assert (repeated.method, repeated.target, repeated.status) == ("PUT", refused.target, 200)
    direct = S3Vault(s3_bucket, "conflict-once", s3_options)
    assert manifests.manifest_versions(direct, result.media_id) == [1], "no duplicate version"
    assert [(r.seq, r.manifest_version) for r in journal.read(direct)] == [(1, 1)], "no gap, no duplicate"


def test_409s_that_never_stop_end_in_a_transient_error_and_nothing_committed(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    vault = S3Vault(s3_bucket, "conflict-forever", proxied_options)
    forever = Rule(Fault.error(409), method="PUT", path=r"/manifests/")
    with fault_proxy.faults(forever), pytest.raises(TransientError) as failed:
        ingest(vault, jfk_request(), settings_for(vault))
    assert "409 ConditionalRequestConflict" in str(failed.value)
    assert type(failed.value) is TransientError
    direct = S3Vault(s3_bucket, "conflict-forever", s3_options)
    assert manifests.list_media_ids(direct) == [] and list(journal.read(direct)) == []
    media_id = ingest_and_edit(vault, settings_for(vault))
    assert_vault_invariants(direct, {media_id})


@pytest.mark.parametrize(
    "lost_answer", [Fault.reset(after_forward=True), Fault.delay(PROXIED_READ_TIMEOUT + 0.5, True)]
)
def test_a_journal_put_that_landed_but_lost_its_answer_counts_as_created(
    lost_answer: Fault, fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    """botocore repeats the PUT and gets 412 for our own record: no duplicate journal record."""
    vault = S3Vault(s3_bucket, "landed", proxied_options)
    rule = Rule(lost_answer, method="PUT", path=r"/journal/\d+\.json$", nth=1)
    with fault_proxy.faults(rule):
        result = ingest(vault, jfk_request(), settings_for(vault))
    assert rule.fired == 1 and result.journal_seq == 1
    direct = S3Vault(s3_bucket, "landed", s3_options)
    assert [(r.seq, r.manifest_version) for r in journal.read(direct)] == [(1, 1)]
    retried = [e for e in fault_proxy.log() if e.method == "PUT" and "/journal/" in e.target]
    assert len(retried) == 2 and retried[1].status == 412, "the answer was lost, the repeat got 412"


def test_the_probe_refuses_a_store_that_ignores_if_none_match(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    fault_proxy.add(Rule(Fault.strip_header("If-None-Match"), method="PUT"))
    vault = S3Vault(s3_bucket, "ignores-if-none-match", proxied_options)
    with pytest.raises(ConfigurationError) as refused:
        ingest(vault, jfk_request(), settings_for(vault))
    message = str(refused.value)
    assert "s3.conditional_writes" in message and "s3.single_writer_lock" in message
    assert "If-None-Match" in message
    direct = S3Vault(s3_bucket, "ignores-if-none-match", s3_options)
    assert list(direct.list_keys("")) == [], "refused before writing anything; the probe is cleaned up"
    fault_proxy.clear_log()
    with pytest.raises(ConfigurationError):
        S3Vault(s3_bucket, "ignores-if-none-match", proxied_options).put_bytes("manifests/x", b"{}")
    assert fault_proxy.log() == [], "the refusal is remembered for the process: no second probe"


def test_the_probe_runs_once_per_vault_and_survives_faults(
    fault_proxy: FaultProxy, proxied_options, s3_bucket
) -> None:
    probe_puts = r"/staging/probes/conditional-write/"
    broken = Rule(Fault.error(500), method="PUT", path=probe_puts, nth=1, count=GIVE_UP)
    with fault_proxy.faults(broken), pytest.raises(Exception) as failed:
        S3Vault(s3_bucket, "probe-faults", proxied_options).put_bytes("a", b"1")
    assert is_transient(failed.value), "a failed probe is a transient fault, not a verdict"
    # A 409 on the second probe write is repeated, then answered 412: the store passes.
    with fault_proxy.faults(Rule(Fault.error(409), method="PUT", path=probe_puts, nth=2)):
        assert S3Vault(s3_bucket, "probe-faults", proxied_options).put_bytes("a", b"1").created
    fault_proxy.clear_log()
    for _ in range(3):
        S3Vault(s3_bucket, "probe-faults", proxied_options).put_bytes("b", b"2")
    assert not any("/probes/" in e.target for e in fault_proxy.log()), "probed once per process and vault"
    fault_proxy.clear_log()
    S3Vault(s3_bucket, "another-prefix", proxied_options).put_bytes("b", b"2")
    assert sum(e.method == "PUT" and "/probes/" in e.target for e in fault_proxy.log()) == 2


def test_single_writer_mode_serializes_the_threads_of_its_process(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for, tmp_path
) -> None:
    """Without conditional writes, HEAD-then-PUT races between threads would lose edits and
    journal records; the holder of the single-writer lock serializes them."""
    lock = tmp_path / "writer.lock"
    options = proxied_options.model_copy(update={"conditional_writes": False, "single_writer_lock": lock})
    vault = S3Vault(s3_bucket, "single-writer", options)
    try:
        media_id = ingest(vault, jfk_request(), settings_for(vault)).media_id
        threads_count, edits_each = 4, int(hardening_scale(2, 6))
        errors: list[BaseException] = []

        def edit(worker: int) -> None:
            try:
                for n in range(edits_each):
                    add_edit(vault, media_id, "fix-metadata", {"title": f"t{worker}-{n}"})
            except BaseException as exc:
                errors.append(exc)

        with fault_proxy.faults(
            Rule(Fault.delay(0.02), method="HEAD"), Rule(Fault.delay(0.02), method="PUT")
        ):
            threads = [threading.Thread(target=edit, args=(w,)) for w in range(threads_count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert not errors, errors
        direct = S3Vault(s3_bucket, "single-writer", s3_options)
        latest = manifests.latest_manifest(direct, media_id)
        assert len(latest.edits) == threads_count * edits_each, "an edit was lost"
        assert_vault_invariants(direct, {media_id})
        assert len(list(journal.read(direct))) == 1 + threads_count * edits_each
    finally:
        release_single_writer_lock(lock)


def test_proxy_passes_large_and_chunked_bodies_unchanged(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket
) -> None:
    import http.client
    import io
    import os

    vault = S3Vault(s3_bucket, "bodies", proxied_options)
    data = os.urandom(13 * 1024 * 1024 + 5)
    stored = vault.put_stream(io.BytesIO(data), lambda sha: f"blobs/{sha}")
    assert hashlib.sha256(S3Vault(s3_bucket, "bodies", s3_options).get_bytes(stored.key)).digest() == (
        hashlib.sha256(data).digest()
    )
    assert sum("partNumber=" in e.target for e in fault_proxy.log()) == 3
    host, port = fault_proxy.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("PUT", f"/{s3_bucket}/bodies/chunked")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    payload = os.urandom(700_001)
    for start in range(0, len(payload), 65_536):
        piece = payload[start : start + 65_536]
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    connection.send(b"0\r\n\r\n")
    assert connection.getresponse().status == 200
    connection.close()
    assert S3Vault(s3_bucket, "bodies", s3_options).get_bytes("chunked") == payload


@pytest.mark.parametrize(
    ("source", "complete"),
    [
        ("local file", r"/media/[0-9a-f]{64}/original\?uploadId="),  # straight to its key
        ("s3 object", r"/staging/[0-9a-f]{32}\?uploadId="),  # a stream: staged, then copied
    ],
)
def test_a_completed_multipart_upload_whose_answer_was_lost_is_not_an_error(
    fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for, tmp_path, source, complete
) -> None:
    """AWS may answer a repeated CompleteMultipartUpload (after the first landed) with 404
    NoSuchUpload; the object is then complete, and the ingest goes on."""
    media = write_noise_wav(tmp_path / "noise.wav", seconds=32, seed=SEED + 1)
    location = str(media)
    if source == "s3 object":
        make_s3_client(s3_options).upload_file(str(media), s3_bucket, "inbox/noise.wav")
        location = f"s3://{s3_bucket}/inbox/noise.wav"
    request = IngestRequest(media=location, metadata={"title": "noise"}, provenance={"model": "none"})
    vault = S3Vault(s3_bucket, "complete-lost", proxied_options)
    lost = Rule(Fault.reset(after_forward=True), method="POST", path=complete, nth=1)
    gone = Rule(Fault.error(404, "NoSuchUpload"), method="POST", path=complete, nth=2)
    with fault_proxy.faults(lost, gone):
        result = ingest(vault, request, settings_for(vault))
    assert lost.fired == gone.fired == 1
    direct = S3Vault(s3_bucket, "complete-lost", s3_options)
    assert direct.get_bytes(f"media/{result.media_id}/original") == media.read_bytes()
    assert list(direct.list_keys("staging/")) == []
