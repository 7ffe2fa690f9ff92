"""Loopback double of Tencent Cloud SMS (API 2021-01-11): SendSms, PullSmsSendStatus and the
status-callback push (sms-providers.md §3 and §5, DESIGN.md A10).

Reached by the official SDK (``tencentcloud-sdk-python-sms`` 3.1.153, common 3.1.195)::

    SmsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
              ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{double.port}",
                                                    protocol="http", reqTimeout=10)))

How answers surface in the SDK (see ``tencent_api`` for signing, timeouts and retries):
``resp.SendStatusSet[i].Code`` is ``"Ok"`` (not "OK") or a per-number code, with
``.PhoneNumber``, ``.SerialNo``, ``.Fee``, ``.SessionContext``, ``.Message``, ``.IsoCode``; a
request-level error raises ``TencentCloudSDKException`` (``e.code``, ``e.message``,
``e.requestId``). With ``omit_send_status_set = True`` the double answers a Response without
``SendStatusSet``: the SDK then returns ``resp.SendStatusSet is None`` and raises nothing.

The tables are per number: a bad number, a frequency limit, an unknown signature or template
fails that number's entry only (HTTP 200, no ``Error``), so a request can partly succeed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
import requests

from .cn_base import CN_TZ, cn_time, post_json
from .faults import FaultPlan
from .server import Request, Response
from .tencent_api import TencentApiDouble, tc3_signature

__all__ = ["TencentMessage", "TencentSmsDouble", "e164", "tc3_signature"]

_VAR = re.compile(r"\{(\d+)\}")

SEND_TEXTS: dict[str, str] = {
    "Ok": "send success",
    "InvalidParameterValue.IncorrectPhoneNumber": "incorrect phone number",
    "LimitExceeded.PhoneNumberDailyLimit": "the number of sms messages sent from a single mobile "
                                           "number every day exceeds the upper limit",
    "LimitExceeded.PhoneNumberThirtySecondLimit": "the number of sms messages sent from a single "
                                                  "mobile number within 30 seconds exceeds the "
                                                  "upper limit",
    "FailedOperation.SignatureIncorrectOrUnapproved": "signature is not approved or signature "
                                                      "format is incorrect",
    "FailedOperation.TemplateIncorrectOrUnapproved": "template is not approved or request content "
                                                     "does not match the approved template content",
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "the number of template "
                                                                "parameters does not match",
    "FailedOperation.PhoneNumberInBlacklist": "the phone number is in the blacklist",
}


def e164(raw: str) -> str | None:
    """E.164 form of a valid mobile as Tencent takes it (+86/0086/86/bare domestic)."""
    s = raw.strip()
    if s.startswith("00"):
        s = "+" + s[2:]
    elif len(s) == 13 and s.startswith("86"):
        s = "+" + s
    try:
        n = phonenumbers.parse(s, "CN")
    except phonenumbers.NumberParseException:
        return None
    mobile = phonenumbers.number_type(n) in (phonenumbers.PhoneNumberType.MOBILE,
                                             phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    if not (phonenumbers.is_valid_number(n) and mobile):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class TencentMessage:
    """One accepted number of a SendSms request."""

    phone: str  # E.164
    sign_name: str
    template_id: str
    params: list[str]
    session_context: str
    serial_no: str
    sent_at: datetime
    fee: int
    report_status: str | None = None  # SUCCESS | FAIL once the carrier reported
    description: str = ""
    received_at: datetime | None = None
    pulled: bool = False


class TencentSmsDouble(TencentApiDouble):
    """Tencent SMS on 127.0.0.1; use as a context manager.

    ``templates``: TemplateId -> text with ``{1}``, ``{2}``... (the parameter count must
    match), or an iterable of ids. ``errors``: E.164 number -> SendStatus code, or a list of
    codes consumed one per request. ``limit_30s``: the same content to the same number within
    30 s fails (Tencent's default). ``daily_limit``: accepted messages per number per China
    calendar day. ``omit_send_status_set``: answer without ``SendStatusSet``.
    """

    service = "sms"
    version = "2021-01-11"
    require_region = True

    def __init__(
        self,
        secret_keys: dict[str, str] | None = None,
        *,
        sdk_app_id: str = "1400000000",
        templates: Mapping[str, str] | Iterable[str] = ("1234567",),
        sign_names: Iterable[str] = ("XX镇文化站",),
        errors: Mapping[str, str | list[str]] | None = None,
        limit_30s: bool = True,
        daily_limit: int | None = None,
        faults: FaultPlan | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(secret_keys or {"test-secret-id": "test-secret-key"}, faults, **kw)
        self.sdk_app_id = sdk_app_id
        self.templates: dict[str, str | None] = (
            dict(templates) if isinstance(templates, Mapping) else dict.fromkeys(templates))
        self.sign_names = set(sign_names)
        self.errors: dict[str, str | list[str]] = dict(errors or {})
        self.limit_30s, self.daily_limit = limit_30s, daily_limit
        self.omit_send_status_set = False
        self._messages: list[TencentMessage] = []
        self.actions.update(SendSms=self._send, PullSmsSendStatus=self._pull,
                            PullSmsSendStatusByPhoneNumber=self._pull_by_phone)

    def messages(self, phone: str | None = None) -> list[TencentMessage]:
        """Accepted messages, oldest first (optionally of one number)."""
        key = e164(phone) or phone if phone else None
        with self._lock:
            return [m for m in self._messages if key is None or m.phone == key]

    def fault_key(self, req: Request) -> str | None:
        # Cheap peek at the first number: the fault plan runs before the body is parsed.
        m = re.search(rb'"PhoneNumberSet":\s*\["([^"]+)"', req.body)
        return m.group(1).decode() if m else None

    # -- the API ---------------------------------------------------------------------
    def _send(self, p: dict[str, Any], req: Request) -> Response:
        numbers = p.get("PhoneNumberSet") or []
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return self.error(req, "InvalidParameterValue.SdkAppIdNotExist",
                              "SdkAppId not exist.")
        if not numbers:
            return self.error(req, "MissingParameter.EmptyPhoneNumberSet",
                              "the PhoneNumberSet is empty.")
        if len(numbers) > 200:
            return self.error(req, "LimitExceeded.PhoneNumberCountLimit",
                              "the number of phone numbers exceeds 200.")
        phones = [e164(str(n)) for n in numbers]
        if len({(p_ or "").startswith("+86") for p_ in phones if p_}) > 1:
            return self.error(
                req, "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber")
        sign, template = p.get("SignName") or "", str(p.get("TemplateId") or "")
        params = [str(v) for v in p.get("TemplateParamSet") or []]
        context = p.get("SessionContext") or ""
        common = self._common_code(sign, template, params)
        text = self.templates.get(template) or " ".join(params)
        content = f"【{sign}】" + _VAR.sub(lambda m: _at(params, int(m.group(1)) - 1), text)
        fee = 1 if len(content) <= 70 else -(-len(content) // 67)
        now, out = self.clock(), []
        with self._lock:
            for raw, phone in zip(numbers, phones, strict=True):
                code = common or self._number_code(phone, template, params, now)
                if code != "Ok":
                    out.append({"SerialNo": "", "PhoneNumber": phone or str(raw), "Fee": 0,
                                "SessionContext": "", "Code": code,
                                "Message": SEND_TEXTS.get(code, code),
                                "IsoCode": _iso(phone)})
                    continue
                serial = f"2433:{secrets.randbelow(10**28):028d}"
                self._messages.append(TencentMessage(phone, sign, template, params, context,  # type: ignore[arg-type]
                                                     serial, now, fee))
                out.append({"SerialNo": serial, "PhoneNumber": phone, "Fee": fee,
                            "SessionContext": context, "Code": "Ok",
                            "Message": SEND_TEXTS["Ok"], "IsoCode": _iso(phone)})
        if self.omit_send_status_set:
            return self.ok(req, {}, code=None)
        codes = {s["Code"] for s in out}
        summary = codes.pop() if len(codes) == 1 else "mixed"
        return self.ok(req, {"SendStatusSet": out}, code=summary)

    def _common_code(self, sign: str, template: str, params: list[str]) -> str | None:
        """A code that fails every number of the request (bad signature or template)."""
        if sign not in self.sign_names:
            return "FailedOperation.SignatureIncorrectOrUnapproved"
        if template not in self.templates:
            return "FailedOperation.TemplateIncorrectOrUnapproved"
        text = self.templates[template]
        if text is not None and len(set(_VAR.findall(text))) != len(params):
            return "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
        return None

    def _number_code(self, phone: str | None, template: str, params: list[str],
                     now: datetime) -> str:
        """The code for one number (lock held): scripted, invalid, or a frequency limit."""
        if phone is None:
            return "InvalidParameterValue.IncorrectPhoneNumber"
        scripted = self.errors.get(phone)
        if isinstance(scripted, list):
            scripted = scripted.pop(0) if scripted else None
        if scripted:
            return scripted
        mine = [m for m in self._messages if m.phone == phone]
        if self.limit_30s and any(m.template_id == template and m.params == params
                                  and now - m.sent_at < timedelta(seconds=30) for m in mine):
            return "LimitExceeded.PhoneNumberThirtySecondLimit"
        today = now.astimezone(CN_TZ).date()
        if self.daily_limit is not None and sum(
                m.sent_at.astimezone(CN_TZ).date() == today for m in mine) >= self.daily_limit:
            return "LimitExceeded.PhoneNumberDailyLimit"
        return "Ok"

    def _pull(self, p: dict[str, Any], req: Request) -> Response:
        limit = p.get("Limit")
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return self.error(req, "InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist.")
        if not isinstance(limit, int) or not 0 < limit <= 100:
            return self.error(req, "InvalidParameterValue", "Limit must be between 1 and 100.")
        with self._lock:
            ready = [m for m in self._messages if m.report_status and not m.pulled][:limit]
            for m in ready:
                m.pulled = True  # a status is pulled once, as Tencent's queue does
        items = [{"UserReceiveTime": cn_time(m.received_at or m.sent_at),
                  "CountryCode": str(phonenumbers.parse(m.phone).country_code),
                  "SubscriberNumber": str(phonenumbers.parse(m.phone).national_number),
                  "PhoneNumber": m.phone, "SerialNo": m.serial_no,
                  "ReportStatus": m.report_status, "Description": m.description,
                  "SessionContext": m.session_context} for m in ready]
        return self.ok(req, {"PullSmsSendStatusSet": items})

    def _pull_by_phone(self, p: dict[str, Any], req: Request) -> Response:
        """PullSmsSendStatusByPhoneNumber: the messages to one number sent in [BeginTime,
        EndTime] (unix seconds), paged by Offset/Limit (<= 100). [U] Whether Tencent lists a
        message before its carrier report is unconfirmed; this double lists it with
        ``ReportStatus`` empty, so that a query right after a send finds it."""
        if p.get("SmsSdkAppId") != self.sdk_app_id:
            return self.error(req, "InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist.")
        begin, end, offset, limit = (p.get(k) for k in ("BeginTime", "EndTime", "Offset", "Limit"))
        if not all(isinstance(v, int) for v in (begin, end, offset, limit)) or not 0 < limit <= 100:
            return self.error(req, "InvalidParameterValue", "BeginTime, Offset and Limit (1-100) are required.")
        phone = e164(str(p.get("PhoneNumber") or ""))
        with self._lock:
            found = [m for m in self._messages if m.phone == phone
                     and begin <= m.sent_at.timestamp() <= end][offset:offset + limit]
        items = [{"UserReceiveTime": cn_time(m.received_at) if m.received_at else None,
                  "CountryCode": "86", "SubscriberNumber": m.phone[3:], "PhoneNumber": m.phone,
                  "SerialNo": m.serial_no, "ReportStatus": m.report_status or "",
                  "Description": m.description, "SessionContext": m.session_context}
                 for m in found]
        return self.ok(req, {"PullSmsSendStatusSet": items})

    # -- delivery (the carrier's side) -----------------------------------------------
    def deliver(self, messages: Iterable[TencentMessage] | None = None, *, success: bool = True,
                description: str | None = None) -> list[TencentMessage]:
        """Report messages (default: all unreported) as SUCCESS or FAIL; returns them."""
        now = self.clock()
        with self._lock:
            chosen = list(messages) if messages is not None else [
                m for m in self._messages if m.report_status is None]
            for m in chosen:
                m.report_status = "SUCCESS" if success else "FAIL"
                m.description = description or ("用户短信送达成功" if success else "用户短信未送达")
                m.received_at = now
        return chosen

    @staticmethod
    def receipts(messages: Iterable[TencentMessage]) -> list[dict[str, Any]]:
        """Status-callback items for reported messages, in Tencent's push format."""
        out = []
        for m in messages:
            n = phonenumbers.parse(m.phone)
            ok = m.report_status == "SUCCESS"
            out.append({"user_receive_time": cn_time(m.received_at or m.sent_at),
                        "nationcode": str(n.country_code), "mobile": str(n.national_number),
                        "report_status": m.report_status, "errmsg": "DELIVRD" if ok else "UNDELIV",
                        "description": m.description, "sid": m.serial_no})
        return out

    def push_receipts(self, url: str, messages: Iterable[TencentMessage] | None = None, *,
                      success: bool = True, timeout: float = 5) -> requests.Response:
        """Report ``messages`` (default: all unreported) and POST their status callbacks as
        one JSON array to ``url``; Tencent wants ``{"result": 0, "errmsg": "OK"}`` back."""
        return post_json(url, self.receipts(self.deliver(messages, success=success)), timeout)


def _at(values: list[str], i: int) -> str:
    return values[i] if 0 <= i < len(values) else ""


def _iso(phone: str | None) -> str:
    if phone is None:
        return "DEF"
    return phonenumbers.region_code_for_number(phonenumbers.parse(phone)) or "DEF"
