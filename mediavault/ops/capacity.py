"""Capacity thresholds over a snapshot: what crossed, how badly, in words an operator acts on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mediavault.errors import TerminalError
from mediavault.ops.snapshot import Snapshot
from mediavault.settings import OpsOptions

Level = Literal["warning", "critical"]


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str
    setting: str

    def line(self) -> str:
        setting = f"MEDIAVAULT_OPS__{self.setting.upper()}"
        return f"{self.level.upper()} {self.check}: {self.message} (threshold: {setting})"


class CapacityExceeded(TerminalError):
    """A threshold was crossed; the message lists every finding, one per line."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("capacity check failed:\n" + "\n".join(f.line() for f in findings))


def gib(value: float) -> str:
    return f"{value / 1024**3:.1f} GiB"


def check(snapshot: Snapshot, options: OpsOptions, now: datetime) -> list[Finding]:
    """Every threshold the snapshot crosses, critical ones first."""
    findings: list[Finding] = []
    if options.max_vault_bytes is not None and snapshot.vault_bytes > options.max_vault_bytes:
        findings.append(
            Finding(
                "critical",
                "vault size",
                f"the vault holds {gib(snapshot.vault_bytes)}, over {gib(options.max_vault_bytes)}",
                "max_vault_bytes",
            )
        )
    free = snapshot.local_free_bytes
    if free is not None:
        if free < options.free_critical_bytes:
            findings.append(
                Finding(
                    "critical",
                    "free space",
                    f"{gib(free)} free on the local vault's disk, under {gib(options.free_critical_bytes)}",
                    "free_critical_bytes",
                )
            )
        elif free < options.free_warning_bytes:
            findings.append(
                Finding(
                    "warning",
                    "free space",
                    f"{gib(free)} free on the local vault's disk, under {gib(options.free_warning_bytes)}",
                    "free_warning_bytes",
                )
            )
    lag = snapshot.reindex_lag
    if options.max_reindex_lag is not None and lag is not None and lag > options.max_reindex_lag:
        findings.append(
            Finding(
                "warning",
                "re-index lag",
                f"the live index is {lag} journal records behind the vault (run mediavault reindex)",
                "max_reindex_lag",
            )
        )
    mirror_lag = snapshot.mirror_lag
    if options.max_mirror_lag is not None and mirror_lag is not None and mirror_lag > options.max_mirror_lag:
        findings.append(
            Finding(
                "warning",
                "mirror lag",
                f"the backup mirror is {mirror_lag} journal records behind the vault (run mediavault mirror)",
                "max_mirror_lag",
            )
        )
    for flow, limit, setting in (
        ("lifecycle", options.max_hours_since_lifecycle, "max_hours_since_lifecycle"),
        ("verify", options.max_hours_since_verify, "max_hours_since_verify"),
    ):
        if limit is None:
            continue
        runs = snapshot.flows.get(flow)
        last = runs.last_success if runs else None
        if last is None:
            findings.append(Finding("warning", f"{flow} age", f"no successful {flow} run on record", setting))
        elif (hours := (now - last).total_seconds() / 3600) > limit:
            findings.append(
                Finding(
                    "warning",
                    f"{flow} age",
                    f"the last successful {flow} run was {hours:.1f} h ago ({last:%Y-%m-%d %H:%M} UTC), "
                    f"over {limit:g} h",
                    setting,
                )
            )
    return sorted(findings, key=lambda f: f.level != "critical")
