"""API tokens in the vault: creation, authentication, expiry, revocation, and the token CLI."""

from __future__ import annotations

import base64
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mediavault.access import cli as access_cli
from mediavault.access.audit import read_audit
from mediavault.access.tokens import (
    REVOCATION_CACHE_SECONDS,
    TOKENS_PREFIX,
    Principal,
    TokenInfo,
    TokenStore,
    any_tokens,
    hash_token,
    parse_token,
)
from mediavault.errors import InputError
from mediavault.vault import LocalVault, Vault

T0 = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A wall clock and a monotonic clock that tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class RecordingVault:
    """A real vault, with a record of the reads and listings made through it."""

    def __init__(self, inner: Vault) -> None:
        self.inner = inner
        self.url = inner.url
        self.reads: list[str] = []
        self.listings: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return self.inner.get_bytes(key)

    def head(self, key: str):
        self.reads.append(key)
        return self.inner.head(key)

    def list_keys(self, prefix: str = "", start_after: str | None = None) -> Iterator[str]:
        self.listings.append(prefix)
        return self.inner.list_keys(prefix, start_after)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def stored_objects(vault: Vault, prefix: str = "access/") -> dict[str, bytes]:
    return {key: vault.get_bytes(key) for key in vault.list_keys(prefix)}


def test_create_then_authenticate(vault: Vault) -> None:
    store = TokenStore(vault)
    record, token = store.create("alice", "editor", name="laptop", expires_days=30, created_by="qa")
    assert token.startswith(f"mvt_{record.id}_") and len(record.id) == 12
    secret = token.removeprefix(f"mvt_{record.id}_")
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert record.sha256 == hash_token(token)
    assert record.expires_at == record.created_at + timedelta(days=30)
    principal = TokenStore(vault).authenticate(token)
    assert principal == Principal(token_id=record.id, owner="alice", role="editor", name="laptop")
    assert store.check(token) == (principal, "ok")
    info = store.get(record.id)
    assert info is not None and info.owner == "alice" and not info.revoked and info.active
    assert [i.id for i in store.list()] == [record.id]
    assert "sha256" not in TokenInfo.model_fields and "sha256" not in info.model_dump()
    assert vault.head(f"{TOKENS_PREFIX}{record.id}.json") is not None


def test_a_wrong_secret_or_an_unknown_id_is_refused(vault: Vault) -> None:
    store = TokenStore(vault)
    first, token = store.create("alice", "viewer")
    second, other = store.create("bob", "admin")
    secret = token.removeprefix(f"mvt_{first.id}_")
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert store.check(f"mvt_{first.id}_{flipped}") == (None, "unknown")
    other_secret = other.removeprefix(f"mvt_{second.id}_")
    assert store.check(f"mvt_{first.id}_{other_secret}") == (None, "unknown"), (
        "secrets are not interchangeable"
    )
    assert store.check(f"mvt_{'0' * 12}_{secret}") == (None, "unknown")
    assert store.authenticate(token) is not None and store.authenticate(other) is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mvt_",
        "Bearer mvt_0123456789ab_" + "A" * 43,
        "mvt_0123456789ab_" + "A" * 42,
        "mvt_0123456789ab_" + "A" * 44,
        "mvt_0123456789AB_" + "A" * 43,
        "MVT_0123456789ab_" + "A" * 43,
        "mvt_0123456789ab_" + "A" * 42 + "=",
        "mvt_0123456789ab_" + "A" * 42 + "\n",
        "mvt_0123456789ab-" + "A" * 43,
        "mvt_0123456789ab_" + "A" * 42 + "é",
        "mvt_../../etc/pa_" + "A" * 43,
    ],
)
def test_malformed_tokens_are_refused_without_touching_the_vault(tmp_path: Path, text: str) -> None:
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    assert TokenStore(vault).check(text) == (None, "malformed")
    assert vault.reads == [] and vault.listings == []


@pytest.mark.hardening
@given(text=st.text(max_size=120))
def test_arbitrary_text_never_raises_and_never_authenticates(tmp_path: Path, text: str) -> None:
    store = TokenStore(LocalVault(tmp_path / "vault"))
    principal, reason = store.check(text)
    assert principal is None and reason in ("malformed", "unknown")
    assert store.authenticate(text) is None


TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.mark.hardening
@given(
    token_id=st.text("0123456789abcdef", min_size=12, max_size=12),
    secret=st.text(TOKEN_ALPHABET, min_size=43, max_size=43),
)
def test_well_formed_guesses_are_unknown(tmp_path: Path, token_id: str, secret: str) -> None:
    vault = LocalVault(tmp_path / "guesses")
    store = TokenStore(vault)
    if not any_tokens(vault):
        store.create("alice", "admin")
    guess = f"mvt_{token_id}_{secret}"
    assert parse_token(guess) == (token_id, secret)
    assert store.check(guess) == (None, "unknown")


