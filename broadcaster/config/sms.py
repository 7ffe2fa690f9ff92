"""The SMS parts of the configuration (DESIGN A10): the daily cap, and registered templates (a
rules template as text plus each provider's registration, for the providers that send only
templates approved in their console)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SmsCaps(Strict):
    """``sms.caps`` (DESIGN A10)."""

    # SMS a provider accepted for one number in a rolling 24 h, over every alert and broadcast:
    # the carriers allow about 10 non-marketing messages a number a day.
    per_number_per_day: int = Field(default=10, ge=1, le=1000)


class AliyunRegistration(Strict):
    """A template's registration at Aliyun: its code and each variable's value (a template)."""

    code: str = Field(pattern=r"^SMS_\d+$")
    params: dict[str, str] = {}
    max_len: int | None = Field(default=None, ge=1, le=500)  # of its longest variable


class TencentRegistration(Strict):
    """A template's registration at Tencent: its id and the variables ``{1}``, ``{2}``... in order."""

    id: str = Field(pattern=r"^\d+$")
    params: list[str] = []
    max_len: int | None = Field(default=None, ge=1, le=500)

    @field_validator("id", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class SmsTemplate(Strict):
    """A template with its providers' registrations (DESIGN A10): ``text`` is what free-text
    providers send and what the ledger and console show."""

    text: str
    aliyun: AliyunRegistration | None = None
    tencent: TencentRegistration | None = None

    def registration(self, provider: str) -> AliyunRegistration | TencentRegistration | None:
        """The registration for ``provider`` (None when it has none)."""
        return getattr(self, provider, None) if provider in ("aliyun", "tencent") else None

    def params_text(self) -> list[str]:
        """Every parameter template of every registration (for the placeholder check)."""
        out: list[str] = []
        if self.aliyun:
            out.extend(self.aliyun.params.values())
        if self.tencent:
            out.extend(self.tencent.params)
        return out


def template_text(t: Any) -> str | None:
    """The text of a rules template: a string, an SmsTemplate's ``text``, None for a clip."""
    if isinstance(t, SmsTemplate):
        return t.text
    return t if isinstance(t, str) else None
