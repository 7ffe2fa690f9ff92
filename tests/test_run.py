"""``broadcaster run`` start-up: the listener is bound before anything is polled or sent."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.conftest import edit_yaml
from tests.support.procs import BIN, free_port, healthy, spawn, stop, wait_for


def test_a_taken_port_exits_at_once_and_sends_nothing(confdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(listen=f"127.0.0.1:{port}"))
        res = subprocess.run([BIN, "run", "-c", str(confdir / "broadcaster.yaml")], capture_output=True,
                             text=True, timeout=60)
    assert res.returncode == 1
    assert "http.listen" in res.stderr and f"127.0.0.1:{port}" in res.stderr and "--listen" in res.stderr
    var = confdir.parent / "var"
    # No alert, no SMS, no play: not even a ledger was opened.
    assert not (var / "broadcaster.db").exists() and not (var / "outbox").exists() and not (var / "speakers").exists()


def test_listen_option_overrides_the_file(confdir: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = spawn([BIN, "run", "-c", str(confdir / "broadcaster.yaml"), "--listen", f"127.0.0.1:{port}"],
                 tmp_path / "run.log")
    try:
        assert wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), 30), (tmp_path / "run.log").read_text()
    finally:
        assert stop(proc) == 0
    bad = subprocess.run([BIN, "run", "-c", str(confdir / "broadcaster.yaml"), "--listen", "8080"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--listen" in bad.stderr
