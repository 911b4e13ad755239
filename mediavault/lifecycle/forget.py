"""Forget: erase a media item on request (consent withdrawn, takedown, GDPR erasure).

What goes: the media bytes, every run's raw outputs, Parquet and renderings, the edits, every
archived copy, every earlier manifest version (they hold titles and descriptions), its index and
search documents (the search generations are rebuilt, so no deleted document lingers in a
segment or a rollback generation) and its job events. What stays: a tombstone manifest version
(id, when, who, reason; no content), its journal record, and the audit record of the forget.

The steps run in an order that converges when a run dies part-way and is run again:

1. plan (read only) and refuse what must be refused: an unknown item, a legal hold, no reason;
2. commit the tombstone: from here on every reader treats the item as absent, and every commit
   for it is refused (``MediaForgotten``), so no writer can bring it back; the earlier manifest
   versions still name the archive tiers, so a re-run finds every copy;
3. list again, then delete the archived copies (every tier the versions name, and the default);
4. delete the hot objects and edits (pins are not waited for: no commit can use them now);
5. delete the earlier manifest versions, each ``.json`` before its ``.journaled`` marker;
6. remove it from MongoDB (every generation), job events and search, then rebuild the index and
   drop the generations from before the forget.

A legal hold blocks a forget: the tombstone's commit checks it, and nothing is deleted before the
tombstone is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mediavault.errors import InputError, LegalHold
from mediavault.vault import manifests, pins
from mediavault.vault.base import Vault
from mediavault.vault.keys import (
    SHA256_RE,
    edits_prefix,
    manifest_journaled_key,
    manifest_key,
    manifest_prefix,
    media_prefix,
    parse_manifest_version,
)
from mediavault.vault.models import Forgotten, Manifest, MediaInfo, MediaMetadata, MediaProbe, utc_now
from mediavault.vault.tiers import ArtifactReader, default_archive_url

Hook = Callable[[str, str], None]


def _no_hook(step: str, key: str) -> None:
    pass


@dataclass
class ForgetPlan:
    media_id: str
    hot_keys: list[str] = field(default_factory=list)
    archive_keys: list[tuple[str, str]] = field(default_factory=list)  # (archive tier url, key)
    manifest_keys: list[str] = field(default_factory=list)  # earlier versions and their markers
    tombstone: Forgotten | None = None  # set when a forget already committed its tombstone

    def as_dict(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "already_forgotten": self.tombstone.model_dump(mode="json") if self.tombstone else None,
            "hot": self.hot_keys,
            "archive": [{"tier": url, "key": key} for url, key in self.archive_keys],
            "manifests": self.manifest_keys,
            "objects": len(self.hot_keys) + len(self.archive_keys) + len(self.manifest_keys),
        }


@dataclass
class ForgetResult:
    plan: ForgetPlan
    applied: bool
    tombstone_version: int | None = None
    deleted: list[str] = field(default_factory=list)
    index: dict[str, Any] = field(default_factory=dict)
    writer_in_flight: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.plan.as_dict(),
            "applied": self.applied,
            "tombstone_version": self.tombstone_version,
            "deleted": len(self.deleted),
            "index": self.index,
            "writer_in_flight": self.writer_in_flight,
        }


def _check_media_id(media_id: str) -> str:
    media_id = media_id.strip().lower()
    if not SHA256_RE.match(media_id):
        raise InputError("forget", "media_id", f"not a media id (64 hex characters): {media_id[:80]!r}")
    return media_id


def _versions(vault: Vault, media_id: str) -> list[int]:
    return manifests.manifest_versions(vault, media_id)


def plan_forget(vault: Vault, media_id: str, archive_urls: list[str] | None = None) -> ForgetPlan:
    """Every object a forget removes, on every tier; reads only. Refuses an unknown item and one
    under legal hold."""
    media_id = _check_media_id(media_id)
    versions = _versions(vault, media_id)
    if not versions:
        raise InputError("forget", "media_id", f"no media item {media_id} in the vault")
    newest = manifests.read_manifest(vault, media_id, versions[-1])
    if newest.legal_hold:
        raise LegalHold(f"media {media_id} is under legal hold: lift the hold before it can be forgotten")
    plan = ForgetPlan(media_id, tombstone=newest.forgotten)
    tiers = {default_archive_url(vault), *(archive_urls or [])}
    for version in versions:
        try:
            manifest = manifests.read_manifest(vault, media_id, version)
        except KeyError:
            continue  # deleted by an earlier, interrupted forget
        tiers.update(a.archive.tier_url for a in manifest.artifacts if a.archive is not None)
    reader = ArtifactReader(vault)
    for url in sorted(tiers):
        archive = reader.archive_vault(url)
        plan.archive_keys.extend((url, key) for key in archive.list_keys(media_prefix(media_id)))
    plan.hot_keys = [*vault.list_keys(media_prefix(media_id)), *vault.list_keys(edits_prefix(media_id))]
    keep = {manifest_key(media_id, versions[-1]), manifest_journaled_key(media_id, versions[-1])}
    if newest.forgotten is None:
        keep = set()  # the tombstone is not written yet: every version present goes
    plan.manifest_keys = [k for k in vault.list_keys(manifest_prefix(media_id)) if k not in keep]
    return plan


def tombstone(media_id: str, forgotten: Forgotten) -> Manifest:
    """A manifest version that says only that the item was erased, when, by whom and why."""
    return Manifest(
        media_id=media_id,
        version=0,
        previous_version=None,
        created_at=forgotten.at,
        change="forget",
        metadata=MediaMetadata(),
        media=MediaInfo(
            sha256=media_id,
            size=0,
            original_filename="",
            content_type="",
            probe=MediaProbe(container="", duration_seconds=None, streams=[]),
        ),
        runs=[],
        artifacts=[],
        forgotten=forgotten,
    )


def _commit_tombstone(vault: Vault, media_id: str, forgotten: Forgotten) -> int:
    def derive(current: Manifest | None) -> Manifest:
        if current is not None and current.legal_hold:
            raise LegalHold(f"media {media_id} was put under legal hold: not forgotten")
        return tombstone(media_id, forgotten)

    return manifests.commit(vault, media_id, derive).manifest.version


def _delete_hot(vault: Vault, media_id: str, hook: Hook, deleted: list[str]) -> bool:
    """Delete the item's objects and edits as they are listed now. With the tombstone committed no
    commit can use them any more, so pins are not waited for. Returns True when an ingest still
    held a pin (it may store an object after this pass; its commit is refused and the lifecycle
    run collects what it left)."""
    deleted.extend(manifests.erase_hot_objects(vault, media_id, lambda key: hook("delete", key)))
    return bool(pins.live_pins(vault, media_id))


def _manifest_deletion_order(key: str) -> tuple[int, int]:
    """Older versions first, and a version's ``.json`` before its ``.journaled`` marker: a crash
    between the two leaves a marker without a manifest, never a manifest without its marker (the
    journal sweep would journal that one again, after the tombstone)."""
    version = parse_manifest_version(key.replace(".journaled", ".json")) or 0
    return version, 0 if key.endswith(".json") else 1


def _erase(vault: Vault, plan: ForgetPlan, tombstone_version: int, hook: Hook, deleted: list[str]) -> bool:
    """Steps 3 to 5: the archived copies, the hot objects and edits, the earlier manifest versions.
    Returns True when an ingest still held a pin (see ``_delete_hot``)."""
    media_id = plan.media_id
    reader = ArtifactReader(vault)
    for url, key in plan.archive_keys:
        hook("delete-archive", key)
        reader.archive_vault(url).delete(key)
        deleted.append(f"{url} {key}")
    writer_in_flight = _delete_hot(vault, media_id, hook, deleted)
    tombstone_keys = {
        manifest_key(media_id, tombstone_version),
        manifest_journaled_key(media_id, tombstone_version),
    }
    for key in sorted(vault.list_keys(manifest_prefix(media_id)), key=_manifest_deletion_order):
        version = parse_manifest_version(key.replace(".journaled", ".json"))
        if key in tombstone_keys or version is None or version >= tombstone_version:
            continue
        hook("delete-manifest", key)
        vault.delete(key)
        deleted.append(key)
    return writer_in_flight


def erase_leftovers(
    vault: Vault, media_id: str, archive_urls: list[str] | None = None, hook: Hook = _no_hook
) -> list[str]:
    """For an item already forgotten: delete whatever of it is still stored besides its tombstone
    (what a raced writer stored, or the rest of an interrupted forget); the lifecycle run calls
    it. Returns what was deleted; nothing for an item that is not forgotten."""
    plan = plan_forget(vault, media_id, archive_urls)
    if plan.tombstone is None:
        return []
    deleted: list[str] = []
    _erase(vault, plan, _versions(vault, plan.media_id)[-1], hook, deleted)
    return deleted


def forget(
    vault: Vault,
    media_id: str,
    reason: str,
    by: str,
    apply: bool = False,
    archive_urls: list[str] | None = None,
    remove_from_index: Callable[[str], dict[str, Any]] | None = None,
    hook: Hook = _no_hook,
) -> ForgetResult:
    """Plan (default) or apply a forget. ``remove_from_index`` removes the item from the index
    and search and rebuilds them (``mediavault.index.reindex.purge_media``); None leaves that to the
    next re-index, which drops the item too.

    Applying commits the tombstone first (nothing is deleted before every refusal has had its
    chance: a legal hold, a bad ``by``), then deletes what is listed at that moment, on every tier."""
    reason = (reason or "").strip()
    if not reason:
        raise InputError("forget", "reason", "say why the item is forgotten (--reason)")
    if len(reason) > 2000:
        raise InputError("forget", "reason", "at most 2000 characters")
    by = (by or "").strip()
    if not by or len(by) > 200:
        raise InputError("forget", "requested_by", "who asked for it: 1 to 200 characters")
    plan = plan_forget(vault, media_id, archive_urls)
    result = ForgetResult(plan, applied=apply)
    if not apply:
        return result
    media_id = plan.media_id
    if plan.tombstone is None:
        hook("tombstone", media_id)
        forgotten = Forgotten(at=utc_now(), by=by, reason=reason)
        result.tombstone_version = _commit_tombstone(vault, media_id, forgotten)
        # Listed again: a writer that raced the tombstone may have stored more since the plan.
        plan = plan_forget(vault, media_id, archive_urls)
        result.plan = plan
    else:
        result.tombstone_version = _versions(vault, media_id)[-1]
    result.writer_in_flight = _erase(vault, plan, result.tombstone_version, hook, result.deleted)
    if remove_from_index is not None:
        hook("index", media_id)
        result.index = remove_from_index(media_id)
    return result


def record_forget(vault: Vault, result: ForgetResult, by: str, reason: str, **detail: Any) -> None:
    """The audit record of a forget (planned or applied): who, why, how much went."""
    from mediavault.access.audit import AuditRecord, write_records

    write_records(
        vault,
        [
            AuditRecord(
                action="forget",
                outcome="ok" if result.applied else "planned",
                actor=by,
                media_id=result.plan.media_id,
                detail={
                    "reason": reason,
                    "objects": result.plan.as_dict()["objects"],
                    "tombstone_version": result.tombstone_version,
                    **{k: v for k, v in detail.items() if v is not None},
                },
            )
        ],
    )


def erase_copy(store: Vault, media_id: str, tombstone_version: int, hook: Hook = _no_hook) -> list[str]:
    """Apply a forget to a copy of the vault (the mirror): delete the item's objects, edits and
    manifest versions older than its tombstone. Idempotent; returns the deleted keys."""
    doomed = [
        *store.list_keys(media_prefix(media_id)),
        *store.list_keys(edits_prefix(media_id)),
        *(
            key
            for key in store.list_keys(manifest_prefix(media_id))
            if (version := parse_manifest_version(key.replace(".journaled", ".json"))) is not None
            and version < tombstone_version
        ),
    ]
    doomed.sort(key=lambda key: (not key.startswith(("media/", "edits/")), _manifest_deletion_order(key)))
    for key in doomed:
        hook("delete", key)
        store.delete(key)
    return doomed


def record_forget_failure(
    vault: Vault, media_id: str, by: str, reason: str, exc: BaseException, **detail: Any
) -> None:
    """The audit record of a forget that failed (refused, or stopped part-way)."""
    from mediavault.access.audit import AuditRecord, write_records

    outcome = "refused" if isinstance(exc, (LegalHold, InputError)) else "failed"
    extra = {k: v for k, v in detail.items() if v is not None}
    write_records(
        vault,
        [
            AuditRecord(
                action="forget",
                outcome=outcome,
                actor=by or "unknown",
                media_id=media_id if SHA256_RE.match(media_id or "") else None,
                detail={"reason": reason, "error": str(exc)[:500], **extra},
            )
        ],
    )
