"""What every command module of the CLI shares: exit codes and loading the configuration."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from broadcaster.config import Config, load_config
from broadcaster.logutil import set_timezone

if TYPE_CHECKING:
    from broadcaster.runtime.service import Service

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


def load(args: argparse.Namespace) -> Config:
    """The validated configuration named by ``-c`` (warnings printed); ConfigError otherwise."""
    cfg = load_config(args.config)
    set_timezone(cfg.tz)  # log lines in the town's time, whatever the host's zone
    for w in cfg.warnings:
        print(f"警告 / warning: {w}", file=sys.stderr)
    return cfg


def service(args: argparse.Namespace) -> "Service":
    """A :class:`Service` on the configuration named by ``-c`` (the caller closes it)."""
    from broadcaster.runtime.service import Service

    return Service(load(args))