def test_lookup_is_by_id_never_a_scan_and_is_cached(tmp_path: Path) -> None:
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    clock = Clock()
    record, token = TokenStore(vault, clock=clock).create("alice", "viewer")
    store = TokenStore(vault, clock=clock, monotonic=clock.monotonic)
    vault.reads.clear()
    assert store.authenticate(token) is not None
    assert vault.listings == []
    assert set(vault.reads) == {
        f"{TOKENS_PREFIX}{record.id}.json",
        f"{TOKENS_PREFIX}{record.id}.revoked.json",
    }
    vault.reads.clear()
    for _ in range(5):
        assert store.authenticate(token) is not None
    assert vault.reads == [], "within the cache window the vault is not read again"
    clock.advance(REVOCATION_CACHE_SECONDS)
    assert store.authenticate(token) is not None
    assert len(vault.reads) == 2, "after the window, the record and revocation are read again"


def test_the_cached_check_reads_nothing_and_agrees_with_the_full_check(tmp_path: Path) -> None:
    """``check_cached`` (the event loop's fast path) answers only from the caches, and never lets
    through what ``check`` refuses: another secret, an expired or a revoked token."""
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    clock = Clock()
    store = TokenStore(vault, clock=clock, monotonic=clock.monotonic)
    record, token = store.create("alice", "viewer", expires_days=1)
    vault.reads.clear()
    assert store.check_cached(token) is None, "nothing cached yet"
    assert vault.reads == []
    assert store.check(token)[1] == "ok"
    vault.reads.clear()
    assert store.check_cached(token) == store.check(token)[0] is not None
    assert vault.reads == [], "both answered from the caches"
    assert store.check_cached(token[:-1] + ("A" if token[-1] != "A" else "B")) is None, "another secret"
    assert store.check_cached("mvt_nonsense") is None
    clock.advance(86400)
    assert store.check_cached(token) is None and store.check(token) == (None, "expired")
    clock.now -= timedelta(seconds=86400)
    assert store.check_cached(token) is not None
    store.revoke(record.id, by="qa")
    assert store.check_cached(token) is None and store.check(token) == (None, "revoked")
    vault.reads.clear()
    assert store.check_cached(token) is None, "a cached revocation is a refusal"
    assert vault.reads == [] and vault.listings == []


def test_an_expired_token_is_refused(vault: Vault) -> None:
    clock = Clock()
    store = TokenStore(vault, clock=clock)
    record, token = store.create("alice", "editor", expires_days=1)
    assert record.expires_at == T0 + timedelta(days=1)
    clock.advance(86400 - 1)
    assert store.check(token)[1] == "ok"
    clock.advance(1)
    assert store.check(token) == (None, "expired")
    assert TokenStore(vault).check(token) == (None, "expired"), "with the real clock, long expired"
    info = store.get(record.id)
    assert info is not None and info.expired and not info.active and not info.revoked
    assert not any_tokens(vault), "an expired token does not count"


def test_a_revocation_takes_effect_within_the_cache_window(vault: Vault) -> None:
    clock = Clock()
    server = TokenStore(vault, clock=clock, monotonic=clock.monotonic)  # another process
    record, token = TokenStore(vault, clock=clock).create("alice", "viewer")
    assert server.authenticate(token) is not None
    admin = TokenStore(vault, clock=clock, monotonic=clock.monotonic)
    assert admin.authenticate(token) is not None
    assert admin.revoke(record.id, by="qa") is True
    assert admin.check(token) == (None, "revoked"), "at once in the revoking process"
    clock.advance(REVOCATION_CACHE_SECONDS - 0.5)
    assert server.authenticate(token) is not None, "still cached (allowed within the window)"
    clock.advance(0.5)
    assert server.check(token) == (None, "revoked")
    assert admin.revoke(record.id) is False, "already revoked"
    info = admin.get(record.id)
    assert (
        info is not None
        and info.revoked
        and info.revoked_by == "qa"
        and info.revoked_at == clock.now - (timedelta(seconds=REVOCATION_CACHE_SECONDS))
    )


def test_check_id_for_sessions_follows_revocation_and_expiry(tmp_path: Path) -> None:
    vault = RecordingVault(LocalVault(tmp_path / "vault"))
    clock = Clock()
    record, token = TokenStore(vault, clock=clock).create("alice", "editor", expires_days=1)
    server = TokenStore(vault, clock=clock, monotonic=clock.monotonic)
    assert server.check_id(record.id) == (server.authenticate(token), "ok")
    vault.reads.clear()
    assert server.check_id(record.id)[1] == "ok" and server.get(record.id) is not None
    assert vault.reads == [], "cached like authenticate"
    assert server.check_id("0123456789ab") == (None, "unknown")
    assert server.check_id("../x") == (None, "malformed") and server.check_id(None) == (None, "malformed")  # type: ignore[arg-type]
    TokenStore(vault, clock=clock).revoke(record.id)
    clock.advance(REVOCATION_CACHE_SECONDS)
    assert server.check_id(record.id) == (None, "revoked")
    other, _ = TokenStore(vault, clock=clock).create("bob", "viewer", expires_days=1)
    clock.advance(86400)
    assert server.check_id(other.id) == (None, "expired")


