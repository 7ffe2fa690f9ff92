"""Plugins (DESIGN A9): every built-in is an entry point, the loader finds types only through
them, and the example package of docs/plugins.md (tests/plugin_example, installed by
``make test``) is configured, sends, maps its errors and takes its receipts like a built-in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from broadcaster import plugins
from broadcaster.config import load_config
from broadcaster.errors import ConfigError
from broadcaster.ledger import AuditEntry, ContactFlag, Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from tests.conftest import ROOT, edit_yaml, local
from tests.doubles.server import LoopbackDouble, Request, Response

BUILTINS = {
    "broadcaster.feeds": {"demo", "file", "http-json", "qweather", "open-meteo"},
    "broadcaster.sms": {"outbox", "twilio"},
    "broadcaster.speakers": {"agent", "folder", "http", "mqtt"},
    "broadcaster.tts": {"espeak", "command"},
}


def test_every_builtin_is_an_entry_point_of_its_group() -> None:
    for group, names in BUILTINS.items():
        found = {ep.name: ep.value for ep in entry_points(group=group)}
        assert names <= set(found), (group, found)
        for name in names:
            assert found[name].startswith("broadcaster."), found[name]
            cls = plugins.get(group.split(".")[1], name)
            assert cls.type == name and hasattr(cls, "Config")
    assert {"broadcaster.chats", "broadcaster.displays"} <= set(plugins.GROUPS.values())


def test_the_example_plugin_is_installed_and_documented() -> None:
    assert plugins.get("sms", "county-gateway").__module__ == "broadcaster_example_sms"
    # docs/plugins.md shows the example's code as it is (docs tested, datasette-style).
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", doc, re.S)
    for path in ("broadcaster_example_sms/__init__.py", "pyproject.toml"):
        code = (ROOT / "tests" / "plugin_example" / path).read_text(encoding="utf-8")
        assert code in blocks, f"docs/plugins.md does not show {path} as it is"


# ------------------------------------------------------------------ the example, end to end

GATEWAY_TOKEN = "gw-secret-token-1"
RECEIPT_TOKEN = "receipt-token-9f2c"


class CountyGatewayDouble(LoopbackDouble):
    """The county gateway of the example: ``POST /send`` JSON, bearer token, ``{"code", "id"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, str]] = []
        self.script: dict[str, list[Response]] = {}  # number -> answers to give first

    def handle(self, req: Request) -> Response:
        if req.path != "/send" or req.method != "POST":
            return Response.json(404, {"code": 404})
        if req.header("authorization") != f"Bearer {GATEWAY_TOKEN}":
            return Response.json(401, {"code": 401, "msg": "bad token"})
        body = json.loads(req.body)
        queued = self.script.get(body["to"])
        if queued:
            return queued.pop(0)
        self.sent.append(body)
        return Response.json(200, {"code": 0, "id": f"gw-{len(self.sent)}"})


@pytest.fixture
def gateway(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, CountyGatewayDouble]]:
    monkeypatch.setenv("GATEWAY_TOKEN", GATEWAY_TOKEN)
    monkeypatch.setenv("GATEWAY_RECEIPT_TOKEN", RECEIPT_TOKEN)
    with CountyGatewayDouble() as double:
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(sms={
            "provider": "county-gateway", "rate_per_s": 100,
            "county-gateway": {"url": double.url, "token": "${GATEWAY_TOKEN}",
                               "receipt_token": "${GATEWAY_RECEIPT_TOKEN}", "timeout_s": 5}}))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 28, 16, 30)))
        try:
            yield svc, double
        finally:
            svc.close()


def sms_rows(svc: Service) -> dict[str, Delivery]:
    with svc.ledger.reader() as s:
        return {d.target: d for d in s.scalars(select(Delivery).where(Delivery.channel == "sms"))}


