"""Tests for autocron, in the order of the module's sections.

The cron-expression tests check the engine three ways:

* the shared hand-checked vectors (``../shared/cron_vectors.jsonl``, embedded below so the
  tests never read outside the repository);
* hypothesis properties against a brute-force reference evaluator written here from
  ``cron-spec.md`` alone (Appendix A for days, §6.2 for never-firing expressions, §7.4 for
  daylight saving), never from autocron's internals;
* random text, which must give a ``CronExpression`` or a ``CronError`` and nothing else.

The reference is deliberately slow and simple: it walks the calendar day by day and the
clock minute by minute, so that it is easy to believe. Its own tests come first, since every
property below is only as good as it is.
"""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime, time, timedelta, timezone
from itertools import islice
from typing import Iterator, Optional
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import autocron

NOW = datetime(2024, 1, 1)
UTC = timezone.utc
_MINUTE = timedelta(minutes=1)


# ---- cron expressions ----
#
# Shared vectors: (expression, start, zone or None, the next three fire times). Aware starts
# and results carry their UTC offset, which tells the two passes of a repeated hour apart.

_VECTORS: list[tuple[str, str, Optional[str], tuple[str, str, str]]] = [
    # a start that itself matches is excluded
    ("* * * * *", "2024-01-01T00:00:00", None,
     ("2024-01-01T00:01:00", "2024-01-01T00:02:00", "2024-01-01T00:03:00")),
    # step on *: 0,5,10,...
    ("*/5 * * * *", "2024-01-01T00:03:00", None,
     ("2024-01-01T00:05:00", "2024-01-01T00:10:00", "2024-01-01T00:15:00")),
    # range with step: 5,12,19
    ("5-20/7 * * * *", "2024-01-01T00:00:00", None,
     ("2024-01-01T00:05:00", "2024-01-01T00:12:00", "2024-01-01T00:19:00")),
    # hours 0,5,10,15,20; wraps to next day
    ("0 */5 * * *", "2024-01-01T21:00:00", None,
     ("2024-01-02T00:00:00", "2024-01-02T05:00:00", "2024-01-02T10:00:00")),
    # business hours; Friday evening rolls to Monday
    ("15,45 8-17 * * 1-5", "2024-01-05T17:50:00", None,
     ("2024-01-08T08:15:00", "2024-01-08T08:45:00", "2024-01-08T09:15:00")),
    # months 1,4,7,10
    ("0 0 1 */3 *", "2024-02-15T00:00:00", None,
     ("2024-04-01T00:00:00", "2024-07-01T00:00:00", "2024-10-01T00:00:00")),
    # last minute of the year
    ("59 23 31 12 *", "2024-06-01T00:00:00", None,
     ("2024-12-31T23:59:00", "2025-12-31T23:59:00", "2026-12-31T23:59:00")),
    # 30th skips February
    ("0 0 30 * *", "2024-01-30T00:00:00", None,
     ("2024-03-30T00:00:00", "2024-04-30T00:00:00", "2024-05-30T00:00:00")),
    # month names, case-insensitive, in a list
    ("0 0 1 JAN,jul *", "2024-01-01T00:00:00", None,
     ("2024-07-01T00:00:00", "2025-01-01T00:00:00", "2025-07-01T00:00:00")),
    # name range with step: Mon,Wed,Fri
    ("0 0 * * mon-fri/2", "2024-01-01T00:00:00", None,
     ("2024-01-03T00:00:00", "2024-01-05T00:00:00", "2024-01-08T00:00:00")),
    # Fri,Sat,Sun via 7
    ("0 0 * * 5-7", "2024-01-01T00:00:00", None,
     ("2024-01-05T00:00:00", "2024-01-06T00:00:00", "2024-01-07T00:00:00")),
    # 1,3,5,7 -> Mon,Wed,Fri,Sun
    ("0 0 * * 1-7/2", "2024-01-01T00:00:00", None,
     ("2024-01-03T00:00:00", "2024-01-05T00:00:00", "2024-01-07T00:00:00")),
    # OR rule: every Friday OR the 13th (not 'Friday the 13th')
    ("0 12 13 * 5", "2024-01-01T00:00:00", None,
     ("2024-01-05T12:00:00", "2024-01-12T12:00:00", "2024-01-13T12:00:00")),
    # DOW starts with * => AND => first Sunday of the month
    ("0 0 1-7 * */7", "2024-01-01T00:00:00", None,
     ("2024-01-07T00:00:00", "2024-02-04T00:00:00", "2024-03-03T00:00:00")),
    # DOM starts with * => AND => first Monday
    ("0 0 */100,1-7 * MON", "2024-01-01T00:00:00", None,
     ("2024-02-05T00:00:00", "2024-03-04T00:00:00", "2024-04-01T00:00:00")),
    # 1-31 does not start with * => OR => every day
    ("0 0 1-31 * MON", "2024-01-01T00:00:00", None,
     ("2024-01-02T00:00:00", "2024-01-03T00:00:00", "2024-01-04T00:00:00")),
    # OR: Feb 29 or any Monday in February
    ("0 0 29 2 1", "2023-01-01T00:00:00", None,
     ("2023-02-06T00:00:00", "2023-02-13T00:00:00", "2023-02-20T00:00:00")),
    # OR: last day of month or any Friday
    ("0 0 L * 5", "2024-01-01T00:00:00", None,
     ("2024-01-05T00:00:00", "2024-01-12T00:00:00", "2024-01-19T00:00:00")),
    # dom starts with * => AND: first Monday that falls on an odd date
    ("0 0 */2 * 1#1", "2024-01-01T00:00:00", None,
     ("2024-02-05T00:00:00", "2024-04-01T00:00:00", "2024-06-03T00:00:00")),
    # DOM '*,15' starts with * => AND => Mondays only
    ("0 0 *,15 * MON", "2024-01-01T00:00:00", None,
     ("2024-01-08T00:00:00", "2024-01-15T00:00:00", "2024-01-22T00:00:00")),
    # Feb 29 every 4 years
    ("0 0 29 2 *", "2024-03-01T00:00:00", None,
     ("2028-02-29T00:00:00", "2032-02-29T00:00:00", "2036-02-29T00:00:00")),
    # last day of February
    ("0 0 L 2 *", "2023-03-01T00:00:00", None,
     ("2024-02-29T00:00:00", "2025-02-28T00:00:00", "2026-02-28T00:00:00")),
    # 29th skips February in common years
    ("0 0 29 * *", "2023-01-30T00:00:00", None,
     ("2023-03-29T00:00:00", "2023-04-29T00:00:00", "2023-05-29T00:00:00")),
    # last weekday of month
    ("0 0 LW * *", "2024-03-01T00:00:00", None,
     ("2024-03-29T00:00:00", "2024-04-30T00:00:00", "2024-05-31T00:00:00")),
    # Sep 15 2024 is Sun -> Mon 16
    ("0 0 15W * *", "2024-08-20T00:00:00", None,
     ("2024-09-16T00:00:00", "2024-10-15T00:00:00", "2024-11-15T00:00:00")),
    # 31W skips short months; Sun Mar 31 2024 -> Fri 29
    ("0 0 31W * *", "2024-03-01T00:00:00", None,
     ("2024-03-29T00:00:00", "2024-05-31T00:00:00", "2024-07-31T00:00:00")),
    # last Sunday (7L == 0L)
    ("0 0 * * 7L", "2024-01-01T00:00:00", None,
     ("2024-01-28T00:00:00", "2024-02-25T00:00:00", "2024-03-31T00:00:00")),
    # fifth Friday: only months that have one
    ("0 0 * * 5#5", "2024-01-01T00:00:00", None,
     ("2024-03-29T00:00:00", "2024-05-31T00:00:00", "2024-08-30T00:00:00")),
    # list mixing plain dow and nL
    ("0 0 * * 5L,1", "2024-01-01T00:00:00", None,
     ("2024-01-08T00:00:00", "2024-01-15T00:00:00", "2024-01-22T00:00:00")),
    # = 0 0 1 1 *
    ("@yearly", "2024-06-01T00:00:00", None,
     ("2025-01-01T00:00:00", "2026-01-01T00:00:00", "2027-01-01T00:00:00")),
    # = 0 0 * * 0 (Sunday)
    ("@weekly", "2024-01-01T00:00:00", None,
     ("2024-01-07T00:00:00", "2024-01-14T00:00:00", "2024-01-21T00:00:00")),
    # = 0 * * * *
    ("@hourly", "2024-01-01T23:30:00", None,
     ("2024-01-02T00:00:00", "2024-01-02T01:00:00", "2024-01-02T02:00:00")),
    # fixed-time 02:00 on spring-forward day -> 03:00
    ("0 2 * * *", "2024-03-30T12:00:00+01:00", "Europe/Berlin",
     ("2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00", "2024-04-02T02:00:00+02:00")),
    # wildcard hour: 02:30 simply does not exist, no catch-up
    ("30 * * * *", "2024-03-31T00:45:00+01:00", "Europe/Berlin",
     ("2024-03-31T01:30:00+01:00", "2024-03-31T03:30:00+02:00", "2024-03-31T04:30:00+02:00")),
    # minute starts with * => wildcard job => skipped entirely on 03-31
    ("*/30 2 * * *", "2024-03-30T12:00:00+01:00", "Europe/Berlin",
     ("2024-04-01T02:00:00+02:00", "2024-04-01T02:30:00+02:00", "2024-04-02T02:00:00+02:00")),
    # wildcard hour: 02:00 is lost on spring-forward day
    ("0 */2 * * *", "2024-03-30T23:30:00+01:00", "Europe/Berlin",
     ("2024-03-31T00:00:00+01:00", "2024-03-31T04:00:00+02:00", "2024-03-31T06:00:00+02:00")),
    # fixed-time on fall-back day: 02:00 fires once
    ("0 0-23/2 * * *", "2024-10-27T01:30:00+02:00", "Europe/Berlin",
     ("2024-10-27T02:00:00+02:00", "2024-10-27T04:00:00+01:00", "2024-10-27T06:00:00+01:00")),
    # start in the second pass: fixed job not repeated that day
    ("30 2 * * *", "2024-10-27T02:10:00+01:00", "Europe/Berlin",
     ("2024-10-28T02:30:00+01:00", "2024-10-29T02:30:00+01:00", "2024-10-30T02:30:00+01:00")),
    # wildcard (minute *) fires 02:00,02:30 CEST then again CET
    ("*/30 2 * * *", "2024-10-27T01:00:00+02:00", "Europe/Berlin",
     ("2024-10-27T02:00:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-27T02:00:00+01:00")),
    # fixed-time: 02:00 once (CEST), then 03:00 CET
    ("0 1-3 * * *", "2024-10-27T00:30:00+02:00", "Europe/Berlin",
     ("2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T03:00:00+01:00")),
    # midnight unaffected; offsets change
    ("0 0 * * *", "2024-03-30T12:00:00+01:00", "Europe/Berlin",
     ("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00", "2024-04-02T00:00:00+02:00")),
    # Sunday 02:00 on spring-forward Sunday -> 03:00 EDT
    ("0 2 * * 0", "2024-03-03T12:00:00-05:00", "America/New_York",
     ("2024-03-10T03:00:00-04:00", "2024-03-17T02:00:00-04:00", "2024-03-24T02:00:00-04:00")),
    # fixed-time in repeated hour: only the EDT occurrence
    ("30 1 * * *", "2024-11-02T12:00:00-04:00", "America/New_York",
     ("2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00", "2024-11-05T01:30:00-05:00")),
    # hourly wildcard fires at 01:00 EDT and 01:00 EST
    ("0 * * * *", "2024-11-03T00:30:00-04:00", "America/New_York",
     ("2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00")),
    # midnight across fall-back
    ("0 0 * * *", "2024-11-02T12:00:00-04:00", "America/New_York",
     ("2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", "2024-11-05T00:00:00-05:00")),
    # 30-minute gap on 2024-10-06: fixed job shifted to 02:30
    ("15 2 * * *", "2024-10-05T12:00:00+10:30", "Australia/Lord_Howe",
     ("2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00", "2024-10-08T02:15:00+11:00")),
]


