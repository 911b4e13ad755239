"""Ingest: media plus AI outputs into the vault, as pure steps that Prefect tasks wrap.

Order: validate everything -> store media (content-addressed) -> store raw outputs byte-exact ->
normalized Parquet -> SRT/VTT/TXT -> manifest (last) -> journal. Nothing is committed until the
manifest exists, so a failure or kill at any step leaves at most unreferenced objects.

Translations and summaries are runs of their own kinds (``add_run``): a translation of one of the
media's transcript runs (any transcript format; Parquet and renderings like a transcript), or a
summary/notes document (Markdown or JSON, stored byte-exact, no statements). They go through the
same steps, without the media, and commit a new manifest version naming them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError

from mediavault import SCHEMA_VERSION
from mediavault.errors import InputError, InsufficientSpace, ObjectsVanished
from mediavault.formats import (
    FORMAT_RICHNESS,
    FORMATS,
    SUMMARY_CONTENT_TYPES,
    SUMMARY_FORMATS,
    SUMMARY_RICHNESS,
    Transcript,
    detect_format,
    detect_summary_format,
    parse_output,
    validate_summary,
)
from mediavault.formats.parquet import statements_table, table_to_parquet_bytes, words_table
from mediavault.formats.subtitles import render_srt, render_txt, render_vtt
from mediavault.formats.summary import MAX_SUMMARY_BYTES, summary_format_name
from mediavault.ingest.probe import content_type_for, probe_media
from mediavault.ingest.sources import Source, resolve_source
from mediavault.settings import MediavaultSettings
from mediavault.vault import manifests, pins
from mediavault.vault.base import ProgressCallback, Vault
from mediavault.vault.hashing import sha256_bytes
from mediavault.vault.keys import (
    RUN_ID_RE,
    SHA256_RE,
    VAULT_DESCRIPTOR,
    media_original,
    run_derived,
    run_raw,
)
from mediavault.vault.models import (
    Artifact,
    Manifest,
    MediaInfo,
    MediaMetadata,
    MediaProbe,
    OutputRecord,
    Run,
    RunKind,
    RunProvenance,
    compute_run_id,
    language_tag,
    utc_now,
)

STORE_ATTEMPTS = 3
OUTPUT_CONTENT_TYPES = {"json": "application/json", "srt": "application/x-subrip", "vtt": "text/vtt"}
ADDED_RUN_KINDS = ("translation", "summary")
LANGUAGE_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,34}")
"""A language tag as stored and indexed: ``fr``, ``pt-BR``, ``zh_Hant``; one term, no spaces."""


@dataclass
class OutputSpec:
    """One AI output to ingest; ``format`` is detected from the name when None."""

    location: str
    format: str | None = None


@dataclass
class RunRequest:
    """A translation or a summary to add as a run of its own kind.

    ``kind``: ``translation`` (of the transcript run ``source_run_id``, into ``language``) or
    ``summary`` (``source_run_id`` and ``language`` optional). ``media_id`` names the committed
    media item for ``add_run``; inside an ``IngestRequest`` it is not needed, and the source run is
    the transcript run of that same ingest."""

    kind: str
    outputs: list[OutputSpec] = field(default_factory=list)
    source_run_id: str | None = None
    language: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    media_id: str | None = None


@dataclass
class IngestRequest:
    media: str
    outputs: list[OutputSpec] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    derived: list[RunRequest] = field(default_factory=list)
    """Translations and summaries of this ingest's transcript, committed in the same manifest."""


@dataclass
class ValidatedOutput:
    source: Source
    format: str
    data: bytes
    sha256: str
    transcript: Transcript | None
    """None for a summary document, which is kept as received and not parsed into statements."""

    def record(self) -> OutputRecord:
        return OutputRecord(
            format=self.format, original_filename=self.source.name, sha256=self.sha256, size=len(self.data)
        )


@dataclass
class PreparedRun:
    """A validated translation or summary; no byte has been written yet."""

    kind: RunKind
    provenance: RunProvenance
    outputs: list[ValidatedOutput]
    language: str | None
    source_run_id: str | None
    source_language: str | None = None
    media_id: str | None = None
    """Set by ``prepare_run`` (a run added to a committed item); None inside an ingest."""

    @property
    def primary(self) -> ValidatedOutput:
        order = SUMMARY_RICHNESS if self.kind == "summary" else FORMAT_RICHNESS
        return min(self.outputs, key=lambda o: order.index(o.format))

    @property
    def run_id(self) -> str:
        records = [o.record() for o in self.outputs]
        return compute_run_id(records, self.provenance, self.kind, self.source_run_id, self.language)


