"""One settings model for the whole project.

Resolution order, highest first: explicit parameters, Prefect blocks, environment
(``MEDIAVAULT_*``), then the embedded defaults under ``$MEDIAVAULT_HOME``.
The block layer is applied by the Prefect side (``blocks/``); this module stays Prefect-free.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path.home() / ".mediavault"


class S3Options(BaseModel):
    """How to reach an S3-compatible store (AWS S3, MinIO, Garage, SeaweedFS)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    path_style: bool = False
    checksum_mode: Literal["when_supported", "when_required"] = Field(
        "when_required",
        description="boto3>=1.36 sends CRC checksums by default, which several "
        "S3-compatible servers reject; 'when_required' turns that off.",
    )
    part_checksums: bool = Field(
        True,
        description="Send a CRC32 with every part of a media upload, taken from the bytes sent, so "
        "that a store that checks them refuses bytes altered on the way. A store that rejects the "
        "header is noticed on the first upload, and uploads go on without it.",
    )
    conditional_writes: bool = Field(
        True,
        description="Use If-None-Match: * for create-if-absent; a probe checks once per process that "
        "the store honours it before the first write. Turn off only for a store without it: the "
        "HEAD-then-PUT fallback is safe for one writer only, so it needs single_writer_lock.",
    )
    single_writer_lock: Path | None = Field(
        None,
        description="With conditional_writes off: a lock file on a local filesystem that the one "
        "writer process holds (fcntl.flock) from its first write until it exits; a second writer "
        "process on this machine is refused. Run exactly one writer machine in that mode.",
    )
    conflict_attempts: int = Field(
        6,
        ge=1,
        description="Attempts of a conditional PUT answered 409 ConditionalRequestConflict (a concurrent "
        "conditional write to the same key) before giving up with a transient error.",
    )
    conflict_backoff_seconds: float = Field(
        0.05, ge=0, description="First pause before repeating a PUT answered 409; doubles up to 2 s."
    )
    server_side_encryption: Literal["none", "AES256", "aws:kms"] = Field(
        "none",
        description="Encryption at rest requested on every object written: 'AES256' (SSE-S3), 'aws:kms' "
        "(SSE-KMS with sse_kms_key_id) or 'none' (the bucket's default applies). A probe write checks "
        "once per process that the store applies it; a store that refuses or ignores it is an error.",
    )
    sse_kms_key_id: str | None = Field(
        None,
        validate_default=True,
        description="The KMS key (id, ARN or alias) for server_side_encryption='aws:kms'.",
    )
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    max_concurrency: int = 8
    max_pool_connections: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 5

    @field_validator("server_side_encryption", mode="before")
    @classmethod
    def _sse_spelling(cls, value: Any) -> Any:
        """Accept any case and an empty value for 'none' (environment variables are typed by hand)."""
        if value is None:
            return "none"
        if isinstance(value, str):
            spelled = {"": "none", "none": "none", "aes256": "AES256", "aws:kms": "aws:kms"}
            return spelled.get(value.strip().lower(), value)
        return value

    @field_validator("sse_kms_key_id", mode="after")
    @classmethod
    def _kms_key_goes_with_sse_kms(cls, value: str | None, info: Any) -> str | None:
        value = value.strip() if value else None
        mode = info.data.get("server_side_encryption")
        if mode == "aws:kms" and not value:
            raise ValueError("server_side_encryption 'aws:kms' needs the KMS key id (s3.sse_kms_key_id)")
        if mode in ("none", "AES256") and value:
            raise ValueError(f"a KMS key id is used only with server_side_encryption 'aws:kms', not {mode!r}")
        return value

    @field_validator("max_pool_connections")
    @classmethod
    def _pool_fits_concurrency(cls, value: int, info: Any) -> int:
        concurrency = info.data.get("max_concurrency", 1)
        return max(value, concurrency)


class IngestLimits(BaseModel):
    """Guards against hostile or broken input."""

    max_transcript_bytes: int = 256 * 1024 * 1024
    max_text_chars: int = 100_000
    max_filename_bytes: int = 255
    duration_tolerance_seconds: float = 5.0
    duration_tolerance_ratio: float = 0.05
    min_free_bytes: int = Field(
        64 * 1024**2, description="Refuse an ingest that would leave less free space in a local vault."
    )


class WebOptions(BaseModel):
    """The HTTP API and dashboard (``mediavault serve``)."""

    model_config = ConfigDict(extra="forbid")
    session_secret: SecretStr | None = Field(
        None, description="Signs session cookies and local download URLs; default: made once in the home"
    )
    session_hours: float = Field(12.0, gt=0, description="Lifetime of a browser session")
    stream_url_ttl_seconds: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Presigned stream URLs (S3): long enough to seek"
    )
    share_url_ttl_seconds: int = Field(
        24 * 3600, ge=60, le=7 * 24 * 3600, description="Signed download URLs for sharing"
    )
    public_s3_endpoint_url: str | None = Field(
        None, description="Sign S3 URLs for this endpoint (behind a proxy, split-horizon DNS)"
    )
    login_attempts_per_minute: int = Field(10, ge=1, description="Failed logins allowed per client address")
    audit_flush_seconds: float = Field(2.0, gt=0, description="Crash loss window of the audit log")
    prefect_ui_url: str | None = Field(
        None, description="Where the dashboard links flow runs; default: PREFECT_UI_URL or PREFECT_API_URL"
    )


