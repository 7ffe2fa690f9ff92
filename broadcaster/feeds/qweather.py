"""``qweather``: official CO-poisoning warnings (event type 1068) from the QWeather alert API.

``GET {api_host}/weatheralert/v1/current/{lat}/{lon}?localTime=true&lang=zh`` with the API key in
the ``X-QW-Api-Key`` header (shared reference ``co-index.md`` §3.2). The body is gzip-compressed
JSON; requests decompresses it from ``Content-Encoding``. Only alerts whose ``eventType.code`` is
1068 (一氧化碳中毒气象条件) count; their colour and/or severity give our level through tables in
the configuration. Nothing in force (``zeroResult: true``, an empty list, or no 1068 alert for
tonight) is "no official warning", which is an answer and not an error.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

import requests
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from broadcaster.errors import FeedError
from broadcaster.net import BoundExceeded, bounded_get, failure_reason
from broadcaster.feeds.base import HttpLimits, Reading, Source, SourceConfig
from broadcaster.timeutil import Night

log = logging.getLogger(__name__)

CO_EVENT_CODE = "1068"  # 一氧化碳中毒气象条件 (dev.qweather.com alert-events)

# Defaults: any official warning is at least our level 3 (the first level Heilongjiang publishes);
# the four warning colours climb from there. QWeather advises against hard-coding its enums, so
# both tables are configuration and a value missing from them falls back to ``unknown_level``.
DEFAULT_COLOR_MAP = {"blue": 3, "yellow": 4, "orange": 5, "red": 5}
DEFAULT_SEVERITY_MAP = {"minor": 3, "moderate": 4, "severe": 5, "extreme": 5}


class QWeatherConfig(SourceConfig, HttpLimits):
    """``feed: {type: qweather, api_host, key, lat, lon, ...}``."""

    type: Literal["qweather"]
    # Your own API Host from the QWeather console (控制台 → 设置), e.g. abc.re.qweatherapi.com
    api_host: str
    key: SecretStr = Field(min_length=1)  # the project's API KEY, normally ${QWEATHER_KEY}
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timeout_s: float = Field(default=10, gt=0, le=120)
    lang: str = "zh"
    event_code: str = CO_EVENT_CODE
    # Which of an alert's colour and severity sets the level: the higher of the two, or one only
    # (the other is the fallback when the preferred one is missing or not in its table).
    level_by: Literal["max", "color", "severity"] = "max"
    color_map: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_COLOR_MAP))
    severity_map: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY_MAP))
    # The level of a 1068 alert whose colour and severity are in neither table.
    unknown_level: int = Field(default=3, ge=1, le=5)

    @field_validator("api_host")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v:
            raise ValueError("api_host is empty")
        # The console shows the host without a scheme; accept it as shown.
        return v if v.startswith(("http://", "https://")) else "https://" + v

    @field_validator("color_map", "severity_map")
    @classmethod
    def _table(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if not 1 <= n <= 5}
        if bad:
            raise ValueError(f"levels must be 1..5, got {bad}")
        return {k.strip().lower(): n for k, n in v.items()}


class _Alert(BaseModel):
    """The fields of one alert that we use; the rest is ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str
    senderName: str | None = None
    issuedTime: AwareDatetime
    severity: str | None = None
    color: dict[str, Any] | None = None
    effectiveTime: AwareDatetime | None = None
    onsetTime: AwareDatetime | None = None
    expiredTime: AwareDatetime | None = None
    headline: str | None = None


