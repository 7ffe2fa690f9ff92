"""Small things people notice (issue 19, item 7): the tab icon, a submitted broadcast's own page,
``simulate`` outside the heating season."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from broadcaster.auth.accounts import Accounts
from broadcaster.cli import main
from tests.test_api import START, Api, make_api
from tests.test_console import browser, sign_in


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    Accounts(a.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    yield a
    a.svc.close()


def test_favicon_is_an_icon_not_a_404(api: Api) -> None:
    r = api.client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)


def test_a_submitted_broadcast_shows_its_villages_and_sms_groups(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李", "xiaoli-pass")
    r = c.post("/compose", data={"csrf": csrf, "text": "今晚注意通风", "villages": ["dongcun", "nancun"],
                                 "sms_groups": ["cadres"], "sms_scope": "villages"}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text  # pending approval: no deliveries yet
    asked = re.sub(r"\s+", " ", page.split('id="asked">', 1)[1].split("</p>", 1)[0])
    group = api.svc.cfg.directory.groups["cadres"]
    assert asked == f"发往：东村、南村 · 短信分组：{group}（只发所选村）"


def test_simulate_says_when_a_date_is_outside_the_heating_season(confdir: Path, capsys) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        cfg = str(confdir / "broadcaster.yaml")
        assert main(["simulate", "--level", "4", "--date", "2026-07-01", "-c", cfg]) == 0
        assert "注意：2026-07-01 不在采暖季（10-15 至 04-15）" in capsys.readouterr().out
        assert main(["simulate", "--level", "4", "--date", "2026-12-01", "-c", cfg]) == 0
        assert "不在采暖季" not in capsys.readouterr().out
    finally:
        root.handlers[:], root.level = saved


def test_sms_only_to_the_chosen_villages_or_the_whole_town(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李", "xiaoli-pass")
    assert 'name="sms_scope" value="villages" checked' in c.get("/compose").text  # the default on the page
    r = c.post("/compose", data={"csrf": csrf, "text": "今晚注意通风", "villages": ["dongcun", "nancun"],
                                 "sms_groups": ["cadres"], "sms_scope": "villages"},
               follow_redirects=False)
    bid = int(re.search(r"/history/(\d+)", r.headers["location"]).group(1))
    assert "（只发所选村）" in c.get(f"/history/{bid}").text
    approver = browser(api)
    Accounts(api.svc.ledger).add_user("王站长", "approver", "wang-pass-1", START)
    sign_in(approver, "王站长", "wang-pass-1")
    assert "（只发所选村）" in approver.get("/approvals").text
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "carol").status_code == 200
    api.svc.dispatcher.drain([bid])
    # 东村's and 南村's cadres; never 西村's
    assert sorted(m["to"] for m in api.outbox()) == ["+8613800138000", "+8615000150002"]
    assert "只发所选村" in c.get("/history").text  # the history list says which, too

    # The API says which it wants; "town" reaches the groups' members in every village.
    r = api.post("/api/v1/broadcasts", json={"text": "全镇通知", "villages": ["dongcun"], "sms_groups": ["cadres"],
                                             "sms_scope": "town"})
    assert api.get(f"/api/v1/broadcasts/{r.json()['id']}").json()["sms_scope"] == "town"
    bad = api.post("/api/v1/broadcasts", json={"text": "x", "villages": ["dongcun"], "sms_scope": "county"})
    assert bad.status_code == 422
