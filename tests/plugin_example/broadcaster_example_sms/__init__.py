"""``county-gateway``: SMS through a county's own HTTP gateway, as a broadcaster plugin.

The gateway takes ``POST {url}/send`` with JSON ``{"to", "text", "ref"}`` and a bearer token and
answers ``{"code": 0, "id": "..."}``; any other ``code`` is a refusal for that number. It pushes
delivery reports to ``{public_url}/api/v1/sms/county-gateway/receipts/{token}`` as JSON
``{"id", "to", "status": "DELIVRD"|"UNDELIV", "err"?}``.
"""

from __future__ import annotations

import hmac
import json
from typing import ClassVar

import requests
from pydantic import Field, SecretStr

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import Receipt, ReceiptAnswer, ReceiptRequest, SmsJob, SmsProvider
from broadcaster.errors import Forbidden, PermanentError, TransientError
from broadcaster.net import failure_reason, retry_after_seconds
from broadcaster.plugins import PluginConfig

# The gateway's refusal codes that mean "this number will never work".
UNREACHABLE = {1001: "号码不存在 / no such number", 1002: "用户已退订 / unsubscribed"}


class GatewayConfig(PluginConfig):
    """``sms.county-gateway`` in broadcaster.yaml (secrets from the environment: ``${VAR}``)."""

    url: str = Field(pattern=r"^https?://")
    token: SecretStr
    receipt_token: SecretStr
    timeout_s: float = Field(default=10, gt=0, le=60)


class CountyGateway(SmsProvider):
    type: ClassVar[str] = "county-gateway"
    Config = GatewayConfig
    receipt_path: ClassVar[str | None] = "/api/v1/sms/county-gateway/receipts/{token}"

    def send(self, job: SmsJob) -> SendResult:
        cfg: GatewayConfig = self.config  # type: ignore[assignment]
        try:
            resp = requests.post(f"{cfg.url.rstrip('/')}/send", timeout=cfg.timeout_s,
                                 headers={"Authorization": f"Bearer {cfg.token.get_secret_value()}"},
                                 json={"to": job.to, "text": job.body, "ref": str(job.delivery_id)})
        except requests.RequestException as exc:  # timeouts, resets, refused: try again later
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"HTTP {resp.status_code}", code=resp.status_code,
                                 retry_after=retry_after_seconds(resp.headers))
        if resp.status_code != 200:
            raise PermanentError(f"HTTP {resp.status_code}", code=resp.status_code)
        answer = resp.json()
        if answer.get("code") != 0:
            raise PermanentError(f"{answer.get('code')} {answer.get('msg', '')}".strip(), code=answer.get("code"))
        return SendResult(state="sent", provider_id=str(answer["id"]))

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        cfg: GatewayConfig = self.config  # type: ignore[assignment]
        if not hmac.compare_digest(req.path_params.get("token", ""), cfg.receipt_token.get_secret_value()):
            raise Forbidden("wrong receipt token")
        report = json.loads(req.body)
        err = report.get("err")
        return ReceiptAnswer(
            [Receipt(provider_id=str(report["id"]), phone=report.get("to"),
                     status="delivered" if report["status"] == "DELIVRD" else "failed",
                     provider_status=report["status"], code=str(err) if err else None,
                     unreachable=UNREACHABLE.get(err))],
            body=b'{"ok": true}', media_type="application/json")
