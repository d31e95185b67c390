"""Time hints: the calendar period a recall query names, as an event-time interval.

"What did Ann do in May 2023?", "... on 7 May 2023", "... in 2022", "... in June" name a period
of event time; a recall with ``time_hints`` (see ``schemas.recall.RecallRequest``) gives the
memories formed in it a small score bonus. Pure logic, no I/O; arbitrary text never raises (it
names no period instead).

Recognised, in this order of precedence (a more specific mention claims its words first):

- a day: ``7 May 2023``, ``7th of May, 2023``, ``May 7, 2023``, ``2023-05-07``;
- a month of a year: ``May 2023``, ``Sept. 2022`` (3-letter abbreviations are accepted wherever a
  year or a day number follows the month);
- a month without a year, after ``in``/``during``/``of``/``since``/``early``/``late``/``mid``:
  ``in June``, ``mid-July`` (full month names only: "mar", "may" are words). It is the most
  recent such month that has begun at the reference time (the agent's "now"): asked in
  August 2023, ``in June`` is June 2023 and ``in September`` September 2022. Without a reference
  it names nothing;
- a year after ``in``/``during``/``of``: ``in 2022`` (1900..2099 only: "of 150 people" is no
  year).

Calendar periods are taken in the reference time's zone (its UTC offset; UTC without a
reference). A period is a closed interval ``[since, until]`` of aware datetimes: ``until`` is the
last microsecond of the day/month/year. When a query names several periods, the one it names is
their hull (first start to last end): "between May 2023 and July 2023" is May..July.

This generalises ``bench/locomo.py``'s original prototype (``named_period``), which resolved a
month without a year against the conversation's span instead of a reference time.

>>> ref = datetime(2023, 8, 15, tzinfo=UTC)
>>> p = named_period("What did Caroline do in May 2023?", ref)
>>> p.kind, p.since.isoformat(), p.until.isoformat()
('month', '2023-05-01T00:00:00+00:00', '2023-05-31T23:59:59.999999+00:00')
>>> named_period("When did she go camping in June?", ref).since.date().isoformat()
'2023-06-01'
>>> named_period("in September", ref).since.date().isoformat()
'2022-09-01'
>>> [p.text for p in find_periods("on 7 May 2023, and in 2022", ref)]
['7 May 2023', 'in 2022']
>>> named_period("what do I remember about wolves?", ref) is None
True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

__all__ = ["MAX_SCAN_CHARS", "PeriodKind", "TimePeriod", "find_periods", "named_period"]

MAX_SCAN_CHARS = 16384
"""Only the first this many characters of a text are read (a recall query has at most 8192)."""

PeriodKind = Literal["day", "month", "year", "range"]

_FULL = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTHS = _FULL  # the month names, January first (also used by bench/locomo.py)
_MONTH_NUM = {name[:3]: i + 1 for i, name in enumerate(_FULL)}  # "sep" -> 9
_FULL_RE = "|".join(_FULL)
# full names first (alternation is ordered), then abbreviations ("sept" before "sep")
_ANY_RE = rf"(?:{_FULL_RE}|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_ORD = r"(?:st|nd|rd|th)?"
_F = re.IGNORECASE | re.ASCII  # ASCII: no Unicode digits or case folds ("ſeptember")

_ISO_DAY = re.compile(r"(?<![\d-])(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)", _F)
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?({_ANY_RE}),?\s+(\d{{4}})\b", _F)
_MONTH_DAY_YEAR = re.compile(rf"\b({_ANY_RE})\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})\b", _F)
_MONTH_YEAR = re.compile(rf"\b({_ANY_RE}),?\s+(\d{{4}})\b", _F)
_MONTH = re.compile(rf"\b(?:in|during|of|since|early|late|mid)[\s-]+({_FULL_RE})\b", _F)
_YEAR = re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d\d)\b", _F)

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class TimePeriod:
    """A closed event-time interval a query names.

    ``since``/``until``: aware datetimes, the first and the last instant (``until`` is the next
    period's start minus one microsecond). ``kind``: ``day``, ``month``, ``year``, or ``range``
    (the hull of several mentions). ``text``: the query's words that named it (several joined
    by ``"; "`` for a range).
    """

    since: datetime
    until: datetime
    kind: PeriodKind
    text: str

    @property
    def since_ts(self) -> float:
        """``since`` as POSIX seconds."""
        return self.since.timestamp()

    @property
    def until_ts(self) -> float:
        """``until`` as POSIX seconds."""
        return self.until.timestamp()


def _reference(ref: datetime | float | None) -> datetime | None:
    """The reference as an aware datetime (a naive one is UTC; a number is POSIX seconds)."""
    if isinstance(ref, datetime):
        return (
            ref
            if ref.tzinfo is not None and ref.utcoffset() is not None
            else ref.replace(tzinfo=UTC)
        )
    if isinstance(ref, int | float) and not isinstance(ref, bool) and math.isfinite(ref):
        try:
            return datetime.fromtimestamp(ref, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _period(
    tz: tzinfo, kind: PeriodKind, text: str, y: int, mo: int = 1, d: int = 1
) -> TimePeriod | None:
    """The day/month/year starting at y-mo-d in ``tz``; None when it is no valid date."""
    try:
        since = datetime(y, mo, d, tzinfo=tz)
        if kind == "day":
            nxt = since + timedelta(days=1)
        elif kind == "month":
            nxt = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=tz)
        else:
            nxt = datetime(y + 1, 1, 1, tzinfo=tz)
        until = nxt - _MICROSECOND
        if not (math.isfinite(since.timestamp()) and math.isfinite(until.timestamp())):
            return None
        since.astimezone(UTC), until.astimezone(UTC)  # representable as UTC datetimes
    except (ValueError, OverflowError, OSError):
        return None
    return TimePeriod(since, until, kind, text)


def _month(name: str) -> int | None:
    return _MONTH_NUM.get(name.rstrip(".").lower()[:3])


def find_periods(text: str, ref: datetime | float | None = None) -> list[TimePeriod]:
    """Every period ``text`` names, in the order they appear (see the module docstring).

    ``ref``: the reference time ("now": a datetime, or POSIX seconds) that resolves a month named
    without a year and whose UTC offset sets the calendar; without it such months are skipped
    and the calendar is UTC. Never raises: anything that is not text names no period, nor does
    an impossible date (of "31 February 2023" only the month is left).

    >>> ref = datetime(2024, 3, 1, tzinfo=UTC)
    >>> [(p.kind, p.text) for p in find_periods("May 7, 2023 or in early March?", ref)]
    [('day', 'May 7, 2023'), ('month', 'early March')]
    >>> [(p.kind, p.text) for p in find_periods("on 31 February 2023")]
    [('month', 'February 2023')]
    >>> find_periods(None)  # type: ignore[arg-type]
    []
    """
    if not isinstance(text, str) or not text:
        return []
    text = text[:MAX_SCAN_CHARS]
    now = _reference(ref)
    tz: tzinfo = now.tzinfo if now is not None and now.tzinfo is not None else UTC
    found: list[tuple[int, int, TimePeriod]] = []

    def claim(m: re.Match[str], period: TimePeriod | None) -> None:
        if period is None:
            return
        a, b = m.span()
        if any(a < e and s < b for s, e, _ in found):  # a more specific mention holds these
            return
        found.append((a, b, period))

    for m in _ISO_DAY.finditer(text):
        claim(m, _period(tz, "day", m.group(), int(m[1]), int(m[2]), int(m[3])))
    for m in _DAY_MONTH_YEAR.finditer(text):
        mo = _month(m[2])
        if mo is not None:
            claim(m, _period(tz, "day", m.group(), int(m[3]), mo, int(m[1])))
    for m in _MONTH_DAY_YEAR.finditer(text):
        mo = _month(m[1])
        if mo is not None:
            claim(m, _period(tz, "day", m.group(), int(m[3]), mo, int(m[2])))
    for m in _MONTH_YEAR.finditer(text):
        mo = _month(m[1])
        if mo is not None:
            claim(m, _period(tz, "month", m.group(), int(m[2]), mo))
    if now is not None:
        for m in _MONTH.finditer(text):
            mo = _month(m[1])
            if mo is not None:
                year = now.year if mo <= now.month else now.year - 1
                claim(m, _period(tz, "month", m.group(), year, mo))
    for m in _YEAR.finditer(text):
        claim(m, _period(tz, "year", m.group(), int(m[1])))
    return [p for _, _, p in sorted(found, key=lambda f: f[0])]


def named_period(text: str, ref: datetime | float | None = None) -> TimePeriod | None:
    """The period ``text`` names: its one mention, or the hull of several (kind ``range``);
    None when it names none. ``ref`` as in ``find_periods``.

    >>> p = named_period("between May 2023 and July 2023")
    >>> p.kind, p.since.date().isoformat(), p.until.date().isoformat(), p.text
    ('range', '2023-05-01', '2023-07-31', 'May 2023; July 2023')
    """
    periods = find_periods(text, ref)
    if not periods:
        return None
    if len(periods) == 1:
        return periods[0]
    since = min(periods, key=lambda p: p.since_ts).since
    until = max(periods, key=lambda p: p.until_ts).until
    return TimePeriod(since, until, "range", "; ".join(p.text for p in periods))
