"""The console in a real browser: Debian's headless Chromium driven by Playwright.

An operator signs in, composes a broadcast to two villages, loads the preview audio and submits;
an approver signs in and approves; both villages' plays turn to played, reported by the built-in
agents of a real ``broadcaster run``. ``tests/install-browser.sh`` installs Chromium; CI sets
``BROADCASTER_REQUIRE_SERVICES=1`` so that a missing browser fails instead of skipping.
Set ``BROADCASTER_SCREENSHOTS=docs`` to refresh the screenshots the README shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, edit_yaml, unavailable
from tests.support.procs import BIN, free_port, wait_for
from tests.support.stack import Stack

# The service runs on the wall clock here: .ci/run repeats these at four hours of the town's day.
pytestmark = pytest.mark.clock

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
               "--disable-background-networking", "--disable-component-update"]
TEXT = "各位村民请注意：今晚风小、湿度大，极易发生煤气中毒。请开窗通风，检查烟道，睡前熄灭炉火。"

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


def _why_not() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return "no Chromium at /usr/bin/chromium: run tests/install-browser.sh"
    return None


@pytest.fixture
def stack(tmp_path: Path, confdir: Path) -> Iterator[Stack]:
    reason = _why_not()
    if reason:
        unavailable(reason)
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))

    def rooms(d: dict) -> None:  # two villages whose broadcast rooms run a built-in agent
        for v in d["villages"]:
            if v["id"] in ("dongcun", "xicun"):
                v["speakers"] = [{"id": f"{v['id']}-room", "type": "agent", "builtin": True}]

    edit_yaml(confdir / "directory.yaml", rooms)
    # The service's own catch-up poll must not add plays of its own.
    edit_yaml(confdir / "rules.yaml", lambda d: [r.pop("speakers", None) for r in d["rules"]])
    for name, role in (("小李", "operator"), ("王站长", "approver")):
        subprocess.run([BIN, "user", "add", "--name", name, "--role", role, "--password-stdin",
                        "-c", str(confdir / "broadcaster.yaml")], input=f"{name}-password\n", text=True, check=True)
    st = Stack(tmp_path, confdir, port)
    st.start_server()
    try:
        yield st
    finally:
        st.close()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def shot(page: Page, tmp: Path, name: str) -> None:
    folder = ROOT / "docs" if os.environ.get("BROADCASTER_SCREENSHOTS") == "docs" else tmp
    page.screenshot(path=str(folder / f"console-{name}.png"), full_page=True)


def test_operator_composes_approver_approves_villages_play(stack: Stack, tmp_path: Path) -> None:
    url = stack.url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 720}, locale="zh-CN")
        try:
            sign_in(page, url, "小李")
            assert page.get_by_test_id("level").inner_text() == "4 级"
            shot(page, tmp_path, "dashboard")

            page.click("text=发布广播")
            page.fill("#text", TEXT)
            # Locator waits, not wait_for_function: its string predicates are eval, which the
            # console's Content-Security-Policy refuses (as it should).
            page.locator("#segments", has_text="短信 1 条").wait_for()
            page.check("input[name=villages][value=dongcun]")
            page.check("input[name=villages][value=xicun]")
            page.check("input[name=sms_groups][value=cadres]")
            page.click("#preview-btn")
            # The browser has decoded the bulletin: chime plus the text spoken twice.
            assert wait_for(lambda: float(page.get_attribute("#preview", "data-duration") or 0) > 10, 30, 0.2)
            shot(page, tmp_path, "compose")
            page.click("button[type=submit].primary")
            page.wait_for_url(re.compile(r".*/history/\d+.*"))
            bid = int(re.search(r"/history/(\d+)", page.url).group(1))
            assert page.locator("#status").inner_text() == "待审批"

            page.click("text=退出")
            page.wait_for_url(re.compile(r".*/login$"))
            sign_in(page, url, "王站长")
            page.click("text=待审批")
            card = page.locator(f"[data-broadcast='{bid}']")
            assert TEXT in card.inner_text()
            card.locator("button:has-text('批准')").click()
            page.wait_for_url(re.compile(rf".*/history/{bid}.*"))

            # The page refreshes itself while the broadcast is going out.
            for village in ("dongcun", "xicun"):
                page.wait_for_selector(f"[data-village='{village}'][data-state='played']", timeout=45_000)
            assert page.locator("#status").inner_text() == "已完成"
            text = page.locator("table").nth(1).inner_text()
            assert text.count("已播放") == 2 and "138****8000" in text
            page.goto(f"{url}/history")
            shot(page, tmp_path, "history")
            page.goto(f"{url}/villages")
            for room in ("dongcun-room", "xicun-room"):
                cells = page.locator(f"tr:has(td:text-is('{room}')) td").all_inner_texts()
                assert re.match(r"\d\d-\d\d \d\d:\d\d", cells[3]) and re.match(r"\d\d-\d\d \d\d:\d\d", cells[4]), cells
        finally:
            browser.close()
