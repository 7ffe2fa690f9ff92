"""Bounded request bodies and authentication before a body is read (issue 18, items 5 and 9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.formparsers import MultiPartParser

from tests.test_api import Api, make_api


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    yield a
    a.svc.close()


def _h(api: Api, who: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[who]}"}


def test_a_json_body_over_64_kb_is_refused_before_it_is_parsed(api: Api) -> None:
    body = {"text": "测试", "villages": [], "sms_groups": ["duty"], "padding": "x" * 70_000}
    r = api.client.post("/api/v1/broadcasts", json=body, headers=_h(api))
    assert r.status_code == 413 and "请求内容过大" in r.json()["detail"]
    # The same body streamed without a Content-Length is cut off as it grows.
    import json
    data = json.dumps(body).encode()
    r = api.client.post("/api/v1/broadcasts", content=iter([data[:40_000], data[40_000:]]),
                        headers={**_h(api), "Content-Type": "application/json"})
    assert r.status_code == 413
    del body["padding"]
    assert api.client.post("/api/v1/broadcasts", json=body, headers=_h(api)).status_code == 201


def test_an_upload_over_11_mb_is_refused_whoever_sends_it(api: Api) -> None:
    files = {"audio": ("big.mp3", b"\\xff" * (12 * 1024 * 1024), "audio/mpeg")}
    r = api.client.post("/api/v1/broadcasts/upload", data={"text": "录音"}, files=files)
    assert r.status_code == 413


def test_an_upload_without_a_token_is_refused_before_its_body_is_read(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    real = MultiPartParser.parse

    async def spy(self):  # type: ignore[no-untyped-def]
        parsed.append(1)
        return await real(self)

    monkeypatch.setattr(MultiPartParser, "parse", spy)
    files = {"audio": ("a.mp3", b"\\xff" * 100_000, "audio/mpeg")}
    r = api.client.post("/api/v1/broadcasts/upload", data={"text": "录音"}, files=files,
                        headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401 and parsed == []
    assert any(e.action == "auth.failed" for e in api.audit())


def test_lists_in_a_broadcast_are_bounded(api: Api) -> None:
    r = api.client.post("/api/v1/broadcasts", json={"text": "测试", "villages": ["x"] * 1001}, headers=_h(api))
    assert r.status_code == 422


def test_nothing_to_speak_and_ids_beyond_64_bits_are_4xx(api: Api) -> None:
    r = api.client.post("/api/v1/broadcasts", json={"text": "...", "villages": "all"}, headers=_h(api))
    assert r.status_code == 422 and r.json()["detail"]["field"] == "text"
    assert api.client.post("/api/v1/preview", json={"text": "..."}, headers=_h(api)).status_code == 422
    for path in (f"/api/v1/broadcasts/{2**64}", f"/api/v1/broadcasts/{2**70}/approve"):
        r = (api.client.get if "approve" not in path else api.client.post)(path, headers=_h(api, "admin"))
        assert r.status_code in (404, 422), (path, r.status_code)


def test_an_ffconcat_script_is_not_a_recording(api: Api, confdir: Path) -> None:
    """ffmpeg, left to probe, follows a concat script to a file on the server and makes a
    broadcast of it; now only audio by its magic bytes is decoded, and ffmpeg's words and the
    temporary paths never reach the user."""
    server_file = confdir.parent / "audio" / "clips" / "demo-zh.wav"
    script = f"ffconcat version 1.0\nfile '{server_file}'\n".encode()
    form = {"text": "录音广播", "villages": "dongcun"}
    r = api.client.post("/api/v1/broadcasts/upload", data=form, headers=_h(api),
                        files={"audio": ("x.mp3", script, "audio/mpeg")})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "audio"
    assert str(server_file) not in r.text and "/tmp" not in r.text and "ffconcat" not in r.text
    # A recording that only looks like MP3 by its first bytes is refused without ffmpeg's stderr.
    r = api.client.post("/api/v1/broadcasts/upload", data=form, headers=_h(api),
                        files={"audio": ("x.mp3", b"ID3" + script, "audio/mpeg")})
    assert r.status_code == 422 and "/tmp" not in r.text and "Invalid" not in r.text


def test_broadcasts_per_user_and_hour_are_bounded(confdir: Path) -> None:
    api = make_api(confdir, lambda d: d["http"].update(broadcasts_per_hour=3))
    try:
        body = {"text": "测试", "villages": "all"}
        codes = [api.client.post("/api/v1/broadcasts", json=body, headers=_h(api)).status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        assert api.client.post("/api/v1/broadcasts", json=body, headers=_h(api, "bob")).status_code == 201  # another user
        api.clock.advance(3601)
        assert api.client.post("/api/v1/broadcasts", json=body, headers=_h(api)).status_code == 201
    finally:
        api.svc.close()
