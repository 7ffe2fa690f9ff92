"""The public page in a real browser at phone width (DESIGN A12): Debian's headless Chromium driven
by Playwright opens ``/public`` of a real ``broadcaster run`` with no sign-in, sees tonight's level
and advice, the poster loaded, nothing wider than the phone; and takes a screenshot
(``BROADCASTER_SCREENSHOTS=docs`` refreshes docs/public-phone.png). The service runs under the
suite's fake wall clock at 28 Nov 2026 18:30 (tests/support/clock.py), after the 16:30 poll."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, edit_yaml, local, unavailable
from tests.support.procs import free_port
from tests.support.stack import Stack
from tests.test_console_browser import CHROMIUM, LAUNCH_ARGS, _why_not

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture
def stack(tmp_path: Path, confdir: Path) -> Iterator[Stack]:
    reason = _why_not()
    if reason:
        unavailable(reason)
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: (d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"), d.update(public={"hotline": "0312-12345"})))
    edit_yaml(confdir / "rules.yaml", lambda d: [r.pop("speakers", None) for r in d["rules"]])
    st = Stack(tmp_path, confdir, port, at=local(2026, 11, 28, 18, 30))
    st.start_server()
    try:
        yield st
    finally:
        st.close()


def test_public_page_on_a_phone(stack: Stack, tmp_path: Path) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN",
                                is_mobile=True)
        try:
            page.goto(f"{stack.url}/public")
            # The catch-up poll at start makes tonight's alert; the page is remade within 10 s.
            for _ in range(30):
                if "4级" in page.locator("body").inner_text():
                    break
                page.wait_for_timeout(500)
                page.reload()
            body = page.locator("body").inner_text()
            assert "4级" in body and "容易发生" in body and "防范建议" in body and "0312-12345" in body
            page.wait_for_function("document.querySelector('img').complete && document.querySelector('img').naturalWidth >= 720")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
            assert page.url.endswith("/public")  # no redirect to a sign-in
            folder = ROOT / "docs" if os.environ.get("BROADCASTER_SCREENSHOTS") == "docs" else tmp_path
            page.screenshot(path=str(folder / "public-phone.png"), full_page=True)
        finally:
            browser.close()
