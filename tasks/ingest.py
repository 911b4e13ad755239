"""Ingest tasks: each wraps one pure step from ``mediavault.ingest.pipeline``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mediavault import SCHEMA_VERSION, progress
from mediavault.index import status
from mediavault.ingest import inbox
from mediavault.ingest import pipeline as ingest
from mediavault.ingest.pipeline import (
    IngestRequest,
    PreparedIngest,
    PreparedRun,
    RunRequest,
    StoredRun,
)
from mediavault.settings import MediavaultSettings
from mediavault.vault import vault_from_settings
from mediavault.vault.base import Vault
from mediavault.vault.models import Artifact
from tasks.common import RETRYING


@task(name="validate inputs", cache_policy=NO_CACHE, persist_result=False)
def validate_inputs(
    request: IngestRequest, settings: MediavaultSettings, vault: Vault | None = None
) -> PreparedIngest:
    """Parse and check every input; bad input fails here, unretried, before any write."""
    prepared = ingest.prepare(request, settings)
    if vault is not None:
        ingest.check_free_space(vault, prepared, settings)
    get_run_logger().info(
        "validated %s (%s, %.1fs) with %d output(s)",
        prepared.media.display,
        prepared.probe.container,
        prepared.probe.duration_seconds or 0,
        len(prepared.outputs),
    )
    return prepared


def _logging_progress(description: str, total: int):
    logger = get_run_logger()
    state = {"done": 0, "next": 0.25}

    def update(count: int) -> None:
        state["done"] += count
        if total and state["done"] / total >= state["next"]:
            logger.info("%s: %d%% of %d bytes", description, int(100 * state["done"] / total), total)
            state["next"] += 0.25

    return update


def _source_fingerprint(context: Any, parameters: dict[str, Any]) -> str:
    prepared: PreparedIngest = parameters["prepared"]
    vault: Vault = parameters["vault"]
    source = prepared.media
    return f"store-media:{vault.url}:{source.display}:{source.version}"


@task(name="store media", cache_key_fn=_source_fingerprint, cache_expiration=timedelta(hours=6), **RETRYING)
def store_media(vault: Vault, prepared: PreparedIngest) -> tuple[Artifact, bool]:
    """Stream the media into the vault, content-addressed, hashing in the same pass."""
    description = f"upload {prepared.media.name}"
    callback = progress.reporter(description, prepared.media.size) or _logging_progress(
        description, prepared.media.size
    )
    ingest.ensure_vault_descriptor(vault)
    artifact, created = ingest.store_media(vault, prepared, callback)
    get_run_logger().info(
        "media %s: %s (%d bytes)", "stored" if created else "already stored", artifact.sha256, artifact.size
    )
    return artifact, created


def _run_content_key(context: Any, parameters: dict[str, Any]) -> str:
    prepared: PreparedIngest = parameters["prepared"]
    return (
        f"store-run:{parameters['vault'].url}:{parameters['media_id']}:"
        f"{ingest.run_id_for(prepared)}:schema{SCHEMA_VERSION}"
    )


@task(name="store AI run", cache_key_fn=_run_content_key, cache_expiration=timedelta(hours=6), **RETRYING)
def store_run(vault: Vault, media_id: str, prepared: PreparedIngest) -> StoredRun | None:
    """Raw outputs byte-exact, normalized Parquet, SRT/VTT/TXT. Cached on the content hash."""
    stored = ingest.store_run(vault, media_id, prepared)
    if stored:
        get_run_logger().info(
            "run %s: %d statements, %d new objects",
            stored.run.run_id,
            stored.run.statement_count,
            stored.created_objects,
        )
    return stored


@task(name="commit manifest", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def commit_manifest(vault: Vault, prepared: PreparedIngest, media: Artifact, stored: StoredRun | None):
    """Write the manifest last, then the journal record."""
    result = ingest.commit_ingest(vault, prepared, media, stored)
    get_run_logger().info(
        "manifest v%d %s",
        result.manifest.version,
        "written" if result.changed else "unchanged (already committed)",
    )
    return result


@task(name="validate added run", cache_policy=NO_CACHE, persist_result=False)
def validate_added_run(request: RunRequest, settings: MediavaultSettings, vault: Vault) -> PreparedRun:
    """Check a translation or summary against its media item; bad input fails here, unretried."""
    prepared = ingest.prepare_run(vault, request, settings)
    ingest.check_free_space(vault, prepared, settings)
    get_run_logger().info(
        "validated %s %s of %s (%s)",
        prepared.kind,
        prepared.primary.source.display,
        prepared.media_id,
        ", ".join(o.format for o in prepared.outputs),
    )
    return prepared


def _added_run_key(context: Any, parameters: dict[str, Any]) -> str:
    prepared: PreparedRun = parameters["prepared"]
    return (
        f"store-added-run:{parameters['vault'].url}:{parameters['media_id']}:"
        f"{prepared.run_id}:schema{SCHEMA_VERSION}"
    )


@task(name="store added run", cache_key_fn=_added_run_key, cache_expiration=timedelta(hours=6), **RETRYING)
def store_added_run(vault: Vault, media_id: str, prepared: PreparedRun) -> StoredRun:
    """A translation's raw output, Parquet and renderings, or a summary byte-exact."""
    stored = ingest.store_added_run(vault, media_id, prepared)
    get_run_logger().info(
        "%s run %s: %d statements, %d new objects",
        prepared.kind,
        stored.run.run_id,
        stored.run.statement_count,
        stored.created_objects,
    )
    return stored


@task(name="commit added run", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def commit_added_run(vault: Vault, media_id: str, stored: StoredRun):
    """Write the manifest version naming the run, then the journal record."""
    result = ingest.commit_added_run(vault, media_id, stored)
    get_run_logger().info(
        "manifest v%d %s",
        result.manifest.version,
        "written" if result.changed else "unchanged (already committed)",
    )
    return result


@task(name="record status", cache_policy=NO_CACHE, persist_result=False, **RETRYING)
def record_status(
    settings: MediavaultSettings,
    job_id: str,
    event: str,
    media_id: str | None = None,
    manifest: Any = None,
    to_status: str | None = None,
    **detail: Any,
) -> bool:
    """Mirror progress into MongoDB (when configured): media state machine and job events."""
    database = status.connect(settings)
    if database is None:
        return False
    if to_status and media_id:
        fields = (
            status.manifest_fields(vault_from_settings(settings), manifest) if manifest is not None else None
        )
        status.transition(database, media_id, to_status, job_id, fields)
    status.record_event(database, job_id, event, media_id=media_id, **detail)
    return True


@task(name="ingest chunk", cache_policy=NO_CACHE, persist_result=False)
def ingest_chunk(
    vault: Vault,
    items: list[inbox.InboxItem],
    defaults: dict[str, Any],
    settings: MediavaultSettings,
    job_id: str,
) -> list[inbox.ItemResult]:
    """Ingest a chunk of inbox items one by one; a bad item fails alone with its reason."""
    logger = get_run_logger()
    database = status.connect(settings)
    results = []
    for item in items:
        result = inbox.ingest_item(vault, item, defaults, settings, database, job_id)
        if result.ok:
            logger.info("%s: ok (%s, %d new objects)", item.name, result.media_id, result.created_objects)
            if result.warning:
                logger.warning("%s: %s", item.name, result.warning)
        else:
            logger.warning("%s: FAILED: %s", item.name, result.error)
        results.append(result)
    return results
