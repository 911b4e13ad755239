"""Retention policies: defaults, per-owner and per-tag overrides, from a YAML file or a block.

Classes: ``media`` (raw media), ``ai_outputs`` (raw outputs, Parquet, renderings), ``staging``
(in-flight uploads and temp files), ``failed_ingest`` (objects no manifest references).
Manifests and edits are not a class: they never expire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mediavault.errors import InputError

Action = Literal["archive", "expire", "keep"]
CLASSES = ("media", "ai_outputs", "staging", "failed_ingest")
KIND_CLASS = {
    "media": "media",
    "raw-output": "ai_outputs",
    "statements": "ai_outputs",
    "words": "ai_outputs",
    "srt": "ai_outputs",
    "vtt": "ai_outputs",
    "txt": "ai_outputs",
}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    after_days: float = Field(ge=0)
    compress: bool = False


class PolicyOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media: Rule | None = None
    ai_outputs: Rule | None = None


class ArchiveTierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="Vault URL of the archive tier; default <vault>/archive")
    storage_class: str | None = Field(
        None, description="S3 storage class for archive objects (not on Garage)"
    )


class Policies(BaseModel):
    """The whole lifecycle configuration."""

    model_config = ConfigDict(extra="forbid")
    media: Rule = Rule(action="archive", after_days=90)
    ai_outputs: Rule = Rule(action="archive", after_days=365, compress=True)
    staging: Rule = Rule(action="expire", after_days=1)
    failed_ingest: Rule = Rule(action="expire", after_days=7)
    owners: dict[str, PolicyOverride] = Field(default_factory=dict)
    tags: dict[str, PolicyOverride] = Field(default_factory=dict)
    archive: ArchiveTierConfig = Field(default_factory=ArchiveTierConfig)

    @model_validator(mode="after")
    def _staging_rules_only_expire_or_keep(self) -> Policies:
        for name in ("staging", "failed_ingest"):
            if getattr(self, name).action == "archive":
                raise ValueError(f"{name} objects can only be expired or kept, not archived")
        return self

    def rule_for(self, artifact_class: str, owner: str | None, tags: list[str]) -> Rule:
        """Default, then the owner's override, then tag overrides; 'keep' always wins, and among
        tag rules the longest wait wins, so an override can only make data safer or tier later."""
        rule: Rule = getattr(self, artifact_class)
        if owner and owner in self.owners and getattr(self.owners[owner], artifact_class):
            rule = getattr(self.owners[owner], artifact_class)
        tag_rules = [getattr(self.tags[t], artifact_class) for t in sorted(tags) if t in self.tags]
        tag_rules = [r for r in tag_rules if r is not None]
        if tag_rules:
            if any(r.action == "keep" for r in tag_rules):
                return next(r for r in tag_rules if r.action == "keep")
            rule = max(tag_rules, key=lambda r: r.after_days)
        return rule


def load_policies(path: Path | None = None, data: dict[str, Any] | None = None) -> Policies:
    """Policies from a YAML file or a mapping (e.g. a block's); defaults when neither is given."""
    source = str(path) if path else "policies"
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(source, "(file)", f"cannot read lifecycle policies: {exc}") from None
    try:
        return Policies.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(
            source, ".".join(str(p) for p in first["loc"]) or "(document)", first["msg"]
        ) from None
