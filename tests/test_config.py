"""broadcaster check: every shipped config is valid; each broken copy exits 2 naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.cli import main
from tests.conftest import ROOT, edit_yaml

PROD_ENV = {
    "BROADCASTER_DATABASE_URL": "postgresql://broadcaster@db/broadcaster",
    "CO_FEED_URL": "https://feed.example.invalid/co.json",
    "CO_FEED_TOKEN": "feedtoken123",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "secret-token",
    "BROADCASTER_PUBLIC_URL": "https://broadcaster.example.invalid",
    "DONGCUN_IP_TOKEN": "ip-token-123",
    "XICUN_AGENT_TOKEN": "agent-token-0123456789",
    "QWEATHER_KEY": "qkey",
    "QWEATHER_API_HOST": "http://127.0.0.1:9",
    "OPEN_METEO_BASE_URL": "http://127.0.0.1:9",
    "SMTP_PASSWORD": "smtp-secret",
    "ALIYUN_ACCESS_KEY_ID": "ali-ak",
    "ALIYUN_ACCESS_KEY_SECRET": "ali-secret",
    "ALIYUN_RECEIPT_TOKEN": "ali-receipt-token-0123456789",
    "TENCENT_SECRET_ID": "tc-sid",
    "TENCENT_SECRET_KEY": "tc-skey",
    "TENCENT_RECEIPT_TOKEN": "tc-receipt-token-0123456789",
}


def shipped_configs() -> list[Path]:
    main_files = [ROOT / "config" / "broadcaster.yaml", ROOT / "config" / "production.example.yaml"]
    return main_files + sorted((ROOT / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for k, v in PROD_ENV.items():
        monkeypatch.setenv(k, v)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err


def run_check(confdir: Path, capsys) -> tuple[int, str]:
    code = main(["check", "-c", str(confdir / "broadcaster.yaml")])
    return code, capsys.readouterr().err


def test_yaml_syntax_error(confdir: Path, capsys) -> None:
    p = confdir / "rules.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("rules:\n", "rules: [\n", 1), encoding="utf-8")
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "rules.yaml: line " in err and "YAML syntax error" in err


def test_unknown_group_in_rule(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0]["sms"].update(groups=["cadres", "farmers"]))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "rules.yaml: rules[0].sms.groups: unknown group 'farmers'" in err


def test_invalid_phone_number(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "directory.yaml", lambda d: d["contacts"][1].update(phone="1440000000"))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "directory.yaml: contacts[1].phone: 李四:" in err and "not a valid" in err


def test_unset_variable(confdir: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    edit_yaml(confdir / "directory.yaml",
              lambda d: d["villages"][0]["speakers"].append({"id": "dongcun-ip", "type": "http",
                                                              "url": "http://127.0.0.1:1/play",
                                                              "token": "${NO_SUCH_TOKEN_VAR}"}))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "directory.yaml: villages[0].speakers[1].token: environment variable NO_SUCH_TOKEN_VAR is not set" in err


def test_unknown_template_placeholder(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "rules.yaml", lambda d: d["templates"].update(sms_warn="{town}今晚{levle}级"))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "rules.yaml: templates: sms_warn: unknown placeholder {levle}" in err


def test_duplicate_village_id(confdir: Path, capsys) -> None:
    def dup(d):  # type: ignore[no-untyped-def]
        d["villages"][2]["id"] = "dongcun"
        d["villages"][2]["speakers"][0]["id"] = "dongcun-dir2"

    edit_yaml(confdir / "directory.yaml", dup)
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "directory.yaml: villages[2].id: duplicate village id 'dongcun'" in err


@pytest.mark.parametrize("bad", ["25:00", "7pm", "17.30"])
def test_bad_time_string(confdir: Path, capsys, bad: str) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(polls=["16:30", bad]))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "broadcaster.yaml: schedule.polls[1]:" in err and "HH:MM" in err


def test_unquoted_sexagesimal_time_gets_a_hint(confdir: Path, capsys) -> None:
    p = confdir / "broadcaster.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace('deadline: "17:30"', "deadline: 17:30"), encoding="utf-8")
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert 'broadcaster.yaml: schedule.deadline: write the time in quotes, e.g. "17:30"' in err


def test_unknown_key_and_several_problems_at_once(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["sms"].update(rate_per_second=5))
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0]["speakers"].update(villages=["beicun"]))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "broadcaster.yaml: sms.rate_per_second: unknown key" in err


def test_long_template_warns_about_segments(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "rules.yaml", lambda d: d["templates"].update(sms_warn="{town}" + "请注意通风。" * 30))
    code, err = run_check(confdir, capsys)
    assert code == 0
    assert "warning: " in err and "templates.sms_warn: renders to" in err and "SMS segments" in err


def test_unknown_feed_type_and_bad_level(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=7))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "broadcaster.yaml: feed.level:" in err
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(feed={"type": "carrier-pigeon"}))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "broadcaster.yaml: feed.type: unknown feed source type 'carrier-pigeon'" in err


def test_builtin_agent_takes_no_secret(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "directory.yaml", lambda d: d["villages"][2]["speakers"].append(
        {"id": "nancun-room", "type": "agent", "builtin": True, "token_sha256": "0" * 64}))
    code, err = run_check(confdir, capsys)
    assert code == 2
    assert "directory.yaml: villages[2].speakers[1]" in err and "built-in agent takes no `token`" in err


def test_player_only_for_builtin_agents(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "directory.yaml", lambda d: d["villages"][2]["speakers"].append(
        {"id": "nancun-room", "type": "agent", "token_sha256": "0" * 64, "player": "aplay {file}"}))
    code, err = run_check(confdir, capsys)
    assert code == 2 and "for built-in agents only" in err
