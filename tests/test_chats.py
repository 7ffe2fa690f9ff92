"""Group-chat robots (DESIGN A12) against their loopback doubles, which check signatures and the
WeCom image md5 the way the vendors do: success is read from the body's code, rate limits are
retried after the vendor's wait, a bad signature is permanent with the robot's own message, and
each robot keeps to 20 messages a minute on its own side."""

from __future__ import annotations

import base64
import hashlib

import pytest

from broadcaster.channels.chats import ChatContext, ChatJob
from broadcaster.channels.chats.dingtalk import DingtalkChannel, DingtalkConfig
from broadcaster.channels.chats.feishu import FeishuChannel, FeishuConfig
from broadcaster.channels.chats.wecom import WecomChannel, WecomConfig
from broadcaster.errors import PermanentError, TransientError
from tests.doubles.chats import DingtalkRobotDouble, FeishuRobotDouble, Robot, WecomRobotDouble

DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
FEISHU_SECRET = "fs-secret-value"
CTX = ChatContext("http://127.0.0.1:9/", "东村镇")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def job(part: str = "text", level: int | None = 4, **kw) -> ChatJob:  # type: ignore[no-untyped-def]
    base = dict(delivery_id=7, alert_id=3, chat_id="c", part=part,
                title="东村镇一氧化碳中毒气象预警 4级（容易发生）",
                text="今晚一氧化碳中毒气象条件4级，请开窗通风，检查烟道。", level=level,
                colour="#EF6C00", link="http://127.0.0.1:9/public", image=PNG if part == "image" else None)
    base.update(kw)
    return ChatJob(**base)  # type: ignore[arg-type]


def wecom(double: WecomRobotDouble, key: str = "k1") -> WecomChannel:
    return WecomChannel(WecomConfig(id="town-wecom", type="wecom", webhook=double.webhook_url(key)), CTX)


def ding(double: DingtalkRobotDouble, token: str = "signed", secret: str | None = DING_SECRET) -> DingtalkChannel:
    return DingtalkChannel(DingtalkConfig(id="cadres-ding", type="dingtalk", webhook=double.webhook_url(token),
                                          secret=secret), CTX)


def feishu(double: FeishuRobotDouble, token: str = "signed", secret: str | None = FEISHU_SECRET) -> FeishuChannel:
    return FeishuChannel(FeishuConfig(id="ops-feishu", type="feishu", webhook=double.webhook_url(token),
                                      secret=secret), CTX)


def test_wecom_markdown_then_poster_image_with_md5() -> None:
    with WecomRobotDouble(["k1"]) as double:
        ch = wecom(double)
        assert ch.send(job()).state == "sent"
        assert ch.send(job("image")).state == "sent"
        md, img = double.messages
        assert md.msgtype == "markdown"
        content = md.body["markdown"]["content"]
        assert content.startswith('### <font color="warning">东村镇一氧化碳中毒气象预警 4级（容易发生）</font>')
        assert "请开窗通风" in content and "(http://127.0.0.1:9/public)" in content
        # The double accepted the image only because base64 and md5 agree on the decoded bytes.
        assert img.msgtype == "image"
        assert base64.b64decode(img.body["image"]["base64"]) == PNG
        assert img.body["image"]["md5"] == hashlib.md5(PNG).hexdigest()
        assert double.internal_errors == []


def test_wecom_rate_limit_code_is_retried_after_a_minute_then_succeeds() -> None:
    with WecomRobotDouble(["k1"]) as double:
        ch = wecom(double)
        double.rate_limit_next(1)
        with pytest.raises(TransientError) as exc:
            ch.send(job())
        assert exc.value.code == 45009 and exc.value.retry_after == 60.0
        assert ch.send(job()).state == "sent"
        assert len(double.messages) == 1


def test_wecom_removed_robot_is_permanent() -> None:
    with WecomRobotDouble(["k1"]) as double:
        with pytest.raises(PermanentError) as exc:
            wecom(double, key="gone").send(job())
        assert exc.value.code == 93000
        assert double.messages == []


def test_dingtalk_signed_markdown_accepted() -> None:
    with DingtalkRobotDouble([Robot("signed", secret=DING_SECRET)]) as double:
        assert ding(double).send(job()).state == "sent"
        (msg,) = double.messages
        assert msg.msgtype == "markdown"
        md = msg.body["markdown"]
        assert md["title"] == "东村镇一氧化碳中毒气象预警 4级（容易发生）"
        assert md["text"].startswith('#### <font color="#EF6C00">') and "请开窗通风" in md["text"]


def test_dingtalk_bad_signature_is_permanent_with_the_robots_message() -> None:
    with DingtalkRobotDouble([Robot("signed", secret=DING_SECRET)]) as double:
        with pytest.raises(PermanentError) as exc:
            ding(double, secret="SECwrong").send(job())
        assert exc.value.code == 310000
        assert "sign not match" in str(exc.value)
        assert double.messages == []


