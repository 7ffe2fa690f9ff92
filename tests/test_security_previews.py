"""Per-user preview quota (issue 18, item 12): ``http.previews_per_hour`` previews in any hour,
then 429 with ``Retry-After`` and a Chinese-first reason, in the API and the console."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.auth.accounts import Accounts
from tests.test_api import START, Api, make_api
from tests.test_console import browser, sign_in


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir, lambda d: d["http"].update(previews_per_hour=2))
    Accounts(a.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    yield a
    a.svc.close()


def _preview(api: Api, who: str, text: str = "今晚请注意通风。"):  # type: ignore[no-untyped-def]
    return api.post("/api/v1/preview", who=who, json={"text": text, "repeat": 1})


def test_the_api_refuses_previews_beyond_the_hourly_quota_per_user(api: Api) -> None:
    assert [_preview(api, "alice").status_code for _ in range(2)] == [200, 200]
    api.clock.advance(20 * 60)
    r = _preview(api, "alice")
    assert r.status_code == 429
    assert r.json()["detail"].startswith("一小时内最多试听 2 次")
    # The first preview ages out 40 minutes from now: that is when to come back.
    assert int(r.headers["Retry-After"]) == 40 * 60
    # Another person has a quota of their own; invalid text is a 422 and costs nothing.
    assert _preview(api, "bob").status_code == 200
    assert _preview(api, "bob", text="   ").status_code == 422
    assert _preview(api, "bob").status_code == 200
    assert _preview(api, "bob").status_code == 429
    # After the hour, alice may preview again.
    api.clock.advance(40 * 60 + 1)
    assert _preview(api, "alice").status_code == 200


def test_the_console_refuses_previews_beyond_the_hourly_quota(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李", "xiaoli-pass")
    form = {"csrf": csrf, "text": "今晚请注意通风。", "repeat": "1"}
    assert [c.post("/console/preview", data=form).status_code for _ in range(2)] == [200, 200]
    r = c.post("/console/preview", data=form)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 3600
    assert r.json()["error"].startswith("一小时内最多试听 2 次")


def test_the_default_quota_is_sixty_an_hour(confdir: Path) -> None:
    api = make_api(confdir)
    try:
        assert api.svc.cfg.settings.http.previews_per_hour == 60
    finally:
        api.svc.close()
