"""The public page under a burst of visits (DESIGN A12: the link staff forward to every WeChat group).

Starts ``broadcaster run`` on a private copy of ``config/`` (season all year, a poll run first so
tonight has an alert), then ``--clients`` keep-alive HTTP/1.1 connections, spread over
``--procs`` client processes, fetch ``GET /public`` (or ``--path``) for ``--seconds``. Counts
answers (200 and 304 separately), errors, and latency percentiles. Prints one ``RESULT {json}``.

    .venv/bin/python -m bench.public_page --seconds 10 --clients 32
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.common import ROOT, emit, free_port

BIN = Path(sys.executable).parent / "broadcaster"


def _client(port: int, path: str, seconds: float, threads: int, etag: bool, out: Any) -> None:
    counts = {"200": 0, "304": 0, "other": 0, "errors": 0}
    lat: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        tag: str | None = None
        mine = {"200": 0, "304": 0, "other": 0, "errors": 0}
        my_lat: list[float] = []
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"If-None-Match": tag} if (etag and tag) else {})
                resp = conn.getresponse()
                resp.read()
                key = str(resp.status) if resp.status in (200, 304) else "other"
                mine[key] += 1
                tag = resp.getheader("ETag") or tag
            except (OSError, http.client.HTTPException):
                mine["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            my_lat.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            for k, v in mine.items():
                counts[k] += v
            lat.extend(my_lat)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((counts, lat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--path", default="/public")
    ap.add_argument("--etag", action="store_true", help="send If-None-Match like a browser revisiting")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-public-") as tmp:
        t = Path(tmp)
        shutil.copytree(ROOT / "config", t / "config")
        shutil.copytree(ROOT / "audio", t / "audio")
        cfg = t / "config" / "broadcaster.yaml"
        data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        port = free_port()
        data["http"] = {**data.get("http", {}), "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
        data["schedule"] = {**data.get("schedule", {}), "season": {"start": "01-01", "end": "12-31"}}
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        subprocess.run([str(BIN), "poll", "-c", str(cfg)], check=True, capture_output=True)
        log = (t / "run.log").open("wb")
        proc = subprocess.Popen([str(BIN), "run", "-c", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            page = requests.get(url + args.path, timeout=10)
            assert page.status_code == 200, page.status_code
            q: Any = mp.Queue()
            per = max(1, args.clients // args.procs)
            ps = [mp.Process(target=_client, args=(port, args.path, args.seconds, per, args.etag, q))
                  for _ in range(args.procs)]
            for p in ps:
                p.start()
            results = [q.get() for _ in ps]
            for p in ps:
                p.join()
        finally:
            proc.terminate()
            proc.wait(30)
    total = {k: sum(r[0][k] for r in results) for k in results[0][0]}
    lat = sorted(x for r in results for x in r[1])
    ok = total["200"] + total["304"]
    emit({"path": args.path, "seconds": args.seconds, "clients": per * args.procs, "etag": args.etag,
          "answers": total, "req_per_s": round(ok / args.seconds, 1),
          "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
          "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2) if lat else None,
          "page_bytes": len(page.content)})


if __name__ == "__main__":
    main()
