"""SMS providers by ``sms.provider``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcaster.channels.sms.base import SmsJob, SmsProvider

if TYPE_CHECKING:
    from broadcaster.config import Config

__all__ = ["SmsJob", "SmsProvider", "build_provider"]


def build_provider(cfg: "Config") -> SmsProvider:
    sms = cfg.settings.sms
    if sms.provider == "twilio":
        from broadcaster.channels.sms.twilio import TwilioProvider

        assert sms.twilio is not None  # checked when the config loaded
        return TwilioProvider(sms.twilio)
    from broadcaster.channels.sms.outbox import OutboxProvider

    return OutboxProvider(cfg.resolve(sms.outbox.path))
