"""Start-up: ``broadcaster check`` wall time, and ``broadcaster run`` until ``/healthz`` answers 200.

``check`` runs on the shipped ``config/broadcaster.yaml`` (it only reads). ``run`` starts on a
private copy of ``config/`` and ``audio/`` (as the tests' ``confdir`` fixture makes it) with a
free port and a fresh data directory each time, so every start is a first start: it creates
the ledger and, in season, catches up on tonight's poll. Medians of several runs.

Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.common import ROOT, emit, free_port

BIN = Path(sys.executable).parent


def time_check(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([str(BIN / "broadcaster"), "check", "-c", "config/broadcaster.yaml"], cwd=ROOT,
                              capture_output=True, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"broadcaster check failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return out


def _private_config(tmp: Path) -> tuple[Path, int]:
    shutil.copytree(ROOT / "config", tmp / "config")
    shutil.copytree(ROOT / "audio", tmp / "audio")
    path = tmp / "config" / "broadcaster.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    port = free_port()
    data["http"] = {**data.get("http", {}), "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, port


def time_run(timeout: float = 60) -> dict[str, Any]:
    """One start on a fresh copy: seconds to the first 200 from /healthz, then a clean stop."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        cfg, port = _private_config(Path(tmp))
        log = Path(tmp) / "run.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        with log.open("wb") as fh:
            proc = subprocess.Popen([str(BIN / "broadcaster"), "run", "-c", str(cfg)], cwd=ROOT, env=env,
                                    stdout=fh, stderr=subprocess.STDOUT)
        ready = None
        try:
            while time.perf_counter() - t0 < timeout and proc.poll() is None:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        ready = time.perf_counter() - t0
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if ready is None:
            raise RuntimeError(f"not ready in {timeout} s: {log.read_text(errors='replace')[-2000:]}")
        return {"ready_s": ready, "exit": code}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check-runs", type=int, default=7)
    p.add_argument("--run-runs", type=int, default=3)
    a = p.parse_args(argv)
    checks = time_check(a.check_runs)
    runs = [time_run() for _ in range(a.run_runs)]
    ready = [r["ready_s"] for r in runs]
    emit({
        "check_median_s": round(statistics.median(checks), 3), "check_max_s": round(max(checks), 3),
        "check_runs": len(checks), "run_ready_median_s": round(statistics.median(ready), 3),
        "run_ready_max_s": round(max(ready), 3), "run_runs": len(ready),
        "run_exit_codes": sorted({r["exit"] for r in runs}),
    })


if __name__ == "__main__":
    main()
