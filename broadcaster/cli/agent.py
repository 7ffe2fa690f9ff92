"""``broadcaster agent``: the village playback agent's command line (DESIGN A3, A7)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broadcaster.errors import InputError

log = logging.getLogger("broadcaster.agent")


def cmd_agent(args: argparse.Namespace) -> int:
    """Run until stopped; a refused token ends it (AgentError: exit 1, mapped in ``cli.main``)."""
    from broadcaster.agent import Agent, command_player, default_cache_dir, default_player_command, say

    token = args.token or os.environ.get("BROADCASTER_AGENT_TOKEN", "")
    if not token:
        raise InputError("--token", "需要 --token（或环境变量 BROADCASTER_AGENT_TOKEN）/ --token is required")
    player = command_player(args.player or default_player_command())
    cache = Path(args.cache) if args.cache else default_cache_dir()
    agent = Agent(args.server, token, cache, player, wait=args.wait)
    try:
        agent.run()
    except KeyboardInterrupt:
        agent.stop()
        say("广播室代理已停止。")
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``broadcaster agent`` to the CLI."""
    sp = add("agent", cmd_agent, "village playback agent: pull plays, play them on time, report")
    sp.add_argument("--server", required=True, help="server URL, e.g. https://broadcast.example.cn")
    sp.add_argument("--token", default=None, help="this speaker's agent token (or $BROADCASTER_AGENT_TOKEN)")
    sp.add_argument("--cache", default=None, help="cache directory (default ~/.cache/broadcaster-agent)")
    sp.add_argument("--player", default=None,
                    help='player command line with {file}, e.g. "aplay -D plughw:1,0 {file}" '
                         "(default: ffplay, aplay or paplay, whichever is found)")
    sp.add_argument("--wait", type=float, default=30, help="long-poll seconds (default 30, at most 60)")
