"""Quiet when idle (DESIGN A8): the demo service, its built-in agent holding tonight's play an hour
away, uses under 1% of a core over a minute, measured from ``/proc``, and the agent asks at most
twice a minute. The service's clock starts at 18:30 of today (tests/support/clock.py), whatever
the real hour, so the 19:30 play is an hour away.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import edit_yaml
from tests.support.clock import today_at
from tests.support.procs import cpu_seconds, free_port, wait_for
from tests.support.stack import Stack

MINUTE = 60.0


def agent_polls(url: str) -> float:
    """Long polls answered so far (``broadcaster_agent_polls_total``, all answers)."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r'^broadcaster_agent_polls_total\{[^}]*\} (\S+)$', text, re.M))


@pytest.mark.timeout(180)
def test_idle_service_with_an_agent_waiting_uses_under_1_percent(tmp_path: Path, confdir: Path) -> None:
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    edit_yaml(confdir / "directory.yaml", lambda d: d["villages"][2]["speakers"].append(
        {"id": "nancun-room", "type": "agent", "builtin": True}))
    st = Stack(tmp_path, confdir, port, at=today_at(18, 30))
    st.start_server()
    try:
        cache = confdir.parent / "var" / "agents" / "nancun-room" / "audio"
        assert wait_for(lambda: list(cache.glob("*.mp3")), 30), st.log.read_text()[-2000:]
        assert "alert 1 created" in st.log.read_text()
        time.sleep(3)  # the catch-up and the first hand-over are done; the agent waits in its poll
        assert st.server is not None
        cpu0, polls0, t0 = cpu_seconds(st.server.pid), agent_polls(st.url), time.monotonic()
        time.sleep(MINUTE)
        cpu1, polls1, t1 = cpu_seconds(st.server.pid), agent_polls(st.url), time.monotonic()
    finally:
        st.close()
    share = (cpu1 - cpu0) / (t1 - t0)
    # /metrics itself was asked twice; its answer is part of the measured CPU (and it is small).
    assert share < 0.01, f"{cpu1 - cpu0:.2f} s of CPU in {t1 - t0:.0f} s ({share:.1%} of a core)"
    assert polls1 - polls0 <= 2, f"the agent asked {polls1 - polls0:.0f} times in a minute"
    assert "reported played" not in st.log.read_text()  # nothing was due: the play is at 19:30
    print(f"idle: {cpu1 - cpu0:.2f} s CPU in {t1 - t0:.0f} s ({share:.2%} of a core); "
          f"{polls1 - polls0:.0f} agent polls")
