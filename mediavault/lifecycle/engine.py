"""Plan and carry out lifecycle transitions without ever losing the only copy.

Archive order for each media item: copy every due artifact to the archive tier, verify each copy
against the SHA-256 recorded for it, write the new manifest version (and journal record), and only
then delete the hot copies. A re-run after a crash or fault at any step converges: copies are
create-if-absent and re-verified, a manifest that already says "archive" leads straight to the
delete, and a hot copy is never deleted unless the committed manifest points at a verified copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from mediavault.errors import InputError, IntegrityError, MediavaultError
from mediavault.lifecycle import forget
from mediavault.lifecycle.policy import KIND_CLASS, Policies
from mediavault.vault import Vault, manifests, open_vault, pins
from mediavault.vault.hashing import sha256_stream
from mediavault.vault.keys import SHA256_RE
from mediavault.vault.models import ArchiveCopy, Artifact, Manifest, utc_now
from mediavault.vault.s3 import S3Vault
from mediavault.vault.tiers import ArtifactReader, compress_stream, default_archive_url, same_credentials

Hook = Callable[[str, str], None]
"""Called as hook(step, key) before each step; tests raise from it to inject faults."""


@dataclass
class Action:
    action: str  # archive | finish-archive | expire | delete-staging | delete-orphan | erase-leftover | held
    key: str
    media_id: str | None = None
    artifact_class: str | None = None
    tier: str = "hot"
    size: int = 0
    age_days: float = 0.0
    reason: str = ""


@dataclass
class LifecycleReport:
    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    done: list[Action] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def tally(items: list[Action]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for a in items:
                bucket = out.setdefault(
                    f"{a.action}:{a.artifact_class or '-'}:{a.tier}", {"objects": 0, "bytes": 0}
                )
                bucket["objects"] += 1
                bucket["bytes"] += a.size
            return out

        return {
            "dry_run": self.dry_run,
            "planned": tally(self.actions),
            "done": tally(self.done),
            "errors": self.errors,
            "skipped": self.skipped,
            "actions": [asdict(a) for a in self.actions],
        }


def open_archive(vault: Vault, policies: Policies, for_media: bool = False) -> Vault:
    """The archive tier; for media with the configured storage class (AI outputs stay readable)."""
    url = policies.archive.url or default_archive_url(vault)
    archive = open_vault(url, same_credentials(vault))
    if policies.archive.storage_class and for_media:
        if not isinstance(archive, S3Vault):
            raise InputError(
                "policies", "archive.storage_class", "storage classes need an s3:// archive tier"
            )
        archive.storage_class = policies.archive.storage_class
    return archive


def _archive_urls(policies: Policies) -> list[str]:
    return [policies.archive.url] if policies.archive.url else []


def _forgotten_leftovers(vault: Vault, policies: Policies, media_id: str) -> list[Action]:
    """What is left of an erased item besides its tombstone: what a writer that raced the forget
    stored after it, or the rest of a forget that stopped part-way. Erased at once, whatever its
    age (the index side is the next re-index's: it drops a forgotten item)."""
    left = forget.plan_forget(vault, media_id, _archive_urls(policies))
    if left.tombstone is None:
        return []
    reason = "left after the item was forgotten"
    return [
        *(
            Action("erase-leftover", key, media_id, tier="archive", reason=reason)
            for _, key in left.archive_keys
        ),
        *(Action("erase-leftover", key, media_id, reason=reason) for key in left.hot_keys),
        *(
            Action("erase-leftover", key, media_id, tier="manifest", reason=reason)
            for key in left.manifest_keys
        ),
    ]


def _age_days(since: datetime | float | None, now: datetime) -> float:
    if since is None:
        return 0.0
    moment = since if isinstance(since, float) else since.timestamp()
    return max(0.0, (now.timestamp() - moment) / 86400)


def plan(vault: Vault, policies: Policies, now: datetime | None = None) -> list[Action]:
    """What the policies call for right now. Reads only."""
    now = now or utc_now()
    actions: list[Action] = []
    referenced: set[str] = set()
    for media_id in manifests.list_media_ids(vault):
        manifest = manifests.latest_manifest(vault, media_id)
        if manifest is None:
            actions.extend(_forgotten_leftovers(vault, policies, media_id))
            continue
        referenced.update(a.key for a in manifest.artifacts)
        if manifest.legal_hold:
            actions.append(Action("held", f"manifests/{media_id}/", media_id, reason="legal hold"))
            continue
        for artifact in manifest.artifacts:
            artifact_class = KIND_CLASS[artifact.kind]
            rule = policies.rule_for(artifact_class, manifest.metadata.owner, manifest.metadata.tags)
            age = _age_days(artifact.tier_changed_at or manifest.ingested_at or manifest.created_at, now)
            common = {
                "media_id": media_id,
                "artifact_class": artifact_class,
                "tier": artifact.tier,
                "size": artifact.size,
                "age_days": round(age, 2),
            }
            if artifact.tier == "archive" and vault.head(artifact.key) is not None:
                actions.append(
                    Action(
                        "finish-archive", artifact.key, reason="hot copy left by an interrupted run", **common
                    )
                )
            elif artifact.tier == "expired" and vault.head(artifact.key) is not None:
                actions.append(
                    Action("expire", artifact.key, reason="hot copy left by an interrupted expiry", **common)
                )
            elif rule.action == "archive" and artifact.tier == "hot" and age >= rule.after_days:
                actions.append(
                    Action("archive", artifact.key, reason=f"older than {rule.after_days:g} days", **common)
                )
            elif rule.action == "expire" and artifact.tier != "expired" and age >= rule.after_days:
                actions.append(
                    Action(
                        "expire",
                        artifact.key,
                        reason=f"policy expires after {rule.after_days:g} days",
                        **common,
                    )
                )
    if policies.staging.action == "expire":
        for info in vault.staging_leftovers():
            age = _age_days(info.modified, now)
            if age >= policies.staging.after_days:
                actions.append(
                    Action(
                        "delete-staging",
                        info.key,
                        artifact_class="staging",
                        size=info.size,
                        age_days=round(age, 2),
                        reason=f"left in staging for {age:.1f} days",
                    )
                )
    if policies.failed_ingest.action == "expire":
        for key in vault.list_keys("media/"):
            if key in referenced:
                continue
            info = vault.head(key)
            age = _age_days(info.modified if info else None, now)
            if info is not None and age >= policies.failed_ingest.after_days:
                actions.append(
                    Action(
                        "delete-orphan",
                        key,
                        artifact_class="failed_ingest",
                        size=info.size,
                        age_days=round(age, 2),
                        reason=f"unreferenced for {age:.1f} days",
                    )
                )
    return actions


def _hash_of(archive: Vault, key: str) -> str | None:
    info = archive.head(key)
    if info is None:
        return None
    if isinstance(archive, S3Vault) and archive.storage_class and archive.storage_class != "STANDARD":
        return info.sha256  # cold objects cannot be read back; the SHA-256 recorded at write time
    with archive.open_read(key) as stream:
        return sha256_stream(stream)[0]


def copy_to_archive(
    vault: Vault, archive: Vault, artifact: Artifact, compress: bool, hook: Hook
) -> ArchiveCopy:
    """Copy and verify one artifact. A bad copy is removed (it is referenced by nothing)."""
    key = artifact.key + (".zst" if compress else "")
    hook("copy", artifact.key)
    with vault.open_read(artifact.key) as hot:
        source = compress_stream(hot) if compress else hot
        stored = archive.put_stream(source, lambda _sha: key, artifact.content_type)
    hook("verify", artifact.key)
    actual = _hash_of(archive, key)
    if actual != stored.sha256:
        archive.delete(key)
        raise IntegrityError(
            f"archive copy of {artifact.key} does not match what was written "
            f"({actual} != {stored.sha256}); removed the copy, the hot copy is untouched"
        )
    copy = ArchiveCopy(
        tier_url=archive.url,
        key=key,
        stored_sha256=stored.sha256,
        stored_size=stored.size,
        compression="zstd" if compress else None,
        storage_class=getattr(archive, "storage_class", None),
        archived_at=utc_now(),
    )
    if compress:
        probe = Artifact(**{**artifact.model_dump(), "tier": "archive", "archive": copy})
        with ArtifactReader(vault).open(probe) as restored:
            digest = hashlib.sha256()
            while chunk := restored.read(8 * 1024 * 1024):
                digest.update(chunk if isinstance(chunk, bytes) else chunk.to_pybytes())
        if digest.hexdigest() != artifact.sha256:
            archive.delete(key)
            raise IntegrityError(
                f"decompressed archive copy of {artifact.key} does not hash like the original"
            )
    return copy


def _derived_outputs_safe(vault: Vault, manifest: Manifest, archived: dict[str, ArchiveCopy]) -> bool:
    """Audio goes only when every output derived from it is stored and verified somewhere
    (outputs a policy expired are gone on purpose, not damaged)."""
    reader = ArtifactReader(vault)
    for artifact in manifest.artifacts:
        if artifact.kind == "media" or artifact.tier == "expired":
            continue
        if artifact.key in archived:
            continue  # just copied and verified
        try:
            with reader.open(artifact) as stream:
                digest = hashlib.sha256()
                while chunk := stream.read(8 * 1024 * 1024):
                    digest.update(chunk if isinstance(chunk, bytes) else chunk.to_pybytes())
        except KeyError:
            return False
        if digest.hexdigest() != artifact.sha256:
            return False
    return True


def _commit_tiers(
    vault: Vault, media_id: str, changes: dict[str, tuple[str, ArchiveCopy | None]], change: str
) -> Manifest | None:
    """New manifest version with the given artifact tiers; None if a legal hold appeared meanwhile."""
    now = utc_now()

    def derive(current: Manifest | None) -> Manifest | None:
        assert current is not None
        if current.legal_hold:
            return None
        todo = {
            k: v
            for k, v in changes.items()
            if any(a.key == k and (a.tier, a.archive) != v for a in current.artifacts)
        }
        if not todo:
            return None
        updated = current.model_copy(deep=True)
        updated.created_at, updated.change = now, change  # type: ignore[assignment]
        for artifact in updated.artifacts:
            if artifact.key in todo:
                artifact.tier, copy = todo[artifact.key]  # type: ignore[assignment]
                artifact.archive = copy or artifact.archive
                artifact.tier_changed_at = now
        return updated

    result = manifests.commit(vault, media_id, derive)
    latest = result.manifest
    return None if latest.legal_hold else latest


def archive_media(
    vault: Vault,
    archive: Vault,
    media_id: str,
    actions: list[Action],
    policies: Policies,
    hook: Hook,
    report: LifecycleReport,
    cold_archive: Vault | None = None,
) -> None:
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None or manifest.legal_hold:
        return
    by_key = {a.key: a for a in manifest.artifacts}
    copies: dict[str, ArchiveCopy] = {}
    for action in actions:
        artifact = by_key.get(action.key)
        if action.action != "archive" or artifact is None or artifact.tier != "hot":
            continue
        rule = policies.rule_for(
            action.artifact_class or "media", manifest.metadata.owner, manifest.metadata.tags
        )
        try:
            tier = (cold_archive or archive) if artifact.kind == "media" else archive
            copies[artifact.key] = copy_to_archive(vault, tier, artifact, rule.compress, hook)
        except (IntegrityError, OSError, KeyError) as exc:
            report.errors.append(
                {"media_id": media_id, "key": artifact.key, "step": "copy/verify", "error": str(exc)}
            )
    media_key = next((a.key for a in manifest.artifacts if a.kind == "media"), None)
    if media_key in copies and not _derived_outputs_safe(vault, manifest, copies):
        copies.pop(media_key)
        report.errors.append(
            {
                "media_id": media_id,
                "key": media_key,
                "step": "safety",
                "error": "derived outputs are not all stored and verified; the audio stays hot",
            }
        )
    if copies:
        hook("manifest", media_id)
        committed = _commit_tiers(vault, media_id, {k: ("archive", c) for k, c in copies.items()}, "archive")
        if committed is None:
            report.errors.append(
                {"media_id": media_id, "key": "", "step": "manifest", "error": "legal hold set"}
            )
            return
    finish_archive(vault, media_id, hook, report)


def finish_archive(vault: Vault, media_id: str, hook: Hook, report: LifecycleReport) -> None:
    """Delete hot copies that the committed manifest says are archived, after re-checking the copy."""
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None or manifest.legal_hold:
        return
    reader = ArtifactReader(vault)
    deletable: list[Artifact] = []
    for artifact in manifest.artifacts:
        if artifact.tier != "archive" or artifact.archive is None or vault.head(artifact.key) is None:
            continue
        archive = reader.archive_vault(artifact.archive.tier_url)
        if isinstance(archive, S3Vault) and artifact.archive.storage_class:
            archive.storage_class = artifact.archive.storage_class
        if _hash_of(archive, artifact.archive.key) != artifact.archive.stored_sha256:
            report.errors.append(
                {
                    "media_id": media_id,
                    "key": artifact.key,
                    "step": "delete",
                    "error": "archive copy missing or changed; the hot copy is kept",
                }
            )
            continue
        deletable.append(artifact)
    _delete_under_claim(vault, media_id, deletable, "archive", hook, report)


def _not_hot_elsewhere(vault: Vault, media_id: str) -> set[str]:
    """Keys the latest manifest names as hot: a concurrent restore or re-ingest keeps them."""
    latest = manifests.latest_manifest(vault, media_id)
    return {a.key for a in latest.artifacts if a.tier == "hot"} if latest else set()


def _delete_under_claim(
    vault: Vault,
    media_id: str,
    artifacts: list[Artifact],
    action: str,
    hook: Hook,
    report: LifecycleReport,
    also: Callable[[Artifact], None] | None = None,
) -> None:
    """Delete hot copies the committed manifest moved off the hot tier, under the claim protocol
    (``mediavault.vault.pins``): a commit that made one hot again in the meantime keeps it."""
    if not artifacts:
        return
    by_key = {a.key: a for a in artifacts}

    def delete(key: str) -> None:
        hook("delete", key)
        vault.delete(key)
        if also:
            also(by_key[key])

    deleted, kept_because = pins.collect(
        vault, media_id, list(by_key), lambda: _not_hot_elsewhere(vault, media_id), delete
    )
    for key in deleted:
        artifact = by_key[key]
        tier = "expired" if action == "expire" else action
        report.done.append(Action(action, key, media_id, KIND_CLASS[artifact.kind], tier, artifact.size))
    if kept_because:
        report.skipped.extend(
            {"media_id": media_id, "key": key, "reason": kept_because} for key in by_key if key not in deleted
        )


def expire_media(vault: Vault, media_id: str, keys: list[str], hook: Hook, report: LifecycleReport) -> None:
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None or manifest.legal_hold:
        return
    hook("manifest", media_id)
    if _commit_tiers(vault, media_id, {k: ("expired", None) for k in keys}, "delete") is None:
        return
    reader = ArtifactReader(vault)
    latest = manifests.latest_manifest(vault, media_id)
    expired = [a for a in latest.artifacts if a.key in keys and a.tier == "expired"]

    def delete_archive_copy(artifact: Artifact) -> None:
        if artifact.archive:
            reader.archive_vault(artifact.archive.tier_url).delete(artifact.archive.key)

    _delete_under_claim(vault, media_id, expired, "expire", hook, report, delete_archive_copy)


def run(
    vault: Vault,
    policies: Policies,
    dry_run: bool = True,
    now: datetime | None = None,
    hook: Hook | None = None,
) -> LifecycleReport:
    """Plan, and unless ``dry_run`` carry out the plan. Every step is safe to repeat."""
    hook = hook or (lambda step, key: None)
    report = LifecycleReport(dry_run=dry_run, actions=plan(vault, policies, now))
    if dry_run:
        return report
    archive = open_archive(vault, policies)
    cold_archive = open_archive(vault, policies, for_media=True)
    by_media: dict[str, list[Action]] = {}
    for action in report.actions:
        if action.media_id:
            by_media.setdefault(action.media_id, []).append(action)
    for media_id, actions in by_media.items():
        kinds = {a.action for a in actions}
        try:
            if "erase-leftover" in kinds:
                forget.erase_leftovers(vault, media_id, _archive_urls(policies), hook)
                report.done.extend(a for a in actions if a.action == "erase-leftover")
            if kinds & {"archive", "finish-archive"}:
                archive_media(vault, archive, media_id, actions, policies, hook, report, cold_archive)
            expiring = [a.key for a in actions if a.action == "expire"]
            if expiring:
                expire_media(vault, media_id, expiring, hook, report)
        except Exception as exc:  # one item's failure is recorded; the others go on
            report.errors.append({"media_id": media_id, "key": "", "step": "media", "error": _describe(exc)})
    for action in report.actions:
        if action.action != "delete-staging":
            continue
        try:
            hook("delete", action.key)
            vault.delete_staging(action.key)
            report.done.append(action)
        except Exception as exc:
            report.errors.append(
                {"media_id": None, "key": action.key, "step": "staging", "error": _describe(exc)}
            )
    collect_orphans(vault, [a for a in report.actions if a.action == "delete-orphan"], hook, report)
    return report


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MediavaultError) else f"{type(exc).__name__}: {exc}"


