"""Built-in village agents: ``broadcaster run`` plays ``builtin: true`` agent speakers itself.

A built-in agent is the ordinary :class:`broadcaster.agent.Agent`, run in a thread of the service
and talking to it over loopback HTTP like any broadcast-room PC would, so plays go through the same
commands, results and ledger states (``played``). Its token is made up at start-up and lives only
in memory: there is no secret to keep in YAML. The default player copies each bulletin into
``played_dir`` (``{data_dir}/played/{speaker}``), so a demo shows what was played and when.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading

from broadcaster.agent import Agent, command_player, copy_player
from broadcaster.channels.speakers.agent import AgentConfig
from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)


class BuiltinAgents:
    """The service's in-process agents; :meth:`start` after the HTTP server is listening."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.agents: list[Agent] = []
        digests: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        for sid, (_village, sc) in svc.cfg.speakers.items():
            if isinstance(sc, AgentConfig) and sc.builtin:
                token = secrets.token_urlsafe(32)
                self._tokens[sid] = token
                digests[sid] = hashlib.sha256(token.encode()).hexdigest()
        # web.auth.resolve_token accepts these alongside the directory's tokens.
        svc.builtin_agent_digests = digests

    def start(self, server_url: str) -> None:
        cfg = self.svc.cfg
        for sid, token in self._tokens.items():
            sc = cfg.speakers[sid][1]
            assert isinstance(sc, AgentConfig)
            played = cfg.directory_dir / sc.played_dir if sc.played_dir else cfg.data_dir / "played" / sid
            player = command_player(sc.player) if sc.player else copy_player(played.resolve(), cfg.tz)
            agent = Agent(server_url, token, cfg.data_dir / "agents" / sid, player, clock=self.svc.clock, wait=30)
            self.agents.append(agent)
            threading.Thread(target=self._run, args=(sid, agent), name=f"agent-{sid}", daemon=True).start()
            log.info("built-in agent for speaker %s started", sid)

    @staticmethod
    def _run(sid: str, agent: Agent) -> None:
        try:
            agent.run()
        except Exception:
            log.exception("built-in agent %s stopped", sid)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
