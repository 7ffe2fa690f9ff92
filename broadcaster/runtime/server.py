"""``broadcaster run``: scheduler, dispatcher and HTTP server in one process, stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from broadcaster.config import Config
from broadcaster.errors import BroadcasterError
from broadcaster.ledger.nodes import node_name
from broadcaster.runtime.http import server_config

if TYPE_CHECKING:
    from broadcaster.runtime.builtin_agents import BuiltinAgents

log = logging.getLogger(__name__)


def bind(cfg: Config, host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is polled or sent: a service that cannot
    serve its console and agents must not start sending (and would send again on its next start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Small answers on keep-alive connections (headers and body written apart) must not wait ~40 ms
    # for the client's delayed ACK (Nagle): TCP_NODELAY on the listener, which accepted connections
    # inherit, and IPPROTO_TCP named so that asyncio sets it on them too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BroadcasterError(
            f"{cfg.path.name}: http.listen: 无法监听 {host}:{port}（{exc.strerror or exc}）。"
            f"请在 http.listen 中换一个端口，或用 `broadcaster run --listen HOST:PORT`"
            f"（或环境变量 BROADCASTER_LISTEN）。 / cannot listen on {host}:{port} "
            f"({exc.strerror or exc}): change http.listen, or use --listen HOST:PORT"
        ) from exc
    sock.set_inheritable(True)
    return sock


def serve(cfg: Config) -> int:
    from broadcaster.auth.accounts import Accounts
    from broadcaster.runtime.builtin_agents import BuiltinAgents
    from broadcaster.runtime.scheduler import Scheduler
    from broadcaster.runtime.service import Service
    from broadcaster.web.app import create_app

    http = cfg.settings.http
    sock = bind(cfg, http.host, http.port)
    svc = Service(cfg)
    # Claims and leadership are stamped with this name (A15): stable across restarts of this node.
    svc.ledger.node = node_name(http.port)
    agents = BuiltinAgents(svc)
    sched = Scheduler(svc)

    app = create_app(svc, sched)

    def stopping() -> None:
        svc.stopping.set()
        app.state.command_watch.close()  # open long polls answer now instead of holding the shutdown
        agents.stop()

    server = _Server(stopping, server_config(app, http.host, http.port))
    log.info("broadcaster starting: %s, node %s, ledger %s, console %s", cfg.settings.town, svc.ledger.node,
             "SQLite" if svc.ledger.is_sqlite else "PostgreSQL", http.public_url)
    if not Accounts(svc.ledger).has_users():
        log.warning("no console users yet; create one with: broadcaster user add --name NAME --role admin -c %s",
                    cfg.path)

    def on_signal(signum: int, _frame: object) -> None:
        # uvicorn handles these while it runs and re-raises them after its own shutdown;
        # this handler makes that re-raise (or a signal during start-up) a clean stop.
        stopping()
        server.should_exit = True
        server.wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # `kill -HUP`: read directory.yaml again (new villages' endpoints and agents), off the signal
    # handler so that a slow load never blocks the event loop's thread.
    signal.signal(signal.SIGHUP, lambda _s, _f: threading.Thread(target=svc.reload_directory, daemon=True,
                                                                 name="reload").start())
    svc.dispatcher.start()
    sched.start()
    if svc.builtin_agent_digests:
        host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
        threading.Thread(target=_start_when_listening, args=(server, agents, f"http://{host}:{http.port}"),
                         daemon=True).start()
    try:
        if not server.should_exit:
            server.run(sockets=[sock])  # returns on SIGINT/SIGTERM
    finally:
        log.info("shutting down: finishing in-flight sends")
        agents.stop()
        sched.shutdown()
        svc.close()
        sock.close()
        log.info("stopped")
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, telling the service as soon as a stop signal arrives.

    uvicorn's own main loop wakes ten times a second to look at ``should_exit``; this one wakes
    once a second (for the ``Date`` header) or at once when told to stop (DESIGN A8: quiet when idle).
    """

    def __init__(self, on_exit: Callable[[], None], config: uvicorn.Config) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = asyncio.Event()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)
        self.wake()

    def wake(self) -> None:
        """End the main loop's wait now (from a signal handler or another thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # uvicorn counts tenths of a second
            try:
                await asyncio.wait_for(self._exit.wait(), 1.0)
            except TimeoutError:
                pass


def _start_when_listening(server: uvicorn.Server, agents: "BuiltinAgents", url: str) -> None:
    """Built-in agents talk to the service over HTTP, so they start once it listens."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        agents.start(url)