# ---- cron expressions: brute-force reference ----
#
# A reference schedule is plain sets plus the "extras" of spec §5, tagged tuples:
# DOM ("L",), ("LW",), ("W", n); DOW ("L", weekday), ("#", weekday, k), weekdays 0 = Sunday.

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun",
                "jul", "aug", "sep", "oct", "nov", "dec")          # months 1..12
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")     # weekdays 0..6
_DOMAINS = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_YEARS = 50  # the engine's search horizon (spec §6.3); naive fires come within ~41 years


@dataclass(eq=True)
class _Ref:
    """What an expression means, as sets: the reference's whole view of a schedule."""

    minutes: frozenset
    hours: frozenset
    doms: frozenset
    months: frozenset
    dows: frozenset           # 0 = Sunday; 7 already folded into 0
    dom_extras: frozenset
    dow_extras: frozenset
    day_and: bool             # DOM or DOW text starts with '*' or is '?' (spec D7)
    wildcard: bool            # minute or hour text starts with '*' (spec §7.2)
    _days: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def times(self) -> list[tuple[int, int]]:
        return sorted((h, m) for h in self.hours for m in self.minutes)


def _nearest_weekday(n: int, length: int, first_weekday: int) -> Optional[int]:
    """Spec §5 W(n): the Monday-Friday date nearest day n, never leaving the month."""
    if n > length:
        return None
    weekday = (first_weekday + n - 1) % 7           # Monday = 0
    if weekday < 5:
        return n
    if weekday == 5:                                # Saturday
        return 3 if n == 1 else n - 1
    return length - 2 if n == length else n + 1     # Sunday


