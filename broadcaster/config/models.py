"""Typed models of the three configuration files (DESIGN A4).

Feed sources and speaker endpoints have per-type models defined next to their code
(``broadcaster.feeds.<type>``, ``broadcaster.channels.speakers.<type>``); the loader picks
the model by ``type`` so that error paths stay exactly as the user wrote them.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from broadcaster.config.books import Book
from broadcaster.config.sms import SmsCaps, SmsTemplate, template_text  # noqa: F401 (template_text: re-exported)
from broadcaster.errors import Problem
from broadcaster.plugins import PluginConfig
from broadcaster.timeutil import parse_hhmm

PLACEHOLDERS = frozenset({"town", "date", "level", "level_name", "advice", "valid_from", "valid_to"})
# Templates the service's own SMS use on template-only providers (DESIGN A10), with the extra
# placeholders each may use: the operator's text, the feed deadline's time.
RESERVED = {"manual_sms": frozenset({"text"}), "deadline_sms": frozenset({"deadline"})}


def _hhmm(v: Any) -> time:
    if isinstance(v, time):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        # YAML 1.1 reads an unquoted 17:30 as the sexagesimal integer 1050.
        raise ValueError(f"write the time in quotes, e.g. \"{v // 60:02d}:{v % 60:02d}\"")
    return parse_hhmm(v)


HHMM = Annotated[time, BeforeValidator(_hhmm)]


def _mmdd(v: Any) -> str:
    if not isinstance(v, str) or len(v) != 5 or v[2] != "-" or not (v[:2] + v[3:]).isdigit():
        raise ValueError(f"{v!r} is not a date as MM-DD")
    m, d = int(v[:2]), int(v[3:])
    if not (1 <= m <= 12 and 1 <= d <= 31):
        raise ValueError(f"{v!r} is not a date as MM-DD")
    return v


MMDD = Annotated[str, BeforeValidator(_mmdd)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------- broadcaster.yaml


class Season(Strict):
    start: MMDD = "10-15"
    end: MMDD = "04-15"

    def bounds(self) -> tuple[tuple[int, int], tuple[int, int]]:
        s, e = self.start, self.end
        return (int(s[:2]), int(s[3:])), (int(e[:2]), int(e[3:]))


class QuietHours(Strict):
    from_: HHMM = Field(alias="from")
    to: HHMM
    except_level_at_least: int | None = Field(default=None, ge=1, le=5)


class Schedule(Strict):
    polls: list[HHMM] = Field(default_factory=lambda: [parse_hhmm("16:30"), parse_hhmm("18:00")], min_length=1)
    season: Season = Season()
    deadline: HHMM = parse_hhmm("17:30")
    quiet_hours: QuietHours | None = None
    # A loudspeaker play not done this long after its time is expired, never played late.
    play_expiry_min: int = Field(default=60, ge=1, le=720)
    feed_retry_min: int = Field(default=15, ge=1, le=240)


class SmsConfig(Strict):
    """``sms``. Each provider's own section (``sms.twilio``, ``sms.aliyun``, ...) is validated by
    that provider's plugin model (DESIGN A9); the loader checks every other key is known."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    provider: str = "outbox"
    providers: list[str] | None = Field(default=None, min_length=1)  # failover order (A10)
    rate_per_s: float = Field(default=10, gt=0, le=10000)
    concurrency: int = Field(default=32, ge=1, le=512)
    caps: SmsCaps = SmsCaps()

    @property
    def chosen(self) -> list[str]:
        """The providers in use, in failover order."""
        return list(self.providers) if self.providers else [self.provider]


