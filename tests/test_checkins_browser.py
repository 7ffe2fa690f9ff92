"""A cadre opens a check-in link in a real browser at phone width and answers (issue 15, A13).

A real ``broadcaster run`` on the demo with its sample workbooks, started at 19:00 on
2026-11-28 (the fake clock of tests/support/clock.py): its catch-up polls (level 4) and, as
``send_at`` (18:30) has passed while the night lasts, sends the check-in links at start. The
link from the outbox is opened in headless Chromium at 390x844, an answer is tapped, and the
page shows it. ``BROADCASTER_SCREENSHOTS=docs`` writes docs/checkin-page.png for the README.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, edit_yaml, local, unavailable
from tests.support.procs import free_port, wait_for
from tests.support.stack import Stack
from tests.test_console_browser import CHROMIUM, LAUNCH_ARGS, _why_not

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

ZHANGSAN = "+8613800138000"


@pytest.fixture
def stack(tmp_path: Path, confdir: Path) -> Iterator[Stack]:
    reason = _why_not()
    if reason:
        unavailable(reason)
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: (
        d["http"].update(listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"),
        d.update(checkins={"level_at_least": 4, "send_at": "18:30", "confirm_by": "21:00"})))
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(households_file="households.xlsx",
                                                             duty_file="duty.xlsx"))
    edit_yaml(confdir / "rules.yaml", lambda d: [r.pop("speakers", None) for r in d["rules"]])
    st = Stack(tmp_path, confdir, port, at=local(2026, 11, 28, 19, 0))
    st.start_server()
    try:
        yield st
    finally:
        st.close()


def link_for(outbox: Path, phone: str) -> str | None:
    if not outbox.exists():
        return None
    for line in outbox.read_text(encoding="utf-8").splitlines():
        x = json.loads(line)
        m = re.search(r"http://\S+/c/[A-Za-z0-9_-]+", x["body"])
        if x["to"] == phone and m:
            return m.group(0)
    return None


def test_cadre_answers_on_a_phone(stack: Stack, tmp_path: Path, confdir: Path) -> None:
    outbox = confdir.parent / "var" / "outbox" / "sms.jsonl"
    assert wait_for(lambda: link_for(outbox, ZHANGSAN) is not None, 30, 0.2), stack.log.read_text()[-3000:]
    link = link_for(outbox, ZHANGSAN)
    assert link is not None and link.startswith(stack.url + "/c/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                is_mobile=True, has_touch=True, locale="zh-CN")
        try:
            page.goto(link)
            homes = page.locator(".home")
            assert homes.count() == 2
            first = homes.filter(has_text="张德顺")
            assert first.locator("a.call").get_attribute("href") == "tel:+8613800138111"
            # Made for the phone: nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            first.locator("button", has_text="已入户查看").click()
            page.wait_for_selector("text=已记录：张德顺")
            first = page.locator(".home").filter(has_text="张德顺")
            assert first.locator(".state").inner_text() == "当前：已入户查看"
            assert first.locator("button.on").inner_text() == "已入户查看"
            folder = ROOT / "docs" if os.environ.get("BROADCASTER_SCREENSHOTS") == "docs" else tmp_path
            page.screenshot(path=str(folder / "checkin-page.png"), full_page=True)
            assert (folder / "checkin-page.png").stat().st_size > 10_000
        finally:
            browser.close()