def _day_matches(ref: _Ref, length: int, first_weekday: int, day: int) -> bool:
    """Appendix A, on (month length, weekday of the 1st with Monday = 0, day of month)."""
    weekday = (first_weekday + day) % 7             # of `day`, 0 = Sunday
    dom = day in ref.doms
    for extra in ref.dom_extras:
        if extra[0] == "L":
            dom = dom or day == length
        elif extra[0] == "LW":                      # the last weekday is W(last day)
            dom = dom or day == _nearest_weekday(length, length, first_weekday)
        else:
            dom = dom or day == _nearest_weekday(extra[1], length, first_weekday)
    dow = weekday in ref.dows
    for extra in ref.dow_extras:
        if extra[0] == "L":
            dow = dow or (weekday == extra[1] and day + 7 > length)
        else:
            dow = dow or (weekday == extra[1] and (day + 6) // 7 == extra[2])
    return (dom and dow) if ref.day_and else (dom or dow)


def _month_days(ref: _Ref, month: int, length: int, first_weekday: int) -> tuple[int, ...]:
    key = (month, length, first_weekday)
    if key not in ref._days:
        ref._days[key] = tuple(d for d in range(1, length + 1)
                               if _day_matches(ref, length, first_weekday, d))
    return ref._days[key]


def _ref_never_fires(ref: _Ref) -> bool:
    """Spec §6.2: every (month, length, weekday of the 1st) occurs, so checking them is exact."""
    for month in ref.months:
        for length in ((28, 29) if month == 2 else (calendar.monthrange(2023, month)[1],)):
            for first_weekday in range(7):
                if _month_days(ref, month, length, first_weekday):
                    return False
    return True


def _ref_day_ok(ref: _Ref, day: date) -> bool:
    first_weekday, length = calendar.monthrange(day.year, day.month)
    return day.month in ref.months and day.day in _month_days(ref, day.month, length,
                                                              first_weekday)


def _ref_days_from(ref: _Ref, start: date) -> Iterator[date]:
    """The matching dates from `start` on, for `_YEARS` years, jumping month by month."""
    year, month = start.year, start.month
    for _ in range(12 * _YEARS + 1):
        if month in ref.months:
            first_weekday, length = calendar.monthrange(year, month)
            for d in _month_days(ref, month, length, first_weekday):
                if date(year, month, d) >= start:
                    yield date(year, month, d)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _ref_next_naive(ref: _Ref, after: datetime) -> Optional[datetime]:
    """The first fire strictly after a naive `after` on an abstract wall clock (spec D11)."""
    first = after.replace(second=0, microsecond=0) + _MINUTE
    times = ref.times
    for day in _ref_days_from(ref, first.date()):
        i = bisect.bisect_left(times, (first.hour, first.minute)) if day == first.date() else 0
        if i < len(times):
            return datetime.combine(day, time(*times[i]))
    return None


def _ref_matches_naive(ref: _Ref, moment: datetime) -> bool:
    return (moment.second == 0 and moment.microsecond == 0 and moment.minute in ref.minutes
            and moment.hour in ref.hours and _ref_day_ok(ref, moment.date()))


def _wall_exists(wall: datetime, zone: ZoneInfo) -> bool:
    """True unless the naive wall time falls into a gap (it would not survive a round trip)."""
    back = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == wall


def _first_instant_at_or_after(wall: datetime, zone: ZoneInfo) -> datetime:
    """Spec §7.4 mapping: a gap moves forward to its end; a repeated time takes its first pass."""
    while not _wall_exists(wall, zone):
        wall += _MINUTE
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _ref_next_fixed(ref: _Ref, after_utc: datetime, zone: ZoneInfo) -> Optional[datetime]:
    candidate = after_utc.astimezone(zone).replace(tzinfo=None)
    while True:
        candidate = _ref_next_naive(ref, candidate)
        if candidate is None:
            return None
        instant = _first_instant_at_or_after(candidate, zone)
        if instant > after_utc:
            return instant.astimezone(zone)


def _ref_next_wildcard(ref: _Ref, after_utc: datetime, zone: ZoneInfo) -> Optional[datetime]:
    """Walk real minutes; skip whole non-matching local days and non-matching local hours."""
    instant = after_utc.replace(second=0, microsecond=0) + _MINUTE
    limit = instant + timedelta(days=366 * _YEARS)
    while instant < limit:
        local = instant.astimezone(zone)
        if not _ref_day_ok(ref, local.date()):
            day = next(_ref_days_from(ref, local.date() + timedelta(days=1)), None)
            if day is None:
                return None
            midnight = _first_instant_at_or_after(datetime.combine(day, time()), zone)
            instant = max(instant + _MINUTE, midnight)
        elif local.hour not in ref.hours:
            jump = instant + (60 - local.minute) * _MINUTE
            # jump to the next local hour, unless the offset changes on the way
            same = jump.astimezone(zone).utcoffset() == local.utcoffset()
            instant = jump if same else instant + _MINUTE
        elif local.minute in ref.minutes:
            return local
        else:
            instant += _MINUTE
    return None


def _ref_next_aware(ref: _Ref, after: datetime, zone: ZoneInfo) -> Optional[datetime]:
    """The first fire strictly after an aware `after`, in `zone`, with Debian's DST rules."""
    after_utc = after.astimezone(UTC)
    if ref.wildcard:
        return _ref_next_wildcard(ref, after_utc, zone)
    return _ref_next_fixed(ref, after_utc, zone)


# A small parser for the reference, so that it can evaluate the shared vectors. It trusts its
# input: the hypothesis strategies below build the same _Ref independently from the same
# pieces, and a test checks that the two agree.

_ITEM = re.compile(r"^(\*|[a-z0-9]+|[a-z0-9]+-[a-z0-9]+)(?:/([0-9]+))?$")


def _ref_value(text: str, name: str) -> int:
    if text.isdigit():
        return int(text)
    return _MONTH_NAMES.index(text) + 1 if name == "month" else _DOW_NAMES.index(text)


def _ref_plain_item(text: str, name: str) -> set[int]:
    lo, hi = _DOMAINS[name]
    match = _ITEM.match(text)
    assert match, text
    body, step = match.group(1), int(match.group(2) or 1)
    if body == "*":
        first, last = lo, hi
    elif "-" in body:
        first, last = (_ref_value(part, name) for part in body.split("-"))
    else:
        first = _ref_value(body, name)
        last = hi if match.group(2) else first
    assert first <= last, text
    return set(range(first, last + 1, step))


def _ref_field(text: str, name: str) -> tuple[set[int], set[tuple]]:
    values: set[int] = set()
    extras: set[tuple] = set()
    for item in text.lower().split(","):
        if item == "?":
            values |= set(range(_DOMAINS[name][0], _DOMAINS[name][1] + 1))
        elif name == "dom" and item in ("l", "lw"):
            extras.add((item.upper(),))
        elif name == "dom" and item.endswith("w"):
            extras.add(("W", int(item[:-1])))
        elif name == "dow" and item.endswith("l"):
            extras.add(("L", _ref_value(item[:-1], name) % 7))
        elif name == "dow" and "#" in item:
            weekday, k = item.split("#")
            extras.add(("#", _ref_value(weekday, name) % 7, int(k)))
        else:
            values |= _ref_plain_item(item, name)
    return values, extras


def _ref_parse(text: str) -> _Ref:
    text = text.strip(" \t")
    text = _MACROS.get(text.lower(), text)
    minute, hour, dom, month, dow = re.split(r"[ \t]+", text)
    doms, dom_extras = _ref_field(dom, "dom")
    dows, dow_extras = _ref_field(dow, "dow")
    return _Ref(
        minutes=frozenset(_ref_field(minute, "minute")[0]),
        hours=frozenset(_ref_field(hour, "hour")[0]),
        doms=frozenset(doms), months=frozenset(_ref_field(month, "month")[0]),
        dows=frozenset(v % 7 for v in dows),
        dom_extras=frozenset(dom_extras), dow_extras=frozenset(dow_extras),
        day_and=dom[0] in "*?" or dow[0] in "*?",
        wildcard=minute[0] == "*" or hour[0] == "*",
    )


# ---- cron expressions: hypothesis strategies ----
#
# Each strategy draws a structured expression and returns (text, reference), built side by
# side from the same random pieces: the reference never reads the text.


@st.composite
def _random_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(word, flips))


