"""The public outputs (DESIGN A12): ``/public`` for everyone (no sign-in, phone-sized, cached, and
nothing about people, numbers, tokens or endpoints), tonight's poster, CAP 1.2 messages that
validate against the OASIS XSD (an escalation as an Update referencing the earlier alert) and
their Atom feed; the operator's poster of any alert needs a sign-in."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from lxml import etree
from PIL import Image

from broadcaster.config import load_config
from tests.conftest import edit_yaml, local
from tests.test_api import Api, make_api

HERE = Path(__file__).parent
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
SECRETS = {"WECOM_WEBHOOK": "http://127.0.0.1:9/cgi-bin/webhook/send?key=wecom-key-9f8e7d",
           "DING_SECRET": "SECsecret-ding-0123456789", "LED_TOKEN": "led-token-abcdef"}


@pytest.fixture
def api(confdir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)

    def directory(d: dict) -> None:
        d["chats"] = [{"id": "town-wecom", "type": "wecom", "webhook": "${WECOM_WEBHOOK}"},
                      {"id": "cadres-ding", "type": "dingtalk",
                       "webhook": "http://127.0.0.1:9/robot/send?access_token=ding-tok-42", "secret": "${DING_SECRET}"}]
        for v in d["villages"]:
            v["speakers"] = []
            v["displays"] = [{"id": f"{v['id']}-led", "type": "http", "url": f"http://127.0.0.1:9/{v['id']}",
                              "token": "${LED_TOKEN}"}]
    edit_yaml(confdir / "directory.yaml", directory)
    edit_yaml(confdir / "rules.yaml", lambda d: [r.pop("speakers", None) for r in d["rules"]])
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(public={"hotline": "0312-12345"}))
    a = make_api(confdir)
    a.clock.set(local(2026, 11, 28, 17, 0))
    yield a
    a.svc.close()


def forbidden_strings(confdir: Path) -> list[str]:
    """Every person's name and number, and every token, secret and endpoint of the configuration."""
    cfg = load_config(confdir / "broadcaster.yaml")
    out = list(SECRETS.values()) + ["ding-tok-42", "127.0.0.1:9"]
    for c in cfg.directory.contacts:
        out += [c.name, c.phone, c.phone.removeprefix("+86")]
    for cid, ch in cfg.chats.items():
        out += [ch.webhook]
    for did, (_v, dc) in cfg.displays.items():
        out += [dc.url, dc.token, did]
    raw = yaml.safe_load((confdir / "directory.yaml").read_text(encoding="utf-8"))
    out += [c["name"] for c in raw["contacts"]]
    return out


def test_public_page_for_everyone_without_people_or_endpoints(api: Api) -> None:
    empty = api.get("/public", who=None)
    assert empty.status_code == 200 and "今晚暂无一氧化碳中毒气象预警" in empty.text
    report = api.svc.poll()
    assert report.created
    fresh = make_fresh(api)  # the page is remade at most every 10 s: a fresh app sees the alert at once
    r = fresh.get("/public")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "4级" in page and "容易发生" in page and "#EF6C00" in page
    assert 'src="/public/poster.png"' in page and "0312-12345" in page  # the configured public hotline
    for s in forbidden_strings(api.confdir):
        assert s not in page, f"/public shows {s!r}"
    assert not re.search(r"1[3-9]\d{9}", page)  # no mobile number of any kind
    assert r.headers["cache-control"] == "public, max-age=60"
    again = fresh.get("/public", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    png = fresh.get("/public/poster.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(png.content))
    assert img.format == "PNG" and img.width >= 720


def make_fresh(api: Api):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from broadcaster.web.app import create_app
    return TestClient(create_app(api.svc))


def test_operator_poster_needs_a_sign_in(api: Api) -> None:
    aid = api.svc.poll().alert_id
    assert api.get(f"/api/v1/alerts/{aid}/poster.png", who=None).status_code == 401
    r = api.get(f"/api/v1/alerts/{aid}/poster.png")
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert api.get("/api/v1/alerts/999/poster.png").status_code == 404


def test_cap_messages_validate_and_escalation_is_an_update(api: Api, confdir: Path) -> None:
    schema = etree.XMLSchema(etree.parse(str(HERE / "cap" / "CAP-v1.2.xsd")))
    first = api.svc.poll().alert_id
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=5))
    api.svc.close()
    api2 = make_api(confdir)
    try:
        api2.clock.set(local(2026, 11, 28, 18, 0))
        second = api2.svc.poll().alert_id
        assert second != first
        msgs = {}
        for aid in (first, second):
            r = api2.get(f"/public/cap/{aid}.xml", who=None)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/cap+xml")
            doc = etree.fromstring(r.content)
            schema.assertValid(doc)
            msgs[aid] = doc
        one, two = msgs[first], msgs[second]
        assert one.findtext(f"{CAP}msgType") == "Alert"
        assert one.findtext(f"{CAP}info/{CAP}severity") == "Severe"
        assert two.findtext(f"{CAP}msgType") == "Update"
        assert two.findtext(f"{CAP}info/{CAP}severity") == "Extreme"
        ref = two.findtext(f"{CAP}references")
        assert ref == ",".join([one.findtext(f"{CAP}sender"), one.findtext(f"{CAP}identifier"),
                                one.findtext(f"{CAP}sent")])
        assert two.findtext(f"{CAP}info/{CAP}expires") == "2026-11-29T08:00:00+08:00"
        assert two.findtext(f"{CAP}info/{CAP}language") == "zh-CN"

        feed = etree.fromstring(api2.get("/public/cap.atom", who=None).content)
        links = [e.find(f"{ATOM}link[@type='application/cap+xml']").get("href") for e in feed.findall(f"{ATOM}entry")]
        assert [link.rsplit("/", 1)[1] for link in links] == [f"{second}.xml", f"{first}.xml"]
        assert api2.get("/public/cap/999.xml", who=None).status_code == 404
    finally:
        api2.svc.close()
