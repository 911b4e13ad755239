"""The audit log: buffered, durable, readable with filters and by DuckDB, and free of secrets."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mediavault.access.audit import AUDIT_PREFIX, AuditLog, AuditRecord, read_audit, redact, write_records
from mediavault.errors import is_transient
from mediavault.settings import S3Options
from mediavault.vault import LocalVault, Vault
from mediavault.vault.s3 import S3Vault
from tests.conftest import GIVE_UP, hardening_scale
from tests.fault_proxy import Fault, FaultProxy, Rule
from tests.test_tokens import RecordingVault

MEDIA_A = "a" * 64
MEDIA_B = "b" * 64


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


def audit_objects(vault: Vault) -> dict[str, bytes]:
    return {key: vault.get_bytes(key) for key in vault.list_keys(AUDIT_PREFIX)}


def all_lines(vault: Vault) -> list[dict]:
    return [json.loads(line) for data in audit_objects(vault).values() for line in data.splitlines()]


def test_concurrent_records_are_all_written_on_close(vault: Vault) -> None:
    threads_count, each = 6, int(hardening_scale(150, 2000))
    log = AuditLog(vault, flush_seconds=0.05, max_batch=37)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(each):
                log.record(AuditRecord(action="stream", outcome="ok", owner=f"w{worker}", detail={"n": n}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    log.close()  # idempotent
    assert not errors and log.pending == 0
    seen = sorted((line["owner"], line["detail"]["n"]) for line in all_lines(vault))
    assert seen == sorted((f"w{w}", n) for w in range(threads_count) for n in range(each)), "lost or doubled"
    assert len(audit_objects(vault)) > 1, "written in batches"
    per_worker = [r.detail["n"] for r in read_audit(vault, actor="w3", limit=10**6)]
    assert sorted(per_worker) == list(range(each))


def test_close_writes_what_the_flusher_has_not(vault: Vault) -> None:
    log = AuditLog(vault, flush_seconds=3600, max_batch=10**6)  # the flusher never runs on its own

    def work(worker: int) -> None:
        for n in range(50):
            log.record(AuditRecord(action="edit", outcome="ok", actor=f"w{worker}", detail={"n": n}))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert audit_objects(vault) == {} and log.pending == 200
    log.close()
    assert log.pending == 0 and len(all_lines(vault)) == 200
    assert sorted(r.detail["n"] for r in read_audit(vault, actor="w2")) == list(range(50))


def test_records_are_flushed_by_time_and_by_batch_size(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "vault")
    by_time = AuditLog(vault, flush_seconds=0.1, max_batch=1000)
    by_time.record(AuditRecord(action="login", outcome="ok"))
    deadline = time.monotonic() + 5
    while not audit_objects(vault):
        assert time.monotonic() < deadline, "never flushed"
        time.sleep(0.02)
    by_time.close()
    by_size = AuditLog(vault, flush_seconds=3600, max_batch=5)
    for n in range(5):
        by_size.record(AuditRecord(action="export", outcome="ok", detail={"n": n}))
    deadline = time.monotonic() + 5
    while by_size.pending:
        assert time.monotonic() < deadline, "a full batch did not wake the flusher"
        time.sleep(0.02)
    assert len(read_audit(vault, action="export")) == 5
    by_size.close()
    by_size.record(AuditRecord(action="export", outcome="ok", detail={"n": 5}))
    assert len(read_audit(vault, action="export")) == 6, "a record after close is written at once"
    assert by_size.flush() == 0


def test_a_flush_writes_jsonl_objects_per_day(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "vault")
    log = AuditLog(vault, flush_seconds=3600)
    late = AuditRecord(at=at("2024-02-29", "23:59:59.999999"), action="stream", outcome="ok")
    early = AuditRecord(at=at("2024-02-29", "23:59:58"), action="edit", outcome="ok")
    next_day = AuditRecord(at=at("2024-03-01", "00:00:01"), action="denied", outcome="denied")
    for record in (late, next_day, early):
        log.record(record)
    assert log.flush() == 3 and log.pending == 0
    objects = audit_objects(vault)
    assert sorted(k.rsplit("-", 1)[0] for k in objects) == [
        "audit/2024/02/29/235958",
        "audit/2024/03/01/000001",
    ], "one object per UTC day, named by its earliest record"
    assert all(k.endswith(".jsonl") and len(k.rsplit("-", 1)[1]) == len("0" * 32 + ".jsonl") for k in objects)
    lines = all_lines(vault)
    assert [line["at"] for line in lines] == [
        "2024-02-29T23:59:59.999999Z",
        "2024-02-29T23:59:58.000000Z",
        "2024-03-01T00:00:01.000000Z",
    ]
    assert set(lines[0]) == {
        "at", "action", "outcome", "token_id", "owner", "role", "media_id", "client", "actor", "detail",
    }  # fmt: skip
    log.close()


def sample_records() -> list[AuditRecord]:
    def rec(day: str, clock: str, action: str, **fields) -> AuditRecord:
        return AuditRecord(at=at(day, clock), action=action, outcome=fields.pop("outcome", "ok"), **fields)

    return [
        rec("2023-12-31", "23:00:00", "stream", token_id="0123456789ab", owner="alice", media_id=MEDIA_A),
        rec("2024-01-01", "08:00:00", "signed-url", token_id="0123456789ab", owner="alice", media_id=MEDIA_A),
        rec("2024-01-01", "09:00:00", "edit", token_id="ba9876543210", owner="bob", media_id=MEDIA_B),
        rec("2024-01-01", "10:00:00", "denied", outcome="denied", client="10.0.0.9", detail={"why": "scope"}),
        rec("2024-01-02", "07:30:00", "export", token_id="0123456789ab", owner="alice", media_id=MEDIA_B),
        rec("2024-02-15", "12:00:00", "restore", token_id="ba9876543210", owner="bob", media_id=MEDIA_A),
        rec("2024-03-01", "00:00:00", "token-create", actor="cli", detail={"target_token_id": "c" * 12}),
    ]


def test_read_audit_filters_and_orders(vault: Vault) -> None:
    records = sample_records()
    with AuditLog(vault, flush_seconds=3600, max_batch=3) as log:
        for record in records[::2] + records[1::2]:  # arrival order is not time order
            log.record(record)

    def actions(**filters) -> list[str]:
        return [r.action for r in read_audit(vault, **filters)]

    assert actions() == [r.action for r in reversed(records)], "newest first"
    assert read_audit(vault) == list(reversed(records)), "read back exactly as recorded"
    jan1 = at("2024-01-01", "00:00:00")
    assert actions(since=jan1, until=jan1 + timedelta(days=1)) == ["denied", "edit", "signed-url"]
    assert actions(since=at("2024-01-01", "09:00:00"), until=at("2024-01-01", "10:00:00")) == ["edit"]
    assert actions(since=at("2024-01-02", "00:00:00")) == ["token-create", "restore", "export"]
    assert actions(until=jan1) == ["stream"]
    assert actions(actor="0123456789ab") == ["export", "signed-url", "stream"]
    assert actions(actor="bob") == ["restore", "edit"]
    assert actions(actor="cli") == ["token-create"]
    assert actions(media_id=MEDIA_A) == ["restore", "signed-url", "stream"]
    assert actions(action="denied") == ["denied"]
    assert actions(actor="alice", media_id=MEDIA_B) == ["export"]
    assert actions(limit=2) == ["token-create", "restore"]
    assert actions(since=jan1, limit=4) == ["token-create", "restore", "export", "denied"]
    naive = datetime(2024, 1, 1, 9, 30)
    assert actions(since=naive, until=naive + timedelta(hours=1)) == ["denied"], "naive times are UTC"
    assert actions(since=at("2025-01-01")) == [] and actions(since=jan1, until=jan1) == []


def test_read_audit_lists_only_the_prefixes_in_range(tmp_path: Path) -> None:
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    write_records(vault, sample_records())
    vault.listings.clear()
    one_day = read_audit(vault, since=at("2024-01-01", "00:00:00"), until=at("2024-01-02", "00:00:00"))
    assert len(one_day) == 3
    assert vault.listings == ["audit/", "audit/2024/01/01/"], "the oldest object, then the day"
    vault.listings.clear()
    assert len(read_audit(vault, since=at("2024-01-01", "00:00:00"), until=at("2024-03-01", "00:00:00"))) == 5
    assert vault.listings == ["audit/", "audit/2024/02/", "audit/2024/01/"], "whole months by their prefix"
    vault.listings.clear()
    assert len(read_audit(vault, since=at("2024-02-15", "11:00:00"), until=at("2024-02-15", "13:00:00"))) == 1
    assert vault.listings == ["audit/", "audit/2024/02/15/"]
    vault.listings.clear()
    assert [r.action for r in read_audit(vault, limit=1)] == ["token-create"]
    assert "audit/2023/12/31/" not in vault.listings, "stops once the limit is reached"


def test_duckdb_reads_the_audit_objects(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "vault")
    records = sample_records()
    with AuditLog(vault, flush_seconds=3600, max_batch=2) as log:
        for record in records:
            log.record(record)
    con = duckdb.connect()
    source = f"read_json_auto('{vault.root}/audit/**/*.jsonl')"
    assert con.execute(f"select count(*) from {source}").fetchone() == (len(records),)
    (at_type,) = con.execute(f'select typeof("at") from {source} limit 1').fetchone()
    assert at_type.startswith("TIMESTAMP")
    rows = con.execute(
        f"select owner, count(*) from {source} where owner is not null group by owner order by owner"
    ).fetchall()
    assert rows == [("alice", 3), ("bob", 2)]
    (latest,) = con.execute(f"select max(\"at\") from {source} where action = 'restore'").fetchone()
    assert latest.replace(tzinfo=UTC) == at("2024-02-15")


@pytest.mark.parametrize(
    "fields",
    [
        {"detail": {"url": "https://b.s3.amazonaws.com/k?X-Amz-Signature=abc"}},
        {"detail": {"url": "https://b/k?x-amz-signature=abc"}},
        {"detail": {"url": "https://storage.example/k?Expires=1&Signature=abc"}},
        {"detail": {"header": "Bearer mvt_0123456789ab_" + "A" * 43}},
        {"detail": {"nested": {"deeper": ["ok", ("still ok", "mvt_x")]}}},
        {"detail": {"mvt_0123456789ab_secret": "key, not value"}},
        {"client": "mvt_0123456789ab"},
        {"action": "stream?signature=x"},
    ],
)
def test_records_refuse_tokens_and_signed_urls(fields: dict) -> None:
    with pytest.raises(ValidationError) as refused:
        AuditRecord(**{"action": "stream", "outcome": "ok", **fields})
    assert "never hold a token or a signed URL" in str(refused.value)


def test_redact_makes_text_safe_and_keeps_the_rest() -> None:
    url = "https://bucket.s3.amazonaws.com/media/x/original?X-Amz-Algorithm=A&X-Amz-Signature=deadbeef"
    cleaned = redact(f"GET {url} with mvt_0123456789ab_{'Q' * 43} done")
    assert "deadbeef" not in cleaned and "Q" * 10 not in cleaned
    assert cleaned.startswith("GET https://bucket.s3.amazonaws.com/media/x/original?") and cleaned.endswith(
        " done"
    )
    AuditRecord(action="denied", outcome="denied", detail={"request": cleaned})
    assert redact("plain text, nothing to hide") == "plain text, nothing to hide"
    for risky in ("signature=abc", "X-Amz-Signature: abc", "MVT_x", "a?b&Signature=1#frag", "mvt_"):
        AuditRecord(action="denied", outcome="denied", detail={"text": redact(risky)})


FRAGMENTS = ["mvt_", "MVT_", "x-amz-", "X-Amz-", "signature", "Signature", "=", "?", "&", " ", "#", "a_1"]


@pytest.mark.hardening
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
def test_redacted_text_is_always_accepted(text: str) -> None:
    AuditRecord(action="denied", outcome="denied", client=redact(text), detail={redact(text): [redact(text)]})


def test_times_are_utc() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=1))
    record = AuditRecord(at=datetime(2024, 1, 1, 1, 30, tzinfo=paris), action="stream", outcome="ok")
    assert record.at == at("2024-01-01", "00:30:00") and record.at.tzinfo == UTC
    assert AuditRecord(at=datetime(2024, 1, 1), action="x", outcome="ok").at.tzinfo == UTC
    assert AuditRecord(action="x", outcome="ok").at.tzinfo == UTC
    assert AuditRecord.model_validate_json(record.model_dump_json()) == record
    with pytest.raises(ValidationError):
        AuditRecord(action="x", outcome="ok", unexpected=1)


# ---- faults at the wire --------------------------------------------------------------------------


@pytest.mark.hardening
def test_a_failed_flush_keeps_its_records_for_the_next(
    fault_proxy: FaultProxy, proxied_options: S3Options, s3_options: S3Options, s3_bucket: str
) -> None:
    vault = S3Vault(s3_bucket, "audit-faults", proxied_options)
    direct = S3Vault(s3_bucket, "audit-faults", s3_options)
    vault.put_bytes("warm-up", b"probe the store before the faults")
    log = AuditLog(vault, flush_seconds=3600, max_batch=100)  # the flusher thread stays asleep
    for n in range(10):
        log.record(AuditRecord(action="stream", outcome="ok", detail={"n": n}))
    broken = Rule(Fault.error(500), method="PUT", path=r"/audit/", nth=1, count=GIVE_UP)
    with fault_proxy.faults(broken), pytest.raises(Exception) as failed:
        log.flush()
    assert broken.fired == GIVE_UP and is_transient(failed.value)
    assert log.pending == 10 and log.last_error is failed.value
    assert audit_objects(direct) == {}, "nothing written"
    log.record(AuditRecord(action="stream", outcome="ok", detail={"n": 10}))
    assert log.flush() == 11 and log.pending == 0 and log.last_error is None
    assert sorted(r.detail["n"] for r in read_audit(direct)) == list(range(11))
    log.close()


@pytest.mark.hardening
def test_a_flush_that_landed_but_lost_its_answer_leaves_no_duplicate(
    fault_proxy: FaultProxy, proxied_options: S3Options, s3_options: S3Options, s3_bucket: str
) -> None:
    vault = S3Vault(s3_bucket, "audit-lost", proxied_options)
    direct = S3Vault(s3_bucket, "audit-lost", s3_options)
    vault.put_bytes("warm-up", b"probe the store before the faults")
    log = AuditLog(vault, flush_seconds=3600, max_batch=100)
    for n in range(3):
        log.record(AuditRecord(action="edit", outcome="ok", detail={"n": n}))
    # Every attempt lands, and every answer is lost: the client sees only errors.
    lost = Rule(Fault.reset(after_forward=True), method="PUT", path=r"/audit/", nth=1, count=GIVE_UP)
    with fault_proxy.faults(lost), pytest.raises(Exception) as failed:
        log.flush()
    assert is_transient(failed.value)
    assert lost.fired == GIVE_UP and log.pending == 3
    assert len(audit_objects(direct)) == 1, "the object landed"
    log.record(AuditRecord(action="edit", outcome="ok", detail={"n": 3}))
    log.close()
    assert sorted(r.detail["n"] for r in read_audit(direct)) == [0, 1, 2, 3], "no record twice"


def test_read_audit_walks_only_the_days_records_can_be_in(tmp_path: Path) -> None:
    """Any range, however wide, is bounded by the oldest audit object and tomorrow."""
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    write_records(vault, sample_records())
    vault.listings.clear()
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    assert read_audit(vault, since=first, until=last) == list(reversed(sample_records()))
    # the days from tomorrow back to 2023-12-31 (the oldest), not the 3.6 million of the range
    assert vault.listings[0] == "audit/" and len(vault.listings) < 100, vault.listings
    assert read_audit(vault, until=first) == [] and read_audit(vault, since=last) == []
    assert read_audit(vault, since=first, until=at("2024-01-01", "00:00:00")) == [sample_records()[0]]
    assert read_audit(LocalVault(tmp_path / "empty"), since=first, until=last) == []