@dataclass
class PreparedIngest:
    """Everything validated and probed; no byte has been written yet."""

    media: Source
    probe: MediaProbe
    metadata: MediaMetadata
    provenance: RunProvenance
    outputs: list[ValidatedOutput]
    derived: list[PreparedRun] = field(default_factory=list)

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
    added_runs: list[str] = field(default_factory=list)
    """Translations and summaries committed with the transcript (an inbox item's sidecars)."""

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
    if probe.duration_seconds is None or output.transcript is None:
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
    outputs = _transcript_outputs(request.outputs, request.media, settings, s3_client)
    probe = probe_media(media)
    for output in outputs:
        _check_duration(output, probe, settings)
    prepared = PreparedIngest(media, probe, metadata, provenance, outputs)
    planned = [_new_transcript_run(prepared, run_id_for(prepared))] if outputs else []
    for index, derived in enumerate(request.derived):
        if derived.source_run_id is None and planned:
            derived = RunRequest(**{**derived.__dict__, "source_run_id": planned[0].run_id})
        label = derived.outputs[0].location if derived.outputs else f"{request.media} derived[{index}]"
        prepared.derived.append(
            _validate_run(derived, settings, planned, probe, metadata.language, label, "", s3_client)
        )
    return prepared


def _transcript_outputs(
    specs: list[OutputSpec], label: str, settings: MediavaultSettings, s3_client: Any
) -> list[ValidatedOutput]:
    """Read and parse AI outputs in the transcript formats (WhisperX/Whisper JSON, SRT, VTT)."""
    limits = settings.limits
    outputs: list[ValidatedOutput] = []
    for index, spec in enumerate(specs):
        field_name = f"outputs[{index}]"
        source = resolve_source(spec.location, field_name, limits, settings.s3, s3_client)
        data = source.read_all(limits.max_transcript_bytes, field_name)
        format_name = spec.format or detect_format(source.name, data, source.display)
        if format_name not in FORMATS:
            raise InputError(
                source.display, "format", f"unknown format {format_name!r}; supported: {sorted(FORMATS)}"
            )
        transcript = parse_output(format_name, data, source.display, limits.max_text_chars)
        outputs.append(ValidatedOutput(source, format_name, data, sha256_bytes(data), transcript))
    _one_output_per_format(outputs, label)
    return outputs


def _one_output_per_format(outputs: list[ValidatedOutput], label: str) -> None:
    formats = [o.format for o in outputs]
    for duplicate in sorted({f for f in formats if formats.count(f) > 1}):
        raise InputError(
            label, "outputs", f"two outputs of format {duplicate!r}; one run has one output per format"
        )


def _summary_outputs(
    specs: list[OutputSpec], label: str, settings: MediavaultSettings, s3_client: Any
) -> list[ValidatedOutput]:
    """Read and check summary documents (Markdown or JSON): kept byte-exact, never parsed further."""
    outputs: list[ValidatedOutput] = []
    for index, spec in enumerate(specs):
        field_name = f"outputs[{index}]"
        source = resolve_source(spec.location, field_name, settings.limits, settings.s3, s3_client)
        if source.size > MAX_SUMMARY_BYTES:
            raise InputError(
                source.display,
                field_name,
                f"is {source.size:,} bytes; a summary may have {MAX_SUMMARY_BYTES:,}",
            )
        format_name = summary_format_name(spec.format) if spec.format else detect_summary_format(source.name)
        data = source.read_all(settings.limits.max_transcript_bytes, field_name)
        validate_summary(format_name, data, source.display)
        outputs.append(ValidatedOutput(source, format_name, data, sha256_bytes(data), None))
    _one_output_per_format(outputs, label)
    return outputs


