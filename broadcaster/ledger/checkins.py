"""Check-ins as the ledger keeps them (包户核实, DESIGN A13): each cadre's code for a night (by its
sha256) and every answer given on the page (appended, never changed; the latest counts)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcaster.ledger.models import Alert, AuditEntry, CheckinAnswer, CheckinCode

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

# (village id, 户主, 地址): what identifies a household (A13's duplicate rule).
HouseholdKey = tuple[str, str, str]


class Checkins:
    """Codes and answers of check-in nights."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    def issue(self, night: date, codes: list[tuple[str, str, str, list[HouseholdKey]]], expires_at: datetime,
              now: datetime) -> bool:
        """Store ``(code_sha256, cadre_phone, cadre_name, households)`` for ``night``, all or none,
        in place of any codes of that night whose SMS never went (see ``links_sent``).

        False when the night's links were already sent (by this node earlier, or another one).
        """
        try:
            with self._ledger.session() as s:
                if self._sent(s, night):
                    return False
                s.execute(delete(CheckinCode).where(CheckinCode.night == night))
                s.execute(insert(CheckinCode), [
                    {"code_sha256": sha, "night": night, "cadre_phone": phone, "cadre_name": name,
                     "households": [list(k) for k in homes], "expires_at": expires_at, "created_at": now}
                    for sha, phone, name, homes in codes])
            return True
        except IntegrityError:
            return False

    @staticmethod
    def _sent(s: Session, night: date) -> bool:
        key = Alert.dedupe_key.like(f"checkin:%:{night.isoformat()}")
        return s.scalar(select(Alert.id).where(key, Alert.kind == "system").limit(1)) is not None

    def links_sent(self, night: date) -> bool:
        """Whether the night's check-in SMS were queued (their alert exists): codes issued by a
        run that stopped before queueing them are replaced by the next run."""
        with self._ledger.reader() as s:
            return self._sent(s, night)

    def issued(self, night: date) -> bool:
        """Whether the night's check-in codes exist."""
        with self._ledger.reader() as s:
            return s.scalar(select(CheckinCode.id).where(CheckinCode.night == night).limit(1)) is not None

    def code(self, code_sha256: str) -> CheckinCode | None:
        """The code row for a hashed code, expired or not (the caller decides)."""
        with self._ledger.reader() as s:
            row = s.scalar(select(CheckinCode).where(CheckinCode.code_sha256 == code_sha256))
            if row is not None:
                s.expunge(row)
            return row

    def answer(self, night: date, key: HouseholdKey, cadre: tuple[str, str], answer: str,
               now: datetime, actor: str, detail: dict[str, str]) -> None:
        """Record one answer and its audit entry in one transaction."""
        village, head, address = key
        with self._ledger.session() as s:
            s.add(CheckinAnswer(night=night, village=village, head=head, address=address,
                                cadre_phone=cadre[0], cadre_name=cadre[1], answer=answer, answered_at=now))
            s.add(AuditEntry(at=now, actor=actor, action="checkin.answer", object_type="checkin",
                             object_id=night.isoformat(), detail=detail))

    def answers(self, night: date, cadre_phone: str | None = None) -> dict[HouseholdKey, tuple[str, datetime, str]]:
        """The latest answer per household of ``night`` (given by ``cadre_phone`` only, when set):
        ``{key: (answer, answered_at, cadre_name)}``."""
        a = CheckinAnswer
        q = (select(a.village, a.head, a.address, a.answer, a.answered_at, a.cadre_name)
             .where(a.night == night).order_by(a.id))
        if cadre_phone is not None:
            q = q.where(a.cadre_phone == cadre_phone)
        with self._ledger.reader() as s:
            return {(v, h, ad): (ans, at, cadre) for v, h, ad, ans, at, cadre in s.execute(q)}

    def summary(self, start: date, end: date) -> tuple[list[tuple[str, int, int, int]],
                                                        list[tuple[str, int, int, int]]]:
        """Nights ``start``..``end``: ``(village id | cadre name, households, answered, missing)``,
        each household counted once per night; answered = any of the three answers."""
        with self._ledger.reader() as s:
            codes = list(s.execute(select(CheckinCode.night, CheckinCode.cadre_name, CheckinCode.households)
                                   .where(CheckinCode.night.between(start, end))))
            answered = {(n, v, h, a) for n, v, h, a in s.execute(
                select(CheckinAnswer.night, CheckinAnswer.village, CheckinAnswer.head, CheckinAnswer.address)
                .where(CheckinAnswer.night.between(start, end)))}
        villages: dict[str, list[int]] = {}
        cadres: dict[str, list[int]] = {}
        for night, cadre, homes in codes:
            for village, head, address in homes:
                done = (night, village, head, address) in answered
                for row in (villages.setdefault(village, [0, 0, 0]), cadres.setdefault(cadre, [0, 0, 0])):
                    row[0] += 1
                    row[1 if done else 2] += 1
        return ([(k, *v) for k, v in sorted(villages.items())],  # type: ignore[misc]
                [(k, *v) for k, v in sorted(cadres.items())])  # type: ignore[misc]
