"""SMS providers: plugins of the ``broadcaster.sms`` entry-point group (DESIGN A9)."""

from __future__ import annotations

from broadcaster import plugins
from broadcaster.channels.sms.base import (
    Receipt,
    ReceiptAnswer,
    ReceiptRequest,
    SmsContext,
    SmsJob,
    SmsProvider,
)
from broadcaster.plugins import PluginConfig

__all__ = ["Receipt", "ReceiptAnswer", "ReceiptRequest", "SmsContext", "SmsJob", "SmsProvider", "build_provider"]


def build_provider(name: str, config: PluginConfig, ctx: SmsContext) -> SmsProvider:
    """The provider installed as ``name``, with its validated ``config``."""
    cls: type[SmsProvider] = plugins.get("sms", name)
    return cls(config, ctx)
