"""The append-only change journal: ``journal/<seq>.json``, gapless and totally ordered.

A writer claims sequence ``n`` with a create-if-absent write, and only tries ``n`` after seeing
``n-1`` exist, so the sequence has no gaps and readers can resume from any checkpoint with
``list_keys(start_after=...)``. The tail is found with an exponential + binary search of HEADs,
so no mutable "head" object is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from mediavault.vault.base import Vault
from mediavault.vault.keys import JOURNAL_PREFIX, journal_key, parse_journal_seq
from mediavault.vault.models import JournalRecord, utc_now

_tail_hints: dict[str, int] = {}
_hints_lock = threading.Lock()


def _exists(vault: Vault, seq: int) -> bool:
    return seq <= 0 or vault.head(journal_key(seq)) is not None


def find_tail(vault: Vault) -> int:
    """The highest sequence number written so far (0 for an empty journal)."""
    with _hints_lock:
        low = _tail_hints.get(vault.url, 0)
    if not _exists(vault, low):
        low = 0
    step = 1
    high = low + step
    while _exists(vault, high):
        low = high
        step *= 2
        high = low + step
    while high - low > 1:
        middle = (low + high) // 2
        if _exists(vault, middle):
            low = middle
        else:
            high = middle
    return low


def append(
    vault: Vault,
    change: str,
    media_id: str,
    manifest_version: int,
    manifest_key: str,
    run_id: str | None = None,
) -> JournalRecord:
    """Append one record; retries on the next number when a concurrent writer took one."""
    seq = find_tail(vault) + 1
    while True:
        record = JournalRecord(
            seq=seq,
            recorded_at=utc_now(),
            change=change,
            media_id=media_id,  # type: ignore[arg-type]
            manifest_version=manifest_version,
            manifest_key=manifest_key,
            run_id=run_id,
        )
        if vault.put_bytes(journal_key(seq), record.model_dump_json().encode(), "application/json").created:
            with _hints_lock:
                _tail_hints[vault.url] = max(_tail_hints.get(vault.url, 0), seq)
            return record
        seq += 1


def read(vault: Vault, after_seq: int = 0) -> Iterator[JournalRecord]:
    """Records strictly after ``after_seq``, in order."""
    start_after = journal_key(after_seq) if after_seq > 0 else None
    for key in vault.list_keys(JOURNAL_PREFIX, start_after=start_after):
        if parse_journal_seq(key) is not None:
            yield JournalRecord.model_validate_json(vault.get_bytes(key))
