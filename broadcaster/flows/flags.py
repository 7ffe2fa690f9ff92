"""Unreachable-number flags an admin can see and clear (issue 18, item 10).

A provider's receipt may flag a number as unreachable (30006 can be a carrier's passing fault);
the flag holds the number back for ``FLAG_DAYS``. An admin who knows the number works again
clears it sooner, from the CLI (``broadcaster number clear``) or the console's villages page;
each clearing is audited, with the number masked.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from broadcaster.errors import InputError, NotFound
from broadcaster.logutil import mask_phone

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service


def flag_key(phone: str) -> str:
    """A stable handle for a flagged number that does not show it (the console's form value)."""
    return hashlib.sha256(phone.encode()).hexdigest()[:16]


def normalise(phone: str) -> str:
    """``+86 138-0013-8000`` -> ``+8613800138000``; anything but an E.164 number -> InputError."""
    number = re.sub(r"[\s\-()]", "", phone or "")
    if not re.fullmatch(r"\+\d{6,15}", number):
        raise InputError("phone", "号码应为国际格式，如 +8613800138000 / expected an E.164 number like +8613800138000")
    return number


def clear(svc: Service, phone: str, actor: str) -> str:
    """Clear the unreachable flag of ``phone`` (audited as ``contact.unflag``); the reason it had.
    NotFound when the number carries no flag."""
    number = normalise(phone)
    reason = svc.ledger.clear_flag(number)
    if reason is None:
        raise NotFound(f"号码 {mask_phone(number)} 没有不可达标记 / {mask_phone(number)} is not flagged")
    svc.ledger.audit(svc.now(), actor, "contact.unflag", "contact_flag", mask_phone(number),
                     {"phone": mask_phone(number), "reason": reason})
    return reason


def clear_by_key(svc: Service, key: str, actor: str) -> str:
    """:func:`clear` for the flagged number whose :func:`flag_key` is ``key`` (NotFound if none)."""
    for flag in svc.ledger.reads.unreachable_flags():
        if flag_key(flag.phone) == key:
            return clear(svc, flag.phone, actor)
    raise NotFound("没有这个不可达标记（可能已被清除）/ no such flag (already cleared?)")