@st.composite
def _value_text(draw, value: int, name: str, zeros: bool = True) -> str:
    roll = draw(st.integers(0, 9))
    if name == "month" and roll < 4:
        return draw(_random_case(_MONTH_NAMES[value - 1]))
    if name == "dow" and value <= 6 and roll < 4:
        return draw(_random_case(_DOW_NAMES[value]))
    if zeros and roll == 9:
        return "0" + str(value)                     # leading zeros are fine (spec §1.2)
    return str(value)


@st.composite
def _plain_item(draw, name: str, values, steps) -> tuple[str, set[int]]:
    """`*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n`, never a reversed range."""
    lo, hi = _DOMAINS[name]
    kind = draw(st.sampled_from(("*", "*/n", "a", "a", "a-b", "a-b/n", "a/n")))
    step = draw(steps)
    if kind == "*":
        return "*", set(range(lo, hi + 1))
    if kind == "*/n":
        return f"*/{step}", set(range(lo, hi + 1, step))
    first = draw(values)
    first_text = draw(_value_text(first, name))
    if kind == "a":
        return first_text, {first}
    if kind == "a/n":
        return f"{first_text}/{step}", set(range(first, hi + 1, step))
    last = draw(st.integers(first, hi))
    text = f"{first_text}-{draw(_value_text(last, name))}"
    if kind == "a-b":
        return text, set(range(first, last + 1))
    return f"{text}/{step}", set(range(first, last + 1, step))


