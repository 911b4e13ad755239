"""The HTTP API under a real uvicorn on loopback, over the local and the S3 (moto) vault.

``site`` builds a fresh site per test; ``module_site`` builds one per test module and backend (for
suites of many cheap requests, like the authorization matrix and the hostile-parameter tests).
Import the fixture you use into the test module."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from mediavault.access.tokens import TokenStore, new_token
from mediavault.backends import index_target
from mediavault.index import reindex
from mediavault.ingest.pipeline import IngestRequest, OutputSpec, ingest
from mediavault.media import edits
from mediavault.settings import MediavaultSettings, S3Options, WebOptions
from mediavault.vault import Vault, vault_from_settings
from mediavault.vault.models import utc_now
from mediavault.vault.s3 import make_s3_client
from mediavault.web.server import ZeroCopyHttpToolsProtocol
from tests.conftest import REAL, moto_options
from tests.helpers import JFK_JSON, JFK_MEDIA, make_wav

BOB_SPEAKERS = {
    "SPEAKER_01": "Bobsecret Chair",
    "SPEAKER_05": "Bobsecret Clerk",
    "SPEAKER_06": "Bobsecret Guest",
}
"""Display names ``module_site`` gives bob's speakers: text that must never reach alice."""


@dataclass
class Site:
    url: str
    vault: Vault
    settings: MediavaultSettings
    tokens: dict[str, str]
    alice_media: str
    bob_media: str
    app: object = None
    backend: str = "local"
    token_ids: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def serve(app, **config) -> tuple[str, uvicorn.Server, threading.Thread]:
    """``app`` under uvicorn on a free loopback port, with ``mediavault serve``'s protocol unless
    ``config`` (uvicorn.Config's arguments) says otherwise; returns its URL, server and thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = {"log_level": "warning", "lifespan": "on", "http": ZeroCopyHttpToolsProtocol, **config}
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@contextlib.contextmanager
def running_site(
    base: Path,
    vault_url: str,
    s3: S3Options,
    mongo_url: str,
    web: WebOptions,
    backend: str,
    hardened: bool = False,
) -> Iterator[Site]:
    """Alice's and bob's media ingested and indexed, tokens made, the app served on loopback.

    ``hardened`` adds what the authorization and hostile-parameter suites need: tokens of every
    kind (expired and revoked ones included), and bob's speakers renamed to distinctive names."""
    from mediavault.web import create_app

    settings = MediavaultSettings(
        home=base / "home",
        vault_url=vault_url,
        s3=s3,
        mongo_mode="external",
        mongo_url=mongo_url,
        mongo_database=f"web_{uuid.uuid4().hex[:10]}",
        web=web,
    )
    vault = vault_from_settings(settings)
    alice = ingest(
        vault,
        IngestRequest(
            media=str(JFK_MEDIA),
            outputs=[OutputSpec(str(JFK_JSON))],
            metadata={"title": "Ask not", "owner": "alice"},
        ),
        settings,
    ).media_id
    bob_wav = make_wav(base / "bob.wav", 300, 330)
    bob = ingest(
        vault,
        IngestRequest(
            media=str(bob_wav),
            outputs=[OutputSpec(str(REAL / "whisperx_en_schoolboard_short.json"))],
            metadata={"title": "School board", "owner": "bob"},
        ),
        settings,
    ).media_id
    store = TokenStore(vault)
    tokens = {
        "alice-viewer": store.create("alice", "viewer")[1],
        "alice-editor": store.create("alice", "editor")[1],
        "bob-viewer": store.create("bob", "viewer")[1],
        "admin": store.create("*", "admin")[1],
    }
    if hardened:
        for label, display_name in BOB_SPEAKERS.items():
            payload = {"speaker": label, "display_name": display_name}
            edits.add_edit(vault, bob, "rename-speaker", payload, author="fixture")
        tokens["alice-admin"] = store.create("alice", "admin")[1]
        tokens["bob-editor"] = store.create("bob", "editor")[1]
        # A clock in the past makes a token that expired yesterday, through the store's own API.
        last_week = TokenStore(vault, clock=lambda: utc_now() - timedelta(days=7))
        tokens["expired"] = last_week.create("alice", "editor", expires_days=6)[1]
        revoked, tokens["revoked"] = store.create("alice", "editor")
        store.revoke(revoked.id, by="fixture")
        tokens["unknown"] = new_token()[1]  # well formed, never stored
    reindex.full_rebuild(index_target(settings))
    token_ids = {who: token.split("_")[1] for who, token in tokens.items()}
    app = create_app(settings)
    url, server, thread = serve(app)
    try:
        yield Site(url, vault, settings, tokens, alice, bob, app, backend, token_ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        index_target(settings).store.database.client.drop_database(settings.mongo_database)


@pytest.fixture(params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path: Path, mongo_url: str) -> Iterator[Site]:
    if request.param == "local":
        vault_url, s3 = (tmp_path / "vault").resolve().as_uri(), S3Options()
    else:
        options = request.getfixturevalue("s3_options")
        vault_url, s3 = f"s3://{request.getfixturevalue('s3_bucket')}/web", options
    web = WebOptions(login_attempts_per_minute=3, audit_flush_seconds=0.2)
    with running_site(tmp_path, vault_url, s3, mongo_url, web, request.param) as built:
        yield built


@pytest.fixture(scope="module", params=["local", "s3"])
def module_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mongo_url: str
) -> Iterator[Site]:
    """One hardened site per test module and backend: tests must leave it usable for the next."""
    base = tmp_path_factory.mktemp(f"site-{request.param}")
    if request.param == "local":
        vault_url, s3 = (base / "vault").resolve().as_uri(), S3Options()
    else:
        s3 = moto_options(request.getfixturevalue("moto_endpoint"))
        bucket = f"web-{uuid.uuid4().hex[:12]}"
        make_s3_client(s3).create_bucket(Bucket=bucket)
        vault_url = f"s3://{bucket}/web"
    web = WebOptions(login_attempts_per_minute=1000)  # the audit endpoint flushes first
    with running_site(base, vault_url, s3, mongo_url, web, request.param, hardened=True) as built:
        yield built
