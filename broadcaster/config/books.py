"""The households and duty workbooks as the running service holds them (DESIGN A13).

:class:`Book` is what was read from ``households_file`` and ``duty_file`` plus everyone an SMS
can reach (YAML contacts merged with the workbooks' people). The service keeps one Book and
swaps it whole when a workbook changed on disk (:func:`changed` then :func:`read_books`), so a
flow always sees one consistent version; a changed workbook with errors is not taken, the last
good one stays in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from broadcaster.config.paths import display
from broadcaster.config.roster import (
    DUTY,
    ContactLike,
    Person,
    merge_people,
    on_duty,
    season_bounds,
    season_gaps,
)
from broadcaster.config.workbooks import (
    DUTY_SHEET,
    DutyDay,
    Household,
    read_duty,
    read_households,
)
from broadcaster.errors import Problem

if TYPE_CHECKING:
    from broadcaster.config.models import Config

# (path, mtime_ns, size) of each workbook as read: a different stamp means read it again.
Stamp = tuple[str, int, int]


@dataclass(frozen=True)
class Book:
    """Households, the roster and the people, as read at one time."""

    households: tuple[Household, ...] = ()
    roster: tuple[DutyDay, ...] = ()
    people: tuple[Person, ...] = ()
    stamps: tuple[Stamp, ...] = ()
    read_at: datetime | None = None
    files: dict[str, str] = field(default_factory=dict)  # "households"/"duty" -> file as shown

    def recipients(
        self, groups: Sequence[str], when: datetime, tz: ZoneInfo, with_leader: bool
    ) -> list[tuple[Person, str]]:
        """Who an SMS to ``groups`` reaches at ``when``: one entry per number, with the first of
        ``groups`` that person is in.

        Group ``duty`` is the roster's people of the duty day holding ``when`` (and its 带班领导
        when ``with_leader``; the YAML ``leaders`` where that day has none), else the YAML duty
        contacts. Order: people in directory order,
        then roster people who are nobody else.
        """
        # Without a roster there is no 带班领导 to add: `duty` stays the YAML duty contacts.
        lead = with_leader and bool(self.roster)
        on = {p.phone: p for p in on_duty(self.roster, when, tz, self.people, lead)} \
            if DUTY in groups else {}
        out: list[tuple[Person, str]] = []
        seen: set[str] = set()
        for p in self.people:
            mine = (p.groups - {DUTY}) | ({DUTY} if p.phone in on else set())
            group = next((g for g in groups if g in mine), None)
            if group is not None:
                seen.add(p.phone)
                out.append((p, group))
        for phone, p in on.items():
            if phone not in seen:
                out.append((p, DUTY))
        return out

    @cached_property
    def _by_cadre(self) -> dict[str, list[Household]]:
        out: dict[str, list[Household]] = {}
        for h in self.households:
            out.setdefault(h.cadre_phone, []).append(h)
        return out

    def by_cadre(self) -> dict[str, list[Household]]:
        """The households of each 包户干部, by the cadre's number, in sheet order (computed once
        per Book: every check-in page asks for it)."""
        return self._by_cadre

    def day(self, day: date) -> DutyDay | None:
        """The roster row of one duty day, if any."""
        return next((d for d in self.roster if d.date == day), None)


def _path(cfg_dir: Path, p: Path | None) -> Path | None:
    return None if p is None else (p if p.is_absolute() else (cfg_dir / p).resolve())


def workbook_paths(households_file: Path | None, duty_file: Path | None,
                   dir_path: Path) -> tuple[Path | None, Path | None]:
    """The two workbooks' paths, relative ones resolved against directory.yaml's folder."""
    return _path(dir_path.parent, households_file), _path(dir_path.parent, duty_file)


def _stamp(p: Path) -> Stamp:
    try:
        st = p.stat()
        return (str(p), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(p), -1, -1)


def read_books(
    households_path: Path | None,
    duty_path: Path | None,
    contacts: Iterable[ContactLike],
    villages: dict[str, str],
    season: tuple[tuple[int, int], tuple[int, int]],
    tz: ZoneInfo,
    now: datetime,
) -> tuple[Book, list[Problem]]:
    """Read both workbooks (either may be None) and merge their people with ``contacts``.

    Returns the Book and every problem: errors name file, sheet, cell and column; warnings are
    the season's days without a roster row and holidays without a 带班领导 (from ``now`` on).
    """
    problems: list[Problem] = []
    households: list[Household] = []
    roster: list[DutyDay] = []
    stamps: list[Stamp] = []
    files: dict[str, str] = {}
    today = now.astimezone(tz).date()
    first, last = season_bounds(today, *season)
    if households_path is not None:
        stamps.append(_stamp(households_path))
        files["households"] = display(households_path)
        households, found = read_households(households_path, villages, file=files["households"])
        problems += found
    if duty_path is not None:
        stamps.append(_stamp(duty_path))
        files["duty"] = display(duty_path)
        roster, found = read_duty(duty_path, season_start=first, file=files["duty"])
        problems += found
        if not any(not p.warning for p in found):
            problems += season_gaps(roster, first, last, tz, now, file=files["duty"], sheet=DUTY_SHEET)
    people = merge_people(contacts, households)
    return Book(tuple(households), tuple(roster), tuple(people), tuple(stamps), now, files), problems


def changed(book: Book, households_path: Path | None, duty_path: Path | None) -> bool:
    """True when a workbook on disk is not the one ``book`` was read from."""
    now = tuple(_stamp(p) for p in (households_path, duty_path) if p is not None)
    return now != book.stamps


def reload(cfg: "Config", now: datetime) -> tuple[bool, list[Problem]]:
    """Read the workbooks again if they changed on disk; take them only when they have no errors.

    Returns (taken, problems). ``cfg.book`` is replaced in one assignment.
    """
    d = cfg.directory
    hp, dp = workbook_paths(d.households_file, d.duty_file, cfg.directory_path)
    if not changed(cfg.book, hp, dp):
        return False, []
    book, problems = read_books(hp, dp, d.contacts, {v.id: v.name for v in d.villages},
                                cfg.settings.schedule.season.bounds(), cfg.tz, now)
    if any(not p.warning for p in problems):
        return False, problems
    cfg.book = book
    return True, problems
