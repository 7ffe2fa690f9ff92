"""Tencent Cloud API 3.0 behaviour shared by the Tencent doubles: TC3-HMAC-SHA256
verification, action routing and the ``Response.Error`` shape (sms-providers.md §3.4).

Facts confirmed against ``tencentcloud-sdk-python-common`` 3.1.195 (``abstract_client``):

* The SDK POSTs JSON (``json.dumps`` with default separators, non-ASCII as ``\\uXXXX``) to
  ``{protocol}://{endpoint}/``; ``HttpProfile(endpoint="127.0.0.1:PORT", protocol="http")``
  reaches a double, and the endpoint string is also the signed ``host``.
* Signed headers are exactly ``content-type;host``; ``X-TC-Action``, ``X-TC-Version``,
  ``X-TC-Timestamp``, ``X-TC-Region`` (when a region is given) ride unsigned beside them.
* ``_check_status``: any HTTP status other than 200 raises
  ``TencentCloudSDKException("ServerNetworkError", <body bytes>)``.
* ``_check_error`` looks for ``Response.Error`` **only** if the answer's ``Content-Type`` is
  exactly ``application/json`` or ``text/plain``; with ``application/json; charset=utf-8`` an
  error comes back as a normal, empty result. This double therefore sends exactly
  ``application/json`` (``content_type`` can be changed to reproduce the trap).
* No retry by default (``NoopRetryer``); one timeout of 60 s for connect and read
  (``HttpProfile(reqTimeout=...)``, seconds); a refused connection or a timeout raises
  ``TencentCloudSDKException`` with code ``ClientNetworkError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .cn_base import ProviderDouble, request_id
from .faults import Fault, FaultPlan
from .server import Request, Response

SKEW_S = 300  # AuthFailure.SignatureExpire beyond 5 minutes
_AUTH = re.compile(r"^TC3-HMAC-SHA256\s+Credential=([^/]*)/(\d{4}-\d{2}-\d{2})/([^/]+)/tc3_request,"
                   r"\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$")

ERROR_TEXTS: dict[str, str] = {
    "AuthFailure.SignatureFailure":
        "The provided credentials could not be validated. Please check your signature is correct.",
    "AuthFailure.SecretIdNotFound":
        "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.SignatureExpire": "Signature expired. Timestamp comes from the future or the "
                                   "past.",
    "AuthFailure.InvalidAuthorization": "Authorization header is invalid.",
    "RequestLimitExceeded": "Your current request times exceeds the limit. Please reduce the "
                            "frequency of calls.",
    "InvalidAction": "The action requested was not found.",
    "MissingParameter": "The request is missing a required parameter.",
    "InternalError": "An internal error has occurred. Retry your request.",
}


def tc3_signature(secret_key: str, service: str, host: str, timestamp: int | str, body: bytes,
                  content_type: str = "application/json", method: str = "POST",
                  query: str = "", signed: list[tuple[str, str]] | None = None) -> str:
    """Hex TC3-HMAC-SHA256 signature; ``signed`` (name, value) pairs replace the SDK's
    ``content-type;host`` when a client signs more headers."""
    date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
    pairs = signed or [("content-type", content_type), ("host", host)]
    headers = "".join(f"{name}:{value}\n" for name, value in pairs)
    canonical = "\n".join([method, "/", query, headers, ";".join(n for n, _ in pairs),
                           hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"TC3{secret_key}".encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class TencentApiDouble(ProviderDouble):
    """A Tencent Cloud API 3.0 service: TC3 check, ``X-TC-Action`` routing, errors.

    Subclasses set ``service``/``version``, fill ``self.actions`` (action ->
    ``fn(params, req) -> Response``) and answer with ``ok(req, payload)`` or
    ``error(req, code)``. ``secret_keys`` maps SecretId -> SecretKey. ``throttle`` answers
    ``RequestLimitExceeded`` while true; ``throttle_next(n)`` for the next ``n`` calls only;
    ``account_error`` (a code) answers that ``Response.Error`` to every signed call.
    """

    service = ""
    version = ""
    require_region = False

    def __init__(self, secret_keys: dict[str, str], faults: FaultPlan | None = None,
                 **kw: Any) -> None:
        super().__init__(faults, **kw)
        self.secret_keys = dict(secret_keys)
        self.actions: dict[str, Callable[[dict[str, Any], Request], Response]] = {}
        self.content_type = "application/json"  # exactly this, see the module doc
        self.throttle = False
        self.account_error: str | None = None
        self._throttle_left = 0

    def throttle_next(self, n: int = 1) -> None:
        """Answer ``RequestLimitExceeded`` to the next ``n`` signed calls."""
        with self._lock:
            self._throttle_left += n

    def ok(self, req: Request, payload: dict[str, Any], code: str | None = "Ok") -> Response:
        """HTTP 200 ``{"Response": {...payload, "RequestId"}}``."""
        self.note(req, code=code)
        return self._json({"Response": {**payload, "RequestId": request_id()}})

    def error(self, req: Request | None, code: str, message: str | None = None) -> Response:
        """A request-level error: HTTP 200 with ``Response.Error`` (the SDK raises it)."""
        if req is not None:
            self.note(req, code=code)
        text = message or ERROR_TEXTS.get(code, code)
        return self._json({"Response": {"Error": {"Code": code, "Message": text},
                                        "RequestId": request_id()}})

    def _json(self, payload: dict[str, Any]) -> Response:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return Response(200, body, {"Content-Type": self.content_type})

    def fault_response(self, fault: Fault) -> Response:
        # Tencent's gateway answers 200 with Response.Error; a non-200 (a load balancer in
        # front failing) reaches the SDK as ServerNetworkError with this body.
        return Response(fault.status or 500, b"<html><body>502 Bad Gateway</body></html>",
                        {"Content-Type": "text/html"})

    def serve(self, req: Request) -> Response:
        action = req.header("x-tc-action")
        try:
            params = json.loads(req.body or b"{}")
        except ValueError:
            params = None
        self.note(req, action=action, params=params if isinstance(params, dict) else {})
        failure = self.verify(req)
        if failure:
            return self.error(req, failure)
        if req.header("x-tc-version") != self.version or action not in self.actions:
            return self.error(req, "InvalidAction")
        if self.require_region and not req.header("x-tc-region"):
            return self.error(req, "MissingParameter", "The request is missing a required "
                                                       "parameter `Region`.")
        if not isinstance(params, dict):
            return self.error(req, "InvalidParameter", "The body is not a JSON object.")
        if self._throttled():
            return self.error(req, "RequestLimitExceeded")
        if self.account_error:
            return self.error(req, self.account_error)
        return self.actions[action](params, req)

    def _throttled(self) -> bool:
        with self._lock:
            if self._throttle_left > 0:
                self._throttle_left -= 1
                return True
        return self.throttle

    def verify(self, req: Request) -> str | None:
        """``None`` when ``req`` carries a valid TC3 signature, else the error code."""
        m = _AUTH.match(req.header("authorization") or "")
        if m is None:
            return "AuthFailure.InvalidAuthorization"
        secret_id, date, service, signed, signature = m.groups()
        if secret_id not in self.secret_keys:
            return "AuthFailure.SecretIdNotFound"
        stamp = req.header("x-tc-timestamp") or ""
        if not stamp.isdigit() or service != self.service:
            return "AuthFailure.SignatureFailure"
        if abs(time.time() - int(stamp)) > SKEW_S:
            return "AuthFailure.SignatureExpire"
        if datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d") != date:
            return "AuthFailure.SignatureFailure"
        # The SDK's header values go in verbatim; the docs lower-case them: the same here.
        pairs = [(n, (req.header(n) or "").strip().lower()) for n in signed.split(";")]
        good = tc3_signature(self.secret_keys[secret_id], self.service, "", stamp, req.body,
                             method=req.method, query=req.target.partition("?")[2],
                             signed=pairs)
        return None if secrets.compare_digest(good, signature) else "AuthFailure.SignatureFailure"