def test_the_example_plugin_sends_maps_errors_and_takes_receipts(gateway) -> None:  # type: ignore[no-untyped-def]
    svc, double = gateway
    assert svc.sms.type == "county-gateway"
    double.script = {"+8613800138000": [Response.json(503, {"code": 503})],  # transient: retried
                     "+8613900139001": [Response.json(200, {"code": 1001, "msg": "no such number"})]}
    report = svc.poll()
    svc.dispatcher.drain([report.alert_id])
    rows = sms_rows(svc)
    assert rows["+8613900139001"].state == "failed" and "1001" in (rows["+8613900139001"].last_error or "")
    assert rows["+8615000150002"].state == "sent" and rows["+8613800138000"].state == "pending"
    svc.clock.set(rows["+8613800138000"].due_at)  # the retry is due
    svc.dispatcher.drain([report.alert_id])
    rows = sms_rows(svc)
    assert rows["+8613800138000"].state == "sent" and rows["+8613800138000"].attempts == 2
    assert sorted(m["to"] for m in double.sent) == ["+8613800138000", "+8615000150002"]
    assert all(m["text"].startswith("【XX镇文化站】") for m in double.sent)

    client = TestClient(create_app(svc))
    url = "/api/v1/sms/county-gateway/receipts/"
    delivered = {"id": rows["+8615000150002"].provider_id, "to": "+8615000150002", "status": "DELIVRD"}
    r = client.post(url + RECEIPT_TOKEN, json=delivered)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert sms_rows(svc)["+8615000150002"].state == "delivered"
    # The gateway's "no such number" in a report marks the number unreachable, with the reason.
    undeliv = {"id": rows["+8613800138000"].provider_id, "to": "+8613800138000", "status": "UNDELIV", "err": 1001}
    assert client.post(url + RECEIPT_TOKEN, json=undeliv).status_code == 200
    assert sms_rows(svc)["+8613800138000"].state == "failed"
    with svc.ledger.reader() as s:
        assert "号码不存在" in s.get(ContactFlag, "+8613800138000").reason
    # A wrong token: 403, nothing changes, and it is audited.
    again = {**delivered, "id": rows["+8613800138000"].provider_id, "to": "+8613800138000"}
    assert client.post(url + "wrong-token", json=again).status_code == 403
    assert sms_rows(svc)["+8613800138000"].state == "failed"
    with svc.ledger.reader() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "receipt.bad_signature")).first()


@pytest.mark.parametrize(("section", "expected"), [
    ({"url": "http://127.0.0.1:9", "token": "t", "receipt_token": "r", "tmeout_s": 3},
     "broadcaster.yaml: sms.county-gateway.tmeout_s: unknown key"),
    ({"token": "t", "receipt_token": "r"}, "broadcaster.yaml: sms.county-gateway.url: required key is missing"),
    ({"url": "ftp://x", "token": "t", "receipt_token": "r"}, "broadcaster.yaml: sms.county-gateway.url: "),
])
def test_a_plugins_config_errors_name_file_and_key(confdir: Path, section: dict, expected: str) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(sms={"provider": "county-gateway",
                                                                     "county-gateway": section}))
    with pytest.raises(ConfigError) as err:
        load_config(confdir / "broadcaster.yaml")
    assert any(str(p).endswith(expected) or expected in str(p) for p in err.value.problems), err.value.problems


def test_unknown_plugin_names_are_errors_naming_the_installed_ones(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: (d["sms"].update(provider="aliyunn"),
                                                        d["audio"].update(tts="festival"),
                                                        d["sms"].update(twillio={})))
    with pytest.raises(ConfigError) as err:
        load_config(confdir / "broadcaster.yaml")
    text = "\n".join(map(str, err.value.problems))
    assert "sms.provider: unknown SMS provider 'aliyunn'; installed:" in text and "county-gateway" in text
    assert "audio.tts: unknown speech engine 'festival'; installed: aliyun, command, espeak, tencent" in text
    assert "sms.twillio: unknown key" in text