def _orphan_media_id(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "media" and SHA256_RE.match(parts[1]) else None


def collect_orphans(vault: Vault, orphans: list[Action], hook: Hook, report: LifecycleReport) -> None:
    """Delete planned orphans under the claim protocol (``mediavault.vault.pins``): a commit that
    deduplicated against one of them since the plan was made keeps it."""
    by_media: dict[str, list[Action]] = {}
    for action in orphans:
        media_id = _orphan_media_id(action.key)
        if media_id is None:
            report.errors.append(
                {"media_id": None, "key": action.key, "step": "orphan", "error": "not a media key"}
            )
            continue
        by_media.setdefault(media_id, []).append(action)
    for media_id, actions in by_media.items():

        def referenced(media_id: str = media_id) -> set[str]:
            latest = manifests.latest_manifest(vault, media_id)
            return {a.key for a in latest.artifacts} if latest else set()

        def delete(key: str) -> None:
            hook("delete", key)
            vault.delete(key)

        try:
            hook("claim", media_id)
            deleted, kept_because = pins.collect(
                vault, media_id, [a.key for a in actions], referenced, delete
            )
        except Exception as exc:
            report.errors.append({"media_id": media_id, "key": "", "step": "orphan", "error": _describe(exc)})
            continue
        report.done.extend(a for a in actions if a.key in deleted)
        if kept_because:
            report.skipped.extend(
                {"media_id": media_id, "key": a.key, "reason": kept_because}
                for a in actions
                if a.key not in deleted
            )


def set_legal_hold(vault: Vault, media_id: str, hold: bool) -> int:
    """Set or clear a legal hold (a manifest change, journaled). Returns the manifest version."""

    def derive(current: Manifest | None) -> Manifest | None:
        if current is None:
            raise InputError(media_id, "media_id", "no such media item in the vault")
        if current.legal_hold == hold:
            return None
        updated = current.model_copy(deep=True)
        updated.created_at, updated.change, updated.legal_hold = utc_now(), "legal-hold", hold
        return updated

    return manifests.commit(vault, media_id, derive).manifest.version


def restore_media(
    vault: Vault, media_id: str, hook: Hook | None = None, dry_run: bool = False, restore_days: int = 7
) -> dict[str, Any]:
    """Bring every archived artifact of a media item back to the hot tier (the archive copy stays)."""
    hook = hook or (lambda step, key: None)
    manifest = manifests.latest_manifest(vault, media_id)
    if manifest is None:
        raise InputError(media_id, "media_id", "no such media item in the vault")
    archived = [a for a in manifest.artifacts if a.tier == "archive" and a.archive is not None]
    if dry_run or not archived:
        return {
            "media_id": media_id,
            "dry_run": dry_run,
            "to_restore": [a.key for a in archived],
            "restored": [],
        }
    reader = ArtifactReader(vault)
    restored: dict[str, tuple[str, ArchiveCopy | None]] = {}
    pending: list[str] = []
    for artifact in archived:
        archive = reader.archive_vault(artifact.archive.tier_url)
        if artifact.archive.storage_class and isinstance(archive, S3Vault):
            state = archive.restore_state(artifact.archive.key)
            if state == "not-requested":
                archive.request_restore(artifact.archive.key, days=restore_days)
            if state != "ready":
                pending.append(artifact.key)
                continue
        hook("copy", artifact.key)
        with reader.open(artifact) as stream:
            result = vault.put_stream(stream, lambda _sha, key=artifact.key: key, artifact.content_type)
        hook("verify", artifact.key)
        with vault.open_read(artifact.key) as stream:
            actual = sha256_stream(stream)[0]
        if actual != artifact.sha256 or (result.created and result.sha256 != artifact.sha256):
            vault.delete(artifact.key)
            raise IntegrityError(
                f"restored {artifact.key} does not hash like the original; removed it, "
                "the archive copy is untouched"
            )
        restored[artifact.key] = ("hot", artifact.archive)
    if restored:
        hook("manifest", media_id)
        _commit_tiers(vault, media_id, restored, "restore")
    return {
        "media_id": media_id,
        "dry_run": False,
        "to_restore": [a.key for a in archived],
        "restored": sorted(restored),
        "pending": pending,
    }
