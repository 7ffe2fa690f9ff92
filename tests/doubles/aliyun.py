"""Loopback double of Alibaba Cloud SMS (dysmsapi 2017-05-25): SendSms, SendBatchSms,
QuerySendDetails, and the SmsReport receipt push (sms-providers.md §2, DESIGN.md A10).

Reached by the official SDK (``alibabacloud-dysmsapi20170525`` 4.6.0 on tea-openapi 0.4.6)::

    Client(Config(access_key_id=AK, access_key_secret=SK,
                  endpoint=f"127.0.0.1:{double.port}", protocol="http"))

Facts confirmed by driving that SDK against this double (see ``aliyun_pop`` for signatures,
timeouts and retries): every SendSms parameter travels in the query string with an empty
body; SendBatchSms puts the ``*Json`` lists in a form body. A business error is **HTTP 200**
with ``Code`` other than ``OK`` and is *returned*, not raised: ``resp.body.code``,
``resp.body.message``, ``resp.body.biz_id`` (``None`` on errors), ``resp.body.request_id``;
``resp.status_code`` is 200. Gateway errors (bad signature, ``Throttling.User``, 5xx) raise.

Semantics kept here: a whole request succeeds or fails (Aliyun names no number in its
answer); one ``BizId`` covers every number of a request; ``PhoneNumbers`` takes up to 1000
comma-separated domestic numbers written bare or with ``+86``/``0086``/``86``; the stored
number is the bare national one, as receipts and QuerySendDetails report it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
import requests

from .aliyun_pop import AliyunPopDouble
from .cn_base import CN_TZ, cn_time, post_json, request_id
from .faults import FaultPlan
from .server import Request, Response

SEND_WAITING, SEND_FAILED, SEND_DELIVERED = 1, 2, 3  # QuerySendDetails SendStatus
_VAR = re.compile(r"\$\{(\w+)\}")

BUSINESS_TEXTS: dict[str, str] = {
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板缺少变量",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isv.BUSINESS_LIMIT_CONTROL": "触发天级流控Permits:{limit}",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.BLACK_KEY_CONTROL_LIMIT": "黑名单管控",
    "isp.SYSTEM_ERROR": "isp.SYSTEM_ERROR",
}


def national(raw: str) -> str | None:
    """The bare 11-digit number of a valid Chinese mobile in any form Aliyun takes."""
    s = raw.strip()
    for prefix in ("+86", "0086"):
        s = s[len(prefix):] if s.startswith(prefix) else s
    if len(s) == 13 and s.startswith("86"):
        s = s[2:]
    try:
        n = phonenumbers.parse(s, "CN")
    except phonenumbers.NumberParseException:
        return None
    ok = (n.country_code == 86 and phonenumbers.is_valid_number(n)
          and phonenumbers.number_type(n) == phonenumbers.PhoneNumberType.MOBILE)
    return str(n.national_number) if ok else None


@dataclass
class AliyunMessage:
    """One number of an accepted request (what QuerySendDetails and receipts talk about)."""

    phone: str  # bare national number
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str | None
    biz_id: str
    sent_at: datetime
    content: str
    status: int = SEND_WAITING
    err_code: str = ""
    received_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AliyunSmsDouble(AliyunPopDouble):
    """Aliyun SMS on 127.0.0.1; use as a context manager.

    ``templates``: template code -> text with ``${var}`` (its variables must all be given),
    or just an iterable of codes. ``sign_names``: the approved signatures.
    ``errors``: bare national number -> business code, or a list of codes consumed one per
    request for that number (then it succeeds). ``limit_per_day``: accepted messages per
    number + signature + template in a rolling 24 h before ``isv.BUSINESS_LIMIT_CONTROL``.
    """

    host_id = "dysmsapi.aliyuncs.com"
    version = "2017-05-25"

    def __init__(
        self,
        access_keys: dict[str, str] | None = None,
        *,
        templates: Mapping[str, str] | Iterable[str] = ("SMS_123456789",),
        sign_names: Iterable[str] = ("XX镇文化站",),
        errors: Mapping[str, str | list[str]] | None = None,
        limit_per_day: int | None = None,
        faults: FaultPlan | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(access_keys or {"test-ak": "test-secret"}, faults, **kw)
        self.templates: dict[str, str | None] = (
            dict(templates) if isinstance(templates, Mapping) else dict.fromkeys(templates))
        self.sign_names = set(sign_names)
        self.errors: dict[str, str | list[str]] = dict(errors or {})
        self.limit_per_day = limit_per_day
        self._messages: list[AliyunMessage] = []
        self.actions.update(SendSms=self._send_sms, SendBatchSms=self._send_batch,
                            QuerySendDetails=self._query)

    # -- records ---------------------------------------------------------------------
    def messages(self, phone: str | None = None) -> list[AliyunMessage]:
        """Accepted messages, oldest first (optionally of one number, any accepted form)."""
        key = national(phone) or phone if phone else None
        with self._lock:
            return [m for m in self._messages if key is None or m.phone == key]

    def fault_key(self, req: Request) -> str | None:
        numbers = req.query.get("PhoneNumbers") or req.query.get("PhoneNumber") or [""]
        return numbers[0].split(",")[0] or None

    # -- the API ---------------------------------------------------------------------
    def business(self, req: Request, code: str, **fmt: Any) -> Response:
        """A business error: HTTP 200, ``Code`` other than OK, no BizId."""
        self.note(req, code=code)
        text = BUSINESS_TEXTS.get(code, code).format(**fmt)
        return Response.json(200, {"Code": code, "Message": text,
                                   "RequestId": request_id(upper=True)})

    def _send_sms(self, p: dict[str, str], req: Request) -> Response:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not p.get(name):
                return self.pop_error(f"Missing{name}", f"{name} is mandatory for this action.")
        numbers = [n for n in p["PhoneNumbers"].split(",") if n.strip()]
        if len(numbers) > 1000:
            return self.business(req, "isv.MOBILE_COUNT_OVER_LIMIT")
        return self._accept(req, numbers, [p["SignName"]] * len(numbers), p["TemplateCode"],
                            [p.get("TemplateParam")] * len(numbers), p.get("OutId"))

    def _send_batch(self, p: dict[str, str], req: Request) -> Response:
        try:
            numbers = json.loads(p.get("PhoneNumberJson") or "[]")
            signs = json.loads(p.get("SignNameJson") or "[]")
            tparams = json.loads(p["TemplateParamJson"]) if p.get("TemplateParamJson") else None
        except ValueError:
            return self.business(req, "isv.INVALID_JSON_PARAM")
        if not numbers or not p.get("TemplateCode"):
            return self.business(req, "isv.INVALID_PARAMETERS")
        if len(numbers) > 100:
            return self.business(req, "isv.MOBILE_COUNT_OVER_LIMIT")
        tparams = tparams if tparams is not None else [None] * len(numbers)
        if len(signs) != len(numbers) or len(tparams) != len(numbers):
            return self.business(req, "isv.INVALID_PARAMETERS")
        as_text = [t if t is None or isinstance(t, str) else json.dumps(t, ensure_ascii=False)
                   for t in tparams]
        return self._accept(req, numbers, signs, p["TemplateCode"], as_text, p.get("OutId"))

    def _accept(self, req: Request, raw_numbers: list[str], signs: list[str], template: str,
                tparams: list[str | None], out_id: str | None) -> Response:
        """Validate a request (all or nothing), store one message per number, answer OK."""
        phones = [national(n) for n in raw_numbers]
        if None in phones:
            return self.business(req, "isv.MOBILE_NUMBER_ILLEGAL")
        if any(s not in self.sign_names for s in signs):
            return self.business(req, "isv.SMS_SIGNATURE_ILLEGAL")
        if template not in self.templates:
            return self.business(req, "isv.SMS_TEMPLATE_ILLEGAL")
        text = self.templates[template]
        parsed: list[dict[str, str]] = []
        for raw in tparams:
            try:
                values = json.loads(raw) if raw else {}
            except ValueError:
                return self.business(req, "isv.INVALID_JSON_PARAM")
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                return self.business(req, "isv.INVALID_JSON_PARAM")
            if text is not None and set(_VAR.findall(text)) - set(values):
                return self.business(req, "isv.TEMPLATE_MISSING_PARAMETERS")
            parsed.append(values)
        now = self.clock()
        with self._lock:
            for phone in phones:
                code = self._scripted_error(phone)  # type: ignore[arg-type]
                if code:
                    return self.business(req, code)
            if self.limit_per_day is not None:
                since = now - timedelta(hours=24)
                for phone, sign in zip(phones, signs, strict=True):
                    used = sum(1 for m in self._messages if m.phone == phone and m.sign_name == sign
                               and m.template_code == template and m.sent_at > since)
                    if used >= self.limit_per_day:
                        return self.business(req, "isv.BUSINESS_LIMIT_CONTROL",
                                             limit=self.limit_per_day)
            biz_id = f"{secrets.randbelow(10**15):015d}{secrets.randbelow(10):d}^0"
            for phone, sign, values in zip(phones, signs, parsed, strict=True):
                body = _VAR.sub(lambda m, v=values: v.get(m.group(1), ""),
                                text or json.dumps(values, ensure_ascii=False))
                self._messages.append(AliyunMessage(
                    phone=phone, sign_name=sign, template_code=template,  # type: ignore[arg-type]
                    params=values, out_id=out_id, biz_id=biz_id, sent_at=now,
                    content=f"【{sign}】{body}"))
        self.note(req, code="OK")
        return Response.json(200, {"Code": "OK", "Message": "OK", "BizId": biz_id,
                                   "RequestId": request_id(upper=True)})

    def _scripted_error(self, phone: str) -> str | None:
        """The scripted business code for ``phone`` (lists are consumed); lock held."""
        code = self.errors.get(phone)
        if isinstance(code, list):
            return code.pop(0) if code else None
        return code

    def _query(self, p: dict[str, str], req: Request) -> Response:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not p.get(name):
                return self.pop_error(f"Missing{name}", f"{name} is mandatory for this action.")
        try:
            size, page = int(p["PageSize"]), int(p["CurrentPage"])
            day = datetime.strptime(p["SendDate"], "%Y%m%d").date()
        except ValueError:
            return self.business(req, "isv.INVALID_PARAMETERS")
        if not 1 <= size <= 50 or page < 1:
            return self.business(req, "isv.INVALID_PARAMETERS")
        phone = national(p["PhoneNumber"]) or p["PhoneNumber"]
        with self._lock:
            picked = [m for m in self._messages if m.phone == phone
                      and m.sent_at.astimezone(CN_TZ).date() == day
                      and (not p.get("BizId") or m.biz_id == p["BizId"])]
        dtos = [{"PhoneNum": m.phone, "SendStatus": m.status, "ErrCode": m.err_code,
                 "TemplateCode": m.template_code, "Content": m.content,
                 "SendDate": cn_time(m.sent_at),
                 "ReceiveDate": cn_time(m.received_at) if m.received_at else "",
                 **({"OutId": m.out_id} if m.out_id else {})}
                for m in picked[(page - 1) * size:page * size]]
        self.note(req, code="OK")
        return Response.json(200, {"Code": "OK", "Message": "OK", "RequestId": request_id(True),
                                   "TotalCount": len(picked),
                                   "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}})

    # -- delivery (the carrier's side) -----------------------------------------------
    def deliver(self, messages: Iterable[AliyunMessage] | None = None, *, success: bool = True,
                err_code: str | None = None) -> list[AliyunMessage]:
        """Settle messages (default: all still waiting) as delivered or failed; returns them."""
        now = self.clock()
        with self._lock:
            chosen = list(messages) if messages is not None else [
                m for m in self._messages if m.status == SEND_WAITING]
            for m in chosen:
                m.status = SEND_DELIVERED if success else SEND_FAILED
                m.err_code = err_code or ("DELIVERED" if success else "UNDELIV")
                m.received_at = now
        return chosen

    def receipts(self, messages: Iterable[AliyunMessage]) -> list[dict[str, Any]]:
        """SmsReport items for settled messages, in Aliyun's push format (§2.5)."""
        return [{"phone_number": m.phone, "send_time": cn_time(m.sent_at),
                 "report_time": cn_time(m.received_at or self.clock()),
                 "success": m.status == SEND_DELIVERED, "err_code": m.err_code,
                 "err_msg": "用户接收成功" if m.status == SEND_DELIVERED else "用户接收失败",
                 "sms_size": "1", "biz_id": m.biz_id, "out_id": m.out_id or ""}
                for m in messages]

    def push_receipts(self, url: str, messages: Iterable[AliyunMessage] | None = None, *,
                      success: bool = True, err_code: str | None = None,
                      timeout: float = 5) -> requests.Response:
        """Settle ``messages`` (default: all waiting) and POST their receipts as one JSON
        array to ``url``, as Aliyun's HTTP batch push does; returns the service's answer
        (Aliyun wants 200 with a numeric ``code``, else it pushes again after 1, 5, 10 min)."""
        settled = self.deliver(messages, success=success, err_code=err_code)
        return post_json(url, self.receipts(settled), timeout)
