"""Shared helpers of the benchmark scenarios: paths, the doubles process, usage, results I/O."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/ first, not the project root
    sys.path.insert(0, str(ROOT))

SID = "AC" + "7" * 32
TOKEN = "be0c4" + "0" * 27  # 32 hex digits: apprise validates the shape of a Twilio token
SPEAKER_TOKEN = "bench-speaker-token"
FROM = "+15005550006"
RESULT_PREFIX = "RESULT "  # a scenario's last stdout line: RESULT {json}
PG_URL = os.environ.get("BROADCASTER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

# A typical level-4 SMS (Chinese, 2 UCS-2 segments), the same for every recipient and baseline.
SMS_BODY = ("【XX镇文化站】今晚XX镇一氧化碳中毒气象条件4级（高），夜间风小湿度大，易形成逆温。"
            "请勿门窗紧闭用煤炉取暖，睡前熄火，保持通风。")


def phone(i: int) -> str:
    """The i-th distinct, valid Chinese mobile number in E.164."""
    return f"+86138{i:08d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and peak RSS of this process so far."""

    cpu_s: float
    peak_rss_mb: float

    @classmethod
    def now(cls) -> Usage:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return cls(ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024)  # ru_maxrss is KiB on Linux


def emit(result: dict[str, Any]) -> None:
    """Hand a scenario's result to ``run.py`` (one line on stdout)."""
    print(RESULT_PREFIX + json.dumps(result, ensure_ascii=False), flush=True)


def run_scenario(module: str, args: list[str], *, timeout: float = 900,
                 log: Path | None = None) -> dict[str, Any]:
    """Run ``python -m bench.<module> args`` in a fresh process and return its RESULT.

    Its stderr (the service's log lines) goes to ``log`` or is dropped.
    """
    err = log.open("ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run([sys.executable, "-m", f"bench.{module}", *args], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=err, timeout=timeout, check=False)
    finally:
        if log:
            err.close()  # type: ignore[union-attr]
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = proc.stdout.decode()[-2000:]
        raise RuntimeError(f"bench.{module} {' '.join(args)} exited {proc.returncode}: {tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


class _DoubleProcess:
    """One double (``python -m bench.doubles KIND``); commands over stdin, JSON answers on stdout."""

    def __init__(self, which: str, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.doubles", which, "--latency-ms", str(latency_ms)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.url: str = self._read()["url"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a doubles process died")
        return json.loads(line)

    def command(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Doubles:
    """The Twilio double and the speaker receiver, each in a process of its own (``bench.doubles``)."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms
        self._twilio = _DoubleProcess("twilio", latency_ms)
        try:
            self._speaker = _DoubleProcess("speaker", latency_ms)
        except Exception:
            self._twilio.close()
            raise
        self.twilio_url = self._twilio.url
        self.speaker_url = self._speaker.url

    def clear(self) -> None:
        """Forget what was received so far and restart the CPU meters."""
        self._twilio.command("clear")
        self._speaker.command("clear")

    def stats(self) -> dict[str, Any]:
        """What the doubles received since ``clear`` and the CPU they used for it (both added)."""
        tw, sp = self._twilio.command("stats"), self._speaker.command("stats")
        return {**tw, **sp, "double_cpu_s": round(tw["double_cpu_s"] + sp["double_cpu_s"], 3),
                "twilio_cpu_s": tw["double_cpu_s"], "speaker_cpu_s": sp["double_cpu_s"],
                "internal_errors": tw["internal_errors"] + sp["internal_errors"]}

    def close(self) -> None:
        self._twilio.close()
        self._speaker.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(pred: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False