def test_a_revocation_takes_effect_in_real_time(tmp_path: Path) -> None:
    vault = LocalVault(tmp_path / "vault")
    record, token = TokenStore(vault).create("alice", "viewer")
    server = TokenStore(vault, cache_seconds=0.2)
    assert server.authenticate(token) is not None
    TokenStore(vault).revoke(record.id)
    deadline = time.monotonic() + 2
    while server.authenticate(token) is not None:
        assert time.monotonic() < deadline, "the revocation never took effect"
        time.sleep(0.05)
    assert TokenStore(vault, cache_seconds=3600).cache_seconds == REVOCATION_CACHE_SECONDS


def test_revoking_an_unknown_or_malformed_id_is_an_input_error(vault: Vault) -> None:
    store = TokenStore(vault)
    with pytest.raises(InputError) as unknown:
        store.revoke("0123456789ab")
    assert unknown.value.field == "id"
    with pytest.raises(InputError):
        store.revoke("../../x")
    assert stored_objects(vault) == {}
    assert store.get("0123456789ab") is None and store.get("not an id") is None


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_every_owner_is_for_admins_only(vault: Vault, role: str) -> None:
    store = TokenStore(vault)
    with pytest.raises(InputError) as refused:
        store.create("*", role)  # type: ignore[arg-type]
    assert (refused.value.file, refused.value.field) == ("token", "owner")
    assert "admin" in refused.value.message
    assert stored_objects(vault) == {}, "nothing written"
    _, token = store.create("*", "admin")
    principal = store.authenticate(token)
    assert principal is not None and principal.scope_owner() is None and principal.sees_owner("anyone")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"owner": "", "role": "viewer"}, "owner"),
        ({"owner": "  ", "role": "viewer"}, "owner"),
        ({"owner": "a\nb", "role": "viewer"}, "owner"),
        ({"owner": "x" * 201, "role": "viewer"}, "owner"),
        ({"owner": "alice", "role": "root"}, "role"),
        ({"owner": "alice", "role": "viewer", "expires_days": 0}, "expires_days"),
        ({"owner": "alice", "role": "viewer", "expires_days": -1}, "expires_days"),
        ({"owner": "alice", "role": "viewer", "expires_days": float("nan")}, "expires_days"),
        ({"owner": "alice", "role": "viewer", "expires_days": float("inf")}, "expires_days"),
        ({"owner": "alice", "role": "viewer", "expires_days": 1e300}, "expires_days"),
        ({"owner": "alice", "role": "viewer", "name": "bad\x1bname"}, "name"),
        ({"owner": "alice", "role": "viewer", "name": "mvt_0123456789ab_" + "A" * 43}, "name"),
    ],
)
def test_bad_token_input_is_one_input_error_naming_the_field(
    tmp_path: Path, kwargs: dict, field: str
) -> None:
    vault = LocalVault(tmp_path / "vault")
    with pytest.raises(InputError) as refused:
        TokenStore(vault).create(**kwargs)
    assert (refused.value.file, refused.value.field) == ("token", field)
    assert stored_objects(vault) == {}


def test_owner_names_follow_the_media_owner_rule(tmp_path: Path) -> None:
    store = TokenStore(LocalVault(tmp_path / "vault"))
    for owner in ("alice", "Team Archive / 2024", "tab\tseparated", "x" * 200, "ünïcödé"):
        record, _ = store.create(owner, "viewer")
        assert record.owner == owner


def test_the_token_is_never_stored(vault: Vault) -> None:
    store = TokenStore(vault)
    tokens = []
    for n, role in enumerate(["viewer", "editor", "admin"] * 2):
        record, token = store.create(f"owner{n}", role, name=f"n{n}", expires_days=n + 1)  # type: ignore[arg-type]
        tokens.append((record, token))
    store.revoke(tokens[0][0].id, by="qa")
    objects = stored_objects(vault)
    assert len(objects) == 7
    for record, token in tokens:
        secret = token.removeprefix(f"mvt_{record.id}_")
        raw = base64.urlsafe_b64decode(secret + "=")
        for data in objects.values():
            assert token.encode() not in data
            assert secret.encode() not in data
            assert raw not in data and raw.hex().encode() not in data
        assert hash_token(token).encode() in objects[f"{TOKENS_PREFIX}{record.id}.json"]


