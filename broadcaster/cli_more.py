"""Commands beyond the automatic flow: broadcast, token, agent (registered into the CLI)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the extra sub-commands. Filled in as those flows land."""
