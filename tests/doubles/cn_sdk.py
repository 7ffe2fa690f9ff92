"""How to point the official Chinese cloud SDKs at the loopback doubles, plus ``ReceiptSink``,
a tiny HTTP server that keeps what a double's ``push_receipts`` POSTs.

Importing this module imports the SDKs (``alibabacloud-dysmsapi20170525``,
``tencentcloud-sdk-python-sms``, ``tencentcloud-sdk-python-tts``); tests that use it should
``pytest.importorskip`` them first.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alibabacloud_dysmsapi20170525.client import Client as AliyunSmsClient
from alibabacloud_tea_openapi import models as pop
from alibabacloud_tea_openapi.client import Client as PopClient
from darabonba.runtime import RuntimeOptions
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111.sms_client import SmsClient
from tencentcloud.tts.v20190823.tts_client import TtsClient


def aliyun_config(port: int, ak: str, secret: str, **kw: Any) -> pop.Config:
    """tea-openapi ``Config`` for a double: explicit endpoint (it beats the endpoint map) and
    plain HTTP. ``kw``: e.g. ``signature_algorithm="v2"``, ``read_timeout=ms``."""
    return pop.Config(access_key_id=ak, access_key_secret=secret, endpoint=f"127.0.0.1:{port}",
                      protocol="http", **kw)


def aliyun_sms(port: int, ak: str, secret: str, **kw: Any) -> AliyunSmsClient:
    """A dysmsapi client talking to ``AliyunSmsDouble`` on ``port``."""
    return AliyunSmsClient(aliyun_config(port, ak, secret, **kw))


def aliyun_create_token(port: int, ak: str, secret: str, **kw: Any) -> dict[str, Any]:
    """nls-meta ``CreateToken`` through tea-openapi's generic ``call_api`` (the same request
    ``alibabacloud_nls_cloud_meta20190228`` sends, without needing that package); returns the
    JSON body ``{"Token": {"Id", "ExpireTime", "UserId"}, ...}``."""
    params = pop.Params(action="CreateToken", version="2019-02-28", protocol="HTTP",
                        pathname="/", method="POST", auth_type="AK", style="RPC",
                        req_body_type="formData", body_type="json")
    client = PopClient(aliyun_config(port, ak, secret, **kw))
    return client.call_api(params, pop.OpenApiRequest(), RuntimeOptions())["body"]


def tencent_profile(port: int, timeout: float = 10) -> ClientProfile:
    """``ClientProfile`` for a double; ``timeout`` is the SDK's single request timeout (s)."""
    return ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http",
                                                 reqTimeout=timeout))


def tencent_sms(port: int, secret_id: str, secret_key: str, timeout: float = 10,
                region: str = "ap-guangzhou") -> SmsClient:
    """An SMS 2021-01-11 client talking to ``TencentSmsDouble`` on ``port``."""
    return SmsClient(Credential(secret_id, secret_key), region, tencent_profile(port, timeout))


def tencent_tts(port: int, secret_id: str, secret_key: str, timeout: float = 10,
                region: str = "ap-guangzhou") -> TtsClient:
    """A TTS 2019-08-23 client talking to ``TencentTtsDouble`` on ``port``."""
    return TtsClient(Credential(secret_id, secret_key), region, tencent_profile(port, timeout))


class ReceiptSink:
    """A loopback HTTP server keeping every POSTed JSON body; answers ``reply`` (JSON).

    Use as a context manager; ``url`` is ``http://127.0.0.1:PORT/receipts/token``.
    """

    def __init__(self, reply: Any = None) -> None:
        self.reply = reply if reply is not None else {"code": 0, "msg": "接收成功"}
        self.bodies: list[Any] = []
        self.content_types: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.bodies.append(json.loads(raw))
                sink.content_types.append(self.headers.get("Content-Type", ""))
                out = json.dumps(sink.reply, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/receipts/token"

    def __enter__(self) -> ReceiptSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