@st.composite
def _extra_item(draw, name: str) -> tuple[str, tuple]:
    """DOM `L`, `LW`, `nW`; DOW `nL`, `n#k` (spec §5)."""
    if name == "dom":
        kind = draw(st.sampled_from(("L", "LW", "W")))
        if kind == "W":
            n = draw(st.integers(1, 31))
            return f"{n}{draw(_random_case('w'))}", ("W", n)
        return draw(_random_case(kind)), (kind,)
    weekday = draw(st.integers(0, 7))
    weekday_text = draw(_value_text(weekday, "dow", zeros=False))
    if draw(st.booleans()):
        return f"{weekday_text}{draw(_random_case('l'))}", ("L", weekday % 7)
    k = draw(st.integers(1, 5))
    return f"{weekday_text}#{k}", ("#", weekday % 7, k)


@st.composite
def _field(draw, name: str, values, steps, star: int = 0) -> tuple[str, set[int], set[tuple]]:
    """One field: '*' with probability star/10, '?' sometimes for days, else 1-3 items."""
    lo, hi = _DOMAINS[name]
    roll = draw(st.integers(0, 9))
    if roll < star:
        return "*", set(range(lo, hi + 1)), set()
    if name in ("dom", "dow") and roll == 9:
        return "?", set(range(lo, hi + 1)), set()
    texts, values_out, extras = [], set(), set()
    for _ in range(draw(st.integers(1, 3))):
        if name in ("dom", "dow") and draw(st.integers(0, 3)) == 0:
            text, extra = draw(_extra_item(name))
            extras.add(extra)
        else:
            text, item_values = draw(_plain_item(name, values, steps))
            values_out |= item_values
        texts.append(text)
    return ",".join(texts), values_out, extras


@st.composite
def _cron_exprs(draw, minutes=st.integers(0, 59), hours=st.integers(0, 23),
                doms=st.integers(1, 31), months=st.integers(1, 12), dows=st.integers(0, 7),
                minute_steps=st.integers(1, 62), hour_steps=st.integers(1, 26),
                star_days: int = 2, macros: bool = True) -> tuple[str, _Ref]:
    """A random valid expression (text, reference), or a macro now and then."""
    if macros and draw(st.integers(0, 14)) == 0:
        macro = draw(st.sampled_from(sorted(_MACROS)))
        return draw(_random_case(macro)), _ref_parse(_MACROS[macro])
    minute, minute_values, _ = draw(_field("minute", minutes, minute_steps))
    hour, hour_values, _ = draw(_field("hour", hours, hour_steps))
    dom, dom_values, dom_extras = draw(_field("dom", doms, st.integers(1, 33), star_days))
    month, month_values, _ = draw(_field("month", months, st.integers(1, 14), star_days))
    dow, dow_values, dow_extras = draw(_field("dow", dows, st.integers(1, 9), star_days))
    blanks = st.sampled_from((" ", " ", " ", "  ", "\t", " \t "))
    text = draw(st.sampled_from(("", "", " ", "\t")))
    for part in (minute, hour, dom, month):
        text += part + draw(blanks)
    text += dow + draw(st.sampled_from(("", "", " ", "\t")))
    ref = _Ref(
        minutes=frozenset(minute_values), hours=frozenset(hour_values),
        doms=frozenset(dom_values), months=frozenset(month_values),
        dows=frozenset(v % 7 for v in dow_values),
        dom_extras=frozenset(dom_extras), dow_extras=frozenset(dow_extras),
        day_and=dom[0] in "*?" or dow[0] in "*?",
        wildcard=minute[0] == "*" or hour[0] == "*",
    )
    return text, ref


