"""What the console tells a clerk about tonight's plays (issue 19, item 1): every endpoint's next
play with its time and a state in words, before and after the play time, on an injected clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.ledger import Alert, Delivery
from tests.conftest import local
from tests.test_api import START, Api, make_api
from tests.test_console import browser, sign_in


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    Accounts(a.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    yield a
    a.svc.close()


def plays_table(html: str) -> dict[str, tuple[str, str]]:
    """The dashboard's plays: ``{speaker: (state, the words shown)}``."""
    table = html.split('data-testid="plays"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-speaker="([^"]+)" data-state="([^"]+)">(.*?)</tr>', table, re.S)
    return {sp: (st, re.sub(r"<[^>]+>", " ", body)) for sp, st, body in rows}


def deliveries(api: Api) -> dict[str, Delivery]:
    with api.svc.ledger.reader() as s:
        return {d.target: d for d in s.scalars(select(Delivery).where(Delivery.channel == "speaker"))}


def test_dashboard_and_history_show_every_village_play_before_and_after_its_time(api: Api) -> None:
    api.svc.poll()  # 14:00: a level-4 night; the rules play at 19:30 in every village
    with api.svc.ledger.reader() as s:
        ids = list(s.scalars(select(Alert.id)))
    api.clock.set(local(2026, 11, 28, 17, 42))
    api.svc.dispatcher.drain(ids)  # the three folder endpoints get tonight's file, to play at 19:30
    assert {d.state for d in deliveries(api).values()} == {"sent"}

    api.clock.set(local(2026, 11, 28, 17, 43))
    c = browser(api)
    sign_in(c, "小李", "xiaoli-pass")
    before = plays_table(c.get("/").text)
    assert set(before) == {"dongcun-dir", "xicun-dir", "nancun-dir"}  # handed over, still shown
    for state, words in before.values():
        assert state == "sent" and "已下发 · 19:30 播放" in words and "11-28 19:30" in words
    hist = c.get("/history").text
    assert "东村 已下发 · 19:30 播放" in hist and "南村 已下发 · 19:30 播放" in hist
    assert "已发出" not in hist and "已播 " not in hist

    # 20:10: one endpoint reported its play, one reported a failure, one never reports (a folder).
    d = deliveries(api)
    api.svc.ledger.deliveries.report(d["dongcun-dir"].id, "dongcun-dir", "played", local(2026, 11, 28, 19, 30),
                                     played_at=local(2026, 11, 28, 19, 30))
    api.svc.ledger.deliveries.report(d["xicun-dir"].id, "xicun-dir", "failed", local(2026, 11, 28, 19, 30),
                                     error="功放未开机")
    api.clock.set(local(2026, 11, 28, 20, 10))
    sign_in(c, "小李", "xiaoli-pass")  # a new evening session (sessions end after 30 idle minutes)
    after = plays_table(c.get("/").text)
    assert after["dongcun-dir"][0] == "played" and "已播放 19:30" in after["dongcun-dir"][1]
    assert after["xicun-dir"][0] == "failed" and "未播出：功放未开机" in after["xicun-dir"][1]
    assert after["nancun-dir"][0] == "sent" and "应已播放" in after["nancun-dir"][1]
    hist = c.get("/history").text
    assert "东村 已播放 19:30" in hist and "西村 未播出" in hist

    # Next afternoon: last night's plays are no longer "next".
    api.clock.set(local(2026, 11, 29, 14, 0))
    sign_in(c, "小李", "xiaoli-pass")
    assert "没有待播放的广播" in c.get("/").text


def test_a_play_state_reads_as_a_clerk_would_say_it() -> None:
    from broadcaster.web.views import play_label, play_state

    now, at = local(2026, 11, 28, 17, 43), local(2026, 11, 28, 19, 30)
    tz = now.tzinfo
    assert play_label("pending", at, now, tz) == "待下发 · 19:30 播放"
    assert play_label("expired", at, now, tz) == "未播出：超过有效期未能下发"
    assert play_label("sent", local(2026, 11, 29, 19, 30), now, tz) == "已下发 · 11-29 19:30 播放"
    # Two play tasks in one village: the count says tasks, never to be read as repeats.
    st = play_state({"played": 1, "pending": 1}, at.isoformat(), now, tz)
    assert st["state"] == "pending" and st["label"] == "待下发 · 19:30 播放" and (st["played"], st["total"]) == (1, 2)
