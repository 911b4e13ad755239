"""Run reports, kept in the vault (small JSON, create-if-absent) so they are backed up with it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from mediavault import SCHEMA_VERSION
from mediavault.vault.base import Vault
from mediavault.vault.models import utc_now


def write_report(vault: Vault, kind: str, body: dict[str, Any]) -> str:
    now = utc_now()
    # Microseconds in the name: reports of one second still sort in the order they were written.
    key = f"reports/{kind}/{now:%Y/%m/%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.json"
    document = {"schema_version": SCHEMA_VERSION, "kind": kind, "created_at": now.isoformat(), **body}
    vault.put_bytes(key, json.dumps(document, indent=2, default=str).encode(), "application/json")
    return key
