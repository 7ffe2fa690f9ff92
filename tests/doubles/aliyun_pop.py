"""Aliyun POP (RPC-style OpenAPI) gateway behaviour shared by the Aliyun doubles.

Checks the two signatures the official Python SDKs send (sms-providers.md §2.4, verified
against ``alibabacloud-tea-openapi`` 0.4.6, ``utils.get_authorization``/``get_rpcsignature``):

* **ACS3-HMAC-SHA256** (V3), the default of tea-openapi 0.4.x and so of
  ``alibabacloud_dysmsapi20170525`` 4.x and ``alibabacloud_nls_cloud_meta20190228``:
  ``Authorization: ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex``; every
  parameter in the query string (``+`` for spaces), ``x-acs-action``/``x-acs-version``
  headers, ``x-acs-content-sha256`` = sha256 of the body.
* **HMAC-SHA1 RPC** (V2), sent with ``Config(signature_algorithm="v2")`` and by the older
  ``aliyun-python-sdk-core`` ``CommonRequest``: ``Signature`` among the query/form params.

Gateway errors are what the SDK turns into exceptions: HTTP 4xx/5xx with
``{"RequestId","HostId","Code","Message","Recommend"}``; tea-openapi raises
``ClientException`` (4xx) / ``ServerException`` (5xx), both ``Tea.exceptions.TeaException``,
with ``.code``, ``.status_code`` and ``.data`` (this body). The SDK does **not** retry
(``Config.retry_options`` is ``None``, so ``should_retry`` stops after one attempt); its
timeouts default to connect 5 s, read 10 s (``darabonba.core`` ``DEFAULT_*_TIMEOUT``,
``Config(connect_timeout=ms, read_timeout=ms)``). A refused connection or a timeout comes
out as ``darabonba.exceptions.UnretryableException`` (also a ``TeaException``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from calendar import timegm
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote_plus

from .cn_base import ProviderDouble, request_id
from .faults import Fault, FaultPlan
from .server import Request, Response

SKEW_S = 15 * 60  # Aliyun refuses timestamps more than 15 minutes off
_AUTH_V3 = re.compile(r"^ACS3-HMAC-SHA256\s+Credential=([^,]*),SignedHeaders=([^,]*),"
                      r"Signature=([0-9a-fA-F]+)$")

# Texts of the gateway errors as Aliyun words them (status, message).
POP_ERRORS: dict[str, tuple[int, str]] = {
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and "
                                    "method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}


def percent_encode(s: str) -> str:
    """RFC 3986 encoding as both Aliyun signatures use it (space -> %20, ``~`` kept)."""
    return quote(s, safe="~", encoding="utf-8")


def rpc_signature(params: dict[str, str], method: str, secret: str) -> str:
    """The V2 ``Signature`` of ``params`` (all of them except ``Signature``)."""
    cqs = "&".join(f"{percent_encode(k)}={percent_encode(v)}"
                   for k, v in sorted(params.items()) if k != "Signature")
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(cqs)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def acs3_string_to_sign(method: str, path: str, query: dict[str, str],
                        headers: dict[str, str], signed: list[str], body: bytes) -> str:
    """The V3 string to sign, from decoded query values and the signed headers' values."""
    cq = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(query.items()))
    ch = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join([method, path or "/", cq, ch, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
    return "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()


def acs3_signature(secret: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of the V3 string to sign."""
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def raw_query(target: str) -> dict[str, str]:
    """The query string decoded as the SDK encoded it (``+`` is a space); last key wins."""
    _, _, qs = target.partition("?")
    out: dict[str, str] = {}
    for pair in filter(None, qs.split("&")):
        key, _, value = pair.partition("=")
        out[unquote_plus(key)] = unquote_plus(value)
    return out


def _utc_seconds(stamp: str) -> float | None:
    try:
        return float(timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


class AliyunPopDouble(ProviderDouble):
    """An Aliyun RPC API behind a POP gateway: signature, action routing, error shape.

    Subclasses set ``host_id``/``version`` and fill ``self.actions`` (action name ->
    ``fn(params, req) -> Response``); ``params`` merges the query and a form body. Requests
    to paths other than ``/`` go to ``serve_path`` (404 by default).
    ``throttle`` answers ``Throttling.User`` to every API call while true;
    ``throttle_next(n)`` to the next ``n`` only.
    """

    host_id = "aliyuncs.com"
    version = ""

    def __init__(self, access_keys: dict[str, str], faults: FaultPlan | None = None,
                 **kw: Any) -> None:
        super().__init__(faults, **kw)
        self.access_keys = dict(access_keys)
        self.actions: dict[str, Callable[[dict[str, str], Request], Response]] = {}
        self.throttle = False
        self._throttle_left = 0
        self._nonces: set[str] = set()

    def throttle_next(self, n: int = 1) -> None:
        """Answer ``Throttling.User`` to the next ``n`` signed API calls."""
        with self._lock:
            self._throttle_left += n

    def pop_error(self, code: str, message: str | None = None,
                  status: int | None = None) -> Response:
        """A gateway error in Aliyun's shape (what tea-openapi raises from)."""
        default_status, default_message = POP_ERRORS.get(code, (400, code))
        rid = request_id(upper=True)
        return Response.json(status or default_status, {
            "RequestId": rid, "HostId": self.host_id, "Code": code,
            "Message": message or default_message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=POP",
        })

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        code = {500: "InternalError", 503: "ServiceUnavailable"}.get(status, "ServiceUnavailable")
        if status == 429:
            code = "Throttling.User"
        return self.pop_error(code, status=status)

    def serve(self, req: Request) -> Response:
        if req.path not in ("", "/"):
            return self.serve_path(req)
        params = raw_query(req.target)
        if "x-www-form-urlencoded" in (req.header("content-type") or ""):
            params.update({k: v[-1] for k, v in req.form.items()})
        action = req.header("x-acs-action") or params.get("Action")
        self.note(req, action=action, params=params)
        error = self.verify(req, params)
        if error is None and (req.header("x-acs-version") or params.get("Version")) != self.version:
            error = ("InvalidVersion", None)
        if error is None and action not in self.actions:
            error = ("InvalidAction.NotFound", None)
        if error is None and self._throttled():
            error = ("Throttling.User", None)
        if error is not None:
            self.note(req, code=error[0])
            return self.pop_error(*error)
        return self.actions[action](params, req)

    def serve_path(self, req: Request) -> Response:
        """Requests to a path other than ``/`` (e.g. the TTS gateway)."""
        return self.pop_error("InvalidAction.NotFound")

    def _throttled(self) -> bool:
        with self._lock:
            if self._throttle_left > 0:
                self._throttle_left -= 1
                return True
        return self.throttle

    def verify(self, req: Request, params: dict[str, str]) -> tuple[str, str | None] | None:
        """``None`` if the request is signed with a known key, else ``(code, message)``."""
        auth = req.header("authorization") or ""
        if auth.startswith("ACS3-"):
            m = _AUTH_V3.match(auth)
            if m is None:
                return ("IncompleteSignature", None)
            key_id, signed, signature = m.group(1), m.group(2).split(";"), m.group(3).lower()
            stamp, nonce = req.header("x-acs-date"), req.header("x-acs-signature-nonce")
            if req.header("x-acs-content-sha256") != hashlib.sha256(req.body).hexdigest():
                return ("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body")
            query = raw_query(req.target)

            def expected(secret: str) -> tuple[str, str]:
                sts = acs3_string_to_sign(req.method, req.path, query, req.headers, signed,
                                          req.body)
                return acs3_signature(secret, sts), sts
            message = "The request signature does not conform to Aliyun standards. " \
                      "server string to sign is:"
        elif "Signature" in params:
            key_id, signature = params.get("AccessKeyId", ""), params["Signature"]
            stamp, nonce = params.get("Timestamp"), params.get("SignatureNonce")
            if params.get("SignatureMethod") != "HMAC-SHA1":
                return ("InvalidSignatureMethod", "Specified signature method is not supported.")

            def expected(secret: str) -> tuple[str, str]:
                return rpc_signature(params, req.method, secret), "(V2 RPC)"
            message = POP_ERRORS["SignatureDoesNotMatch"][1] + " server string to sign is:"
        else:
            return ("MissingSignature" if "AccessKeyId" in params else "IncompleteSignature", None)
        if key_id not in self.access_keys:
            return ("InvalidAccessKeyId.NotFound", None)
        good, sts = expected(self.access_keys[key_id])
        if not secrets.compare_digest(good, signature):
            return ("SignatureDoesNotMatch", message + sts)
        when = _utc_seconds(stamp or "")
        if when is None or abs(time.time() - when) > SKEW_S:
            return ("InvalidTimeStamp.Expired", None)
        with self._lock:
            if not nonce or nonce in self._nonces:
                return ("SignatureNonceUsed", None)
            self._nonces.add(nonce)
        return None