class AudioConfig(Strict):
    """``audio``. ``tts`` names a speech-engine plugin; its settings are ``voice``, ``command``
    and an optional ``audio.<engine>`` section, validated by the engine's own model."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    tts: str = "espeak"
    # Speaks the bulletin when ``tts`` fails or does not answer in ``timeout_s`` (A11); null: none.
    fallback: str | None = "espeak"
    timeout_s: float = Field(default=10, gt=0, le=120)
    voice: str = "cmn"
    command: list[str] | None = None
    format: Literal["mp3", "wav", "g711"] = "mp3"
    chime: Path | None = Path("../audio/chime.wav")
    clips: Path = Path("../audio/clips")
    repeat: int = Field(default=2, ge=1, le=10)


class HttpConfig(Strict):
    listen: str = Field(default="127.0.0.1:8080", pattern=r"^[^:\s]+:\d{1,5}$")
    public_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://")
    require_approval: bool = True
    session_minutes: int = Field(default=30, ge=5, le=24 * 60)  # a console session's idle timeout
    # Per-author quota of manual broadcasts in any hour (a stolen account must not flood the county).
    broadcasts_per_hour: int = Field(default=20, ge=1, le=10_000)
    # Per-user quota of previews in any hour (each is seconds of a core and a file of several MB).
    previews_per_hour: int = Field(default=60, ge=1, le=10_000)

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _email(v: Any) -> str:
    if not isinstance(v, str) or not _EMAIL.match(v.strip()):
        raise ValueError(f"{v!r} is not an e-mail address")
    return v.strip()


Email = Annotated[str, BeforeValidator(_email)]


@dataclass(frozen=True)
class WeeklyTime:
    """A moment of every week: ISO weekday (1 = Monday) and local time of day."""

    weekday: int
    time: time

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday - 1]} {self.time:%H:%M}"


def _weekly(v: Any) -> WeeklyTime:
    if isinstance(v, WeeklyTime):
        return v
    parts = v.split() if isinstance(v, str) else []
    if len(parts) != 2 or parts[0].upper() not in WEEKDAYS:
        raise ValueError(f"{v!r} is not a weekday and time such as \"FRI 15:00\" "
                         f"(days: {', '.join(WEEKDAYS)})")
    return WeeklyTime(WEEKDAYS.index(parts[0].upper()) + 1, parse_hhmm(parts[1]))


Weekly = Annotated[WeeklyTime, BeforeValidator(_weekly)]


class ReportSchedule(Strict):
    """``report``: the Friday report (A14), made at ``at`` and sent to ``email`` and ``chats``."""

    at: Weekly = Field(default_factory=lambda: _weekly("FRI 15:00"))
    format: Literal["xlsx", "pdf", "both"] = "both"
    email: list[Email] = []
    chats: list[str] = []  # chat ids of directory.yaml ``chats`` (A12)


class SmtpConfig(Strict):
    """``smtp``: the mail server the report is sent through (password from the environment)."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    from_: Email = Field(alias="from")
    starttls: bool = True  # upgrade a plain connection (port 587); ``ssl`` is TLS from the start
    ssl: bool = False  # port 465
    timeout_s: float = Field(default=30, gt=0, le=300)


class PublicConfig(Strict):
    """``public``: what the public page may show beyond the level (A12): only a public hotline."""

    hotline: str | None = Field(default=None, pattern=r"^[0-9+\-() ]{3,20}$")
class CheckinConfig(Strict):
    """``checkins`` (包户核实, A13): times of the duty day (08:00-08:00) that holds the night."""

    level_at_least: int = Field(default=4, ge=1, le=5)
    send_at: HHMM = parse_hhmm("18:30")
    confirm_by: HHMM = parse_hhmm("21:00")


class Settings(Strict):
    """``broadcaster.yaml``. ``feed`` is validated separately (per source type)."""

    town: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("../var")
    database: str = "sqlite:///../var/broadcaster.db"
    rules: Path = Path("rules.yaml")
    directory: Path = Path("directory.yaml")
    feed: Any = None
    schedule: Schedule = Schedule()
    sms: SmsConfig = SmsConfig()
    audio: AudioConfig = AudioConfig()
    http: HttpConfig = HttpConfig()
    report: ReportSchedule | None = None
    smtp: SmtpConfig | None = None
    public: PublicConfig = PublicConfig()
    checkins: CheckinConfig | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("database")
    @classmethod
    def _db(cls, v: str) -> str:
        if not v.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("use sqlite:///PATH or postgresql://user@host/db")
        return v


# ---------------------------------------------------------------- rules.yaml


def template_fields(template: str) -> set[str]:
    """Placeholder names used by a ``str.format`` template (raises ValueError when malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class ClipTemplate(Strict):
    clip: str




class When(Strict):
    level_at_least: int | None = Field(default=None, ge=1, le=5)
    level_in: list[Annotated[int, Field(ge=1, le=5)]] | None = None
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] | None = None  # ISO: 1 = Monday
    months: list[Annotated[int, Field(ge=1, le=12)]] | None = None


class SmsTarget(Strict):
    groups: list[str] = Field(min_length=1)
    template: str


class SpeakerTarget(Strict):
    villages: Literal["all"] | list[str] = "all"
    at: list[HHMM] = Field(min_length=1)
    template: str
    repeat: int | None = Field(default=None, ge=1, le=10)


class ChatTarget(Strict):
    """``chats`` of a rule (A12): the group chats that get the alert's text (and poster)."""

    ids: Literal["all"] | list[str] = "all"
    template: str


class DisplayTarget(Strict):
    """``displays`` of a rule (A12): the villages' screens show the warning until ``until``."""

    villages: Literal["all"] | list[str] = "all"
    template: str
    until: HHMM = parse_hhmm("08:00")


class Rule(Strict):
    name: str
    when: When = When()
    sms: SmsTarget | None = None
    speakers: SpeakerTarget | None = None
    chats: ChatTarget | None = None
    displays: DisplayTarget | None = None