# Expressions that often cannot fire: late days, short months, 5th weekdays (spec §6).
_RARE_DAY_EXPRS = _cron_exprs(
    doms=st.integers(28, 31) | st.integers(1, 31),
    months=st.sampled_from((2, 2, 4, 6, 9, 11)) | st.integers(1, 12),
    star_days=0, macros=False,
)

# Expressions likely to fire near a DST transition: small hours, quarter-hour minutes, and
# the wildcard forms `*`, `*/15`, `*/30`.
_DST_EXPRS = _cron_exprs(
    minutes=st.sampled_from((0, 15, 30, 45)) | st.integers(0, 59),
    hours=st.integers(0, 4) | st.integers(0, 23),
    minute_steps=st.sampled_from((15, 30)) | st.integers(1, 60),
    hour_steps=st.sampled_from((1, 2, 3)) | st.integers(1, 24),
    star_days=7,
)

_NAIVE_STARTS = st.builds(
    lambda moment, on_minute: moment.replace(second=0, microsecond=0) if on_minute else moment,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31, 23, 59)),
    st.booleans(),
)


def _transitions(zone_name: str, year: int) -> list[datetime]:
    """The instants (UTC) at which the zone's offset changes during the year, to the minute."""
    zone = ZoneInfo(zone_name)
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        before = day.astimezone(zone).utcoffset()
        if (day + timedelta(days=1)).astimezone(zone).utcoffset() != before:
            lo, hi = 0, 24 * 60                       # minutes into the day
            while hi - lo > 1:
                mid = (lo + hi) // 2
                same = (day + mid * _MINUTE).astimezone(zone).utcoffset() == before
                lo, hi = (mid, hi) if same else (lo, mid)
            found.append(day + hi * _MINUTE)
        day += timedelta(days=1)
    return found


_DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
_TRANSITIONS = [(zone, moment) for zone in _DST_ZONES for year in (2024, 2025)
                for moment in _transitions(zone, year)]


@st.composite
def _dst_starts(draw) -> tuple[str, datetime, datetime]:
    """A zone, an aware start within 30 hours of one of its 2024/2025 transitions, and the
    transition (UTC)."""
    zone, transition = draw(st.sampled_from(_TRANSITIONS))
    minutes = draw(st.integers(-30 * 60, 30 * 60))
    seconds = draw(st.sampled_from((0, 0, 0, 1, 30, 59)))
    start = transition + timedelta(minutes=minutes, seconds=seconds)
    return zone, start.astimezone(ZoneInfo(zone)), transition


# ---- cron expressions: helpers for the tests ----


def _instant(moment: datetime) -> tuple:
    """What an aware result must get right: the instant, the offset and the wall clock.

    Python compares datetimes of one tzinfo by wall clock alone, ignoring fold, so `==` cannot
    tell the two passes of a repeated hour apart; this tuple can.
    """
    return moment.astimezone(UTC), moment.utcoffset(), moment.replace(tzinfo=None)