def test_dingtalk_rate_limit_waits_the_ten_minute_block_then_succeeds() -> None:
    with DingtalkRobotDouble([Robot("signed", secret=DING_SECRET)]) as double:
        ch = ding(double)
        double.rate_limit_next(1)
        with pytest.raises(TransientError) as exc:
            ch.send(job())
        assert exc.value.code == 130101 and exc.value.retry_after == 600.0
        assert ch.send(job()).state == "sent"


def test_feishu_signed_card_in_the_levels_colour() -> None:
    with FeishuRobotDouble([Robot("signed", secret=FEISHU_SECRET)]) as double:
        assert feishu(double).send(job(level=5)).state == "sent"
        (msg,) = double.messages
        assert msg.msgtype == "interactive"
        card = msg.body["card"]
        assert card["header"]["template"] == "red"
        assert "请开窗通风" in msg.text


def test_feishu_bad_signature_and_rate_limit() -> None:
    with FeishuRobotDouble([Robot("signed", secret=FEISHU_SECRET)]) as double:
        with pytest.raises(PermanentError) as exc:
            feishu(double, secret="wrong").send(job())
        assert exc.value.code == 19021 and "sign match fail" in str(exc.value)
        ch = feishu(double)
        double.rate_limit_next(1)
        with pytest.raises(TransientError) as t:
            ch.send(job())
        assert t.value.code == 11232 and t.value.retry_after == 60.0
        assert ch.send(job()).state == "sent"
        assert len(double.messages) == 1


def test_at_most_twenty_messages_a_minute_per_robot() -> None:
    with DingtalkRobotDouble([Robot("signed", secret=DING_SECRET)]) as double:
        ch = ding(double)
        clock = [1000.0]
        ch.window._clock = lambda: clock[0]  # the robot's own window, on a test clock
        for _ in range(20):
            ch.send(job())
        with pytest.raises(TransientError) as exc:
            ch.send(job())
        assert exc.value.code == "rate_local" and 59 < exc.value.retry_after <= 60
        assert len(double.requests) == 20  # the 21st never reached the robot (it would block for 10 min)
        assert double.rejected() == []
        clock[0] += 60.5
        double.advance(60.5)
        assert ch.send(job()).state == "sent"
        assert len(double.messages) == 21


def test_images_only_where_the_robot_takes_them() -> None:
    with DingtalkRobotDouble([Robot("signed", secret=DING_SECRET)]) as double:
        with pytest.raises(PermanentError):
            ding(double).send(job("image"))
        assert double.requests == []


def test_bad_chat_and_display_configuration_names_file_and_key(confdir, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from broadcaster.cli import main
    from tests.conftest import edit_yaml

    monkeypatch.delenv("DING_SECRET", raising=False)

    def directory(d: dict) -> None:
        d["chats"] = [{"id": "town-wechat", "type": "wechat", "webhook": "http://127.0.0.1:9/x"},
                      {"id": "cadres-ding", "type": "dingtalk", "webhook": "not-a-url", "secret": "${DING_SECRET}"}]
        d["villages"][0]["displays"] = [{"id": "dongcun-led", "type": "http", "url": "http://127.0.0.1:9/show"}]
    edit_yaml(confdir / "directory.yaml", directory)
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0].update(
        chats={"ids": ["cadres-ding", "nobody"], "template": "sms_warn"},
        displays={"villages": ["dongcun"], "template": "missing", "until": "08:00"}))
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 2
    err = capsys.readouterr().err
    assert "directory.yaml: chats[0].type: unknown chat robot type 'wechat'; installed: dingtalk, feishu, wecom" in err
    assert "directory.yaml: chats[1].webhook" in err
    assert "directory.yaml: chats[1].secret: environment variable DING_SECRET is not set" in err
    assert "directory.yaml: villages[0].displays[0].token" in err
    assert "rules.yaml: rules[0].chats.ids: 未知的群 / unknown chat 'nobody'" in err
    assert "rules.yaml: rules[0].displays.template: unknown template 'missing'" in err


def test_wecom_long_text_is_cut_to_the_markdown_limit_not_refused() -> None:
    with WecomRobotDouble(["k1"]) as double:
        assert wecom(double).send(job(text="请开窗通风。" * 400)).state == "sent"
        content = double.messages[0].body["markdown"]["content"]
        assert len(content.encode("utf-8")) <= 4096 and content.startswith("### ")


def test_feishu_9499_is_retried_only_when_it_says_too_many_requests() -> None:
    with FeishuRobotDouble([Robot("signed", secret=FEISHU_SECRET)]) as double:
        ch = feishu(double)
        double.fail_next(9499, "too many request")
        with pytest.raises(TransientError) as t:
            ch.send(job())
        assert t.value.retry_after == 60.0
        double.fail_next(9499, "Bad Request")
        with pytest.raises(PermanentError, match="9499: Bad Request"):
            ch.send(job())