def _validate_run(
    request: RunRequest,
    settings: MediavaultSettings,
    runs: list[Run],
    probe: MediaProbe | None,
    media_language: str | None,
    label: str,
    media_id: str,
    s3_client: Any = None,
) -> PreparedRun:
    """Validate a translation or summary against the runs it may refer to. Nothing is written."""
    kind = request.kind
    if kind not in ADDED_RUN_KINDS:
        raise InputError(
            label,
            "kind",
            f"unknown run kind {kind!r}; one of {', '.join(ADDED_RUN_KINDS)} "
            "(a transcript is ingested with its media)",
        )
    provenance = _model(RunProvenance, request.provenance, label, "provenance")
    language = request.language
    if language is not None and (not isinstance(language, str) or not LANGUAGE_TAG.fullmatch(language)):
        raise InputError(
            label, "language", f"{str(language)[:40]!r} is not a language tag such as 'fr' or 'pt-BR'"
        )
    if kind == "translation" and not language:
        raise InputError(label, "language", "a translation needs its target language, e.g. 'fr'")
    source: Run | None = None
    if request.source_run_id is not None:
        if not isinstance(request.source_run_id, str) or not RUN_ID_RE.match(request.source_run_id):
            raise InputError(label, "source_run_id", "must be a run id (32 hexadecimal characters)")
        source = next((r for r in runs if r.run_id == request.source_run_id), None)
        if source is None:
            where = f"media {media_id}" if media_id else "this ingest"
            raise InputError(label, "source_run_id", f"{where} has no run {request.source_run_id}")
    source_language = None
    if kind == "translation":
        if source is None:
            raise InputError(label, "source_run_id", "a translation needs the transcript run it translates")
        if source.kind != "transcript":
            raise InputError(
                label,
                "source_run_id",
                f"run {source.run_id} is a {source.kind}; a translation translates a transcript run",
            )
        source_language = source.language or media_language
        if source_language and language_tag(source_language) == language_tag(language):
            raise InputError(
                label, "language", f"{language!r} is the source run's own language; translate into another"
            )
    elif source is not None and source.kind == "summary":
        raise InputError(
            label, "source_run_id", f"run {source.run_id} is a summary; summarize a transcript or translation"
        )
    if not request.outputs:
        raise InputError(label, "outputs", f"a {kind} needs its output file")
    if kind == "summary":
        outputs = _summary_outputs(request.outputs, label, settings, s3_client)
    else:
        outputs = _transcript_outputs(request.outputs, label, settings, s3_client)
        if probe is not None:
            for output in outputs:
                _check_duration(output, probe, settings)
    return PreparedRun(
        kind=cast(RunKind, kind),
        provenance=provenance,
        outputs=outputs,
        language=language,
        source_run_id=source.run_id if source else None,
        source_language=source_language,
        media_id=media_id or None,
    )


def prepare_run(
    vault: Vault, request: RunRequest, settings: MediavaultSettings, s3_client: Any = None
) -> PreparedRun:
    """Validate a translation or summary of a committed media item. Raises InputError naming the
    file and field; nothing is written."""
    media_id = request.media_id
    label = request.outputs[0].location if request.outputs else str(media_id)
    if not isinstance(media_id, str) or not SHA256_RE.match(media_id):
        raise InputError(label, "media_id", "must be a media id (64 hexadecimal characters)")
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        raise InputError(label, "media_id", f"no media item {media_id} in the vault")
    return _validate_run(
        request,
        settings,
        manifest.runs,
        manifest.media.probe,
        manifest.metadata.language,
        label,
        media_id,
        s3_client,
    )