def _minutes_between(after: datetime, until: datetime, edge: int = 720, middle: int = 300,
                     around: Optional[datetime] = None) -> list[datetime]:
    """Minute boundaries strictly between `after` and `until` (naive, or aware in UTC).

    All of them when there are at most 2 * edge; otherwise the `edge` minutes after `after`,
    the `edge` before `until`, about `middle` spread evenly between, and the 90 minutes around
    `around` (a DST transition), so that a long gap costs a bounded number of checks.
    """
    first = after.replace(second=0, microsecond=0) + _MINUTE
    count = (until - first) // _MINUTE
    if count <= 2 * edge:
        return [first + k * _MINUTE for k in range(count)]
    stride = max(1, (count - 2 * edge) // middle)
    offsets = {*range(edge), *range(count - edge, count), *range(edge, count - edge, stride)}
    if around is not None:
        centre = (around - first) // _MINUTE
        offsets |= {k for k in range(centre - 45, centre + 45) if 0 <= k < count}
    return [first + k * _MINUTE for k in sorted(offsets)]


def _expression_or_none(text: str) -> Optional[autocron.CronExpression]:
    """Parse text; a CronError gives None and any other exception fails the test."""
    try:
        return autocron.CronExpression(text)
    except autocron.CronError:
        return None


class TestCronReference:
    """The brute-force reference itself: everything else leans on it."""

    @pytest.mark.parametrize("expr, start, tz, expected", _VECTORS,
                             ids=[f"{v[0]} from {v[1]}" for v in _VECTORS])
    def test_reference_reproduces_the_vectors(self, expr, start, tz, expected):
        ref = _ref_parse(expr)
        got, moment = [], datetime.fromisoformat(start)
        for _ in range(3):
            if tz is None:
                moment = _ref_next_naive(ref, moment)
            else:
                moment = _ref_next_aware(ref, moment, ZoneInfo(tz))
            got.append(moment.isoformat())
        assert got == list(expected)

    @pytest.mark.parametrize("expr, never", [
        ("0 0 30 2 *", True), ("0 0 31 4,6,9,11 *", True), ("0 0 30 2 */2", True),
        ("0 0 */100 * MON#4", True), ("0 0 */40 * 5#5", True),
        ("0 0 30 2 MON", False), ("0 0 29 2 *", False), ("0 0 * 2 MON#5", False),
        ("0 0 29 2 */7", False), ("0 0 31W 2 *", True), ("0 0 LW 2 0L", False),
    ])
    def test_reference_decides_the_spec_examples_of_never_firing(self, expr, never):
        assert _ref_never_fires(_ref_parse(expr)) is never

    @pytest.mark.parametrize("expr, expected", [
        ("0 0 * 2 MON#5", "2044-02-29T00:00:00"),       # spec §5
        ("0 0 29 2 */7", "2032-02-29T00:00:00"),        # spec §6
        ("0 0 1W * *", "2024-06-03T00:00:00"),          # June 1 2024 is a Saturday -> Mon 3
        ("0 0 LW 6 *", "2024-06-28T00:00:00"),          # June 30 2024 is a Sunday -> Fri 28
    ])
    def test_reference_finds_rare_dates_from_the_spec(self, expr, expected):
        assert _ref_next_naive(_ref_parse(expr), datetime(2024, 5, 1)).isoformat() == expected

    def test_reference_finds_nothing_for_a_wildcard_job_that_only_matches_in_a_gap(self):
        ref = _ref_parse("* 2 * 3 0L")                  # spec §6.3, Europe/Berlin
        start = datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
        assert _ref_next_aware(ref, start, ZoneInfo("Europe/Berlin")) is None

    def test_each_zone_has_a_spring_and_an_autumn_transition_per_year(self):
        assert len(_TRANSITIONS) == 2 * 2 * len(_DST_ZONES)

    @settings(max_examples=200, deadline=None)
    @given(_cron_exprs())
    def test_reference_parser_agrees_with_the_generator(self, case):
        text, ref = case
        assert _ref_parse(text) == ref


class TestCronVectors:
    """The shared, hand-checked vectors."""

    @pytest.mark.parametrize("expr, start, tz, expected", _VECTORS,
                             ids=[f"{v[0]} from {v[1]}" for v in _VECTORS])
    def test_next_three_fire_times_match_the_vector(self, expr, start, tz, expected):
        after = datetime.fromisoformat(start)
        if tz is not None:
            after = after.astimezone(ZoneInfo(tz))      # the zone, not just a fixed offset
        cron = autocron.CronExpression(expr, tz=tz)
        got = list(islice(cron.iter(after), 3))
        assert [moment.isoformat() for moment in got] == list(expected)
        assert [_instant(moment) for moment in got] == [
            _instant(datetime.fromisoformat(text)) for text in expected]
        assert all(cron.matches(moment) for moment in got)


class TestCronProperties:
    """Naive wall-clock schedules against the reference."""

    @settings(max_examples=200, deadline=None)
    @given(_RARE_DAY_EXPRS)
    @example((" 0 0 30 2 *", _ref_parse("0 0 30 2 *")))
    @example(("0 0 */100 * MON#4", _ref_parse("0 0 */100 * MON#4")))
    @example(("0 0 30 2 mon", _ref_parse("0 0 30 2 mon")))
    @example(("0 0 * 2 MON#5", _ref_parse("0 0 * 2 MON#5")))
    def test_construction_fails_exactly_when_the_expression_can_never_fire(self, case):
        text, ref = case
        if _ref_never_fires(ref):
            with pytest.raises(autocron.CronError):
                autocron.CronExpression(text)
        else:
            autocron.CronExpression(text)

    @settings(max_examples=250, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_cron_exprs(), _NAIVE_STARTS)
    def test_next_is_the_first_matching_minute_after_the_start(self, case, start):
        text, ref = case
        if _ref_never_fires(ref):
            with pytest.raises(autocron.CronError):
                autocron.CronExpression(text)
            return
        cron = autocron.CronExpression(text)
        expected = _ref_next_naive(ref, start)
        got = cron.next(start)
        assert got == expected and got.tzinfo is None
        assert got > start
        assert cron.matches(got)
        assert not any(cron.matches(moment) for moment in _minutes_between(start, got))

    @settings(max_examples=150, deadline=None)
    @given(_cron_exprs(), st.lists(_NAIVE_STARTS, min_size=1, max_size=20))
    def test_matches_agrees_with_the_reference(self, case, moments):
        text, ref = case
        cron = _expression_or_none(text)
        if cron is None:
            assert _ref_never_fires(ref)
            return
        for moment in moments:
            assert cron.matches(moment) == _ref_matches_naive(ref, moment), moment
            on_minute = moment.replace(second=0, microsecond=0)
            assert cron.matches(on_minute) == _ref_matches_naive(ref, on_minute), on_minute

    @settings(max_examples=150, deadline=None)
    @given(_cron_exprs(), _NAIVE_STARTS)
    def test_normalised_text_round_trips_with_the_same_hash_and_schedule(self, case, start):
        text, ref = case
        cron = _expression_or_none(text)
        if cron is None:
            assert _ref_never_fires(ref)
            return
        again = autocron.CronExpression(str(cron))
        assert len(str(cron).split()) == 5
        assert again == cron and hash(again) == hash(cron) and str(again) == str(cron)
        assert again.next(start) == _ref_next_naive(ref, start)

    @settings(max_examples=150, deadline=None)
    @given(_cron_exprs(), _NAIVE_STARTS)
    def test_iteration_is_strictly_increasing_and_equals_chained_next(self, case, start):
        text, ref = case
        cron = _expression_or_none(text)
        if cron is None:
            assert _ref_never_fires(ref)
            return
        got = list(islice(cron.iter(start), 5))
        chained, expected, moment, ref_moment = [], [], start, start
        for _ in range(5):
            moment = cron.next(moment)
            ref_moment = _ref_next_naive(ref, ref_moment)
            chained.append(moment)
            expected.append(ref_moment)
        assert got == chained == expected
        assert all(a < b for a, b in zip([start] + got, got))

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(("minute", "hour", "dom", "month", "dow")), st.data())
    def test_reversed_ranges_are_rejected(self, name, data):
        lo, hi = _DOMAINS[name]
        first = data.draw(st.integers(lo, hi - 1))
        last = data.draw(st.integers(first + 1, hi))
        item = f"{data.draw(_value_text(last, name))}-{data.draw(_value_text(first, name))}"
        if data.draw(st.booleans()):
            item += f"/{data.draw(st.integers(1, 5))}"
        fields = ["0", "0", "*", "*", "*"]
        fields[list(_DOMAINS).index(name)] = data.draw(st.sampled_from((item, f"1,{item}")))
        with pytest.raises(autocron.CronError):
            autocron.CronExpression(" ".join(fields))

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(("minute", "hour", "dom", "month", "dow")), st.data())
    def test_out_of_range_values_are_rejected(self, name, data):
        lo, hi = _DOMAINS[name]
        bad = data.draw(st.integers(hi + 1, hi + 100) | st.integers(0, lo - 1)
                        if lo else st.integers(hi + 1, hi + 100))
        item = data.draw(st.sampled_from((f"{bad}", f"{lo}-{bad}", f"{bad}/2", f"{lo},{bad}")))
        fields = ["0", "0", "*", "*", "*"]
        fields[list(_DOMAINS).index(name)] = item
        with pytest.raises(autocron.CronError):
            autocron.CronExpression(" ".join(fields))

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    @example("5" * 5000 + " * * * *")
    @example("* * * * " + "1" * 5000)
    @example("0 0 " + "2" * 5000 + "W * *")
    @example("0 0 * * 5#" + "9" * 5000)
    @example("*/" + "7" * 5000 + " * * * *")
    @example("4294967301 * * * *")
    @example("")
    @example("@reboot")
    @example("0 0 30 2 *")
    @example("٣ * * * *")
    @example("５ * * * *")
    @example("¹ * * * *")
    @example("0\u00a00 * * *")
    @example("* * * * ſun")
    @example("* * * * frı")
    def test_any_text_gives_an_expression_or_a_cron_error(self, text):
        cron = _expression_or_none(text)
        if cron is not None:
            moment = cron.next(NOW)
            assert moment > NOW and cron.matches(moment)
            assert autocron.CronExpression(str(cron)) == cron

    @settings(max_examples=300, deadline=None)
    @given(st.text("0123456789*/,-? LW#@abcdefghijklmnopqrstuvwxyzJANFEBMONSUN\t\u00a0５¹",
                   max_size=40))
    @example("@HOURLY")
    @example("1-5/0 * * * *")
    @example("0 0 L-2 * *")
    @example("0 0 * * L")
    @example("0 0 ?/2 * *")
    def test_cron_like_text_gives_an_expression_or_a_cron_error(self, text):
        cron = _expression_or_none(text)
        if cron is not None:
            moment = cron.next(NOW)
            assert moment > NOW and cron.matches(moment)
            assert autocron.CronExpression(str(cron)) == cron


