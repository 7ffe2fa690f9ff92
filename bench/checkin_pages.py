"""Check-in pages (包户核实, issue 15): 300 cadres open their links at the same moment.

A private copy of ``config/`` with a households workbook (CSV) of ``--cadres`` cadres with three
households each and ``checkins: {send_at: "08:00"}`` (always due: a duty day starts at 08:00), so
``broadcaster run`` sends the links at start. The links are read from the outbox; then
``--cadres`` clients (asyncio, one new connection each) GET their own page at the same moment. Every answer must be 200
and show that cadre's households. Reported: p50, p95 and max latency of those GETs (wall clock,
from the connect to the last byte), the time for all of them and the server's CPU per page; then the median of 100 pages opened one after another (the
server's own time per page, without the crowd).

    python -m bench.checkin_pages [--cadres 300]

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.common import ROOT, emit, free_port, wait_until

BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
LINK = re.compile(r"/c/([A-Za-z0-9_-]{22,})")
VILLAGES = ("东村", "西村", "南村")


def _config(tmp: Path, cadres: int) -> tuple[Path, int]:
    shutil.copytree(ROOT / "config", tmp / "config")
    shutil.copytree(ROOT / "audio", tmp / "audio")
    rows = ["村,户主,地址,类别,联系人,联系电话,包户干部,包户干部电话"]
    for c in range(cadres):
        for h in range(3):
            rows.append(f"{VILLAGES[c % 3]},户主{c}-{h},{VILLAGES[c % 3]}{c}组{h}号,独居老人,"
                        f"联系人{c}-{h},1391{c:03d}{h:04d},干部{c},1380{c:07d}")
    (tmp / "config" / "households.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    d = tmp / "config" / "directory.yaml"
    doc = yaml.safe_load(d.read_text(encoding="utf-8"))
    doc["households_file"] = "households.csv"
    d.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    port = free_port()
    m = tmp / "config" / "broadcaster.yaml"
    doc = yaml.safe_load(m.read_text(encoding="utf-8"))
    doc["http"]["listen"] = f"127.0.0.1:{port}"
    doc["http"]["public_url"] = f"http://127.0.0.1:{port}"
    doc["checkins"] = {"level_at_least": 1, "send_at": "08:00", "confirm_by": "07:59"}
    doc["schedule"]["season"] = {"start": "01-01", "end": "12-31"}
    doc["sms"]["rate_per_s"] = 5000
    m.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return m, port


def _codes(outbox: Path, n: int) -> list[str]:
    if not outbox.exists():
        return []
    found = [LINK.search(json.loads(x)["body"]) for x in outbox.read_text(encoding="utf-8").splitlines()]
    codes = [m.group(1) for m in found if m]
    return codes if len(codes) >= n else []


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _get(port: int, path: str) -> tuple[float, bool]:
    """One phone: a new connection, one GET, the whole answer read (the client costs ~0.1 ms, so
    the figure is the server's, not a Python HTTP library's)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    elapsed = time.perf_counter() - t0
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return elapsed, head.startswith(b"HTTP/1.1 200") and body.count(b'class="home') == 3


async def _burst(port: int, codes: list[str]) -> tuple[list[float], list[bool], float]:
    """Every cadre opens their page at the same moment."""
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_get(port, f"/c/{c}") for c in codes))
    total = time.perf_counter() - t0
    return [r[0] for r in results], [r[1] for r in results], total


def measure(cadres: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-checkin-") as tmp:
        cfg, port = _config(Path(tmp), cadres)
        log = open(Path(tmp) / "run.log", "wb")
        proc = subprocess.Popen([str(BIN / "broadcaster"), "run", "-c", str(cfg)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            outbox = Path(tmp) / "var" / "outbox" / "sms.jsonl"
            assert wait_until(lambda: bool(_codes(outbox, cadres)), 120), "no check-in links were sent"
            codes = _codes(outbox, cadres)[:cadres]
            base = f"http://127.0.0.1:{port}"
            cpu0 = _cpu_s(proc.pid)
            times, ok, total = asyncio.run(_burst(port, codes))
            server_cpu = _cpu_s(proc.pid) - cpu0
            # One cadre after another: the server's own time per page, without the crowd.
            s = requests.Session()
            seq = []
            for i in range(100):
                t1 = time.perf_counter()
                assert s.get(f"{base}/c/{codes[i % cadres]}", timeout=30).status_code == 200
                seq.append(time.perf_counter() - t1)
            seq.sort()
            health = []
            for _ in range(100):
                t1 = time.perf_counter()
                s.get(f"{base}/healthz", timeout=30)
                health.append(time.perf_counter() - t1)
            health.sort()
            lat = sorted(times)
            pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
            return {"cadres": cadres, "ok": sum(ok), "p50_ms": round(pct(0.50) * 1000, 1),
                    "p95_ms": round(pct(0.95) * 1000, 1), "max_ms": round(lat[-1] * 1000, 1),
                    "all_s": round(total, 2), "server_cpu_ms_per_page": round(server_cpu * 1000 / cadres, 2), "sequential_p50_ms": round(seq[50] * 1000, 2),
                    "healthz_p50_ms": round(health[50] * 1000, 2), "load_1min": round(os.getloadavg()[0], 2)}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cadres", type=int, default=300)
    a = p.parse_args()
    emit({"kind": "checkin_pages", **measure(a.cadres)})


if __name__ == "__main__":
    main()
