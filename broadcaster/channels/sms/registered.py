"""What the template-only providers (Aliyun, Tencent) share (DESIGN A10).

- :func:`registration`: the provider's registration of a job's rules template, or a
  PermanentError that says why this message cannot go out (a template-only provider never
  sends free text).
- :func:`fill`: a registration's parameter templates filled with the job's values, each checked
  against ``max_len``.
- :func:`check_token`: the secret path token of a receipt push, compared in constant time
  (neither provider signs its pushes).
- :class:`BatchingProvider`: the optional batch interface the dispatcher uses (many numbers in
  one request, each number's result kept), with ``send`` as a batch of one.
"""

from __future__ import annotations

import hmac
import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import ReceiptRequest, SmsJob, SmsProvider
from broadcaster.errors import ChannelError, Forbidden, PermanentError

CN_TZ = ZoneInfo("Asia/Shanghai")  # both providers write receipt times in China time


def registration(templates: Mapping[str, Any], provider: str, job: SmsJob) -> Any:
    """The ``provider`` registration of ``job``'s template, or raise PermanentError."""
    if not job.template:
        raise PermanentError(f"该短信没有登记模板，{provider} 只发送登记模板 / no registered template "
                             f"for this message ({provider} sends registered templates only)")
    t = templates.get(job.template)
    reg = t.registration(provider) if t is not None and hasattr(t, "registration") else None
    if reg is None:
        raise PermanentError(f"模板 {job.template} 没有 {provider} 的登记 / template {job.template!r} "
                             f"has no {provider} registration")
    return reg


def fill(reg: Any, job: SmsJob) -> list[tuple[str, str]]:
    """(name, value) of each registered variable: the parameter templates with the job's values.

    A value longer than ``max_len`` is refused rather than sent cut: the provider would answer
    ``isv.PARAM_LENGTH_LIMIT`` (or worse, send a truncated warning).
    """
    items = reg.params.items() if isinstance(reg.params, Mapping) else enumerate(reg.params, 1)
    out: list[tuple[str, str]] = []
    for name, tmpl in items:
        try:
            value = str(tmpl).format(**job.values)
        except (KeyError, IndexError, ValueError) as exc:
            raise PermanentError(f"模板 {job.template} 的变量 {name} 无法填写 / cannot fill variable "
                                 f"{name} of {job.template!r}: {exc}") from None
        if reg.max_len is not None and len(value) > reg.max_len:
            raise PermanentError(f"变量 {name} 超过 {reg.max_len} 字 / variable {name} is longer "
                                 f"than {reg.max_len} characters")
        out.append((str(name), value))
    return out


def manual_sms(provider: SmsProvider, town: str, text: str) -> tuple[str, str | None, dict[str, str]]:
    """A manual broadcast's SMS as (body, template, values): free text for a provider that takes
    it, else the reserved template ``manual_sms`` filled in. Raises PermanentError (with the
    reason) when a template-only provider cannot send this text, so the broadcast is refused
    when it is created rather than failing later (DESIGN A10)."""
    if not provider.template_only:
        return text, None, {}
    values = {"town": town, "text": text}
    job = SmsJob(0, 0, "", text, "manual_sms", values)
    for member in getattr(provider, "members", [provider]):  # each provider of a failover list
        if not member.template_only:
            continue
        if "manual_sms" not in provider.ctx.templates:
            raise PermanentError(f"短信服务商 {member.type} 只发送登记模板，而规则文件没有 manual_sms 模板 / "
                                 f"{member.type} sends registered templates only and rules.yaml has no manual_sms")
        fill(registration(provider.ctx.templates, member.type, job), job)
    t = provider.ctx.templates["manual_sms"]
    return str(getattr(t, "text", t)).format(**values), "manual_sms", values


def flag(exc: ChannelError, *, not_sent: bool = False, unknown: bool = False) -> ChannelError:
    """Mark what failover needs to know (``broadcaster.channels.sms.failover``): ``not_sent``,
    the provider certainly does not have the message; ``unknown``, it may have it."""
    exc.not_sent = not_sent  # type: ignore[attr-defined]
    exc.unknown = unknown  # type: ignore[attr-defined]
    return exc


def check_token(req: ReceiptRequest, expected: str | None) -> None:
    """Refuse a push whose path token is not ``expected`` (constant-time comparison)."""
    given = req.path_params.get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("wrong receipt token")


def load_array(req: ReceiptRequest) -> list[dict[str, Any]]:
    """The JSON array both providers push (a single object is taken as an array of one)."""
    try:
        data = json.loads(req.body.decode("utf-8") or "[]")
    except (UnicodeDecodeError, ValueError):
        return []
    items = data if isinstance(data, list) else [data]
    return [i for i in items if isinstance(i, dict)]


def cn_datetime(text: Any) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` in China time, as an aware datetime (None when absent or bad)."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CN_TZ)
    except ValueError:
        return None


class BatchingProvider(SmsProvider):
    """A provider that takes many numbers per request (``max_batch`` of them).

    :meth:`send_batch` returns, for each job in order, a SendResult or the ChannelError of that
    number alone: one bad number never fails its neighbours. The dispatcher groups claimed jobs
    by :meth:`batch_key` (jobs that read the same text) before calling it.
    """

    max_batch: ClassVar[int] = 1
    template_only = True

    def batch_key(self, job: SmsJob) -> Any:
        """Jobs with equal keys may share a request (same template, same values)."""
        return (job.template, tuple(sorted(job.values.items())))

    @abstractmethod
    def send_batch(self, jobs: Sequence[SmsJob]) -> list[SendResult | ChannelError]:
        """Send jobs that share a batch key; one result per job, in order."""

    def send(self, job: SmsJob) -> SendResult:
        result = self.send_batch([job])[0]
        if isinstance(result, ChannelError):
            raise result
        return result
