"""Plugins (DESIGN A9): every kind of outside thing is found through Python entry points.

The built-ins are registered the same way as a county's own package would register its own, in
``pyproject.toml``::

    [project.entry-points."broadcaster.sms"]
    twilio = "broadcaster.channels.sms.twilio:TwilioProvider"

A plugin is a class with ``type`` (its name, the value users write in the configuration) and
``Config`` (a pydantic model of its settings, validated with the rest of the configuration so
that its errors name the file and key like any other). What else a plugin implements depends on
its kind; each kind's base class documents it (``feeds.base.Source``, ``channels.sms.base.
SmsProvider``, ``channels.speakers.base.SpeakerChannel``, ``audio.engines.base.Engine``).

This module only finds plugins; it imports none of them until they are asked for, so a broken
third-party plugin cannot stop a deployment that does not use it.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

#: kind -> entry-point group (DESIGN A9)
GROUPS: dict[str, str] = {
    "feeds": "broadcaster.feeds",
    "sms": "broadcaster.sms",
    "speakers": "broadcaster.speakers",
    "chats": "broadcaster.chats",
    "displays": "broadcaster.displays",
    "tts": "broadcaster.tts",
}

_cache: dict[str, dict[str, type[Any]]] = {}
_lock = threading.Lock()


class PluginConfig(BaseModel):
    """Base of every plugin's configuration model: unknown keys are errors (typos surface)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PluginError(Exception):
    """A plugin is installed but cannot be used (it fails to import, or its class is malformed)."""


def names(kind: str) -> list[str]:
    """The names registered for ``kind``, without importing any plugin."""
    return sorted({ep.name for ep in _entry_points(kind)})


def available(kind: str) -> dict[str, type[Any]]:
    """Every plugin class of ``kind`` by name (each imported once, then cached)."""
    return {name: get(kind, name) for name in names(kind)}


def get(kind: str, name: str) -> type[Any]:
    """The plugin class registered as ``name`` for ``kind``; KeyError naming the known ones."""
    with _lock:
        found = _cache.get(kind, {}).get(name)
    if found is not None:
        return found
    for ep in _entry_points(kind):
        if ep.name == name:
            cls = _load(kind, ep)
            with _lock:
                _cache.setdefault(kind, {})[name] = cls
            return cls
    raise KeyError(f"unknown {kind} plugin {name!r}; installed: {', '.join(names(kind)) or 'none'}")


def _entry_points(kind: str) -> list[EntryPoint]:
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(GROUPS)}")
    return list(entry_points(group=GROUPS[kind]))


def _load(kind: str, ep: EntryPoint) -> type[Any]:
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - a third-party plugin may fail in any way
        raise PluginError(f"{GROUPS[kind]} plugin {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from exc
    if getattr(cls, "type", None) != ep.name:
        raise PluginError(f"{GROUPS[kind]} plugin {ep.name!r}: its class {ep.value} declares "
                          f"type = {getattr(cls, 'type', None)!r}; it must be {ep.name!r}")
    if not (isinstance(getattr(cls, "Config", None), type) and issubclass(cls.Config, BaseModel)):
        raise PluginError(f"{GROUPS[kind]} plugin {ep.name!r}: {ep.value} needs a pydantic `Config` model")
    return cls