def test_principal_roles_and_scope() -> None:
    viewer = Principal("0123456789ab", "alice", "viewer")
    editor = Principal("0123456789ab", "alice", "editor", name="ci")
    admin = Principal("0123456789ab", "root", "admin")
    assert viewer.can("viewer") and not viewer.can("editor") and not viewer.can("admin")
    assert editor.can("viewer") and editor.can("editor") and not editor.can("admin")
    assert admin.can("admin") and admin.is_admin and not editor.is_admin
    assert viewer.sees_owner("alice") and not viewer.sees_owner("bob") and not viewer.sees_owner(None)
    assert not viewer.sees_owner("Alice") and not viewer.sees_owner("alice ")
    assert admin.sees_owner("bob") and admin.sees_owner(None)
    assert viewer.scope_owner() == "alice" and admin.scope_owner() is None


def test_any_tokens_counts_only_active_ones(vault: Vault) -> None:
    assert not any_tokens(vault)
    clock = Clock(datetime.now(UTC) - timedelta(days=10))
    TokenStore(vault, clock=clock).create("alice", "viewer", expires_days=1)
    assert not any_tokens(vault), "expired"
    record, _ = TokenStore(vault).create("alice", "viewer")
    assert any_tokens(vault)
    TokenStore(vault).revoke(record.id)
    assert not any_tokens(vault), "revoked"


# ---- the token CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli_vault(tmp_path: Path) -> Iterator[LocalVault]:
    vault = LocalVault(tmp_path / "cli-vault")
    failures: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        failures.append(exc)
        access_cli._default_fail(exc)

    access_cli.configure(lambda: vault, fail)
    yield vault
    access_cli.configure(access_cli._default_vault, access_cli._default_fail)


def run(*args: str):
    import typer

    app = typer.Typer()
    app.add_typer(access_cli.token_app, name="token")
    app.command("audit")(access_cli.audit_command)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_token_create_prints_the_token_alone_on_the_last_line(cli_vault: LocalVault) -> None:
    result = run("token", "create", "--owner", "alice", "--role", "editor", "--name", "[bold]ci[/]")
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").split("\n")
    token = lines[-1]
    assert parse_token(token) is not None
    assert result.stdout.count(token.split("_", 2)[2]) == 1, "the secret is shown once"
    principal = TokenStore(cli_vault).authenticate(token)
    assert principal is not None and (principal.owner, principal.role, principal.name) == (
        "alice",
        "editor",
        "[bold]ci[/]",
    )
    assert "'[bold]ci[/]'" in result.stdout, "user text printed as written, not as markup"
    created = read_audit(cli_vault, actor="cli", action="token-create")
    assert len(created) == 1 and created[0].detail["target_token_id"] == principal.token_id
    listed = run("token", "list")
    assert listed.exit_code == 0 and principal.token_id in listed.stdout and "[bold]ci[/]" in listed.stdout
    record_hash = hash_token(token)
    assert record_hash not in listed.stdout and token not in listed.stdout
    as_json = run("token", "list", "--json")
    assert as_json.exit_code == 0 and record_hash not in as_json.stdout and '"alice"' in as_json.stdout


def test_cli_revoke_and_audit(cli_vault: LocalVault) -> None:
    record, token = TokenStore(cli_vault).create("alice", "viewer")
    result = run("token", "revoke", record.id)
    assert result.exit_code == 0, result.output
    assert TokenStore(cli_vault).authenticate(token) is None
    again = run("token", "revoke", record.id)
    assert again.exit_code == 0 and "already revoked" in again.stdout
    unknown = run("token", "revoke", "0123456789ab")
    assert unknown.exit_code == 2 and "no token" in unknown.stderr
    shown = run("audit", "--actor", "cli", "--json")
    assert shown.exit_code == 0, shown.output
    import json

    outcomes = [(r["action"], r["outcome"]) for r in json.loads(shown.stdout)]
    assert outcomes == [("token-revoke", "already-revoked"), ("token-revoke", "ok")]
    table = run("audit", "--since", "1d", "--action", "token-revoke")
    assert table.exit_code == 0 and "2 record(s)" in table.stdout
    bad = run("audit", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "since" in bad.stderr


def test_cli_refuses_every_owner_for_a_viewer(cli_vault: LocalVault) -> None:
    result = run("token", "create", "--owner", "*", "--role", "viewer")
    assert result.exit_code == 2
    assert "owner" in result.stderr and "admin" in result.stderr
    assert result.stdout == "" and stored_objects(cli_vault, "") == {}
    zero = run("token", "create", "--owner", "alice", "--role", "viewer", "--expires-days", "0")
    assert zero.exit_code == 2 and "expires_days" in zero.stderr
