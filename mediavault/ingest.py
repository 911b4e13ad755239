"""Ingest: media plus AI outputs into the vault, as pure steps that Prefect tasks wrap.

Order: validate everything -> store media (content-addressed) -> store raw outputs byte-exact ->
normalized Parquet -> SRT/VTT/TXT -> manifest (last) -> journal. Nothing is committed until the
manifest exists, so a failure or kill at any step leaves at most unreferenced objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mediavault import SCHEMA_VERSION, manifests
from mediavault.errors import InputError, InsufficientSpace, ObjectsVanished
from mediavault.formats import FORMAT_RICHNESS, FORMATS, Transcript, detect_format, parse_output
from mediavault.formats.subtitles import render_srt, render_txt, render_vtt
from mediavault.hashing import sha256_bytes
from mediavault.models import (
    Artifact,
    MediaInfo,
    MediaMetadata,
    MediaProbe,
    OutputRecord,
    Run,
    RunProvenance,
    compute_run_id,
    utc_now,
)
from mediavault.parquet import statements_table, table_to_parquet_bytes, words_table
from mediavault.probe import content_type_for, probe_media
from mediavault.settings import MediavaultSettings
from mediavault.sources import Source, resolve_source
from mediavault.vault import pins
from mediavault.vault.base import ProgressCallback, Vault
from mediavault.vault.keys import VAULT_DESCRIPTOR, media_original, run_derived, run_raw

STORE_ATTEMPTS = 3
OUTPUT_CONTENT_TYPES = {"json": "application/json", "srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass
class OutputSpec:
    """One AI output to ingest; ``format`` is detected from the name when None."""

    location: str
    format: str | None = None


@dataclass
class IngestRequest:
    media: str
    outputs: list[OutputSpec] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidatedOutput:
    source: Source
    format: str
    data: bytes
    sha256: str
    transcript: Transcript


@dataclass
class PreparedIngest:
    """Everything validated and probed; no byte has been written yet."""

    media: Source
    probe: MediaProbe
    metadata: MediaMetadata
    provenance: RunProvenance
    outputs: list[ValidatedOutput]

    @property
    def primary(self) -> ValidatedOutput | None:
        if not self.outputs:
            return None
        return min(self.outputs, key=lambda o: FORMAT_RICHNESS.index(o.format))


@dataclass
class StoredRun:
    run: Run
    artifacts: list[Artifact]
    created_objects: int
    existing: bool = False  # the run is already committed; ``artifacts`` are the ones stored again


@dataclass
class IngestResult:
    media_id: str
    run_id: str | None
    manifest_version: int
    changed: bool
    created_objects: int
    journal_seq: int | None
    statement_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _model(cls: type, data: dict[str, Any], file: str, field_prefix: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "(value)"
        raise InputError(file, f"{field_prefix}.{location}", first["msg"]) from None


def _check_duration(output: ValidatedOutput, probe: MediaProbe, settings: MediavaultSettings):
    if probe.duration_seconds is None:
        return
    limits = settings.limits
    allowed = (
        probe.duration_seconds * (1 + limits.duration_tolerance_ratio) + limits.duration_tolerance_seconds
    )
    latest = output.transcript.max_time()
    if latest > allowed:
        raise InputError(
            output.source.display,
            "segments.end",
            f"transcript runs to {latest:.3f}s but the media lasts {probe.duration_seconds:.3f}s "
            "(is this the output for another file?)",
        )


def prepare(request: IngestRequest, settings: MediavaultSettings, s3_client: Any = None) -> PreparedIngest:
    """Validate every input up front. Raises InputError naming the file and field."""
    limits = settings.limits
    metadata = _model(MediaMetadata, request.metadata, request.media, "metadata")
    provenance = _model(RunProvenance, request.provenance, request.media, "provenance")
    media = resolve_source(request.media, "media", limits, settings.s3, s3_client)
    outputs: list[ValidatedOutput] = []
    for index, spec in enumerate(request.outputs):
        field_name = f"outputs[{index}]"
        source = resolve_source(spec.location, field_name, limits, settings.s3, s3_client)
        data = source.read_all(limits.max_transcript_bytes, field_name)
        format_name = spec.format or detect_format(source.name, data)
        if format_name not in FORMATS:
            raise InputError(
                source.display, "format", f"unknown format {format_name!r}; supported: {sorted(FORMATS)}"
            )
        transcript = parse_output(format_name, data, source.display, limits.max_text_chars)
        outputs.append(ValidatedOutput(source, format_name, data, sha256_bytes(data), transcript))
    formats = [o.format for o in outputs]
    for duplicate in {f for f in formats if formats.count(f) > 1}:
        raise InputError(
            request.media,
            "outputs",
            f"two outputs of format {duplicate!r}; one run has one output per format",
        )
    probe = probe_media(media)
    for output in outputs:
        _check_duration(output, probe, settings)
    return PreparedIngest(media, probe, metadata, provenance, outputs)


def check_free_space(vault: Vault, prepared: PreparedIngest, settings: MediavaultSettings) -> None:
    """Refuse to fill a local vault: media plus outputs must leave limits.min_free_bytes free."""
    free_bytes = getattr(vault, "free_bytes", None)
    if free_bytes is None:
        return
    needed = prepared.media.size + sum(len(o.data) for o in prepared.outputs) * 3
    available = free_bytes()
    if available - needed < settings.limits.min_free_bytes:
        raise InsufficientSpace(
            f"refusing to ingest {prepared.media.display}: {vault.url} has {available:,} bytes free, "
            f"the ingest needs about {needed:,} and limits.min_free_bytes keeps "
            f"{settings.limits.min_free_bytes:,}"
        )


def store_media(
    vault: Vault, prepared: PreparedIngest, progress: ProgressCallback | None = None
) -> tuple[Artifact, bool]:
    """Stream the media into the vault, hashing in the same pass; its SHA-256 is the media id.

    Returns the artifact and whether the object was newly created."""
    content_type = content_type_for(prepared.probe)
    with prepared.media.open_stream() as stream:
        result = vault.put_stream(stream, lambda sha: media_original(sha), content_type, progress=progress)
    # S3 reads are pinned to the validated ETag; a local file is checked after the copy instead.
    prepared.media.check_unchanged()
    artifact = Artifact(
        key=result.key, sha256=result.sha256, size=result.size, kind="media", content_type=content_type
    )
    return artifact, result.created


def _put_derived(
    vault: Vault, key: str, data: bytes, kind: str, content_type: str, run_id: str, format_name: str | None
) -> tuple[Artifact, bool]:
    for _ in range(STORE_ATTEMPTS):
        result = vault.put_bytes(key, data, content_type)
        sha, size = result.sha256, result.size
        if result.created:
            break
        # Left by an interrupted attempt: describe what is stored, not what we just rendered.
        try:
            existing = vault.get_bytes(key)
        except KeyError:
            continue  # a collector removed it meanwhile: store it again
        sha, size = sha256_bytes(existing), len(existing)
        break
    else:
        raise ObjectsVanished([key])
    artifact = Artifact(
        key=key,
        sha256=sha,
        size=size,
        kind=kind,  # type: ignore[arg-type]
        content_type=content_type,
        run_id=run_id,
        format=format_name,
    )
    return artifact, result.created


def ensure_vault_descriptor(vault: Vault) -> None:
    """Write ``vault.json`` once, so a future reader knows the layout and schema version."""
    if vault.head(VAULT_DESCRIPTOR) is None:
        descriptor = {
            "format": "mediavault",
            "schema_version": SCHEMA_VERSION,
            "layout": "docs/architecture.md",
            "created_at": utc_now().isoformat(),
        }
        vault.put_bytes(VAULT_DESCRIPTOR, json.dumps(descriptor, indent=2).encode(), "application/json")


def run_id_for(prepared: PreparedIngest) -> str:
    return compute_run_id(_output_records(prepared), prepared.provenance)


def _output_records(prepared: PreparedIngest) -> list[OutputRecord]:
    return [
        OutputRecord(format=o.format, original_filename=o.source.name, sha256=o.sha256, size=len(o.data))
        for o in prepared.outputs
    ]


def store_run(vault: Vault, media_id: str, prepared: PreparedIngest) -> StoredRun | None:
    """Store the raw outputs byte-exact, then their Parquet and subtitle renderings."""
    primary = prepared.primary
    if primary is None:
        return None
    records = _output_records(prepared)
    run_id = compute_run_id(records, prepared.provenance)
    committed = manifests.latest_manifest(vault, media_id)
    existing = committed.run(run_id) if committed is not None else None
    expired: set[str] = set()
    if committed is not None and existing is not None:
        # The same outputs again: only objects retention expired are stored again (revived).
        expired = {a.key for a in committed.artifacts if a.run_id == run_id and a.tier == "expired"}
        if not expired:
            return StoredRun(existing, [], 0, existing=True)
    transcript = primary.transcript
    language = transcript.language or prepared.metadata.language
    pieces: list[tuple[str, bytes, str, str, str | None]] = []
    for output in prepared.outputs:
        extension = FORMATS[output.format]
        pieces.append(
            (
                run_raw(media_id, run_id, output.format, extension),
                output.data,
                "raw-output",
                OUTPUT_CONTENT_TYPES[extension],
                output.format,
            )
        )
    source_sha = primary.sha256
    pieces += [
        (
            run_derived(media_id, run_id, "statements.parquet"),
            table_to_parquet_bytes(statements_table(transcript, media_id, run_id, source_sha)),
            "statements",
            "application/vnd.apache.parquet",
            None,
        ),
        (
            run_derived(media_id, run_id, "words.parquet"),
            table_to_parquet_bytes(words_table(transcript, media_id, run_id, source_sha)),
            "words",
            "application/vnd.apache.parquet",
            None,
        ),
        (
            run_derived(media_id, run_id, "transcript.srt"),
            render_srt(transcript.statements).encode(),
            "srt",
            "application/x-subrip",
            None,
        ),
        (
            run_derived(media_id, run_id, "transcript.vtt"),
            render_vtt(transcript.statements).encode(),
            "vtt",
            "text/vtt",
            None,
        ),
        (
            run_derived(media_id, run_id, "transcript.txt"),
            render_txt(transcript.statements).encode(),
            "txt",
            "text/plain; charset=utf-8",
            None,
        ),
    ]
    artifacts: list[Artifact] = []
    created = 0
    for key, data, kind, content_type, format_name in pieces:
        if existing is not None and key not in expired:
            continue
        artifact, was_created = _put_derived(vault, key, data, kind, content_type, run_id, format_name)
        artifacts.append(artifact)
        created += was_created
    if existing is not None:
        return StoredRun(existing, artifacts, created, existing=True)
    run = Run(
        run_id=run_id,
        provenance=prepared.provenance,
        created_at=utc_now(),
        outputs=records,
        primary_format=primary.format,
        language=language,
        statement_count=len(transcript.statements),
        word_count=sum(len(s.words or []) for s in transcript.statements),
        speakers=transcript.speakers(),
    )
    return StoredRun(run, artifacts, created)


def commit_ingest(
    vault: Vault, prepared: PreparedIngest, media: Artifact, stored: StoredRun | None
) -> manifests.CommitResult:
    """Write the manifest last: a new media item, or a new run on an existing one.

    The commit runs under a pin (see ``mediavault.vault.pins``): once no collector claims the
    media id, every object the manifest will name must still exist, or ObjectsVanished is raised
    and the caller stores them again. Nothing can delete them between that check and the commit.
    """
    media_id = media.sha256
    pin_key = pins.pin(vault, media_id)
    try:
        pins.wait_unclaimed(vault, media_id)
        # What this commit may name as hot: the media (new, or revived if it had expired) and the
        # run's objects (new, or the expired ones stored again). The pin keeps them from here on.
        referenced = [media, *(stored.artifacts if stored else [])]
        missing = [a.key for a in referenced if vault.head(a.key) is None]
        if missing:
            raise ObjectsVanished(missing)
        return _commit_manifest(vault, prepared, media, stored)
    finally:
        pins.unpin(vault, pin_key)


def _commit_manifest(
    vault: Vault, prepared: PreparedIngest, media: Artifact, stored: StoredRun | None
) -> manifests.CommitResult:
    media_id = media.sha256

    def derive(current):
        if current is None:
            return manifests.Manifest(
                schema_version=SCHEMA_VERSION,
                media_id=media_id,
                version=1,
                previous_version=None,
                created_at=utc_now(),
                change="ingest",
                metadata=prepared.metadata,
                media=MediaInfo(
                    sha256=media.sha256,
                    size=media.size,
                    original_filename=prepared.media.name,
                    content_type=media.content_type,
                    probe=prepared.probe,
                ),
                runs=[stored.run] if stored else [],
                artifacts=[media, *(stored.artifacts if stored else [])],
                ingested_at=utc_now(),
            )
        updated = current.model_copy(deep=True)
        # The user supplied again what retention expired: it is hot again.
        revived = {media.key: media, **{a.key: a for a in (stored.artifacts if stored else [])}}
        changed = False
        for index, artifact in enumerate(updated.artifacts):
            if artifact.tier == "expired" and artifact.key in revived:
                updated.artifacts[index] = revived[artifact.key].model_copy(
                    update={"tier_changed_at": utc_now()}
                )
                changed = True
        updated.change = "restore"
        if stored is not None and current.run(stored.run.run_id) is None:
            updated.change = "new-run"
            updated.runs.append(stored.run)
            updated.artifacts.extend(stored.artifacts)
            changed = True
        if not changed:
            return None
        updated.created_at = utc_now()
        return updated

    return manifests.commit(vault, media_id, derive, stored.run.run_id if stored else None)


def ingest(
    vault: Vault,
    request: IngestRequest,
    settings: MediavaultSettings,
    progress: ProgressCallback | None = None,
) -> IngestResult:
    """All steps in one call (the CLI and batch chunks use this; the flow calls the steps)."""
    prepared = prepare(request, settings)
    check_free_space(vault, prepared, settings)
    ensure_vault_descriptor(vault)
    for attempt in range(1, STORE_ATTEMPTS + 1):
        media, media_created = store_media(vault, prepared, progress)
        stored = store_run(vault, media.sha256, prepared)
        try:
            committed = commit_ingest(vault, prepared, media, stored)
            break
        except ObjectsVanished:
            if attempt == STORE_ATTEMPTS:
                raise
    return IngestResult(
        media_id=media.sha256,
        run_id=stored.run.run_id if stored else None,
        manifest_version=committed.manifest.version,
        changed=committed.changed,
        created_objects=(
            int(media_created) + (stored.created_objects if stored else 0) + int(committed.changed)
        ),
        journal_seq=committed.journal_seq,
        statement_count=stored.run.statement_count if stored else 0,
    )
