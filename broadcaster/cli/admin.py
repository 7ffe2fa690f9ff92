"""``broadcaster broadcast``, ``token create|list|revoke`` (DESIGN A3), ``user add|reset|list|disable``
(web-console accounts) and ``number list|clear`` (unreachable flags).

``broadcast`` goes through the same service layer as the API (:mod:`broadcaster.flows.manual`),
with the author ``cli:<os user>``. Without ``--wait`` it sends what is due now and leaves the
rest to the running service; with ``--wait`` it runs a dispatcher and shows progress on stderr
until every delivery is final.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from broadcaster.cli.common import EXIT_FAIL, EXIT_OK, service
from broadcaster.errors import InputError
from broadcaster.wording import STATE_ZH



def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def cmd_broadcast(args: argparse.Namespace) -> int:
    """Create a manual broadcast; exit 0 done/queued/awaiting approval, 1 failed, 2 invalid."""
    from broadcaster.flows.manual import BroadcastRequest, Broadcasts, failed

    if args.all and args.villages:
        raise InputError("--villages", "--villages 与 --all 只能选一个 / give --villages or --all, not both")
    svc = service(args)
    try:
        bc = Broadcasts(svc)
        villages: list[str] | str = "all" if args.all else _csv(args.villages)
        res = bc.create(BroadcastRequest(args.text, villages, _csv(args.sms_groups), args.at, args.repeat,
                                         sms_scope=args.sms_scope),
                        f"cli:{getpass.getuser()}")
        bid = res["id"]
        if res["status"] == "pending_approval":
            print(f"广播 {bid} 已提交，等待审批 / broadcast {bid} awaits approval", flush=True)
            if not args.wait:
                return EXIT_OK
            status = _await_approval(svc, bc, bid)
            if status == "cancelled":
                st = bc.get(bid)
                print(f"广播 {bid}: 已取消（取消人 {st['cancelled_by'] or '—'}） / cancelled")
                return EXIT_FAIL
            print(f"广播 {bid} 已由 {bc.get(bid)['approved_by']} 审批，开始发送 / approved", flush=True)
        if not args.wait and res["status"] != "pending_approval":
            svc.dispatcher.drain([bid])  # what is due now; a later `at` is the running service's job
            st = bc.get(bid)
            print(f"广播 {bid}: {_label(st['status'])} / {st['status']}  {_summary(st['deliveries'])}")
            return EXIT_FAIL if failed(st["deliveries"]) else EXIT_OK
        st = _wait(svc, bc, bid)
        print(f"广播 {bid}: {_label(st['status'])} / {st['status']}  {_summary(st['deliveries'])}")
        return EXIT_FAIL if failed(st["deliveries"]) or st["status"] == "cancelled" else EXIT_OK
    finally:
        svc.close()


#: How often ``--wait`` looks at the ledger (a reading of one broadcast's counts).
WAIT_POLL_S = 0.5


def _await_approval(svc: Any, bc: Any, bid: int) -> str:
    """Wait, showing for how long, until an approver (on the console, the API or another
    command) approves or cancels the broadcast; returns its status then."""
    started = time.monotonic()
    while True:
        status = bc.status_of(bid)
        if status != "pending_approval":
            sys.stderr.write("\n")
            return status
        waited = int(time.monotonic() - started)
        sys.stderr.write(f"\r等待审批中（已等 {waited // 60} 分 {waited % 60:02d} 秒，Ctrl-C 退出不影响广播） / "
                         "awaiting approval   ")
        sys.stderr.flush()
        time.sleep(WAIT_POLL_S)


def _wait(svc: Any, bc: Any, bid: int, poll_s: float | None = None) -> dict[str, Any]:
    """Run the dispatcher and draw a progress bar until the broadcast is done or cancelled."""
    svc.dispatcher.start()
    while True:
        st = bc.get(bid)
        counts = st["deliveries"]
        total = sum(n for ch in counts.values() for n in ch.values())
        open_ = sum(n for ch in counts.values() for s, n in ch.items() if s in ("pending", "sending"))
        done = total - open_
        width = 30
        filled = width * done // total if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {_summary(counts)}   ")
        sys.stderr.flush()
        if st["status"] in ("done", "cancelled"):
            sys.stderr.write("\n")
            return st
        time.sleep(WAIT_POLL_S if poll_s is None else poll_s)


def _summary(counts: dict[str, dict[str, int]]) -> str:
    parts = []
    for channel, label in (("sms", "短信"), ("speaker", "喇叭")):
        c = counts.get(channel) or {}
        if c:
            parts.append(f"{label} " + ", ".join(f"{STATE_ZH.get(s, s)} {n}" for s, n in sorted(c.items())))
    return "; ".join(parts) or "无投递"


def _label(status: str) -> str:
    return {"pending_approval": "等待审批", "scheduled": "已排期", "dispatching": "发送中",
            "done": "已完成", "cancelled": "已取消"}.get(status, status)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _when(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def cmd_token(args: argparse.Namespace) -> int:
    """``create`` an API token (printed once, alone on the last line; only its hash is stored),
    ``list`` them, or ``revoke`` those of a name (refused from their next request on)."""
    from broadcaster.auth.accounts import ROLES
    from broadcaster.web.auth import AGENT, create_token, hash_token

    if args.action in ("list", "revoke"):
        return _token_list_or_revoke(args)
    if not args.role:
        raise InputError("--role", "创建令牌需要 --role / token create needs --role")
    if args.role not in ROLES and args.role != AGENT:
        raise InputError("--role", "应为 operator、approver、admin 或 agent / unknown role")
    if args.role == AGENT and not args.speaker:
        raise InputError("--speaker", "agent 令牌需要 --speaker / an agent token needs --speaker ID")
    if args.role != AGENT and args.speaker:
        raise InputError("--speaker", "只有 agent 令牌属于喇叭 / only agent tokens belong to a speaker")
    if not (args.name or "").strip():
        raise InputError("--name", "名称不能为空 / name is empty")
    if args.expires_days is not None and not 1 <= args.expires_days <= 3650:
        raise InputError("--expires-days", "有效天数应为 1 到 3650 / --expires-days must be 1-3650")
    svc = service(args)
    try:
        if args.speaker and args.speaker not in svc.cfg.speakers:
            raise InputError("--speaker", f"未知的喇叭终端 / unknown speaker {args.speaker!r}")
        if args.speaker and svc.cfg.speakers[args.speaker][1].type != "agent":
            raise InputError("--speaker", f"喇叭终端 {args.speaker} 不是广播室代理（type: agent），不需要令牌；"
                                          "新代理请用 broadcaster agent add / not an agent speaker")
        if args.user and (args.role == AGENT or svc.ledger.people.user(args.user.strip()) is None):
            raise InputError("--user", f"没有这个控制台用户（agent 令牌不属于用户） / no console user {args.user!r} "
                                       "(agent tokens belong to no user)")
        now = svc.now()
        expires = now + timedelta(days=args.expires_days) if args.expires_days else None
        token = create_token(svc.ledger, args.name.strip(), args.role, now, args.speaker,
                             args.user.strip() if args.user else None, expires)
        svc.ledger.audit(now, f"cli:{getpass.getuser()}", "token.create", "api_token", None,
                         {"name": args.name, "role": args.role, "speaker": args.speaker, "user": args.user,
                          "expires_at": expires.isoformat() if expires else None})
        until = f"，{_when(expires.astimezone(svc.cfg.tz))} 起失效 / expires {_when(expires.astimezone(svc.cfg.tz))}" \
            if expires else ""
    finally:
        svc.close()
    print(f"令牌只显示这一次，请妥善保存{until} / this token is shown once: {args.role} {args.name}")
    if args.role == AGENT:
        print(f"# 粘贴到 directory.yaml 中喇叭 {args.speaker} 的配置 / paste into directory.yaml:")
        print(f"token_sha256: {hash_token(token)}")
    print(token)
    return EXIT_OK


def _token_list_or_revoke(args: argparse.Namespace) -> int:
    svc = service(args)
    try:
        if args.action == "list":
            print("编号 名称 角色 喇叭 用户 创建 失效 状态 / id name role speaker user created expires state")
            now, tz = svc.now(), svc.cfg.tz
            for t in svc.ledger.people.tokens():
                if t.revoked_at:
                    state = f"已吊销 / revoked {_when(t.revoked_at.astimezone(tz))}"
                elif t.expires_at and t.expires_at <= now:
                    state = "已过期 / expired"
                else:
                    state = "有效 / live"
                expires = _when(t.expires_at.astimezone(tz)) if t.expires_at else "永久 / never"
                print(f"{t.id}\t{t.name}\t{t.role}\t{t.speaker_id or '-'}\t{t.user or '-'}\t"
                      f"{_when(t.created_at.astimezone(tz))}\t{expires}\t{state}")
            return EXIT_OK
        if not args.name or not args.name.strip():
            raise InputError("--name", "吊销令牌需要 --name / token revoke needs --name")
        n = svc.ledger.people.revoke_tokens(args.name.strip(), svc.now(), args.id)
        if n == 0:
            raise InputError("--name", f"没有名为 {args.name} 的有效令牌 / no live token named {args.name!r}")
        svc.ledger.audit(svc.now(), _actor(), "token.revoke", "api_token", args.id, {"name": args.name, "revoked": n})
    finally:
        svc.close()
    print(f"已吊销 {n} 个令牌 / revoked {n} token(s): {args.name}")
    return EXIT_OK


def _user_list_or_disable(args: argparse.Namespace) -> int:
    svc = service(args)
    try:
        if args.action == "list":
            print("名称 角色 创建 停用 / name role created disabled")
            for u in svc.ledger.people.users():
                print(f"{u.name}\t{u.role}\t{_when(u.created_at)}\t"
                      f"{_when(u.disabled_at) if u.disabled_at else '启用 / enabled'}")
            return EXIT_OK
        if not svc.ledger.people.disable_user(args.name.strip(), svc.now()):
            raise InputError("--name", f"没有用户 {args.name} / no console user {args.name!r}")
        svc.ledger.audit(svc.now(), _actor(), "user.disable", "console_user", None, {"name": args.name.strip()})
    finally:
        svc.close()
    print(f"已停用并注销其所有会话 / disabled, and signed out everywhere: {args.name.strip()}")
    return EXIT_OK


def cmd_user(args: argparse.Namespace) -> int:
    """``add`` a console account (an existing name is refused), ``reset`` one's role and password
    (which signs it out everywhere), ``list`` them, or ``disable`` one (its sessions end at once)."""
    from broadcaster.auth.accounts import Accounts

    if args.action == "list" or (args.action == "disable" and args.name):
        return _user_list_or_disable(args)
    if not args.name:
        raise InputError("--name", f"user {args.action} 需要 --name / needs --name")
    if not args.role:
        raise InputError("--role", f"user {args.action} 需要 --role / needs --role")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("密码 / password: ")
        if getpass.getpass("再输入一次 / again: ") != password:
            raise InputError("password", "两次输入的密码不一致 / the passwords differ")
    svc = service(args)
    try:
        Accounts(svc.ledger).add_user(args.name, args.role, password, svc.now(), reset=args.action == "reset")
        svc.ledger.audit(svc.now(), _actor(), f"user.{args.action}", "console_user", None,
                         {"name": args.name.strip(), "role": args.role})
    finally:
        svc.close()
    print(f"控制台账号已保存 / console user saved: {args.name.strip()} ({args.role})")
    return EXIT_OK


def cmd_number(args: argparse.Namespace) -> int:
    """``list`` the numbers flagged unreachable (masked, with reason and date), or ``clear`` one's
    flag (audited) so later alerts try it again."""
    from broadcaster.flows import flags
    from broadcaster.logutil import mask_phone

    if args.action == "clear":
        flags.normalise(args.phone)  # a bad number is refused before the ledger is opened
    svc = service(args)
    try:
        if args.action == "list":
            print("号码 原因 标记于 / number reason flagged")
            for f in svc.ledger.reads.unreachable_flags():
                print(f"{mask_phone(f.phone)}\t{f.reason}\t{_when(f.updated_at.astimezone(svc.cfg.tz))}")
            return EXIT_OK
        reason = flags.clear(svc, args.phone, _actor())  # NotFound: exit 1 with its message
    finally:
        svc.close()
    print(f"已清除不可达标记 / flag cleared: {mask_phone(flags.normalise(args.phone))} ({reason})")
    return EXIT_OK


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``broadcast``, ``token``, ``user`` and ``number`` to the CLI."""
    sp = add("broadcast", cmd_broadcast, "manual broadcast (subject to approval when on)")
    sp.add_argument("--text", required=True, help="SMS and spoken text (at most 500 characters)")
    g = sp.add_argument_group("villages")
    g.add_argument("--villages", help="comma-separated village ids")
    g.add_argument("--all", action="store_true", help="every village")
    sp.add_argument("--sms-groups", help="comma-separated SMS group ids")
    sp.add_argument("--sms-scope", choices=["town", "villages"], default="town",
                    help="短信发给全镇的分组成员（town）或只发所选村的（villages） / SMS to the whole town or the chosen villages")
    sp.add_argument("--at", help="ISO 8601 time (default now; local time if no offset)")
    sp.add_argument("--repeat", type=int, help="times the message is spoken, 1-10")
    sp.add_argument("--wait", action="store_true", help="跟踪到结束（含等待审批），显示进度，按结果退出 / follow it through approval to its end")
    sp = add("token", cmd_token, "API tokens")
    sp.add_argument("action", choices=["create", "list", "revoke"])
    sp.add_argument("--name", help="the token's name (create, revoke)")
    sp.add_argument("--id", type=int, help="revoke only the token with this id (see token list)")
    sp.add_argument("--user", help="the console user the token acts for (the same person when approving)")
    sp.add_argument("--role", help="operator | approver | admin | agent (create)")
    sp.add_argument("--speaker", help="the speaker id of an agent token")
    sp.add_argument("--expires-days", type=int, help="the token stops working after this many days (create)")
    sp = add("user", cmd_user, "web-console accounts")
    sp.add_argument("action", choices=["add", "reset", "list", "disable"])
    sp.add_argument("--name", help="sign-in name, e.g. 王站长")
    sp.add_argument("--role", choices=["operator", "approver", "admin"], help="add, reset")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    sp = add("number", cmd_number, "SMS numbers flagged unreachable")
    # Sub-commands of their own, so `number clear -c FILE +86...` parses in any order; their -c
    # leaves the parent's value alone unless given (SUPPRESS).
    actions = sp.add_subparsers(dest="action", required=True)
    for name, help_ in (("list", "numbers flagged unreachable, with reason and date"),
                        ("clear", "clear a number's flag (audited); later alerts try it again")):
        ap = actions.add_parser(name, help=help_)
        ap.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file")
        if name == "clear":
            ap.add_argument("phone", help="the number, e.g. +8613800138000")
