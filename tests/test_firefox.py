"""The dashboard and player in a real Firefox: Debian's firefox-esr, headless, driven over its
Marionette protocol (the `marionette_driver` package; no geckodriver, no download).

Playwright drives Chromium for the main browser suite (tests/test_browser.py); its Firefox needs a
patched build, and its WebDriver BiDi path asks Firefox ESR for commands it lacks. These tests take
the paths where Gecko differs most (media decoding and seeking, Range requests, inline editing,
keyboard, the virtualized long transcript) against the same sample site. Console errors fail them:
the profile prints the page console to Firefox's stdout, which is checked after every test.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port
from tests.test_browser import SCREENSHOTS, Site, site  # noqa: F401 - the shared sample site fixture

FIREFOX = os.environ.get("MEDIAVAULT_FIREFOX", "/usr/bin/firefox-esr")
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
CONSOLE_ERROR = re.compile(
    r"^(JavaScript error|console\.error|JavaScript warning: .*Content-Security-Policy)"
)
# Firefox's own components log to the same stream; their lines name them.
FIREFOX_INTERNAL = re.compile(r"^console\.error: (RSLoader|RemoteSettings|PushService|SearchService)\b")


class Gecko:
    """A thin layer over a Marionette session: what these tests need, by CSS selector."""

    def __init__(self, marionette: Any, console: Path) -> None:
        from marionette_driver.by import By

        self.m = marionette
        self.by = By
        self.console = console
        self.console_offset = 0
        self.base = ""

    def goto(self, path: str) -> None:
        self.m.navigate(self.base + path)

    def js(self, script: str, *args: Any) -> Any:
        return self.m.execute_script(script, script_args=list(args), sandbox=None)

    def wait(self, condition: str, seconds: float = 30, *args: Any) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.js(f"return ({condition});", *args)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"not true within {seconds}s: {condition}")

    def find(self, css: str) -> Any:
        self.wait("document.querySelector(arguments[0]) !== null", 30, css)
        return self.m.find_element(self.by.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return self.m.find_elements(self.by.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.js("return document.querySelector(arguments[0]).innerText;", css)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"firefox-{name}.png").write_bytes(self.m.screenshot(format="binary"))

    def new_console_errors(self) -> list[str]:
        lines = self.console.read_text(errors="replace").splitlines()
        fresh, self.console_offset = lines[self.console_offset :], len(lines)
        return [
            line
            for line in fresh
            if not FIREFOX_INTERNAL.search(line)
            and (line.startswith("console.error") or (CONSOLE_ERROR.search(line) and self.base in line))
        ]


@pytest.fixture(scope="module")
def firefox(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gecko]:  # noqa: F811
    if not Path(FIREFOX).exists():
        pytest.fail(
            f"no Firefox at {FIREFOX}: apt-get install -y firefox-esr (python3 dev.py test does this)"
        )
    from marionette_driver.marionette import Marionette

    profile = tmp_path_factory.mktemp("firefox-profile")
    port = free_port()
    prefs = {
        "marionette.port": port,
        "devtools.console.stdout.content": True,  # the page console, on stdout
        "media.autoplay.default": 0,  # play() without a click, as --autoplay-policy does for Chromium
        "browser.shell.checkDefaultBrowser": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "app.update.disabledForTesting": True,
        "network.captive-portal-service.enabled": False,
        "browser.safebrowsing.update.enabled": False,
        # nothing of Firefox's own tries the network (its failures would print console errors)
        "services.settings.server": "data:,#remote-settings-dummy/v1",
        "network.connectivity-service.enabled": False,
        "extensions.update.enabled": False,
        "browser.newtabpage.enabled": False,
        "browser.region.network.url": "",
    }
    (profile / "user.js").write_text(
        "".join(f"user_pref({_js(name)}, {_js(value)});\n" for name, value in prefs.items())
    )
    console = profile / "console.log"
    with open(console, "w") as log:
        process = subprocess.Popen(
            [FIREFOX, "--marionette", "--headless", "--no-remote", "--profile", str(profile)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOZ_HEADLESS_WIDTH": "1280", "MOZ_HEADLESS_HEIGHT": "900"},
        )
    try:
        marionette = Marionette(host="127.0.0.1", port=port, startup_timeout=120)
        marionette.start_session()
        marionette.timeout.page_load = 60
        gecko = Gecko(marionette, console)
        gecko.base = site.url
        yield gecko
        marionette.delete_session()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _js(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else f'"{value}"'


@pytest.fixture
def browser(firefox: Gecko, site: Site) -> Iterator[Callable[[str | None], Gecko]]:  # noqa: F811
    """``browser(token_name)`` -> Firefox logged in through the login form; console errors fail."""

    def login(who: str | None) -> Gecko:
        firefox.goto("/login")
        firefox.m.delete_all_cookies()
        if who is not None:
            firefox.goto("/login?next=/search")
            firefox.find("#token").send_keys(site.tokens[who])
            firefox.find("button[type=submit]").click()
            firefox.wait("location.pathname === '/search'")
        return firefox

    firefox.new_console_errors()
    yield login
    errors = firefox.new_console_errors()
    assert not errors, f"console errors in Firefox: {errors}"


def open_player(gecko: Gecko, site: Site, key: str, query: str = "") -> None:  # noqa: F811
    gecko.goto(f"/media/{site.media[key]}{query}")
    gecko.wait("document.body.dataset.transcriptReady === '1'", 60)


def current_word(gecko: Gecko) -> dict:
    return gecko.js(
        """const i = mvPlayer.current(); const el = document.querySelector('.w.current');
           return {index: i, text: el ? el.textContent : null,
                   count: document.querySelectorAll('.w.current').length,
                   time: document.getElementById('media').currentTime};"""
    )


def test_firefox_is_what_runs(firefox: Gecko) -> None:
    agent = firefox.js("return navigator.userAgent")
    assert "Firefox/" in agent and "Chrome" not in agent, agent


def test_search_hit_plays_from_its_second_and_the_highlight_follows(site: Site, browser) -> None:  # noqa: F811
    page = browser("viewer")
    query = page.find("#q")
    query.send_keys('"internal audit"\ue007')  # Enter
    page.wait("document.querySelector('.hit') !== null")
    assert "Bob only" not in page.js("return document.body.innerHTML")
    page.shot("search")
    href = page.js("return document.querySelector('.hit-link').getAttribute('href')")
    start = float(re.search(r"[?&]t=([0-9.]+)", href).group(1))
    page.find(".hit-link").click()
    page.wait("document.body.dataset.transcriptReady === '1'", 60)
    page.wait(f"Math.abs(document.getElementById('media').currentTime - {start}) < 0.01")
    before = current_word(page)
    assert before["count"] == 1 and before["index"] >= 0
    page.js("document.getElementById('media').play()")
    page.wait(f"document.getElementById('media').currentTime > {start + 2}", 20)
    page.js("document.getElementById('media').pause()")
    after = current_word(page)
    assert after["index"] > before["index"] and after["count"] == 1
    assert page.js(
        "return mvPlayer.wordAt(document.getElementById('media').currentTime) === mvPlayer.current()"
    )
    page.shot("player")
    # the player seeked into a long WAV it had not loaded: the stream answers Range requests
    page.js(
        "window.__range = null; fetch(document.getElementById('media').currentSrc,"
        " {headers: {Range: 'bytes=100-199'}}).then(r => r.arrayBuffer().then(b => window.__range ="
        " [r.status, b.byteLength, r.headers.get('Content-Range')]))"
    )
    status, length, content_range = page.wait("window.__range")
    assert (status, length) == (206, 100) and content_range.startswith("bytes 100-199/"), content_range


def test_click_to_seek_and_keyboard_shortcuts(site: Site, browser) -> None:  # noqa: F811
    page = browser("viewer")
    open_player(page, site, "board")
    page.wait("document.getElementById('media').readyState >= 1")
    words = page.find_all(".stmt")[12].find_elements(page.by.CSS_SELECTOR, ".w")
    index = page.js("return mvPlayer.wordIndex(arguments[0])", words[3])
    expected = words[3].text
    words[3].click()
    page.wait("document.getElementById('media').seeking === false")
    now = current_word(page)
    assert (now["index"], now["text"], now["count"]) == (index, expected, 1)
    at = now["time"]
    page.find("#transcript").click()  # keyboard focus on the page, not in a field
    body = page.find("body")
    body.send_keys("j")  # back 5 s
    page.wait(f"Math.abs(document.getElementById('media').currentTime - {max(at - 5, 0)}) < 0.6")
    body.send_keys("k")  # play
    page.wait("!document.getElementById('media').paused")
    body.send_keys("k")  # pause
    page.wait("document.getElementById('media').paused")


def test_editor_renames_corrects_and_clears_a_detail(site: Site, browser) -> None:  # noqa: F811
    page = browser("editor")
    open_player(page, site, "board")
    label = page.js("return document.querySelector('#speakers li').dataset.label")
    page.find("#speakers li button.rename").click()
    field = page.find(f"#speakers li[data-label='{label}'] input")
    field.clear()
    field.send_keys("Gecko Chair\ue007")
    page.wait("document.body.innerText.includes('Renamed')")
    names = page.js(
        "return [...document.querySelectorAll(`.spk[data-label='${arguments[0]}']`)].map(e => e.innerText)",
        label,
    )
    assert names and set(names) == {"Gecko Chair"}

    statement = page.find_all(".stmt")[5]
    page.js("arguments[0].querySelector('.edit-stmt').click()", statement)
    area = page.find(".stmt textarea")
    original = area.get_property("value")
    corrected = original.split(" ", 1)[0] + " quokkafox " + original.split(" ", 1)[1]
    area.clear()
    area.send_keys(corrected + "\ue007")
    page.wait("document.body.innerText.includes('Correction saved')")
    assert "quokkafox" in page.find_all(".stmt")[5].text
    page.shot("edited")

    with site.api("editor") as api:
        media = site.media["board"]
        current = api.get(f"/api/v1/media/{media}")
        filled = api.post(
            f"/api/v1/media/{media}/edits",
            json={"kind": "fix-metadata", "payload": {"description": "Gecko notes"}},
            headers={"If-Match": current.headers["ETag"]},
        )
        assert filled.status_code == 201, filled.text
    open_player(page, site, "board")
    assert page.text("#media-description") == "Gecko notes"
    page.find("#metadata-form textarea[name=description]").clear()
    page.find("#metadata-form button[type=submit]").click()
    page.wait("document.body.innerText.includes('cleared: description')")
    with site.api("editor") as api:
        body = api.get(f"/api/v1/media/{media}").json()
        assert body["description"] is None
        assert api.get("/api/v1/search", params={"q": "quokkafox"}).json()["total"] == 1
        assert "Gecko Chair" in api.get(f"/api/v1/media/{media}/export/srt").text


def test_long_transcript_renders_in_pieces_and_follows_a_jump(site: Site, browser) -> None:  # noqa: F811
    page = browser("viewer")
    started = time.monotonic()
    open_player(page, site, "long")
    opened = time.monotonic() - started
    assert page.js("return mvPlayer.statements()") == 16_000
    assert len(page.find_all(".stmt")) < 1_000, "only the blocks near the viewport are in the DOM"
    per_update = page.js(
        """const t0 = performance.now(); let t = 100;
           for (let i = 0; i < 2000; i++) { mvPlayer.highlightAt(t); t += 0.25; }
           return (performance.now() - t0) / 2000;"""
    )
    page.js("mvPlayer.highlightAt(9000)")
    page.wait("document.querySelectorAll('.w.current').length === 1")
    print(f"firefox long transcript: opened in {opened:.2f}s, {per_update:.4f} ms per highlight update")
    assert per_update < 5 and opened < 60


def test_logout_and_the_dashboard(site: Site, browser) -> None:  # noqa: F811
    page = browser("viewer")
    page.goto("/library")
    page.wait("document.querySelectorAll('table tbody tr').length > 0")
    assert "Bob only" not in page.js("return document.body.innerText")
    page.goto("/dashboard")
    page.wait("document.body.innerText.includes('Storage')")
    page.shot("dashboard")
    page.js(
        "[...document.querySelectorAll('button, a')].find(e => e.textContent.trim() === 'Log out').click()"
    )
    page.wait("location.pathname === '/login'")
    page.goto("/library")
    page.wait("location.pathname === '/login'")
    assert httpx.get(f"{site.url}/healthz", timeout=10).status_code == 200
