"""An admin clears an unreachable flag, audited (issue 18, item 10): ``broadcaster number
list|clear`` and the button on the console's villages page; the number is tried again at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broadcaster.auth.accounts import Accounts
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.flows.manual import BroadcastRequest, Broadcasts
from broadcaster.ledger import ContactFlag
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from tests.conftest import local
from tests.test_console import sign_in

NOW = local(2026, 11, 28, 10, 0)
PHONE = "+8613800138000"  # 张三 in the shipped directory, in the cadres group


@pytest.fixture
def svc(confdir: Path) -> Iterator[Service]:
    s = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    with s.ledger.session() as db:
        db.add(ContactFlag(phone=PHONE, unreachable=True, reason="30006 运营商不可达", updated_at=NOW))
    yield s
    s.close()


def _held(svc: Service) -> list[str]:
    bc = Broadcasts(svc)
    bid = bc.create(BroadcastRequest("测试", [], ["cadres"]), "alice")["id"]
    bc.approve(bid, "carol")
    return bc.get(bid)["held"]


def test_the_cli_lists_and_clears_a_flag_and_audits_it(
        svc: Service, confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert any("运营商不可达" in h for h in _held(svc))
    assert main(["number", "list", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert "138****8000" in out and "30006 运营商不可达" in out and "2026-11-28 10:00" in out
    assert PHONE not in out  # masked
    assert main(["number", "clear", "-c", cfg, "+86 138-0013-8000"]) == 0
    assert "已清除不可达标记" in capsys.readouterr().out
    assert svc.unreachable() == {}
    assert not _held(svc)  # tried again at once
    entry = [e for e in svc.ledger.reads.audit_page(0, 50)[0] if e.action == "contact.unflag"]
    assert len(entry) == 1 and entry[0].actor.startswith("cli:")
    assert entry[0].detail == {"phone": "138****8000", "reason": "30006 运营商不可达"}
    assert PHONE not in str(entry[0].detail) and PHONE not in (entry[0].object_id or "")
    # Nothing left to clear: exit 1 saying so; not a number at all: exit 2 naming it.
    assert main(["number", "clear", "-c", cfg, PHONE]) == 1
    assert "没有不可达标记" in capsys.readouterr().err
    assert main(["number", "clear", "-c", cfg, "13800"]) == 2
    assert "phone" in capsys.readouterr().err


def test_an_admin_clears_a_flag_from_the_villages_page(svc: Service) -> None:
    accounts = Accounts(svc.ledger)
    accounts.add_user("小李", "operator", "xiaoli-pass", NOW)
    accounts.add_user("管理员", "admin", "admin-pass", NOW)
    app = create_app(svc)
    op, admin = TestClient(app), TestClient(app)
    op_csrf = sign_in(op, "小李", "xiaoli-pass")
    page = op.get("/villages").text
    assert "138****8000" in page and "name=\"key\"" not in page  # operators see flags, cannot clear them
    csrf = sign_in(admin, "管理员", "admin-pass")
    page = admin.get("/villages").text
    key = re.search(r'name="key" value="([0-9a-f]+)"', page).group(1)
    assert PHONE not in page
    assert op.post("/villages/unreachable/clear", data={"csrf": op_csrf, "key": key}).status_code == 403
    assert admin.post("/villages/unreachable/clear", data={"csrf": "forged", "key": key}).status_code == 403
    assert svc.unreachable() == {PHONE: "30006 运营商不可达"}
    r = admin.post("/villages/unreachable/clear", data={"csrf": csrf, "key": key})
    assert r.status_code == 200 and "已清除不可达标记" in r.text and "138****8000" not in r.text
    assert svc.unreachable() == {}
    assert any(e.action == "contact.unflag" and e.actor == "管理员" for e in svc.ledger.reads.audit_page(0, 50)[0])
    again = admin.post("/villages/unreachable/clear", data={"csrf": csrf, "key": key})
    assert "没有这个不可达标记" in again.text
