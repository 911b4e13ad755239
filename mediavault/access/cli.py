"""``mediavault token ...`` and ``mediavault audit``: Typer commands the main CLI mounts.

The main CLI calls ``configure(vault_factory, fail)`` when mounting them; without it they open the
vault the settings name and print errors themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mediavault.access.audit import AuditRecord, read_audit, write_records
from mediavault.access.tokens import TokenInfo, TokenStore
from mediavault.errors import InputError, MediavaultError
from mediavault.vault.base import Vault

CLI_ACTOR = "cli"

console = Console(emoji=False)
errors = Console(stderr=True, emoji=False)

token_app = typer.Typer(help="API tokens: create, list and revoke.", no_args_is_help=True)


def _default_vault() -> Vault:
    from mediavault.settings import load_settings
    from mediavault.vault import vault_from_settings

    return vault_from_settings(load_settings())


def _default_fail(exc: BaseException) -> None:
    errors.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(2 if isinstance(exc, MediavaultError) else 1)


_vault_factory: Callable[[], Vault] = _default_vault
_fail_handler: Callable[[BaseException], Any] = _default_fail


def configure(vault_factory: Callable[[], Vault], fail: Callable[[BaseException], Any]) -> None:
    """Set how these commands open the vault and report a failure (``fail`` must not return)."""
    global _vault_factory, _fail_handler
    _vault_factory = vault_factory
    _fail_handler = fail


def _fail(exc: BaseException) -> NoReturn:
    _fail_handler(exc)
    raise typer.Exit(1)


def _vault() -> Vault:
    try:
        return _vault_factory()
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc)


class RoleChoice(StrEnum):
    viewer = "viewer"
    editor = "editor"
    admin = "admin"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@token_app.command("create")
def create_token(
    owner: Annotated[
        str, typer.Option("--owner", help="Owner whose media the token sees ('*': every owner, admin only).")
    ],
    role: Annotated[RoleChoice, typer.Option("--role", help="viewer, editor or admin.")],
    name: Annotated[str | None, typer.Option("--name", help="A label, e.g. who or what uses it.")] = None,
    expires_days: Annotated[
        float | None, typer.Option("--expires-days", help="Days until it expires (default: never).")
    ] = None,
) -> None:
    """Create a token. It is printed once, alone on the last line; only its hash is stored."""
    vault = _vault()
    store = TokenStore(vault)
    try:
        record, token = store.create(
            owner=owner, role=role.value, name=name, expires_days=expires_days, created_by=CLI_ACTOR
        )
    except Exception as exc:
        _fail(exc)
    audit = AuditRecord(
        action="token-create",
        outcome="ok",
        actor=CLI_ACTOR,
        detail={
            "target_token_id": record.id,
            "target_owner": record.owner,
            "role": record.role,
            "name": record.name,
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        },
    )
    try:
        write_records(vault, [audit])
    except Exception as exc:
        try:
            store.revoke(record.id, by=CLI_ACTOR)
            what = "it was revoked and not shown"
        except Exception:
            what = f"it was not shown; revoke it: mediavault token revoke {record.id}"
        _fail(
            MediavaultError(
                f"token {record.id} was created but its audit record was not written ({exc}); {what}"
            )
        )
    console.print(
        f"token [bold]{record.id}[/] for owner [bold]{escape(record.owner)}[/], role {record.role}"
        + (f", name {escape(repr(record.name))}" if record.name else "")
        + f", expires {_when(record.expires_at)}.",
        highlight=False,
    )
    console.print("Store it now: it is shown only this once. The token is the last line:", highlight=False)
    typer.echo(token)


def _token_row(info: TokenInfo) -> list[str]:
    if info.revoked:
        revoked = f"[red]{_when(info.revoked_at)}[/]"
    elif info.expired:
        revoked = "[yellow]expired[/]"
    else:
        revoked = "no"
    return [
        info.id,
        escape(info.name or ""),
        escape(info.owner),
        info.role,
        _when(info.created_at),
        _when(info.expires_at),
        revoked,
    ]


@token_app.command("list")
def list_tokens(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every token (never its secret or hash)."""
    vault = _vault()
    try:
        infos = TokenStore(vault).list()
    except Exception as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([info.model_dump(mode="json") for info in infos], indent=2))
        return
    table = Table("id", "name", "owner", "role", "created", "expires", "revoked")
    for info in infos:
        table.add_row(*_token_row(info))
    console.print(table)
    active = sum(info.active for info in infos)
    console.print(f"{len(infos)} token(s), {active} active", highlight=False)


@token_app.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id.")]) -> None:
    """Revoke a token. Running servers refuse it within a few seconds."""
    vault = _vault()
    try:
        revoked = TokenStore(vault).revoke(token_id.strip().lower(), by=CLI_ACTOR)
    except Exception as exc:
        _fail(exc)
    token_id = token_id.strip().lower()
    audit = AuditRecord(
        action="token-revoke",
        outcome="ok" if revoked else "already-revoked",
        actor=CLI_ACTOR,
        detail={"target_token_id": token_id},
    )
    try:
        write_records(vault, [audit])
    except Exception as exc:
        _fail(MediavaultError(f"token {token_id} is revoked, but its audit record was not written: {exc}"))
    console.print(f"token {token_id} {'revoked' if revoked else 'was already revoked'}", highlight=False)


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(
    value: str, field: str, end_of_day: bool = False, now: datetime | None = None, source: str = "audit"
) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or a span back from now: 30m, 12h, 7d, 2w.
    A bare date means its midnight, or the next midnight with ``end_of_day``."""
    text = value.strip()
    relative = _RELATIVE.fullmatch(text.lower())
    if relative:
        span = timedelta(**{_UNITS[relative.group(2)]: float(relative.group(1))})
        return (now or datetime.now(UTC)) - span
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = datetime.combine(datetime.fromisoformat(text).date(), time(), UTC)
            if end_of_day:
                return day + timedelta(days=1) if day.date() < date.max else datetime.max.replace(tzinfo=UTC)
            return day
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InputError(
            source, field, f"not a time: {text[:60]!r} (use 2024-05-01, 2024-05-01T12:00, or 30m/12h/7d/2w)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _who(record: AuditRecord) -> str:
    parts = [p for p in (record.actor, record.token_id, record.owner) if p]
    return " / ".join(parts) + (f" ({record.role})" if record.role else "")


def audit_command(
    since: Annotated[
        str | None, typer.Option("--since", help="From: 2024-05-01, an ISO time, or 7d/12h/30m back.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before: a date (whole day included) or time.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Token id, owner, or 'cli'.")] = None,
    media: Annotated[str | None, typer.Option("--media", help="Media id.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. stream, export, edit, denied.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many records.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show audit records, newest first."""
    try:
        start = parse_time(since, "since") if since else None
        end = parse_time(until, "until", end_of_day=True) if until else None
    except InputError as exc:
        _fail(exc)
    vault = _vault()
    try:
        records = read_audit(
            vault,
            since=start,
            until=end,
            actor=actor,
            media_id=media.strip().lower() if media else None,
            action=action,
            limit=limit,
        )
    except Exception as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    table = Table("at", "action", "outcome", "who", "media", "client", "detail")
    for record in records:
        table.add_row(
            record.at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(record.action),
            escape(record.outcome) if record.outcome == "ok" else f"[red]{escape(record.outcome)}[/]",
            escape(_who(record)),
            escape((record.media_id or "")[:16]),
            escape(record.client or ""),
            escape(json.dumps(record.detail, default=str, ensure_ascii=False)) if record.detail else "",
        )
    console.print(table)
    console.print(f"{len(records)} record(s)", highlight=False)