class QWeatherSource(Source):
    """Official 1068 warnings in force tonight at the configured point."""

    type = "qweather"
    Config = QWeatherConfig
    empty_means_no_warning = True

    def fetch(self, night: Night) -> list[Reading]:
        cfg: QWeatherConfig = self.config  # type: ignore[assignment]
        doc = self._get(cfg)
        alerts = _current_alerts(doc, cfg.event_code, self.name)
        readings = []
        for i, raw in alerts:
            try:
                alert = _Alert.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                reason = f"wrong schema: alerts[{i}].{where}: {err['msg']}"
                raise FeedError(self.name, reason) from exc
            reading = self._reading(alert, night, cfg)
            if reading is not None:
                readings.append(reading)
        # The base takes the first reading that covers tonight: highest level first, then newest.
        readings.sort(key=lambda r: (r.level, r.issued_at), reverse=True)
        return readings

    def _get(self, cfg: QWeatherConfig) -> dict[str, Any]:
        url = f"{cfg.api_host}/weatheralert/v1/current/{cfg.lat:.2f}/{cfg.lon:.2f}"
        headers = {"X-QW-Api-Key": cfg.key.get_secret_value(), "Accept-Encoding": "gzip"}
        params = {"localTime": "true", "lang": cfg.lang}
        try:
            resp = bounded_get(url, params=params, headers=headers, timeout_s=cfg.timeout_s,
                               deadline_s=cfg.deadline_s, max_bytes=cfg.max_bytes)
        except BoundExceeded as exc:
            raise FeedError(self.name, str(exc)) from exc
        except requests.RequestException as exc:
            raise FeedError(self.name, failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code != 200:
            raise FeedError(self.name, _http_reason(resp))
        try:
            doc = resp.json()
        except ValueError:
            raise FeedError(self.name, "malformed JSON") from None
        if not isinstance(doc, dict):
            raise FeedError(self.name, "malformed JSON: expected an object")
        return doc

    def _reading(self, alert: _Alert, night: Night, cfg: QWeatherConfig) -> Reading | None:
        starts = [t for t in (alert.effectiveTime, alert.onsetTime) if t is not None]
        start: datetime = min(starts) if starts else night.start
        end: datetime = alert.expiredTime or night.end
        if not (start < night.end and end > night.start):
            log.info("feed %s: alert %s is not in force tonight, ignored", self.name, alert.id)
            return None
        # The base picks the reading whose window holds tonight's 20:00. A warning that takes
        # effect later tonight still concerns tonight, so its window is widened back to 20:00.
        start = min(start, night.start)
        return Reading(
            region=self.region,
            valid_from=start,
            valid_to=end,
            level=_level(alert, cfg),
            issued_at=alert.issuedTime,
            source=alert.senderName or "和风天气预警",
            advice=alert.headline,
        )


def _current_alerts(doc: dict[str, Any], event_code: str, name: str) -> list[tuple[int, dict]]:
    """The raw alerts of ``event_code`` still in force: not cancelled, not superseded.

    Other event types are dropped before validation so that an odd alert of another type
    cannot break the CO feed.
    """
    meta = doc.get("metadata")
    alerts = doc.get("alerts")
    if isinstance(meta, dict) and meta.get("zeroResult") is True:
        return []
    if alerts is None:
        if isinstance(meta, dict):
            return []  # metadata without alerts: nothing in force
        raise FeedError(name, "malformed JSON: neither metadata nor alerts")
    if not isinstance(alerts, list):
        raise FeedError(name, "wrong schema: alerts is not a list")
    superseded: set[str] = set()
    for a in alerts:
        mt = a.get("messageType") if isinstance(a, dict) else None
        if isinstance(mt, dict) and isinstance(mt.get("supersedes"), list):
            superseded.update(str(s) for s in mt["supersedes"])
    kept = []
    for i, a in enumerate(alerts):
        if not isinstance(a, dict):
            continue
        et = a.get("eventType")
        if not isinstance(et, dict) or str(et.get("code")) != event_code:
            continue
        mt = a.get("messageType")
        if isinstance(mt, dict) and mt.get("code") == "cancel":
            continue  # a cancellation notice, not a warning
        if str(a.get("id")) in superseded:
            continue
        kept.append((i, a))
    return kept


def _level(alert: _Alert, cfg: QWeatherConfig) -> int:
    color = alert.color.get("code") if isinstance(alert.color, dict) else None
    by_color = cfg.color_map.get(str(color).lower()) if color else None
    by_severity = cfg.severity_map.get(alert.severity.lower()) if alert.severity else None
    if cfg.level_by == "color":
        found = by_color if by_color is not None else by_severity
    elif cfg.level_by == "severity":
        found = by_severity if by_severity is not None else by_color
    else:
        found = max((n for n in (by_color, by_severity) if n is not None), default=None)
    if found is None:
        log.warning(
            "qweather alert %s: colour %r / severity %r not in the tables, using level %d",
            alert.id, color, alert.severity, cfg.unknown_level,
        )
        return cfg.unknown_level
    return found


def _http_reason(resp: requests.Response) -> str:
    """A short reason for a non-200 answer, using the v2 error body when there is one."""
    code = resp.status_code
    if code == 401:
        return "HTTP 401: invalid API key"
    detail = ""
    try:
        err = resp.json().get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict):
        parts = [str(err[k]) for k in ("title", "detail") if err.get(k)]
        params = err.get("invalidParams")
        if params:
            parts.append(f"invalid params {params}")
        detail = ": ".join(parts)
    if code == 429:
        return "HTTP 429: too many requests" + (f" ({detail})" if detail else "")
    return f"HTTP {code}: {detail}" if detail else f"HTTP {code}"
