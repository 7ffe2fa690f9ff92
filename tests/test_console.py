"""The web console without a browser: sign-in, sessions, CSRF, roles, compose, approvals, pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.ledger import Alert, ContactFlag
from tests.test_api import START, Api, make_api

USERS = {"小李": ("operator", "xiaoli-pass"), "王站长": ("approver", "wang-pass-1"), "管理员": ("admin", "admin-pass")}


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    accounts = Accounts(a.svc.ledger)
    for name, (role, pw) in USERS.items():
        accounts.add_user(name, role, pw, START)
    yield a
    a.svc.close()


def browser(api: Api) -> TestClient:
    """A fresh cookie jar on the same app (another person at another desk)."""
    return TestClient(api.client.app)


def sign_in(c: TestClient, name: str, password: str | None = None) -> str:
    """Sign in through the form; returns the session's CSRF token read from the next page."""
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"name": name, "password": password or USERS[name][1], "csrf": token, "next": "/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    home = c.get("/")
    assert home.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', home.text).group(1)


def test_pages_need_a_session_and_sign_in_is_audited(api: Api) -> None:
    c = browser(api)
    r = c.get("/history", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/history"
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    bad = c.post("/login", data={"name": "小李", "password": "wrong-password", "csrf": token})
    assert bad.status_code == 401 and "用户名或密码错误" in bad.text
    assert "wrong-password" not in bad.text
    sign_in(c, "小李")
    assert "小李（操作员）" in c.get("/").text
    actions = [(e.actor, e.action) for e in api.audit()]
    assert ("小李", "console.signin") in actions
    failed = [e for e in api.audit() if e.action == "console.signin_failed"]
    # never the password, and of the name only a masked prefix
    assert failed and failed[0].detail == {"name": "小…(2)", "suppressed_before": 0, "names_before": []}


def test_sign_in_without_the_form_token_is_refused(api: Api) -> None:
    c = browser(api)
    r = c.post("/login", data={"name": "小李", "password": USERS["小李"][1], "csrf": "forged"})
    assert r.status_code == 403 and "bc_session" not in r.cookies


def test_repeated_failures_throttle_the_address_but_never_lock_the_name(api: Api) -> None:
    attacker = TestClient(api.client.app, client=("203.0.113.9", 4000))
    for _ in range(10):
        token = re.search(r'name="csrf" value="([^"]+)"', attacker.get("/login").text).group(1)
        assert attacker.post("/login", data={"name": "小李", "password": "nope-nope", "csrf": token}).status_code == 401
    token = re.search(r'name="csrf" value="([^"]+)"', attacker.get("/login").text).group(1)
    r = attacker.post("/login", data={"name": "小李", "password": USERS["小李"][1], "csrf": token})
    assert r.status_code == 429 and "失败次数过多" in r.text and r.headers["Retry-After"] == "1"
    # The real user, at their own desk, is not locked out by the attacker's failures.
    sign_in(TestClient(api.client.app, client=("192.0.2.20", 5000)), "小李")
    # The attacker's wait grows with each further failure: 1 s, then 2 s, then 4 s.
    api.clock.advance(1)
    r = attacker.post("/login", data={"name": "小李", "password": "nope-nope", "csrf": token})
    assert r.status_code == 401
    r = attacker.post("/login", data={"name": "小李", "password": "nope-nope", "csrf": token})
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    # The flood left one audit entry, not eleven, and no name as typed.
    failed = [e for e in api.audit() if e.action == "console.signin_failed"]
    assert len(failed) == 1 and failed[0].actor == "anonymous@203.0.113.9"


def test_a_long_name_is_refused_without_being_kept(api: Api) -> None:
    c = browser(api)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    name = "管" * 5000
    r = c.post("/login", data={"name": name, "password": "whatever-1", "csrf": token})
    assert r.status_code == 401
    failed = [e for e in api.audit() if e.action == "console.signin_failed"]
    assert failed[-1].detail["name"] == "管…(5000)"


def test_sessions_expire_when_idle_and_on_sign_out(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李")
    api.clock.advance(29 * 60)
    assert c.get("/", follow_redirects=False).status_code == 200  # still in use
    api.clock.advance(31 * 60)
    assert c.get("/", follow_redirects=False).status_code == 303  # idle for more than 30 min
    csrf = sign_in(c, "小李")
    assert c.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert c.get("/", follow_redirects=False).status_code == 303


def test_forms_without_csrf_change_nothing(api: Api) -> None:
    c = browser(api)
    sign_in(c, "小李")
    r = c.post("/compose", data={"text": "测试", "villages": ["dongcun"]})
    assert r.status_code == 403
    with api.svc.ledger.reader() as s:
        assert s.scalar(select(Alert.id).where(Alert.kind == "manual")) is None


def test_compose_validation_names_the_field_and_keeps_the_text(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李")
    r = c.post("/compose", data={"csrf": csrf, "text": "今晚请注意通风。", "villages": [], "sms_groups": []})
    assert r.status_code == 422 and 'data-field="villages"' in r.text and "今晚请注意通风。" in r.text
    past = (START - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    r = c.post("/compose", data={"csrf": csrf, "text": "x", "villages": ["dongcun"], "at": past})
    assert r.status_code == 422 and "发送时间" in r.text
    r = c.post("/compose", data={"csrf": csrf, "text": "文" * 501, "villages": ["dongcun"]})
    assert r.status_code == 422 and 'data-field="text"' in r.text


def test_compose_approve_by_another_and_cancel(api: Api) -> None:
    op, boss = browser(api), browser(api)
    csrf = sign_in(op, "小李")
    at = (START + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    r = op.post("/compose", data={"csrf": csrf, "text": "今晚降温，请注意通风。", "villages": ["dongcun", "xicun"],
                                  "sms_groups": ["cadres"], "at": at, "repeat": "2"}, follow_redirects=False)
    assert r.status_code == 303
    bid = int(re.search(r"/history/(\d+)", r.headers["location"]).group(1))
    assert "待审批" in op.get(f"/history/{bid}").text
    # The author sees the broadcast but no approve button, and a forged approve is refused.
    page = op.get("/approvals").text
    assert f'data-broadcast="{bid}"' in page and "不能审批自己提交的广播" in page
    op.post(f"/broadcasts/{bid}/approve", data={"csrf": csrf})
    assert api.svc.ledger.reads.counts([bid]) == {"sms": {}, "speaker": {}}
    boss_csrf = sign_in(boss, "王站长")
    r = boss.post(f"/broadcasts/{bid}/approve", data={"csrf": boss_csrf}, follow_redirects=False)
    assert r.status_code == 303 and "已审批" in boss.get(r.headers["location"]).text
    counts = api.svc.ledger.reads.counts([bid])
    assert counts["sms"] == {"pending": 3} and counts["speaker"] == {"pending": 2}
    op.post(f"/broadcasts/{bid}/cancel", data={"csrf": csrf})
    counts = api.svc.ledger.reads.counts([bid])
    assert counts["sms"] == {"cancelled": 3} and counts["speaker"] == {"cancelled": 2}
    actions = [(e.actor, e.action) for e in api.audit() if e.object_id == str(bid)]
    assert actions == [("小李", "broadcast.create"), ("王站长", "broadcast.approve"), ("小李", "broadcast.cancel")]


def test_an_approver_cannot_approve_their_own(api: Api) -> None:
    boss = browser(api)
    csrf = sign_in(boss, "王站长")
    r = boss.post("/compose", data={"csrf": csrf, "text": "站长自己写的广播。", "villages": ["dongcun"]},
                  follow_redirects=False)
    bid = int(re.search(r"/history/(\d+)", r.headers["location"]).group(1))
    r = boss.post(f"/broadcasts/{bid}/approve", data={"csrf": csrf})
    assert "作者不能审批自己的广播" in r.text
    assert api.svc.ledger.reads.counts([bid]) == {"sms": {}, "speaker": {}}
    assert [e.action for e in api.audit() if e.object_id == str(bid)] == ["broadcast.create",
                                                                         "broadcast.approve_denied"]


def test_segment_count_and_preview(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李")
    assert c.get("/console/segments", params={"text": "文" * 70}).json()["count"] == 1
    assert c.get("/console/segments", params={"text": "文" * 71}).json() == {
        "encoding": "UCS-2", "units": 71, "count": 2, "chars": 71, "max": 500}
    r = c.post("/console/preview", data={"csrf": csrf, "text": "今晚请注意通风。", "repeat": "1"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg" and len(r.content) > 10_000
    assert c.post("/console/preview", data={"csrf": csrf, "text": " "}).status_code == 422
    assert browser(api).get("/console/segments", params={"text": "x"}).status_code == 401


def test_pages_render_the_ledger(api: Api) -> None:
    api.svc.poll()
    with api.svc.ledger.session() as s:
        s.add(ContactFlag(phone="+8613800138000", reason="21610 用户已退订", updated_at=START))
    c = browser(api)
    sign_in(c, "小李")
    home = c.get("/").text
    assert 'data-testid="level">4 级' in home and "容易发生" in home and "11/28" in home
    hist = c.get("/history").text
    assert "自动" in hist and "4 级" in hist
    detail = c.get("/history/1").text
    assert "138****8000" in detail and "+8613800138000" not in detail
    villages = c.get("/villages").text
    assert "东村" in villages and "21610 用户已退订" in villages and "138****8000" in villages
    assert c.get("/audit").status_code == 403
    admin = browser(api)
    sign_in(admin, "管理员")
    audit = admin.get("/audit").text
    assert "登录控制台" in audit and "小李" in audit and "console.signin" not in audit
    assert c.get("/history/999").status_code == 404


def test_user_passwords_are_stored_hashed(api: Api) -> None:
    from broadcaster.ledger import ConsoleUser

    with api.svc.ledger.reader() as s:
        stored = [u.password_hash for u in s.scalars(select(ConsoleUser))]
    assert stored and all(h.startswith("scrypt$") and "pass" not in h for h in stored)


def test_preview_and_submit_an_uploaded_recording(api: Api) -> None:
    from tests.test_api import wav_bytes

    c = browser(api)
    csrf = sign_in(c, "小李")
    rec = {"audio": ("通知.wav", wav_bytes(3), "audio/wav")}
    r = c.post("/console/preview", data={"csrf": csrf, "text": "", "repeat": "1"}, files=rec)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    bad = c.post("/console/preview", data={"csrf": csrf, "repeat": "1"}, files={"audio": ("x.mp3", b"not audio", "audio/mpeg")})
    assert bad.status_code == 422 and "无法识别的音频" in bad.json()["error"]
    r = c.post("/compose", data={"csrf": csrf, "text": "村委会录音通知", "villages": ["dongcun"]},
               files={"audio": ("x.mp3", b"not audio", "audio/mpeg")})
    assert r.status_code == 422 and 'data-field="audio"' in r.text
    r = c.post("/compose", data={"csrf": csrf, "text": "村委会录音通知", "villages": ["dongcun"]}, files=rec,
               follow_redirects=False)
    assert r.status_code == 303
    bid = int(re.search(r"/history/(\d+)", r.headers["location"]).group(1))
    created = [e for e in api.audit() if e.action == "broadcast.create" and e.object_id == str(bid)]
    assert len(created) == 1 and len(created[0].detail["upload_sha256"]) == 64  # the recording is kept


def test_a_village_with_two_plays_shows_how_many_played() -> None:
    from broadcaster.web.views import play_state

    assert play_state({"played": 1, "pending": 1}) == {"state": "pending", "played": 1, "total": 2}
    assert play_state({"played": 2}) == {"state": "played", "played": 2, "total": 2}
    assert play_state({"expired": 1, "played": 1})["state"] == "expired"
