"""The one exception tree of broadcaster.

::

    BroadcasterError
      ConfigError          configuration is invalid (carries every problem found)
      FeedError            a CO-index source gave nothing usable (carries the reason)
      RenderError          audio could not be made (a TTS engine or ffmpeg failed): operations, not input
      AgentError           the village agent cannot go on (no player, token refused)
      InputError           a request or command argument is invalid (carries the field)
      NotFound             an id that does not exist
      Forbidden            the caller may not do this
      ChannelError         a channel could not deliver
        TransientError     worth retrying (429, 5xx, timeouts, resets); may carry retry_after
        PermanentError     retrying cannot help (invalid number, unsubscribed, 401)

Only ``cli.py`` turns these into exit codes and only ``web/`` turns them into HTTP statuses.
Vendor exceptions are mapped into ``TransientError``/``PermanentError`` once, at the channel boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.wording import has_chinese, translate, zh_first


class BroadcasterError(Exception):
    """Base of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One configuration problem: ``file: path.to.key: message``."""

    file: str
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        # Chinese first, then where (file and key) and the message as raised: "未知的配置项：
        # broadcaster.yaml: feed.levle: unknown key".
        # A message written in Chinese (the workbooks') reads as it is.
        where = f"{self.file}: {self.path}: " if self.path else f"{self.file}: "
        if translate(self.message) is None and has_chinese(self.message):
            return where + self.message
        return f"{self.lead}：{where}{self.message}"

    @property
    def lead(self) -> str:
        """The Chinese wording of an English message."""
        return zh_first(self.message, "配置提醒" if self.warning else "配置有误").partition(" / ")[0]

    @property
    def text(self) -> str:
        """The message as a person reads it: Chinese first, the English after it."""
        return zh_first(self.message, "配置有误")


class ConfigError(BroadcasterError):
    """Invalid configuration; ``problems`` lists each one with its file and key."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FeedError(BroadcasterError):
    """A source failed or its data was rejected; ``reason`` is shown to operators."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class RenderError(BroadcasterError):
    """Audio could not be made: a speech engine is down or refused, ffmpeg failed."""


class AgentError(BroadcasterError):
    """A problem the village agent's operator must fix (no player found, the token refused)."""


class TooBusy(BroadcasterError):
    """Too many requests of one kind at once (renders, sign-ins): try again shortly (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InputError(BroadcasterError):
    """Invalid user input; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(BroadcasterError):
    """The referenced object does not exist."""


class Forbidden(BroadcasterError):
    """The caller is not allowed to do this."""


class Conflict(BroadcasterError):
    """The object is not in a state that allows this (e.g. approving a cancelled broadcast)."""


class ChannelError(BroadcasterError):
    """A channel could not deliver. ``code`` is the provider's error code, if any."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TransientError(ChannelError):
    """Retry later; ``retry_after`` (seconds) is the provider's own hint, when it gave one."""

    def __init__(
        self, message: str, *, code: str | int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """Do not retry this delivery."""
