"""``aliyun``: 阿里云短信 (dysmsapi 2017-05-25) through the official SDK, with receipts and query.

One ``SendSms`` request carries up to 1,000 numbers that read the same registered template with
the same values (``PhoneNumbers`` comma-separated, ``TemplateParam`` a JSON object of strings,
``OutId`` the alert, so that the query API can tell which alert a message belongs to). Aliyun's
answer names no number: when a batch gets a per-number business error (an invalid number, a
frequency limit), its numbers are sent one by one to find the one at fault (DESIGN A10).

Errors, as the SDK gives them (sms-providers.md §2.3, §5): business codes come back in a 200
with ``Code`` other than ``OK``; gateway errors raise with a status; a refused connection raises
``UnretryableException`` around the network error. ``isv.BUSINESS_LIMIT_CONTROL`` and the other
limit codes end the delivery (no retry tonight); throttling, 5xx and network errors are transient.

Receipts (SmsReport HTTP batch push) arrive at ``/api/v1/sms/aliyun/receipts/{token}``; one
``biz_id`` covers a whole request, so each is matched on ``biz_id`` and the number.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import requests
import urllib3
from alibabacloud_dysmsapi20170525 import models as ali
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as pop
from pydantic import Field
from Tea.exceptions import TeaException

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import Receipt, ReceiptAnswer, ReceiptRequest, SmsContext, SmsJob
from broadcaster.channels.sms.registered import (
    CN_TZ,
    BatchingProvider,
    check_token,
    cn_datetime,
    fill,
    flag,
    load_array,
    registration,
)
from broadcaster.errors import ChannelError, PermanentError, TransientError
from broadcaster.plugins import PluginConfig

# Business codes that concern one number of a request, not the account: a batch that gets one
# is split to find the number. The limit codes end that delivery for the night (no retry).
LIMIT_CODES = {"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL"}
NUMBER_CODES = LIMIT_CODES | {"isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT",
                              "isv.DOMESTIC_NUMBER_NOT_SUPPORTED"}
UNREACHABLE = {"isv.BLACK_KEY_CONTROL_LIMIT": "已退订或被拉黑 / unsubscribed or blacklisted"}
TRANSIENT_CODES = {"isp.SYSTEM_ERROR", "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE"}
SEND_WAITING, SEND_FAILED, SEND_DELIVERED = 1, 2, 3  # QuerySendDetails SendStatus


class AliyunConfig(PluginConfig):
    """``sms.aliyun`` (DESIGN A10); the keys come from the environment (``${...}``)."""

    access_key_id: str = Field(min_length=1)
    access_key_secret: str = Field(min_length=1)
    sign_name: str = Field(min_length=1)
    endpoint: str = "dysmsapi.aliyuncs.com"  # host[:port]
    protocol: str = Field(default="https", pattern=r"^https?$")
    receipt_token: str | None = Field(default=None, min_length=16)
    timeout_s: float = Field(default=10, gt=0, le=120)


class AliyunProvider(BatchingProvider):
    type = "aliyun"
    Config = AliyunConfig
    receipt_path = "/api/v1/sms/aliyun/receipts/{token}"
    max_batch = 1000

    def __init__(self, config: AliyunConfig, ctx: SmsContext) -> None:  # type: ignore[override]
        super().__init__(config, ctx)
        self.cfg = config
        self._local = threading.local()

    def _client(self) -> Client:
        c = getattr(self._local, "client", None)
        if c is None:
            ms = int(self.cfg.timeout_s * 1000)
            c = Client(pop.Config(access_key_id=self.cfg.access_key_id,
                                  access_key_secret=self.cfg.access_key_secret,
                                  endpoint=self.cfg.endpoint, protocol=self.cfg.protocol,
                                  connect_timeout=min(ms, 5000), read_timeout=ms))
            self._local.client = c
        return c

    # ------------------------------------------------------------------ send

    def send_batch(self, jobs: Sequence[SmsJob]) -> list[SendResult | ChannelError]:
        out: list[SendResult | ChannelError] = []
        for i in range(0, len(jobs), self.max_batch):
            out.extend(self._send_chunk(jobs[i:i + self.max_batch]))
        return out

    def _send_chunk(self, jobs: Sequence[SmsJob]) -> list[SendResult | ChannelError]:
        try:
            reg = registration(self.ctx.templates, self.type, jobs[0])
            params = json.dumps(dict(fill(reg, jobs[0])), ensure_ascii=False)
        except ChannelError as exc:
            return [exc] * len(jobs)
        req = ali.SendSmsRequest(phone_numbers=",".join(j.to for j in jobs), sign_name=self.cfg.sign_name,
                                 template_code=reg.code, template_param=params,
                                 out_id=f"alert-{jobs[0].alert_id}")
        try:
            body = self._client().send_sms(req).body
        except TeaException as exc:
            return [self._map_raised(exc)] * len(jobs)
        if body.code == "OK":
            return [SendResult(state="sent", provider_id=body.biz_id) for _ in jobs]
        if body.code in NUMBER_CODES and len(jobs) > 1:
            # The answer names no number: one by one, each number gets its own answer.
            return [r for j in jobs for r in self._send_chunk([j])]
        return [self._map_business(body.code, body.message)] * len(jobs)

    @staticmethod
    def _map_business(code: str | None, message: str | None) -> ChannelError:
        """A business answer: a number's own code is final; any other concerns the account, and
        nothing was sent (another provider may take the message)."""
        text = f"{code} {message or ''}".strip()
        if code in LIMIT_CODES:
            return PermanentError(f"服务商频率限制，今晚不再重试 / provider frequency limit: {text}", code=code)
        if code in TRANSIENT_CODES:
            return flag(TransientError(text, code=code), not_sent=True)
        return flag(PermanentError(text, code=code), not_sent=code not in NUMBER_CODES)

    @staticmethod
    def _map_raised(exc: TeaException) -> ChannelError:
        """A raised error: nothing was accepted, unless the answer to a written request was lost."""
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "code", None)
        if status is None:  # no answer: a network error (UnretryableException)
            inner = getattr(exc, "inner_exception", None)
            lost = _maybe_sent(inner)  # written, answer lost: Aliyun may have it
            return flag(TransientError(f"connection failed: {type(inner or exc).__name__}", code=code),
                        not_sent=not lost, unknown=lost)
        if status == 429 or status >= 500 or str(code or "").startswith("Throttling"):
            return flag(TransientError(f"HTTP {status} {code}", code=code), not_sent=True)
        return flag(PermanentError(f"HTTP {status} {code}: {getattr(exc, 'message', '')}", code=code),
                    not_sent=True)

    # ------------------------------------------------------------------ query

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """QuerySendDetails for this number on the days since the attempt began: a message with
        this alert's ``OutId`` means it went out (its id is the alert's, as the DTO has no BizId)."""
        day = since.astimezone(CN_TZ).date()
        last = datetime.now(CN_TZ).date()
        client = self._client()
        while day <= last:
            req = ali.QuerySendDetailsRequest(phone_number=job.to, send_date=day.strftime("%Y%m%d"),
                                              page_size=50, current_page=1)
            try:
                body = client.query_send_details(req).body
            except TeaException as exc:
                raise self._map_raised(exc) from exc
            if body.code != "OK":
                raise self._map_business(body.code, body.message)
            dtos = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
            for d in dtos or []:
                if d.out_id == f"alert-{job.alert_id}":
                    return f"aliyun-query:{job.alert_id}"
            day += timedelta(days=1)
        return None

    def poll_receipts(self, waiting: list[tuple[str, str, datetime]]) -> list[Receipt]:
        """QuerySendDetails by number, day and BizId: SendStatus 3 delivered, 2 failed."""
        client, out = self._client(), []
        for biz_id, phone, sent_at in waiting:
            req = ali.QuerySendDetailsRequest(phone_number=phone, biz_id=biz_id, page_size=10, current_page=1,
                                              send_date=sent_at.astimezone(CN_TZ).strftime("%Y%m%d"))
            try:
                body = client.query_send_details(req).body
            except TeaException as exc:
                raise self._map_raised(exc) from exc
            dtos = body.sms_send_detail_dtos.sms_send_detail_dto if body.code == "OK" and body.sms_send_detail_dtos else []
            for d in dtos or []:
                if d.send_status in (SEND_DELIVERED, SEND_FAILED):
                    ok = d.send_status == SEND_DELIVERED
                    out.append(Receipt(provider_id=biz_id, status="delivered" if ok else "failed",
                                       provider_status="DELIVERED" if ok else "UNDELIV", phone=phone,
                                       code=None if ok else d.err_code, unreachable=UNREACHABLE.get(d.err_code or ""),
                                       at=cn_datetime(d.receive_date)))
                    break
        return out

    # ------------------------------------------------------------------ receipts

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        """An SmsReport push: a JSON array; Aliyun wants ``{"code": 0, "msg": "成功"}`` back."""
        check_token(req, self.cfg.receipt_token)
        out: list[Receipt] = []
        for item in load_array(req):
            biz_id, phone = item.get("biz_id"), item.get("phone_number")
            if not biz_id or not phone:
                continue
            ok = item.get("success") in (True, "true", "True")
            code = str(item.get("err_code") or "")
            out.append(Receipt(provider_id=str(biz_id), status="delivered" if ok else "failed",
                               provider_status="DELIVERED" if ok else "UNDELIV", phone=_e164(str(phone)),
                               code=None if ok else code or None, unreachable=UNREACHABLE.get(code),
                               at=cn_datetime(item.get("report_time"))))
        answer = json.dumps({"code": 0, "msg": "成功"}, ensure_ascii=False).encode()
        return ReceiptAnswer(out, 200, answer, "application/json")


def _maybe_sent(exc: BaseException | None) -> bool:
    """Whether the request may have reached Aliyun: anything but a connection that was never
    made (refused, or a connect timeout). darabonba wraps requests' error in its RetryError
    (as ``__cause__``/``__context__``); requests wraps urllib3's in ``MaxRetryError.reason``."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, requests.ConnectTimeout):
            return False
        if isinstance(exc, requests.ConnectionError):
            inner = exc.args[0] if exc.args else None
            reason = getattr(inner, "reason", inner)
            return not isinstance(reason, urllib3.exceptions.NewConnectionError)
        if isinstance(exc, requests.RequestException):
            return True  # a read timeout: written, the answer lost
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return True  # unknown cause: assume it may have been sent (never send it twice)


def _e164(phone: str) -> str:
    """Aliyun writes domestic numbers bare (``1381111****``): the ledger keeps E.164."""
    digits = phone.strip().lstrip("+")
    if digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return f"+86{digits}" if len(digits) == 11 else f"+{digits}"
