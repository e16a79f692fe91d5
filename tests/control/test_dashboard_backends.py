"""The dashboard with several WhisperX backends (WHISPERX_HOSTS), in headless Chromium against a real spark-control:
the card lists each backend from its own /health, one button installs the group, and the progress dialog follows
the rollout host by host. Two fake backends (test_routing.Backend) and the stand-in playbooks play the GPU hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.control import test_dashboard as single_backend
from tests.control.helpers import LiveServer
from tests.control.test_dashboard import Dashboard, gated
from tests.control.test_routing import Backend, names, two_backends

browser_test = pytest.mark.browser
# The browser and the page, as the single-backend tests have them (pytest finds fixtures by module attribute).
chromium, dashboard, screenshots = single_backend.chromium, single_backend.dashboard, single_backend.screenshots

# Records, in the page, each state every host's row passes through, however fast the rollout goes.
RECORD_HOSTS = """() => {
  const rows = document.querySelector("#progress-hosts");
  const seen = (window.__hosts = {});
  new MutationObserver(() => {
    for (const li of rows.querySelectorAll("li")) {
      const states = (seen[li.dataset.host] ??= []);
      if (states[states.length - 1] !== li.dataset.state) states.push(li.dataset.state);
    }
  }).observe(rows, {childList: true});
}"""


@pytest.fixture
def gpu_hosts(serve) -> tuple[Backend, Backend, LiveServer, LiveServer]:
    """Two fake WhisperX backends, each with its own model, devices, queue and version on /health."""
    first, second = Backend("whisperx-a"), Backend("whisperx-b")
    first.health |= {"model": "tiny.en", "version": "1.2.3", "whisper_device": "cuda", "diarizer_device": "cuda"}
    second.health |= {"model": "large-v3", "version": "1.2.4", "whisper_device": "cuda", "diarizer_device": "cpu"}
    first.queue(running=1, waiting=2, limit=4)
    second.queue(running=0, waiting=0, limit=4)
    return first, second, serve(first.app), serve(second.app)


def backend_entry(page: Dashboard, name: str) -> Any:
    return page.page.locator(f'#wx-backends li[data-backend="{name}"]')


def host_row(page: Dashboard, name: str) -> Any:
    return page.page.locator(f'#progress-hosts li[data-host="{name}"]')


def start_the_group_install(page: Dashboard) -> None:
    from playwright.sync_api import expect

    page.page.click("#group-install-button")
    expect(page.page.locator("#confirm-body")).to_contain_text("one host at a time")
    page.page.click("#confirm-ok")
    expect(page.page.locator("#progress-dialog")).to_be_visible()


@browser_test
def test_the_card_lists_each_backend_and_one_button_installs_them_host_by_host(
    make_settings, serve, dashboard, gpu_hosts, tmp_path: Path
):
    from playwright.sync_api import expect

    _, _, first_server, second_server = gpu_hosts
    first, second = names(first_server, second_server)
    gate = tmp_path / "gate"  # the first host holds in its build phase until the test has seen it there
    settings = two_backends(
        make_settings, first_server, second_server, fake_vars={"fake_lines": 2, **gated("build", gate)}
    )
    server = serve(settings)
    page = dashboard(server)
    page.sign_in()
    page.open()

    expect(page.page.locator("#wx-backends li")).to_have_count(2)
    expect(page.page.locator("#wx-facts")).to_be_hidden()  # one backend's facts would say nothing of the other
    expect(backend_entry(page, first)).to_contain_text("ready")
    expect(backend_entry(page, first).locator("dd")).to_have_text(
        ["tiny.en", "cuda", "1 running · 2 waiting (limit 4)", "1.2.3"]
    )
    expect(backend_entry(page, second).locator("dd")).to_have_text(
        ["large-v3", "Whisper cuda · diarizer cpu", "0 running · 0 waiting (limit 4)", "1.2.4"]
    )
    expect(page.page.locator("#wx-source")).to_contain_text("Live: /health answered on 2 of 2 hosts")
    expect(page.page.locator("#install-banner")).to_be_hidden()
    expect(page.page.locator("#group-install-button")).to_have_text("Upgrade every host…")

    page.page.evaluate(RECORD_HOSTS)
    start_the_group_install(page)
    expect(host_row(page, first)).to_contain_text("phase 3 of 5: build")
    expect(host_row(page, first)).to_have_attribute("data-state", "current")
    expect(host_row(page, second)).to_have_text(f"{second}waiting for its turn")
    expect(page.page.locator("#progress-status")).to_have_text(f"{first} (host 1 of 2): Building the image…")
    expect(page.step("build")).to_have_class("current")
    gate.touch()

    expect(page.page.locator("#progress-title")).to_have_text("WhisperX is installed")
    expect(host_row(page, first)).to_have_attribute("data-state", "ready")
    expect(host_row(page, second)).to_have_attribute("data-state", "ready")
    expect(page.page.locator("#progress-status")).to_contain_text("WhisperX is ready on 2 of 2 hosts")
    assert page.page.evaluate("() => window.__hosts") == {
        first: ["waiting", "current", "installed", "ready"],  # installed: its turn was over, the second's began
        second: ["waiting", "current", "ready"],
    }
    page.page.click("#progress-close")
    expect(page.page.locator("#wx-backends li")).to_have_count(2)
    expect(page.row(first)).to_be_visible()  # once installed, each backend is a managed service of its own
    expect(page.row(second)).to_be_visible()


@browser_test
def test_a_host_that_fails_ends_the_rollout_and_the_next_is_shown_untouched(make_settings, serve, dashboard, gpu_hosts):
    from playwright.sync_api import expect

    _, _, first_server, second_server = gpu_hosts
    first, second = names(first_server, second_server)
    fail_first = {"fake_lines": 2, "fake_fail_phase": "load", "fake_fail_hosts": [first]}
    server = serve(two_backends(make_settings, first_server, second_server, fake_vars=fail_first))
    page = dashboard(server)
    page.sign_in()
    page.open()
    start_the_group_install(page)

    failure = page.page.locator("#progress-failure")
    expect(failure).to_be_visible()
    expect(failure).to_contain_text(f"The install failed on {first} during the load phase.")
    expect(failure).to_contain_text(f"{second} was not touched.")
    expect(failure).to_contain_text("load failed")  # the failing task's own message
    expect(host_row(page, first)).to_have_text(f"{first}failed during load")
    expect(host_row(page, second)).to_have_text(f"{second}not touched")
    expect(page.step("load")).to_have_class("failed")

    page.page.reload()  # a fresh page replays the job's log: the same rows
    expect(page.page.locator("body")).to_have_attribute("data-ready", "true")
    page.page.click("#last-job-log")
    expect(host_row(page, first)).to_have_text(f"{first}failed during load")
    expect(host_row(page, second)).to_have_text(f"{second}not touched")


@browser_test
def test_one_backend_keeps_the_single_card_and_stepper(make_settings, serve, dashboard):
    from playwright.sync_api import expect

    server = serve(make_settings({"fake_lines": 2}))
    page = dashboard(server)
    page.sign_in()
    page.open()
    expect(page.page.locator("#wx-facts")).to_be_visible()
    expect(page.page.locator("#wx-backends-section")).to_be_hidden()
    expect(page.page.locator("#group-install-button")).to_be_hidden()
    page.page.click("#install-button")
    expect(page.page.locator("#progress-title")).to_have_text("WhisperX is installed")
    expect(page.page.locator("#progress-hosts")).to_be_hidden()
    expect(page.page.locator("#progress-status")).to_contain_text("WhisperX is ready (took")
