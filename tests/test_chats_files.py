"""Files to WeCom group robots (reference §1.2, issue 16): upload_media, then a file message.

The double's side is driven with plain ``requests`` (the wire as any client sends it); the
channel's side through the loopback double, so the upload's multipart, the media_id hand-over and
the vendor's error codes are all exercised for real.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from broadcaster.channels.chats import ChatContext, ChatJob
from broadcaster.channels.chats.dingtalk import DingtalkChannel, DingtalkConfig
from broadcaster.channels.chats.wecom import WecomChannel, WecomConfig
from broadcaster.errors import PermanentError, TransientError
from broadcaster.ledger import Delivery
from tests.conftest import edit_yaml, local
from tests.doubles.chats import DingtalkRobotDouble, WecomRobotDouble
from tests.support.service import MakeService

XLSX = "周报-2026-W48.xlsx"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATA = b"PK\x03\x04" + bytes(range(256)) * 8
CTX = ChatContext("http://127.0.0.1:9/", "东村镇")


def file_job(name: str = XLSX, data: bytes = DATA) -> ChatJob:
    return ChatJob(delivery_id=9, alert_id=4, chat_id="town-wecom", part="file", title="周报", text="",
                   file_name=name, file_data=data)


def wecom(double: WecomRobotDouble, key: str = "k1") -> WecomChannel:
    return WecomChannel(WecomConfig(id="town-wecom", type="wecom", webhook=double.webhook_url(key)), CTX)


@pytest.fixture
def double():
    with WecomRobotDouble(["k1", "k2"], file_limit=4096) as d:
        yield d
    assert d.internal_errors == []


# -- the double speaks upload_media's wire format -----------------------------------------


def test_upload_media_answers_a_media_id_that_a_file_message_then_uses(double: WecomRobotDouble) -> None:
    r = requests.post(double.upload_url("k1"), files={"media": ("report.pdf", b"%PDF-1.7 tiny", "application/pdf")},
                      timeout=5)
    answer = r.json()
    assert r.status_code == 200 and answer["errcode"] == 0 and answer["errmsg"] == "ok" and answer["type"] == "file"
    assert answer["media_id"] and answer["created_at"].isdigit()
    sent = requests.post(double.webhook_url("k1"), json={"msgtype": "file", "file": {"media_id": answer["media_id"]}},
                         timeout=5).json()
    assert sent == {"errcode": 0, "errmsg": "ok"}
    (got,) = double.received_files("k1")
    assert (got.filename, got.content_type, got.data) == ("report.pdf", "application/pdf", b"%PDF-1.7 tiny")


def test_upload_media_reads_the_documented_part_with_filelength_and_a_utf8_filename(double: WecomRobotDouble) -> None:
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="media"; filename="' + XLSX.encode("utf-8")
            + b'"; filelength=' + str(len(DATA)).encode() + b"\r\nContent-Type: " + XLSX_TYPE.encode()
            + b"\r\n\r\n" + DATA + b"\r\n--b0undary--\r\n")
    r = requests.post(double.upload_url("k1"), data=body, timeout=5,
                      headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.json()["errcode"] == 0
    (media,) = double.uploads
    assert (media.filename, media.content_type, media.data) == (XLSX, XLSX_TYPE, DATA)


def test_upload_media_errors_are_the_vendors_codes(double: WecomRobotDouble) -> None:
    def upload(key: str = "k1", kind: str = "file", **kw) -> int:  # type: ignore[no-untyped-def]
        kw.setdefault("files", {"media": ("a.pdf", b"%PDF-1.7", "application/pdf")})
        return requests.post(double.upload_url(key, kind), timeout=5, **kw).json()["errcode"]

    assert upload(key="gone") == 93000  # robot removed
    assert upload(kind="image") == 40004  # only file and voice
    assert upload(kind="voice") == 40004  # voice is AMR only
    assert upload(files={"file": ("a.pdf", b"%PDF-1.7", "application/pdf")}) == 44001  # part must be `media`
    assert upload(files=None, data={"media": "x"}) == 44001  # not multipart
    assert upload(files={"media": ("a.pdf", b"%PDF", "application/pdf")}) == 40006  # under 5 B
    assert upload(files={"media": ("a.pdf", b"x" * 4097, "application/pdf")}) == 40006  # over the limit
    assert double.uploads == []


def test_a_media_id_is_its_own_robots_and_lives_three_days(double: WecomRobotDouble) -> None:
    mid = requests.post(double.upload_url("k1"), files={"media": ("a.pdf", b"%PDF-1.7", "application/pdf")},
                        timeout=5).json()["media_id"]

    def send(key: str, media_id: str = mid) -> int:
        return requests.post(double.webhook_url(key), json={"msgtype": "file", "file": {"media_id": media_id}},
                             timeout=5).json()["errcode"]

    assert send("k2") == 40007 and send("k1", "not-uploaded") == 40007
    double.advance(3 * 24 * 3600 + 1)
    assert send("k1") == 40007
    assert double.messages == []


# -- the WeCom channel sends a file in two steps ------------------------------------------


def test_wecom_channel_uploads_then_sends_the_file_with_its_name_and_type(double: WecomRobotDouble) -> None:
    assert wecom(double).send(file_job()).state == "sent"
    (got,) = double.received_files("k1")
    assert got.filename == XLSX and got.content_type == XLSX_TYPE
    assert got.sha256 == hashlib.sha256(DATA).hexdigest()
    assert [(r.path, r.code) for r in double.requests] == [
        ("/cgi-bin/webhook/upload_media", 0), ("/cgi-bin/webhook/send", 0)]


def test_a_refused_upload_sends_no_message_and_is_retried_or_failed_as_its_code_says(
        double: WecomRobotDouble) -> None:
    ch = wecom(double)
    double.rate_limit_next(1)
    with pytest.raises(TransientError) as busy:
        ch.send(file_job())
    assert busy.value.code == 45009 and busy.value.retry_after == 60.0
    double.fail_next(93004, "robot disabled")
    with pytest.raises(PermanentError) as off:
        ch.send(file_job())
    assert off.value.code == 93004
    assert double.messages == [] and double.uploads == []
    assert ch.send(file_job()).state == "sent"  # the retry uploads again and sends
    assert len(double.received_files()) == 1


def test_a_file_over_twenty_megabytes_is_refused_before_any_request(double: WecomRobotDouble) -> None:
    with pytest.raises(PermanentError, match="20MB"):
        wecom(double).send(file_job(data=b"x" * (20 * 1024 * 1024 + 1)))
    assert double.requests == []


def test_dingtalk_takes_no_files() -> None:
    with DingtalkRobotDouble(["t"]) as d:
        ch = DingtalkChannel(DingtalkConfig(id="cadres-ding", type="dingtalk", webhook=d.webhook_url("t")), CTX)
        with pytest.raises(PermanentError, match="no files"):
            ch.send(file_job())
        assert d.requests == []


# -- the hand-off: one delivery per file, for robots that take files ------------------------


def test_handoff_gives_each_file_its_own_delivery_and_a_vanished_file_fails_alone(
        confdir: Path, make_service: MakeService, tmp_path: Path) -> None:
    from broadcaster.flows.handoff import to_chats

    with WecomRobotDouble(["k1"]) as w, DingtalkRobotDouble(["t"]) as d:
        edit_yaml(confdir / "directory.yaml", lambda data: data.update(chats=[
            {"id": "town-wecom", "type": "wecom", "webhook": w.webhook_url("k1")},
            {"id": "cadres-ding", "type": "dingtalk", "webhook": d.webhook_url("t")}]))
        kept, gone = tmp_path / XLSX, tmp_path / "周报-2026-W48.pdf"
        kept.write_bytes(DATA)
        gone.write_bytes(b"%PDF-1.7 gone")
        svc = make_service(at=local(2026, 11, 27, 15, 0))
        assert to_chats(svc, ["town-wecom", "cadres-ding"], "本周报告", [kept, gone], "http://127.0.0.1:8080/reports",
                        key="report:2026-W48") == ["town-wecom", "cadres-ding"]
        gone.unlink()  # e.g. cleaned up by hand before the robot's turn
        with svc.ledger.reader() as s:
            rows = list(s.scalars(select(Delivery)))
        assert sorted((r.target, r.slot) for r in rows) == [
            ("cadres-ding", "text"), ("town-wecom", "file:周报-2026-W48.pdf"),
            ("town-wecom", "file:周报-2026-W48.xlsx"), ("town-wecom", "text")]
        assert svc.dispatcher.drain([rows[0].alert_id], timeout=30)
        with svc.ledger.reader() as s:
            states = {r.slot if r.target == "town-wecom" else r.target: (r.state, r.last_error)
                      for r in s.scalars(select(Delivery))}
        assert states["file:周报-2026-W48.pdf"][0] == "failed" and "文件不见了" in states["file:周报-2026-W48.pdf"][1]
        assert {k: v[0] for k, v in states.items() if k != "file:周报-2026-W48.pdf"} == {
            "text": "sent", "file:周报-2026-W48.xlsx": "sent", "cadres-ding": "sent"}
        assert [m.filename for m in w.received_files("k1")] == [XLSX] and len(d.messages) == 1
        assert "附件 / files: 周报-2026-W48.xlsx、周报-2026-W48.pdf" in d.messages[0].text


def test_a_long_file_name_still_fits_the_ledgers_slot() -> None:
    from broadcaster.flows.handoff import file_slot

    long = file_slot("周报-" + "很长" * 30 + ".pdf")
    assert len(long) <= 40 and long.startswith("file:") and long.endswith(".pdf")
    assert file_slot("周报-2026-11-23_2026-11-24.xlsx") == "file:周报-2026-11-23_2026-11-24.xlsx"
