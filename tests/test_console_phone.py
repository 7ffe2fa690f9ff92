"""The console on a phone (issue 19, item 7), in a real browser at 390 px: the navigation does
not break inside a word, no page scrolls sideways as a whole, and table cells stay wide enough
to read (a wide table scrolls inside its box instead of wrapping one character per line).

The app runs in this process on the test's clock (uvicorn on 127.0.0.1), so the dashboard shows
tonight's plays at 17:43 and the audit page its entries. ``BROADCASTER_SCREENSHOTS=docs`` writes
the screenshots to docs/ (console-phone-*.png).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.ledger import Alert, Delivery
from broadcaster.web.app import create_app
from tests.conftest import ROOT, local
from tests.support.procs import free_port, wait_for
from tests.test_api import BODY, START, Api, make_api
from tests.test_console_browser import CHROMIUM, LAUNCH_ARGS, _why_not
from tests.conftest import unavailable

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

CHECK = """() => {
  const out = {pageWidth: document.documentElement.scrollWidth, nav: [], cells: []};
  for (const a of document.querySelectorAll('header nav a')) {
    out.nav.push({text: a.textContent.trim(), lines: a.getClientRects().length, h: a.getBoundingClientRect().height});
  }
  for (const td of document.querySelectorAll('main td')) {
    const text = td.textContent.trim();
    if (text.length < 3) continue;
    const fs = parseFloat(getComputedStyle(td).fontSize);
    out.cells.push({text: text.slice(0, 20), w: td.getBoundingClientRect().width, fs});
  }
  return out;
}"""


@pytest.fixture
def served(confdir: Path) -> Iterator[tuple[Api, str]]:
    reason = _why_not()
    if reason:
        unavailable(reason)
    api = make_api(confdir)
    Accounts(api.svc.ledger).add_user("管理员", "admin", "admin-pass", START)
    api.svc.poll()  # a level-4 night: plays at 19:30 in every village
    with api.svc.ledger.reader() as s:
        ids = list(s.scalars(select(Alert.id)))
    api.clock.set(local(2026, 11, 28, 17, 42))
    api.svc.dispatcher.drain(ids)
    r = api.post("/api/v1/broadcasts", json={**BODY, "repeat": 1})
    api.post(f"/api/v1/broadcasts/{r.json()['id']}/approve", "carol")
    api.clock.set(local(2026, 11, 28, 17, 43))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.svc), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)
        api.svc.close()


def look(page: Page, path: str, shots: Path, name: str) -> dict:
    page.goto(path)
    page.screenshot(path=str(shots / f"console-phone-{name}.png"), full_page=True)
    return page.evaluate(CHECK)


def test_the_console_reads_on_a_390_px_phone(served: tuple[Api, str], tmp_path: Path) -> None:
    api, url = served
    shots = ROOT / "docs" if os.environ.get("BROADCASTER_SCREENSHOTS") == "docs" else tmp_path
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN", device_scale_factor=1)
            page.goto(f"{url}/login")
            page.fill("input[name=name]", "管理员")
            page.fill("input[name=password]", "admin-pass")
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")
            for path, name in (("/", "dashboard"), ("/history", "history"), ("/audit", "audit"), ("/history/2", "broadcast")):
                got = look(page, url + path, shots, name)
                assert got["pageWidth"] <= 390, (name, got["pageWidth"])  # no sideways scrolling of the page
                assert got["nav"] and all(n["lines"] == 1 and n["h"] < 40 for n in got["nav"]), (name, got["nav"])
                narrow = [c for c in got["cells"] if c["w"] < 2.5 * c["fs"]]
                assert not narrow, (name, narrow)  # no cell one character wide
            page.goto(url + "/")
            assert "已下发 · 19:30 播放" in page.inner_text("[data-testid=plays]")

            # After tonight's play time: one endpoint reported its play, the others are folders.
            with api.svc.ledger.reader() as s:
                d = s.scalars(select(Delivery).where(Delivery.target == "dongcun-dir", Delivery.alert_id == 1)).one()
            api.svc.ledger.deliveries.report(d.id, "dongcun-dir", "played", local(2026, 11, 28, 19, 30),
                                             played_at=local(2026, 11, 28, 19, 30))
            api.clock.set(local(2026, 11, 28, 20, 10))
            page.goto(f"{url}/login")  # a new evening session (sessions end after 30 idle minutes)
            page.fill("input[name=name]", "管理员")
            page.fill("input[name=password]", "admin-pass")
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")
            page.screenshot(path=str(shots / "console-phone-dashboard-after.png"), full_page=True)
            plays = page.inner_text("[data-testid=plays]")
            assert "已播放 19:30" in plays and "应已播放（终端不回报）" in plays
        finally:
            browser.close()