class TestCronTimeZones:
    """Aware schedules near DST transitions against the reference (Debian rules, spec §7.4)."""

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(_DST_EXPRS, _dst_starts())
    def test_next_near_a_transition_agrees_with_the_reference(self, case, zone_start):
        (text, ref), (zone, start, transition) = case, zone_start
        if _ref_never_fires(ref):
            return                                      # covered by TestCronProperties
        cron = autocron.CronExpression(text, tz=zone)
        expected = _ref_next_aware(ref, start, ZoneInfo(zone))
        if expected is None:                            # every match lies in a gap
            with pytest.raises(autocron.CronError):
                cron.next(start)
            return
        got = cron.next(start)
        assert _instant(got) == _instant(expected), (got.isoformat(), expected.isoformat())
        assert getattr(got.tzinfo, "key", zone) == zone
        assert got.astimezone(UTC) > start.astimezone(UTC)
        assert cron.matches(got)
        # aware matches() costs more than naive: check fewer minutes, but all near the shift
        between = _minutes_between(start.astimezone(UTC), got.astimezone(UTC), edge=60,
                                   middle=30, around=transition)
        assert not any(cron.matches(moment.astimezone(ZoneInfo(zone))) for moment in between)
        assert _instant(autocron.CronExpression(text).next(start)) == _instant(got)
        assert _instant(autocron.CronExpression(str(cron), tz=zone).next(start)) == _instant(got)

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_DST_EXPRS, _dst_starts())
    def test_iteration_near_a_transition_is_strictly_increasing(self, case, zone_start):
        (text, ref), (zone, start, _) = case, zone_start
        if _ref_never_fires(ref):
            return
        expected, moment = [], start
        for _ in range(5):
            moment = _ref_next_aware(ref, moment, ZoneInfo(zone))
            if moment is None:
                break
            expected.append(moment)
        cron = autocron.CronExpression(text, tz=zone)
        got = list(islice(cron.iter(start), len(expected)))
        chained, moment = [], start
        for _ in expected:
            moment = cron.next(moment)
            chained.append(moment)
        assert [_instant(m) for m in got] == [_instant(m) for m in chained]
        assert [_instant(m) for m in got] == [_instant(m) for m in expected]
        instants = [start.astimezone(UTC)] + [m.astimezone(UTC) for m in got]
        assert all(a < b for a, b in zip(instants, instants[1:]))
