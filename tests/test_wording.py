"""Chinese first wherever a person reads (issue 19, item 2): configuration checks, CLI errors,
API error details, ``status`` and the audit page."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.errors import ConfigError
from broadcaster.ledger import Alert
from broadcaster.wording import starts_chinese, zh_first
from tests.conftest import edit_yaml, local
from tests.test_api import BODY, START, Api, make_api
from tests.test_console import browser, sign_in


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """``main`` points the root logger at this test's captured stderr; put it back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    Accounts(a.svc.ledger).add_user("管理员", "admin", "admin-pass", START)
    yield a
    a.svc.close()


def test_every_check_error_starts_in_chinese_and_keeps_file_key_and_english(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(levle=3))
    edit_yaml(confdir / "directory.yaml", lambda d: (d["contacts"][0].update(phone="1390013900"),
                                                      d["contacts"][1].update(groups=["nosuch"])))
    with pytest.raises(ConfigError) as err:
        load_config(confdir / "broadcaster.yaml")
    shown = [str(p) for p in err.value.problems]
    # Chinese first, then the file and key, then the message as the code wrote it.
    assert any(re.fullmatch(r"未知的配置项（拼写错误？）：\S*broadcaster\.yaml: feed\.levle: unknown key", x) for x in shown), shown
    assert any(re.fullmatch(r"不是有效的手机号码：1390013900（张三）：\S*directory\.yaml: contacts\[0\]\.phone: "
                            r"张三: '1390013900' is not a valid phone number", x) for x in shown), shown
    assert all(starts_chinese(x) for x in shown)

    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 2
    lines = [ln.strip() for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines[0].startswith("配置有误") and len(lines) == 3, lines
    assert all(starts_chinese(ln) and ".yaml: " in ln for ln in lines[1:]), lines


def test_cli_errors_start_in_chinese(confdir: Path, capsys) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["simulate", "--level", "9", "-c", cfg]) == 2
    assert capsys.readouterr().err.startswith("参数错误：--level：应为 1 到 5")
    with pytest.raises(SystemExit) as ex:
        main(["simulate", "--level", "high", "-c", cfg])
    err = capsys.readouterr().err.splitlines()[-1]
    assert ex.value.code == 2 and starts_chinese(err) and "--level" in err and "high" in err
    with pytest.raises(SystemExit):
        main(["broadcast"])  # a required argument missing
    assert starts_chinese(capsys.readouterr().err.splitlines()[-1])
    assert main(["broadcast", "--text", "通知", "--villages", "dongcun", "--all", "-c", cfg]) == 2
    assert starts_chinese(capsys.readouterr().err)


def test_api_error_details_start_in_chinese(api: Api) -> None:
    details = [
        api.get("/api/v1/status", None).json()["detail"],                      # 401 without a token
        api.client.get("/api/v1/status", headers={"Authorization": "Bearer nope"}).json()["detail"],
        api.post("/api/v1/broadcasts/upload", None, data={"text": "x"}).json()["detail"],  # 401 in the body guard
        api.get("/api/v1/broadcasts/999").json()["detail"],                    # 404
        api.post("/api/v1/broadcasts/1/approve", "alice").json()["detail"],    # 403 role (or 404)
        api.get("/api/v1/agent/commands", "alice").json()["detail"],           # 403 not an agent
        api.post("/api/v1/broadcasts", json={**BODY, "villages": ["nowhere"]}).json()["detail"]["message"],
    ]
    assert all(isinstance(d, str) and starts_chinese(d) for d in details), details
    assert details[0].startswith("缺少或无效的访问令牌")


def test_status_prints_states_in_chinese_with_village_names(api: Api, capsys) -> None:
    api.svc.poll()
    with api.svc.ledger.reader() as s:
        ids = list(s.scalars(select(Alert.id)))
    api.svc.dispatcher.drain(ids)
    r = api.post("/api/v1/broadcasts", json={**BODY, "repeat": 1})
    api.post(f"/api/v1/broadcasts/{r.json()['id']}/approve", "carol")
    api.svc.dispatcher.drain([r.json()["id"]])
    with time_machine.travel(local(2026, 11, 28, 17, 43), tick=False):
        assert main(["status", "-c", str(api.confdir / "broadcaster.yaml")]) == 0
    out = capsys.readouterr().out
    assert "自动4 级预警 #1: 已排期" in out or "自动4 级预警 #1: 已完成" in out, out
    assert "人工广播 #2: 已完成" in out and " 级 " not in out.split("人工广播")[1].splitlines()[0]
    assert "东村 dongcun-dir: 已发出 定于 2026-11-28 19:30" in out
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", out) and "dispatching" not in out and "scheduled" not in out


def test_audit_page_reads_in_words(api: Api) -> None:
    api.svc.poll()
    r = api.post("/api/v1/broadcasts", json={**BODY, "repeat": 1})
    api.post(f"/api/v1/broadcasts/{r.json()['id']}/approve", "carol")
    api.get("/api/v1/status", None)  # an audited failure
    c = browser(api)
    sign_in(c, "管理员", "admin-pass")
    html = c.get("/audit").text
    table = html.split('data-testid="audit"', 1)[1].split("</table>", 1)[0]
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)]
    assert cells
    for cell in cells:
        assert not re.search(r"\[['\"]|=None|\{'|\b[a-z_]+\.[a-z_]+\b(?!\.)", cell.replace("&#39;", "'")), cell
    text = " ".join(cells)
    assert "审批通过广播" in text and "人工广播 #2" in text and "自动预警 #1" in text and "登录控制台" in text
    assert "村：东村、西村" in text and "访问令牌无效" in text


def test_the_catalogue_puts_chinese_first() -> None:
    assert zh_first("missing or invalid bearer token") == "缺少或无效的访问令牌 / missing or invalid bearer token"
    assert zh_first("已是中文 / already") == "已是中文 / already"
    assert zh_first("something new") == "出错了 / something new"
