"""A flood against a real server (issue 18, item 2): 200 failed sign-ins and 5 previews at once,
while ``/healthz`` keeps answering in under 200 ms. Scrypt, audit writes, TTS and ffmpeg run off
the event loop; previews queue one at a time and one per user; sign-ins are throttled."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from broadcaster.auth.accounts import Accounts
from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml
from tests.support.clock import today_at
from tests.support.procs import free_port, wait_for
from tests.support.stack import Stack

@pytest.fixture
def server(tmp_path: Path, confdir: Path) -> Iterator[tuple[str, Service]]:
    """``broadcaster run`` as its own process (the flood's clients must not share its GIL), its
    clock at 10:00 of today in the town, whatever the real hour."""
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    start = today_at(10, 0)
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(start))
    Accounts(svc.ledger).add_user("小李", "operator", "xiaoli-pass", start)
    st = Stack(tmp_path, confdir, port, at=start)
    st.start_server()
    try:
        # Let start-up's catch-up poll render and hand over its alert first: the flood is measured alone.
        assert wait_for(lambda: svc.ledger.reads.history(ids=[1]) and not svc.ledger.reads.open_count([1]), 30)
        yield st.url, svc
    finally:
        st.close()
        svc.close()


def _csrf(c: httpx.Client, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).text).group(1)


@pytest.mark.timeout(60)
def test_health_answers_quickly_through_a_sign_in_and_preview_flood(server: tuple[str, Service]) -> None:
    url, _svc = server
    me = httpx.Client(base_url=url, timeout=30)
    login = _csrf(me, "/login")
    me.post("/login", data={"name": "小李", "password": "xiaoli-pass", "csrf": login, "next": "/"})
    csrf = _csrf(me, "/")
    attacker = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=40))
    bad = _csrf(attacker, "/login")

    slowest, stop = [0.0], threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=url, timeout=10) as h:
            while not stop.is_set():
                t0 = time.monotonic()
                assert h.get("/healthz").status_code == 200
                slowest[0] = max(slowest[0], time.monotonic() - t0)
                time.sleep(0.02)

    def sign_in(i: int) -> int:
        return attacker.post("/login", data={"name": f"admin{i}" * 50, "password": "guess-guess",
                                             "csrf": bad}).status_code

    def preview(_: int) -> int:
        return me.post("/console/preview", data={"text": "一氧化碳中毒危险，请开窗通风。" * 10, "repeat": "3",
                                                  "csrf": csrf}).status_code

    w = threading.Thread(target=watch)
    w.start()
    try:
        with ThreadPoolExecutor(40) as pool:
            rendering = [pool.submit(preview, i) for i in range(5)]  # they render meanwhile
            signins = list(pool.map(sign_in, range(200)))
            previews = [f.result() for f in rendering]
    finally:
        time.sleep(0.2)
        stop.set()
        w.join()
    assert slowest[0] < 0.2, f"/healthz took {slowest[0]:.2f} s during the flood"
    assert set(signins) == {401, 429} and signins.count(401) == 10  # throttled after 10
    assert previews.count(200) >= 1 and set(previews) <= {200, 429}  # one per user at a time
