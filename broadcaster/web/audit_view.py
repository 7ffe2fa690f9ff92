"""The audit log in words (issue 19): who, when, did what, to what, with which details.

The ledger keeps each entry as written (an action code such as ``broadcast.approve``, an object
type and id, a JSON detail); this module turns one page of it into what an admin reads: the
action in Chinese, ``人工广播 #2`` or ``自动预警 #1`` for an alert, village names for ids, lists as
lists and nothing left as a Python ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broadcaster.web.views import PAGE
from broadcaster.wording import ROLE_ZH

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

ACTION_ZH = {
    "alert.create": "发布自动预警", "broadcast.create": "提交人工广播", "broadcast.approve": "审批通过广播",
    "broadcast.approve_denied": "审批被拒绝（不能审批自己的广播）", "broadcast.cancel": "取消广播",
    "console.signin": "登录控制台", "console.signout": "退出控制台", "console.signin_failed": "登录失败",
    "auth.failed": "访问令牌无效", "receipt.bad_signature": "短信回执签名无效", "report.send": "发送周报",
    "token.create": "创建访问令牌", "token.revoke": "吊销访问令牌", "user.add": "添加控制台用户",
    "user.reset": "重设用户密码", "user.disable": "停用控制台用户", "workbooks.reload": "重新读取名册表格",
    "incident.create": "登记事件", "incident.correct": "更正事件记录", "checkin.answer": "村干部回复确认",
    "directory.reload": "重新读取通讯录（directory.yaml）",
}
OBJECT_ZH = {"api_token": "访问令牌", "console_user": "控制台用户", "http": "接口请求", "incident": "事件",
             "checkin": "确认", "report": "周报", "config": "配置"}
DETAIL_ZH = {
    "villages": "村", "sms_groups": "短信分组", "at": "发送时间", "repeat": "重复次数", "text": "内容", "level": "等级",
    "rules": "规则", "sms": "短信条数", "plays": "播放次数", "chats": "群", "displays": "显示屏", "from": "来自",
    "client": "来自", "name": "名称", "role": "角色", "speaker": "喇叭终端", "reason": "原因", "status": "状态",
    "upload": "录音", "upload_sha256": "录音摘要", "held": "暂缓", "cancelled_deliveries": "撤回的发送",
    "withdrawing": "正在撤回", "revoked": "吊销数", "path": "路径", "method": "方法", "channel": "渠道",
    "note": "备注", "correction": "更正", "files": "文件", "households": "重点户", "roster_days": "值班天数",
    "email": "邮件", "job": "任务", "user": "用户", "refused": "拒绝", "suppressed_before": "此前未记的失败",
    "names_before": "此前的用户名", "speakers_added": "新增终端", "sms_alert": "短信预警", "http": "接口",
}
GROUP_ZH = {"all": "全部"}


def audit_rows(svc: Service, page: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of the audit log, newest first, in words; and the log's length."""
    entries, total = svc.ledger.reads.audit_page(page, PAGE)
    names = {v: village.name for v, village in svc.cfg.villages.items()}
    groups = dict(svc.cfg.directory.groups)
    alerts = {h.alert.id: h.alert.kind for h in svc.ledger.reads.history(ids=sorted(
        {int(e.object_id) for e in entries if e.object_type == "alert" and str(e.object_id or "").isdigit()}))} \
        if entries else {}
    tz = svc.cfg.tz
    out = []
    for e in entries:
        out.append({"at": e.at.astimezone(tz), "who": _actor(e.actor), "what": ACTION_ZH.get(e.action, "其他操作"),
                    "object": _object(e.object_type, e.object_id, alerts),
                    "detail": "；".join(f"{DETAIL_ZH.get(k, k)}：{_value(k, v, names, groups)}"
                                       for k, v in (e.detail or {}).items() if v not in (None, "", [], {}))})
    return out, total


def _actor(actor: str) -> str:
    if actor == "scheduler":
        return "系统（定时取数）"
    if actor.startswith("anonymous@"):
        return f"未登录（{actor.split('@', 1)[1]}）"
    if actor.startswith("cli:"):
        return f"命令行（{actor[4:]}）"
    if actor.startswith("user:"):
        return actor[5:]
    return actor


def _object(kind: str | None, oid: str | int | None, alerts: dict[int, str]) -> str:
    if kind == "alert":
        word = "人工广播" if alerts.get(int(oid or 0)) == "manual" else "自动预警"
        return f"{word} #{oid}"
    word = OBJECT_ZH.get(kind or "", "") if kind else ""
    return f"{word} #{oid}" if word and oid else (word or (f"#{oid}" if oid else "—"))


def _value(key: str, v: Any, names: dict[str, str], groups: dict[str, str]) -> str:
    """One detail's value as text: village names, lists joined, yes/no, no reprs."""
    if key == "villages":
        return "全部村" if v == "all" else "、".join(names.get(str(x), str(x)) for x in _list(v))
    if key == "sms_groups":
        return "、".join(groups.get(str(x), GROUP_ZH.get(str(x), str(x))) for x in _list(v)) or "不发短信"
    if key.endswith("sha256") and isinstance(v, str):
        return v[:12] + "…"
    if key == "role":
        return ROLE_ZH.get(str(v), str(v))
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, (list, tuple, set)):
        return "、".join(_value("", x, names, groups) for x in v) or "无"
    if isinstance(v, dict):
        return "，".join(f"{DETAIL_ZH.get(str(k), k)} {_value(str(k), x, names, groups)}" for k, x in v.items())
    if isinstance(v, str) and len(v) >= 19 and v[4:5] == "-" and v[10:11] == "T":
        return v[:16].replace("T", " ")  # an ISO time, to the minute
    return str(v)


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple, set)) else [v]
