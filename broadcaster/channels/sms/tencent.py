"""``tencent``: 腾讯云短信 (SendSms 2021-01-11) through the official SDK, with receipts and query.

One ``SendSms`` request carries up to 200 numbers (E.164) that read the same registered template
with the same values; the answer's ``SendStatusSet`` has one entry per number, matched back by
``PhoneNumber``: a number whose ``Code`` is not ``Ok`` fails alone (DESIGN A10).

The SDK raises on ``Response.Error`` only when the answer's Content-Type is exactly
``application/json`` (sms-providers.md §5): an answer without ``SendStatusSet`` is therefore a
failure of the whole request, never a success. The SDK does not retry; its request timeout is
set to ``timeout_s`` (its default is 60 s). ``LimitExceeded.PhoneNumber*`` ends that delivery
for the night (no retry); request throttling and network errors are transient.

Receipts (the status callback) arrive at ``/api/v1/sms/tencent/receipts/{token}``, matched on
the ``sid`` (the SerialNo) and the number.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime

from pydantic import Field
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as tcm
from tencentcloud.sms.v20210111.sms_client import SmsClient

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

UNREACHABLE = {"FailedOperation.PhoneNumberInBlacklist": "已退订短信 / unsubscribed (blacklist)"}
# Request-level codes worth a retry later; any other request-level code is permanent.
TRANSIENT_CODES = {"RequestLimitExceeded", "InternalError.Timeout", "InternalError",
                   "ServerNetworkError", "ClientNetworkError", "LimitExceeded.DeliveryFrequencyLimit"}


class TencentConfig(PluginConfig):
    """``sms.tencent`` (DESIGN A10); the keys come from the environment (``${...}``)."""

    secret_id: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    sdk_app_id: str = Field(pattern=r"^\d+$")
    sign_name: str = Field(min_length=1)
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"  # host[:port]
    protocol: str = Field(default="https", pattern=r"^https?$")
    receipt_token: str | None = Field(default=None, min_length=16)
    timeout_s: float = Field(default=10, gt=0, le=120)


class TencentProvider(BatchingProvider):
    type = "tencent"
    Config = TencentConfig
    receipt_path = "/api/v1/sms/tencent/receipts/{token}"
    max_batch = 200

    def __init__(self, config: TencentConfig, ctx: SmsContext) -> None:  # type: ignore[override]
        super().__init__(config, ctx)
        self.cfg = config
        self._local = threading.local()

    def _client(self) -> SmsClient:
        c = getattr(self._local, "client", None)
        if c is None:
            hp = HttpProfile(endpoint=self.cfg.endpoint, protocol=self.cfg.protocol,
                             reqTimeout=int(max(1, self.cfg.timeout_s)))
            c = SmsClient(Credential(self.cfg.secret_id, self.cfg.secret_key), self.cfg.region,
                          ClientProfile(httpProfile=hp))
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
            params = [v for _, v in fill(reg, jobs[0])]
        except ChannelError as exc:
            return [exc] * len(jobs)
        req = tcm.SendSmsRequest()
        req.PhoneNumberSet = [j.to for j in jobs]
        req.SmsSdkAppId = self.cfg.sdk_app_id
        req.SignName = self.cfg.sign_name
        req.TemplateId = reg.id
        req.TemplateParamSet = params
        req.SessionContext = f"alert-{jobs[0].alert_id}"
        try:
            resp = self._client().SendSms(req)
        except TencentCloudSDKException as exc:
            return [self._map_raised(exc)] * len(jobs)
        statuses = {s.PhoneNumber: s for s in (resp.SendStatusSet or [])}
        if not statuses:
            # An error answer the SDK did not raise (a Content-Type with a charset): not sent.
            err = TransientError("answer without SendStatusSet", code="NoSendStatusSet")
            return [flag(err, not_sent=True)] * len(jobs)
        out: list[SendResult | ChannelError] = []
        for j in jobs:
            s = statuses.get(j.to)
            if s is None:
                out.append(TransientError("number missing from SendStatusSet", code="NoSendStatus"))
            elif s.Code == "Ok":
                out.append(SendResult(state="sent", provider_id=s.SerialNo, segments=s.Fee or None))
            else:
                out.append(self._map_code(s.Code, s.Message))
        return out

    @staticmethod
    def _map_code(code: str | None, message: str | None) -> ChannelError:
        text = f"{code} {message or ''}".strip()
        if (code or "").startswith("LimitExceeded.PhoneNumber"):
            return PermanentError(f"服务商频率限制，今晚不再重试 / provider frequency limit: {text}", code=code)
        if code in TRANSIENT_CODES:
            return TransientError(text, code=code)
        return PermanentError(text, code=code)

    def _map_raised(self, exc: TencentCloudSDKException) -> ChannelError:
        """A raised error concerns the whole request: nothing was sent, unless the answer to a
        written request was lost (a read timeout), when Tencent may have it."""
        code = exc.get_code()
        if code in ("ClientNetworkError", "ServerNetworkError"):
            # The SDK keeps only requests' message: a connection never made says so; anything
            # else (a read timeout, a reset after the request was written) may have reached Tencent.
            msg = str(exc.get_message())
            lost = code == "ClientNetworkError" and not any(
                m in msg for m in ("NewConnectionError", "Connection refused", "ConnectTimeout"))
            return flag(TransientError(f"{code}: {'timeout' if lost else 'connection failed or HTTP error'}",
                                       code=code), not_sent=not lost, unknown=lost)
        return flag(self._map_code(code, exc.get_message()), not_sent=True)

    # ------------------------------------------------------------------ query

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """PullSmsSendStatusByPhoneNumber since the attempt began: a message of this alert
        (its ``SessionContext``) means it went out; its SerialNo is the provider id."""
        req = tcm.PullSmsSendStatusByPhoneNumberRequest()
        req.BeginTime = int(since.timestamp()) - 60
        req.EndTime = int(datetime.now(CN_TZ).timestamp()) + 60
        req.Offset, req.Limit = 0, 100
        req.PhoneNumber = job.to
        req.SmsSdkAppId = self.cfg.sdk_app_id
        try:
            resp = self._client().PullSmsSendStatusByPhoneNumber(req)
        except TencentCloudSDKException as exc:
            raise self._map_raised(exc) from exc
        for s in resp.PullSmsSendStatusSet or []:
            if s.SessionContext == f"alert-{job.alert_id}":
                return s.SerialNo
        return None

    def poll_receipts(self, waiting: list[tuple[str, str, datetime]]) -> list[Receipt]:
        """PullSmsSendStatus: the statuses Tencent queued since the last pull (each returned
        once), whatever ``waiting`` holds; receipts for unknown ids are ignored by the ledger."""
        req = tcm.PullSmsSendStatusRequest()
        req.Limit, req.SmsSdkAppId = 100, self.cfg.sdk_app_id
        try:
            resp = self._client().PullSmsSendStatus(req)
        except TencentCloudSDKException as exc:
            raise self._map_raised(exc) from exc
        out = []
        for s in resp.PullSmsSendStatusSet or []:
            ok = s.ReportStatus == "SUCCESS"
            out.append(Receipt(provider_id=s.SerialNo, status="delivered" if ok else "failed",
                               provider_status="SUCCESS" if ok else "FAIL", phone=s.PhoneNumber,
                               code=None if ok else s.Description, at=cn_datetime(s.UserReceiveTime)))
        return out

    # ------------------------------------------------------------------ receipts

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        """A status callback: a JSON array; Tencent wants ``{"result": 0, "errmsg": "OK"}`` back."""
        check_token(req, self.cfg.receipt_token)
        out: list[Receipt] = []
        for item in load_array(req):
            sid, mobile = item.get("sid"), item.get("mobile")
            if not sid or not mobile:
                continue
            ok = str(item.get("report_status", "")).upper() == "SUCCESS"
            errmsg = str(item.get("errmsg") or "")
            phone = f"+{item.get('nationcode') or '86'}{mobile}"
            out.append(Receipt(provider_id=str(sid), status="delivered" if ok else "failed",
                               provider_status="SUCCESS" if ok else "FAIL", phone=phone,
                               code=None if ok else errmsg or None, unreachable=UNREACHABLE.get(errmsg),
                               at=cn_datetime(item.get("user_receive_time"))))
        answer = json.dumps({"result": 0, "errmsg": "OK"}).encode()
        return ReceiptAnswer(out, 200, answer, "application/json")
