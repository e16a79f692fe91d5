"""The dashboard's Audio / Speech tab, driven in headless Chromium against a real spark-control.

The fast tests run the real ansible-runner on the stand-in playbooks (tests/control/playbooks) and the
Spark 2 stand-ins in-process; one end-to-end test installs the real WhisperX over SSH on a GPU-host
stand-in from the banner, transcribes the two-speaker dialogue through the page and removes it again.

SPARK_DASHBOARD_SCREENSHOTS=docs/img makes the tests refresh the screenshots in docs/control.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from spark_control.config import WHISPERX_MODELS, Settings
from spark_control.main import create_app
from spark_control.runner.phases import INSTALL_PHASES
from spark_control.security import SESSION_COOKIE
from spark_control.services import DEEP_CHECK_CLIP, DEEP_CHECK_TEXT
from tests.control.helpers import (
    API_TOKEN,
    AUTH,
    LiveServer,
    client_for,
    cpu_whisperx,
    repeat_wav,
    wait_for_job,
    wait_until,
)

browser_test = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHASES = list(INSTALL_PHASES)
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Records, in the page, each phase the stepper shows as current (and the outcome), however fast they pass.
RECORD_PHASES = """() => {
  const steps = document.querySelector("#progress-steps");
  const seen = (window.__phases = []);
  const look = () => {
    const end = steps.querySelector('li[data-phase="ready"]');
    const now = end.classList.contains("done") ? "ready" : end.classList.contains("failed") ? "failed"
      : steps.querySelector("li.current")?.dataset.phase;
    if (now && seen[seen.length - 1] !== now) seen.push(now);
  };
  new MutationObserver(look).observe(steps, {subtree: true, attributes: true, attributeFilter: ["class"]});
}"""


# -- the browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded CI machine runs playbooks slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/img when SPARK_DASHBOARD_SCREENSHOTS says so, else the test's tmp dir."""
    target = Path(os.environ.get("SPARK_DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


class Dashboard:
    """The page as an operator uses it, plus what a test looks at."""

    def __init__(self, page: Any, url: str, screenshots: Path):
        self.page = page
        self.url = url
        self.screenshots = screenshots
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self) -> Dashboard:
        from playwright.sync_api import expect

        self.page.goto(f"{self.url}/")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        return self

    def sign_in(self) -> None:
        """What the login dialog does, for tests about something else (before open(): the page asks once)."""
        response = self.page.request.post(f"{self.url}/api/session", data={"token": API_TOKEN})
        assert response.status == 204

    def log_in_through_the_dialog(self) -> None:
        from playwright.sync_api import expect

        dialog = self.page.locator("#login-dialog")
        expect(dialog).to_be_visible()
        self.page.fill("#login-token", API_TOKEN)
        self.page.click("#login-submit")
        expect(dialog).to_be_hidden()

    def record_phases(self) -> None:
        self.page.evaluate(RECORD_PHASES)

    def recorded_phases(self) -> list[str]:
        return self.page.evaluate("() => window.__phases")

    def step(self, phase: str) -> Any:
        return self.page.locator(f'#progress-steps li[data-phase="{phase}"]')

    def log_lines(self) -> list[str]:
        return self.page.locator("#progress-log .line").all_text_contents()

    def row(self, service: str) -> Any:
        return self.page.locator(f'#services-body tr[data-service="{service}"]')

    def shot(self, name: str, *, full_page: bool = False, locator: Any = None) -> Path:
        """A PNG of the page (or one element), reduced to 128 colours: a third of the size, same look."""
        from PIL import Image

        path = self.screenshots / name
        (locator or self.page).screenshot(path=str(path), **({} if locator else {"full_page": full_page}))
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(128, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(path, optimize=True)
        return path


@pytest.fixture
def dashboard(chromium: Any, screenshots: Path) -> Iterator[Callable[..., Dashboard]]:
    """dashboard(server) -> a fresh browser context on that spark-control; no uncaught page error allowed."""
    contexts: list[Any] = []
    pages: list[Dashboard] = []

    def make(server: LiveServer, viewport: dict[str, int] = LAPTOP) -> Dashboard:
        context = chromium.new_context(viewport=viewport)
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = Dashboard(context.new_page(), server.url, screenshots)
        pages.append(page)
        return page

    yield make
    for context in contexts:
        context.close()
    assert [e for page in pages for e in page.errors] == [], "the page threw"


def gated(phase: str, gate: Path) -> dict[str, str]:
    """Stand-in playbook variables that hold `phase` until the file `gate` exists (the test's own timing)."""
    return {"fake_gate_phase": phase, "fake_gate_file": str(gate)}


def install_job(client: httpx.Client) -> str:
    response = client.post("/api/whisperx/install", headers=AUTH)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


# -- serving the page (no browser) ------------------------------------------------------------------
def test_the_page_and_its_assets_are_served_with_a_strict_policy(make_settings, serve):
    server = serve(make_settings())
    with client_for(server) as client:
        page = client.get("/")
        script = client.get("/static/js/main.js")
        again = client.get("/static/js/main.js", headers={"If-None-Match": script.headers["etag"]})
        escape = client.get("/static/../config.py")
        encoded = client.get("/static/%2e%2e/config.py")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/js/main.js"' in page.text and "Install WhisperX" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-cache" and page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache", "an upgrade never runs yesterday's JavaScript"
    assert again.status_code == 304
    assert escape.status_code == 404 and encoded.status_code == 404
    external = re.compile(r"""(src|href)=["']?(https?:)?//|url\(["']?(https?:)?//|from ["'](https?:)?//|@import""")
    for path in (REPO / "spark_control" / "static").rglob("*"):
        if path.suffix in (".html", ".css", ".js"):
            assert not external.search(path.read_text()), f"{path} loads something from elsewhere"


# -- the banner and the install dialog -------------------------------------------------------------
@browser_test
def test_the_banner_offers_the_install_while_whisperx_is_not_installed(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings())
    page = dashboard(server).open()
    expect(page.page.locator("#install-banner")).to_be_visible()
    expect(page.page.get_by_role("button", name="Install WhisperX")).to_be_enabled()
    expect(page.page.locator("#wx-summary")).to_have_text("not installed")
    expect(page.page.locator("#wx-installed")).to_have_text("Not installed")
    expect(page.page.locator("#wx-source")).to_contain_text("Cached: /health does not answer")
    expect(page.page.locator("#remove-button")).to_be_hidden()
    expect(page.page.locator("#session-state")).to_have_text("Not signed in")
    # The model menu and the stepper are the server's lists (GET /api/whisperx/options), not the page's own.
    menu = [*WHISPERX_MODELS]
    expect(page.page.locator("#install-model option")).to_have_text(["server default (WHISPERX_MODEL: medium)", *menu])
    steps = page.page.locator("#progress-steps li")
    expect(steps).to_have_count(len(PHASES) + 1)
    assert [steps.nth(i).get_attribute("data-phase") for i in range(len(PHASES) + 1)] == [*PHASES, "ready"]
    assert API_TOKEN not in page.page.content()
    page.shot("dashboard-not-installed.png")


@browser_test
def test_install_shows_phases_advancing_a_filling_log_and_the_elapsed_time_then_ready(
    make_settings, serve, dashboard, tmp_path
):
    from playwright.sync_api import expect

    gate = tmp_path / "gate"  # the build phase holds until the test has seen it current
    server = serve(make_settings({"fake_lines": 12, "fake_step_delay": 0.7, **gated("build", gate)}))
    page = dashboard(server).open()
    page.record_phases()
    page.page.click("#install-button")
    page.log_in_through_the_dialog()  # no session yet: the click asks for the token first
    expect(page.page.locator("#progress-dialog")).to_be_visible()
    expect(page.step("build")).to_have_class("current")
    expect(page.step("ship")).to_have_class("done")
    gate.touch()
    expect(page.page.locator("#progress-status")).to_have_class(re.compile(r"\bok\b"), timeout=60_000)

    with client_for(server) as client:
        job = client.get("/api/whisperx/install").json()[0]
    assert page.recorded_phases() == [*PHASES, "ready"]
    assert job["state"] == "successful"
    lines = page.log_lines()
    assert len(lines) > 5 * 12 and any('"msg": "load 11"' in line for line in lines)
    expect(page.page.locator("#log-count")).to_contain_text("lines")
    minutes, seconds = page.page.locator("#progress-elapsed").text_content().split(":")
    assert int(minutes) * 60 + int(seconds) == int(job["elapsed_s"]), "the clock stops at the job's elapsed time"
    assert job["elapsed_s"] >= 5 * 0.7
    expect(page.page.locator("#progress-title")).to_have_text("WhisperX is installed")
    expect(page.page.locator("#progress-cancel")).to_be_hidden()
    page.page.click("#progress-close")
    expect(page.page.locator("#install-banner")).to_be_hidden()
    expect(page.page.locator("#wx-installed")).to_have_text("Installed")
    expect(page.page.locator("#remove-button")).to_be_visible()
    expect(page.row("whisperx")).to_be_visible()


@browser_test
def test_a_reload_mid_install_reattaches_to_the_running_job(make_settings, serve, dashboard, tmp_path):
    from playwright.sync_api import expect

    gate = tmp_path / "gate"  # the job holds in its load phase until the page has reattached
    server = serve(make_settings({"fake_lines": 8, "fake_step_delay": 0.3, **gated("load", gate)}))
    with client_for(server) as client:
        install_job(client)  # started elsewhere (another tab, curl): the page finds it in the status
    page = dashboard(server).open()
    expect(page.page.locator("#progress-dialog")).to_be_visible()
    expect(page.step("ship")).to_have_class(re.compile("current|done"))
    page.page.reload()
    expect(page.page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.page.locator("#progress-dialog")).to_be_visible()
    page.page.click("#progress-close")  # hidden, the job goes on in the banner
    expect(page.page.locator("#job-banner")).to_be_visible()
    expect(page.page.locator("#job-banner-phase")).to_contain_text("phase")
    page.page.click("#job-banner-show")
    expect(page.page.locator("#progress-dialog")).to_be_visible()
    gate.touch()
    expect(page.page.locator("#progress-status")).to_have_class(re.compile(r"\bok\b"), timeout=60_000)

    messages = [m for line in page.log_lines() for m in re.findall(r'"msg": "(\w+ \d+)"', line)]
    assert sorted(messages) == sorted(f"{p} {i}" for p in PHASES for i in range(8)), "every line exactly once"
    expect(page.step("ready")).to_have_class("done")


LONG_LOG = """async () => {
  const { LogView } = await import("/static/js/log-view.js");   // the dialog's own log, on its own
  const box = document.createElement("div");
  box.className = "log";
  document.body.append(box);
  const view = new LogView(box, { maxLines: 2000 });
  for (let batch = 0; batch < 40; batch++) {         // 20 000 lines arriving over 40 frames
    for (let i = 0; i < 500; i++) view.append(`line ${batch * 500 + i}`);
    view.flush();
  }
  return {
    lines: box.querySelectorAll(".line").length,
    first: box.querySelector(".line").textContent,
    last: box.lastElementChild.textContent,
    note: box.querySelector(".dropped")?.textContent,
    total: view.total,
    atEnd: box.scrollHeight - box.scrollTop - box.clientHeight < 2,
  };
}"""


@browser_test
def test_a_long_log_keeps_a_bounded_dom_and_follows_its_end(make_settings, serve, dashboard):
    page = dashboard(serve(make_settings())).open()
    seen = page.page.evaluate(LONG_LOG)
    assert seen["lines"] == 2000 and seen["total"] == 20_000
    assert (seen["first"], seen["last"]) == ("line 18000", "line 19999")
    assert seen["note"].startswith("… 18000 earlier lines are not shown here.")
    assert seen["atEnd"], "it follows the newest line"


class CutFirstStream:
    """Drops the first install stream after `after` events, as a flaky proxy or Wi-Fi would."""

    def __init__(self, app: FastAPI, after: int):
        self.app = app
        self.after = after
        self.stream_requests: list[dict[str, str]] = []

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/stream"):
            return await self.app(scope, receive, send)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.stream_requests.append({**headers, "query": scope["query_string"].decode()})
        if len(self.stream_requests) > 1:
            return await self.app(scope, receive, send)
        sent = 0

        async def counting(message: dict) -> None:
            nonlocal sent
            if message["type"] == "http.response.body" and b"event:" in message.get("body", b""):
                sent += 1
                if sent > self.after:
                    raise ConnectionAbortedError("cut by the test")
            await send(message)

        with contextlib.suppress(Exception):  # the point: the response ends half-way, the socket closes
            await self.app(scope, receive, counting)


@browser_test
def test_a_dropped_stream_resumes_with_last_event_id_and_shows_no_line_twice(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    settings = make_settings({"fake_lines": 8, "fake_step_delay": 0.8})
    cutter = CutFirstStream(create_app(settings), after=20)
    server = serve(cutter)
    page = dashboard(server)
    page.sign_in()
    page.open()
    page.page.click("#install-button")
    expect(page.page.locator("#progress-status")).to_have_class(re.compile(r"\bok\b"), timeout=60_000)

    assert len(cutter.stream_requests) >= 2, "the stream was cut and the page reconnected"
    resumed = cutter.stream_requests[1]
    cursor = resumed.get("last-event-id") or resumed["query"].removeprefix("after=")
    assert cursor.isdigit() and int(cursor) >= 20, f"the page resumed from where it was cut, not from 0: {resumed}"
    messages = [m for line in page.log_lines() for m in re.findall(r'"msg": "(\w+ \d+)"', line)]
    assert sorted(messages) == sorted(f"{p} {i}" for p in PHASES for i in range(8)), "no gap, no duplicate"


@browser_test
def test_a_failed_install_names_the_failing_phase_and_its_message(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings({"fake_lines": 3, "fake_fail_phase": "build"}))
    page = dashboard(server)
    page.sign_in()
    page.open()
    page.record_phases()
    page.page.click("#install-button")
    failure = page.page.locator("#progress-failure")
    expect(failure).to_be_visible(timeout=60_000)
    expect(failure).to_contain_text("The install failed during the build phase.")
    expect(failure).to_contain_text("build failed")  # the failing task's own message
    expect(page.step("build")).to_have_class("failed")
    expect(page.step("ship")).to_have_class("done")
    expect(page.step("ready")).to_have_class("failed")
    expect(page.step("ready")).to_contain_text("Failed")
    expect(page.page.locator("#progress-title")).to_have_text("Install failed")
    expect(page.page.locator("#progress-retry")).to_be_visible()
    assert page.recorded_phases() == ["preflight", "ship", "build", "failed"]
    page.shot("install-failed.png")

    page.page.click("#progress-close")
    expect(page.page.locator("#install-last")).to_contain_text("The last install failed")
    expect(page.page.locator("#install-last")).to_contain_text("build failed")
    page.page.click("#install-last-log")  # the log of the failed attempt, replayed
    expect(page.step("build")).to_have_class("failed")
    expect(failure).to_contain_text("build phase")


@browser_test
def test_cancel_asks_first_then_stops_the_install(make_settings, serve, dashboard, tmp_path):
    from playwright.sync_api import expect

    # The build phase holds on a gate nobody opens: the cancel lands in ship or build, however slow the machine.
    server = serve(make_settings({"fake_lines": 2, "fake_step_delay": 1, **gated("build", tmp_path / "never")}))
    page = dashboard(server)
    page.sign_in()
    page.open()
    page.page.click("#install-button")
    expect(page.step("ship")).to_have_class(re.compile("current|done"))
    page.page.click("#progress-cancel")
    expect(page.page.locator("#confirm-dialog")).to_be_visible()
    page.page.click("#confirm-cancel")  # "Keep going"
    expect(page.page.locator("#progress-cancel")).to_be_visible()
    page.page.click("#progress-cancel")
    page.page.click("#confirm-ok")
    expect(page.page.locator("#progress-title")).to_have_text("Install canceled", timeout=30_000)
    expect(page.page.locator("#progress-failure")).to_contain_text(re.compile("canceled during the (ship|build) phase"))
    with client_for(server) as client:
        assert client.get("/api/whisperx/install").json()[0]["state"] == "canceled"


@browser_test
def test_remove_asks_for_confirmation_then_rolls_back(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings())
    with client_for(server) as client:
        wait_for_job(client, install_job(client))
    page = dashboard(server)
    page.sign_in()
    page.open()
    page.page.click("#remove-button")
    confirm = page.page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Parakeet is not touched")
    page.shot("remove-confirm.png")
    page.page.keyboard.press("Escape")  # = keep it
    expect(confirm).to_be_hidden()
    expect(page.page.locator("#progress-dialog")).to_be_hidden()
    page.page.click("#remove-button")
    page.page.click("#confirm-ok")
    expect(page.page.locator("#progress-title")).to_have_text("WhisperX is removed", timeout=60_000)
    expect(page.page.locator("#progress-steps")).to_be_hidden()  # a removal has no install phases
    page.page.click("#progress-close")
    expect(page.page.locator("#install-banner")).to_be_visible()
    expect(page.row("whisperx")).to_have_count(0)
    with client_for(server) as client:
        removals = [j for j in client.get("/api/whisperx/install").json() if j["kind"] == "remove"]
    assert len(removals) == 1, "Escape kept it: only the confirmed removal ran"


# -- services ---------------------------------------------------------------------------------------
@pytest.fixture
def spark2(standin, tmp_path: Path, audio: Path) -> dict[str, LiveServer]:
    """Parakeet and Magpie stand-ins; Parakeet knows the deep-check clip and the test sentence."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "deep_check.wav").write_bytes(DEEP_CHECK_CLIP.read_bytes())
    (clips / "deep_check.txt").write_text(DEEP_CHECK_TEXT)
    (clips / "sentence.wav").write_bytes((audio / "sentence.wav").read_bytes())
    (clips / "sentence.txt").write_text((audio / "sentence.txt").read_text())
    return {"parakeet": standin("parakeet", [clips]), "magpie": standin("magpie")}


@browser_test
def test_the_services_buttons_act_and_say_how_it_went(make_settings, serve, spark2, dashboard):
    from playwright.sync_api import expect

    settings = make_settings(
        {"fake_fail_services": ["magpie-tts"], "fake_service_delay": 0.3},
        legacy_asr_url=spark2["parakeet"].url,
        magpie_url=spark2["magpie"].url,
    )
    server = serve(settings)
    page = dashboard(server).open()
    parakeet, magpie = page.row("parakeet"), page.row("magpie")
    expect(parakeet.locator('td[data-label="Health"] .badge')).to_have_text("healthy")  # not "unhealthy"
    expect(parakeet.locator(".feedback")).to_have_text("")

    parakeet.get_by_role("button", name="Restart Parakeet").click()
    page.log_in_through_the_dialog()
    expect(parakeet.locator(".feedback")).to_contain_text("Restarted in", timeout=30_000)
    expect(parakeet.locator("td[data-label=State]")).to_contain_text("running")

    parakeet.get_by_role("button", name=re.compile(r"^Stop Parakeet")).click()
    expect(page.page.locator("#confirm-dialog")).to_contain_text("stays stopped")
    page.page.click("#confirm-ok")
    expect(parakeet.locator(".feedback")).to_contain_text("Stopped in", timeout=30_000)
    expect(parakeet.locator("td[data-label=State]")).to_contain_text("exited")
    expect(parakeet.locator("td[data-label=State]")).to_contain_text("stopped on request")
    expect(parakeet.locator("td[data-label=Watchdog]")).to_contain_text("paused")
    expect(parakeet.get_by_role("button", name=re.compile(r"^Stop Parakeet"))).to_be_disabled()

    parakeet.get_by_role("button", name=re.compile(r"^Start Parakeet")).click()
    expect(parakeet.locator(".feedback")).to_contain_text("Started in", timeout=30_000)
    parakeet.get_by_role("button", name="Deep check Parakeet").click()
    expect(parakeet.locator(".feedback")).to_contain_text("Deep check passed", timeout=60_000)
    expect(parakeet.locator("td[data-label='Deep check']")).to_contain_text("passed")

    magpie.get_by_role("button", name="Restart Magpie TTS").click()
    expect(magpie.locator(".feedback")).to_have_text("Restart failed: cannot restart magpie-tts", timeout=30_000)
    expect(magpie.locator(".feedback")).to_have_class(re.compile(r"\bbad\b"))
    page.shot("services.png", locator=page.page.locator("#services-card"))


@browser_test
def test_an_expired_session_asks_for_the_token_again_then_acts(make_settings, serve, spark2, dashboard):
    from playwright.sync_api import expect

    settings = make_settings(legacy_asr_url=spark2["parakeet"].url, magpie_url=spark2["magpie"].url)
    server = serve(settings)
    page = dashboard(server)
    page.sign_in()
    page.open()
    expect(page.page.locator("#session-state")).to_have_text("Signed in")

    # The page's cookie outlives SPARK_CONTROL_SESSION_MAX_AGE while the tab stays open.
    stale = server.app.state.auth.session_value(issued_at=time.time() - settings.session_max_age_s - 1)
    page.page.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": stale, "url": server.url, "httpOnly": True, "sameSite": "Strict"}]
    )
    parakeet = page.row("parakeet")
    parakeet.get_by_role("button", name="Deep check Parakeet").click()
    expect(page.page.locator("#session-state")).to_have_text("Not signed in")
    page.log_in_through_the_dialog()  # the 401 opened the sign-in dialog; the deep check is then sent again
    expect(parakeet.locator(".feedback")).to_contain_text("Deep check passed", timeout=60_000)
    expect(page.page.locator("#session-state")).to_have_text("Signed in")


def hostile_page(target: str) -> FastAPI:
    """A page on another port of the same host: same site as spark-control (its SameSite=Strict cookie goes
    along), another origin. It tries an empty-body install with a plain form, and a removal and a service
    stop with fetch, the way a page the operator opens by mistake would."""
    app = FastAPI()
    html = f"""<!doctype html><title>cute cats</title>
<form id="install" method="POST" action="{target}/api/whisperx/install" enctype="text/plain"></form>
<script>
  const tries = ["/api/whisperx/remove", "/api/services/magpie/stop"].map((path) =>
    fetch("{target}" + path, {{method: "POST", credentials: "include", mode: "no-cors"}}));
  Promise.allSettled(tries).then(() => {{ document.title = "tried"; }});
</script>"""

    @app.get("/")
    def page() -> Response:
        return Response(html, media_type="text/html")

    return app


@browser_test
def test_a_page_on_another_port_cannot_act_with_the_operator_s_cookie(make_settings, serve, spark2, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings(legacy_asr_url=spark2["parakeet"].url, magpie_url=spark2["magpie"].url))
    with client_for(server) as client:
        wait_for_job(client, install_job(client))  # installed: a removal would have something to remove
    page = dashboard(server)
    page.sign_in()
    page.open()
    expect(page.page.locator("#session-state")).to_have_text("Signed in")  # the cookie is there to be abused
    attacker = serve(hostile_page(server.url))
    page.page.goto(f"{attacker.url}/")
    expect(page.page).to_have_title("tried")
    page.page.evaluate("() => document.getElementById('install').submit()")
    expect(page.page.locator("body")).to_contain_text("refused as a possible cross-site request")
    with client_for(server) as client:
        jobs = client.get("/api/jobs").json()
        magpie = {s["name"]: s for s in client.get("/api/services").json()}["magpie"]
    assert [(j["kind"], j["state"]) for j in jobs] == [("install", "successful")], "nothing else was started"
    assert magpie["intent"] == "running" and magpie["last_action"] is None
    page.open()  # the dashboard itself still acts with the same cookie
    page.page.get_by_role("button", name="Restart Magpie TTS").click()
    expect(page.row("magpie").locator(".feedback")).to_contain_text("Restarted", timeout=30_000)


# -- transcribe with speakers ---------------------------------------------------------------------
class BusyWhisperx:
    """WhisperX as the proxy sees it when its queue is full: ready, diarizer loaded, and 429 with Retry-After.

    With `busy` off its /health answers 503, so the proxy prefers the legacy service and the dashboard, with
    no job API to use, sends the file in one request.
    """

    def __init__(self) -> None:
        self.busy = threading.Event()
        self.app = FastAPI()

        @self.app.get("/health")
        def health() -> Response:
            if not self.busy.is_set():
                return Response("starting", status_code=503)
            return JSONResponse(
                {"status": "ready", "whisper_loaded": True, "diarizer_loaded": True, "aligner": None, "model": "tiny",
                 "device": "cpu", "compute_type": "int8", "queue": {"running": 1, "waiting": 4, "limit": 4},
                 "version": "test", "error": None}
            )  # fmt: skip

        @self.app.get("/v1/audio/jobs")
        def jobs() -> Response:
            return JSONResponse({"object": "list", "data": [], "has_more": False})

        @self.app.post("/v1/audio/jobs")
        @self.app.post("/v1/audio/transcribe-with-speakers")
        def transcribe() -> Response:
            error = {"message": "the queue is full (4 waiting)", "type": "rate_limit_error", "code": "queue_full"}
            return JSONResponse({"error": error}, status_code=429, headers={"Retry-After": "2"})


@browser_test
def test_transcribe_shows_the_backend_the_speakers_and_the_errors(
    make_settings, serve, spark2, dashboard, audio, tmp_path
):
    from playwright.sync_api import expect

    whisperx = BusyWhisperx()
    settings = make_settings(legacy_asr_url=spark2["parakeet"].url, whisperx_url=serve(whisperx.app).url)
    page = dashboard(serve(settings)).open()
    card = page.page.locator("#transcribe-card")

    page.page.set_input_files("#transcribe-file", str(audio / "sentence.wav"))
    page.page.click("#transcribe-submit")
    expect(page.page.locator("#transcript")).to_be_visible(timeout=30_000)
    expect(page.page.locator("#transcript-backend")).to_have_text("Backend: legacy (Parakeet + Sortformer)")
    expect(page.page.locator("#transcript-fallback")).to_contain_text("WhisperX was not used")
    expect(page.page.locator("#transcript-speakers li")).to_have_count(1)
    expect(page.page.locator("#transcript-segments")).to_contain_text((audio / "sentence.txt").read_text().strip())
    expect(page.page.locator("#transcript-segments .seg-time").first).to_contain_text("0:00.0 \u2013 0:0")
    expect(page.page.locator("#transcribe-status")).to_contain_text("1 segment, 1 speaker.")
    expect(page.page.locator("#recent-empty")).to_contain_text("WhisperX, which is not available now")

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    page.page.set_input_files("#transcribe-file", str(empty))
    page.page.click("#transcribe-submit")
    expect(page.page.locator("#transcribe-error")).to_contain_text("HTTP 400: the audio is empty")

    # The page's clock from here on is the test's: the Retry-After countdown moves only when the test says so.
    page.page.clock.install()
    whisperx.busy.set()
    page.page.set_input_files("#transcribe-file", str(audio / "sentence.wav"))
    page.page.click("#transcribe-submit")
    error, retry = page.page.locator("#transcribe-error"), page.page.locator("#transcribe-retry")
    expect(error).to_contain_text("The service is busy (HTTP 429): the queue is full (4 waiting)")
    expect(error).to_contain_text("Retry in 2 s")
    expect(retry).to_be_disabled()
    expect(retry).to_have_text("Retry in 2 s")
    page.shot("transcribe-busy.png", locator=card)
    page.page.clock.run_for(1000)
    expect(retry).to_have_text("Retry in 1 s")
    expect(retry).to_be_disabled()
    page.page.clock.run_for(1000)
    expect(retry).to_have_text("Retry now")
    expect(retry).to_be_enabled()
    whisperx.busy.clear()
    retry.click()
    expect(error).to_be_hidden()
    expect(page.page.locator("#transcript")).to_be_visible(timeout=30_000)  # hidden while the retry was on its way
    expect(page.page.locator("#transcript-backend")).to_have_text("Backend: legacy (Parakeet + Sortformer)")


@browser_test
def test_the_tab_works_at_phone_width(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings())
    page = dashboard(server, viewport=PHONE).open()
    expect(page.page.get_by_role("button", name="Install WhisperX")).to_be_visible()
    expect(page.row("parakeet").get_by_role("button", name="Restart Parakeet")).to_be_visible()
    width = page.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "nothing sticks out sideways"
    page.shot("dashboard-phone.png", full_page=True)


# -- the real thing, once ------------------------------------------------------------------------------
GPU_HOST, SSH_PORT = "dash-gpu-host", 2240
WHISPERX_CONTAINER, WHISPERX_PORT = "dash-whisperx-asr", 18012
JOBS_VOLUME = "whisperx-jobs"  # the role's whisperx_jobs_volume, which spark-control leaves at its default


@pytest.fixture
def gpu_host() -> Iterator[dict[str, str]]:
    """An SSH-reachable GPU host stand-in (scripts/gpu-host.sh) on the shared Docker engine."""
    script = REPO / "scripts" / "gpu-host.sh"
    subprocess.run(["docker", "rm", "-f", WHISPERX_CONTAINER], capture_output=True, check=False)
    # the role's job volume is on the shared engine: an earlier run's transcripts would be listed too
    subprocess.run(["docker", "volume", "rm", "-f", JOBS_VOLUME], capture_output=True, check=False)
    subprocess.run([script, "up", GPU_HOST, str(SSH_PORT)], check=True)
    state = Path(os.environ.get("GPU_HOST_STATE", "/var/tmp/spark-inference/gpu-hosts"))
    host = dict(line.split("=", 1) for line in (state / GPU_HOST / "host.env").read_text().split())
    yield host
    subprocess.run(["docker", "rm", "-f", WHISPERX_CONTAINER], capture_output=True, check=False)
    subprocess.run(["docker", "volume", "rm", "-f", JOBS_VOLUME], capture_output=True, check=False)
    subprocess.run([script, "down", GPU_HOST], check=False)


WORK = "#transcribe-work"


def follow_a_long_job_through_a_reload(page: Dashboard, meeting: Path) -> None:
    """A four-window job: the bar moves, segments come as windows finish, a reload comes back to the job."""
    from playwright.sync_api import expect

    page.page.set_input_files("#transcribe-file", str(meeting))
    page.page.click("#transcribe-submit")
    expect(page.page.locator("#transcribe-work-text")).to_contain_text("1 of 4 windows done", timeout=300_000)
    first = page.page.locator(WORK).evaluate("bar => bar.value")
    assert 0 < first < 1
    assert page.page.locator("#transcript-segments li").count() > 0, "the first window's segments are shown"
    assert re.search(r"[?&]job=job_[0-9a-f]{16}\b", page.page.url), page.page.url
    listed = page.page.locator("#recent-list li").first
    expect(listed).to_contain_text("meeting.wav")
    expect(listed).to_contain_text(re.compile(r"running · [1-9]\d? %"))  # the list follows the job too
    page.shot("transcribe-job.png", locator=page.page.locator("#transcribe-card"))

    page.page.reload()  # the same address: the page comes back to the job it names
    expect(page.page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.page.locator("#transcribe-work-row")).to_be_visible()
    expect(page.page.locator("#transcribe-cancel")).to_be_visible()
    page.page.wait_for_function(f"() => document.querySelector('{WORK}').value > {first}", timeout=300_000)
    expect(page.page.locator("#transcribe-status")).to_contain_text("Done: meeting.wav", timeout=600_000)
    expect(page.page.locator("#transcript-backend")).to_have_text("Backend: WhisperX")
    expect(page.page.locator("#transcript-speakers li")).to_have_count(2)
    expect(page.page.locator("#transcribe-progress")).to_be_hidden()

    recent = page.page.locator("#recent-list li").first
    expect(recent).to_contain_text("meeting.wav")
    expect(recent).to_contain_text("2 speakers")
    expect(recent).to_contain_text("completed")
    with page.page.expect_download() as download:
        page.page.click('#transcript-actions [data-format="srt"]')
    srt = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == "meeting.srt"
    assert srt.startswith("1\n00:00:") and " --> " in srt and "warehouse" in srt

    recent.get_by_role("button", name="Delete").click()
    page.page.click("#confirm-ok")
    expect(page.page.locator("#recent-list li")).to_have_count(1)  # the first, short one is left
    expect(page.page.locator("#transcript")).to_be_hidden()
    assert "job=" not in page.page.url


@pytest.mark.integration
@browser_test
def test_a_real_install_from_the_banner_then_two_speakers_then_remove(
    tmp_path, gpu_host, model_bundle, audio, spark2, serve, dashboard
):
    """The real playbooks over SSH, the real image, tiny.en on the CPU: what an operator does on day one."""
    from playwright.sync_api import expect

    settings = Settings(
        spark2_host=gpu_host["SSH_HOST"],
        spark2_user=gpu_host["SSH_USER"],
        spark2_ssh_port=int(gpu_host["SSH_PORT"]),
        ssh_key=Path(gpu_host["SSH_KEY"]),
        whisperx_container=WHISPERX_CONTAINER,
        whisperx_port=WHISPERX_PORT,
        **cpu_whisperx(model_bundle),
        whisperx_env={"WHISPERX_WINDOW_S": "60"},  # the long recording below is four windows
        legacy_asr_url=spark2["parakeet"].url,
        magpie_url=spark2["magpie"].url,
        api_token=API_TOKEN,
        data_dir=tmp_path / "data",
        health_cache_s=0.5,
    )
    server = serve(settings)
    page = dashboard(server).open()
    expect(page.page.locator("#install-banner")).to_be_visible()
    page.record_phases()
    page.page.get_by_role("button", name="Install WhisperX").click()
    page.log_in_through_the_dialog()
    reached_load_or_ended = "() => ['load', 'ready', 'failed'].some((p) => window.__phases.includes(p))"
    page.page.wait_for_function(reached_load_or_ended, timeout=900_000)
    page.shot("install-progress.png")
    ended = page.page.locator("#progress-status.ok, #progress-status.bad, #progress-failure:not([hidden])")
    expect(ended.first).to_be_visible(timeout=900_000)  # a failure shows its box (and a blank status)
    assert page.recorded_phases() == [*PHASES, "ready"], page.page.locator("#progress-failure").text_content()
    assert len(page.log_lines()) > 30
    expect(page.page.locator("#progress-elapsed")).not_to_have_text("0:00")
    page.page.click("#progress-close")

    expect(page.page.locator("#wx-summary")).to_have_text("ready", timeout=120_000)
    expect(page.page.locator("#wx-model")).to_contain_text("tiny.en")
    expect(page.page.locator("#wx-diarizer")).to_have_text("loaded")
    expect(page.page.locator("#wx-device")).to_have_text("Whisper cpu · diarizer cpu · int8")  # each model's own
    expect(page.page.locator("#wx-source")).to_contain_text("Live: /health answered")

    page.page.set_input_files("#transcribe-file", str(audio / "dialogue.wav"))
    page.page.click("#transcribe-submit")
    expect(page.page.locator("#transcript")).to_be_visible(timeout=300_000)
    expect(page.page.locator("#transcript-backend")).to_have_text("Backend: WhisperX")
    expect(page.page.locator("#transcript-speakers li")).to_have_count(2)
    classes = page.page.locator("#transcript-segments li").evaluate_all("items => items.map(i => i.className)")
    assert {"spk-0", "spk-1"} <= set(classes), "segments coloured by two speakers"
    expect(page.page.locator("#transcript-segments")).to_contain_text("warehouse")
    expect(page.page.locator("#recent-list li")).to_have_count(1)

    follow_a_long_job_through_a_reload(page, repeat_wav(audio / "dialogue.wav", tmp_path / "meeting.wav", 6))

    whisperx = page.row("whisperx")
    whisperx.get_by_role("button", name="Deep check WhisperX").click()
    expect(whisperx.locator(".feedback")).to_contain_text("Deep check passed", timeout=120_000)
    page.page.locator("#recent-list li").first.get_by_role("button", name="Open").click()  # the dialogue again
    expect(page.page.locator("#transcript")).to_be_visible()
    expect(page.page.locator("#transcript-segments")).to_contain_text("warehouse")
    expect(page.page.locator("#transcript-speakers li")).to_have_count(2)
    page.shot("dashboard-installed.png", full_page=True)
    page.shot("transcript-speakers.png", locator=page.page.locator("#transcribe-card"))

    name_a_speaker_then_see_the_name_in_the_next_transcript(page, audio)

    page.page.click("#remove-button")
    page.page.click("#confirm-ok")
    expect(page.page.locator("#progress-title")).to_have_text("WhisperX is removed", timeout=300_000)
    page.page.click("#progress-close")
    expect(page.page.locator("#install-banner")).to_be_visible()
    gone = subprocess.run(["docker", "container", "inspect", WHISPERX_CONTAINER], capture_output=True, check=False)
    assert gone.returncode != 0, "the removal took the container away"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert wait_until(lambda: not client.get("/api/whisperx/status").json()["installed"], 30)


def name_a_speaker_then_see_the_name_in_the_next_transcript(page: Dashboard, audio: Path) -> None:
    """The voice library from the page: "Name" on the dialogue's first speaker (Alice says the first line), the
    transcript says Alice, the Voices card has her; the follow-up meeting of the same voices comes back with
    Alice named; deleting the voice empties the card."""
    from playwright.sync_api import expect

    first = page.page.locator("#transcript-segments li .seg-speaker").first.text_content()
    page.page.locator(f'#transcript-speakers li[data-speaker="{first}"]').get_by_role(
        "button", name=f"Name {first}"
    ).click()
    expect(page.page.locator("#name-dialog")).to_be_visible()
    page.page.fill("#name-input", "Alice")
    page.page.press("#name-input", "Enter")  # Enter names; it does not cancel
    expect(page.page.locator("#name-dialog")).to_be_hidden()
    expect(page.page.locator('#transcript-speakers li[data-speaker="Alice"]')).to_be_visible(timeout=60_000)
    expect(page.page.locator("#transcript-segments li .seg-speaker").first).to_have_text("Alice")
    voices = page.page.locator("#voices-list li")
    expect(voices).to_have_count(1)
    expect(voices.first.locator(".voice-name")).to_have_text("Alice")
    expect(voices.first).to_contain_text(f"from {first} of a transcript")
    clip = voices.first.locator("audio").get_attribute("src")
    played = page.page.request.get(f"{page.url}{clip}")
    assert played.status == 200 and played.headers["content-type"] == "audio/wav", "the clip plays for the operator"

    page.page.set_input_files("#transcribe-file", str(audio / "followup.wav"))
    page.page.click("#transcribe-submit")
    new_one = re.compile("last year", re.IGNORECASE)  # what the follow-up says, and the dialogue does not
    expect(page.page.locator("#transcript-segments")).to_contain_text(new_one, timeout=300_000)
    expect(page.page.locator('#transcript-speakers li[data-speaker="Alice"]')).to_be_visible()
    page.shot("voices.png", locator=page.page.locator("#voices-card"))

    voices.first.get_by_role("button", name="Delete").click()
    page.page.click("#confirm-ok")
    expect(voices).to_have_count(0)
    expect(page.page.locator("#voices-empty")).to_contain_text("No voices yet")
