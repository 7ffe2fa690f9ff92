"""Baselines for the fan-out, against the same Twilio double (``bench.doubles``).

* ``pooled``: the limit. A minimal client: one ``requests.Session`` whose ``HTTPAdapter`` pool is
  sized to the concurrency, a ``ThreadPoolExecutor`` of that many threads, each POSTing the same
  form body (To, From, Body) with Basic auth and reading the sid from the JSON answer. No ledger,
  no SDK, no retries, no logging.
* ``naive``: the twilio SDK's ``client.messages.create`` called one message after another
  (``--n`` messages are timed and the rate extrapolated).
* ``apprise``: apprise's Twilio notifier. It cannot be pointed at the double without changing
  its code (see ``apprise_verdict``); for an indication only, its hard-coded API URL is
  overridden on the plugin instance, and the result says so (``patched``).

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import FROM, SID, SMS_BODY, TOKEN, Usage, emit, phone


def pooled(url: str, n: int, concurrency: int) -> dict[str, Any]:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    session.auth = (SID, TOKEN)
    endpoint = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
    ok = 0
    lock = threading.Lock()

    def send(i: int) -> None:
        nonlocal ok
        r = session.post(endpoint, data={"To": phone(i), "From": FROM, "Body": SMS_BODY}, timeout=10)
        if r.status_code == 201 and r.json()["sid"]:
            with lock:
                ok += 1

    u0, t0 = Usage.now(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(n)))
    elapsed = time.perf_counter() - t0
    u1 = Usage.now()
    return {"kind": "pooled", "n": n, "ok": ok, "concurrency": concurrency, "total_s": round(elapsed, 3),
            "sms_per_s": round(n / elapsed, 1), "cpu_s": round(u1.cpu_s - u0.cpu_s, 2),
            "cpu_ms_per_msg": round(1000 * (u1.cpu_s - u0.cpu_s) / n, 3), "peak_rss_mb": round(u1.peak_rss_mb, 1)}


def naive(url: str, n: int) -> dict[str, Any]:
    from twilio.rest import Client

    client = Client(SID, TOKEN)
    client.edge = client.region = None
    client.api.base_url = url
    ok = 0
    u0, t0 = Usage.now(), time.perf_counter()
    for i in range(n):
        msg = client.messages.create(to=phone(i), from_=FROM, body=SMS_BODY)
        ok += bool(msg.sid)
    elapsed = time.perf_counter() - t0
    u1 = Usage.now()
    return {"kind": "naive", "n": n, "ok": ok, "concurrency": 1, "total_s": round(elapsed, 3),
            "sms_per_s": round(n / elapsed, 1), "cpu_s": round(u1.cpu_s - u0.cpu_s, 2),
            "cpu_ms_per_msg": round(1000 * (u1.cpu_s - u0.cpu_s) / n, 3), "peak_rss_mb": round(u1.peak_rss_mb, 1)}


def apprise_verdict() -> str:
    """Why apprise's Twilio notifier cannot be pointed at a loopback double as it is."""
    return ("not possible without changing its code: apprise.plugins.twilio.NotifyTwilio builds its "
            "request URL from the class attribute notify_sms_url = "
            "'https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json' (no URL parameter "
            "or setting changes the host or scheme), and it sends with the module-level "
            "requests.post(), which makes a new Session per call, so there is no session to mount "
            "a transport adapter on; redirecting would mean patching requests or the resolver, or "
            "DNS plus a TLS proxy for api.twilio.com on this shared machine")


def apprise_patched(url: str, n: int) -> dict[str, Any]:
    """Apprise with its notify URL overridden on the instance (a code change, labelled so)."""
    import apprise

    targets = "/".join(phone(i).lstrip("+") for i in range(n))
    ap = apprise.Apprise()
    if not ap.add(f"twilio://{SID}:{TOKEN}@{FROM.lstrip('+')}/{targets}"):
        raise RuntimeError("apprise rejected the twilio:// URL")
    plugin = ap[0]
    # THE PATCH: an instance attribute shadows the hard-coded https://api.twilio.com URL.
    plugin.notify_sms_url = url + "/2010-04-01/Accounts/{sid}/Messages.json"
    u0, t0 = Usage.now(), time.perf_counter()
    ok = ap.notify(body=SMS_BODY)
    elapsed = time.perf_counter() - t0
    u1 = Usage.now()
    return {"kind": "apprise", "n": n, "ok": n if ok else 0, "concurrency": 1, "total_s": round(elapsed, 3),
            "sms_per_s": round(n / elapsed, 1), "cpu_s": round(u1.cpu_s - u0.cpu_s, 2),
            "cpu_ms_per_msg": round(1000 * (u1.cpu_s - u0.cpu_s) / n, 3), "peak_rss_mb": round(u1.peak_rss_mb, 1),
            "throttle_s": getattr(plugin, "request_rate_per_sec", None), "verdict": apprise_verdict(),
            "patched": "instance attribute notify_sms_url set to the double's http URL"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("pooled", "naive", "apprise"))
    p.add_argument("--twilio-url", required=True)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args(argv)
    if a.kind == "pooled":
        emit(pooled(a.twilio_url, a.n, a.concurrency))
    elif a.kind == "naive":
        emit(naive(a.twilio_url, a.n))
    else:
        emit(apprise_patched(a.twilio_url, a.n))


if __name__ == "__main__":
    main()
