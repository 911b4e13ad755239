"""Encryption at rest on S3: every write path asks for the configured server-side encryption, a
store that refuses or ignores it gets nothing written, and plain http:// to a remote host is
warned about. Real moto over HTTP, with the fault proxy in between to see (and break) requests."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from mediavault.access.audit import AuditLog, AuditRecord, write_records
from mediavault.access.tokens import TokenStore
from mediavault.errors import ConfigurationError
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.lifecycle.engine import restore_media, run
from mediavault.lifecycle.forget import forget
from mediavault.lifecycle.mirror import mirror_vault
from mediavault.lifecycle.policy import Policies
from mediavault.media.edits import add_edit
from mediavault.settings import MediavaultSettings, S3Options, load_settings
from mediavault.vault import s3 as s3_module
from mediavault.vault.models import utc_now
from mediavault.vault.reports import write_report
from mediavault.vault.s3 import S3Vault, kms_key_matches, make_s3_client
from tests.conftest import GIVE_UP, REAL
from tests.fault_proxy import Fault, FaultProxy, Rule
from tests.helpers import JFK_MEDIA, make_wav

SSE_HEADER = "x-amz-server-side-encryption"
KMS_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
ENCRYPTION_PROBE = r"/staging/probes/encryption/"
SMALL_MULTIPART = 256 * 1024
"""A multipart threshold below the test media's size, so uploads and copies go multipart (one
part each: moto takes a last part of any size)."""


@pytest.fixture(scope="session")
def kms_key_id(moto_endpoint: str) -> str:
    """A key made by moto's KMS on the same server (moto's S3 would take any id; a real one is nicer)."""
    kms = boto3.session.Session().client(
        "kms",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    return kms.create_key(Description="mediavault SSE-KMS test key")["KeyMetadata"]["KeyId"]


@pytest.fixture(params=["sse-s3", "sse-kms"])
def encryption(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sse-s3":
        return {"server_side_encryption": "AES256", "sse_kms_key_id": None}
    return {"server_side_encryption": "aws:kms", "sse_kms_key_id": request.getfixturevalue("kms_key_id")}


def new_bucket(options: S3Options) -> str:
    name = f"vault-{uuid.uuid4().hex[:12]}"
    make_s3_client(options).create_bucket(Bucket=name)
    return name


def assert_every_object_encrypted(client: Any, bucket: str, encryption: dict[str, Any]) -> list[str]:
    """HEAD every object of the bucket; each must report the configured encryption. Returns the keys."""
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == encryption["server_side_encryption"], (
            f"s3://{bucket}/{key} is stored with {head.get('ServerSideEncryption')!r}"
        )
        if encryption["sse_kms_key_id"]:
            assert head.get("SSEKMSKeyId") == encryption["sse_kms_key_id"], f"s3://{bucket}/{key}"
    return keys


def object_writes(proxy: FaultProxy) -> dict[str, list[Any]]:
    """The object-creating requests the proxy saw, by kind; UploadPart separately."""
    kinds: dict[str, list[Any]] = {"put": [], "copy": [], "create-multipart": [], "upload-part": []}
    for exchange in proxy.log():
        target = urlparse(exchange.target)
        query = parse_qs(target.query, keep_blank_values=True)
        if "/" not in target.path.strip("/"):
            continue  # bucket-level
        if exchange.method == "POST" and "uploads" in query:
            kinds["create-multipart"].append(exchange)
        elif exchange.method == "PUT" and "partNumber" in query:
            kinds["upload-part"].append(exchange)
        elif exchange.method == "PUT" and not query:
            kinds["copy" if "x-amz-copy-source" in exchange.headers else "put"].append(exchange)
    return kinds


def test_every_write_path_stores_encrypted_objects(
    encryption, fault_proxy: FaultProxy, proxied_options, s3_options, s3_bucket, settings_for, tmp_path
) -> None:
    options = proxied_options.model_copy(update={**encryption, "multipart_threshold": SMALL_MULTIPART})
    archive_bucket = new_bucket(s3_options)
    inbox_bucket = new_bucket(s3_options)  # a source, not the vault: its object stays as uploaded
    mirror_bucket = new_bucket(s3_options)
    vault = S3Vault(s3_bucket, "encrypted", options)
    settings = settings_for(vault)

    # Ingest from a local file: hashed first, then uploaded straight to its key (multipart).
    local = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[
                OutputSpec(str(REAL / "whisper_en_jfk.json")),
                OutputSpec(str(REAL / "whisper_en_jfk.srt")),
            ],
            metadata={"title": "JFK", "owner": "archive-team"},
        ),
        settings,
    )
    # Ingest from an s3:// source: a stream, staged (multipart) and then copied to its key.
    tone = make_wav(tmp_path / "tone.wav", seconds=30, frequency=523.0)
    make_s3_client(s3_options).upload_file(str(tone), inbox_bucket, "inbox/tone.wav")
    streamed = ingest(
        vault,
        IngestRequest(
            media=f"s3://{inbox_bucket}/inbox/tone.wav",
            metadata={"title": "tone"},
            provenance={"model": "none"},
        ),
        settings,
    )
    add_edit(vault, local.media_id, "fix-metadata", {"title": "JFK, encrypted"}, author="test")
    # Lifecycle into an archive tier in another bucket (media as is, AI outputs compressed; the
    # claims are written and removed), then a restore back into the hot vault.
    policies = Policies.model_validate({"archive": {"url": f"s3://{archive_bucket}/tier/"}})
    report = run(vault, policies, dry_run=False, now=utc_now() + timedelta(days=400))
    assert not report.errors and len(report.done) >= 3, report.summary()
    restored = restore_media(vault, local.media_id)
    assert restored["restored"] and not restored["pending"]
    write_report(vault, "lifecycle", report.summary())
    tokens = TokenStore(vault)
    record, _token = tokens.create("archive-team", "viewer", name="encrypted")
    assert tokens.revoke(record.id, by="test")
    write_records(vault, [AuditRecord(action="token.create", outcome="ok", actor="cli")])
    with AuditLog(vault, flush_seconds=60) as audit:
        audit.record(AuditRecord(action="media.stream", outcome="ok", media_id=streamed.media_id))
    # A forget (its tombstone version is a new object), then a mirror run into another bucket.
    erased = forget(vault, streamed.media_id, "consent withdrawn", "test", apply=True)
    assert erased.tombstone_version and erased.deleted
    mirrored = mirror_vault(vault, S3Vault(mirror_bucket, "offsite", options))
    assert mirrored.ok and mirrored.objects_copied > 0, mirrored

    direct = make_s3_client(s3_options)
    hot = assert_every_object_encrypted(direct, s3_bucket, encryption)
    cold = assert_every_object_encrypted(direct, archive_bucket, encryption)
    offsite = assert_every_object_encrypted(direct, mirror_bucket, encryption)
    assert any(f"manifests/{streamed.media_id}/" in key for key in hot), "the tombstone was written"
    assert any(key.startswith("offsite/media/") for key in offsite)
    for area in (
        "vault.json",
        "media/",
        "/runs/",
        "manifests/",
        "journal/",
        "edits/",
        "access/tokens/",
        "audit/",
    ):
        assert any(area in key for key in hot), f"no {area} object was written: the test lost a path"
    assert any(key.startswith("encrypted/reports/lifecycle/") for key in hot)
    assert {key.rsplit("/", 1)[-1] for key in cold} >= {"original"} and len(cold) >= 4
    assert not any("/staging/" in key for key in hot + cold), "staging objects and probes are removed"

    # Objects that no longer exist (staging, pins, claims, probes) were encrypted too: every
    # object-creating request carried the parameters; UploadPart carries none (S3 refuses them there).
    writes = object_writes(fault_proxy)
    for kind in ("put", "copy", "create-multipart", "upload-part"):
        assert writes[kind], f"no {kind} request seen: the test lost a write path"
    paths = " ".join(exchange.target for exchange in writes["put"])
    for area in ("/gc/pins/", "/gc/claims/", "/staging/probes/conditional-write/", ENCRYPTION_PROBE):
        assert area in paths, f"no write to {area} seen"
    for exchange in writes["put"] + writes["copy"] + writes["create-multipart"]:
        assert exchange.headers.get(SSE_HEADER) == encryption["server_side_encryption"], (
            f"{exchange.method} {exchange.target} was sent without {encryption['server_side_encryption']}"
        )
        assert exchange.headers.get(KMS_HEADER) == encryption["sse_kms_key_id"], exchange.target
    for exchange in writes["upload-part"]:
        assert SSE_HEADER not in exchange.headers and KMS_HEADER not in exchange.headers


def test_multipart_server_side_copy_restates_encryption(
    encryption, s3_options, s3_bucket, monkeypatch
) -> None:
    """Objects over 5 GiB are copied from staging part by part; that copy carries the parameters too."""
    monkeypatch.setattr(s3_module, "SINGLE_COPY_LIMIT", 0)
    options = s3_options.model_copy(update={**encryption, "multipart_threshold": SMALL_MULTIPART})
    vault = S3Vault(s3_bucket, "big-copy", options)
    data = b"".join(i.to_bytes(4, "big") for i in range(200_000))  # 800 kB

    class Stream(io.RawIOBase):  # not seekable, no file descriptor: the staging path
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._inner.readinto(buffer)

    stored = vault.put_stream(io.BufferedReader(Stream()), lambda sha: f"media/{sha}/original")
    assert stored.created and vault.get_bytes(stored.key) == data
    assert assert_every_object_encrypted(vault.client, s3_bucket, encryption) == [f"big-copy/{stored.key}"]


def test_without_encryption_no_parameters_and_no_probe(fault_proxy, proxied_options, s3_bucket) -> None:
    vault = S3Vault(s3_bucket, "plain", proxied_options)
    assert vault.put_bytes("k", b"plain").created
    assert not any(SSE_HEADER in exchange.headers for exchange in fault_proxy.log())
    assert not any("probes/encryption" in exchange.target for exchange in fault_proxy.log())


def probe_puts(proxy: FaultProxy) -> int:
    return sum(1 for e in proxy.log() if e.method == "PUT" and "/staging/probes/encryption/" in e.target)


@pytest.mark.hardening
@pytest.mark.parametrize(
    ("status", "code"), [(400, "InvalidArgument"), (501, "NotImplemented"), (400, "KMS.NotFoundException")]
)
def test_a_store_that_rejects_encryption_gets_nothing_written(
    encryption, status, code, fault_proxy, proxied_options, s3_options, s3_bucket, settings_for
) -> None:
    options = proxied_options.model_copy(update=encryption)
    vault = S3Vault(s3_bucket, "rejects", options)
    with fault_proxy.faults(Rule(Fault.error(status, code), header=SSE_HEADER)):
        with pytest.raises(ConfigurationError) as refused:
            vault.put_bytes("manifests/x/v00000001.json", b"{}")
        message = str(refused.value)
        assert "MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION" in message and code in message
        assert "s3.server_side_encryption" in message and "docs/operations.md" in message
        # Every later write of the process is refused at once, without another probe; the ingest
        # fails at its first write (the vault descriptor).
        with pytest.raises(ConfigurationError):
            ingest(
                vault, IngestRequest(media=str(JFK_MEDIA), provenance={"model": "none"}), settings_for(vault)
            )
        assert probe_puts(fault_proxy) == 1
    assert list(make_s3_client(s3_options).list_objects_v2(Bucket=s3_bucket).get("Contents", [])) == []


@pytest.mark.hardening
@pytest.mark.parametrize("how", ["answers without the header", "drops the request header"])
def test_a_store_that_ignores_encryption_gets_nothing_written(
    encryption, how, fault_proxy, proxied_options, s3_options, s3_bucket
) -> None:
    """A store that answers without x-amz-server-side-encryption (it does not say, or does not
    encrypt: here the proxy removes the header on the way back, or on the way there so moto really
    stores the probe unencrypted) is refused: the probe is removed and nothing else is written."""
    options = proxied_options.model_copy(update=encryption)
    vault = S3Vault(s3_bucket, "ignores", options)
    if how == "answers without the header":
        rules = [Rule(Fault.strip_response_header(SSE_HEADER)), Rule(Fault.strip_response_header(KMS_HEADER))]
    else:
        rules = [Rule(Fault.strip_header(SSE_HEADER)), Rule(Fault.strip_header(KMS_HEADER))]
    with fault_proxy.faults(*rules), pytest.raises(ConfigurationError) as refused:
        vault.put_bytes("journal/00000000000000000001.json", b"{}")
    message = str(refused.value)
    assert "MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION" in message
    assert "no x-amz-server-side-encryption header" in message and "ignores" in message
    assert list(make_s3_client(s3_options).list_objects_v2(Bucket=s3_bucket).get("Contents", [])) == []


@pytest.mark.hardening
def test_the_probe_runs_once_per_process_and_a_transient_fault_caches_nothing(
    fault_proxy, proxied_options, s3_bucket
) -> None:
    options = proxied_options.model_copy(update={"server_side_encryption": "AES256"})
    vault = S3Vault(s3_bucket, "probed", options)
    flaky = Rule(Fault.error(503), method="PUT", path=ENCRYPTION_PROBE, nth=1, count=GIVE_UP)
    with fault_proxy.faults(flaky):
        with pytest.raises(Exception) as failed:
            vault.put_bytes("a", b"a")
        assert not isinstance(failed.value, ConfigurationError), "a transient fault is not a verdict"
    assert flaky.fired == GIVE_UP
    fault_proxy.clear_log()
    for name in "bcdef":
        assert vault.put_bytes(name, name.encode()).created
    assert S3Vault(s3_bucket, "probed", options).put_bytes("g", b"g").created  # another vault object
    assert probe_puts(fault_proxy) == 1


def test_kms_key_matching_follows_what_aws_answers() -> None:
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    arn = f"arn:aws:kms:eu-west-1:111122223333:key/{key}"
    assert kms_key_matches(key, key) and kms_key_matches(key, arn) and kms_key_matches(arn, arn)
    assert kms_key_matches("alias/media", arn), "AWS answers with the key an alias names"
    assert kms_key_matches("my-minio-key", "arn:aws:kms:my-minio-key")
    assert not kms_key_matches(key, arn.replace("1234abcd", "9999abcd"))
    assert not kms_key_matches(key, None)


def test_encryption_settings_from_environment_and_blocks(monkeypatch) -> None:
    monkeypatch.setenv("MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION", "aws:kms")
    monkeypatch.setenv("MEDIAVAULT_S3__SSE_KMS_KEY_ID", "alias/media")
    settings = MediavaultSettings()
    assert (settings.s3.server_side_encryption, settings.s3.sse_kms_key_id) == ("aws:kms", "alias/media")
    assert s3_module.sse_args(settings.s3) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/media",
    }
    monkeypatch.setenv("MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION", "aes256")
    monkeypatch.delenv("MEDIAVAULT_S3__SSE_KMS_KEY_ID")
    assert s3_module.sse_args(MediavaultSettings().s3) == {"ServerSideEncryption": "AES256"}
    monkeypatch.setenv("MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION", "none")
    assert s3_module.sse_args(MediavaultSettings().s3) == {}

    with pytest.raises(ValueError) as no_key:
        S3Options(server_side_encryption="aws:kms")
    assert "sse_kms_key_id" in str(no_key.value)
    with pytest.raises(ValueError) as stray_key:
        S3Options(server_side_encryption="AES256", sse_kms_key_id="k")
    assert "sse_kms_key_id" in str(stray_key.value)
    with pytest.raises(ValueError):
        S3Options(server_side_encryption="aws:kms:dsse")

    from blocks import MediavaultConfig, S3VaultCredentials

    credentials = S3VaultCredentials(server_side_encryption="aws:kms", sse_kms_key_id="alias/media")
    layer = MediavaultConfig(vault_url="s3://b/p", s3=credentials).settings_layer()
    monkeypatch.delenv("MEDIAVAULT_S3__SERVER_SIDE_ENCRYPTION")
    from_block = load_settings(layer).s3
    assert (from_block.server_side_encryption, from_block.sse_kms_key_id) == ("aws:kms", "alias/media")


@pytest.mark.parametrize(
    ("endpoint", "warned"),
    [
        ("http://s3.{host}.example:9000", True),
        ("http://10.1.2.3:9000", True),
        ("https://s3.{host}.example", False),
        ("http://127.0.0.1:9000", False),
        ("http://localhost:9000", False),
        ("http://[::1]:9000", False),
    ],
)
def test_plain_http_to_a_remote_endpoint_is_warned_once(endpoint, warned, caplog) -> None:
    endpoint = endpoint.format(host=uuid.uuid4().hex[:8])
    if endpoint == "http://10.1.2.3:9000":
        s3_module._warned_plain_http.discard(endpoint)  # the same address in every run of this test
    with caplog.at_level(logging.WARNING, logger="mediavault.vault.s3"):
        for _ in range(3):
            make_s3_client(S3Options(endpoint_url=endpoint))  # no request is sent
    records = [r for r in caplog.records if r.name == "mediavault.vault.s3"]
    if not warned:
        assert records == []
        return
    assert len(records) == 1, "once per process"
    message = records[0].getMessage()
    assert "\n" not in message and "plain http://" in message and "https://" in message
    assert urlparse(endpoint).hostname in message