class StackOptions(BaseModel):
    """The local stack that ``mediavault up`` runs (Prefect server and worker, dashboard)."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="Where the Prefect server and the dashboard listen")
    prefect_port: int = Field(4200, ge=1, le=65535, description="Prefect API and UI")
    web_port: int = Field(8765, ge=1, le=65535, description="Dashboard and HTTP API")
    work_pool: str = Field("mediavault-process", description="The process work pool of prefect.yaml")
    startup_timeout_seconds: float = Field(180.0, gt=0, description="How long 'up' waits for each part")


GiB = 1024**3


class OpsOptions(BaseModel):
    """Metrics and the capacity check's thresholds (``MEDIAVAULT_OPS__...``)."""

    model_config = ConfigDict(extra="forbid")
    metrics_cache_seconds: float = Field(
        60.0, ge=0, description="How long a metrics snapshot (it reads every manifest) is reused"
    )
    metrics_open_on_loopback: bool = Field(
        False,
        description="/metrics needs no token from a direct loopback client (no proxy headers); keep it off "
        "behind a same-host proxy that adds no X-Forwarded-For",
    )
    metrics_textfile: Path | None = Field(
        None, description="The capacity flow writes the metrics here (node_exporter's textfile collector)"
    )
    pushgateway_url: str | None = Field(None, description="The capacity flow pushes the metrics here")
    max_vault_bytes: int | None = Field(None, ge=0, description="Alert when the vault holds more (hot tier)")
    free_warning_bytes: int = Field(10 * GiB, ge=0, description="Local vault: warn below this free space")
    free_critical_bytes: int = Field(5 * GiB, ge=0, description="Local vault: critical below this")
    max_reindex_lag: int | None = Field(
        1000, ge=0, description="Alert when the index lags more journal records"
    )
    job_events_days: float = Field(
        30.0, gt=0, description="Ingest job events older than this are deleted by the lifecycle flow"
    )
    max_mirror_lag: int | None = Field(
        1000, ge=0, description="Alert when the backup mirror lags more journal records"
    )
    max_hours_since_lifecycle: float | None = Field(
        48.0, gt=0, description="Alert when the last successful lifecycle run is older"
    )
    max_hours_since_verify: float | None = Field(
        8 * 24.0, gt=0, description="Alert when the last successful verify run is older"
    )


class MediavaultSettings(BaseSettings):
    """Every knob mediavault has. Env prefix ``MEDIAVAULT_``, nested with ``__``."""

    model_config = SettingsConfigDict(env_prefix="MEDIAVAULT_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(default_factory=default_home)
    vault_url: str | None = Field(
        None, description="file:///path or s3://bucket/prefix. Default: $MEDIAVAULT_HOME/vault"
    )
    s3: S3Options = Field(default_factory=S3Options)
    mongo_mode: Literal["embedded", "external", "disabled"] = "embedded"
    mongo_url: SecretStr | None = None
    mongo_database: str = "mediavault"
    search_backend: Literal["tantivy", "solr"] = "tantivy"
    solr_url: str | None = Field(None, description="e.g. http://solr:8983/solr")
    solr_mode: Literal["cloud", "standalone"] = "cloud"
    solr_name: str = Field("mediavault", description="Alias (cloud) or live core name (standalone)")
    solr_configset: str = "mediavault"
    solr_username: str | None = None
    solr_password: SecretStr | None = None
    solr_timeout_seconds: float = 30.0
    solr_batch_size: int = 1000
    tantivy_path: Path | None = Field(None, description="Default: $MEDIAVAULT_HOME/search/tantivy")
    reindex_chunk_size: int = 64
    lifecycle_policy_file: Path | None = Field(None, description="YAML retention policies (see docs)")
    mirror_url: str | None = Field(
        None, description="Backup mirror of the vault (file:///path or s3://bucket/prefix); see 'mirror'"
    )
    limits: IngestLimits = Field(default_factory=IngestLimits)
    batch_chunk_size: int = 8
    batch_max_concurrency: int = 4
    web: WebOptions = Field(default_factory=WebOptions)
    stack: StackOptions = Field(default_factory=StackOptions)
    ops: OpsOptions = Field(default_factory=OpsOptions)

    def resolved_vault_url(self) -> str:
        return self.vault_url or (self.home / "vault").resolve().as_uri()

    def identity(self) -> str:
        """A digest of every value, secrets included (``model_dump_json`` masks them), for keying
        per-process caches of clients: settings that differ in any value never share one."""

        def reveal(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return value.get_secret_value()
            if isinstance(value, BaseModel):
                return {name: reveal(getattr(value, name)) for name in type(value).model_fields}
            if isinstance(value, dict):
                return {str(k): reveal(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [reveal(v) for v in value]
            return value if isinstance(value, str | int | float | bool | type(None)) else str(value)

        payload = json.dumps(reveal(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    def with_overrides(self, **overrides: Any) -> MediavaultSettings:
        """A copy with the given non-None values applied on top (explicit parameters win)."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is not None:
                data[key] = value
        return MediavaultSettings(**data)


def load_settings(layer: dict[str, Any] | None = None, **overrides: Any) -> MediavaultSettings:
    """Build settings: ``overrides`` over ``layer`` (e.g. a block's values) over env over defaults."""
    init = {k: v for k, v in (layer or {}).items() if v is not None}
    init.update({k: v for k, v in overrides.items() if v is not None})
    return MediavaultSettings(**init)
