"""The canonical feed JSON of DESIGN A5, parsed strictly, with an optional field mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from broadcaster.errors import FeedError
from broadcaster.feeds.base import Reading


class _Forecast(BaseModel):
    model_config = ConfigDict(extra="ignore")
    region: str
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    level: int
    index: float | None = None
    advice: str | None = None


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")
    issued_at: AwareDatetime
    source: str | None = None
    forecasts: list[_Forecast]


def _dig(obj: Any, path: str) -> Any:
    """Follow a dotted path (``data.items.0.level``) through dicts and lists."""
    for part in path.split(".") if path else []:
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise KeyError(path)
    return obj


def apply_mapping(doc: Any, mapping: dict[str, str]) -> Any:
    """Rewrite another JSON shape into the canonical one.

    ``mapping`` keys are canonical names; values are dotted paths. ``forecasts``, ``issued_at``
    and ``source`` are read from the document root, the other keys from each forecast item.
    """
    top = {"forecasts", "issued_at", "source"}
    out: dict[str, Any] = dict(doc) if isinstance(doc, dict) else {}
    for key in top & mapping.keys():
        try:
            out[key] = _dig(doc, mapping[key])
        except KeyError:
            raise FeedError("http-json", f"mapped field {key!r} not found at {mapping[key]!r}")
    items = out.get("forecasts")
    if isinstance(items, list):
        per_item = {k: v for k, v in mapping.items() if k not in top}
        new_items = []
        for i, item in enumerate(items):
            new = dict(item) if isinstance(item, dict) else {}
            for key, path in per_item.items():
                try:
                    new[key] = _dig(item, path)
                except KeyError:
                    raise FeedError("http-json", f"mapped field {key!r} not found at forecasts[{i}].{path}")
            new_items.append(new)
        out["forecasts"] = new_items
    return out


def parse_document(doc: Any, source: str) -> list[Reading]:
    """Parse a canonical document into readings, or raise FeedError naming the bad field."""
    try:
        parsed = _Document.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "document"
        raise FeedError(source, f"wrong schema: {where}: {err['msg']}") from exc
    label = parsed.source or source
    issued: datetime = parsed.issued_at
    return [
        Reading(
            region=f.region,
            valid_from=f.valid_from,
            valid_to=f.valid_to,
            level=f.level,
            issued_at=issued,
            source=label,
            index=f.index,
            advice=f.advice,
        )
        for f in parsed.forecasts
    ]
