"""Paths as configuration errors show them: relative to the working directory where possible."""

from __future__ import annotations

import os
from pathlib import Path


def display(path: Path) -> str:
    """``config/rules.yaml`` rather than ``/srv/broadcaster/config/rules.yaml`` when it can."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
