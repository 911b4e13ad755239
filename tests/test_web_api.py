"""The HTTP API under a real uvicorn on loopback, on the local and the S3 (moto) vault."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from mediavault.lifecycle.engine import run as run_lifecycle
from mediavault.lifecycle.policy import Policies
from mediavault.vault import manifests
from mediavault.vault.models import utc_now
from mediavault.vault.s3 import S3Vault
from tests import web_site
from tests.helpers import JFK_MEDIA
from tests.web_site import Site

site = web_site.site  # the fixture, shared with the other web test modules


def test_health_needs_no_token_and_everything_else_does(site: Site) -> None:
    with site.client() as anonymous:
        health = anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True, health.text
        for path in ("/api/v1/media", f"/api/v1/media/{site.alice_media}", "/api/v1/search?q=ask"):
            answer = anonymous.get(path)
            assert answer.status_code == 401 and answer.json()["error"] == "authentication required"
        assert anonymous.get("/api/docs").status_code == 200


def test_owners_see_only_their_own_media(site: Site) -> None:
    with (
        site.client("alice-viewer") as alice,
        site.client("bob-viewer") as bob,
        site.client("admin") as admin,
    ):
        assert [m["id"] for m in alice.get("/api/v1/media").json()["items"]] == [site.alice_media]
        assert [m["id"] for m in bob.get("/api/v1/media").json()["items"]] == [site.bob_media]
        assert {m["id"] for m in admin.get("/api/v1/media").json()["items"]} == {
            site.alice_media,
            site.bob_media,
        }
        assert [m["owner"] for m in admin.get("/api/v1/media", params={"owner": "bob"}).json()["items"]] == [
            "bob"
        ]
        assert alice.get("/api/v1/media", params={"owner": "bob"}).status_code == 403
        for path in ("", "/transcript", "/export/srt", "/stream", "/url"):
            answer = bob.get(f"/api/v1/media/{site.alice_media}{path}")
            assert answer.status_code == 404 and answer.json() == {"error": "not found", "detail": None}, path
        missing = "0" * 64
        assert (
            alice.get(f"/api/v1/media/{missing}").json()
            == bob.get(f"/api/v1/media/{site.alice_media}").json()
        )
        detail = alice.get(f"/api/v1/media/{site.alice_media}")
        assert detail.status_code == 200 and detail.headers["ETag"] == '"v1"'
        body = detail.json()
        assert body["title"] == "Ask not" and body["manifest_version"] == 1 and body["artifacts"]
        assert admin.get(f"/api/v1/media/{site.bob_media}").status_code == 200


def test_search_and_its_facets_stay_within_the_owner(site: Site) -> None:
    with site.client("alice-viewer") as alice, site.client("admin") as admin:
        everything = admin.get("/api/v1/search", params={"q": "you"}).json()
        assert len(everything["facets"]["media_id"]) == 2, "the query matches both owners' media"
        scoped = alice.get("/api/v1/search", params={"q": "you"}).json()
        assert scoped["total"] > 0 and {h["media_id"] for h in scoped["hits"]} == {site.alice_media}
        assert set(scoped["facets"]["media_id"]) == {site.alice_media}
        bob_speakers = set(
            admin.get("/api/v1/search", params={"q": "you", "owner": "bob"}).json()["facets"]["speaker_name"]
        )
        assert bob_speakers and not bob_speakers & set(scoped["facets"]["speaker_name"]) - {"SPEAKER_00"}
        assert alice.get("/api/v1/search", params={"q": "you", "owner": "bob"}).status_code == 403
        injected = alice.get("/api/v1/search", params={"q": "owner:bob OR *"}).json()
        assert {h["media_id"] for h in injected["hits"]} <= {site.alice_media}


def test_titles_are_searchable_within_the_owner(site: Site) -> None:
    with site.client("alice-viewer") as alice, site.client("admin") as admin:
        board = admin.get("/api/v1/search", params={"q": "board"}).json()["media"]
        assert [(m["media_id"], m["title"]) for m in board] == [(site.bob_media, "School board")]
        assert alice.get("/api/v1/search", params={"q": "board"}).json()["media"] == []
        mine = alice.get("/api/v1/search", params={"q": "ask"}).json()
        assert [m["media_id"] for m in mine["media"]] == [site.alice_media]
        assert "<b>Ask</b>" in mine["media"][0]["snippet"]
        none = alice.get("/api/v1/search", params={"q": "ask", "media_limit": 0}).json()
        assert none["media"] == [] and none["total"] == mine["total"]
        assert alice.get("/api/v1/search", params={"q": "ask", "media_limit": 51}).status_code == 422
        # Every paging and shaping parameter reaches the search.
        by_time = admin.get("/api/v1/search", params={"q": "the", "sort": "time"}).json()
        assert len(by_time["hits"]) >= 2 and by_time["facets"]
        second = admin.get(
            "/api/v1/search", params={"q": "the", "sort": "time", "limit": 1, "offset": 1, "facets": "false"}
        ).json()
        assert second["hits"] == by_time["hits"][1:2] and second["facets"] == {}


def test_stream_supports_ranges_or_redirects_to_a_presigned_url(site: Site) -> None:
    original = JFK_MEDIA.read_bytes()
    with site.client("alice-viewer") as alice:
        first = alice.get(f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=100-199"})
        if isinstance(site.vault, S3Vault):
            assert first.status_code == 307
            target = first.headers["location"]
            assert "X-Amz-Signature" in target and "response-content-type=audio" in target
            ranged = httpx.get(target, headers={"Range": "bytes=100-199"})
        else:
            ranged = first
        assert ranged.status_code == 206 and ranged.content == original[100:200]
        assert ranged.headers["content-range"] == f"bytes 100-199/{len(original)}"
        assert ranged.headers["content-type"].startswith("audio/")
        if not isinstance(site.vault, S3Vault):
            assert ranged.headers["accept-ranges"] == "bytes"
            too_far = alice.get(
                f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=99999999-"}
            )
            assert too_far.status_code == 416
            head = alice.head(f"/api/v1/media/{site.alice_media}/stream")
            assert head.status_code == 200 and int(head.headers["content-length"]) == len(original)
            assert alice.get(f"/api/v1/media/{site.alice_media}/stream").content == original
            # Not a regular file where the media should be (a restore gone wrong): one clear 503.
            manifest = manifests.latest_manifest(site.vault, site.alice_media)
            stored = site.vault.local_path(next(a.key for a in manifest.artifacts if a.kind == "media"))
            aside = stored.with_name("original.aside")
            stored.rename(aside)
            try:
                stored.mkdir()
                broken = alice.get(f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=0-9"})
                assert broken.status_code == 503 and broken.json()["error"].startswith("media object missing")
            finally:
                stored.rmdir()
                aside.rename(stored)


def test_a_share_url_downloads_without_a_token_and_cannot_be_forged(site: Site) -> None:
    with site.client("alice-viewer") as alice:
        shared = alice.get(f"/api/v1/media/{site.alice_media}/url").json()
    assert shared["expires_in"] == site.settings.web.share_url_ttl_seconds
    download = httpx.get(shared["url"])
    assert download.status_code == 200 and download.content == JFK_MEDIA.read_bytes()
    assert "attachment" in download.headers["content-disposition"]
    if isinstance(site.vault, S3Vault):  # moto does not check signatures; AWS and MinIO do
        assert f"X-Amz-Expires={shared['expires_in']}" in shared["url"]
        return
    forged = shared["url"][:-3] + ("AAA" if not shared["url"].endswith("AAA") else "BBB")
    assert httpx.get(forged).status_code == 403


def test_edits_need_the_editor_role_and_honour_if_match(site: Site) -> None:
    path = f"/api/v1/media/{site.alice_media}/edits"
    edit = {"kind": "rename-speaker", "payload": {"speaker": "SPEAKER_00", "display_name": "JFK"}}
    with site.client("alice-viewer") as viewer, site.client("alice-editor") as editor:
        assert viewer.post(path, json=edit).status_code == 403
        assert site.client("bob-viewer").post(path, json=edit).status_code == 404
        stale = editor.post(path, json=edit, headers={"If-Match": '"v7"'})
        assert stale.status_code == 412 and stale.headers["ETag"] == '"v1"'
        done = editor.post(path, json=edit, headers={"If-Match": '"v1"'})
        assert done.status_code == 201 and done.headers["ETag"] == '"v2"' and done.json()["indexed"] is True
        again = editor.post(path, json=edit, headers={"If-Match": '"v1"'})
        assert again.status_code == 412, "the second writer with the old ETag loses"
        bad = editor.post(
            path, json={"kind": "correct-text", "payload": {"run_id": "x" * 32, "seq": 0, "text": "a"}}
        )
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == "payload.run_id"
        owner_change = editor.post(path, json={"kind": "fix-metadata", "payload": {"owner": "bob"}})
        assert owner_change.status_code == 403
        transcript = viewer.get(f"/api/v1/media/{site.alice_media}/transcript").json()
        assert {s["label"]: s["display_name"] for s in transcript["speakers"]}.get(
            "SPEAKER_00", "JFK"
        ) == "JFK"
        hits = viewer.get("/api/v1/search", params={"q": "ask not"}).json()["hits"]
        assert hits and all(h["media_id"] == site.alice_media for h in hits)
    with (
        site.client("admin") as admin,
        site.client("bob-viewer") as bob,
        site.client("alice-viewer") as alice,
    ):
        before = (alice.get("/api/v1/stats").json()["media"], bob.get("/api/v1/stats").json()["media"])
        moved = admin.post(path, json={"kind": "fix-metadata", "payload": {"owner": "bob"}})
        assert moved.status_code == 201
        after = (alice.get("/api/v1/stats").json()["media"], bob.get("/api/v1/stats").json()["media"])
        assert after == (before[0] - 1, before[1] + 1), "storage follows the owner an edit set"


def test_browser_sessions_need_csrf_for_unsafe_methods_and_logins_are_throttled(site: Site) -> None:
    with site.client() as browser:
        login = browser.post("/login", data={"token": site.tokens["alice-editor"]})
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert browser.get("/api/v1/me").json()["owner"] == "alice"
        path = f"/api/v1/media/{site.alice_media}/edits"
        edit = {"kind": "fix-metadata", "payload": {"title": "Renamed"}}
        assert browser.post(path, json=edit).status_code == 403, "no CSRF header"
        csrf = browser.cookies["mv_csrf"]
        assert browser.post(path, json=edit, headers={"X-CSRF-Token": csrf}).status_code == 201
    with site.client() as attacker:
        codes = [
            attacker.post("/login", data={"token": f"mvt_{'0' * 12}_{'x' * 43}"}).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]


def test_archived_media_answers_409_and_every_access_is_audited_once(site: Site) -> None:
    with site.client("alice-viewer") as alice:
        for _ in range(3):
            assert alice.get(
                f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=0-9"}
            ).status_code in (206, 307)
        alice.get(f"/api/v1/media/{site.alice_media}/export/vtt")
        site.client("bob-viewer").get(f"/api/v1/media/{site.alice_media}")
    with site.client("admin") as admin:
        records = admin.get("/api/v1/audit", params={"media": site.alice_media}).json()["items"]
        actions = [r["action"] for r in records]
        assert actions.count("stream") == 1 and actions.count("export") == 1, actions
        denied = [r for r in records if r["action"] == "denied"]
        assert denied and denied[0]["owner"] == "bob" and denied[0]["outcome"] == "denied"
        assert all("mvt_" not in str(r) for r in records)
        assert site.client("alice-viewer").get("/api/v1/audit").status_code == 403
    policies = Policies.model_validate({"media": {"action": "archive", "after_days": 0}})
    assert not run_lifecycle(site.vault, policies, dry_run=False, now=utc_now()).errors
    with site.client("alice-viewer") as alice:
        archived = alice.get(f"/api/v1/media/{site.alice_media}/stream")
        assert archived.status_code == 409 and archived.json()["error"] == "archived"
        assert "restore" in archived.json()["detail"]
        assert alice.post(f"/api/v1/media/{site.alice_media}/restore").status_code == 403
    with site.client("alice-editor") as editor:
        started = editor.post(f"/api/v1/media/{site.alice_media}/restore")
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while (
            editor.get(f"/api/v1/media/{site.alice_media}/stream", headers={"Range": "bytes=0-9"}).status_code
            == 409
        ):
            assert time.monotonic() < deadline, "the restore did not finish"
            time.sleep(0.5)


def test_the_serve_command_refuses_open_binding_without_tokens_then_serves(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cli = str(Path(sys.executable).parent / "mediavault")
    env = {**os.environ, "MEDIAVAULT_HOME": str(tmp_path / "home"), "MEDIAVAULT_MONGO_MODE": "disabled"}
    refused = subprocess.run(
        [cli, "serve", "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "no API token exists yet" in refused.stdout + refused.stderr
    created = subprocess.run(
        [cli, "token", "create", "--owner", "alice", "--role", "viewer", "--name", "laptop"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("mvt_")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [cli, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and server.poll() is None, "serve did not come up"
                time.sleep(0.3)
        assert (
            answer.status_code == 200
            and answer.json()["owner"] == "alice"
            and answer.json()["name"] == "laptop"
        )
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health["checks"]["vault"]["ok"] is True and health["checks"]["index"]["ok"] is False
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_metadata_field_sent_as_null_is_cleared_and_a_rebuild_keeps_it_cleared(site: Site) -> None:
    from mediavault.backends import index_target
    from mediavault.index.reindex import full_rebuild

    path = f"/api/v1/media/{site.bob_media}/edits"
    fill = {"title": "Budget hearing", "description": "Second reading", "language": "en", "tags": ["a"]}
    with site.client("admin") as admin:
        assert admin.post(path, json={"kind": "fix-metadata", "payload": fill}).status_code == 201
        clear = {"description": None, "tags": None, "language": None}
        done = admin.post(path, json={"kind": "fix-metadata", "payload": clear})
        assert done.status_code == 201, done.text
        unowned = admin.post(path, json={"kind": "fix-metadata", "payload": {"owner": None}})
        assert unowned.status_code == 422 and unowned.json()["detail"]["field"] == "payload.owner"

        def details() -> tuple:
            body = admin.get(f"/api/v1/media/{site.bob_media}").json()
            return body["title"], body["description"], body["tags"], body["language"], body["owner"]

        assert details() == ("Budget hearing", None, [], None, "bob"), "fields not sent are kept"
        full_rebuild(index_target(site.settings))
        assert details() == ("Budget hearing", None, [], None, "bob"), "the rebuild replays the clear"
        listed = admin.get("/api/v1/media", params={"q": "Budget"}).json()["items"]
        assert [(m["id"], m["tags"]) for m in listed] == [(site.bob_media, [])]
