"""Commands beyond the automatic flow: broadcast, token, agent (registered into the CLI)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the extra sub-commands from their modules (each has ``register(sub, add)``)."""
    import importlib

    for name in ("cli_agent", "cli_admin"):
        try:
            mod = importlib.import_module(f"broadcaster.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"broadcaster.{name}":
                raise
            continue
        mod.register(sub, add)
