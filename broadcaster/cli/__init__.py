"""The ``broadcaster`` command (DESIGN A3). The only place that turns errors into exit codes.

Each command group is a module with a ``register(sub, add)``: ``core`` (run, check, poll,
simulate, status), ``admin`` (broadcast, token, user), ``agent``, ``db`` and ``report``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from broadcaster.cli import admin, agent, core, db, report
from broadcaster.cli.common import EXIT_FAIL, EXIT_INVALID, EXIT_OK
from broadcaster.errors import BroadcasterError, ConfigError, InputError
from broadcaster.logutil import setup_logging
from broadcaster.wording import zh_first

log = logging.getLogger("broadcaster")


class Parser(argparse.ArgumentParser):
    """argparse with its errors in Chinese first (a wrong or missing argument exits 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"参数错误（{self.prog}）：{_argparse_zh(message)} / error: {message}\n")


def _argparse_zh(message: str) -> str:
    """argparse's own English messages, in Chinese."""
    for pat, zh in ((r"the following arguments are required: (.*)", "缺少必需的参数 {0}"),
                    (r"unrecognized arguments: (.*)", "无法识别的参数 {0}"),
                    (r"argument (\S+): invalid choice: '?([^' ]*)'?.*", "参数 {0} 的取值无效：{1}"),
                    (r"argument (\S+): invalid (\w+) value: '?([^']*)'?", "参数 {0} 的取值无效：{2}"),
                    (r"argument (\S+): expected one argument", "参数 {0} 需要一个值"),
                    (r"argument (\S+): (.*)", "参数 {0} 有误")):
        m = re.fullmatch(pat, message)
        if m:
            return zh.format(*m.groups())
    return "命令行参数有误"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="broadcaster", description="一氧化碳中毒气象预警广播 / CO alert broadcaster")
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
        errors = [p for p in exc.problems if not p.warning]
        print(f"配置有误（{len(errors)} 处），请修改后再试 / invalid configuration:", file=sys.stderr)
        for p in exc.problems:
            print(("  警告 / warning: " if p.warning else "  ") + str(p), file=sys.stderr)
        return EXIT_INVALID
    except InputError as exc:
        print(f"参数错误：{exc.field}：{zh_first(exc.message, '取值无效')}", file=sys.stderr)
        return EXIT_INVALID
    except BroadcasterError as exc:
        print(f"出错了：{zh_first(str(exc), '操作失败')}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
