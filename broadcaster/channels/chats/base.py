"""The group-chat robot interface (a plugin of the ``broadcaster.chats`` group, DESIGN A9, A12).

A robot type turns one :class:`ChatJob` into its webhook's request (:meth:`ChatChannel.request`)
and reads the vendor's answer (:meth:`ChatChannel.check`). All three robots answer HTTP 200 with
an error code in the body when they refuse a message, so success is ``errcode``/``code`` 0, never
the HTTP status alone. The base class posts with ``requests``, keeps each robot under its
vendor's rate (:class:`RateWindow`, 20 messages a minute) and maps the answer to Transient or
PermanentError; the dispatcher owns retries, expiry and the ledger.
"""

from __future__ import annotations

import collections
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.errors import PermanentError, TransientError
from broadcaster.logutil import mask_text
from broadcaster.net import failure_reason, retry_after_seconds
from broadcaster.plugins import PluginConfig

#: WeCom and DingTalk allow 20 messages a minute per robot (Feishu 100); DESIGN A12 keeps all at 20.
PER_MINUTE = 20


class ChatConfig(PluginConfig):
    """Keys every robot accepts; each type subclasses it with ``type: Literal[...]``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: str
    webhook: str = Field(pattern=r"^https?://\S+$")
    timeout_s: float = Field(default=15, gt=0, le=120)


@dataclass(frozen=True)
class ChatContext:
    """What robots may know about the deployment."""

    public_url: str  # the public page's base, linked from every message
    town: str = ""


@dataclass(frozen=True)
class ChatJob:
    """One message to one chat: the alert's text (``part`` "text"), its poster (``part`` "image")
    or a file handed over with it (``part`` "file", the weekly report's workbook or PDF).

    ``title`` is the headline (level and name), ``text`` the body the rules' template made,
    ``colour`` the level's ``#RRGGBB``; ``image`` the poster's PNG for an image part;
    ``file_name`` and ``file_data`` the file of a file part.
    """

    delivery_id: int
    alert_id: int
    chat_id: str
    part: str
    title: str
    text: str
    level: int | None = None
    colour: str = "#37474F"
    link: str | None = None
    image: bytes | None = None
    file_name: str | None = None
    file_data: bytes | None = None


class RateWindow:
    """At most ``limit`` sends in any ``window_s`` seconds (a sliding window, thread-safe).

    ``take`` returns 0 when a send may go now (and counts it), else the seconds until one may:
    the caller retries then instead of letting the vendor block the robot (DingTalk blocks it for
    ten minutes after the 21st message of a minute)."""

    def __init__(self, limit: int = PER_MINUTE, window_s: float = 60.0, clock: Any = time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self.window_s:
                self._sent.popleft()
            if len(self._sent) >= self.limit:
                return self._sent[0] + self.window_s - now
            self._sent.append(now)
            return 0.0


class ChatChannel(ABC):
    """One robot in one group. Subclasses set ``type``, ``Config``, the vendor's codes and
    implement :meth:`request` and :meth:`answer_code`."""

    type: ClassVar[str]
    Config: ClassVar[type[ChatConfig]] = ChatConfig
    #: True when the robot takes the poster as an image message (WeCom only).
    takes_images: ClassVar[bool] = False
    #: True when the robot takes files (WeCom only: upload_media, then a file message).
    takes_files: ClassVar[bool] = False
    #: vendor code -> seconds to wait before retrying (rate limits, "system busy")
    retry_codes: ClassVar[dict[int, float]] = {}

    def __init__(self, config: ChatConfig, ctx: ChatContext) -> None:
        self.config = config
        self.ctx = ctx
        self.window = RateWindow()
        self._local = threading.local()  # requests.Session is not thread-safe to share

    @property
    def id(self) -> str:
        return self.config.id

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    @abstractmethod
    def request(self, job: ChatJob) -> tuple[str, dict[str, Any]]:
        """The URL (signed where the robot wants it) and JSON body for ``job``."""

    @abstractmethod
    def answer_code(self, body: dict[str, Any]) -> tuple[int, str]:
        """The vendor's code and message in an answer body (0: accepted)."""

    def is_retryable(self, code: int, msg: str) -> float | None:
        """Seconds to wait before retrying ``code`` (None: permanent)."""
        return self.retry_codes.get(code)

    def send(self, job: ChatJob) -> SendResult:
        """Post one message; raise TransientError (with ``retry_after``) or PermanentError."""
        if job.part == "image" and not self.takes_images:
            raise PermanentError(f"{self.type} robots take no images")
        if job.part == "file" and not self.takes_files:
            raise PermanentError(f"{self.type} robots take no files")
        wait = self.window.take()
        if wait > 0:
            raise TransientError(f"本机限速：每个机器人每分钟最多{PER_MINUTE}条 (local rate limit)",
                                 code="rate_local", retry_after=wait)
        return self.deliver(job)

    def deliver(self, job: ChatJob) -> SendResult:
        """The requests of one message once the rate allows it (one POST; WeCom's file two)."""
        url, body = self.request(job)
        self.call(url, json=body)
        return SendResult(state="sent")

    def call(self, url: str, **kwargs: Any) -> dict[str, Any]:
        """POST to the robot (``json=`` or ``files=``) and return its answer when the code is 0;
        otherwise raise TransientError or PermanentError as the vendor's code says."""
        try:
            resp = self._session().post(url, timeout=self.config.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(mask_text(failure_reason(exc, self.config.timeout_s))) from exc
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise TransientError(f"HTTP {resp.status_code}", code=resp.status_code,
                                 retry_after=retry_after_seconds(resp.headers))
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise PermanentError(f"HTTP {resp.status_code}: not a robot's answer", code=resp.status_code)
        code, msg = self.answer_code(answer)
        if code == 0:
            return answer
        msg = mask_text(msg)
        wait = self.is_retryable(code, msg)
        if wait is not None:
            raise TransientError(f"{self.type} {code}: {msg}", code=code, retry_after=wait)
        raise PermanentError(f"{self.type} {code}: {msg}", code=code)

    def close(self) -> None:
        s = getattr(self._local, "session", None)
        if s is not None:
            s.close()


def headline(job: ChatJob) -> str:
    """The first line every robot shows: the title, or the first line of the text."""
    if job.title:
        return job.title
    return job.text.splitlines()[0] if job.text else ""