class RulesFile(Strict):
    levels: dict[Annotated[int, Field(ge=1, le=5)], str] = {
        1: "利于扩散", 2: "较利于扩散", 3: "可能发生", 4: "容易发生", 5: "极易发生"
    }
    templates: dict[str, str | ClipTemplate | SmsTemplate]
    rules: list[Rule]

    @field_validator("templates")
    @classmethod
    def _placeholders(cls, v: dict[str, str | ClipTemplate | SmsTemplate]) -> dict[str, str | ClipTemplate | SmsTemplate]:
        for name, t in v.items():
            texts = [t] if isinstance(t, str) else [t.text, *t.params_text()] if isinstance(t, SmsTemplate) else []
            # The reserved templates carry their own facts (DESIGN A10); the others the alert's.
            allowed = PLACEHOLDERS | RESERVED.get(name, frozenset())
            for text in texts:
                try:
                    unknown = template_fields(text) - allowed
                except ValueError as exc:
                    raise ValueError(f"{name}: malformed template: {exc}") from None
                if unknown:
                    raise ValueError(
                        f"{name}: unknown placeholder {{{sorted(unknown)[0]}}}; "
                        f"allowed: {', '.join('{' + p + '}' for p in sorted(allowed))}"
                    )
        return v


# ---------------------------------------------------------------- directory.yaml


def to_e164(raw: str) -> str:
    """Validate a phone number (default region CN) and return it in E.164, or raise ValueError."""
    try:
        n = phonenumbers.parse(str(raw), "CN")
    except phonenumbers.NumberParseException:
        raise ValueError(f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(n):
        raise ValueError(f"{raw!r} is not a valid phone number")
    kind = phonenumbers.number_type(n)
    if n.country_code == 86 and kind != phonenumbers.PhoneNumberType.MOBILE:
        raise ValueError(f"{raw!r} is not a mobile number (SMS needs one)")
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


class Contact(Strict):
    name: str = Field(min_length=1)
    phone: str
    village: str | None = None
    groups: list[str] = Field(min_length=1)

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, v: Any, info: ValidationInfo) -> str:
        try:
            return to_e164(str(v))
        except ValueError as exc:
            raise ValueError(f"{info.data.get('name', '?')}: {exc}") from None


class Village(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    speakers: list[Any] = []  # validated per type by the loader
    displays: list[Any] = []  # display screens (A12), validated per type by the loader


class DirectoryFile(Strict):
    groups: dict[str, str]
    villages: list[Village] = []
    contacts: list[Contact] = []
    chats: list[Any] = []  # group-chat robots (A12), validated per type by the loader
    # Workbooks (A13), relative to directory.yaml: 重点户 and 值班表.
    households_file: Path | None = None
    duty_file: Path | None = None


# ---------------------------------------------------------------- the whole configuration


@dataclass(frozen=True)
class Choice:
    """A plugin chosen by the configuration: its name and its validated settings (A9)."""

    name: str
    config: PluginConfig
    fallbacks: tuple["Choice", ...] = ()  # ``sms.providers`` after the first, in order


@dataclass
class Config:
    """The whole validated configuration, with every relative path already resolved.

    ``sources`` and the values of ``speakers`` are the per-type plugin models; ``sms`` and
    ``tts`` the chosen SMS provider and speech engine with their settings.
    """

    path: Path
    settings: Settings
    sources: list[Any]
    rules: RulesFile
    directory: DirectoryFile
    speakers: dict[str, tuple[Village, Any]]
    directory_dir: Path
    sms: Choice
    tts: Choice
    warnings: list[Problem] = field(default_factory=list)
    chats: dict[str, Any] = field(default_factory=dict)  # chat id -> robot plugin model (A12)
    displays: dict[str, tuple[Village, Any]] = field(default_factory=dict)  # display id -> (village, model)
    # The households and duty workbooks and everyone SMS can reach (A13); swapped whole when a
    # changed workbook is read again (``broadcaster.config.books``).
    book: Book = field(default_factory=lambda: Book())

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def directory_path(self) -> Path:
        """directory.yaml, resolved."""
        return self.resolve(self.settings.directory)

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.settings.data_dir)

    @property
    def database_url(self) -> str:
        url = self.settings.database
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///") :]
            if rel and rel != ":memory:":
                return "sqlite:///" + str(self.resolve(Path(rel)))
        return url

    def speakers_of(self, village_id: str) -> list[Any]:
        """The validated endpoints of one village, in directory order."""
        return [sc for v, sc in self.speakers.values() if v.id == village_id]

    @property
    def villages(self) -> dict[str, Village]:
        return {v.id: v for v in self.directory.villages}
