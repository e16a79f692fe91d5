"""What a plain-JavaScript page can do with the API: log in, start an install, follow it with EventSource."""

from __future__ import annotations

import pytest

from tests.control.helpers import API_TOKEN

pytestmark = pytest.mark.browser

FOLLOW_AN_INSTALL = """
async (token) => {
  const login = await fetch("/api/session", {method: "POST", headers: {"content-type": "application/json"},
                                             body: JSON.stringify({token})});
  if (login.status !== 204) return {error: "login " + login.status};
  // the cookie authorises it; a change also carries the dashboard's header (security.py: CSRF)
  const started = await fetch("/api/whisperx/install", {method: "POST", headers: {"X-Spark-Control": "dashboard"}});
  const {job_id, stream_url} = await started.json();
  return await new Promise((resolve) => {
    const seen = {phases: [], lines: 0, done: null, ids: [], opens: 0, job_id};
    const source = new EventSource(stream_url);                             // the cookie again
    source.onopen = () => { seen.opens += 1; };
    source.addEventListener("phase", (e) => {
      seen.ids.push(+e.lastEventId);
      seen.phases.push(JSON.parse(e.data).phase);
    });
    source.addEventListener("log", (e) => { seen.ids.push(+e.lastEventId); seen.lines += 1; });
    source.addEventListener("done", (e) => { seen.done = JSON.parse(e.data); source.close(); resolve(seen); });
    setTimeout(() => { source.close(); resolve(seen); }, 60000);
  });
}
"""


def test_event_source_with_the_session_cookie_follows_an_install(make_settings, serve):
    from playwright.sync_api import sync_playwright

    server = serve(make_settings(reads_require_token=True))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/")
            seen = page.evaluate(FOLLOW_AN_INSTALL, API_TOKEN)
        finally:
            browser.close()
    assert seen.get("error") is None, seen
    assert seen["phases"] == ["preflight", "ship", "build", "start", "load", "ready"]
    assert seen["done"] == {"state": "successful", "rc": 0}
    assert seen["lines"] > 10 and seen["ids"] == sorted(set(seen["ids"]))
