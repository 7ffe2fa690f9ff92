"""Quiet when idle (issue 11, DESIGN A8): CPU of an idle ``broadcaster run`` with agents connected.

    python bench/idle.py                       # 1 and 300 agents, one minute each
    python bench/idle.py --agents 300 --minutes 2 --write

For each N, a copy of the demo configuration with N villages, each with an ``agent`` speaker, is
run with its wall clock at 18:30 of today (tests/support/clock.py), so that tonight's 19:30 play
is an hour away: the catch-up poll makes the alert, every agent fetches its command and audio,
and then nothing is due. N agents (``broadcaster.agent.Agent``, the same code a village PC runs)
loop in this process against the service over loopback. Measured over the window: the service's
CPU seconds (``/proc/PID/stat``, all threads), every HTTP request the agents made, and this
process's CPU (the agents' own). ``--write`` puts the table into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Usage, free_port, wait_until  # noqa: E402
from broadcaster.agent import Agent  # noqa: E402
from tests.support import clock  # noqa: E402
from tests.support.procs import cpu_seconds, healthy  # noqa: E402

BIN = Path(sys.executable).with_name("broadcaster")
START, END = "<!-- idle:start -->", "<!-- idle:end -->"


class CountingSession(requests.Session):
    """A requests session that counts what it sends (an agent's requests to the server)."""

    def __init__(self, counter: list[int], lock: threading.Lock) -> None:
        super().__init__()
        self._counter, self._lock = counter, lock

    def request(self, *args: Any, **kw: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            self._counter[0] += 1
        return super().request(*args, **kw)


def prepare(base: Path, n: int, port: int) -> list[str]:
    """The demo config with ``n`` agent villages; returns their tokens."""
    shutil.copytree(ROOT / "config", base / "config")
    shutil.copytree(ROOT / "audio", base / "audio")
    cfg = base / "config"
    tokens = [f"bench-agent-token-{i:04d}-0123456789" for i in range(n)]
    directory = yaml.safe_load((cfg / "directory.yaml").read_text(encoding="utf-8"))
    directory["villages"] = [
        {"id": f"v{i:03d}", "name": f"第{i}村", "speakers": [
            {"id": f"v{i:03d}-room", "type": "agent", "token_sha256": hashlib.sha256(t.encode()).hexdigest()}]}
        for i, t in enumerate(tokens)]
    directory["contacts"] = [{k: v for k, v in c.items() if k != "village"} for c in directory["contacts"]]
    (cfg / "directory.yaml").write_text(yaml.safe_dump(directory, allow_unicode=True), encoding="utf-8")
    main = yaml.safe_load((cfg / "broadcaster.yaml").read_text(encoding="utf-8"))
    main["http"].update(listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}")
    (cfg / "broadcaster.yaml").write_text(yaml.safe_dump(main, allow_unicode=True), encoding="utf-8")
    return tokens


def measure(n: int, minutes: float) -> dict[str, Any]:
    at = clock.today_at(18, 30)
    env = {**os.environ, **clock.env_at(at), "PYTHONUNBUFFERED": "1"}
    clock.travel(at)  # this process's agents share the service's clock
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        tokens = prepare(Path(tmp), n, port)
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "run.log").open("wb")
        proc = subprocess.Popen([str(BIN), "run", "-c", str(Path(tmp) / "config" / "broadcaster.yaml")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        count, lock = [0], threading.Lock()
        agents = [Agent(url, t, Path(tmp) / "agents" / str(i), lambda p: None, wait=30,
                        session=CountingSession(count, lock)) for i, t in enumerate(tokens)]
        try:
            if not wait_until(lambda: healthy(url), 30, 0.2):
                raise RuntimeError("service did not start")
            for a in agents:
                threading.Thread(target=a.run, daemon=True).start()
            cached = lambda: sum(1 for a in agents if any((a.cache / "audio").glob("*.mp3")))  # noqa: E731
            if not wait_until(lambda: cached() == n, 120, 0.5):
                raise RuntimeError(f"only {cached()} of {n} agents got their play")
            time.sleep(5)  # hand-overs noted, every agent back in its long poll
            cpu0, req0, own0, t0 = cpu_seconds(proc.pid), count[0], Usage.now().cpu_s, time.monotonic()
            time.sleep(60 * minutes)
            cpu1, req1, own1, t1 = cpu_seconds(proc.pid), count[0], Usage.now().cpu_s, time.monotonic()
        finally:
            for a in agents:
                a.stop()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    span_min = (t1 - t0) / 60
    return {"agents": n, "window_s": round(t1 - t0, 1), "service_cpu_s_per_min": round((cpu1 - cpu0) / span_min, 3),
            "service_core_share": (cpu1 - cpu0) / (t1 - t0),
            "requests_per_agent_per_min": round((req1 - req0) / n / span_min, 2),
            "agents_cpu_s_per_min": round((own1 - own0) / span_min, 3)}


def table(rows: list[dict[str, Any]]) -> str:
    out = [START, "## Idle (issue 11)", "",
           "`python bench/idle.py --write`: the demo service with N agent villages, tonight's play an hour away "
           "(clock at 18:30), the agents (the real `Agent` code, N loops in one process) connected over loopback; "
           "measured over a quiet window. Target (DESIGN A8): under 1% of a core, one long poll per agent per `wait` (30 s).",
           "", "| agents | window (s) | service CPU s / min | share of a core | requests / agent / min | agents' CPU s / min |",
           "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['agents']} | {r['window_s']} | {r['service_cpu_s_per_min']} | "
                   f"{r['service_core_share']:.2%} | {r['requests_per_agent_per_min']} | {r['agents_cpu_s_per_min']} |")
    out += ["", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs.", END]
    return "\n".join(out) + "\n"


def write(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text(encoding="utf-8")
    if START in old:
        old = old[: old.index(START)] + old[old.index(END) + len(END):].lstrip("\n")
    path.write_text(old.rstrip("\n") + "\n\n" + text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", default="1,300", help="comma-separated agent counts")
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(argv)
    rows = []
    for n in (int(x) for x in a.agents.split(",")):
        # Each size in a process of its own: 300 agents' threads must not weigh on the next run.
        if len(a.agents.split(",")) > 1:
            out = subprocess.run([sys.executable, __file__, "--agents", str(n), "--minutes", str(a.minutes)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            rows.append(measure(n, a.minutes))
            print(json.dumps(rows[-1]))
    if len(rows) > 1 or a.write:
        text = table(rows)
        print(text)
        if a.write:
            write(text)


if __name__ == "__main__":
    main()
