"""The village playback agent (``broadcaster agent``, DESIGN A7): :class:`Agent` pulls, caches,
plays on time and reports; :mod:`broadcaster.agent.players` plays a file through the sound card."""

from broadcaster.agent.core import Agent, default_cache_dir, say
from broadcaster.agent.players import Player, command_player, copy_player, default_player_command

__all__ = ["Agent", "Player", "command_player", "copy_player", "default_cache_dir", "default_player_command", "say"]