def check_free_space(
    vault: Vault, prepared: PreparedIngest | PreparedRun, settings: MediavaultSettings
) -> None:
    """Refuse to fill a local vault: media plus outputs must leave limits.min_free_bytes free."""
    free_bytes = getattr(vault, "free_bytes", None)
    if free_bytes is None:
        return
    if isinstance(prepared, PreparedRun):
        display, needed = prepared.primary.source.display, sum(len(o.data) for o in prepared.outputs) * 3
    else:
        outputs = [*prepared.outputs, *(o for run in prepared.derived for o in run.outputs)]
        display, needed = prepared.media.display, prepared.media.size + sum(len(o.data) for o in outputs) * 3
    available = free_bytes()
    if available - needed < settings.limits.min_free_bytes:
        raise InsufficientSpace(
            f"refusing to ingest {display}: {vault.url} has {available:,} bytes free, "
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
    return [o.record() for o in prepared.outputs]


Piece = tuple[str, bytes, str, str, str | None]
"""An object of a run: key, bytes, artifact kind, content type, format (raw outputs only)."""


def _raw_pieces(media_id: str, run_id: str, outputs: list[ValidatedOutput]) -> list[Piece]:
    pieces: list[Piece] = []
    for output in outputs:
        if output.format in SUMMARY_FORMATS:
            extension = SUMMARY_FORMATS[output.format]
            content_type = SUMMARY_CONTENT_TYPES[extension]
        else:
            extension = FORMATS[output.format]
            content_type = OUTPUT_CONTENT_TYPES[extension]
        key = run_raw(media_id, run_id, output.format, extension)
        pieces.append((key, output.data, "raw-output", content_type, output.format))
    return pieces


def _derived_pieces(media_id: str, run_id: str, transcript: Transcript, source_sha: str) -> list[Piece]:
    """Normalized Parquet and SRT/VTT/TXT renderings of a parsed output."""
    return [
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


def _store_pieces(
    vault: Vault,
    media_id: str,
    run_id: str,
    pieces: Callable[[], list[Piece]],
    new_run: Callable[[], Run],
) -> StoredRun:
    """Store a run's objects create-if-absent; a run already committed stores only what retention
    expired (revived), and nothing at all otherwise."""
    committed = manifests.latest_manifest(vault, media_id)
    existing = committed.run(run_id) if committed is not None else None
    expired: set[str] = set()
    if committed is not None and existing is not None:
        # The same outputs again: only objects retention expired are stored again (revived).
        expired = {a.key for a in committed.artifacts if a.run_id == run_id and a.tier == "expired"}
        if not expired:
            return StoredRun(existing, [], 0, existing=True)
    artifacts: list[Artifact] = []
    created = 0
    for key, data, kind, content_type, format_name in pieces():
        if existing is not None and key not in expired:
            continue
        artifact, was_created = _put_derived(vault, key, data, kind, content_type, run_id, format_name)
        artifacts.append(artifact)
        created += was_created
    if existing is not None:
        return StoredRun(existing, artifacts, created, existing=True)
    return StoredRun(new_run(), artifacts, created)


def _new_transcript_run(prepared: PreparedIngest, run_id: str) -> Run:
    primary = prepared.primary
    assert primary is not None and primary.transcript is not None
    transcript = primary.transcript
    return Run(
        run_id=run_id,
        provenance=prepared.provenance,
        created_at=utc_now(),
        outputs=_output_records(prepared),
        primary_format=primary.format,
        language=transcript.language or prepared.metadata.language,
        statement_count=len(transcript.statements),
        word_count=sum(len(s.words or []) for s in transcript.statements),
        speakers=transcript.speakers(),
    )


def store_run(vault: Vault, media_id: str, prepared: PreparedIngest) -> StoredRun | None:
    """Store the raw outputs byte-exact, then their Parquet and subtitle renderings."""
    primary = prepared.primary
    if primary is None or primary.transcript is None:
        return None
    run_id = run_id_for(prepared)
    transcript = primary.transcript

    def pieces() -> list[Piece]:
        raw = _raw_pieces(media_id, run_id, prepared.outputs)
        return raw + _derived_pieces(media_id, run_id, transcript, primary.sha256)

    return _store_pieces(vault, media_id, run_id, pieces, lambda: _new_transcript_run(prepared, run_id))


def store_added_run(vault: Vault, media_id: str, prepared: PreparedRun) -> StoredRun:
    """Store a translation (raw output byte-exact, Parquet, renderings) or a summary (byte-exact)."""
    run_id = prepared.run_id
    primary = prepared.primary
    transcript = primary.transcript

    def pieces() -> list[Piece]:
        raw = _raw_pieces(media_id, run_id, prepared.outputs)
        if transcript is None:
            return raw
        return raw + _derived_pieces(media_id, run_id, transcript, primary.sha256)

    def new_run() -> Run:
        statements = transcript.statements if transcript is not None else []
        return Run(
            run_id=run_id,
            provenance=prepared.provenance,
            created_at=utc_now(),
            outputs=[o.record() for o in prepared.outputs],
            primary_format=primary.format,
            language=prepared.language,
            statement_count=len(statements),
            word_count=sum(len(s.words or []) for s in statements),
            speakers=transcript.speakers() if transcript is not None else [],
            kind=prepared.kind,
            source_run_id=prepared.source_run_id,
            source_language=prepared.source_language,
        )

    return _store_pieces(vault, media_id, run_id, pieces, new_run)


def _pinned_commit(
    vault: Vault, media_id: str, referenced: list[Artifact], commit: Callable[[], manifests.CommitResult]
) -> manifests.CommitResult:
    """Commit under a pin (see ``mediavault.vault.pins``): once no collector claims the media id,
    every object the manifest will name must still exist, or ObjectsVanished is raised and the
    caller stores them again. Nothing can delete them between that check and the commit."""
    pin_key = pins.pin(vault, media_id)
    try:
        pins.wait_unclaimed(vault, media_id)
        missing = [a.key for a in referenced if vault.head(a.key) is None]
        if missing:
            raise ObjectsVanished(missing)
        return commit()
    finally:
        pins.unpin(vault, pin_key)


def commit_ingest(
    vault: Vault,
    prepared: PreparedIngest,
    media: Artifact,
    stored: StoredRun | None,
    derived: list[StoredRun] | None = None,
) -> manifests.CommitResult:
    """Write the manifest last: a new media item, or a new run on an existing one (with the
    translations and summaries of ``derived``, in the same manifest version)."""
    runs = [*([stored] if stored else []), *(derived or [])]
    # What this commit may name as hot: the media (new, or revived if it had expired) and the
    # runs' objects (new, or the expired ones stored again). The pin keeps them from here on.
    referenced = [media, *(a for run in runs for a in run.artifacts)]
    return _pinned_commit(
        vault, media.sha256, referenced, lambda: _commit_manifest(vault, prepared, media, runs)
    )


def commit_added_run(vault: Vault, media_id: str, stored: StoredRun) -> manifests.CommitResult:
    """Commit a translation or summary as a new manifest version of a committed media item."""

    def derive(current: Manifest | None) -> Manifest | None:
        if current is None:
            raise InputError(media_id, "media_id", f"no media item {media_id} in the vault")
        updated = current.model_copy(deep=True)
        if not _add_runs(updated, current, stored.artifacts, [stored]):
            return None
        updated.created_at = utc_now()
        return updated

    return _pinned_commit(
        vault,
        media_id,
        stored.artifacts,
        lambda: manifests.commit(vault, media_id, derive, stored.run.run_id),
    )


def _add_runs(
    updated: Manifest, current: Manifest, referenced: list[Artifact], runs: list[StoredRun]
) -> bool:
    """Revive expired artifacts supplied again and append the runs not yet committed."""
    # The user supplied again what retention expired: it is hot again.
    revived = {a.key: a for a in referenced}
    changed = False
    for index, artifact in enumerate(updated.artifacts):
        if artifact.tier == "expired" and artifact.key in revived:
            updated.artifacts[index] = revived[artifact.key].model_copy(update={"tier_changed_at": utc_now()})
            changed = True
    updated.change = "restore"
    for stored in runs:
        if current.run(stored.run.run_id) is None and updated.run(stored.run.run_id) is None:
            updated.change = "new-run"
            updated.runs.append(stored.run)
            updated.artifacts.extend(stored.artifacts)
            changed = True
    return changed


def _commit_manifest(
    vault: Vault, prepared: PreparedIngest, media: Artifact, stored_runs: list[StoredRun]
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
                runs=[s.run for s in stored_runs],
                artifacts=[media, *(a for s in stored_runs for a in s.artifacts)],
                ingested_at=utc_now(),
            )
        updated = current.model_copy(deep=True)
        referenced = [media, *(a for s in stored_runs for a in s.artifacts)]
        if not _add_runs(updated, current, referenced, stored_runs):
            return None
        updated.created_at = utc_now()
        return updated

    return manifests.commit(vault, media_id, derive, stored_runs[0].run.run_id if stored_runs else None)


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
        derived = [store_added_run(vault, media.sha256, run) for run in prepared.derived]
        try:
            committed = commit_ingest(vault, prepared, media, stored, derived)
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
            int(media_created)
            + sum(s.created_objects for s in [*([stored] if stored else []), *derived])
            + int(committed.changed)
        ),
        journal_seq=committed.journal_seq,
        statement_count=stored.run.statement_count if stored else 0,
        added_runs=[s.run.run_id for s in derived],
    )


def add_run(vault: Vault, request: RunRequest, settings: MediavaultSettings) -> IngestResult:
    """Add a translation or a summary to a committed media item, all steps in one call."""
    prepared = prepare_run(vault, request, settings)
    assert prepared.media_id is not None
    check_free_space(vault, prepared, settings)
    for attempt in range(1, STORE_ATTEMPTS + 1):
        stored = store_added_run(vault, prepared.media_id, prepared)
        try:
            committed = commit_added_run(vault, prepared.media_id, stored)
            break
        except ObjectsVanished:
            if attempt == STORE_ATTEMPTS:
                raise
    return IngestResult(
        media_id=prepared.media_id,
        run_id=stored.run.run_id,
        manifest_version=committed.manifest.version,
        changed=committed.changed,
        created_objects=stored.created_objects + int(committed.changed),
        journal_seq=committed.journal_seq,
        statement_count=stored.run.statement_count,
    )
