"""The one message catalogue for what a person reads: Chinese first, the English after it.

Configuration checks, CLI errors and API error details are written in English at the place they
are raised (the code's language); :func:`zh_first` puts the Chinese wording in front of them
when they are shown, from the patterns below. A message that already starts with Chinese is
left as it is; one the catalogue does not know gets a general Chinese lead-in, so nothing a
person reads starts in English.
"""

from __future__ import annotations

import re

STATE_ZH = {"pending": "待发送", "sending": "发送中", "sent": "已发出", "delivered": "已送达", "played": "已播放",
            "failed": "失败", "expired": "已过期", "cancelled": "已取消"}
STATUS_ZH = {"pending_approval": "待审批", "scheduled": "已排期", "dispatching": "发送中", "done": "已完成",
             "cancelled": "已取消", "active": "生效", "superseded": "已被更新"}
ROLE_ZH = {"operator": "操作员", "approver": "审批人", "admin": "管理员", "agent": "广播室代理"}
KIND_ZH = {"auto": "自动", "manual": "人工", "system": "系统"}

_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

#: (English pattern, Chinese wording); groups of the pattern fill ``{1}``, ``{2}``... in the Chinese.
CATALOGUE: list[tuple[str, str]] = [
    (r"unknown key beside `sources`", "`sources` 旁有未知的配置项"),
    (r"unknown key", "未知的配置项（拼写错误？）"),
    (r"required key is missing", "缺少必填项"),
    (r"Field required", "缺少必填项"),
    (r"'?([^:']*)'? is not a valid phone number", "不是有效的手机号码：{1}"),
    (r"'?([^:']*)'? is not a mobile number.*", "不是手机号码（短信需要手机号）：{1}"),
    (r"'?([^:']*)'? is not a phone number", "不是电话号码：{1}"),
    (r"'?([^:']*)'? is not an e-mail address", "不是有效的电子邮件地址：{1}"),
    (r"'?([^:']*)'? is not a date as MM-DD", "日期应写成 月-日（MM-DD）：{1}"),
    (r"'?([^:']*)'? is not a weekday and time.*", "应写成 星期 时:分，例如 \"FRI 15:00\"：{1}"),
    (r"write the time in quotes.*", "时间请加引号，例如 \"19:30\""),
    (r"unknown time zone '?([^:']*)'?", "未知的时区：{1}"),
    (r"cannot read file: (.*)", "无法读取文件：{1}"),
    (r"YAML syntax error: (.*)", "YAML 语法错误：{1}"),
    (r"expected a mapping.*", "这里应为键值映射（key: value）"),
    (r"environment variable (\S+) is not set", "环境变量 {1} 未设置"),
    (r"unknown (\w+) '?([^:']*)'?; installed: (.*)", "未知的{1}：{2}；已安装：{3}"),
    (r"duplicate (\w+) id '?([^:']*)'?", "编号重复：{2}"),
    (r"(?:(.*): )?unknown group '?([^:']*)'?(?:; directory has: (.*))?", "未知的分组：{2}"),
    (r"(?:(.*): )?unknown village '?([^:']*)'?", "未知的村：{2}"),
    (r"unknown template '?([^:']*)'?", "未知的模板：{1}"),
    (r"(?:clip|file) not found: (.*)", "找不到文件：{1}"),
    (r"rule sends nothing.*", "这条规则什么也不发送"),
    (r"give at least one source", "至少需要一个数据源"),
    (r"no contact is in group `(\w+)`.*", "分组 {1} 里没有联系人"),
    (r"renders to (\d+) SMS segments.*", "会拆成 {1} 条短信发送，请缩短"),
    (r"Input should be a valid integer.*", "应为整数"),
    (r"Input should be a valid number.*", "应为数字"),
    (r"Input should be a valid boolean.*", "应为 true 或 false"),
    (r"Input should be a valid string.*", "应为文字"),
    (r"Input should be a valid list.*", "应为列表"),
    (r"Input should be (?:a valid dictionary|an object).*", "应为键值映射（key: value）"),
    (r"Input should be (.*)", "取值无效，应为 {1}"),
    (r"Input should be greater than or equal to (\S+)", "应不小于 {1}"),
    (r"Input should be less than or equal to (\S+)", "应不大于 {1}"),
    (r"must be (\d+) to (\d+)", "应为 {1} 到 {2}"),
    (r"missing or invalid bearer token", "缺少或无效的访问令牌"),
    (r"agent token required", "需要广播室代理的令牌"),
    (r"requires role (\w+) or higher", "需要 {1} 及以上权限"),
    (r"no such (?:command|audio).*", "没有这个播放任务或音频"),
    (r"bad or expired signature", "链接签名无效或已过期"),
    (r"played_at: needs a timezone offset", "played_at 需要带时区"),
    (r"no alert (\d+)", "没有编号为 {1} 的预警或广播"),
    (r"Not Found", "没有这个页面"),
    (r"Method Not Allowed", "不支持这个请求方法"),
]
_COMPILED = [(re.compile(pat + r"\s*", re.S), zh) for pat, zh in CATALOGUE]


def starts_chinese(text: str) -> bool:
    """Whether ``text`` begins with a Chinese character (or full-width punctuation)."""
    return bool(text) and bool(_CJK.match(text.lstrip()[:1]))


def has_chinese(text: str) -> bool:
    """Whether ``text`` has any Chinese in it."""
    return bool(_CJK.search(text))


def translate(message: str) -> str | None:
    """The catalogue's Chinese for an English ``message`` (None if it does not know it)."""
    text = str(message).strip()
    zh = _translate(text)
    if zh is None:
        # "张三: '139...' is not a valid phone number": the subject, then a known message.
        m = re.fullmatch(r"([^:\n]{1,60}): (.+)", text, re.S)
        inner = _translate(m.group(2)) if m else None
        zh = f"{inner}（{m.group(1)}）" if m and inner else None
    return zh


def zh_first(message: str, lead: str = "出错了") -> str:
    """``message`` with its Chinese wording first: ``中文 / English``. Messages already in
    Chinese are returned unchanged; unknown English ones get ``lead`` in front."""
    text = str(message).strip()
    zh = translate(text)
    if zh is None and has_chinese(text):
        english, sep, chinese = text.partition(" / ")
        if sep and starts_chinese(chinese) and not has_chinese(english):
            return f"{chinese} / {english}"  # "English / 中文" turned round
        return text  # written in Chinese already (an id or a number may come first)
    return f"{zh} / {text}" if zh else (f"{lead} / {text}" if text else lead)


def _translate(text: str) -> str | None:
    for rx, zh in _COMPILED:
        m = rx.fullmatch(text)
        if m:
            groups = [g or "" for g in m.groups()]
            return zh.format("", *groups).rstrip("：")
    return None
