"""The ``broadcaster`` command (DESIGN A3). The only place that turns errors into exit codes.

Each command group is a module with a ``register(sub, add)``: ``core`` (run, check, poll,
simulate, status), ``admin`` (broadcast, token, user), ``agent``, ``db`` and ``report``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from broadcaster.cli import admin, agent, core, db, report
from broadcaster.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK
from broadcaster.errors import BroadcasterError, ConfigError, InputError
from broadcaster.logutil import setup_logging

log = logging.getLogger("broadcaster")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="broadcaster", description="一氧化碳中毒气象预警广播 / CO alert broadcaster")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("-c", "--config", default=None, help="config file (default config/broadcaster.yaml or $BROADCASTER_CONFIG)")
        sp.set_defaults(func=fn)
        return sp

    for module in (core, agent, admin, db, report):
        module.register(sub, add)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(("warning: " if p.warning else "") + str(p), file=sys.stderr)
        return EXIT_INVALID
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BroadcasterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
