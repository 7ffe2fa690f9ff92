"""``broadcaster agent``: the village playback agent's command line (DESIGN A3, A7)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broadcaster.cli.common import load
from broadcaster.errors import InputError

log = logging.getLogger("broadcaster.agent")


def cmd_agent(args: argparse.Namespace) -> int:
    """Run until stopped; a refused token ends it (AgentError: exit 1, mapped in ``cli.main``)."""
    from broadcaster.agent import Agent, command_player, default_cache_dir, default_player_command, say

    if args.action == "add":
        return cmd_agent_add(args)
    if not args.server:
        raise InputError("--server", "需要 --server，例如 https://broadcast.example.cn / --server is required")
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


_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def cmd_agent_add(args: argparse.Namespace) -> int:
    """Make a new broadcast-room agent in one step: a fresh token, and the directory.yaml lines
    that register it (only the token's hash goes into the file). Nothing is written: the admin
    pastes the lines, runs ``check``, and reloads the service (``kill -HUP``) or restarts it."""
    from broadcaster.web.auth import hash_token

    for flag, value in (("--village", args.village), ("--id", args.id)):
        if not value:
            raise InputError(flag, f"agent add 需要 {flag} / agent add needs {flag}")
    cfg = load(args)
    if args.village not in cfg.villages:
        known = "、".join(f"{v.name}（{vid}）" for vid, v in cfg.villages.items())
        raise InputError("--village", f"未知的村：{args.village}；已知的村：{known} / unknown village")
    if not _ID.match(args.id):
        raise InputError("--id", "终端编号只能用小写字母、数字、- 和 _，例如 dongcun-room / use a-z, 0-9, - and _")
    if args.id in cfg.speakers:
        raise InputError("--id", f"终端编号 {args.id} 已被使用 / speaker id already in use")
    token = secrets.token_urlsafe(32)
    village = cfg.villages[args.village]
    print(f"1. 把下面这一行加到 directory.yaml 中 {village.name}（{args.village}）的 speakers 下：")
    print(f"      - {{id: {args.id}, type: agent, token_sha256: {hash_token(token)}}}")
    print(f"2. 检查配置：broadcaster check -c {cfg.path}")
    print("3. 让运行中的服务读取新配置：kill -HUP <broadcaster run 的进程号>（或重启服务）")
    print(f"4. 在{village.name}广播室的电脑上运行（令牌只显示这一次，请妥善保存）：")
    print(f"      BROADCASTER_AGENT_TOKEN=<下面的令牌> broadcaster agent --server {cfg.settings.http.public_url}")
    print(token)
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``broadcaster agent`` (run the agent) and ``broadcaster agent add`` (register one)."""
    sp = add("agent", cmd_agent, "village playback agent: pull plays, play them on time, report; "
                                 "`agent add --village V --id X` registers a new one")
    sp.add_argument("action", nargs="?", choices=["add"], help="add: 生成新代理的令牌和 directory.yaml 配置行 / "
                                                               "make a new agent's token and directory lines")
    sp.add_argument("--village", help="(add) village id from directory.yaml")
    sp.add_argument("--id", help="(add) the new speaker's id, e.g. dongcun-room")
    sp.add_argument("--server", help="server URL, e.g. https://broadcast.example.cn")
    sp.add_argument("--token", default=None, help="this speaker's agent token (or $BROADCASTER_AGENT_TOKEN)")
    sp.add_argument("--cache", default=None, help="cache directory (default ~/.cache/broadcaster-agent)")
    sp.add_argument("--player", default=None,
                    help='player command line with {file}, e.g. "aplay -D plughw:1,0 {file}" '
                         "(default: ffplay, aplay or paplay, whichever is found)")
    sp.add_argument("--wait", type=float, default=30, help="long-poll seconds (default 30, at most 60)")
