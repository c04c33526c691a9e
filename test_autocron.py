"""Tests for autocron, in the order of the module's sections.

The cron-expression tests check the engine three ways:

* the shared hand-checked vectors (``../shared/cron_vectors.jsonl``, embedded below so the
  tests never read outside the repository);
* hypothesis properties against a brute-force reference evaluator written here from
  ``cron-spec.md`` alone (Appendix A for days, §6.2 for never-firing expressions, §7.4 for
  daylight saving), never from autocron's internals;
* random text, which must give a ``CronExpression`` or a ``CronError`` and nothing else.

The runtime tests use the real parts: worker processes, a SQLite file in a temporary folder,
`kill -9` for crashes, and the clock seam `autocron._clock` for cron timing.

The reference is deliberately slow and simple: it walks the calendar day by day and the
clock minute by minute, so that it is easy to believe. Its own tests come first, since every
property below is only as good as it is.
"""

from __future__ import annotations

import ast
import asyncio
import bisect
import calendar
import collections
import contextlib
import copy
import functools
import io
import inspect
import itertools
import json
import logging
import os
import pickle
import queue as queue_module
import random
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, time as clock_time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import autocron
from autocron import CronError, CronExpression
from conftest import (ChaosRunner, Fault, run_async, AUTOCRON, DashboardServer, HERE, Storm,
                      WSGIServer, _schemas, alive, belongs, browser_wait, browsing, chaos_seed,
                      children_of, close_postgres_connections, cmdline, free_tcp_port, http_get,
                      libfaketime, pg_binaries, post_form, processes_of, query, signed_in,
                      started_postgres, wait_until)

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
            return datetime.combine(day, clock_time(*times[i]))
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
            midnight = _first_instant_at_or_after(datetime.combine(day, clock_time()), zone)
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
# side from the same random pieces: the reference never reads the text (a macro's reference
# comes from its fixed expansion).


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


def _check_expression_or_error(text: str) -> None:
    """Any text parses to an expression that fires and round-trips, or is a CronError."""
    cron = _expression_or_none(text)
    if cron is not None:
        moment = cron.next(NOW)
        assert moment > NOW and cron.matches(moment)
        assert autocron.CronExpression(str(cron)) == cron


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
        _check_expression_or_error(text)

    @settings(max_examples=300, deadline=None)
    @given(st.text("0123456789*/,-? LW#@abcdefghijklmnopqrstuvwxyzJANFEBMONSUN\t\u00a0５¹",
                   max_size=40))
    @example("@HOURLY")
    @example("1-5/0 * * * *")
    @example("0 0 L-2 * *")
    @example("0 0 * * L")
    @example("0 0 ?/2 * *")
    def test_cron_like_text_gives_an_expression_or_a_cron_error(self, text):
        _check_expression_or_error(text)


class TestCronTimeZones:
    """Aware schedules near DST transitions against the reference (Debian rules, spec §7.4)."""

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
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


class TestCronSyntax:
    """Known cases over the whole syntax, the keyword form and the normalised text."""

    @pytest.mark.parametrize("text, after, expected", [
        ("0 0 * * 1/2", "2024-01-06T00:00", ["2024-01-07T00:00", "2024-01-08T00:00"]),
        ("0 0 * * sun,7", "2024-01-01T00:00", ["2024-01-07T00:00", "2024-01-14T00:00"]),
        ("0 0 * * 5-7", "2024-01-01T00:00", ["2024-01-05T00:00", "2024-01-06T00:00",
                                             "2024-01-07T00:00", "2024-01-12T00:00"]),
        ("0 0 * jan-mar/2 *", "2024-01-31T00:00", ["2024-03-01T00:00"]),
        ("0 0 ? * MON", "2024-01-01T00:00", ["2024-01-08T00:00"]),
        ("0 0 1-7 * */7", "2024-01-01T00:00", ["2024-01-07T00:00", "2024-02-04T00:00"]),
        ("0 0 1-31 * MON", "2024-01-01T00:00", ["2024-01-02T00:00"]),
        ("0 0 LW * *", "2024-03-01T00:00", ["2024-03-29T00:00", "2024-04-30T00:00"]),
        ("0 0 1W * *", "2024-06-01T00:00", ["2024-06-03T00:00"]),   # June 1 2024: a Saturday
        ("0 0 31W * *", "2024-04-01T00:00", ["2024-05-31T00:00"]),  # never leaves April
        ("0 0 * * FRIL", "2024-01-01T00:00", ["2024-01-26T00:00"]),
        ("0 0 * * 0L", "2024-01-01T00:00", ["2024-01-28T00:00"]),
        ("0 0 * 2 MON#5", "2024-01-01T00:00", ["2044-02-29T00:00"]),
        ("0 0 29 2 */7", "2024-01-01T00:00", ["2032-02-29T00:00"]),
        ("010 00 * * *", "2024-01-01T00:00", ["2024-01-01T00:10"]),
        ("*/100 * * * *", "2024-01-01T00:00", ["2024-01-01T01:00"]),
        ("@HOURLY", "2024-01-01T00:30:59", ["2024-01-01T01:00"]),
        ("@weekly", "2024-01-01T00:00", ["2024-01-07T00:00"]),
        ("  0\t0  1 1 *\n", "2024-01-01T00:00", ["2025-01-01T00:00"]),
        ("* * * * *", "2024-01-01T00:00:30", ["2024-01-01T00:01"]),
        ("59 23 31 12 *", "9998-12-31T23:59", ["9999-12-31T23:59"]),
    ])
    def test_known_fire_times(self, text, after, expected):
        times = list(islice(CronExpression(text).iter(datetime.fromisoformat(after)),
                            len(expected)))
        assert times == [datetime.fromisoformat(e) for e in expected]

    def test_no_fire_time_before_the_end_of_the_calendar_is_an_error(self):
        c = CronExpression("0 0 1 1 *")
        assert list(c.iter(datetime(9999, 6, 1))) == []
        with pytest.raises(CronError, match="has no fire time"):
            c.next(datetime(9999, 6, 1))

    @pytest.mark.parametrize("text, normalised", [
        ("0 9 * * mon-fri", "0 9 * * 1-5"),
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0-59/15 * * * *", "0-45/15 * * * *"),
        ("0 0 ? * 7", "0 0 * * 0"),
        ("0 0 */1 * MON", "0 0 * * 1"),
        ("0 0 */2,16 * *", "0 0 */2,16 * *"),
        ("0 0 l,1,lw,15w * 5l,1#1", "0 0 1,L,LW,15W * 5L,1#1"),
        ("0 0-23/2 * * *", "0 0-22/2 * * *"),
        ("0 */2 * * *", "0 */2 * * *"),
        ("1,2,3,5 * * * *", "1-3,5 * * * *"),
        ("0 0 * * fri-7", "0 0 * * 0,5,6"),
    ])
    def test_normalised_text(self, text, normalised):
        c = CronExpression(text)
        assert str(c) == normalised
        assert CronExpression(normalised) == c and hash(CronExpression(normalised)) == hash(c)

    def test_repr_shows_text_and_zone(self):
        assert repr(CronExpression("0 9 * * 1")) == "CronExpression('0 9 * * 1')"
        assert repr(CronExpression("0 9 * * 1", tz="Europe/Berlin")) == \
            "CronExpression('0 9 * * 1', tz='Europe/Berlin')"

    def test_zone_is_part_of_equality(self):
        assert CronExpression("0 9 * * *", tz="Europe/Berlin") != CronExpression("0 9 * * *")
        assert CronExpression("0 9 * * *") != "0 9 * * *"

    @pytest.mark.parametrize("fields, text", [
        (dict(minutes=[30], hours=[9], dow=[0, 2]), "30 9 * * 1,3"),
        (dict(minutes=0, hours=9, dow=range(0, 5)), "0 9 * * 1-5"),
        (dict(minutes=range(0, 60, 15)), "0-45/15 * * * *"),
        (dict(hours=range(24), minutes=[0]), "0 * * * *"),
        (dict(dow=["sat", "Sun"]), "* * * * 0,6"),
        (dict(days=[1, 15], months={1, 7}), "* * 1,15 1,7 *"),
        ({}, "* * * * *"),
    ])
    def test_keyword_form_becomes_the_standard_expression(self, fields, text):
        assert str(CronExpression(**fields)) == text

    @pytest.mark.parametrize("text, description", [
        ("30 9 * * 1,3", "at 09:30 on Monday and Wednesday"),
        ("0 9 * * mon-fri", "at 09:00, Monday through Friday"),
        ("@daily", "at 00:00 every day"),
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("@hourly", "every hour at minute 0"),
        ("0 */2 * * *", "every 2 hours at minute 0"),
        ("*/10 */3 * * *", "every 10 minutes in every 3rd hour"),
        ("15,45 8-17 * * 1-5",
         "at minutes 15 and 45 from 08:00 to 17:59, Monday through Friday"),
        ("0 12 13 * 5", "at 12:00 on day 13 of the month or Friday"),
        ("0 0 29 2 *", "at 00:00 on day 29 of the month in February"),
        ("0 0 L * 5L", "at 00:00 on the last day of the month or the last Friday of the month"),
        ("0 0 1-7 * */7", "at 00:00 on days 1 through 7 of the month if it is also Sunday"),
        ("0 8 LW,15W * *",
         "at 08:00 on the last weekday of the month or the weekday nearest day 15 of the month"),
        ("0 6 * * 1#2", "at 06:00 on the second Monday of the month"),
        ("0 9,17 * 1-3 *", "at 09:00 and 17:00 every day in January through March"),
    ])
    def test_describe_in_plain_english(self, text, description):
        assert CronExpression(text).describe() == description

    def test_describe_names_the_zone(self):
        assert CronExpression("0 8 * * *", tz="Europe/Berlin").describe() == \
            "at 08:00 every day (Europe/Berlin)"

    def test_matches_whole_minutes_only(self):
        c = CronExpression("30 9 * * 1")
        assert c.matches(datetime(2024, 1, 1, 9, 30))
        assert not c.matches(datetime(2024, 1, 1, 9, 30, 5))
        assert not c.matches(datetime(2024, 1, 2, 9, 30))

    def test_default_after_is_now(self):
        before = datetime.now()
        fire = CronExpression("* * * * *").next()
        assert before < fire <= datetime.now() + timedelta(minutes=1)
        aware = CronExpression("* * * * *", tz="UTC").next()
        assert aware.tzinfo is not None


class TestCronErrors:
    """Every malformed input gets a CronError that names the field and says what to do."""

    @pytest.mark.parametrize("text, message", [
        ("30 9 0,2 * *", 'day-of-month 0 is out of range 1-31; for Monday and Wednesday write '
                         '"30 9 * * 1,3" (day-of-week is the fifth field, 0 or 7 = Sunday)'),
        ("", 'empty cron expression; write five fields like "30 9 * * 1-5" or a macro like '
             '"@daily"'),
        (" \t ", 'empty cron expression; write five fields like "30 9 * * 1-5" or a macro '
                 'like "@daily"'),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 0 * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"
                        " (seconds and year fields are not supported)"),
        ("1 2 3 4 5 6 7 8", "expected 5 fields (minute hour day-of-month month day-of-week), "
                            "got 8"),
        ("1, 2 * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), "
                         "got 6; spaces are not allowed inside a field (write 1,2 not 1, 2)"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 0 1 *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * 0 *", "month 0 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("4294967301 * * * *", "minute 4294967301 is out of range 0-59"),
        ("1" * 600 + " * * * *", "minute: number '11111111111111111111...' is too long; "
         "write a number 0-59, a range like 10-20, a step like */15 or a list like 0,30"),
        ("0 0 5-1 * *", "day-of-month: range 5-1 is reversed; write it as 5-31,1"),
        ("0 22-2 * * *", "hour: range 22-2 is reversed; write it as 22-23,0-2"),
        ("0 0 * * FRI-SUN", "day-of-week: range FRI-SUN is reversed (SUN is 0); write FRI-7 "
                            "or FRI,SAT,SUN"),
        ("0 0 * * 5-0", "day-of-week: range 5-0 is reversed (SUN is 0); write 5-7 or 5,6,0"),
        ("0 0 * * 5-2", "day-of-week: range 5-2 is reversed; write it as 5-7,1-2"),
        ("*/0 * * * *", "minute: step must be at least 1 in '*/0'"),
        ("1-5/0 * * * *", "minute: step must be at least 1 in '1-5/0'"),
        ("*/MON * * * *", "minute: step in '*/MON' must be a number, got 'MON'; write it like "
                          "*/15"),
        ("*/ * * * *", "minute: step in '*/' is missing; write it like */15"),
        ("1,,2 * * * *", "minute: empty list item in '1,,2'; separate values with single "
                         "commas"),
        ("1, * * * *", "minute: empty list item in '1,'; separate values with single commas"),
        ("5x * * * *", "minute: cannot read '5X'; write a number 0-59, a range like 10-20, a "
                       "step like */15 or a list like 0,30"),
        ("5.0 * * * *", "minute: unexpected character '.' in '5.0'; write a number 0-59, a "
                        "range like 10-20, a step like */15 or a list like 0,30"),
        ("+5 * * * *", "minute: unexpected character '+' in '+5'; write a number 0-59, a range"
                       " like 10-20, a step like */15 or a list like 0,30"),
        ("1- * * * *", "minute: range '1-' is missing its end; write a number 0-59, a range "
                       "like 10-20, a step like */15 or a list like 0,30"),
        ("-5 * * * *", "minute: range '-5' is missing its start; write a number 0-59, a range "
                       "like 10-20, a step like */15 or a list like 0,30"),
        ("/5 * * * *", "minute: a value is missing before '/' in '/5'; write a number 0-59, a "
                       "range like 10-20, a step like */15 or a list like 0,30"),
        ("1-5-7 * * * *", "minute: cannot read '1-5-7'; write a number 0-59, a range like "
                          "10-20, a step like */15 or a list like 0,30"),
        ("** * * * *", "minute: cannot read '**'; write a number 0-59, a range like 10-20, a "
                       "step like */15 or a list like 0,30"),
        ("0 0 * january *", "month: unknown name 'JANUARY'; use JAN-DEC or numbers 1-12"),
        ("0 0 * * sunday", "day-of-week: unknown name 'SUNDAY'; use SUN-SAT or numbers 0-7"),
        ("0 0 * MON *", "month: 'MON' is a day name; day names belong in the day-of-week "
                        "(fifth) field"),
        ("0 0 * * JAN", "day-of-week: 'JAN' is a month name; month names belong in the month "
                        "(fourth) field"),
        ("MON * * * *", "minute: names are not allowed here ('MON'); use numbers 0-59"),
        ("? * * * *", "minute: '?' is only allowed as the entire day-of-month or day-of-week "
                      "field, got '?'"),
        ("0 0 ?,1 * *", "day-of-month: '?' is only allowed as the entire day-of-month or "
                        "day-of-week field, got '?,1'"),
        ("0 0 L-2 * *", "day-of-month: offsets from the last day ('L-2') are not supported; "
                        "use L for the last day of the month"),
        ("0 0 1-L * *", "day-of-month: 'L' and 'W' cannot be used in a range or with a step "
                        "('1-L'); write a number 1-31, a range like 1-15, a step like */2, a "
                        "list like 1,15, L (last day), LW (last weekday) or 15W (weekday "
                        "nearest the 15th)"),
        ("0 0 32W * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 $ * *", "day-of-month: unexpected character '$' in '$'; write a number 1-31, a "
                      "range like 1-15, a step like */2, a list like 1,15, L (last day), LW "
                      "(last weekday) or 15W (weekday nearest the 15th)"),
        ("0 0 * * L", "day-of-week: 'L' needs a weekday, e.g. 5L for the last Friday of the "
                      "month"),
        ("0 0 * * 5#6", "day-of-week: nth must be 1-5 in '5#6' (1#2 is the second Monday of "
                        "the month)"),
        ("0 0 * * 5#", "day-of-week: nth must be 1-5 in '5#' (1#2 is the second Monday of the "
                       "month)"),
        ("0 0 * * 5L/2", "day-of-week: 'L' and '#' cannot be used in a range or with a step "
                         "('5L/2'); write a number 0-7 (0 and 7 are Sunday) or a name SUN-SAT, "
                         "a range like MON-FRI, a list like 1,3, 5L (last Friday) or 1#2 "
                         "(second Monday)"),
        ("@reboot", "@reboot has no calendar schedule; run start-up work yourself after "
                    "autocron.start()"),
        ("@every_minute", "unknown macro '@every_minute'; use one of @yearly, @annually, "
                          "@monthly, @weekly, @daily, @midnight, @hourly"),
        ("@daily 5", "a macro must be the whole expression, got '@daily 5'"),
        ("\u017fun * * * *", "non-ASCII character U+017F at position 0; use ASCII digits and "
                             "names only"),
        ("0\u00a00 * * *", "non-ASCII whitespace U+00A0 at position 1; separate fields with "
                           "ASCII spaces or tabs and write the expression on one line"),
        ("0\n0 * * *", "whitespace U+000A at position 1; separate fields with ASCII spaces or "
                       "tabs and write the expression on one line"),
        ("0 0\x00 * * *", "control character U+0000 at position 3; remove it"),
        ("\uff15 * * * *", "non-ASCII character U+FF15 at position 0; use ASCII digits and "
                           "names only"),
        ("x" * 2000, "cron expression is too long (2000 characters, at most 1024)"),
        ("0 0 30 2 *", "expression can never fire: day-of-month 30 does not exist in FEB"),
        ("0 0 31 4,6,9,11 *", "expression can never fire: day-of-month 31 does not exist in "
                              "APR, JUN, SEP or NOV"),
        ("0 0 */100 * MON#4", "expression can never fire: day-of-month '*/100' is ANDed with "
                              "day-of-week 'MON#4' (day-of-month starts with '*'); no date "
                              "satisfies both"),
    ])
    def test_bad_expression_message(self, text, message):
        with pytest.raises(CronError) as caught:
            CronExpression(text)
        assert str(caught.value) == message
        assert isinstance(caught.value, ValueError)

    @pytest.mark.parametrize("text", [
        "0 0 30 2 MON", "0 0 29 2 *", "0 0 * 2 MON#5", "0 0 29 2 */7", "0 0 */40 * 5#1",
    ])
    def test_rare_but_possible_expressions_are_accepted(self, text):
        assert CronExpression(text).next(datetime(2024, 1, 1)) > datetime(2024, 1, 1)

    def test_error_carries_field_and_token(self):
        with pytest.raises(CronError) as caught:
            CronExpression("0 0 * 13 *")
        assert (caught.value.field, caught.value.token) == ("month", "13")

    @pytest.mark.parametrize("fields, message", [
        (dict(minutes=[60]), "minutes value 60 is out of range 0-59"),
        (dict(dow=[7]), "dow value 7 is out of range 0-6 (0 = Monday ... 6 = Sunday, as "
                        "datetime.weekday())"),
        (dict(dow=["funday"]), "dow values must be ints or a day name like 'mon', got "
                               "'funday'"),
        (dict(hours="9"), "hours values must be ints, got '9'"),
        (dict(hours=[True]), "hours values must be ints, got True"),
        (dict(days=[]), "days is empty; leave it out to mean every value"),
        (dict(months=3.5), "months must be an int, an iterable of ints or a range, got 3.5"),
        (dict(days=[30], months=[2]), "expression can never fire: day-of-month 30 does not "
                                      "exist in FEB"),
    ])
    def test_bad_keyword_fields(self, fields, message):
        with pytest.raises(CronError) as caught:
            CronExpression(**fields)
        assert str(caught.value) == message

    def test_misuse_is_a_type_error(self):
        with pytest.raises(TypeError, match="a cron expression must be a str, not int"):
            CronExpression(5)
        with pytest.raises(TypeError, match="either a cron expression or keyword fields"):
            CronExpression("* * * * *", minutes=[1])
        with pytest.raises(TypeError, match="unexpected keyword argument 'minute'"):
            CronExpression(minute=[1])
        with pytest.raises(TypeError, match="tz must be an IANA zone name or a tzinfo"):
            CronExpression("* * * * *", tz=5)
        with pytest.raises(TypeError, match="after must be a datetime, not date"):
            CronExpression("* * * * *").next(date(2024, 1, 1))

    def test_unknown_zone(self):
        with pytest.raises(CronError, match="unknown time zone 'Mars/Olympus'; use an IANA"):
            CronExpression("* * * * *", tz="Mars/Olympus")

    def test_wildcard_job_that_only_matches_inside_a_gap_reports_no_fire_time(self):
        c = CronExpression("* 2 * 3 0L", tz="Europe/Berlin")
        with pytest.raises(CronError, match="has no fire time within 50 years"):
            c.next(datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")))


# ---- task functions that the workers import from this module ------------------------------


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@autocron.delay
def add(a, b):
    return a + b


@autocron.delay
def environment_of_a_task(name):
    return os.environ.get(name)


@autocron.delay
def echo(*args, **kwargs):
    return args, kwargs


def fail_twice(tries, failures=2):
    """An initializer that fails the first `failures` times (counted in the file `tries`)."""
    with open(tries, "a") as file:
        file.write("x")
    count = len(Path(tries).read_text())
    if count <= failures:
        raise RuntimeError(f"not yet (try {count})")


def exit_twice(tries):
    """An initializer that ends its process the first two times, without a word."""
    with open(tries, "a") as file:
        file.write("x")
    if len(Path(tries).read_text()) <= 2:
        os._exit(0)


def slow_once(tries):
    """An initializer that takes a minute the first time, no time after."""
    with open(tries, "a") as file:
        file.write("x")
    if len(Path(tries).read_text()) == 1:
        time.sleep(60)


@autocron.delay
def same(value):
    return value


@autocron.delay
def fail(text):
    raise ValueError(text)


@autocron.delay
def nested(x, depth=1):
    """Calls another delayed function, `depth` levels deep, and waits for it: inside a
    worker the call is stored like any other (fan-out) and runs in another worker."""
    inner = nested(x, depth - 1) if depth > 1 else add(x, 1)
    value = inner.get(timeout=60)
    return type(inner).__name__, value[1] if depth > 1 else value, inner


@autocron.delay
async def await_inside(x):
    """An async task that awaits a call it makes (its worker must take a spare meanwhile)."""
    return await add(x, 1)


@autocron.delay
async def get_inside_async():
    """An async task that blocks in get(): refused, it would block its event loop."""
    return add(1, 1).get(timeout=5)


@dataclass
class Box:
    """Holds anything (a Result inside a dataclass's pickled state is a dependency)."""
    item: object


class SelfPickled:
    """Pickles itself as bytes of its own: a Result inside cannot be a dependency."""

    def __init__(self, item):
        self.item = item

    def __reduce__(self):
        return (pickle.loads, (pickle.dumps(self.item),))


@autocron.delay
def total(values):
    return sum(values)


@autocron.delay
def unpack(parts, box, more):
    """The values that dependencies in a dict, a dataclass and a set became."""
    return parts["a"] + box.item[0] + sum(more)


@autocron.delay
def log_step(folder, step):
    """Count this step's runs (a line a run in folder/step<n>); its value is step * 10."""
    with open(Path(folder) / f"step{step}", "a") as file:
        file.write("run\n")
    return step * 10


@autocron.delay(retries=1)
def ten_steps(folder):
    """Ten steps, each a call it waits for; its first attempt is killed (SIGKILL) just
    before step 7. The second gets steps 0-6 back, and runs 7-9."""
    values = []
    for step in range(10):
        if step == 7 and not (Path(folder) / "killed").exists():
            (Path(folder) / "killed").write_text("")
            os.kill(os.getpid(), signal.SIGKILL)
        values.append(log_step(folder, step).get(timeout=60))
    return values


@autocron.delay
def note_words(folder, words):
    """Count this step's runs (a line a run in folder/words)."""
    with open(Path(folder) / "words", "a") as file:
        file.write("run\n")
    return len(words)


@autocron.delay(retries=1)
def step_with_a_set(folder):
    """A step whose arguments hold a set of strings (pickled in hash order, which differs
    between worker processes); its first attempt is killed after the step."""
    note_words(folder, frozenset(f"word{i}" for i in range(12))).get(timeout=60)
    if not (Path(folder) / "killed").exists():
        (Path(folder) / "killed").write_text("")
        os.kill(os.getpid(), signal.SIGKILL)
    return "done"


@autocron.delay
async def await_a_dependent():
    """Awaits a call that depends on this task itself: refused at once."""
    return await add(autocron.current(), 1)


@autocron.delay
def fails_first(folder):
    """Fails at its first run, then returns "fine" (runs counted in folder/first)."""
    if count_attempt(str(Path(folder) / "first")) == 1:
        raise ConnectionError("first run")
    return "fine"


@autocron.delay(retries=1)
def step_that_failed(folder):
    """A task whose step fails at its first attempt: its retry stores the step anew."""
    return fails_first(folder).get(timeout=60)


@autocron.delay
def wait_for_a_dependent():
    """Waits for a call that depends on this task itself: refused at once."""
    return add(autocron.current(), 1).get(timeout=5)


def wait_for_itself():
    """A task that waits for its own call."""
    return autocron.current().get(timeout=5)


@autocron.delay
def block(folder, name="task"):
    """Write this worker's pid to folder/name.pid, then wait until folder/name.go exists."""
    (Path(folder) / f"{name}.pid").write_text(str(os.getpid()))
    while not (Path(folder) / f"{name}.go").exists():
        time.sleep(0.01)
    return os.getpid()


@autocron.delay
def log_line(path, text):
    with open(path, "a") as file:
        file.write(text + "\n")
    return text


@autocron.delay
def make_lock():
    return threading.Lock()


@autocron.delay
def exit_now(code):
    os._exit(code)


@autocron.delay(seconds=0.5)
def add_later(a, b):
    return a + b


@autocron.delay(hours=1)
def add_in_an_hour(a, b):
    return a + b


@autocron.delay(schedule=datetime(2000, 1, 1))
def add_in_the_past(a, b):
    return a + b


def cron_job():
    with open(os.environ.get("AUTOCRON_TEST_LOG", os.devnull), "a") as file:
        file.write("run\n")
    return "ran"


@autocron.delay
def nested_map(n):
    """Maps another delayed function inside a task (fan-out) and waits for the values."""
    return autocron.wait(add.map(range(n), range(n)), timeout=60)


async def awaited(result):
    """A Result's value, awaited."""
    return await result


@autocron.delay
async def async_add(a, b):
    await asyncio.sleep(0.001)
    return a + b


@autocron.delay
async def async_fail(text):
    await asyncio.sleep(0)
    raise LookupError(text)


@autocron.delay
async def which_loop():
    """The worker's pid, how many distinct event loops its async tasks have run on (each one
    kept, so that no id can be reused), and how many such tasks it ran."""
    seen = which_loop.__wrapped__.__dict__.setdefault("loops", [])
    seen.append(asyncio.get_running_loop())
    return os.getpid(), len({id(loop) for loop in seen}), len(seen)


async def async_cron_job():
    await asyncio.sleep(0)
    cron_job()
    return "ran async"


def running_marks(folder, kind="async"):
    """The calls of a kind that mark themselves running in `folder` now."""
    return sorted(path.name for path in Path(folder).glob(f"{kind}-*"))


@autocron.delay
async def rendezvous(folder, name, expected, seconds=60.0):
    """Mark itself running, print, and wait until `expected` calls run at once (or
    `seconds`: calls run one after another never meet); how many it saw at most, its
    worker, its own id and the progress it reported, as current() tells them."""
    mark = Path(folder, f"async-{name}")
    mark.write_text("")
    print(f"{name} began")
    autocron.progress(name, 100, f"call {name}")
    most, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        most = max(most, len(running_marks(folder)))
        if most >= expected:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    most = max(most, len(running_marks(folder)))
    print(f"{name} ended", file=sys.stderr)
    mark.unlink()
    return most, os.getpid(), autocron.current().uuid


@autocron.delay
async def async_nap(folder, name, seconds):
    """Mark itself running for `seconds`; whether a synchronous call ran meanwhile."""
    mark = Path(folder, f"async-{name}")
    mark.write_text("")
    await asyncio.sleep(seconds)
    mark.unlink()
    return bool(running_marks(folder, "sync")), time.time()


@autocron.delay
def sync_look(folder, name):
    """A synchronous call: the async calls running beside it (none may), and its end."""
    mark = Path(folder, f"sync-{name}")
    mark.write_text("")
    seen = running_marks(folder)
    time.sleep(0.05)
    seen += running_marks(folder)
    mark.unlink()
    return seen, time.time()


@autocron.delay
async def async_sleeper(folder, name, seconds=300.0):
    """Sleep (awaiting) until cancelled; note the cancel in `folder`."""
    Path(folder, f"async-{name}").write_text("")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        Path(folder, f"cancelled-{name}").write_text("")
        raise
    return "slept"


@autocron.delay
async def loop_blocker(folder, seconds=300.0):
    """An async call that blocks its event loop (time.sleep inside async def)."""
    Path(folder, "async-blocker").write_text("")
    await asyncio.sleep(0.2)         # its neighbours start meanwhile
    time.sleep(seconds)
    return "woke"


@autocron.delay
async def blocker_neighbour(folder, name):
    """async_count beside loop_blocker: note each run of it in `folder`, mark itself
    running, wait for the blocker's mark and then 0.5 s: longer than the blocker awaits
    after its mark, so that the blocker blocks the loop while this one waits (a run after
    the blocker's ends 0.5 s after it began). Its value."""
    with open(Path(folder, f"runs-{name}"), "a") as file:
        file.write("run\n")
    Path(folder, f"async-{name}").write_text("")
    end = time.monotonic() + 60
    while not Path(folder, "async-blocker").exists() and time.monotonic() < end:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    return name


@autocron.delay
async def in_threads(folder):
    """current() and a delayed call (a durable step) from a thread of the loop's executor,
    current() from a plain thread (the call runs alone), bytes on sys.stdout.buffer."""
    def look():
        return autocron.current().uuid, add(1, 2).uuid
    seen, made = await asyncio.get_running_loop().run_in_executor(None, look)
    plain = []
    thread = threading.Thread(target=lambda: plain.append(autocron.current().uuid))
    thread.start()
    thread.join()
    sys.stdout.buffer.write(b"bytes\n")
    return seen, plain[0], autocron.current().uuid, made


@autocron.delay(timeout=1)
async def spawn_and_wait(folder):
    """Start a subprocess and wait for it, past the call's timeout."""
    child = await asyncio.create_subprocess_exec("sleep", "300")
    Path(folder, "child.pid").write_text(str(child.pid))
    await child.wait()


@autocron.delay
async def forker(folder):
    """Fork, and return in both processes (as a library that forks a helper may)."""
    await asyncio.sleep(0.3)
    pid = os.fork()
    with open(Path(folder, "forked"), "a") as file:
        file.write("child\n" if pid == 0 else "parent\n")
    return pid != 0


@autocron.delay
async def async_count(folder, name, seconds=0.5):
    """Note each run of it in `folder`, then wait a moment; its value."""
    with open(Path(folder, f"runs-{name}"), "a") as file:
        file.write("run\n")
    Path(folder, f"async-{name}").write_text("")
    await asyncio.sleep(seconds)
    return name


# ---- helpers for the runtime tests ---------------------------------------------------------


def worker_pids():
    """The worker processes of this process's pool, as its manager published them."""
    pool = autocron._state.pool
    return pool.store.pool_pids()[2] if pool else []


def pool_pids():
    """(manager, workers) of this process's pool."""
    pool = autocron._state.pool
    return pool.store.pool_pids()[1:] if pool else (None, [])


def is_active():
    """Whether autocron is active in this process (between start() and stop()). A user sees
    it only by running a call (inactive: it runs here), which these tests must not."""
    return autocron._state.store is not None


def wake_pool():
    """Wake this process's pool now, as a new call would, after a test moved the clock (a
    pool looks by itself only at the due time it knew of, or within its fallback check)."""
    autocron._state.pool.wake()


def forget_cron(name):
    """Unregister a cron job in this process (the API has no way to: a job lives as long as
    its module), so that the next test's start() does not register it again."""
    autocron._state.crons.pop(name, None)


def run_python(code, *args, timeout=60, **kwargs):
    """Run a snippet in a fresh interpreter with this test module importable."""
    env = kwargs.pop("env", None) or dict(os.environ,
                                          PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    kwargs.setdefault("cwd", HERE)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def spawn_python(code, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=HERE, **kwargs)


@contextlib.contextmanager
def read_only(path):
    """Make a file read-only even for root (who ignores mode bits): chattr +i where needed."""
    if os.geteuid() != 0:
        os.chmod(path, 0o400)
        yield
        os.chmod(path, 0o600)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def foreign_database(path):
    """An SQLite database of some other application, private to this user."""
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE users (name TEXT)")
        con.commit()
    os.chmod(path, 0o600)


def as_schema_1(database):
    """Turn a database of this autocron back into one of schema 1, as the release before
    the dashboard's retry and pause made it."""
    store = autocron._open_store(database, existing=True, write=True)
    for statement in ("DROP INDEX tasks_retry", "DROP INDEX tasks_cron",
                      "DROP INDEX tasks_outcome",
                      "ALTER TABLE tasks DROP COLUMN retry_of",
                      "ALTER TABLE tasks DROP COLUMN errors",
                      "DROP INDEX tasks_key", "ALTER TABLE tasks DROP COLUMN key",
                      "ALTER TABLE crons DROP COLUMN paused"):
        store.write(statement)
    if isinstance(store, autocron._PgStore):
        store.write("UPDATE meta SET version = 1")
    else:
        store.write("PRAGMA user_version = 1")
    store.close()


def other_database(database):
    """Another database on the same backend: a file beside it, or another schema."""
    if autocron._is_postgres(database):
        return database.replace("schema=", "schema=other_")
    return database + ".other"


def waits_for_events(pid):
    """Whether a process sleeps (Linux: its state in /proc is S), as a pool manager does
    between rounds: what its last round claimed has been handed to the workers."""
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0] == "S"


def row_status(database, result):
    """The status in the database, where "queued" (handed to a busy worker) is visible."""
    rows = query(database, "SELECT status FROM tasks WHERE id = ?",
                 (int(result.uuid.rsplit("-", 1)[1]),))
    return rows[0][0] if rows else None


def settle():
    """Return once the pool has finished a round that began after now (no sleep).

    A probe task due now runs through such a round; anything the pool should have started
    at this moment (a cron run, a retry) is due no later and was claimed before it.
    """
    assert add(0, 0).get(timeout=30) == 0


class FakeClock:
    """The clock seam: autocron._clock returns this clock's time, which tests move.

    The pool manager and its workers are other processes: they read the time from the
    file that autocron._clock_file names (their start configuration carries it), which this
    clock keeps up to date. Other programs a test starts get its name in $TEST_CLOCK_FILE.
    """

    def __init__(self, start, monkeypatch, folder):
        self.path = os.path.join(folder, "clock")
        self.now = start
        monkeypatch.setenv("TEST_CLOCK_FILE", self.path)
        monkeypatch.setattr(autocron, "_clock_file", self.path)
        monkeypatch.setattr(autocron, "_clock", self)

    @property
    def now(self):
        return self._now

    @now.setter
    def now(self, value):
        self._now = value
        with open(self.path + ".new", "w") as file:
            file.write(repr(value))
        os.replace(self.path + ".new", self.path)

    def __call__(self):
        return self._now


# ---- a private PostgreSQL server for the session -----------------------------------------------


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of the test's own, which it may halt and resume."""
    server = started_postgres()
    try:
        yield server
    finally:
        autocron.stop(timeout=5)
        close_postgres_connections()
        server.stop()


def cron_job_too():
    return "ran too"


def pg_listeners(server):
    """How many connections of autocron's LISTEN for notifications on the server."""
    with server.connect() as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'autocron' AND query ILIKE 'LISTEN%'").fetchone()[0]


def pytest_generate_tests(metafunc):
    """Every test of a database runs on both backends, except what only SQLite has."""
    if "database" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("database", ["sqlite"] if only else ["sqlite", "postgres"],
                             indirect=True)


@pytest.fixture
def pool(database):
    """A running pool of two workers; afterwards no worker may be left."""
    assert autocron.start(database, workers=2) is True
    pids = wait_until(lambda: len(worker_pids()) == 2 and worker_pids(), what="two workers")
    yield database
    manager, workers = pool_pids()
    pids = set(pids) | set(workers) | {manager}
    autocron.stop(timeout=5)
    wait_until(lambda: not any(alive(p) for p in pids if p), 10, "the pool's processes to exit")


# ---- task records: the policy functions ------------------------------------------------------


class TestPolicy:
    """When a failed task runs again and when a cron job is next due: plain functions of plain
    values, which the pool applies before it hands the store what to write."""

    def test_claimed_calls_go_to_places_of_their_kind(self):
        def row(name, asynchronous=False, queue="default"):
            return (name, asynchronous, queue)
        rows = [row("s1"), row("a1", True), row("s2"), row("a2", True), row("m", queue="mail")]
        # places: an idle worker, two rooms beside async calls, one behind a running call,
        # one behind async calls
        chosen = autocron._assign(rows, "irrba", {"mail": 1})
        assert [(place, r[0]) for place, r in chosen] == [(0, "s1"), (1, "a1"), (3, "s2"),
                                                          (2, "a2")]   # no idle left for "m"
        # a limited call only to an idle worker, and no more than its allowance
        chosen = autocron._assign([row("m1", queue="mail"), row("m2", queue="mail"),
                                   row("s")], "iib", {"mail": 1})
        assert [(place, r[0]) for place, r in chosen] == [(0, "m1"), (1, "s")]
        # an async call never waits behind a running call (its worker would run it beside);
        # a synchronous one takes no room beside async calls
        assert autocron._assign([row("a", True)], "ba", {}) == []
        assert autocron._assign([row("s")], "rr", {}) == []
        assert [p for p, _ in autocron._assign([row("a", True, "mail")], "ir", {"mail": 1})] \
            == [1]
        assert autocron._plain_places("iibb") and not autocron._plain_places("ira")
        # an idle worker goes to a synchronous call before an async one that came first:
        # the async one can share rooms, the other runs nowhere else
        assert [(p, r[0]) for p, r in autocron._assign([row("a", True), row("s")], "i", {})] \
            == [(0, "s")]
        assert [p for p, _ in autocron._assign([row("a", True), row("b", True)], "ir", {})] \
            == [1, 0]

    def test_a_window_of_one_kind_looks_for_the_other(self):
        flood = [(n, True, "default") for n in range(8)]
        assert autocron._kinds_missing(flood, "rrra") == [(False, 1)]
        assert autocron._kinds_missing([(n, False, "q") for n in range(8)], "rrb") == [
            (True, 2)]
        assert autocron._kinds_missing(flood[:4] + [(9, False, "q")], "rrra") == []

    def test_a_call_interrupted_for_another_s_sake_runs_again_at_once_and_free(self):
        free = autocron._Outcome(7, "error", error={"message": "x"}, free=True,
                                 retryable=False)
        (decided,) = autocron._decide_retries([free], {}, 50.0)
        assert decided.retry_at == 50.0

    def test_a_retry_waits_the_delay_times_the_backoff_per_earlier_attempt(self):
        assert autocron._retry_due(1, 3, 10, 2.0, 1000.0) == 1010.0
        assert autocron._retry_due(2, 3, 10, 2.0, 1000.0) == 1020.0
        assert autocron._retry_due(3, 3, 10, 2.0, 1000.0) == 1040.0
        assert autocron._retry_due(4, 3, 10, 2.0, 1000.0) is None     # used up

    def test_only_retryable_failures_with_retries_left_run_again(self):
        outcome = autocron._Outcome
        terms = {1: autocron._RetryTerms(1, 2, 5.0, 1.0), 2: autocron._RetryTerms(3, 2, 5.0, 1.0),
                 3: autocron._RetryTerms(1, 2, 5.0, 1.0), 4: autocron._RetryTerms(1, 2, 5.0, 1.0)}
        outcomes = [outcome(1, "error"), outcome(2, "error"),
                    outcome(3, "error", retryable=False), outcome(4, "ready"), outcome(5, "error")]
        decided = autocron._decide_retries(outcomes, terms, 100.0, jitter=lambda: 0.0)
        assert [o.retry_at for o in decided] == [105.0, None, None, None, None]
        assert [o.id for o in decided] == [1, 2, 3, 4, 5]
        # each delay is lengthened by up to a quarter, at random: 5 s becomes 5 to 6.25 s
        decided = autocron._decide_retries(outcomes, terms, 100.0, jitter=lambda: 1.0)
        assert decided[0].retry_at == 106.25
        spread = {autocron._decide_retries(outcomes, terms, 100.0)[0].retry_at
                  for _ in range(50)}
        assert len(spread) > 40 and all(105.0 <= due <= 106.25 for due in spread)

    def test_a_cron_job_is_next_due_after_its_run_ended(self):
        schedule = CronExpression("*/5 * * * *")
        ended = datetime(2030, 1, 1, 9, 7, 30).timestamp()
        runs = autocron._next_runs([autocron._CronEnd("job", schedule, ended)], 0.0)
        assert runs == [("job", datetime(2030, 1, 1, 9, 10).timestamp())]
        now = datetime(2030, 1, 1, 9, 11).timestamp()       # no end time: from now
        assert autocron._next_runs([autocron._CronEnd("job", schedule, None)], now) == [
            ("job", datetime(2030, 1, 1, 9, 15).timestamp())]

    def test_a_run_ended_by_a_lagging_clock_never_makes_its_own_due_time_due_again(self):
        # The run for 09:10 ended on a machine whose clock says 09:09:30 (it lags): the
        # next due time is the one after 09:10, never 09:10 again.
        schedule = CronExpression("*/5 * * * *")
        due = datetime(2030, 1, 1, 9, 10).timestamp()
        lagging = datetime(2030, 1, 1, 9, 9, 30).timestamp()
        assert autocron._next_runs([autocron._CronEnd("job", schedule, lagging, due)],
                                   lagging) == [("job", datetime(2030, 1, 1, 9, 15).timestamp())]

    @pytest.mark.parametrize("catch_up, missed, running, live, expected", [
        (False, 30, None, False, None),          # missed by less than the grace: runs now
        (True, 30, None, False, None),
        (False, 3600, None, False, "next"),      # the pool was down: the next due time
        (True, 3600, None, False, "now"),        # ... unless it catches up
        (False, -60, "t-1", False, "next"),      # it was running: its run ended with the pool
        (True, -60, "t-1", False, "next"),       # not missed: nothing to catch up
        (True, 3600, "t-1", True, None),         # its run still waits to start: as it is
    ])
    def test_a_job_left_by_a_pool_that_ended_resumes_by_the_misfire_rule(
            self, catch_up, missed, running, live, expected):
        now = datetime(2030, 1, 1, 9, 30, 10).timestamp()
        schedule = CronExpression("0 * * * *")
        job = autocron._CronState("job", schedule, catch_up, now - missed, running, live)
        due = autocron._resume_due(job, now)
        assert due == {None: None, "now": now,
                       "next": datetime(2030, 1, 1, 10, 0).timestamp()}[expected]

    def test_a_job_never_due_before_resumes_at_its_next_due_time(self):
        now = datetime(2030, 1, 1, 9, 30, 10).timestamp()
        job = autocron._CronState("job", CronExpression("0 * * * *"), True, None, None, False)
        assert autocron._resume_due(job, now) == datetime(2030, 1, 1, 10, 0).timestamp()


# ---- functions by value (notebooks, scripts, closures) -------------------------------------


MULTIPLIER = 3


class TestShippingByValue:
    """Functions the workers cannot import travel with their code, globals and closures."""

    def test_closure_with_its_captured_values(self, pool):
        def make_adder(k):
            def adder(x):
                return x + k
            return adder
        assert autocron.delay(make_adder(5))(1).get(timeout=30) == 6

    def test_lambda(self, pool):
        assert autocron.delay(lambda x: x * x)(7).get(timeout=30) == 49

    def test_recursion_and_mutual_recursion(self, pool):
        def is_even(n):
            return n == 0 or is_odd(n - 1)

        def is_odd(n):
            return n != 0 and is_even(n - 1)

        def factorial(n):
            return 1 if n <= 1 else n * factorial(n - 1)
        assert autocron.delay(is_even)(10).get(timeout=30) is True
        assert autocron.delay(factorial)(6).get(timeout=30) == 720

    def test_helper_chain_and_module_globals(self, pool):
        def scale(x):
            return x * MULTIPLIER

        def offset(x):
            return scale(x) + len(os.sep)

        def top(x):
            return offset(x) * 2
        assert autocron.delay(top)(1).get(timeout=30) == (3 + len(os.sep)) * 2

    def test_classes_as_arguments_and_return_values(self, pool):
        @dataclass
        class Vector:
            x: float
            y: float

            def norm(self):
                return (self.x ** 2 + self.y ** 2) ** 0.5

        class Slotted:
            __slots__ = ("a",)

            def __init__(self, a):
                self.a = a

        def longer(v, s):
            return Vector(v.x * s.a, v.y * s.a).norm()
        assert autocron.delay(longer)(Vector(3, 4), Slotted(2)).get(timeout=30) == 10.0

    def test_default_and_keyword_only_arguments(self, pool):
        def greet(name, greeting="hello", *, punctuation="!"):
            return f"{greeting} {name}{punctuation}"
        shipped = autocron.delay(greet)
        assert shipped("ada").get(timeout=30) == "hello ada!"
        assert shipped("bob", "hi", punctuation="?").get(timeout=30) == "hi bob?"

    def test_decorated_function(self, pool):
        def shout(func):
            @functools.wraps(func)
            def wrapper(*args):
                return func(*args).upper()
            return wrapper

        @autocron.delay
        @shout
        def word(text):
            return text
        assert word("quiet").get(timeout=30) == "QUIET"

    def test_changed_globals_and_bodies_reach_the_next_call(self, pool, tmp_path):
        namespace = {}
        exec("FACTOR = 2\ndef times(x):\n    return x * FACTOR\n", namespace)
        times = autocron.delay(namespace["times"])
        assert times(5).get(timeout=30) == 10
        namespace["FACTOR"] = 7
        assert times(5).get(timeout=30) == 35
        exec("def times(x):\n    return -x\n", namespace)      # the cell, run again
        assert autocron.delay(namespace["times"])(5).get(timeout=30) == -5

    def test_a_thousand_calls_store_one_payload(self, pool):
        def inc(x):
            return x + 1
        shipped = autocron.delay(inc)
        results = [shipped(i) for i in range(200)]
        assert autocron.wait(results, timeout=60) == list(range(1, 201))
        rows = autocron._open_store(pool).read("SELECT count(*) FROM functions")
        assert rows[0][0] == 1

    @pytest.mark.parametrize("make, label", [
        (lambda: threading.Lock(), "global 'resource'"),
        (lambda: open(os.devnull), "global 'resource'"),
        (lambda: sqlite3.connect(":memory:"), "global 'resource'"),
    ])
    def test_unshippable_global_is_named_and_nothing_is_stored(self, pool, make, label):
        namespace = {"resource": make()}
        exec("def use():\n    return resource\n", namespace)
        before = len(autocron.get_results())
        with pytest.raises(TypeError) as caught:
            autocron.delay(namespace["use"])()
        value = namespace["resource"]
        assert str(caught.value).startswith(
            f"{label} of use() cannot be sent to the workers ({type(value).__name__}: ")
        assert str(caught.value).endswith("create it inside the function or pass plain data "
                                          "as an argument")
        assert len(autocron.get_results()) == before
        with contextlib.suppress(Exception):
            value.close()

    def test_unshippable_closure_variable_is_named(self, pool):
        lock = threading.Lock()

        def use():
            return lock
        with pytest.raises(TypeError, match=r"^variable 'lock' of an enclosing function of "
                                            r"TestShippingByValue\..*use\(\) cannot be sent"):
            autocron.delay(use)()

    def test_cron_job_defined_in_main_is_shipped(self, database, monkeypatch, tmp_path):
        namespace = {"__name__": "__main__", "LOG": str(tmp_path / "log")}
        exec("def tick():\n    open(LOG, 'a').write('tick\\n')\n    return 'ticked'\n",
             namespace)
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        try:
            autocron.cron("0 9 * * *")(namespace["tick"])
            autocron.start(database, workers=1)
            clock.now += 60
            wake_pool()
            run = wait_until(lambda: [r for r in autocron.get_results()
                                      if r._fetch().name == "__main__.tick"], what="the run")
            assert run[0].get(timeout=30) == "ticked"
            assert (tmp_path / "log").read_text() == "tick\n"
        finally:
            forget_cron("__main__.tick")

    def test_script_run_as_main_ships_its_functions(self, tmp_path):
        script = tmp_path / "app.py"
        script.write_text(textwrap.dedent("""
            import sys, autocron

            class Box:
                def __init__(self, value):
                    self.value = value

            def helper(box):
                return box.value * 2

            @autocron.delay
            def work(box):
                print("working on", box.value)
                return Box(helper(box))

            if __name__ == "__main__":
                autocron.start(sys.argv[1], workers=1)
                result = work(Box(21))
                box = result.get(timeout=30)
                print(type(box).__module__, type(box).__name__, box.value, repr(result.output))
                autocron.stop()
        """))
        out = subprocess.run([sys.executable, str(script), str(tmp_path / "s.db")],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env=dict(os.environ, PYTHONPATH=HERE))
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[0] == "__main__ Box 42 'working on 21\\n'"

    def test_a_payload_deleted_with_its_last_result_is_shipped_again(self, database,
                                                                       monkeypatch, tmp_path):
        clock = FakeClock(time.time(), monkeypatch, tmp_path)
        autocron.start(database, workers=1)
        wait_until(lambda: len(worker_pids()) == 1, what="the worker")

        def triple(x):
            return 3 * x
        shipped = autocron.delay(triple)
        assert shipped(1).get(timeout=30) == 3
        store = autocron._state.store
        clock.now += 120
        assert store.cleanup(clock.now, 60) >= 1        # the result and the payload go
        assert store.read("SELECT count(*) FROM functions")[0][0] == 0
        old = worker_pids()[0]
        os.kill(old, signal.SIGKILL)                    # a fresh worker has nothing cached
        wait_until(lambda: [pid for pid in worker_pids() if pid != old], what="a new worker")
        assert shipped(2).get(timeout=30) == 6
        assert shipped(3).get(timeout=30) == 9


# ---- the store -----------------------------------------------------------------------------


class TestStore:
    """The SQLite file: created private, refused when unsafe or not ours, never half-written."""

    def test_an_io_error_is_weather_with_its_own_hint(self, tmp_path):
        # what SQLite says when the file system fails a read or a write (EIO): the pool
        # waits it out like a full disk, and a caller is told to check the disk
        store = autocron._SqliteStore(tmp_path / "a.db")
        error = store._error(sqlite3.OperationalError("disk I/O error"))
        assert str(error) == (f"{store.path}: the disk failed to read or write (an I/O error); "
                              "check it, then call again (nothing was stored) (sqlite3: disk "
                              "I/O error)")
        assert autocron._weather(error)
        assert not autocron._weather(store._error(sqlite3.DataError("string or blob too big")))

    def test_the_errors_of_a_task_s_attempts_are_kept_within_a_bound(self, tmp_path,
                                                                     monkeypatch):
        # review: a task retried thousands of times with long errors grew its row without
        # end (131 KB an attempt, every retry rewriting the whole of it)
        monkeypatch.setattr(autocron, "_MAX_ATTEMPT_ERRORS", 20_000)
        store = autocron._SqliteStore(tmp_path / "a.db")
        record, _ = autocron._dump_call(add, (1, 2), {})
        uid = store.add_task("test_autocron.add", "1, 2", record, 0.0)
        row = int(uid.rsplit("-", 1)[1])
        for attempt in range(1, 8):
            store.write("UPDATE tasks SET status = 'running' WHERE id = ?", (row,))
            error = {"type": "OSError", "message": f"attempt {attempt} " + "x" * 10_000,
                     "traceback": "tb" * 10_000}
            with store.transaction() as con:
                store.finish(con, [autocron._Outcome(row, "error", error=error,
                                                     started=attempt, finished=attempt + 0.5,
                                                     retry_at=100.0)])
        kept = store.attempt_errors(uid)
        # each part cut to 8,192 characters (its start and its end); none added past 20,000
        assert [e["message"][:10] for e in kept] == ["attempt 1 ", "attempt 2 "]
        assert all(len(e["message"]) <= 8192 and len(e["traceback"]) <= 8192 for e in kept)
        assert (kept[1]["type"], kept[1]["started"], kept[1]["finished"]) == ("OSError", 2, 2.5)
        # the column came without a version of its own (schema 3 came with dependencies)
        assert store.read("PRAGMA user_version") == [(3,)]

    def test_both_stores_implement_the_protocol(self, database):
        # every method of the protocol, with its parameters in order (names, kinds, which
        # have defaults), and every attribute it names, on an opened store of each kind
        protocol = autocron._Store
        store = autocron._open_store(database)
        members = {name: member for part in (autocron._StoreViews, protocol)   # and its part
                   for name, member in vars(part).items()}
        methods = sorted(name for name, member in members.items()
                         if callable(member) and not name.startswith("_"))
        assert len(methods) > 60
        for name in methods:
            implemented = getattr(type(store), name, None)
            assert callable(implemented), f"{type(store).__name__} lacks {name}()"
            shapes = [[(p.name, p.kind, p.default is p.empty)
                       for p in inspect.signature(function).parameters.values()]
                      for function in (getattr(protocol, name), implemented)]
            assert shapes[0] == shapes[1], f"{type(store).__name__}.{name}"
        attributes = set(protocol.__annotations__) | {
            name for name, member in members.items() if isinstance(member, property)}
        for name in attributes:
            assert hasattr(store, name), f"{type(store).__name__} lacks .{name}"
        # and the module asks nothing of a store that the protocol does not list
        source = Path(autocron.__file__).read_text()
        asked = set(re.findall(r"\bstore(?:\(\))?\.(\w+)", source))
        assert asked - set(methods) - attributes == set()

    def test_database_and_folder_are_private(self, tmp_path):
        path = tmp_path / "new" / "folder" / "tasks.db"
        store = autocron._SqliteStore(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert store.settings() == {"workers": 1, "result_ttl": 1800, "disabled": 0,
                                    "synchronous": "normal", "initializer_error": None,
                                    "async_concurrency": 100, "pool_ended": None}

    def test_refuses_a_database_other_users_can_write(self, tmp_path):
        path = tmp_path / "shared.db"
        autocron._SqliteStore(path)
        os.chmod(path, 0o666)
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value) == (
            f"{path} can be written by other users (mode 666); whoever can write the database "
            f"can make the workers run code. Fix it with: chmod 600 {path}")
        assert not is_active()

    def test_refuses_a_database_of_another_user(self, tmp_path):
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        path = tmp_path / "theirs.db"
        autocron._SqliteStore(path)
        os.chown(path, 65534, -1)
        with pytest.raises(autocron.DatabaseError, match=r"belongs to another user \(uid 65534\)"
                           r"; whoever can write the database can make the workers run code"):
            autocron.start(path)

    def test_refuses_a_foreign_sqlite_database(self, tmp_path):
        path = tmp_path / "app.db"
        foreign_database(path)
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value) == (f"{path} is an SQLite database but not autocron's (it has "
                                     "the tables users); pass another path to start()")
        with contextlib.closing(sqlite3.connect(path)) as con:   # untouched
            assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]

    def test_refuses_a_file_that_is_not_a_database(self, tmp_path):
        path = tmp_path / "notes.db"
        path.write_bytes(b"these are my notes, not a database\n" * 200)
        os.chmod(path, 0o600)
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value).startswith(
            f"{path}: it is not an SQLite database or it is damaged; move it aside or pass "
            "another path to start() (sqlite3: ")
        assert path.read_bytes() == b"these are my notes, not a database\n" * 200

    def test_reports_a_damaged_database(self, tmp_path):
        path = tmp_path / "damaged.db"
        store = autocron._SqliteStore(path)
        store.add_task("u1", "f", "", b"x" * 5000, 0.0)
        store.close()
        data = bytearray(path.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)      # the schema's page
        path.write_bytes(bytes(data))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path) + suffix)
        with pytest.raises(autocron.DatabaseError, match="it is not an SQLite database or it "
                                                         "is damaged"):
            autocron.start(path)

    def test_refuses_a_database_of_a_newer_autocron(self, tmp_path):
        path = tmp_path / "future.db"
        autocron._SqliteStore(path).write("PRAGMA user_version = 99")
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value) == (f"{path} was written by a newer autocron (schema 99, this "
                                     "one knows 3); upgrade autocron or pass another path")

    def test_a_schema_1_database_is_upgraded_by_the_first_writer(self, database):
        autocron.cron("0 9 * * *")(cron_job)
        try:
            autocron.start(database, workers=1)
            kept = add(1, 2)
            assert kept.get(timeout=30) == 3
            autocron.stop()
            as_schema_1(database)
            shown = cli("info", "--json", db=database)        # reading: left at schema 1
            assert shown.returncode == 0, shown.stderr
            info = json.loads(shown.stdout)
            assert info["schema"] == 1 and info["cron_jobs"][0]["paused"] is False
            assert cli("info", db=database).returncode == 0
            assert json.loads(cli("info", "--json", db=database).stdout)["schema"] == 1
            reading = autocron._open_store(database, existing=True)
            assert reading.attempt_errors(kept.uuid) == []      # read around what it lacks
            reading.close()
            paused = cli("pause", "test_autocron.cron_job", db=database)   # writing
            assert paused.returncode == 0, paused.stderr
            info = json.loads(cli("info", "--json", db=database).stdout)
            upgraded = 4 if autocron._is_postgres(database) else 3    # PostgreSQL: schema 4
            assert info["schema"] == upgraded and info["cron_jobs"][0]["paused"] is True
            autocron.start(database, workers=1)
            assert autocron.get_result(kept.uuid).get() == 3
            assert add(2, 3).get(timeout=30) == 5
        finally:
            forget_cron("test_autocron.cron_job")

    def test_reports_a_folder_it_cannot_create(self, tmp_path):
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "sub" / "autocron.db"
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value) == (f"cannot create the folder {path.parent} for the database "
                                     "(Not a directory); create it yourself or pass another "
                                     "path")

    def test_reports_a_read_only_database(self, tmp_path):
        path = tmp_path / "ro.db"
        autocron._SqliteStore(path).close()
        with read_only(path):
            with pytest.raises(autocron.DatabaseError) as caught:
                autocron.start(path)
        assert str(caught.value).startswith(
            f"{path}: it cannot be written; make the file and its folder writable by you "
            "(chmod u+w) or pass another path (sqlite3: ")
        assert not is_active()

    @pytest.mark.parametrize("reader", ["this thread", "another thread"])
    def test_a_reader_beside_start_loses_no_call(self, tmp_path, reader):
        """A read-only store in a process that has the file open (a notebook's dashboard or
        reads beside its start()) leaves the process's SQLite locks alone: else the pool,
        ending, takes itself for the file's last user, deletes the log under this process's
        connection, and the calls this process then adds are lost."""
        path = str(tmp_path / "autocron.db")
        opened, done = threading.Event(), threading.Event()

        def read_and_stay():       # like the dashboard's thread: its connection stays open
            store = autocron._open_store(path, existing=True)
            assert store.read("SELECT count(*) FROM tasks") == [(3,)]
            opened.set()
            done.wait(60)
            store.close()

        reading = threading.Thread(target=read_and_stay)
        try:
            assert autocron.start(path, workers=1) is True
            assert [r.get(timeout=30) for r in [add(i, 1) for i in range(3)]] == [1, 2, 3]
            if reader == "this thread":
                assert query(path, "SELECT count(*) FROM tasks") == [(3,)]
            else:
                reading.start()
                assert opened.wait(30)
            autocron.stop(timeout=5)
            assert autocron.start(path, workers=0) is False       # this process only adds
            kept = [add(i, 10) for i in range(3)]
            autocron.stop(timeout=5)
            with contextlib.closing(sqlite3.connect(path)) as con:  # readable, all of it
                assert con.execute("SELECT count(*) FROM tasks").fetchone() == (6,)
            ran = run_python("""
                import sys, autocron
                assert autocron.start(sys.argv[1], workers=1) is True
                print([autocron.get_result(uid).get(timeout=15) for uid in sys.argv[2:]])
                autocron.stop()
                """, path, *[r.uuid for r in kept])
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.split() == ["[10,", "11,", "12]"]
        finally:
            autocron.stop(timeout=5)
            done.set()
            if reading.is_alive():
                reading.join(10)
            if os.path.exists(path):
                autocron._open_store(path, existing=True).close()   # this thread's reader


class TestIsolation:
    """Another local user, a hostile file or an odd server: refused clearly, or harmless."""

    @pytest.fixture
    def other_user(self):
        """A throwaway user with its own private group; removed afterwards."""
        import pwd
        if os.geteuid() != 0:
            pytest.skip("creating a second user needs root (CI runs the tests as root)")
        name = f"acron{os.getpid()}"
        subprocess.run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name], check=True,
                       capture_output=True)
        try:
            yield pwd.getpwnam(name)
        finally:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)   # if userdel kept it

    @pytest.fixture
    def empty_group(self):
        """A throwaway group without members; removed afterwards."""
        import grp
        if os.geteuid() != 0:
            pytest.skip("creating a group needs root (CI runs the tests as root)")
        name = f"acrong{os.getpid()}"
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        try:
            yield grp.getgrnam(name)
        finally:
            subprocess.run(["groupdel", name], capture_output=True)

    @staticmethod
    def python(code, *args, cwd=HERE, timeout=120, **env):
        """run_python with changes to the environment (a value of None removes a variable)."""
        environ = dict(os.environ, PYTHONPATH=HERE)
        for key, value in env.items():
            environ.pop(key, None) if value is None else environ.__setitem__(key, value)
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=environ,
                              cwd=cwd)

    # -- the database's folder

    def test_a_planted_write_ahead_log_is_refused_before_sqlite_reads_it(self, tmp_path,
                                                                          other_user):
        import pickle
        folder = tmp_path / "shared"
        folder.mkdir()
        database = folder / "autocron.db"
        autocron._open_store(database).close()
        # The other user builds a write-ahead log that adds a task whose record is a pickle
        # that creates a file as whoever loads it (a command would run just as well). The
        # schema is public, so a copy made as root stands in for their own reconstruction.
        marker = tmp_path / "ran-as-the-owner"

        class Planted:
            def __reduce__(self):
                return open, (str(marker), "w")

        (tmp_path / "scratch").mkdir()
        copy = tmp_path / "scratch" / "autocron.db"
        copy.write_bytes(database.read_bytes())
        planter = autocron._SqliteStore(copy)
        planter.add_task("planted", "", pickle.dumps(Planted()), 0.0)
        wal = Path(str(copy) + "-wal").read_bytes()       # read while the log is still live
        planter.close()
        for suffix, data in (("-wal", wal), (".lock", b"")):
            planted = Path(str(database) + suffix)
            planted.write_bytes(data)
            os.chown(planted, other_user.pw_uid, other_user.pw_gid)
            os.chmod(planted, 0o666)
        os.chmod(folder, 0o1777)                           # like /tmp: sticky, world-writable
        expected = (f"{folder} can be written by other users (mode 1777: anyone); they could "
                    "plant files beside the database that make the workers run code. Keep the "
                    f"database in a folder of your own, or fix it with: chmod o-w,g-w {folder}")
        try:
            with pytest.raises(autocron.DatabaseError) as caught:
                autocron.start(database)
            assert str(caught.value) == expected
            assert not is_active()
            with pytest.raises(autocron.DatabaseError) as caught:
                autocron._open_store(database, existing=True)   # the admin tool's way in
            assert str(caught.value) == expected
            assert Path(str(database) + "-wal").read_bytes() == wal     # never opened
            assert not marker.exists()
        finally:
            autocron.stop(timeout=5)

    def test_refuses_a_folder_that_others_in_its_group_can_write(self, tmp_path, other_user,
                                                                  empty_group):
        folder = tmp_path / "team"
        folder.mkdir()
        os.chown(folder, -1, empty_group.gr_gid)
        os.chmod(folder, 0o775)
        database = folder / "autocron.db"
        autocron._open_store(database).close()       # a group without other members is private
        autocron._open_store(database, existing=True).close()
        subprocess.run(["usermod", "-a", "-G", empty_group.gr_name, other_user.pw_name],
                       check=True, capture_output=True)
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(database)
        assert str(caught.value) == (
            f"{folder} can be written by other users (mode 775: group {empty_group.gr_name}, "
            f"which has the members {other_user.pw_name}); they could plant files beside the "
            "database that make the workers run code. Keep the database in a folder of your "
            f"own, or fix it with: chmod o-w,g-w {folder}")
        os.chown(folder, -1, other_user.pw_gid)    # the other user's own (primary) group
        with pytest.raises(autocron.DatabaseError, match=rf"\(mode 775: group "
                                                         rf"{other_user.pw_name}, which has the "
                                                         rf"members {other_user.pw_name}\)"):
            autocron._open_store(database, existing=True)
        os.chmod(folder, 0o755)
        autocron._open_store(database).close()
        assert not is_active()

    def test_a_users_private_group_may_write_the_folder(self, tmp_path, other_user):
        folder = tmp_path / "theirs"
        folder.mkdir()
        os.chown(folder, other_user.pw_uid, other_user.pw_gid)
        os.chmod(folder, 0o2775)                  # umask 002 and a set-group-id folder
        assert autocron._folder_problem(str(folder), other_user.pw_uid) is None
        with pytest.raises(autocron.DatabaseError) as caught:   # but it is not ours
            autocron.start(folder / "autocron.db")
        assert str(caught.value) == (
            f"{folder} belongs to another user (uid {other_user.pw_uid}), who could plant files "
            "beside the database that make the workers run code; keep the database in a "
            "folder of your own")
        assert not (folder / "autocron.db").exists()

    def test_a_private_temporary_folder_is_accepted(self, tmp_path):
        import shutil
        import tempfile
        for folder in (tmp_path, tempfile.mkdtemp()):
            try:
                autocron._SqliteStore(os.path.join(folder, "autocron.db")).close()
                assert autocron._folder_problem(str(folder), os.geteuid()) is None
            finally:
                if folder != tmp_path:
                    shutil.rmtree(folder)

    # -- the wake-up channel

    @pytest.mark.slow
    def test_a_wake_folder_made_by_another_user_leaves_the_pool_running(self, tmp_path,
                                                                         other_user):
        import hashlib
        import shutil
        import tempfile
        temp = tempfile.mkdtemp(prefix="ac-")     # short enough for a socket address
        made = Path(temp) / f"autocron-{os.geteuid()}"
        made.mkdir()
        database = tmp_path / "a.db"
        # Root may bind in anyone's folder: something in the socket's place makes it fail
        # the way any foreign folder does for an ordinary user.
        digest = hashlib.sha256(str(database).encode()).hexdigest()[:24]
        (made / f"{digest}.wake").mkdir()
        os.chown(made, other_user.pw_uid, other_user.pw_gid)
        try:
            out = self.python("""
                import logging, sys, autocron, test_autocron
                logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
                autocron.start(sys.argv[1], workers=1)
                print(test_autocron.add(2, 3).get(timeout=30),
                      test_autocron.add(3, 4).get(timeout=30))
                autocron.stop()
            """, database, TMPDIR=temp, XDG_RUNTIME_DIR=None)
        finally:
            shutil.rmtree(temp)
        assert out.stdout == "5 7\n", out.stderr
        warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING")]
        assert warnings == [
            f"WARNING autocron: no wake-up socket for the pool of {database}: {made} belongs "
            f"to another user (uid {other_user.pw_uid}); new tasks start within "
            f"{autocron._FALLBACK_WAKE:g} s instead of at once. Set XDG_RUNTIME_DIR or TMPDIR "
            "to a private folder with a short path"], out.stderr

    def test_a_long_temporary_folder_leaves_the_pool_running(self, tmp_path):
        temp = tmp_path / ("t" * 100) / ("u" * 100)
        temp.mkdir(parents=True)
        out = self.python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            print(test_autocron.add(2, 3).get(timeout=30))
            autocron.stop()
        """, tmp_path / "a.db", TMPDIR=str(temp), XDG_RUNTIME_DIR=None)
        assert (out.stdout, out.stderr) == ("5\n", "")

    def test_wake_sockets_left_by_a_killed_pool_are_removed(self, database):
        import socket
        folder = os.path.dirname(autocron._open_store(database).wake_path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        stale, live = (os.path.join(folder, f"{name}-{os.getpid()}.wake")
                       for name in ("stale", "live"))
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as dead:
            dead.bind(stale)                       # closed without unlinking, as by kill -9
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as running:
            running.bind(live)
            try:
                assert autocron.start(database) is True
                own = autocron._state.store.wake_path     # bound after the stale ones go
                wait_until(lambda: not os.path.exists(stale) and os.path.exists(own),
                           what="the stale socket to go and the pool's to come")
                assert os.path.exists(live)
                assert add(1, 2).get(timeout=30) == 3
            finally:
                os.unlink(live)

    # -- the pool's interpreters

    def test_a_module_in_the_working_folder_cannot_replace_the_standard_library(self, tmp_path):
        shared = tmp_path / "shared"
        shared.mkdir()
        marker = tmp_path / "calendar-was-replaced"
        (shared / "calendar.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                            "raise ImportError('a hostile calendar')\n")
        app = tmp_path / "app"
        app.mkdir()
        (app / "jobs.py").write_text("import autocron\n\n@autocron.delay\n"
                                     "def triple(x):\n    return 3 * x\n")
        (app / "main.py").write_text(textwrap.dedent("""
            import sys, autocron, jobs
            autocron.start(sys.argv[1], workers=1)
            print(jobs.triple(14).get(timeout=30))
            autocron.stop()
        """))
        out = subprocess.run([sys.executable, str(app / "main.py"), str(tmp_path / "a.db")],
                             capture_output=True, text=True, timeout=120, cwd=shared,
                             env=dict(os.environ, PYTHONPATH=HERE))
        assert out.stdout == "42\n", out.stderr
        assert not marker.exists()

    def test_a_server_binary_as_sys_executable_still_starts_python(self, tmp_path):
        out = self.python("""
            import sys, autocron, test_autocron
            sys.executable = "/bin/true"           # what uWSGI and mod_wsgi leave there
            autocron.start(sys.argv[1], workers=1)
            print(test_autocron.add(20, 22).get(timeout=30))
            autocron.stop()
        """, tmp_path / "a.db")
        assert out.stdout == "42\n", out.stderr

    def test_autocron_python_names_the_interpreter_when_none_can_be_found(
            self, database, tmp_path, monkeypatch):
        python = os.path.realpath(sys.executable)
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        monkeypatch.setattr(sys, "executable", "/usr/sbin/uwsgi")
        monkeypatch.setattr(sys, "_base_executable", "/usr/sbin/uwsgi", raising=False)
        monkeypatch.setattr(sys, "exec_prefix", str(tmp_path))
        monkeypatch.setattr(sys, "base_exec_prefix", str(tmp_path))
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("AUTOCRON_PYTHON", raising=False)
        with pytest.raises(autocron.AutocronError) as caught:
            autocron.start(database)
        assert str(caught.value) == (
            "cannot find the Python interpreter for the pool's processes: sys.executable is "
            f"/usr/sbin/uwsgi (a server such as uWSGI or mod_wsgi?) and there is no {version} "
            f"in {tmp_path}/bin or on PATH; set the environment variable AUTOCRON_PYTHON to "
            f"this Python's interpreter ({version})")
        assert not is_active()
        monkeypatch.setenv("AUTOCRON_PYTHON", str(tmp_path / "nothing"))
        with pytest.raises(autocron.AutocronError) as caught:
            autocron.start(database)
        assert str(caught.value) == (f"AUTOCRON_PYTHON is {tmp_path / 'nothing'}, which is not "
                                     "an executable file; set it to this Python's interpreter "
                                     f"({version})")
        monkeypatch.setenv("AUTOCRON_PYTHON", python)
        assert autocron.start(database) is True
        assert add(1, 2).get(timeout=30) == 3

    # -- one pool per file

    @pytest.mark.sqlite_only      # a file's path
    def test_a_symlinked_path_shares_the_pool_of_the_real_file(self, pool, tmp_path):
        link = tmp_path / "link.db"
        link.symlink_to(pool)
        assert autocron._SqliteStore(link).path == autocron._state.store.path == str(pool)
        running = block(tmp_path)
        pid = int(wait_until(lambda: (tmp_path / "task.pid").exists() and
                             (tmp_path / "task.pid").read_text(), what="the task to start"))
        out = self.python("""
            import sys, autocron, test_autocron
            started = autocron.start(sys.argv[1])
            if started:     # a second pool: let its manager recover before looking
                test_autocron.wait_until(lambda: autocron._state.store.pool_pids()[1] ==
                                         autocron._state.pool.manager.pid)
                test_autocron.settle()
            print(started)
            autocron.stop()
        """, link)
        assert out.stdout == "False\n", out.stderr
        assert running.status == "running"
        (tmp_path / "task.go").touch()
        assert running.get(timeout=30) == pid
        assert running.attempts == 1

    @pytest.mark.sqlite_only      # a file's names
    def test_a_hard_linked_database_is_refused_and_the_running_pool_goes_on(self, pool,
                                                                            tmp_path):
        # SQLite keeps a write-ahead log beside each name: a process on a second name of the
        # file would write into a log that the pool never reads (and a second pool would
        # run there); so a file with two names is refused before anything is opened.
        running = block(tmp_path)
        pid = int(wait_until(lambda: (tmp_path / "task.pid").exists() and
                             (tmp_path / "task.pid").read_text(), what="the task to start"))
        link = tmp_path / "link.db"
        os.link(pool, link)
        refused = (f"{link} has 2 names (hard links); SQLite keeps a write-ahead log beside "
                   "each name, so processes that open the file by different names lose calls "
                   "and corrupt it. Keep one name (find the others with: find / "
                   f"-samefile {link}), or give autocron a copy of the file")
        for name in (link, pool):
            out = self.python("""
                import sys, autocron
                try:
                    print(autocron.start(sys.argv[1]))
                except autocron.DatabaseError as error:
                    print(error)
                autocron.stop()
            """, name)
            assert out.stdout == refused.replace(str(link), str(name)) + "\n", out.stderr
        assert sorted(p.name for p in tmp_path.glob("link.db*")) == ["link.db"]
        assert running.status == "running"
        (tmp_path / "task.go").touch()
        assert running.get(timeout=30) == pid
        assert running.attempts == 1
        link.unlink()
        assert self.python("""
            import sys, autocron
            print(autocron.start(sys.argv[1]))
            autocron.stop()
        """, pool).stdout == "False\n"

    # -- start(): all or nothing

    def test_a_start_that_fails_leaves_autocron_inactive(self, database, monkeypatch):
        spawn = autocron._spawn

        def no_processes(*args, **kwargs):
            raise OSError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(autocron, "_spawn", no_processes)
        with pytest.raises(OSError, match="Resource temporarily unavailable"):
            autocron.start(database)
        assert (autocron._state.store, autocron._state.pool) == (None, None)
        monkeypatch.setattr(autocron, "_spawn", spawn)

        def refuse(*args, **kwargs):
            raise autocron.DatabaseError("no cron jobs today")

        name = "test_autocron.cron_job"
        autocron.cron("@daily")(cron_job)
        try:
            monkeypatch.setattr(type(autocron._open_store(database)), "register_cron", refuse)
            with pytest.raises(autocron.DatabaseError, match="no cron jobs today"):
                autocron.start(database)
            assert (autocron._state.store, autocron._state.pool) == (None, None)
        finally:
            forget_cron(name)
        monkeypatch.undo()
        assert autocron.start(database) is True
        assert add(1, 2).get(timeout=30) == 3

    def test_a_cron_rule_that_never_fires_in_its_zone_is_refused_when_decorated(
            self, monkeypatch):
        message = ("'* 2 * 3 0L' never fires in {}: every time it matches falls into the gap "
                   "when the clocks skip ahead for daylight saving time; give a fixed minute "
                   "and hour (a job due in the gap runs right after it) or choose another time")
        with pytest.raises(CronError) as caught:
            autocron.cron("* 2 * 3 0L", tz="Europe/Berlin")
        assert str(caught.value) == message.format("Europe/Berlin")
        monkeypatch.setattr(autocron, "_LOCAL_ZONE", ZoneInfo("Europe/Berlin"))
        with pytest.raises(CronError) as caught:
            autocron.cron("* 2 * 3 0L")        # the machine's own zone has the same gap
        assert str(caught.value) == message.format("the local time zone (Europe/Berlin)")
        assert autocron.cron("30 2 * 3 0L")(cron_job) is cron_job   # runs right after the gap
        forget_cron("test_autocron.cron_job")
        monkeypatch.setattr(autocron, "_LOCAL_ZONE", None)            # naive local time
        assert autocron.cron("* 2 * 3 0L")(cron_job) is cron_job
        forget_cron("test_autocron.cron_job")

    # -- reading without writing

    def test_reading_commands_leave_a_foreign_database_untouched(self, tmp_path):
        path = tmp_path / "app.db"
        foreign_database(path)
        before = path.read_bytes()
        for command in ("info", "tasks", "results"):
            out = cli(command, db=path)
            assert (out.returncode, out.stderr) == (
                1, f"autocron: {path} is not an autocron database; pass --db PATH\n")
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["app.db"]
        with contextlib.closing(sqlite3.connect(path)) as con:
            assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    def test_reading_commands_leave_no_files_beside_an_idle_database(self, tmp_path):
        path = tmp_path / "autocron.db"
        store = autocron._SqliteStore(path)
        store.add_task("test_autocron.add", "1, 2", b"record", 0.0)
        store.close()
        listing, before = sorted(os.listdir(tmp_path)), path.read_bytes()
        for command in (["info"], ["tasks"], ["results"], ["--json", "info"]):
            out = cli(*command[-1:], *command[:-1], db=path)
            assert out.returncode == 0, out.stderr
        assert sorted(os.listdir(tmp_path)) == listing == ["autocron.db"]
        assert path.read_bytes() == before

    def test_refuses_an_sqlite_without_upsert(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 22, 0))
        monkeypatch.setattr(sqlite3, "sqlite_version", "3.22.0")
        path = tmp_path / "autocron.db"
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(path)
        assert str(caught.value) == (
            f"{path}: autocron needs SQLite 3.24 or newer, and this Python uses SQLite 3.22.0; "
            "upgrade SQLite, or use a Python built with a newer one")
        assert not path.exists() and not is_active()


# ---- the PostgreSQL store ----------------------------------------------------------------------


@pytest.fixture
def pg(postgres_server):
    """The session's server, with a fresh schema name for the test (dropped afterwards)."""
    schema = f"store_{os.getpid()}_{next(_schemas)}"
    postgres_server.schema = schema
    yield postgres_server
    autocron.stop(timeout=5)
    close_postgres_connections()
    with postgres_server.connect(postgres_server.database, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pg_url(server, schema=None, **parts):
    """A URL of the session's server: its database and the test's schema, with parts
    (user, password, port, dbname) replaced."""
    user, password = parts.get("user", server.user), parts.get("password", server.password)
    secret = f":{quote(password, safe='')}" if password else ""
    return (f"postgresql://{user}{secret}@{server.host}:{parts.get('port', server.port)}/"
            f"{parts.get('dbname', server.database)}?schema={schema or server.schema}")


def pg_run(server, sql):
    """One statement as the server's superuser, in the tests' database."""
    with server.connect(server.database, autocommit=True) as con:
        con.execute(sql)


class TestPostgresStore:
    """A postgresql:// URL: the same store on a server, with errors that say what to do."""

    def test_an_open_transaction_of_the_application_does_not_stall_the_pool(self, pg):
        # a call stored in the application's own transaction whose dependency failed ends
        # at once; counting that end holds no counter that a pool must wait for
        assert autocron.start(pg_url(pg), workers=1) is True
        failed = fail("early")
        with pytest.raises(autocron.TaskError):
            failed.get(timeout=30)
        with pg.connect(pg.database) as con:              # the application's own connection
            orphan = fail.options(connection=con)(failed)  # ends at once: DependencyFailed
            again, unrelated = fail("later"), add(1, 2)    # the transaction is still open
            try:
                assert unrelated.get(timeout=30) == 3
                with pytest.raises(autocron.TaskError):
                    again.get(timeout=30)
            finally:
                con.commit()
        assert orphan.status == "error"
        # the rows of the writers that are done (the application's) are folded by the pool
        wait_until(lambda: query(pg_url(pg), "SELECT count(*) FROM metrics WHERE adder <> '' "
                                             "AND adder NOT IN (SELECT name || '#' || lease "
                                             "FROM machines)") == [(0,)], 60,
                   "the pool to fold the application's counts")
        counted = {row[:2]: row[2] for row in query(pg_url(pg), (
            "SELECT function, label, sum(n) FROM metrics WHERE kind = 'ended' GROUP BY 1, 2"))}
        assert counted[("test_autocron.fail", "error")] == 3

    def test_psycopg_is_imported_only_for_a_postgresql_url(self, tmp_path):
        done = run_python("""
            import sys, autocron
            autocron.start(sys.argv[1], workers=1)
            print(autocron.get_results(), "psycopg" in sys.modules)
            autocron.stop()
        """, tmp_path / "a.db")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == "False"

    def test_without_psycopg_the_error_says_what_to_install(self, pg, monkeypatch):
        monkeypatch.setitem(sys.modules, "psycopg", None)      # import psycopg fails
        with pytest.raises(autocron.DatabaseError,
                           match=re.escape('needs psycopg 3, which is not installed: pip '
                                           'install "psycopg[binary]" (the package index\'s '
                                           '"autocron" is another project)')):
            autocron.start(pg_url(pg))
        assert not is_active()

    def test_the_newest_server_binaries_are_found_off_the_path(self, tmp_path, monkeypatch):
        for version in ("9.6", "15", "13"):          # as Debian keeps them: not on PATH
            folder = tmp_path / version / "bin"
            folder.mkdir(parents=True)
            for name in ("initdb", "pg_ctl"):
                (folder / name).write_text("#!/bin/sh\n")
                os.chmod(folder / name, 0o755)
        monkeypatch.setattr(sys.modules["conftest"], "PG_LIB_GLOB", str(tmp_path / "*" / "bin"))
        monkeypatch.setattr(shutil, "which", lambda name: None)
        newest = tmp_path / "15" / "bin"
        assert pg_binaries() == (str(newest / "initdb"), str(newest / "pg_ctl"))

    def test_a_start_whose_answer_was_lost_is_taken_when_tried_again(self, pg):
        # The server commits a worker's start and the connection breaks before the answer
        # comes back (chaos seed 993909): the worker tries again with the same start time,
        # and that start is its own, not one refused (refused, the pool would forget the
        # task and it would stay "running" under a live lease forever).
        store = autocron._open_store(pg_url(pg))
        store.add_task("f", "()", b"", 0.0)
        with store.transaction() as con:
            store.take_lease(con, os.getpid())
            (task,) = store.claim(con, store.now(), [1])
        at = store.now()
        assert store.start_now(task.id, store.lease, at) is True      # committed, unanswered
        assert store.start_now(task.id, store.lease, at) is True      # the same start
        assert store.start_now(task.id, store.lease, at + 1) is False  # another one
        assert query(pg_url(pg), "SELECT status, attempts, started FROM tasks") == [
            ("running", 1, at)]

    def test_a_claim_alone_commits_by_itself_and_leaves_limits_to_a_transaction(self, pg,
                                                                                tmp_path):
        # A round of the pool that only claims is one statement (a round trip, where a
        # transaction costs three); a limited queue is claimed in a transaction, under the
        # limits' locks, and an async call needs places sorted (_claim_sorted).
        store = autocron._open_store(pg_url(pg))
        first = store.add_task("f", "()", b"", 0.0)
        with store.transaction() as con:
            store.take_lease(con, os.getpid())
        (task,) = store.claim_alone(store.now(), [7], None, "")
        assert task.uuid == first
        assert query(pg_url(pg), "SELECT status, worker, lease FROM tasks") == [
            ("queued", 7, store.lease)]              # committed: another connection sees it
        second = store.add_task("f", "()", b"", 0.0)
        store.set_limit("default", {"concurrency": 5})
        assert store.claim_alone(store.now(), [8], None, "") is None
        store._limited_seen -= autocron._SETTINGS_LOOK
        with store.transaction() as con:             # the same in the pool's transaction
            claim = store.claim_later(con, store.now(), [8], None, "")
        assert claim is not None and claim() is None
        assert query(pg_url(pg), "SELECT status FROM tasks ORDER BY id") == [
            ("queued",), ("waiting",)]               # nothing taken
        with store.transaction() as con:
            assert store.claim_later(con, store.now(), [8], None, "") is None
        store.set_limit("default", {"concurrency": None})
        # not tried again for a moment: with limits, each try would cost a round trip
        assert store.claim_alone(store.now(), [8], None, "") is None
        assert store.claim_alone(store.now(), [8], None, autocron._ROOM) is None
        with store.transaction() as con:
            (task,) = store.claim(con, store.now(), [8])
        assert task.uuid == second
        store._limited_seen -= autocron._SETTINGS_LOOK                 # a moment later
        assert store.claim_alone(store.now(), [9], None, "") == [] and store.drained
        sqlite = autocron._SqliteStore(tmp_path / "a.db")      # its transactions are local
        sqlite.add_task("f", "()", b"", 0.0)
        assert sqlite.claim_alone(sqlite.now(), [1], None, "") is None

    def test_a_round_that_ends_a_call_and_claims_the_next_costs_two_round_trips(self, pg,
                                                                              tcp_proxy):
        # The pool's round on an idle machine: the outcome written (its call's row read for
        # the metrics, the calls that wait on it read), the finished row read for its caller,
        # the next call claimed, all committed. The answers to reads come with a later
        # statement's; counted at a TCP proxy in front of the server.
        autocron._open_store(pg_url(pg)).close()              # the schema, made directly
        proxy = tcp_proxy((pg.host, pg.port))
        store = autocron._open_store(pg_url(pg, port=proxy.port))
        store.add_task("f", "()", b"", 0.0)
        second = store.add_task("f", "()", b"", 0.0)
        with store.transaction() as con:
            store.take_lease(con, os.getpid())
        (task,) = store.claim_alone(store.now(), [7], None, "")
        assert store.start_now(task.id, store.lease, store.now())
        now, before = store.now(), proxy.turns
        with store.transaction() as con:
            autocron._write_outcomes(store, con, [autocron._Outcome(
                task.id, "ready", value=b"v", started=now, finished=now)], now)
            rows = store.finished_rows(con, [task.id])
            claim = store.claim_later(con, now, [7], None, "")
        assert proxy.turns - before == 2
        assert [(row.status, row.value) for row in rows()] == [("ready", b"v")]
        (claimed,) = claim()
        assert claimed.uuid == second and proxy.turns - before == 2
        assert query(pg_url(pg), "SELECT status FROM tasks ORDER BY id") == [
            ("ready",), ("queued",)]
        assert query(pg_url(pg), "SELECT kind, sum(n) FROM metrics GROUP BY kind "
                                 "ORDER BY kind") == [("ended", 1), ("run", 1), ("wait", 1)]
        # the pool, then idle, asks when the next call is due: one read finds that no
        # queue is limited too
        before = proxy.turns
        assert store.next_due() is None and proxy.turns - before == 1

    def test_map_s_copy_stores_every_column_as_a_single_call_stores_it(self, pg):
        # map()'s calls go in as COPY's text, written by autocron: every character class
        # of text and every byte of a record, odd numbers and no value at all, read back
        # as the one-call INSERT stores them
        store = autocron._open_store(pg_url(pg))
        args = ["", "plain", "tab\there", "new\nline", "cr\rhere", "back\\slash", "\\N",
                "\\x00", "ünïcødé ☃ 𝄞", "quote ' \" end", "\\\t\n\r\\", "trailing\\"]
        records = [bytes(range(256)), b"", b"\\", b"\t\n\r", b"\x00" * 3]
        calls = [autocron._NewCall(text, records[i % len(records)])
                 for i, text in enumerate(args)]
        shipped = autocron._Shipped(None, "h\\a\tsh", b"payload")
        for options, digest in [
                (autocron._Options(), None),
                (autocron._Options(retries=3, retry_delay=1e-7, backoff=1.1, timeout=1e300,
                                   priority=-5, queue="q\\ ueue\u00e9", asynchronous=True),
                 shipped),
                (autocron._Options(retry_delay=float("inf"), timeout=123456789.0123,
                                   priority=2 ** 31 - 1), None)]:
            many = store.add_tasks("mod.f\\n", iter(calls), 1700000000.123456789, options,
                                   digest)
            one = [store.add_task("mod.f\\n", call.args, call.record, 1700000000.123456789,
                                  options, digest) for call in calls]
            columns = ("args, record, function, name, status, priority, queue, asynchronous, "
                       "retries, retry_delay, backoff, timeout, due")
            assert [store.read(f"SELECT {columns} FROM tasks WHERE id = ?",
                               (int(uid.rsplit("-", 1)[1]),))
                    for uid in many] == [store.read(f"SELECT {columns} FROM tasks WHERE id = ?",
                                                    (int(uid.rsplit("-", 1)[1]),))
                                         for uid in one]
            stored = store.read("SELECT args, record FROM tasks WHERE id = ?",
                                (int(many[0].rsplit("-", 1)[1]),))
            assert stored == [("", bytes(range(256)))]
        assert [row for row, in store.read("SELECT args FROM tasks ORDER BY id")][:len(args)] \
            == args

    def test_the_schema_is_made_on_first_use_beside_the_applications_tables(self, pg):
        pg_run(pg, "CREATE TABLE IF NOT EXISTS public.app_users (name TEXT)")
        assert autocron.start(pg_url(pg), workers=1) is True
        assert add(2, 3).get(timeout=30) == 5
        tables = query(pg_url(pg), "SELECT tablename FROM pg_tables WHERE schemaname = ?",
                       (pg.schema,))
        assert sorted(t for t, in tables) == ["crons", "deps", "functions", "limits",
                                              "machines", "meta", "metrics", "settings",
                                              "starts", "steps", "tasks"]
        assert query(pg_url(pg), "SELECT version FROM meta") == [(4,)]
        assert query(pg_url(pg), "SELECT count(*) FROM public.app_users") == [(0,)]
        autocron.stop()
        other = pg_url(pg, schema=pg.schema + "_b")
        try:
            autocron.start(other, workers=1)
            assert autocron.get_results() == []      # another schema, other tasks
        finally:
            autocron.stop()
            pg_run(pg, f"DROP SCHEMA IF EXISTS {pg.schema}_b CASCADE")

    @pytest.mark.parametrize("url, message", [
        ("postgresql://u@h:port/db", "cannot read the database URL (Port could not be cast to "
         "integer value as 'port'); write it as postgresql://user[:password]@host[:port]/"
         "database[?schema=name]"),
        ("postgresql://u@h/db?schema=Jobs-2", "schema='Jobs-2' in the database URL is not a "
         "plain SQL name; use lower-case letters, digits and _ (at most 47), such as "
         "?schema=autocron or ?schema=jobs_2"),
    ])
    def test_a_malformed_url_says_how_to_write_it(self, url, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            autocron.start(url)
        assert not is_active()

    def test_a_schema_name_too_long_for_its_channels_is_refused_before_anything_is_made(
            self, pg):
        # the pools LISTEN on "autocron.<schema>.cancel", which PostgreSQL would cut at 63
        # bytes: 63 - len("autocron.") - len(".cancel") = 47 characters fit
        longest, too_long = "s" * 46 + "x", "s" * 47 + "x"

        def schemas():
            with pg.connect(pg.database) as con:
                return [name for name, in con.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sss%'").fetchall()]
        with pytest.raises(ValueError) as caught:
            autocron.start(pg_url(pg, schema=too_long), workers=1)
        assert str(caught.value) == (
            f"schema='{too_long}' in the database URL is 48 characters long; PostgreSQL cuts "
            "names at 63 bytes, and the pools' channel autocron.<schema>.cancel must fit, so "
            "use at most 47, such as ?schema=autocron or ?schema=jobs_2")
        assert not is_active()
        assert schemas() == []
        try:
            assert autocron.start(pg_url(pg, schema=longest), workers=1) is True
            assert add(2, 3).get(timeout=30) == 5
            assert schemas() == [longest]
        finally:
            autocron.stop()
            close_postgres_connections()
            pg_run(pg, f"DROP SCHEMA IF EXISTS {longest} CASCADE")

    def test_an_unreachable_server_is_named_within_seconds(self, pg):
        started = time.monotonic()
        with pytest.raises(autocron.DatabaseError,
                           match="cannot reach the PostgreSQL server; is it running, and are "
                                 "the host and port in the URL right?"):
            autocron.start(pg_url(pg, port=free_tcp_port()))
        assert time.monotonic() - started < 10
        assert not is_active()

    def test_wrong_credentials_are_named_and_the_password_never_shown(self, pg):
        url = pg_url(pg, password="not-the-Secret-1")
        with pytest.raises(autocron.DatabaseError) as caught:
            autocron.start(url)
        text = str(caught.value)
        assert "the server refused the user name or password; check them in the URL, " \
               "PGPASSWORD or ~/.pgpass" in text
        assert "not-the-Secret-1" not in text and f"{pg.user}:***@" in text

    def test_a_missing_database_says_to_create_it(self, pg):
        with pytest.raises(autocron.DatabaseError,
                           match=re.escape("the database does not exist; create it (createdb) "
                                           "or fix its name in the URL")):
            autocron.start(pg_url(pg, dbname="no_such_database"))

    def test_a_role_without_rights_is_told_which_schema(self, pg):
        role = f"limited_{os.getpid()}"
        pg_run(pg, f"CREATE ROLE {role} LOGIN PASSWORD 'limited-pw'")
        try:
            with pytest.raises(autocron.DatabaseError,
                               match=f"this user may not use the schema {pg.schema}; grant it, "
                                     "or choose another with \\?schema="):
                autocron.start(pg_url(pg, user=role, password="limited-pw"))
        finally:
            close_postgres_connections()
            pg_run(pg, f"DROP ROLE {role}")

    def test_a_schema_of_another_role_is_refused(self, pg):
        role = f"other_{os.getpid()}"
        pg_run(pg, f"CREATE ROLE {role}")
        pg_run(pg, f"CREATE SCHEMA {pg.schema} AUTHORIZATION {role}")
        try:
            with pytest.raises(autocron.DatabaseError, match=re.escape(
                    f"the schema {pg.schema} belongs to the role {role}, not to {pg.user}; "
                    "whoever can write it can make the workers run code, so use a schema of "
                    "your own (?schema=name in the URL)")):
                autocron.start(pg_url(pg))
        finally:
            pg_run(pg, f"DROP SCHEMA {pg.schema} CASCADE")
            pg_run(pg, f"DROP ROLE {role}")

    def test_a_call_stored_in_the_caller_s_transaction_commits_or_rolls_back_with_it(
            self, pg):
        assert autocron.start(pg_url(pg), workers=1) is True
        with pg.connect(pg.database) as con:              # the application's own connection
            con.execute("CREATE TEMP TABLE orders (id int)")
            con.execute("INSERT INTO orders VALUES (1)")
            mail = add.options(connection=con)(2, 3)
            assert mail.status == "waiting" and repr(mail).startswith("<Result ")
            with pytest.raises(RuntimeError, match="is stored in your open transaction"):
                mail.get(timeout=1)
            assert query(pg_url(pg), "SELECT count(*) FROM tasks") == [(0,)]   # unseen
            con.commit()                                      # the order and its mail
            assert mail.get(timeout=30) == 5
            dropped = add.options(connection=con)(1, 1)
            con.rollback()                                    # neither
            assert dropped.status == "cancelled"
            with pytest.raises(autocron.Cancelled, match="^its transaction rolled back$"):
                dropped.get(timeout=5)
            shipped = autocron.delay(lambda n: n * 2).options(connection=con)(21)
            con.commit()                                      # a function shipped by value
            assert shipped.get(timeout=30) == 42

    def test_a_map_stored_in_the_caller_s_transaction_commits_or_rolls_back_with_it(
            self, pg):
        assert autocron.start(pg_url(pg), workers=1) is True
        with pg.connect(pg.database) as con:
            mails = add.options(connection=con).map([1, 2], [10, 20])
            assert query(pg_url(pg), "SELECT count(*) FROM tasks") == [(0,)]   # unseen
            con.rollback()
            assert [r.status for r in mails] == ["cancelled", "cancelled"]
            mails = add.options(connection=con).map([1, 2], [10, 20])
            con.commit()
            assert [r.get(timeout=30) for r in mails] == [11, 22]

    def test_a_psycopg2_connection_is_not_one_autocron_stores_through(self, pg):
        import psycopg2
        store = autocron._open_store(pg_url(pg))
        con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user,
                               password=pg.password, dbname=pg.database)
        try:
            # Django's atomic() on psycopg2: the call is stored on autocron's own
            # connection, which the caller's transaction does not hold back
            assert store.reached_by(con) is False
        finally:
            con.close()
            store.close()

    def test_a_transaction_of_another_database_or_schema_is_refused(self, pg):
        assert autocron.start(pg_url(pg), workers=1) is True
        other = pg.create_database()
        try:
            with pg.connect(other) as con:
                with pytest.raises(ValueError, match=re.escape(
                        f"connection= must be a connection to autocron's database "
                        f"({autocron._state.store.path}); this one reaches the database "
                        f"{other} on the server at port {pg.port}")):
                    add.options(connection=con)(1, 1)
        finally:
            pg.drop_database(other)
        with pytest.raises(TypeError, match="connection must be an open psycopg 3 connection"):
            add.options(connection="postgresql://elsewhere")

    def test_a_schema_with_other_tables_is_refused(self, pg):
        pg_run(pg, f"CREATE SCHEMA {pg.schema}")
        pg_run(pg, f"CREATE TABLE {pg.schema}.users (name TEXT)")
        with pytest.raises(autocron.DatabaseError, match=re.escape(
                f"the schema {pg.schema} has tables that are not autocron's (users); choose "
                "another with ?schema=name")):
            autocron.start(pg_url(pg))

    def test_a_schema_2_is_upgraded_to_know_pools_by_their_lease(self, pg):
        # Schema 2 knew a machine's pool by the machine's name: two pools of one name took
        # each other's leases. The first writer makes the lease the key.
        autocron._open_store(pg_url(pg)).close()
        pg_run(pg, f"ALTER TABLE {pg.schema}.machines DROP CONSTRAINT machines_pkey; "
                   f"ALTER TABLE {pg.schema}.machines ADD PRIMARY KEY (name); "
                   f"ALTER TABLE {pg.schema}.tasks DROP COLUMN errors; "
                   f"UPDATE {pg.schema}.meta SET version = 2")
        assert autocron.start(pg_url(pg), workers=1) is True
        assert add(1, 1).get(timeout=30) == 2
        assert query(pg_url(pg), "SELECT version FROM meta") == [(4,)]
        assert query(pg_url(pg), "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                     "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary "
                     "AND i.indrelid = ?::regclass", (f"{pg.schema}.machines",)) == [("lease",)]

    def test_a_schema_of_a_newer_autocron_is_refused(self, pg):
        autocron._open_store(pg_url(pg)).close()
        pg_run(pg, f"UPDATE {pg.schema}.meta SET version = 99")
        with pytest.raises(autocron.DatabaseError, match=re.escape(
                "was written by a newer autocron (schema 99, this one knows 4); upgrade "
                "autocron or choose another schema")):
            autocron.start(pg_url(pg))
        done = run_python("import sys, autocron; sys.exit(autocron._main(['--db', sys.argv[1], 'info']))",
                          pg_url(pg))
        assert "(schema 99, this one knows 4); upgrade autocron" in done.stderr

    def test_reading_commands_never_make_a_schema(self, pg):
        done = run_python("import sys, autocron; sys.exit(autocron._main(['--db', sys.argv[1], 'info']))",
                          pg_url(pg))
        assert done.returncode == 2
        assert f"no autocron schema {pg.schema} in " in done.stderr
        assert "pass --db URL with the right ?schema= (start() creates one; reading " \
               "commands never do)" in done.stderr
        with pg.connect(pg.database) as con:
            assert con.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                               (pg.schema,)).fetchall() == [(0,)]

    def test_a_call_too_large_for_the_server_is_refused_whole(self, pg, monkeypatch):
        autocron.start(pg_url(pg), workers=1)
        monkeypatch.setattr(autocron, "_PG_LARGEST_VALUE", 1000)
        message = re.escape("the call takes ") + "[0-9,]+" + re.escape(
            " bytes, more than the 1,000 that PostgreSQL can hand back; pass or return less "
            "(write it to a file, pass its name)")
        with pytest.raises(autocron.DatabaseError, match=message):
            add("x" * 2000, "y")
        with pytest.raises(autocron.DatabaseError, match="a call takes "):
            add.map(["x", "x" * 2000], ["y", "y"])
        assert autocron.get_results() == []

    def test_any_other_server_error_is_shown_with_its_message(self, pg):
        store = autocron._open_store(pg_url(pg))
        with pytest.raises(autocron.DatabaseError,
                           match="see the PostgreSQL message \\(psycopg: division by zero\\)"):
            store.read("SELECT 1 / 0")

    def test_the_password_appears_in_no_message_command_line_or_environment(self, pg, caplog):
        caplog.set_level(logging.DEBUG, logger="autocron")
        url = pg_url(pg)
        assert autocron.start(url, workers=1) is True
        pids = wait_until(lambda: len(worker_pids()) == 1 and pool_pids(), what="a worker")
        assert environment_of_a_task("_AUTOCRON_URL").get(timeout=30) is None
        for pid in [pids[0]] + pids[1]:
            assert pg.password not in cmdline(pid) and f"{pg.user}:***@" in cmdline(pid)
        info = run_python("import sys, autocron; autocron._main(['--db', sys.argv[1], "
                          "'info'])", url)
        assert info.returncode == 0, info.stderr
        assert f"{pg.user}:***@" in info.stdout and pg.password not in info.stdout
        autocron.stop()
        assert caplog.records and all(pg.password not in r.getMessage() for r in caplog.records)
        assert autocron._open_store(url).path == url.replace(pg.password, "***")

    def test_normal_commits_do_not_wait_for_the_disk_and_full_ones_do(self, pg):
        def level(url):
            return autocron._open_store(url).read("SHOW synchronous_commit")[0][0]
        url = pg_url(pg)
        assert level(url) == "off"
        assert autocron.start(url, workers=1, synchronous="full") is True
        assert level(url) == "on"
        assert run_python("import sys, autocron; print(autocron._open_store(sys.argv[1])"
                          ".read('SHOW synchronous_commit')[0][0])", url).stdout.strip() == "on"
        assert autocron.start(url, synchronous="normal") is False
        assert level(url) == "off"

    def test_the_admin_tool_reads_and_steers_a_server_database(self, pg):
        url = pg_url(pg)
        assert autocron.start(url, workers=1) is True
        assert [add(i, i).get(timeout=30) for i in range(3)] == [0, 2, 4]
        later = add.map([1], [1])[0]
        assert later.get(timeout=30) == 2
        results = json.loads(cli("results", "--json", db=url).stdout)
        assert len(results) == 4 and {r["status"] for r in results} == {"ready"}
        assert json.loads(cli("tasks", "--json", db=url).stdout) == []
        assert cli("set", "workers", "2", db=url).returncode == 0
        wait_until(lambda: len(worker_pids()) == 2, what="a second worker")
        purged = cli("purge", db=url)
        assert purged.returncode == 0 and "4" in purged.stdout, purged.stderr
        assert autocron.get_results() == []
        info = json.loads(cli("info", "--json", db=url).stdout)
        assert info["settings"]["workers"] == 2 and info["pool"]["running"]
        assert [m["name"] for m in info["machines"]] == [autocron._machine_name()]

    def test_libpqs_password_file_works_for_the_pool_too(self, pg, tmp_path, monkeypatch):
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"{pg.host}:{pg.port}:*:{pg.user}:{pg.password}\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        done = run_python("""
            import sys, autocron, test_autocron
            assert autocron.start(sys.argv[1], workers=1)
            print(test_autocron.add(20, 22).get(timeout=30))
            autocron.stop()
        """, pg_url(pg, password=""))
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == "42"


# ---- the pool ------------------------------------------------------------------------------


class TestBatch:
    """The pool's batch of what it has not written yet, without a process: a commit takes it
    all, and one that fails gives it back in front of what arrived meanwhile."""

    @staticmethod
    def reported(task_id):
        return autocron._Reported(autocron._Outcome(task_id, "ready"), f"t-{task_id}", None,
                                  task_id)

    def test_a_failed_commit_restores_everything_before_what_came_meanwhile(self):
        batch = autocron._Batch()
        batch.add_start(autocron._Started(1, 100.0), at=5.0)
        batch.outcomes.append(self.reported(2))
        batch.refused.append(3)
        taken = batch.take()
        assert batch.empty() and not taken.empty()
        batch.add_start(autocron._Started(4, 101.0), at=7.0)      # while the commit runs
        batch.outcomes.append(self.reported(5))
        batch.restore(taken)                                      # the commit failed
        assert [s.id for s in batch.started] == [1, 4]
        assert [r.outcome.id for r in batch.outcomes] == [2, 5]
        assert batch.refused == [3] and batch.started_since == 5.0
        assert batch.ids() == {1, 2, 3, 4, 5}
        assert batch.take().ids() == {1, 2, 3, 4, 5} and batch.empty()

    def test_starts_alone_wait_for_company_and_the_rest_is_written_at_once(self):
        batch = autocron._Batch()
        assert not batch.due(10.0)
        batch.add_start(autocron._Started(1, 100.0), at=10.0)
        batch.add_start(autocron._Started(2, 100.0), at=10.5)     # the oldest one counts
        assert not batch.due(10.0 + autocron._START_COMMIT_DELAY / 2)
        assert batch.due(10.0 + autocron._START_COMMIT_DELAY * 1.01)
        for add in (lambda b: b.outcomes.append(self.reported(3)),
                    lambda b: b.requeue.append(object()), lambda b: b.refused.append(4)):
            fresh = autocron._Batch()
            add(fresh)
            assert fresh.due(0.0) and not fresh.empty()


class TestStartLog:
    """Where an SQLite pool's workers note their starts before the tasks run, so that a run
    its pool never wrote (worker and manager both killed) is counted by the next pool."""

    @staticmethod
    def run(task_id, attempts=0, token="00000000000000ab"):
        return autocron._Run(task_id, b"", None, 0, uuid=f"{token}-{task_id}",
                             attempts=attempts)

    def test_notes_come_back_and_a_slot_s_entries_are_written_in_turn(self, tmp_path):
        log = autocron._StartLog(str(tmp_path / "x.lock"))
        try:
            log.reserve(2)
            assert log.starts() == []
            log.note(0, 1, self.run(7), 100.5)
            log.note(1, 1, self.run(8, 2, "ffffffffffffffff"), 101.0)
            log.note(0, 2, self.run(9, 1), 102.0)
            log.note(0, 1, self.run(10), 103.0)        # the first one's entry, used again
            assert sorted(log.starts()) == [
                (8, "ffffffffffffffff", 2, 101.0), (9, "00000000000000ab", 1, 102.0),
                (10, "00000000000000ab", 0, 103.0)]
            size = os.path.getsize(tmp_path / "x.lock")
            log.reserve(1)                                       # never smaller
            assert os.path.getsize(tmp_path / "x.lock") == size == \
                log.START + 2 * log.RING * log.ENTRY.size
        finally:
            log.close()

    def test_a_slot_or_all_of_it_is_forgotten_in_place(self, tmp_path):
        log = autocron._StartLog(str(tmp_path / "x.lock"))
        try:
            log.reserve(3)
            for slot in range(3):
                log.note(slot, 1, self.run(10 + slot), 1.0)
            log.clear(1)
            assert sorted(s.id for s in log.starts()) == [10, 12]
            log.clear()
            assert log.starts() == [] and os.path.getsize(tmp_path / "x.lock") == \
                log.START + 3 * log.RING * log.ENTRY.size
        finally:
            log.close()

    def test_tokens_do_not_follow_the_application_s_random_seed(self):
        # a database recreated or purged gets ids again from 1: their tokens tell its calls
        # from the earlier ones' (whose notes may be left in a start log)
        random.seed(7)
        first = [autocron._token() for _ in range(3)]
        random.seed(7)
        assert [autocron._token() for _ in range(3)] != first
        assert all(len(t) == 16 and int(t, 16) >= 0 for t in first)

    def test_a_full_disk_refuses_room_but_not_a_note_in_room_set_aside(self, small_disk):
        log = autocron._StartLog(small_disk.path("x.lock"))
        try:
            log.reserve(2)
            small_disk.fill()
            log.note(1, 5, self.run(3), 1.0)
            with pytest.raises(OSError):
                log.reserve(500)
            assert log.starts() == [(3, "00000000000000ab", 0, 1.0)]
        finally:
            log.close()
            small_disk.free()

    def test_only_a_start_nobody_wrote_counts(self, tmp_path):
        store = autocron._SqliteStore(tmp_path / "a.db")
        uids = [store.add_task("f", "()", b"", 0.0) for _ in range(4)]
        with store.transaction() as con:
            claimed = store.claim(con, 1.0, [11, 12, 13, 14])
        assert [c.attempts for c in claimed] == [0, 0, 0, 0]
        log = store.start_log()
        log.reserve(1)
        for number, task in enumerate(claimed[:3]):
            log.note(0, number, autocron._Run(task.id, b"", None, 0, uuid=task.uuid,
                                              attempts=task.attempts), 5.0 + number)
        log.note(0, 9, self.run(claimed[3].id), 9.0)          # another token: another call
        with store.transaction() as con:
            store.mark_started(con, [autocron._Started(claimed[1].id, 6.0)])   # written
            con.execute("UPDATE tasks SET status = 'waiting' WHERE id = ?", (claimed[2].id,))
            interrupted = store.recover(con)
        assert [task.id for task in interrupted] == [claimed[0].id, claimed[1].id]
        assert query(store.path, "SELECT status, attempts, started FROM tasks ORDER BY id") == [
            ("running", 1, 5.0), ("running", 1, 6.0), ("waiting", 0, None),
            ("waiting", 0, None)]
        with store.transaction() as con:                      # counted once, not again
            assert [t.id for t in store.recover(con)] == [claimed[0].id, claimed[1].id]
        assert query(store.path, "SELECT attempts FROM tasks ORDER BY id") == [
            (1,), (1,), (0,), (0,)]
        assert [uid.rpartition("-")[2] for uid in uids] == [str(c.id) for c in claimed]

    def test_a_worker_holding_a_ring_of_unwritten_outcomes_starts_nothing(self, tmp_path):
        database = str(tmp_path / "a.db")
        store = autocron._SqliteStore(database)
        store.add_task("f", "()", b"", 0.0)
        with store.transaction() as con:
            (task,) = store.claim(con, 1.0, [1])
        read_end, write_end = os.pipe()
        up = autocron._Pipe(write_end)
        state = autocron._WorkerState(database, up)
        state.slot = 0
        store.start_log().reserve(1)
        state.inbox.append(autocron._Run(task.id, b"", None, 0, uuid=task.uuid))
        state.sent = autocron._StartLog.RING
        state.unacknowledged = [(n + 1, None, n) for n in range(autocron._StartLog.RING)]
        state.free_entries = []
        with state.ready:
            assert state.take(False, []) is None and len(state.inbox) == 1
            state.acknowledged(1)                            # one entry is free again
            taken = state.take(False, [])
        assert taken.id == task.id and store.start_log().starts() == []
        state.note(taken)                                    # just before it runs
        assert [s.id for s in store.start_log().starts()] == [task.id]
        up.close()
        os.close(read_end)


def store_calls(store, *options):
    """Store a call for each _Options (all due now); their row ids."""
    return [autocron._row_key(store.add_task("f", "()", b"", autocron._clock(), option))[0]
            for option in options]


class TestDispatcher:
    """The pool's round driven in this process: fake workers (pipes, no process), a clock
    the test moves (conftest's Dispatcher)."""

    @staticmethod
    def ids(messages):
        return [m.id for m in messages if type(m) is autocron._Run]

    def test_higher_priority_first_and_each_worker_holds_its_depth(self, dispatcher):
        pool = dispatcher(workers=2)
        rows = store_calls(pool.store, *[autocron._Options(priority=p)
                                         for p in (0, 3, 1, 3, 2, 0, 5, 1, 0, 4)])
        pool.round()
        first, second = (self.ids(w.runs()) for w in pool.workers)
        depth = pool.pool._depth()
        assert len(first) == len(second) == depth          # 2 workers x depth, of 10
        # the claim hands them out in turn: idle workers first, then places behind
        handed = [task for pair in zip(first, second) for task in pair]
        priority = dict(zip(rows, (0, 3, 1, 3, 2, 0, 5, 1, 0, 4)))
        assert [priority[t] for t in handed] == sorted(priority.values(), reverse=True)[
            :2 * depth]
        waiting = query(pool.store.path, "SELECT count(*) FROM tasks WHERE status = 'waiting'")
        assert waiting == [(10 - 2 * depth,)]

    def test_spare_workers_stay_within_their_cap_also_with_retiring_ones(
            self, dispatcher, monkeypatch, caplog):
        monkeypatch.setattr(autocron, "_MAX_SPARES", 2)
        pool = dispatcher(workers=3)
        pool.store.set_setting("workers", 1)          # two retire; their tasks go on, and wait
        pool.pool._settings["workers"] = 1
        pool.pool._adjust_workers()
        retiring = [w for w in pool.pool._workers if w.retiring]
        assert len(retiring) == 2
        for worker in retiring:
            worker.say(autocron._Waiting(1))
        (active,) = [w for w in pool.pool._workers if not w.retiring]
        active.say(autocron._Waiting(1))
        with caplog.at_level(logging.WARNING, "autocron"):
            pool.round()
            pool.round()
        live = [w for w in pool.pool._workers if not w.closed]
        assert len(live) <= 1 + 2                     # the setting and the cap, no more
        assert "3 tasks wait for other calls, and the pool keeps at most 2 spare workers" in \
            caplog.text

    def test_a_call_that_outranks_one_only_held_takes_its_place(self, dispatcher):
        pool = dispatcher(workers=1)
        running, held = store_calls(pool.store, autocron._Options(), autocron._Options())
        pool.round()
        (worker,) = pool.workers
        assert self.ids(worker.runs()) == [running, held]
        worker.say(autocron._Started(running, autocron._clock()))
        pool.round()
        (urgent,) = store_calls(pool.store, autocron._Options(priority=5))
        pool.pool._announced = 5                 # as the wake-up datagram "!5" says
        pool.round()
        # held is asked back, and the new call goes behind it, to start in its place
        assert [(type(m), m.id) for m in worker.runs()] == [
            (autocron._Return, held), (autocron._Run, urgent)]
        worker.say(autocron._Returned(held))     # not started: given back
        pool.round()                             # written: it waits again
        pool.round()
        # in the database again, it comes back behind the call that outranked it
        assert self.ids(worker.runs()) == [held]
        assert [t.id for t in pool.pool._workers[0].queue] == [running, urgent, held]

    def test_a_task_past_its_timeout_is_killed_and_fails_with_the_reason(self, dispatcher):
        pool = dispatcher(workers=1)
        (task,) = store_calls(pool.store, autocron._Options(timeout=5))
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(task, autocron._clock()))
        pool.round()
        pool.later(4.9)
        assert worker.proc.returncode is None
        pool.later(0.2)
        assert worker.kill_reason == "timed out after 5 s" and worker.proc.returncode == -9
        pool.round()                             # buried: its task fails, another worker
        (row,) = query(pool.store.path, "SELECT status, attempts, error FROM tasks")
        assert row[:2] == ("error", 1)
        assert json.loads(row[2])["message"] == "timed out after 5 s"
        assert len(pool.workers) == 2 and pool.workers[1].proc.returncode is None

    def test_an_async_worker_takes_calls_up_to_async_concurrency_and_then_a_sync_one(
            self, dispatcher):
        pool = dispatcher(workers=1)
        pool.store.set_setting("async_concurrency", 3)
        pool.pool._settings = pool.store.settings()
        calls = store_calls(pool.store, *[autocron._Options(asynchronous=True)] * 5,
                            autocron._Options())
        pool.round()
        (worker,) = pool.workers
        assert [(m.id, m.asynchronous) for m in worker.runs() if type(m) is autocron._Run] \
            == [(calls[0], True)]
        worker.say(autocron._Started(calls[0], autocron._clock()))
        pool.round()        # room beside it for two more, and a place after them for the
        assert TestDispatcher.ids(worker.runs()) == calls[1:3] + [calls[5]]    # sync call
        worker.say(*[autocron._Started(task, autocron._clock()) for task in calls[1:3]])
        worker.say(autocron._Done(autocron._Outcome(calls[0], "ready", pickle.dumps(1))))
        pool.round()           # a call ended, but a sync call waits: no async one beside
        assert TestDispatcher.ids(worker.runs()) == []

    def test_starts_its_workers_committed_themselves_make_no_commit(self, dispatcher,
                                                                     monkeypatch):
        # PostgreSQL: a worker commits a start (start_now) before its task runs; the pool
        # that also batched it for a commit of its own (which changed no row) made a
        # transaction a task, 0.02 s after its start.
        pool = dispatcher(workers=1)
        monkeypatch.setattr(pool.store, "starts_committed", True, raising=False)
        (call,) = store_calls(pool.store, autocron._Options())
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(call, autocron._clock()))
        pool.round()
        assert pool.pool._batch.empty() and pool.pool._drained() is False
        assert pool.pool._batch.due(pool.now + 1.0) is False

    def test_a_waited_for_call_ends_with_its_row_sent_to_the_caller(self, dispatcher):
        # get() read the row again after the notice: a round trip to the server on
        # PostgreSQL. There the commit that ends it reads the rows of the calls waited for,
        # and the notice carries them (not a large value: the caller reads that itself).
        pool = dispatcher(workers=2)
        pool.store.remote = True                   # as PostgreSQL's: a read costs a round trip
        small, large = store_calls(pool.store, autocron._Options(), autocron._Options())
        pool.round()
        runs = {m.id: m for w in pool.workers for m in w.runs() if type(m) is autocron._Run}
        pool.pool._watched.update(run.uuid for run in runs.values())
        for worker in pool.workers:
            (task,) = [t.id for t in worker.queue]
            value = pickle.dumps(b"x" * (autocron._SHIP_MOST if task == large else 5))
            worker.say(autocron._Started(task, 5.0),
                       autocron._Done(autocron._Outcome(task, "ready", value, started=5.0,
                                                        finished=6.0)))
        pool.round()
        heard = bytearray(os.read(pool.notice_end, 1 << 20))
        (finished,) = [pickle.loads(m) for m in autocron._frames(heard)]
        assert sorted(finished.uids) == sorted(run.uuid for run in runs.values())
        assert finished.rows == (pool.store.result_row(runs[small].uuid),)
        assert finished.rows[0].status == "ready" and finished.rows[0].attempts == 1

    def test_calls_that_found_no_place_this_round_are_claimed_the_next(self, dispatcher):
        pool = dispatcher(workers=1)
        calls = store_calls(pool.store, *[autocron._Options(asynchronous=True)] * 3)
        pool.round()        # one to the idle worker; the others take no place behind it
        (worker,) = pool.workers
        assert TestDispatcher.ids(worker.runs()) == calls[:1]
        worker.say(autocron._Started(calls[0], autocron._clock()))
        pool.pool._ready = {worker.results}
        pool.pool._round()              # as the run loop makes it: the pool is not "dry"
        assert TestDispatcher.ids(worker.runs()) == calls[1:]

    def test_an_async_call_behind_a_flood_of_synchronous_ones_gets_a_place(self, dispatcher):
        pool = dispatcher(workers=1)
        flood = store_calls(pool.store, *[autocron._Options()] * 40)
        pool.round()
        (worker,) = pool.workers
        held = TestDispatcher.ids(worker.runs())
        worker.say(autocron._Started(held[0], autocron._clock()))
        (urgent,) = store_calls(pool.store, autocron._Options(asynchronous=True, priority=9))
        for _ in range(2):     # the first claim finds no place for it, the next offers one
            worker.say(autocron._Done(autocron._Outcome(held.pop(0), "ready", pickle.dumps(1)),
                                      autocron._Started(held[0], autocron._clock())))
            pool.round()
            held += TestDispatcher.ids(worker.runs())
        assert urgent in held and len(held) < len(flood)

    def test_an_async_call_past_its_timeout_is_cancelled_alone_then_its_worker_ended(
            self, dispatcher):
        pool = dispatcher(workers=1)
        timed, other = store_calls(pool.store, autocron._Options(timeout=5, asynchronous=True),
                                   autocron._Options(asynchronous=True))
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(timed, autocron._clock()))
        pool.round()
        worker.say(autocron._Started(other, autocron._clock()))
        pool.later(5.1)
        assert worker.runs()[-1] == autocron._CancelRun(timed, 0, "timed out after 5 s", True)
        assert worker.proc.returncode is None
        pool.later(4.8)
        assert worker.proc.returncode is None      # its coroutine may still end
        pool.later(0.3)
        assert worker.proc.returncode == -9 and "did not end 5 s after it was cancelled" in \
            worker.kill_reason
        pool.round()                              # buried: the blocker fails, the other waits
        rows = query(pool.store.path, "SELECT status, attempts, error FROM tasks ORDER BY id")
        assert [row[:2] for row in rows] == [("error", 1), ("waiting", 0)]
        assert json.loads(rows[0][2])["message"].startswith(
            "timed out after 5 s, and it did not end 5 s after it was cancelled")

    def test_the_call_that_blocks_the_loop_is_charged_not_the_one_it_holds_up(self, dispatcher):
        pool = dispatcher(workers=1)
        timed, blocker, other = store_calls(
            pool.store, autocron._Options(timeout=1, asynchronous=True),
            autocron._Options(asynchronous=True), autocron._Options(asynchronous=True))
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(timed, autocron._clock()))
        pool.round()
        worker.say(*[autocron._Started(task, autocron._clock()) for task in (blocker, other)])
        pool.round()
        worker.say(autocron._Blocked(blocker, 1.0))     # its watchdog names the blocker
        pool.later(1.1)                                 # the timeout: a cancel, which the
        pool.later(5.1)                                 # blocked loop cannot act on
        assert worker.proc.returncode == -9
        pool.round()
        rows = query(pool.store.path, "SELECT status, attempts, error FROM tasks ORDER BY id")
        assert [row[:2] for row in rows] == [("error", 1), ("error", 1), ("waiting", 0)]
        assert json.loads(rows[0][2])["message"] == "timed out after 1 s"   # as asked
        assert json.loads(rows[1][2])["message"].startswith(
            "it blocked its worker's event loop")       # charged: it used its attempt
        assert "async call" in json.loads(rows[2][2] or "{}").get("message", "async call")

    def test_a_forced_cancel_of_an_async_call_as_it_starts_cancels_it_alone(self, dispatcher):
        pool = dispatcher(workers=1)
        (other,) = store_calls(pool.store, autocron._Options(asynchronous=True))
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(other, autocron._clock()))
        pool.round()
        (late,) = store_calls(pool.store, autocron._Options(asynchronous=True))
        pool.round()                                  # room beside it: handed over
        assert TestDispatcher.ids(worker.runs())[-1] == late
        uid = f"{query(pool.store.path, 'SELECT token FROM tasks WHERE id = ?', (late,))[0][0]}" \
              f"-{late}"
        assert pool.store.request_cancel(uid, True)   # cancel(force=True) before it starts
        pool.round()                                  # asked back; the worker had started it
        worker.say(autocron._Started(late, autocron._clock()))
        pool.round()
        assert worker.proc.returncode is None
        assert worker.runs()[-1] == autocron._CancelRun(late, 0, "cancelled while running",
                                                        False)

    def test_a_failed_commit_gives_the_batch_back_and_it_is_written_once(self, dispatcher,
                                                                         small_disk):
        pool = dispatcher(small_disk.path("autocron.db"), workers=1)
        (task,) = store_calls(pool.store, autocron._Options())
        pool.round()
        (worker,) = pool.workers
        start = autocron._clock()
        value = pickle.dumps("x" * 200_000)      # a write that needs new room
        worker.say(autocron._Started(task, start),
                   autocron._Done(autocron._Outcome(task, "ready", value, started=start,
                                                    finished=start + 0.01)))
        small_disk.fill()
        try:
            pool.round()
            assert pool.pool._outage is not None and not pool.pool._lease_clock.valid(None)
            assert [r.outcome.id for r in pool.pool._batch.outcomes] == [task]
            pool.later(0.01)                     # before the pause ends: not tried
            assert [r.outcome.id for r in pool.pool._batch.outcomes] == [task]
        finally:
            small_disk.free()
        pool.later(0.1)
        assert pool.pool._outage is None and pool.pool._lease_clock.valid(None)
        assert pool.pool._batch.empty() and worker.acknowledged == 1
        pool.later(1.0)
        assert query(pool.store.path, "SELECT status, attempts, length(value) FROM tasks") == [
            ("ready", 1, len(value))]

    def test_a_worker_that_dies_fails_its_task_and_another_takes_its_place(self, dispatcher):
        pool = dispatcher(workers=1)
        task, later = store_calls(pool.store, autocron._Options(), autocron._Options())
        pool.round()
        (worker,) = pool.workers
        worker.say(autocron._Started(task, autocron._clock()))
        pool.later(autocron._YOUNG)               # not a worker failing at its start
        worker.exit(-9)
        pool.round()
        assert query(pool.store.path, "SELECT status, error FROM tasks ORDER BY id")[0][0] == \
            "error"
        (error,) = query(pool.store.path, f"SELECT error FROM tasks WHERE id = {task}")[0]
        assert json.loads(error)["message"] == "worker died: killed by signal 9 (SIGKILL)"
        assert len(pool.workers) == 2 and pool.workers[1].slot != worker.slot
        pool.round()
        assert self.ids(pool.workers[1].runs()) == [later]   # the one it held runs again


    def test_a_failed_initializer_pauses_the_workers_start_doubling_and_fails_no_call(
            self, dispatcher):
        pool = dispatcher(workers=1)
        task, = store_calls(pool.store, autocron._Options())
        pool.round()
        failure = {"type": "RuntimeError", "message": "no config", "traceback": ""}
        for pause in (1, 2, 4):
            worker = pool.workers[-1]
            assert type(worker.runs()[0]) is autocron._Init     # what it hears first
            worker.say(autocron._InitDone(failure))
            worker.exit(3)
            pool.round()
            spawned = len(pool.workers)
            pool.later(pause - 0.01)
            assert len(pool.workers) == spawned             # none during the pause
            pool.later(0.02)
            assert len(pool.workers) == spawned + 1         # one after it
        assert query(pool.store.path, "SELECT status, attempts FROM tasks") == [("queued", 0)]
        assert pool.store.settings()["initializer_error"]["message"] == "RuntimeError: no config"
        pool.workers[-1].say(autocron._InitDone())          # it works now
        pool.round()
        assert pool.store.settings()["initializer_error"] is None
        pool.round()
        assert self.ids(pool.workers[-1].runs()) == [task]

class TestPool:
    """One pool per database, workers that die with their owner, crashes reported at once."""

    def test_the_initializer_runs_in_every_worker_before_its_first_task(self, database,
                                                                       tmp_path):
        folder = tmp_path / "inits"
        folder.mkdir()

        def set_up(word, pause):            # a closure: it travels by value
            import test_autocron            # the tasks' module: its import is no task's time
            (folder / str(os.getpid())).write_text(word)
            os.environ["TEST_GREETING"] = word
            time.sleep(pause)               # never counts against a task's timeout
        assert autocron.start(database, workers=2, initializer=set_up,
                              initargs=("hello", 1.0)) is True
        quick = autocron.delay(timeout=0.8)(environment_of_a_task._autocron_function)
        assert [r.get(timeout=60) for r in quick.map(["TEST_GREETING"] * 4)] == ["hello"] * 4
        wait_until(lambda: sorted(int(p.name) for p in folder.iterdir()) == sorted(
            worker_pids()), what="each worker's initializer")

    @pytest.mark.sqlite_only           # the worker's side, the same on both stores
    def test_a_failed_task_reaches_an_error_reporter_set_up_by_the_initializer(
            self, database, tmp_path):
        reports = tmp_path / "reports"

        def set_up_reporter(path):      # as Sentry's logging integration would hook in
            import json
            import logging

            class Reporter(logging.Handler):
                def emit(self, record):
                    with open(path, "a") as file:
                        file.write(json.dumps({
                            "level": record.levelname, "message": record.getMessage(),
                            "exception": record.exc_info and record.exc_info[0].__name__,
                            "traceback": self.format(record), "function": record.function,
                            "task_id": record.task_id, "attempt": record.attempt}) + "\n")
            logging.getLogger("autocron").addHandler(Reporter(logging.ERROR))
        assert autocron.start(database, workers=1, initializer=set_up_reporter,
                              initargs=(str(reports),)) is True
        failed = fail.options(retries=1)("boom")
        with pytest.raises(autocron.TaskError):
            failed.get(timeout=60)
        with pytest.raises(autocron.TaskError):
            async_fail("async boom").get(timeout=60)
        lines = [json.loads(line) for line in reports.read_text().splitlines()]
        assert [(r["function"], r["task_id"], r["attempt"], r["exception"]) for r in lines] == [
            ("test_autocron.fail", failed.uuid, 1, "ValueError"),
            ("test_autocron.fail", failed.uuid, 2, "ValueError"),
            ("test_autocron.async_fail", lines[2]["task_id"], 1, "LookupError")]
        assert lines[0]["level"] == "ERROR" and lines[0]["message"] == (
            f"autocron task {failed.uuid} (test_autocron.fail) failed, attempt 1: ValueError: "
            "boom")
        assert "raise ValueError(text)" in lines[0]["traceback"]
        assert "raise LookupError(text)" in lines[2]["traceback"]

    def test_a_failing_initializer_starts_no_worker_and_its_calls_wait(self, database,
                                                                      tmp_path, caplog):
        caplog.set_level(logging.INFO, logger="autocron")
        tries = tmp_path / "tries"
        autocron.start(database, workers=1, initializer=fail_twice, initargs=(str(tries),))
        result = add(2, 2)
        assert result.get(timeout=60) == 4                   # after two pauses: 1 s, 2 s
        assert result.attempts == 1 and tries.read_text() == "xxx"
        failures = [r.getMessage() for r in caplog.records if "initializer failed" in
                    r.getMessage()]
        assert len(failures) == 2 and "no worker starts until it works (trying again in 1 s, " \
            "calls wait)" in failures[0] and "(trying again in 2 s, " in failures[1]
        assert "RuntimeError: not yet (try 2)" in failures[1]
        assert any("the initializer works again" in r.getMessage() for r in caplog.records)
        assert autocron._open_store(database).settings()["initializer_error"] is None

    def test_an_initializer_that_ends_its_worker_counts_as_failed(self, database, tmp_path,
                                                                  caplog):
        caplog.set_level(logging.INFO, logger="autocron")
        autocron.start(database, workers=1, initializer=exit_twice,
                       initargs=(str(tmp_path / "tries"),))
        assert add(2, 2).get(timeout=60) == 4
        failures = [r.getMessage() for r in caplog.records if "initializer failed" in
                    r.getMessage()]
        assert len(failures) == 2 and "the worker ended while it was being set up (exited " \
            "with status 0)" in failures[0]

    def test_a_failed_initializer_is_shown_by_info(self, tmp_path):
        database = tmp_path / "a.db"
        owner = spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1, initializer=test_autocron.fail_twice,
                           initargs=(sys.argv[1] + ".tries", 99))
            print("ready", flush=True)
            sys.stdin.read()
        """, database, stdin=subprocess.PIPE)
        try:
            assert owner.stdout.readline().strip() == "ready"
            line = wait_until(lambda: [text for text in cli("info", db=database).stdout
                                       .splitlines() if text.startswith("problem")],
                              what="the problem in info")[0]
            assert re.fullmatch(
                r"problem    the initializer failed on \S+ at \d\d\d\d-\d\d-\d\d \d\d:\d\d:\d\d: "
                r"RuntimeError: not yet \(try \d\); no worker starts until it works \(calls "
                r"wait\)", line), line
        finally:
            owner.communicate(timeout=60)

    def test_an_initializer_that_runs_too_long_counts_as_failed(self, database, tmp_path,
                                                                caplog, monkeypatch):
        # travels to the pool's processes; the worker's import of this module (pytest,
        # hypothesis ...) counts too, and takes a second under load
        monkeypatch.setattr(autocron, "_init_timeout", 4.0)
        caplog.set_level(logging.INFO, logger="autocron")
        tries = tmp_path / "tries"
        autocron.start(database, workers=1, initializer=slow_once, initargs=(str(tries),))
        assert add(1, 2).get(timeout=60) == 3
        assert any("TimeoutError: the initializer ran past 4 s" in r.getMessage()
                   for r in caplog.records)

    @pytest.mark.parametrize("initializer, initargs, message", [
        ("setup", (), "initializer must be a function, called in every worker before its "
                      "first task, got 'setup'"),
        (print, "ab", "initargs must be a tuple of the initializer's arguments, got 'ab'"),
        (print, 5, "initargs must be a tuple of the initializer's arguments, got 5"),
    ])
    def test_a_bad_initializer_is_refused(self, tmp_path, initializer, initargs, message):
        with pytest.raises(TypeError, match=re.escape(message)):
            autocron.start(tmp_path / "a.db", initializer=initializer, initargs=initargs)
        assert not is_active()

    def test_start_twice_is_harmless(self, pool):
        assert autocron.start(pool) is False
        assert autocron.start(pool, workers=2) is False
        with pytest.raises(autocron.AutocronError, match="already runs on"):
            autocron.start(other_database(pool))

    def test_worker_count_is_stored(self, database):
        assert autocron.start(database, workers=3) is True
        wait_until(lambda: len(worker_pids()) == 3, what="three workers")
        autocron.stop()
        assert autocron._open_store(database).settings()["workers"] == 3
        assert autocron.start(database) is True
        wait_until(lambda: len(worker_pids()) == 3, what="three workers again")
        for wrong in (-1, 1.5, True):
            with pytest.raises(ValueError, match=re.escape(
                    f"workers must be an int, 1 or more (or 0: this process only enqueues), "
                    f"got {wrong!r}")):
                autocron.start(database, workers=wrong)

    def test_a_module_a_machine_cannot_import_is_named_with_the_machine(self, database,
                                                                        tmp_path, monkeypatch):
        folder = tmp_path / "gone"
        folder.mkdir()
        (folder / "vanishing_tasks.py").write_text(
            "import autocron\n\n@autocron.delay\ndef double(x):\n    return 2 * x\n")
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.setenv("AUTOCRON_HOST", "far-away")
        import vanishing_tasks
        assert autocron.start(database, workers=0) is False
        result = vanishing_tasks.double(21)
        shutil.rmtree(folder)
        autocron.stop()
        sys.modules.pop("vanishing_tasks")
        assert autocron.start(database, workers=1) is True
        with pytest.raises(autocron.TaskError, match=re.escape(
                "cannot import the module vanishing_tasks (of double) on machine far-away: "
                "No module named 'vanishing_tasks'; install it there, or start the pool where "
                "it can be imported")):
            result.get(timeout=30)

    def test_workers_0_only_enqueues_and_leaves_the_stored_number(self, database):
        assert autocron.start(database, workers=0) is False
        assert autocron._state.pool is None and autocron._state.standby is None
        result = add(2, 3)
        assert result.status == "waiting"
        assert autocron._open_store(database).settings()["workers"] == 1
        owner = spawn_python("""
            import sys, autocron
            assert autocron.start(sys.argv[1]) is True
            print("ready", flush=True)
            sys.stdin.read()
        """, database, stdin=subprocess.PIPE)
        try:
            assert owner.stdout.readline().strip() == "ready", owner.stderr.read()
            assert result.get(timeout=30) == 5
        finally:
            owner.communicate(timeout=60)
        assert autocron._state.pool is None and autocron._state.standby is None

    def test_workers_are_fresh_interpreters_in_the_callers_folder(self, pool):
        manager, workers = pool_pids()
        for pid in [manager] + workers:
            assert pid != os.getpid()
            assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(sys.executable)
            assert os.readlink(f"/proc/{pid}/cwd") == os.getcwd()
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read()
            assert b"m._boot(a[2], a[3], c)" in command     # not a fork
            # a worker runs the code its manager runs, compiled once (_code_copy)
            assert command.endswith(b"\0-\0-\0-\0") == (pid == manager), command[-60:]
        assert echo(1).get(timeout=30) == ((1,), {})

    def test_a_worker_imports_only_what_it_uses(self, tmp_path):
        # what the dashboard, time zones, hashing and temporary files need costs a worker
        # megabytes (hashlib loads OpenSSL: 3.7 MB); a worker running plain calls loads none
        (tmp_path / "light.py").write_text(textwrap.dedent("""
            import sys
            import autocron

            @autocron.delay
            def loaded():
                return sorted(sys.modules)
        """))
        done = run_python("""
            import json, sys
            sys.path.insert(0, sys.argv[1])
            import autocron, light
            autocron.start(sys.argv[1] + "/tasks.db", workers=1)
            try:
                print(json.dumps(light.loaded().get(timeout=60)))
            finally:
                autocron.stop()
        """, tmp_path)
        assert done.returncode == 0, done.stderr
        loaded = set(json.loads(done.stdout))
        assert {"autocron", "light", "sqlite3", "pickle"} <= loaded
        heavy = {"hashlib", "_hashlib", "hmac", "secrets", "tempfile", "shutil", "html",
                 "http.server", "multiprocessing", "zoneinfo", "calendar", "uuid", "dis",
                 "argparse", "asyncio", "inspect", "dataclasses", "urllib.request"}
        assert loaded & heavy == set()

    def test_killed_worker_is_reported_and_replaced(self, pool, tmp_path):
        result = block(tmp_path)
        pid = int(wait_until(lambda: (tmp_path / "task.pid").exists() and
                             (tmp_path / "task.pid").read_text(), what="the task to start"))
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(autocron.WorkerLost) as caught:
            result.get(timeout=30)
        assert caught.value.message == "worker died: killed by signal 9 (SIGKILL)"
        assert str(caught.value) == "worker died: killed by signal 9 (SIGKILL)"  # the class
        assert caught.value.type_name == "autocron.WorkerLost"                  # says which
        assert result.error_message == ("autocron.WorkerLost: worker died: killed by signal 9 "
                                        "(SIGKILL)")
        wait_until(lambda: len(worker_pids()) == 2 and pid not in worker_pids(),
                   what="a replacement worker")
        assert add(1, 2).get(timeout=30) == 3

    def test_tasks_queued_behind_a_killed_task_run_elsewhere(self, database, tmp_path):
        autocron.start(database, workers=1)
        blocked = block(str(tmp_path))
        pid = int(wait_until(lambda: (tmp_path / "task.pid").exists() and
                             (tmp_path / "task.pid").read_text(), what="the task to start"))
        behind = [add(i, i) for i in range(3)]      # handed to the same worker, not started
        wait_until(lambda: all(row_status(database, r) == "queued" for r in behind),
                   what="the hand-over")
        assert all(r.status == "waiting" for r in behind)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(autocron.TaskError, match="killed by signal 9"):
            blocked.get(timeout=30)
        assert [r.get(timeout=30) for r in behind] == [0, 2, 4]

    def test_quick_tasks_do_not_wait_behind_a_long_one(self, pool, tmp_path):
        long = block(str(tmp_path))
        quick = [add(i, 1) for i in range(20)]
        assert [r.get(timeout=30) for r in quick] == list(range(1, 21))
        assert long.waiting
        (tmp_path / "task.go").write_text("")
        long.get(timeout=30)

    def test_worker_that_exits_in_a_task_is_reported(self, pool):
        result = exit_now(3)
        with pytest.raises(autocron.WorkerLost, match="^worker died: exited with status 3$"):
            result.get(timeout=30)
        wait_until(lambda: len(worker_pids()) == 2, what="a replacement worker")
        assert add(1, 2).get(timeout=30) == 3

    def test_owner_killed_leaves_no_orphans(self, tmp_path):
        owner = spawn_python("""
            import sys, time, autocron, test_autocron
            autocron.start(sys.argv[1], workers=2)
            test_autocron.block(sys.argv[2])
            test_autocron.wait_until(lambda: len(test_autocron.worker_pids()) == 2)
            manager, workers = test_autocron.pool_pids()
            print(manager, *workers, flush=True)
            time.sleep(600)
        """, tmp_path / "a.db", tmp_path)
        try:
            pids = [int(p) for p in owner.stdout.readline().split()]   # manager, workers
            assert len(pids) == 3 and all(alive(p) for p in pids)
            wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
            owner.kill()
            owner.wait(timeout=30)
            wait_until(lambda: not any(alive(p) for p in pids), 10,
                       "the manager and the workers to exit")
        finally:
            owner.kill()
            owner.wait()
            owner.stdout.close(), owner.stderr.close()
            with contextlib.suppress(FileNotFoundError):   # a killed owner cannot tidy up
                os.unlink(autocron._wake_path(str(tmp_path / "a.db")))

    def test_restart_after_the_owner_was_killed_settles_its_tasks(self, database, tmp_path):
        owner = spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            running = test_autocron.block(sys.argv[2])
            queued = [test_autocron.add(i, 10) for i in range(2)]
            test_autocron.wait_until(lambda: all(test_autocron.row_status(sys.argv[1], r) ==
                                                 "queued" for r in queued))
            print(running.uuid, *[r.uuid for r in queued], flush=True)
            sys.stdin.read()
        """, database, tmp_path, stdin=subprocess.PIPE)
        try:
            running, *queued = owner.stdout.readline().split()
            wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
            owner.kill()
            owner.wait(timeout=30)
        finally:
            owner.kill()
            owner.communicate(timeout=30)
        assert autocron.start(database, workers=1) is True
        interrupted = autocron.get_result(running)
        with pytest.raises(autocron.WorkerLost, match="^interrupted: the pool ended while the "
                                                     "task was running$"):
            interrupted.get(timeout=30)
        assert [autocron.get_result(u).get(timeout=30) for u in queued] == [10, 11]
        # each end counted once, the interrupted attempt in the run-time histogram too
        board = DashboardServer(database)
        try:
            families = scrape(board)[1]
        finally:
            board.stop()
        blocked = {"function": "test_autocron.block", "queue": "default"}
        assert sample(families, "autocron_calls_ended_total", status="error", **blocked) == 1
        assert sample(families, "autocron_calls_ended_total", function="test_autocron.add",
                      queue="default", status="ready") == 2
        assert sample(families, "autocron_run_seconds_count", **blocked) == 1

    def test_a_killed_manager_is_replaced_and_its_workers_end(self, pool, tmp_path):
        running = block(str(tmp_path))
        wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
        manager, workers = pool_pids()
        os.kill(manager, signal.SIGKILL)
        wait_until(lambda: not any(alive(p) for p in workers), 10, "the workers to end")
        wait_until(lambda: pool_pids()[0] not in (None, manager) and len(pool_pids()[1]) == 2,
                   30, "a new manager with two workers")
        with pytest.raises(autocron.WorkerLost, match="^interrupted: the pool ended while the "
                                                     "task was running$"):
            running.get(timeout=30)
        assert add(1, 2).get(timeout=30) == 3

    def test_four_producers_one_pool_every_task_once(self, pool, tmp_path):
        log = tmp_path / "log.txt"
        producer = """
            import sys, autocron, test_autocron
            assert autocron.start(sys.argv[1]) is False
            for i in range(100):
                test_autocron.log_line(sys.argv[2], f"{sys.argv[3]}-{i}")
        """
        procs = [spawn_python(producer, pool, log, n) for n in range(4)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        results = [r for r in autocron.get_results() if r.uuid]
        assert len(results) == 400
        for result in results:
            result.get(timeout=60)
        lines = log.read_text().split()
        assert sorted(lines) == sorted(f"{n}-{i}" for n in range(4) for i in range(100))

    def test_two_processes_race_for_the_pool(self, tmp_path):
        racer = """
            import sys, time, autocron
            while not __import__("os").path.exists(sys.argv[2]):
                time.sleep(0.001)
            print(autocron.start(sys.argv[1]), flush=True)
            sys.stdin.read()
        """
        database = tmp_path / "race.db"
        autocron._open_store(database).close()
        procs = [spawn_python(racer, database, tmp_path / "go", stdin=subprocess.PIPE)
                 for _ in range(2)]
        try:
            (tmp_path / "go").write_text("")
            answers = sorted(p.stdout.readline().strip() for p in procs)
            assert answers == ["False", "True"]
        finally:
            for proc in procs:
                proc.communicate(timeout=60)

    def test_takeover_when_the_owner_ends(self, database, tmp_path):
        owner = spawn_python("""
            import sys, autocron
            print(autocron.start(sys.argv[1], workers=1), flush=True)
            sys.stdin.read()
        """, database, stdin=subprocess.PIPE)
        try:
            assert owner.stdout.readline().strip() == "True"
            assert autocron.start(database) is False
            result = add(4, 4)
            assert result.get(timeout=30) == 8          # the other process's pool ran it
            owner.kill()
            owner.wait(timeout=30)
            waiting = add(5, 5)
            wait_until(lambda: autocron._state.pool is not None, 30, "the takeover")
            assert waiting.get(timeout=30) == 10
        finally:
            owner.kill()
            owner.communicate(timeout=30)

    def test_stop_waits_then_records_stopped_tasks_and_keeps_waiting_ones(self, database,
                                                                            tmp_path):
        autocron.start(database, workers=1)
        running = block(tmp_path)
        wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
        queued = add(1, 1)
        pid = worker_pids()[0]
        autocron.stop(timeout=0.2)
        assert not alive(pid)
        assert running.status == "error"
        assert running.error_message == ("autocron.WorkerLost: stopped: the pool stopped "
                                         "before the task finished")
        with pytest.raises(autocron.WorkerLost):
            running.get(timeout=5)
        assert queued.status == "waiting"
        (tmp_path / "task.go").write_text("")
        assert autocron.start(database) is True
        assert queued.get(timeout=30) == 2             # nothing lost across the restart

    def test_results_past_their_time_to_live_are_deleted(self, database, monkeypatch, tmp_path):
        clock = FakeClock(time.time(), monkeypatch, tmp_path)
        autocron.start(database, workers=1)
        old = add(1, 1)
        old.get(timeout=30)
        autocron.stop()
        autocron._open_store(database).set_setting("result_ttl", 60)
        clock.now += 61
        autocron.start(database)
        wait_until(lambda: autocron.get_result(old.uuid) is None, what="the cleanup")


# ---- cron jobs -----------------------------------------------------------------------------


class TestCronJobs:
    """Jobs registered at decoration, run once per due time by one pool; the clock is a seam."""

    def runs(self, name):
        return [r for r in autocron.get_results() if r._fetch().name == name]

    def test_job_runs_once_per_due_time(self, database, monkeypatch, tmp_path):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        job = autocron.cron("0 9 * * *")(cron_job)
        assert job is cron_job
        name = "test_autocron.cron_job"
        try:
            autocron.start(database, workers=1)
            clock.now += 60                           # 09:00:30: due
            wake_pool()
            first = wait_until(lambda: self.runs(name), what="the first run")
            assert first[0].get(timeout=30) == "ran"
            clock.now += 3600                         # 10:00:30: not due again
            settle()
            assert len(self.runs(name)) == 1
            clock.now += 23 * 3600                    # the next day 09:00:30
            wake_pool()
            second = wait_until(lambda: len(self.runs(name)) == 2 and self.runs(name)[0],
                                what="the second run")
            assert second.get(timeout=30) == "ran"
            assert log.read_text() == "run\nrun\n"
        finally:
            forget_cron(name)

    def test_a_function_that_requires_arguments_is_refused_as_a_job(self):
        def report(day, *rest, kind, verbose=False, **more):
            return day
        with pytest.raises(TypeError, match=re.escape(
                "a cron job takes no arguments, and test_autocron.TestCronJobs.test_a_function_"
                "that_requires_arguments_is_refused_as_a_job.<locals>.report() requires day, "
                "kind; give them defaults, or schedule a function that calls it (@cron(...) "
                "def job(): report(...))")):
            autocron.cron("@daily")(report)
        assert autocron._state.crons == {}

    @pytest.mark.parametrize("new_code, why", [
        ("def report():\n    return 'ran'\n", "nightly.report is no longer decorated with @cron"),
        ("def other():\n    return 'ran'\n", "the module nightly has no report any more"),
        ("raise ImportError('the new code is broken')\n", None),      # fails that run only
    ])
    def test_a_job_its_code_no_longer_declares_is_retired_until_registered_again(
            self, database, monkeypatch, tmp_path, new_code, why):
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        source = tmp_path / "code" / "nightly.py"
        source.parent.mkdir()
        source.write_text("import autocron\n\n@autocron.cron('0 9 * * *')\n"
                          "def report():\n    return 'ran'\n")
        monkeypatch.syspath_prepend(str(source.parent))
        name = "nightly.report"
        try:
            import nightly                      # declares the job, as an application does
            autocron.start(database, workers=1)
            clock.now += 60                                   # 09:00:30: due
            wake_pool()
            assert wait_until(lambda: self.runs(name))[0].get(timeout=30) == "ran"
            autocron.stop()
            forget_cron(name)                   # the new code: the job is gone from it
            source.write_text(new_code)
            autocron.start(database, workers=1)
            clock.now += 86400                                # the next day's run
            wake_pool()
            run = wait_until(lambda: [r for r in self.runs(name) if r.status == "error"])[0]
            with pytest.raises(autocron.TaskError) as failed:
                run.get(timeout=30)
            store = autocron._open_store(database)
            if why is None:
                assert "the new code is broken" in str(failed.value)
                assert [job.retired for job in store.cron_rows()] == [False]
                return
            assert run.error_message == (
                f"autocron.JobRetired: cron job {name} retired: {why}; it starts no more runs "
                f"(registering it again revives it; autocron cron remove {name} deletes it)")
            wait_until(lambda: [job.retired for job in store.cron_rows()] == [True])
            assert [job.paused for job in store.cron_rows()] == [False]
            last_run = [job.last_run for job in store.cron_rows()]
            clock.now += 86400                                # due again: no run
            wake_pool()
            settle()
            assert [job.last_run for job in store.cron_rows()] == last_run
            # declared again: revived. With no pool running: a pool would run the job at
            # once (it is due), find the code still without it, and retire it again
            autocron.stop()
            autocron.start(database, workers=0)
            autocron.cron("0 9 * * *")(nightly.report)
            assert [job.retired for job in store.cron_rows()] == [False]
        finally:
            forget_cron(name)
            sys.modules.pop("nightly", None)

    def test_a_job_registered_when_the_program_runs_is_not_retired(self, database,
                                                                    monkeypatch, tmp_path):
        # review: cron() called in main(), in the function's own module: a worker that
        # imports the module finds no @cron on it, and the job was retired after its first run
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        source = tmp_path / "code" / "cli_main.py"
        source.parent.mkdir()
        source.write_text("import autocron\n\n\ndef job():\n    return 'ran'\n\n\n"
                          "def main():\n    autocron.cron('0 9 * * *')(job)\n")
        monkeypatch.syspath_prepend(str(source.parent))
        name = "cli_main.job"
        try:
            import cli_main
            cli_main.main()
            autocron.start(database, workers=1)
            for day in range(2):
                clock.now += 60 if day == 0 else 86400
                wake_pool()
                run = wait_until(lambda: [r for r in self.runs(name) if r._fetch().started
                                          and r._fetch().started >= clock.now - 60])[0]
                assert run.get(timeout=30) == "ran"
            assert [job.retired for job in autocron._open_store(database).cron_rows()] == [
                False]
        finally:
            forget_cron(name)
            sys.modules.pop("cli_main", None)

    def test_an_async_job_runs_like_any_other(self, database, monkeypatch, tmp_path):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        assert autocron.cron("0 9 * * *")(async_cron_job) is async_cron_job
        name = "test_autocron.async_cron_job"
        try:
            autocron.start(database, workers=1)
            clock.now += 60                           # 09:00:30: due
            wake_pool()
            run = wait_until(lambda: self.runs(name), what="the run")[0]
            assert run.get(timeout=30) == "ran async"
            assert log.read_text() == "run\n"
        finally:
            forget_cron(name)

    def test_a_paused_job_starts_no_runs_until_resumed(self, database, monkeypatch, tmp_path):
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(tmp_path / "cron.log"))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        autocron.cron("0 9 * * *", catch_up=True)(cron_job)
        name = "test_autocron.cron_job"
        try:
            autocron.start(database, workers=1)
            store = autocron._open_store(database)
            assert store.pause_cron(name) is True
            autocron.stop()
            autocron.start(database, workers=1)           # registered again: still paused
            assert [job.paused for job in store.cron_rows()] == [True]
            clock.now += 60                               # 09:00:30: due, but paused
            wake_pool()
            settle()
            assert self.runs(name) == []
            clock.now += 2 * 86400                        # two more due times missed
            due = store.resume_cron(name, clock.now)
            assert due == datetime(2030, 1, 4, 9, 0).timestamp()
            wake_pool()
            settle()
            assert self.runs(name) == []                  # missed while paused: skipped
            assert store.resume_cron(name, clock.now) == due      # not paused: unchanged
            clock.now = due + 30
            wake_pool()
            run = wait_until(lambda: self.runs(name), what="the run after resuming")[0]
            assert run.get(timeout=30) == "ran"
            assert store.pause_cron("nope") is False
            assert store.resume_cron("nope", clock.now) is None
        finally:
            forget_cron(name)

    def test_redecorating_replaces_the_schedule(self, database):
        name = "test_autocron.cron_job"
        try:
            autocron.start(database, workers=1)
            autocron.cron("0 9 * * *")(cron_job)
            autocron.cron(minutes=[30], hours=[9], dow=[0, 2])(cron_job)
            rows = autocron._open_store(database).read("SELECT name, expression FROM crons")
            assert rows == [(name, "30 9 * * 1,3")]
        finally:
            forget_cron(name)

    def test_bad_expression_fails_at_decoration(self):
        with pytest.raises(CronError, match="minute 61 is out of range 0-59"):
            autocron.cron("61 * * * *")

    def test_many_processes_register_one_job_that_runs_once(self, database, monkeypatch,
                                                            tmp_path):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        registrar = """
            import sys, autocron, test_autocron
            autocron.cron("* * * * *")(test_autocron.cron_job)
            assert autocron.start(sys.argv[1]) is False
        """
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        name = "test_autocron.cron_job"
        try:
            autocron.cron("* * * * *")(cron_job)
            autocron.start(database, workers=2)
            for out in [run_python(registrar, database) for _ in range(3)]:
                assert out.returncode == 0, out.stderr
            clock.now += 60
            wake_pool()
            wait_until(lambda: self.runs(name) and not self.runs(name)[0].waiting,
                       what="the run")
            settle()
            assert len(self.runs(name)) == 1 and log.read_text() == "run\n"
        finally:
            forget_cron(name)


# ---- task options: retries, timeouts, cancellation, priorities, missed runs ----------------


def count_attempt(path):
    """Append a line to path and return how many lines it has now."""
    with open(path, "a") as file:
        file.write("x\n")
    with open(path) as file:
        return len(file.read().split())


def fails_once(counter):
    """A task that raises on its first attempt (counted in the file `counter`), then returns
    "done"."""
    if count_attempt(counter) == 1:
        raise OSError("once")
    return "done"


def wait_for_gate(gate, value):
    """A task that waits until the file `gate` exists, then returns `value`."""
    while not os.path.exists(gate):
        time.sleep(0.02)
    return value


def report_progress(steps, gate, fail_first=None):
    """A task that reports each of `steps`, then waits for `gate`, and returns the id that
    current() gives it (`fail_first`: a counter file; its first attempt fails then)."""
    for step in range(1, steps + 1):
        autocron.progress(step, steps, f"step {step}")
    if fail_first is not None and count_attempt(fail_first) == 1:
        raise OSError("once")
    while not os.path.exists(gate):
        time.sleep(0.02)
    return autocron.current().uuid


class TestTaskOptions:
    """What users of huey, Celery and RQ reach for first."""

    def test_retries_until_success_with_growing_delays(self, database, monkeypatch, tmp_path):
        clock = FakeClock(time.time(), monkeypatch, tmp_path)
        counter = str(tmp_path / "count")

        def flaky():
            if count_attempt(counter) < 3:
                raise ConnectionError("try again")
            return "finally"
        autocron.start(database, workers=1)
        result = autocron.delay(retries=3, retry_delay=10, backoff=2.0)(flaky)()
        wait_until(lambda: result.attempts == 1 and result.error_message, what="attempt 1")
        assert result.status == "waiting" and result.waiting
        assert result.error_message.startswith("ConnectionError: try again")
        clock.now += 9
        settle()
        assert result.attempts == 1                    # not due before 10 s
        clock.now += 3.5                               # 10 s and up to a quarter more
        wake_pool()
        wait_until(lambda: result.attempts == 2 and result.status == "waiting",
                   what="attempt 2")
        clock.now += 19                                # the next delay is 20 s (to 25 s)
        settle()
        assert result.attempts == 2
        clock.now += 6
        wake_pool()
        assert result.get(timeout=30) == "finally"
        assert (result.attempts, result.error_message) == (3, "")

    def test_retries_used_up_leave_the_last_error(self, pool, tmp_path):
        counter = str(tmp_path / "count")

        def always():
            raise KeyError(f"attempt {count_attempt(counter)}")
        result = autocron.delay(retries=2)(always)()
        with pytest.raises(autocron.TaskError, match="attempt 3"):
            result.get(timeout=30)
        assert result.attempts == 3 and result.status == "error"
        # every attempt's error is kept (DjangoBackend's errors, the dashboard's attempts)
        errors = autocron._state.store.attempt_errors(result.uuid)
        assert [(e["type"], e["message"]) for e in errors] == [
            ("KeyError", "'attempt 1'"), ("KeyError", "'attempt 2'"), ("KeyError", "'attempt 3'")]
        assert all(e["started"] <= e["finished"] for e in errors[:2])
        assert errors[0]["finished"] <= errors[1]["started"]
        assert autocron._state.store.attempt_errors("0" * 10 + "-99") == []

    def test_a_worker_that_dies_is_retried(self, pool, tmp_path):
        counter = str(tmp_path / "count")

        def die_once():
            if count_attempt(counter) == 1:
                os._exit(9)
            return "survived"
        result = autocron.delay(retries=1)(die_once)()
        assert result.get(timeout=30) == "survived"
        assert result.attempts == 2

    def test_timeout_terminates_the_worker_and_fails_the_task(self, pool):
        def slow():
            time.sleep(60)
        started = time.monotonic()
        result = autocron.delay(timeout=0.5)(slow)()
        with pytest.raises(autocron.TaskTimeout, match=r"^timed out after 0.5 s$"):
            result.get(timeout=30)
        assert time.monotonic() - started < 30
        wait_until(lambda: len(worker_pids()) == 2, what="a replacement worker")
        assert add(1, 1).get(timeout=30) == 2

    def test_timeout_with_retries_left_is_retried(self, pool, tmp_path):
        counter = str(tmp_path / "count")

        def slow_once():
            if count_attempt(counter) == 1:
                time.sleep(60)
            return "quick the second time"
        # the second attempt runs on a new worker, which loads the function first: on a
        # loaded machine (two test processes on two cores) that took more than 0.5 s
        result = autocron.delay(timeout=2, retries=1)(slow_once)()
        assert result.get(timeout=30) == "quick the second time" and result.attempts == 2

    def test_cancel_a_running_task_only_with_force(self, pool, tmp_path):
        running = block(str(tmp_path))
        pid = int(wait_until(lambda: (tmp_path / "task.pid").exists() and
                             (tmp_path / "task.pid").read_text(), what="the task to start"))
        assert running.cancel() is False and running.status == "running"
        assert running.cancel(force=True) is True
        assert running.status == "cancelled"
        with pytest.raises(autocron.Cancelled, match="^cancelled while running$"):
            running.get(timeout=5)
        wait_until(lambda: not alive(pid), what="the worker to end")
        wait_until(lambda: len(worker_pids()) == 2, what="a replacement worker")
        assert running.cancel(force=True) is False
        assert add(2, 2).get(timeout=30) == 4

    def test_higher_priority_runs_first_even_before_calls_a_busy_worker_holds(
            self, database, tmp_path):
        # The fillers were handed to the busy worker before the higher calls came: they go
        # back to the database and wait their turn (equal priorities keep their order).
        log = str(tmp_path / "order")
        autocron.start(database, workers=1)
        first = block(str(tmp_path))
        wait_until(lambda: (tmp_path / "task.pid").exists(), what="the blocker")
        fillers = [log_line(log, f"filler{i}") for i in range(autocron._PREFETCH - 1)]
        wait_until(lambda: all(row_status(database, f) == "queued" for f in fillers),
                   what="the hand-over")
        low = autocron.delay(log_line.__wrapped__)
        high = autocron.delay(priority=5)(log_line.__wrapped__)
        calls = [low(log, "low1"), low(log, "low2"), high(log, "high1"), low(log, "low3"),
                 high(log, "high2")]
        wait_until(lambda: all(row_status(database, c) == "queued" for c in calls[2::2]),
                   what="the worker to give the outranked calls back for the higher ones")
        (tmp_path / "task.go").write_text("")
        autocron.wait([first] + fillers + calls, timeout=60)
        assert Path(log).read_text().split() == ["high1", "high2", "filler0", "filler1",
                                                 "filler2", "low1", "low2", "low3"]
        assert {c.attempts for c in fillers + calls} == {1}

    @pytest.mark.parametrize("options, message", [
        (dict(retries=-1), "retries must be a whole number from 0 to 2147483647, got -1"),
        (dict(retries=1.5), "retries must be a whole number from 0 to 2147483647, got 1.5"),
        (dict(retries=True), "retries must be a whole number from 0 to 2147483647, got True"),
        (dict(retry_delay=-5), "retry_delay must be a number at least 0, got -5"),
        (dict(backoff=0.5), "backoff must be a number at least 1, got 0.5"),
        (dict(timeout=0), "timeout must be a number greater than 0, got 0"),
        (dict(timeout=float("nan")), "timeout must be a number greater than 0, got nan"),
        (dict(timeout="60"), "timeout must be a number greater than 0, got '60'"),
        (dict(priority=1.5), "priority must be an int from -2147483648 to 2147483647 "
                             "(higher runs first), got 1.5"),
        (dict(priority="high"), "priority must be an int from -2147483648 to 2147483647 "
                                "(higher runs first), got 'high'"),
    ])
    def test_bad_option_values_fail_at_decoration(self, options, message):
        with pytest.raises(ValueError) as caught:
            autocron.delay(**options)
        assert str(caught.value) == message

    @pytest.mark.parametrize("options, error, message", [
        (dict(retry_on=ValueError("x")), TypeError,
         "retry_on must be an exception class or a tuple of them, got ValueError('x')"),
        (dict(retry_on=(KeyError, int)), TypeError, "retry_on must be an exception class or a "
         "tuple of them, got (<class 'KeyError'>, <class 'int'>)"),
        (dict(retry_on=()), TypeError,
         "retry_on must be an exception class or a tuple of them, got ()"),
        (dict(minutes=-1), ValueError, "the delay must not be negative, got -60 s"),
        (dict(schedul=None), TypeError, "options() got 'schedul'; it takes weeks, days, "
         "hours, minutes, seconds, schedule, retries, retry_delay, backoff, retry_on, "
         "timeout, priority, queue, key, connection"),
        (dict(key=5), TypeError, "key must be a str (at most 200 characters), got int"),
        (dict(key=""), ValueError, "key must be 1 to 200 characters long, got 0"),
        (dict(key="k" * 201), ValueError, "key must be 1 to 200 characters long, got 201"),
    ])
    def test_bad_per_call_options_fail_at_once(self, options, error, message):
        with pytest.raises(error) as caught:
            add.options(**options)
        assert str(caught.value) == message
        if "schedul" not in options and "key" not in options:    # the decorator: the same
            with pytest.raises(error) as caught:
                autocron.delay(**options)
            assert str(caught.value) == message

    def test_options_apply_to_the_calls_made_through_them_only(self, pool):
        database = autocron._state.store.path

        def stored(result):
            return query(database, "SELECT priority, retries, due - created FROM tasks "
                                   "WHERE id = ?", (int(result.uuid.rsplit("-", 1)[1]),))[0]
        later = autocron.delay(minutes=5, retries=1)(add.__wrapped__)
        assert stored(later(1, 1))[:2] == (0, 1) and 299 < stored(later(1, 1))[2] <= 300
        urgent = later.options(priority=7)
        assert stored(urgent(1, 1))[:2] == (7, 1)                # the rest kept
        assert stored(urgent.options(priority=9, retries=0)(1, 1))[:2] == (9, 0)   # chained
        soon = later.options(seconds=0.2)          # a delay replaces the timing as a whole
        assert stored(soon(1, 1))[2] < 1 and stored(later(1, 1))[2] > 299     # later kept
        when = datetime.now() + timedelta(days=2)
        assert abs(stored(later.options(schedule=when)(1, 1))[2] - 2 * 86400) < 5
        assert [r.get(timeout=30) for r in soon.map([1, 2], [3, 4])] == [4, 6]
        assert add.options(priority=3)(2, 2).get(timeout=30) == 4
        assert add.options().__wrapped__ is add.__wrapped__

    def test_the_readme_s_per_call_options_run_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "options.py")
        assert done.stdout.splitlines() == [
            "sent to ada@example.org", "waiting", "True",
            "__main__.send_mail(): got an unexpected keyword argument 'schedule'; nothing was "
            "stored"], done.stdout

    def test_a_key_held_by_an_unfinished_call_stores_nothing(self, pool, tmp_path, caplog):
        gate = tmp_path / "gate"
        welcome = autocron.delay(wait_for_gate)
        first = welcome.options(key="welcome:ada")(str(gate), "ada")
        again = welcome.options(key="welcome:ada")(str(gate), "ada")
        assert again.uuid == first.uuid
        with caplog.at_level(logging.WARNING, logger="autocron"):
            other = welcome.options(key="welcome:ada", priority=5)(str(gate), "bob")
        assert other.uuid == first.uuid and "holds the key 'welcome:ada'" in caplog.text
        assert "'bob'" in caplog.text                 # the arguments that were not stored
        mapped = welcome.options(key=lambda path, name: f"welcome:{name}").map(
            [str(gate)] * 3, ["ada", "cy", "cy"])
        assert mapped[0].uuid == first.uuid and mapped[1].uuid == mapped[2].uuid
        assert len({r.uuid for r in mapped}) == 2
        gate.write_text("")
        assert first.get(timeout=30) == "ada" and mapped[1].get(timeout=30) == "cy"
        later = welcome.options(key="welcome:ada")(str(gate), "ada")   # ended: free again
        assert later.uuid != first.uuid and later.get(timeout=30) == "ada"
        with pytest.raises(ValueError, match="takes a key that is a function of each call"):
            welcome.options(key="welcome:dan").map([str(gate)], ["dan"])
        with pytest.raises(TypeError, match="key must be a str"):
            welcome.options(key=lambda path, name: 7).map([str(gate)], ["dan"])
        rows = query(autocron._state.store.path, "SELECT count(*) FROM tasks WHERE args "
                                                 "LIKE ?", ("%dan%",))
        assert rows == [(0,)]                       # nothing stored by the refused calls

    def test_a_task_reports_its_progress_and_knows_its_own_call(self, pool, tmp_path):
        gate = tmp_path / "gate"
        result = autocron.delay(report_progress)(100_000, str(gate))
        wait_until(lambda: result.progress == (100_000, 100_000, "step 100000"), 30,
                   "the last report of a running task")
        assert result.status == "running" and " 100000/100000 step 100000>" in repr(result)
        assert "<progress value='100000' max='100000'></progress> <small>100000/100000 step " \
               "100000</small>" in result._repr_html_()
        gate.write_text("")
        assert result.get(timeout=30) == result.uuid          # current(): its own call
        assert result.progress == (100_000, 100_000, "step 100000")   # kept at its end
        assert add(1, 1).progress is None and add(1, 1).key is None
        assert add.options(key="k1", hours=1)(1, 2).key == "k1"
        # outside a task both do nothing, also where a call runs here (inactive)
        assert autocron.progress(1, 2, "here") is None and autocron.current() is None

    def test_a_million_reports_reach_the_database_a_few_times_a_second(self, tmp_path,
                                                                         monkeypatch):
        # the worker's side in this process: its running call, its store, its reporter
        store = autocron._SqliteStore(tmp_path / "a.db")
        written = []
        monkeypatch.setattr(store, "set_progress", lambda task_id, text: written.append(text))
        monkeypatch.setattr(autocron, "_worker_store", lambda: store)
        monkeypatch.setattr(autocron, "_running", autocron._Run(7, b"", None, 0, uuid="a-7"))
        monkeypatch.setattr(autocron, "_IN_WORKER", True)
        monkeypatch.setattr(autocron, "_reporter", autocron._Reporter())
        began, reports = time.monotonic(), 0
        while reports < 1_000_000 and time.monotonic() - began < 1.5:
            reports += 1
            autocron.progress(reports, 1_000_000)
        took = time.monotonic() - began
        autocron._reporter.flush()                     # the call ends: its last report
        assert len(written) <= took / autocron._PROGRESS_EVERY + 2, (len(written), reports)
        assert json.loads(written[-1]) == [reports, 1_000_000, ""]

    def test_a_new_attempt_starts_with_no_progress(self, pool, tmp_path):
        gate, counter = tmp_path / "gate", str(tmp_path / "count")
        result = autocron.delay(retries=1, retry_delay=60)(report_progress)(3, str(gate),
                                                                            counter)
        wait_until(lambda: result.attempts == 1 and result.status == "waiting",
                   what="the first attempt to fail")
        assert result.progress is None

    @pytest.mark.parametrize("args, message", [
        (("3",), "progress() takes numbers for done and total (total may be None), "
                 "got done='3'"),
        ((None,), "progress() takes numbers for done and total (total may be None), "
                  "got done=None"),
        ((1, True), "progress() takes numbers for done and total (total may be None), "
                    "got total=True"),
        ((1, 2, 3), "progress() takes a str for text, got int"),
    ])
    def test_a_bad_progress_report_is_refused(self, args, message):
        with pytest.raises(TypeError) as caught:
            autocron.progress(*args)
        assert str(caught.value) == message

    @pytest.mark.parametrize("args, message", [
        ((float("inf"),), "progress() takes finite numbers, got done=inf"),
        ((1, float("-inf")), "progress() takes finite numbers, got total=-inf"),
        ((10 ** 400,), "progress() takes finite numbers, got done=1000000000000"),
    ])
    def test_a_progress_report_beyond_the_numbers_is_refused(self, args, message):
        with pytest.raises(ValueError) as caught:
            autocron.progress(*args)
        assert str(caught.value).startswith(message)

    def test_progress_shows_whole_numbers_whole(self):
        assert autocron._progress_text((1_000_000, 2_000_000, "rows")) == \
            " 1000000/2000000 rows"
        assert autocron._progress_text((0.5, None, "")) == " 0.5"

    @pytest.mark.parametrize("options, message", [
        ({"key": "a\udc80"}, "key must be text that UTF-8 can encode"),
        ({"retries": 10 ** 30}, "retries must be a whole number from 0 to"),
        ({"priority": 2 ** 63}, "priority must be an int from"),
    ])
    def test_values_the_database_cannot_hold_are_refused_at_once(self, options, message):
        with pytest.raises(ValueError, match=message):
            add.options(**options)

    def test_a_copy_of_a_result_is_the_same_handle(self, tmp_path):
        autocron.start(str(tmp_path / "first.db"), workers=1)
        result = add(1, 2)
        assert result.get(timeout=30) == 3
        autocron.stop()
        autocron.start(str(tmp_path / "second.db"), workers=0)   # a copy keeps its database
        for made in (copy.copy(result), copy.deepcopy(result)):
            assert made.uuid == result.uuid and made.get(timeout=1) == 3

    def test_a_key_holds_between_retries(self, pool, tmp_path):
        counter = str(tmp_path / "count")
        call = autocron.delay(retries=1, retry_delay=2)(fails_once).options(key="flaky")
        first = call(counter)
        wait_until(lambda: first.attempts == 1 and first.status == "waiting",
                   what="the first attempt to fail")
        assert call(counter).uuid == first.uuid     # waiting for its retry: unfinished
        assert first.get(timeout=30) == "done"

    def test_callers_racing_with_one_key_store_one_call(self, database):
        autocron._open_store(database).close()        # the schema, before the race
        racers = [spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=0)
            late = test_autocron.add.options(hours=1)
            for round in range(40):
                late.options(key=f"race:{round}")(round, 0)
        """, database) for _ in range(4)]
        for racer in racers:
            _, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
        rows = query(database, "SELECT key, count(*) FROM tasks WHERE key LIKE ? GROUP BY key",
                     ("race:%",))
        assert len(rows) == 40 and {count for _, count in rows} == {1}

    def test_the_readme_s_fan_out_example_runs_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "fanout.py")
        assert done.stdout == "43\n", done.stdout

    def test_the_readme_s_pipeline_example_runs_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "pipeline.py")
        assert done.stdout == "2 pages, 43 bytes\nits dependency __main__.fetch failed\n", \
            done.stdout

    def test_the_readme_s_progress_example_runs_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "progress.py")
        assert done.stdout == "True (2, 2, 'https://example.org/b')\n", done.stdout

    def test_connection_is_for_postgresql(self, tmp_path, postgres_server):
        assert autocron.start(tmp_path / "a.db", workers=0) is False
        with postgres_server.connect(postgres_server.database) as con:
            with pytest.raises(ValueError, match=re.escape(
                    f"connection= stores a call in your own PostgreSQL transaction; "
                    f"{tmp_path / 'a.db'} is an SQLite file: call without it")):
                add.options(connection=con)(1, 1)
        with pytest.raises(TypeError, match="connection must be an open psycopg 3 connection"):
            add.options(connection=sqlite3.connect(":memory:"))

    def test_a_call_is_checked_against_the_function_s_signature(self, pool):
        def send_mail(to, text, *, cc=None):
            return to
        send = autocron.delay(send_mail)
        count = autocron._state.store.counts(autocron._state.store.now())[0]
        for args, kwargs, problem in [
                (("ada",), {}, "missing a required argument: 'text'"),
                (("ada", "hi"), {"schedule": 5}, "got an unexpected keyword argument "
                                                 "'schedule'"),
                (("ada", "hi", "bob"), {}, "too many positional arguments")]:
            with pytest.raises(TypeError) as caught:
                send(*args, **kwargs)
            name = f"test_autocron.{send_mail.__qualname__}"
            assert str(caught.value) == f"{name}(): {problem}; nothing was stored"
        with pytest.raises(TypeError, match="too many positional arguments; nothing was"):
            send.map(["a"], ["b"], ["c"])
        assert autocron._state.store.counts(autocron._state.store.now())[0] == count
        assert send("ada", "hi", cc="bob").get(timeout=30) == "ada"
        assert autocron.delay(print)("builtins need no signature").get(timeout=30) is None

    def test_retry_on_retries_only_those_exceptions(self, pool, tmp_path):
        counter = str(tmp_path / "count")

        def fails(kind):
            count_attempt(counter)
            raise {"key": KeyError, "value": ValueError}[kind]("no")
        picky = autocron.delay(retries=2, retry_on=(KeyError, OSError))(fails)
        with pytest.raises(autocron.TaskError, match="ValueError"):
            picky("value").get(timeout=30)                      # not retried
        assert len(Path(counter).read_text().split()) == 1
        retried = picky("key")
        with pytest.raises(autocron.TaskError, match="KeyError"):
            retried.get(timeout=30)                             # retried while it may
        assert retried.attempts == 3
        subclass = autocron.delay(retries=1)(fails).options(retry_on=LookupError)("key")
        with pytest.raises(autocron.TaskError, match="KeyError"):
            subclass.get(timeout=30)
        assert subclass.attempts == 2           # a KeyError is a LookupError

    def test_options_combine_with_a_later_start(self, pool, tmp_path):
        result = autocron.delay(seconds=0.3, retries=1)(fails_once)(str(tmp_path / "count"))
        assert result.get(timeout=30) == "done" and result.attempts == 2

    @pytest.mark.parametrize("catch_up, runs", [(False, 0), (True, 1)])
    def test_missed_cron_runs_are_caught_up_only_when_asked(self, database, monkeypatch,
                                                             tmp_path, catch_up, runs):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        name = "test_autocron.cron_job"
        try:
            autocron._open_store(database).register_cron(
                name, CronExpression("0 9 * * *"), cron_job, catch_up,   # the pool is down
                autocron._next_due(CronExpression("0 9 * * *"), clock.now))
            clock.now += 3600                                            # 09:59:30
            autocron.cron("0 9 * * *", catch_up=catch_up)(cron_job)
            autocron.start(database, workers=1)
            settle()
            catch_ups = [r for r in autocron.get_results() if r._fetch().name == name]
            assert len(catch_ups) == runs
            for run in catch_ups:
                assert run.get(timeout=30) == "ran"
            assert (len(log.read_text().split()) if log.exists() else 0) == runs
            row = autocron._open_store(database).read("SELECT next_due, last_run FROM crons")[0]
            assert datetime.fromtimestamp(row[0]) == datetime(2030, 1, 2, 9, 0)
            assert (row[1] is not None) is bool(runs)
        finally:
            forget_cron(name)


@autocron.delay(retries=3)
def block_with_retries(folder, name="task"):
    """block() with retries left: an interrupted attempt runs again."""
    return block.__wrapped__(folder, name)


@autocron.delay
def fork_and_wait(folder):
    """Fork a child that keeps the worker's pipes open, then wait to be stopped."""
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    (Path(folder) / "child.pid").write_text(str(child))
    time.sleep(60)


@autocron.delay
def start_sleeper(folder, wait=False):
    """Start a `sleep 60` of the task's own; return its pid (or wait to be stopped)."""
    sleeper = subprocess.Popen(["sleep", "60"])
    (Path(folder) / "sleeper.pid").write_text(str(sleeper.pid))
    if wait:
        time.sleep(60)
    return sleeper.pid


@autocron.delay
def wide_after(gate, log, number):
    """Wait for the file `gate`, note `number` in `log`, return a value too wide for a full
    disk (100 kB: its write needs new room in the database)."""
    while not os.path.exists(gate):
        time.sleep(0.01)
    with open(log, "a") as file:
        file.write(f"{number}\n")
    return f"{number}:" + "x" * 100_000


@autocron.delay
def note_after(gate, log, number):
    """Wait for the file `gate`, note `number` in `log`, return it."""
    while not os.path.exists(gate):
        time.sleep(0.01)
    with open(log, "a") as file:
        file.write(f"{number}\n")
    return number


def bytes_written(pid):
    """How many bytes a process has written so far, to files and pipes alike (Linux)."""
    with open(f"/proc/{pid}/io") as file:
        return next(int(line.split()[1]) for line in file if line.startswith("wchar:"))


def logged(path):
    """The lines a task wrote to `path` so far."""
    return Path(path).read_text().split() if os.path.exists(path) else []


@autocron.delay
def start_session_sleeper(folder, wait=False):
    """Start a `sleep 300` in a session of its own (out of the worker's process group), and
    one that a shell leaves behind in another (an orphan: its parent is gone at once); write
    their pids, then return them (or wait to be stopped)."""
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    subprocess.run(["sh", "-c", f"setsid sleep 300 >/dev/null 2>&1 & echo $! >{folder}/orphan"],
                   check=True)
    pids = [sleeper.pid, int(Path(folder, "orphan").read_text())]
    (Path(folder) / "sleepers.pid").write_text(" ".join(map(str, pids)))
    if wait:
        time.sleep(300)
    return pids


@contextlib.contextmanager
def sleepers_ended(folder, what):
    """The pids of start_session_sleeper's processes, once written; after the block they must
    end within seconds (and are killed in any case, so that a failure leaves none)."""
    path = Path(folder) / "sleepers.pid"
    pids = [int(p) for p in wait_until(lambda: path.exists() and path.read_text().split(),
                                       what="the sleepers' pids")]
    try:
        yield pids
        wait_until(lambda: not any(alive(p) for p in pids), 10, what)
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def read_pid(path):
    """The pid a task wrote to `path`, once it is there."""
    return int(wait_until(lambda: path.exists() and path.read_text(), what=f"{path.name}"))


def kill_a_paused_pool(database, gate, log, task, ready):
    """An owner's one-worker pool and two calls of test_autocron.`task`(gate, log, n): once
    the first runs and the second waits behind it, the manager is paused and the gate
    opened; once ready(worker pid) says so, the worker, the manager and the owner are
    killed (kill -9), and all three have ended. The two calls' ids."""
    owner = spawn_python(f"""
        import sys, autocron, test_autocron
        autocron.start(sys.argv[1], workers=1)
        calls = [test_autocron.{task}(sys.argv[2], sys.argv[3], n) for n in range(2)]
        print(*[call.uuid for call in calls], flush=True)
        sys.stdin.read()
    """, database, gate, log, stdin=subprocess.PIPE)
    manager = None
    try:
        uids = owner.stdout.readline().split()
        manager, (worker,) = wait_until(lambda: autocron._open_store(database).pool_pids()[
            1:] if len(autocron._open_store(database).pool_pids()[2]) == 1 else None,
            what="the owner's pool")
        wait_until(lambda: query(database, "SELECT status FROM tasks ORDER BY id")
                   == [("running",), ("queued",)], what="a task running, one held")
        os.kill(manager, signal.SIGSTOP)
        Path(gate).write_text("")
        wait_until(lambda: ready(worker), what="the worker to be where the test wants it")
        for pid in (worker, manager, owner.pid):
            os.kill(pid, signal.SIGKILL)
        owner.wait(timeout=30)
        wait_until(lambda: not alive(worker) and not alive(manager), what="their ends")
    finally:
        if manager is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(manager, signal.SIGKILL)
        owner.kill()
        owner.communicate(timeout=30)
    return uids


@pytest.fixture
def call_store(database):
    """A store of the database (nothing started), and the record of a call of add(1, 1) for
    its add_calls()."""
    store = autocron._open_store(database)
    yield store, autocron._dump_record(add, ("import", "test_autocron", "add"), (1, 1), {})
    store.close()


def row_of(uid):
    """The row id in a task id."""
    return int(uid.rsplit("-", 1)[1])


class TestDependencies:
    """A Result as an argument: the call waits for it and runs with its value."""

    def test_chains_fan_ins_and_diamonds_run_with_their_dependencies_values(self, pool):
        assert add(add(add(1, 1), 1), 1).get(timeout=30) == 4                 # a chain
        assert total(add.map(range(10), range(10))).get(timeout=30) == 90     # a fan-in
        top = add(1, 2)
        assert add(add(top, 10), add(top, 20)).get(timeout=30) == 36          # a diamond
        nested = unpack({"a": add(1, 1)}, Box((add(2, 2),)), {add(3, 3)})
        assert nested.get(timeout=30) == 2 + 4 + 6
        result = autocron.get_result(nested.uuid)
        assert result.status == "ready"

    def test_a_call_waits_in_the_database_until_its_dependency_ends(self, pool, tmp_path):
        first = block(str(tmp_path), "first")
        after = add(first, 1)
        wait_until(lambda: (tmp_path / "first.pid").exists(), what="the first call to start")
        assert after.status == "waiting"
        assert query(pool, "SELECT status, waits FROM tasks WHERE id = ?",
                     (row_of(after.uuid),)) == [("blocked", 1)]
        (tmp_path / "first.go").write_text("")
        assert after.get(timeout=30) == int((tmp_path / "first.pid").read_text()) + 1

    def test_a_failed_dependency_fails_its_dependents_and_theirs(self, pool):
        failed = fail("no such page")
        good = add(1, 1)
        merged = total([failed, good])
        above = add(merged, 1)
        with pytest.raises(autocron.DependencyFailed) as caught:
            merged.get(timeout=30)
        assert str(caught.value) == (f"its dependency test_autocron.fail ({failed.uuid}) "
                                     "failed: ValueError: no such page")
        with pytest.raises(autocron.DependencyFailed) as caught:
            above.get(timeout=30)
        assert str(caught.value) == (f"its dependency test_autocron.total ({merged.uuid}) did "
                                     f"not run: test_autocron.fail ({failed.uuid}) failed: "
                                     "ValueError: no such page")
        assert good.get(timeout=30) == 2           # its other dependencies go on
        assert merged.attempts == 0                # it never ran
        late = add(failed, 1)                      # a dependency that failed already
        with pytest.raises(autocron.DependencyFailed, match="no such page"):
            late.get(timeout=5)

    def test_cancelling_a_waiting_call_ends_its_dependents(self, pool):
        later = add_in_an_hour(1, 2)
        after = add(later, 1)
        assert later.cancel() is True
        with pytest.raises(autocron.DependencyFailed, match=re.escape(
                f"its dependency test_autocron.add_in_an_hour ({later.uuid}) was cancelled")):
            after.get(timeout=30)
        blocked = add(add_in_an_hour(1, 1), 1)
        assert blocked.cancel() is True and blocked.status == "cancelled"

    def test_a_retry_by_hand_depends_on_what_its_call_depended_on(self, pool, tmp_path):
        first = block(str(tmp_path), "first")
        after = add(first, 1)
        assert after.cancel() is True
        store = autocron._state.store
        again = autocron.get_result(store.retry(after.uuid, store.now()))
        assert again.status == "waiting"                 # for first, as after was
        (tmp_path / "first.go").write_text("")
        assert again.get(timeout=30) == first.get(timeout=30) + 1
        failed = fail("x")
        dependent = add(failed, 1)
        with pytest.raises(autocron.DependencyFailed):
            dependent.get(timeout=30)
        retried = autocron.get_result(store.retry(dependent.uuid, store.now()))
        with pytest.raises(autocron.DependencyFailed, match=re.escape(failed.uuid)):
            retried.get(timeout=5)                       # its dependency failed still

    def test_a_result_as_an_argument_is_written_as_its_id(self, pool):
        first = add(1, 2)
        both = total([first, add(3, 4)])
        assert both.get(timeout=30) == 10
        text = autocron.get_result(both.uuid)._fetch().args
        assert text.startswith(f"[<Result {first.uuid}>, <Result ")

    def test_a_dependency_of_another_spelling_of_the_same_database_is_accepted(
            self, database, tmp_path):
        assert autocron.start(database, workers=1) is True
        if database.startswith("postgresql"):
            other = database.replace("127.0.0.1", "localhost")
        else:
            (tmp_path / "link").symlink_to(tmp_path)
            other = str(tmp_path / "link" / "autocron.db")
        assert other != database
        first = autocron.get_result(add(1, 1).uuid, database=other)
        assert add(first, 1).get(timeout=30) == 3

    def test_a_dependency_of_an_open_or_rolled_back_transaction_is_refused(self, pg):
        assert autocron.start(pg_url(pg), workers=1) is True
        with pg.connect(pg.database) as con:
            inside = add.options(connection=con)(1, 1)
            with pytest.raises(ValueError, match=re.escape(
                    f"the call {inside.uuid} is stored in your open transaction: commit it "
                    "first, or store this call in that transaction too")):
                add(inside, 1)
            assert add.options(connection=con)(inside, 1) is not None   # the same one
            con.rollback()
            with pytest.raises(ValueError, match=re.escape(
                    f"the call {inside.uuid} is not in the database: its transaction rolled "
                    "back")):
                add(inside, 1)

    def test_a_dependent_in_an_open_transaction_holds_up_no_other_call(self, pg, tmp_path):
        assert autocron.start(pg_url(pg), workers=2) is True
        first = block(str(tmp_path), "first")
        wait_until(lambda: first.status == "running", what="the first call to run")
        with pg.connect(pg.database) as con:
            after = add.options(connection=con)(first, 1)
            (tmp_path / "first.go").write_text("")
            assert first.get(timeout=30) > 0            # it ends while the transaction is open
            assert add(2, 2).get(timeout=30) == 4       # and other calls run
            con.commit()
        assert after.get(timeout=30) == first.get() + 1   # released after the commit

    def test_a_finished_dependency_outlives_a_cleanup_during_its_dependent_s_transaction(
            self, pg):
        assert autocron.start(pg_url(pg), workers=1) is True
        first = add(20, 21)
        assert first.get(timeout=30) == 41
        ended = first._fetch().finished
        wait_until(lambda: time.time() > ended + 1.5, what="its time-to-live of 1 s to pass")
        other = autocron._open_store(pg_url(pg))
        with pg.connect(pg.database) as con:
            after = add.options(connection=con)(first, 1)
            # a cleanup with a time-to-live of 1 s, while the dependent is not committed
            cleaner = threading.Thread(target=other.cleanup, args=(time.time(), 1))
            cleaner.start()
            cleaner.join(timeout=30)
            con.commit()
        other.close()
        assert after.get(timeout=30) == 42

    def test_a_dependency_that_finished_counts_at_once(self, pool):
        done = add(2, 3)
        assert done.get(timeout=30) == 5
        assert add(done, 1).get(timeout=30) == 6

    @pytest.mark.parametrize("waiter", ["wait_for_a_dependent", "await_a_dependent"])
    def test_get_or_await_of_a_call_that_depends_on_the_waiting_task_is_refused(self, pool,
                                                                                 waiter):
        with pytest.raises(autocron.TaskError, match="depends on this task, which would wait "
                                                     "for it forever"):
            globals()[waiter]().get(timeout=30)

    def test_a_result_that_cannot_be_a_dependency_is_refused_and_nothing_is_stored(
            self, pool, tmp_path):
        elsewhere = autocron.get_result(add(1, 1).uuid)
        elsewhere._store = autocron._open_store(str(tmp_path / "other.db"))
        with pytest.raises(ValueError, match=re.escape(
                f"a Result as an argument makes the call depend on it, and {elsewhere.uuid} "
                f"is a call of another database ({elsewhere._store.path}, not")):
            total([add(1, 1), elsewhere])
        with pytest.raises(TypeError, match=r"the call of add\(\) cannot be pickled: the "
                                            r"Result .* is inside an object that pickles "
                                            r"itself \(its own __reduce__"):
            add(SelfPickled(add(1, 1)), 1)
        with pytest.raises(TypeError, match=r"argument 2 of add\(\) cannot be pickled "
                                            r"\(list: "):
            add(add(1, 1), [add(1, 1), threading.Lock()])
        gone = add(5, 5)
        assert gone.get(timeout=30) == 10
        assert autocron._state.store.purge() >= 1           # as the admin tool's purge
        left = len(autocron.get_results())
        with pytest.raises(ValueError, match=re.escape(
                f"the call {gone.uuid} is not in")):
            add(gone, 1)
        assert len(autocron.get_results()) == left          # nothing stored

    def test_results_of_synchronous_runs_are_values_also_when_inactive(self):
        assert add(add(1, 2), 10).get() == 13              # inactive: both run here
        failed = fail("here")
        later = add(failed, 1)
        with pytest.raises(autocron.DependencyFailed, match=re.escape(
                f"its dependency test_autocron.fail ({failed.uuid}) failed: ValueError: "
                "here")):
            later.get()

    def test_a_result_of_a_synchronous_run_is_its_value(self, pool):
        autocron.stop()
        here, failed = add(1, 2), fail("here")          # inactive: run at once
        assert autocron.start(pool, workers=1) is True
        assert add(here, 10).get(timeout=30) == 13
        with pytest.raises(autocron.DependencyFailed, match=re.escape(
                f"its dependency test_autocron.fail ({failed.uuid}) failed: ValueError: "
                "here")):
            add(failed, 1).get(timeout=30)

    def test_ten_thousand_dependents_become_due_in_the_transaction_that_ends_theirs(
            self, call_store):
        store, record = call_store
        [(first, _)] = store.add_calls("f", [autocron._NewCall("", record)], 0.0)
        [(second, _)] = store.add_calls("f", [autocron._NewCall("", record)], 0.0)
        found = store.add_calls("g", [autocron._NewCall("", record, deps=(first, second))
                                      for _ in range(10_000)], 0.0)
        ids = [row_of(uid) for uid, _ in found]

        def statuses():
            return dict(store.read("SELECT status, count(*) FROM tasks WHERE id >= ? "
                                   "GROUP BY status", (ids[0],)))
        assert statuses() == {"blocked": 10_000}
        now = store.now()
        for uid in (first, second):
            row = int(uid.rsplit("-", 1)[1])
            with store.transaction() as con:     # as finish() ends a call (no lease here)
                store._run(con, "UPDATE tasks SET status = 'ready', finished = ? WHERE "
                                "id = ?", (now, row))
                store._release(con, [row], now)
                after = dict(store._run(con, "SELECT status, count(*) FROM tasks WHERE id "
                                             ">= ? GROUP BY status", (ids[0],)).fetchall())
            assert after == ({"blocked": 10_000} if uid == first else {"waiting": 10_000})
        fan_in = store.add_calls("h", [autocron._NewCall("", record, deps=tuple(
            uid for uid, _ in found))], 0.0)
        assert store.read("SELECT status, waits FROM tasks WHERE id = ?",
                          (row_of(fan_in[0][0]),)) == [("blocked", 10_000)]

    def test_finished_dependencies_and_steps_outlive_their_time_to_live_while_needed(
            self, call_store):
        store, record = call_store
        [(dep, _)] = store.add_calls("f", [autocron._NewCall("", record)], 0.0)
        [(other, _)] = store.add_calls("f", [autocron._NewCall("", record)], 0.0)
        [(child, _)] = store.add_calls("c", [autocron._NewCall("", record, step="s:1")],
                                       0.0, parent=row_of(other))
        [(waiter, _)] = store.add_calls("g", [autocron._NewCall(
            "", record, deps=(dep, other))], 0.0)
        row = {uid: row_of(uid) for uid in (dep, other, child, waiter)}
        for uid in (dep, child):
            store.write("UPDATE tasks SET status = 'ready', finished = 100 WHERE id = ?",
                        (row[uid],))
        assert store.cleanup(1000.0, 10) == 0          # needed by waiter and by other
        assert store.purge() == 0
        store.write("UPDATE tasks SET status = 'ready', finished = 500 WHERE id IN (?, ?)",
                    (row[other], row[waiter]))
        assert store.cleanup(505.0, 10) == 0     # their time-to-live counts from 500
        assert store.cleanup(511.0, 10) == 4
        assert store.read("SELECT count(*) FROM deps")[0][0] == 0
        assert store.read("SELECT count(*) FROM steps")[0][0] == 0


class TestDurableSteps:
    """A task that runs again gets back the calls its earlier attempt made."""

    def test_a_task_killed_at_step_7_resumes_at_step_7(self, database, tmp_path):
        assert autocron.start(database, workers=1) is True
        result = ten_steps(str(tmp_path))
        assert result.get(timeout=120) == [step * 10 for step in range(10)]
        assert result.attempts == 2 and (tmp_path / "killed").exists()
        assert [(tmp_path / f"step{step}").read_text().count("run") for step in range(10)] \
            == [1] * 10                            # each step ran once

    def test_calls_an_earlier_attempt_made_and_this_one_did_not_are_logged(
            self, call_store, monkeypatch, caplog):
        store, record = call_store
        [(parent, _)] = store.add_calls("p", [autocron._NewCall("", record)], 0.0)
        row = row_of(parent)
        made = store.add_calls("c", [autocron._NewCall("", record, step=step)
                                     for step in ("d1:1", "d2:1", "d2:2")], 0.0,
                               parent=row)
        monkeypatch.setattr(autocron, "_worker_store", lambda: store)
        task = autocron._Run(row, record, None, 0, uuid=parent, attempts=1)
        with caplog.at_level(logging.WARNING, "autocron"):
            autocron._tell_unmatched_steps(task, {"d2": 1, "d3": 1})
        assert (f"task {parent} ran again and did not make 2 of the calls its earlier "
                f"attempt made; they keep running: {made[0][0]}, {made[2][0]}") \
            in caplog.text

    def test_a_step_whose_arguments_hold_a_set_comes_back(self, database, tmp_path):
        assert autocron.start(database, workers=1) is True
        assert step_with_a_set(str(tmp_path)).get(timeout=120) == "done"
        assert (tmp_path / "words").read_text().count("run") == 1

    def test_a_step_that_failed_is_stored_anew(self, database, tmp_path):
        assert autocron.start(database, workers=1) is True
        assert step_that_failed(str(tmp_path)).get(timeout=60) == "fine"
        assert (tmp_path / "first").read_text().count("x") == 2


@autocron.delay(queue="mail")
def send_note(text):
    return f"sent {text}"


class TestQueues:
    """Every call has a queue; a pool may serve some queues only."""

    def test_every_call_has_a_queue(self, pool):
        plain, mail = add(1, 1), send_note("hi")
        other = add.options(queue="reports")(2, 2)
        assert (plain.queue, mail.queue, other.queue) == ("default", "mail", "reports")
        assert send_note.options(queue="urgent")("x").queue == "urgent"
        assert [plain.get(timeout=30), mail.get(timeout=30), other.get(timeout=30)] == [
            2, "sent hi", 4]
        assert autocron.get_result(mail.uuid).queue == "mail"
        assert add(1, 2).queue == "default" and autocron.delay(add.__wrapped__)(0, 0).queue \
            == "default"

    def test_a_cron_job_s_runs_have_its_queue(self, database):
        store = autocron._open_store(database)
        try:
            schedule = autocron.CronExpression("* * * * *")
            store.register_cron("job", schedule, cron_job, False, 0.0, None, "nightly")
            with store.transaction() as con:
                (uid,) = store.due_crons(con, store.now())
            assert autocron.Result(uid, store).queue == "nightly"
        finally:
            store.close()

    def test_a_pool_serves_only_its_queues(self, database):
        assert autocron.start(database, workers=1, queues=["gpu"]) is True
        other, mine = add(1, 1), add.options(queue="gpu")(2, 2)
        assert mine.get(timeout=30) == 4
        with pytest.raises(TimeoutError):
            other.get(timeout=1)                      # not this pool's queue
        assert other.status == "waiting"
        info = json.loads(cli("info", "--json", db=database).stdout)
        assert info["queues"] == {      # gpu: its call started in the last minute, and ended
            "default": {"waiting": 1, "running": 0, "started_last_minute": 0,
                        "concurrency": None, "rate": None},
            "gpu": {"waiting": 0, "running": 0, "started_last_minute": 1, "concurrency": None,
                    "rate": None}}
        lines = cli("info", db=database).stdout.splitlines()
        autocron.stop()
        assert autocron.start(database, workers=1) is True          # serves all queues
        assert other.get(timeout=30) == 2
        assert "queues     default: 1 waiting, 0 running, 0 started in the last minute; gpu: 0 " \
            "waiting, 0 running, 1 started in the last minute" in lines

    def test_info_lists_named_queues(self, database):
        autocron.start(database, workers=0)
        later = autocron.delay(hours=1)(send_note.__wrapped__)
        later.options(queue="mail")("a")
        later.options(queue="mail")("b")
        later("c")
        out = cli("info", db=database).stdout.splitlines()
        assert "queues     default: 1 waiting, 0 running, 0 started in the last minute; mail: " \
            "2 waiting, 0 running, 0 started in the last minute" in out

    @pytest.mark.parametrize("make", [
        lambda: autocron.delay(queue="")(add.__wrapped__),
        lambda: autocron.delay(queue="q" * 101)(add.__wrapped__),
        lambda: autocron.delay(queue=5)(add.__wrapped__),
        lambda: add.options(queue=" "),
        lambda: add.options(queue="tab\there"),
        lambda: autocron.cron("* * * * *", queue="")(cron_job),
    ])
    def test_a_bad_queue_name_is_refused(self, make):
        with pytest.raises(ValueError, match="a queue's name is printable text of 1 to 100 "
                                             "characters, got "):
            make()

    @pytest.mark.parametrize("queues, message", [
        ("gpu", "queues takes a list of queue names (None: all), got 'gpu'"),
        ([], "queues takes a list of queue names (None: all), got an empty one: a pool that "
             "serves no queue runs nothing"),
        ([""], "a queue's name is printable text of 1 to 100 characters, got ''"),
    ])
    def test_bad_queues_of_a_pool_are_refused(self, tmp_path, queues, message):
        with pytest.raises(ValueError) as caught:
            autocron.start(str(tmp_path / "q.db"), workers=1, queues=queues)
        assert str(caught.value) == message
        assert not is_active()


@autocron.delay(queue="slow")
def stamped(log, key, seconds):
    """Note when this call started and ended (a line "key start end"), in log."""
    started = time.time()
    time.sleep(seconds)
    with open(log, "a") as file:
        file.write(f"{key} {started!r} {time.time()!r}\n")
    return key


def stamps(log):
    """[(start, end)] of the calls stamped() noted in log."""
    return [(float(a), float(b)) for _, a, b in
            (line.split() for line in Path(log).read_text().splitlines())]


def most_at_once(intervals):
    """The largest number of the intervals [(start, end)] that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


class TestLimits:
    """autocron.limit(): stored in the database, holding for every pool."""

    def test_a_concurrency_limit_holds_and_holds_up_no_other_queue(self, database, tmp_path):
        assert autocron.limit("slow", concurrency=2, database=database) == {
            "concurrency": 2, "rate": None}
        assert autocron.start(database, workers=4) is True
        log = str(tmp_path / "stamps")
        slow = [stamped(log, i, 0.3) for i in range(8)]
        quick = [add(i, i) for i in range(20)]            # the default queue runs meanwhile
        assert [r.get(timeout=60) for r in quick] == [2 * i for i in range(20)]
        assert any(r.status == "waiting" for r in slow)   # the slow ones still go on
        assert [r.get(timeout=60) for r in slow] == list(range(8))
        assert most_at_once(stamps(log)) == 2

    def test_a_rate_limit_holds_in_every_window(self, database, tmp_path):
        autocron.limit("slow", rate="4/second", database=database)
        assert autocron.start(database, workers=3) is True
        log = str(tmp_path / "stamps")
        calls = [stamped(log, i, 0) for i in range(12)]
        assert [r.get(timeout=60) for r in calls] == list(range(12))
        # the starts as autocron counts them (a worker's first call also imports its module)
        starts = sorted(r._fetch().started for r in calls)
        windows = [sum(1 for s in starts if first <= s < first + 1) for first in starts]
        assert max(windows) == 4, starts             # 4 in a second, never more
        assert starts[-1] - starts[0] >= 2           # 12 starts take 2 windows at least

    def test_the_readme_s_limits_example_runs_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "limits.py")
        assert done.stdout == ("['sent to ada', 'sent to bob', 'sent to eve']\nmail "
                               "{'concurrency': 2, 'rate': '100/minute'}\n"), done.stdout

    def test_limits_are_stored_kept_and_lifted(self, tmp_path):
        database = str(tmp_path / "limits.db")
        assert autocron.limit("mail", concurrency=2, database=database) == {
            "concurrency": 2, "rate": None}
        assert autocron.limit("mail", rate="100/m", database=database) == {
            "concurrency": 2, "rate": "100/minute"}          # concurrency kept
        assert autocron.limit("mail", database=database) == {
            "concurrency": 2, "rate": "100/minute"}          # nothing given: as stored
        assert autocron.limit("mail", concurrency=None, database=database) == {
            "concurrency": None, "rate": "100/minute"}
        assert autocron.limit("mail", rate=None, database=database) == {
            "concurrency": None, "rate": None}
        assert autocron._open_store(database).limits() == {}

    @pytest.mark.parametrize("options, message", [
        (dict(concurrency=0), "concurrency must be a whole number, 1 or more, or None (no "
                              "limit); got 0"),
        (dict(concurrency=1.5), "concurrency must be a whole number, 1 or more, or None"),
        (dict(rate="10/day"), 'rate must be "N/second", "N/minute" or "N/hour" (or N/s, N/m, '
                              "N/h), N 1 or more, or None (no rate limit); got '10/day'"),
        (dict(rate="0/s"), "rate must be"),
        (dict(rate=10), "rate must be"),
    ])
    def test_a_bad_limit_is_refused(self, tmp_path, options, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            autocron.limit("q", database=str(tmp_path / "bad.db"), **options)
        with pytest.raises(ValueError, match="a queue's name is printable text"):
            autocron.limit("", concurrency=1, database=str(tmp_path / "bad.db"))

    def test_the_admin_tool_sets_and_shows_limits(self, tmp_path):
        database = str(tmp_path / "admin.db")
        autocron._open_store(database).close()
        done = cli("limit", "mail", "--concurrency", "3", "--rate", "50/s", db=database)
        assert (done.returncode, done.stdout) == (0, "queue mail: concurrency 3, rate "
                                                     "50/second\n"), done.stderr
        done = cli("limit", "mail", "--rate", "none", db=database)
        assert done.stdout == "queue mail: concurrency 3\n"
        info = json.loads(cli("info", "--json", db=database).stdout)
        assert info["queues"]["mail"] == {"waiting": 0, "running": 0, "started_last_minute": 0,
                                          "concurrency": 3, "rate": None}
        assert "queues     mail: 0 waiting, 0 running, 0 started in the last minute " \
            "(concurrency 3)" in cli("info", db=database).stdout
        for args, line in ((("--concurrency", "0"), "--concurrency takes a whole number, 1 "
                                                    "or more, or none; got '0'"),
                           (("--rate", "fast"), 'rate must be "N/second"')):
            done = cli("limit", "mail", *args, db=database)
            assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
            assert line in done.stderr


class TestAsyncConcurrency:
    """A worker runs up to async_concurrency async def calls at once on its event loop,
    never beside a synchronous call; a timeout or a forced cancel ends one coroutine."""

    def test_a_worker_runs_up_to_async_concurrency_calls_at_once(self, database, tmp_path):
        assert autocron.start(database, workers=1, async_concurrency=5) is True
        assert autocron._state.store.settings()["async_concurrency"] == 5     # stored
        results = rendezvous.map([str(tmp_path)] * 10, range(10), [5] * 10)
        values = [r.get(timeout=120) for r in results]     # one after another: 10 minutes
        assert [most for most, _, _ in values] == [5] * 10      # five together, never more
        assert len({pid for _, pid, _ in values}) == 1
        assert [uid for _, _, uid in values] == [r.uuid for r in results]
        assert [r.output for r in results] == [f"{n} began\n{n} ended\n" for n in range(10)]
        assert [r.progress for r in results] == [(n, 100, f"call {n}") for n in range(10)]

    def test_async_concurrency_1_runs_one_at_a_time(self, database, tmp_path):
        # a fresh worker's places behind its first call take no async call (PostgreSQL's
        # claim filled them in order once)
        assert autocron.start(database, workers=1, async_concurrency=1) is True
        results = rendezvous.map([str(tmp_path)] * 3, range(3), [2] * 3, [0.5] * 3)
        assert [r.get(timeout=60)[0] for r in results] == [1, 1, 1]

    def test_async_calls_never_run_beside_a_synchronous_one_nor_starve_it(self, database,
                                                                          tmp_path):
        assert autocron.start(database, workers=1, async_concurrency=10) is True
        folder = str(tmp_path)
        flood = async_nap.map([folder] * 100, range(100), [0.2] * 100)
        looks = [sync_look(folder, n) for n in range(3)]          # stored after the flood
        seen = [r.get(timeout=120) for r in looks]
        naps = [r.get(timeout=120) for r in flood]
        assert [beside for beside, _ in seen] == [[], [], []]
        assert not any(beside for beside, _ in naps)
        assert max(end for _, end in seen) < max(end for _, end in naps)    # not starved

    def test_a_timeout_or_a_forced_cancel_ends_that_coroutine_only(self, database, tmp_path):
        assert autocron.start(database, workers=1) is True
        folder = str(tmp_path)
        others = async_count.map([folder] * 3, ["a", "b", "c"], [3.0] * 3)
        timed = async_sleeper.options(timeout=1)(folder, "timed")
        forced = async_sleeper(folder, "forced")
        wait_until(lambda: len(running_marks(folder)) == 5, 60, "the calls to start")
        pids = worker_pids()
        assert forced.cancel(force=True) is True
        with pytest.raises(autocron.TaskTimeout, match="timed out after 1 s"):
            timed.get(timeout=60)
        with pytest.raises(autocron.Cancelled):
            forced.get(timeout=60)
        assert [r.get(timeout=60) for r in others] == ["a", "b", "c"]
        assert (tmp_path / "cancelled-timed").exists() and (tmp_path / "cancelled-forced").exists()
        assert worker_pids() == pids and len(pids) == 1           # its worker went on
        assert [r.attempts for r in others] == [1, 1, 1]

    def test_a_coroutine_that_blocks_its_loop_is_logged_and_its_timeout_ends_it(
            self, database, tmp_path, caplog):
        assert autocron.start(database, workers=1) is True
        folder = str(tmp_path)
        with caplog.at_level(logging.WARNING, "autocron"):
            neighbours = blocker_neighbour.map([folder] * 3, ["a", "b", "c"])
            wait_until(lambda: len(running_marks(folder)) == 3, 60, "the neighbours to start")
            blocker = loop_blocker.options(timeout=1)(folder)
            with pytest.raises(autocron.TaskTimeout, match="timed out after 1 s, and it did "
                                                           "not end 5 s after it was cancelled"):
                blocker.get(timeout=60)
            assert [r.get(timeout=60) for r in neighbours] == ["a", "b", "c"]
        assert f"task {blocker.uuid} has blocked the event loop of worker" in caplog.text
        assert (f"task {blocker.uuid} did not end 5 s after it was cancelled (timed out after "
                "1 s)") in caplog.text
        for name in "abc":          # they ran again, and used no retry (they have none)
            assert (tmp_path / f"runs-{name}").read_text() == "run\nrun\n"
        assert [r.attempts for r in neighbours] == [1, 1, 1]
        assert "blocked its event loop; it runs again without using a retry" in \
            autocron._open_store(database).read(
                "SELECT errors FROM tasks WHERE id = ?",
                (autocron._row_key(neighbours[0].uuid)[0],))[0][0]

    @pytest.mark.sqlite_only           # the worker's side, the same on both stores
    def test_an_async_call_s_threads_subprocesses_and_forks_are_its_own(self, database,
                                                                         tmp_path):
        assert autocron.start(database, workers=1) is True
        folder = str(tmp_path)
        threads = in_threads(folder)
        seen, plain, own, made = threads.get(timeout=60)
        assert seen == plain == own == threads.uuid and threads.output == "bytes\n"
        assert autocron.get_result(made).get(timeout=60) == 3
        neighbour = async_count(folder, "n", 4.0)
        wait_until(lambda: running_marks(folder) == ["async-n"], 60, "the neighbour to start")
        with pytest.raises(autocron.TaskTimeout):
            spawn_and_wait(folder).get(timeout=60)
        child = int((tmp_path / "child.pid").read_text())
        wait_until(lambda: not alive(child), 30, "its subprocess to end with it")
        assert forker(folder).get(timeout=60) is True          # the parent's value
        assert neighbour.get(timeout=60) == "n"
        assert sorted((tmp_path / "forked").read_text().split()) == ["child", "parent"]
        assert (tmp_path / "runs-n").read_text() == "run\n"

    def test_the_readme_s_async_example_runs_as_written(self, tmp_path):
        done = run_readme_example(tmp_path, "naps.py")
        assert done.stdout == "19900 'woke 7\\n'\n", done.stdout

    def test_async_concurrency_is_checked(self, database):
        for bad in (0, -1, 1001, 2.5, "5", True):
            with pytest.raises(ValueError, match="async_concurrency must be an int from 1 to "
                                                 "1000 .how many async def calls one worker "
                                                 "runs at once"):
                autocron.start(database, workers=1, async_concurrency=bad)
            assert not is_active()


class TestNothingLostNothingTwice:
    """Crashes of the manager, the owner or a worker never run a task twice or lose an outcome."""

    def test_tasks_a_worker_ran_are_not_run_again_when_the_manager_dies(self, database,
                                                                          tmp_path):
        log = str(tmp_path / "log")
        autocron.start(database, workers=1)
        blocker = block(str(tmp_path))
        read_pid(tmp_path / "task.pid")
        behind = [log_line(log, f"line{i}") for i in range(3)]
        wait_until(lambda: all(row_status(database, r) == "queued" for r in behind),
                   what="the hand-over")
        manager, _ = pool_pids()
        os.kill(manager, signal.SIGSTOP)              # it cannot write what the worker reports
        try:
            (tmp_path / "task.go").write_text("")
            wait_until(lambda: os.path.exists(log) and len(Path(log).read_text().split()) == 3,
                       what="the worker to run the queued tasks")
        finally:
            os.kill(manager, signal.SIGKILL)
        assert blocker.get(timeout=30) > 0                       # its outcome is not lost
        assert [r.get(timeout=30) for r in behind] == ["line0", "line1", "line2"]
        settle()
        assert Path(log).read_text().split() == ["line0", "line1", "line2"]

    def test_a_task_interrupted_by_a_dying_pool_is_retried(self, database, tmp_path):
        owner = spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            print(test_autocron.block_with_retries(sys.argv[2]).uuid, flush=True)
            sys.stdin.read()
        """, database, tmp_path, stdin=subprocess.PIPE)
        try:
            uid = owner.stdout.readline().strip()
            first = read_pid(tmp_path / "task.pid")
            owner.kill()
            owner.wait(timeout=30)
        finally:
            owner.kill()
            owner.communicate(timeout=30)
        wait_until(lambda: not alive(first), what="the old worker to end")
        assert autocron.start(database, workers=1) is True
        second = int(wait_until(lambda: (tmp_path / "task.pid").read_text() != str(first) and
                                (tmp_path / "task.pid").read_text(), what="the retry"))
        (tmp_path / "task.go").write_text("")
        result = autocron.get_result(uid)
        assert result.get(timeout=30) == second
        assert result.attempts == 2

    def test_a_quick_task_counts_one_attempt_and_its_start(self, pool):
        # Quick tasks start and end between two commits: their start is written together
        # with their outcome, and must still count.
        results = add.map(range(300), range(300))
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(300)]
        assert {r.attempts for r in results} == {1}
        assert all(r._fetch().started is not None for r in results)

    def test_attempts_count_real_starts(self, database, tmp_path):
        counter = str(tmp_path / "count")

        def always():
            raise KeyError(f"attempt {count_attempt(counter)}")
        autocron.start(database, workers=1)
        blocker = block(str(tmp_path))
        pid = read_pid(tmp_path / "task.pid")
        queued = autocron.delay(retries=1)(always)()
        wait_until(lambda: row_status(database, queued) == "queued", what="the hand-over")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(autocron.TaskError, match="killed by signal 9"):
            blocker.get(timeout=30)
        with pytest.raises(autocron.TaskError, match="attempt 2"):
            queued.get(timeout=30)
        assert queued.attempts == 2 and len(Path(counter).read_text().split()) == 2

    def test_cancelling_a_waiting_cron_run_keeps_the_job(self, database, monkeypatch,
                                                         tmp_path):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        name = "test_autocron.cron_job"
        try:
            autocron.cron("* * * * *")(cron_job)
            autocron.start(database, workers=1)
            blocker = block(str(tmp_path))
            read_pid(tmp_path / "task.pid")
            at_nine = autocron.delay(schedule=datetime(2030, 1, 1, 9, 0))(add.__wrapped__)
            fillers = [at_nine(i, i) for i in range(2 * autocron._PREFETCH)]  # due before it
            clock.now += 60
            wake_pool()
            run = wait_until(lambda: [r for r in autocron.get_results()
                                      if r._fetch().name == name], what="the run")[0]
            assert row_status(database, run) == "waiting"
            assert run.cancel() is True
            (tmp_path / "task.go").write_text("")
            autocron.wait([blocker] + fillers, timeout=60)
            clock.now += 60                            # the next due time runs
            wake_pool()
            wait_until(lambda: log.exists() and log.read_text() == "run\n", what="the next run")
        finally:
            forget_cron(name)

    @pytest.mark.slow
    def test_a_task_queued_behind_another_can_always_be_cancelled(self, database, tmp_path):
        counter = str(tmp_path / "count")
        log = str(tmp_path / "log")

        def slow():
            time.sleep(60)

        def fails_once():
            if count_attempt(counter) % 2:
                raise RuntimeError("once")
            return "again"
        autocron.start(database, workers=1)
        # the second round runs after a whole first one (a worker killed at a timeout and
        # replaced, a retry, a cancel); more rounds would repeat it, each behind a longer
        # restart pause of the killed worker (it died young: 0.5, 1, 2, 4 s)
        for round_ in range(2):
            with pytest.raises(autocron.TaskError, match="timed out"):
                autocron.delay(timeout=0.2)(slow)().get(timeout=30)
            assert autocron.delay(retries=1)(fails_once)().get(timeout=30) == "again"
            (tmp_path / "task.go").unlink(missing_ok=True)
            (tmp_path / "task.pid").unlink(missing_ok=True)
            blocker = block(str(tmp_path))
            queued = log_line(log, f"round{round_}")
            assert queued.cancel() is True, f"round {round_}"
            (tmp_path / "task.go").write_text("")
            blocker.get(timeout=30)
            assert queued.status == "cancelled"
        settle()
        assert not os.path.exists(log)

    def test_a_timeout_is_settled_while_a_forked_child_holds_the_pipe(self, pool, tmp_path):
        result = autocron.delay(timeout=1)(fork_and_wait.__wrapped__)(str(tmp_path))
        child = read_pid(tmp_path / "child.pid")
        with pytest.raises(autocron.TaskTimeout, match="^timed out after 1 s$"):
            result.get(timeout=20)
        wait_until(lambda: not alive(child), 10, "the task's child to end with its worker")
        assert add(1, 2).get(timeout=30) == 3

    def test_no_process_a_task_started_outlives_its_worker(self, pool, tmp_path):
        stopped = autocron.delay(timeout=2)(start_sleeper.__wrapped__)(str(tmp_path), True)
        with pytest.raises(autocron.TaskError, match="timed out"):
            stopped.get(timeout=30)
        wait_until(lambda: not alive(read_pid(tmp_path / "sleeper.pid")), 10,
                   "the sleeper of a timed-out task to end")
        (tmp_path / "sleeper.pid").unlink()
        left = start_sleeper(str(tmp_path)).get(timeout=30)
        # ... and one that a task leaves running ends with the task (issue 20, item 14:
        # before, it lived on until the pool stopped)
        wait_until(lambda: not alive(left), 10, "the sleeper to end with its task")

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="macOS: the group only")
    def test_processes_in_sessions_of_their_own_die_when_their_task_times_out(self, pool,
                                                                              tmp_path):
        result = autocron.delay(timeout=1)(start_session_sleeper.__wrapped__)(str(tmp_path),
                                                                               True)
        with sleepers_ended(tmp_path, "the sleepers of a timed-out task to end"):
            with pytest.raises(autocron.TaskTimeout, match="^timed out after 1 s$"):
                result.get(timeout=30)
        assert add(1, 2).get(timeout=30) == 3

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="macOS: the group only")
    def test_processes_in_sessions_of_their_own_die_when_the_pool_stops(self, pool, tmp_path):
        result = start_session_sleeper(str(tmp_path), True)
        with sleepers_ended(tmp_path, "the sleepers of a stopped task to end"):
            wait_until(lambda: result.status == "running", what="the task to run")
            autocron.stop(timeout=0.5)
        assert result.status == "error"

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="macOS: the group only")
    def test_processes_a_task_leaves_behind_die_at_its_end_and_its_worker_goes_on(self,
                                                                               database,
                                                                               tmp_path):
        autocron.start(database, workers=1)
        worker = wait_until(lambda: worker_pids(), what="the worker")[0]
        result = start_session_sleeper(str(tmp_path))
        with sleepers_ended(tmp_path, "the sleepers to end with their task") as pids:
            assert result.get(timeout=30) == pids
        assert add(1, 2).get(timeout=30) == 3
        assert worker_pids() == [worker]

    def test_a_kill_meant_for_a_finished_task_spares_the_next_one(self, database, tmp_path):
        autocron.start(database, workers=1)
        first = autocron.delay(timeout=1)(block.__wrapped__)(str(tmp_path), "a")
        read_pid(tmp_path / "a.pid")
        started = time.monotonic()
        second = block(str(tmp_path), "b")
        wait_until(lambda: row_status(database, second) == "queued", what="the hand-over")
        manager, _ = pool_pids()
        wait_until(lambda: waits_for_events(manager), what="b in the worker's hands")
        os.kill(manager, signal.SIGSTOP)            # it sees the deadline only after the fact
        try:
            (tmp_path / "a.go").write_text("")
            read_pid(tmp_path / "b.pid")
            wait_until(lambda: time.monotonic() > started + 1.5, what="a's deadline to pass")
        finally:
            os.kill(manager, signal.SIGCONT)
        assert first.get(timeout=30) > 0
        (tmp_path / "b.go").write_text("")
        assert second.get(timeout=30) > 0

    def test_a_claimed_task_is_running_only_once_its_worker_starts_it(self, database):
        autocron.start(database, workers=1)
        worker = wait_until(lambda: worker_pids(), what="the worker")[0]
        os.kill(worker, signal.SIGSTOP)               # it cannot take what it is handed
        try:
            result = add(1, 2)
            wait_until(lambda: row_status(database, result) == "queued", what="the hand-over")
            assert result.status == "waiting" and result.attempts == 0
        finally:
            os.kill(worker, signal.SIGCONT)
        assert result.get(timeout=30) == 3 and result.attempts == 1

    def test_a_module_that_starts_autocron_when_imported_starts_nothing_in_a_worker(
            self, database, tmp_path, monkeypatch):
        (tmp_path / "starts_on_import.py").write_text(textwrap.dedent("""
            import os, autocron
            autocron.start(os.environ["AUTOCRON_TEST_DB"], workers=1)

            @autocron.delay
            def probe():
                return autocron._state.store is None and autocron._state.standby is None
        """))
        monkeypatch.setenv("AUTOCRON_TEST_DB", database)
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            import starts_on_import
            assert starts_on_import.probe().get(timeout=30) is True
        finally:
            sys.modules.pop("starts_on_import", None)

    @pytest.mark.slow
    def test_an_outcome_that_cannot_be_stored_fails_only_its_task(self, pool):
        # just over the largest value of the store: SQLite's 1 GB, or what PostgreSQL can
        # hand back (autocron's _PG_LARGEST_VALUE, the same in the pool's processes)
        size = autocron._PG_LARGEST_VALUE + 1 if autocron._is_postgres(pool) \
            else 1_000_000_000 + 1

        def too_big():
            return b"x" * size
        manager, _ = pool_pids()
        result = autocron.delay(too_big)()
        with pytest.raises(autocron.TaskError, match="could not be stored"):
            result.get(timeout=120)
        assert add(1, 2).get(timeout=30) == 3
        assert pool_pids()[0] == manager

    def test_a_value_too_big_for_sqlite_is_refused_in_every_python_s_words(self, tmp_path):
        # Python 3.10 and older say "probably unsupported type" (sqlite3.InterfaceError) where
        # 3.11 says "string or blob too big" (sqlite3.DataError): both refuse that value
        # alone; neither is an outage to wait out
        store = autocron._open_store(str(tmp_path / "autocron.db"))
        try:
            for error in (sqlite3.InterfaceError("Error binding parameter 1 - probably "
                                                 "unsupported type."),
                          sqlite3.DataError("string or blob too big")):
                refused = store._error(error)
                assert isinstance(refused, autocron._DataRefused), refused
                assert not autocron._weather(refused)
                assert "larger than SQLite stores (1 GB); pass or return less" in str(refused)
        finally:
            store.close()

    def test_many_callers_waiting_at_once_do_not_deadlock(self, pool):
        results = [add(i, 0) for i in range(4000)]
        values = {}

        def wait_for(part):
            for result in part:
                values[result.uuid] = result.get(timeout=120)
        threads = [threading.Thread(target=wait_for, args=(results[i::40],)) for i in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert [values.get(r.uuid) for r in results] == list(range(4000))


class TestFaults:
    """A database that cannot be written for a while is weather: the pool keeps its workers
    and what they report, and writes it, once, when the database is back. A clock that
    steps back stalls nothing."""

    def test_a_full_disk_holds_outcomes_until_there_is_room_again(self, small_disk, tmp_path,
                                                                  caplog):
        caplog.set_level(logging.INFO, logger="autocron")
        database, gate, log = small_disk.path("autocron.db"), tmp_path / "gate", tmp_path / "log"
        assert autocron.start(database, workers=2) is True
        wait_until(lambda: len(worker_pids()) == 2, what="two workers")
        manager, workers = pool_pids()
        results = [wide_after(str(gate), str(log), i) for i in range(6)]
        # started, and said so: a task not started yet waits for the disk (nothing starts
        # while the pool cannot write)
        wait_until(lambda: all(row_status(database, r) == "running" for r in results[:2]),
                   what="the workers to start tasks")
        small_disk.fill()
        gate.write_text("")
        wait_until(lambda: len(logged(log)) >= 2, what="tasks to end while the disk is full")
        with pytest.raises(TimeoutError):           # a caller waits through it
            results[-1].get(timeout=0.5)
        with pytest.raises(autocron.DatabaseError) as caught:
            echo("y" * 1_000_000)
        assert str(caught.value) == (
            f"{database}: the disk is full; free space on it, then call again (nothing was "
            "stored) (sqlite3: database or disk is full)")
        wait_until(lambda: "cannot write to its database" in caplog.text, what="the pool to "
                   "try to write the outcomes")
        assert pool_pids() == (manager, workers) and all(map(alive, [manager, *workers]))
        small_disk.free()
        assert [r.get(timeout=60) for r in results] == [f"{i}:" + "x" * 100_000
                                                        for i in range(6)]
        assert sorted(map(int, logged(log))) == list(range(6))        # each ran once
        assert {r.attempts for r in results} == {1}
        assert pool_pids() == (manager, workers)
        assert query(database, "SELECT count(*) FROM tasks") == [(6,)]
        # a 100 kB value is shown in tables by the start of its repr (item 13: bounded)
        assert query(database, "SELECT max(length(summary)) FROM tasks")[0][0] <= \
            autocron._MAX_SUMMARY

    def test_no_task_starts_while_the_pool_cannot_write(self, small_disk, tmp_path, caplog):
        # A task started then would have neither its start nor its outcome written: its
        # worker and then its manager killed would leave a run that nobody counted, and it
        # would run again (the chaos test's seed 2 did that)
        caplog.set_level(logging.INFO, logger="autocron")
        database, gate, log = small_disk.path("autocron.db"), tmp_path / "gate", tmp_path / "log"
        assert autocron.start(database, workers=1) is True
        first, held = wide_after(str(gate), str(log), 0), wide_after(str(gate), str(log), 1)
        wait_until(lambda: (row_status(database, first), row_status(database, held)) == (
            "running", "queued"), what="one task running, the next held behind it")
        later = add_later(1, 2)            # due in half a second: its claim meets a full disk
        small_disk.fill()
        wait_until(lambda: "cannot write to its database" in caplog.text,
                   what="the pool to meet the full disk")
        gate.write_text("")
        wait_until(lambda: "0" in logged(log), what="the running task to end")
        # the held task would start within milliseconds: for a second, it must not
        with pytest.raises(AssertionError):
            wait_until(lambda: "1" in logged(log), 1.0, "a start while the disk is full")
        assert row_status(database, held) == "queued"
        small_disk.free()
        assert first.get(timeout=60) == "0:" + "x" * 100_000
        assert held.get(timeout=60) == "1:" + "x" * 100_000
        assert later.get(timeout=60) == 3
        assert logged(log) == ["0", "1"] and (first.attempts, held.attempts) == (1, 1)

    def test_a_worker_whose_manager_died_in_an_outage_writes_what_it_ran_when_it_ends(
            self, small_disk, tmp_path):
        database, gate, log = small_disk.path("autocron.db"), tmp_path / "gate", tmp_path / "log"
        assert autocron.start(database, workers=1) is True
        wait_until(lambda: len(worker_pids()) == 1, what="the worker")
        manager, (worker,) = pool_pids()
        result = wide_after(str(gate), str(log), 0)
        wait_until(lambda: row_status(database, result) != "waiting", what="the hand-over")
        small_disk.fill()
        gate.write_text("")
        wait_until(lambda: logged(log) == ["0"], what="the task to end while the disk is full")
        os.kill(manager, signal.SIGKILL)            # its worker must write the outcome itself
        wait_until(lambda: autocron._state.pool.manager.pid != manager, what="a new manager")
        assert alive(worker)                        # still trying, not gone with its outcome
        small_disk.free()
        assert result.get(timeout=60) == "0:" + "x" * 100_000
        assert result.attempts == 1 and logged(log) == ["0"]
        wait_until(lambda: not alive(worker), what="the old worker to end")

    def test_outcomes_only_the_manager_holds_are_written_when_the_owner_dies(
            self, small_disk, tmp_path):
        # The disk is full, so the manager holds the outcome; the worker that reported it is
        # killed; then the owner dies: the manager writes the outcome before it ends.
        database, gate, log = small_disk.path("autocron.db"), tmp_path / "gate", tmp_path / "log"
        owner = spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            print(test_autocron.wide_after(sys.argv[2], sys.argv[3], 0).uuid, flush=True)
            sys.stdin.read()
        """, database, gate, log, stdin=subprocess.PIPE)
        try:
            uid = owner.stdout.readline().strip()
            manager, (worker,) = wait_until(lambda: autocron._open_store(database).pool_pids()[
                1:] if len(autocron._open_store(database).pool_pids()[2]) == 1 else None,
                what="the owner's pool")
            wait_until(lambda: query(database, "SELECT status FROM tasks") == [("queued",)],
                       what="the hand-over")
            small_disk.fill()
            sent = bytes_written(worker)
            gate.write_text("")
            # the outcome (100 kB) went down the worker's pipe to the manager
            wait_until(lambda: bytes_written(worker) - sent > 100_000,
                       what="the task's outcome to leave its worker while the disk is full")
            os.kill(worker, signal.SIGKILL)         # the outcome is the manager's alone now
            wait_until(lambda: not alive(worker), what="the worker's end")
            owner.kill()
            owner.wait(timeout=30)
            small_disk.free()
            wait_until(lambda: not alive(manager), 30, "the manager to write and end")
        finally:
            owner.kill()
            owner.communicate(timeout=30)
        assert autocron.start(database, workers=1) is True
        result = autocron.get_result(uid)
        assert result.get(timeout=30) == "0:" + "x" * 100_000
        assert result.attempts == 1 and logged(log) == ["0"]

    def test_a_paused_manager_whose_owner_died_writes_what_its_dead_worker_said(self,
                                                                                tmp_path):
        # The worker reported an outcome to a manager paused (SIGSTOP); the worker was killed
        # and the owner too; the manager, resumed, reads its pipes before it leaves (the
        # chaos test's seed 16 ran such tasks twice)
        database = str(tmp_path / "autocron.db")
        owner = spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            print(autocron.delay(test_autocron.block)(sys.argv[2]).uuid, flush=True)
            sys.stdin.read()
        """, database, tmp_path, stdin=subprocess.PIPE)
        try:
            uid = owner.stdout.readline().strip()
            worker = read_pid(tmp_path / "task.pid")
            manager = autocron._open_store(database).pool_pids().manager
            wait_until(lambda: query(database, "SELECT status FROM tasks") == [("running",)],
                       what="the task's start to be written")
            os.kill(manager, signal.SIGSTOP)
            sent = bytes_written(worker)
            (tmp_path / "task.go").write_text("")
            wait_until(lambda: bytes_written(worker) - sent > 50,
                       what="the outcome to leave the worker")
            for pid in (worker, owner.pid):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not alive(worker), what="the worker's end")
            owner.wait(timeout=30)
            os.kill(manager, signal.SIGCONT)
            wait_until(lambda: not alive(manager), 30, "the manager to write and end")
        finally:          # the manager first: a paused one holds the owner's output open
            with contextlib.suppress(ProcessLookupError):
                os.kill(manager, signal.SIGCONT)
            owner.kill()
            owner.communicate(timeout=30)
        assert autocron.start(database, workers=1) is True
        result = autocron.get_result(uid)
        assert result.get(timeout=30) == worker and result.attempts == 1

    def test_a_start_nobody_wrote_counts_when_its_worker_and_manager_die(self, tmp_path):
        # A worker started a task whose start its manager held unwritten (here: paused; in
        # the chaos test's seed 20, a full disk); then the worker, the manager and the owner
        # were killed. The next pool must count that run: the task ran, and nobody wrote it
        # (it ran twice, once uncounted). The call has no retries: it ends interrupted.
        database, log = str(tmp_path / "autocron.db"), tmp_path / "log"
        first, second = kill_a_paused_pool(database, tmp_path / "gate", log, "note_after",
                                           lambda worker: logged(log) == ["0", "1"])
        assert query(database, "SELECT status, attempts FROM tasks ORDER BY id") == [
            ("running", 1), ("queued", 0)]         # the second start: only outside the database
        assert autocron.start(database, workers=1) is True
        (tmp_path / "gate").unlink()               # a run now would wait: none may start
        for uid in (first, second):
            result = autocron.get_result(uid)
            with pytest.raises(autocron.TaskError, match="interrupted: the pool ended"):
                result.get(timeout=30)
            assert result.attempts == 1
        assert logged(log) == ["0", "1"]
        assert autocron._SqliteStore(database).start_log().starts() == []   # counted: gone

    def test_a_start_is_noted_only_once_the_pool_was_told(self, tmp_path):
        # A worker tells the pool that a task ended and the next started in one message; a
        # large outcome blocks it while the pool does not read (here: paused). The next task
        # has not run then, and must not count as an interrupted attempt when the worker,
        # the manager and the owner are all killed: it runs, once, in the next pool
        database, log = str(tmp_path / "autocron.db"), tmp_path / "log"
        first, second = kill_a_paused_pool(   # blocked in telling of the first outcome
            database, tmp_path / "gate", log, "wide_after", lambda worker: logged(log) == [
                "0"] and "pipe_write" in Path(f"/proc/{worker}/wchan").read_text())
        assert logged(log) == ["0"]
        assert autocron.start(database, workers=1) is True
        assert autocron.get_result(second).get(timeout=30) == "1:" + "x" * 100_000
        assert autocron.get_result(second).attempts == 1 and logged(log) == ["0", "1"]
        with pytest.raises(autocron.TaskError, match="interrupted: the pool ended"):
            autocron.get_result(first).get(timeout=30)

    def test_a_pool_whose_owner_died_starts_nothing_more(self, small_disk, tmp_path):
        # Its manager stays to write what it holds (here: until the disk has room), and a
        # task a worker holds must not start meanwhile: the next pool runs it, and nobody
        # would write this start (the chaos test's seed 16 ran such a task twice)
        database, gate, log = small_disk.path("autocron.db"), tmp_path / "gate", tmp_path / "log"
        pool_log = tmp_path / "pool.log"
        owner = spawn_python("""
            import logging, sys, autocron, test_autocron
            logging.basicConfig(filename=sys.argv[4], level=logging.INFO)
            autocron.start(sys.argv[1], workers=1)
            first = test_autocron.wide_after(sys.argv[2], sys.argv[3], 0)
            held = test_autocron.wide_after(sys.argv[2], sys.argv[3], 1)
            test_autocron.add_later(1, 2)      # due in half a second: its claim meets the disk
            print(first.uuid, held.uuid, flush=True)
            sys.stdin.read()
        """, database, gate, log, pool_log, stdin=subprocess.PIPE)
        try:
            first, held = owner.stdout.readline().split()
            manager, (worker,) = wait_until(lambda: autocron._open_store(database).pool_pids()[
                1:] if len(autocron._open_store(database).pool_pids()[2]) == 1 else None,
                what="the owner's pool")
            wait_until(lambda: query(database, "SELECT status FROM tasks ORDER BY id LIMIT 2")
                       == [("running",), ("queued",)], what="a task running, one held")
            small_disk.fill()
            wait_until(lambda: "cannot write" in pool_log.read_text(), what="the full disk")
            gate.write_text("")           # the first ends; its outcome stays with the manager
            wait_until(lambda: "0" in logged(log), what="the first task to end")
            owner.kill()
            owner.wait(timeout=30)
            small_disk.free()             # the manager writes the outcome, and ends
            wait_until(lambda: not alive(manager) and not alive(worker), 30,
                       "the pool to write what it ran and end")
        finally:
            owner.kill()
            owner.communicate(timeout=30)
        assert logged(log) == ["0"]              # the held task never started there
        assert autocron.start(database, workers=1) is True
        results = [autocron.get_result(uid) for uid in (first, held)]
        assert [r.get(timeout=30) for r in results] == [f"{i}:" + "x" * 100_000
                                                        for i in range(2)]
        assert logged(log) == ["0", "1"] and [r.attempts for r in results] == [1, 1]

    def test_a_postgresql_restart_loses_nothing_and_runs_nothing_twice(self, own_postgres,
                                                                        tmp_path, caplog):
        caplog.set_level(logging.INFO, logger="autocron")
        server, gate, log = own_postgres, tmp_path / "gate", tmp_path / "log"
        url = server.url(schema="restart")
        assert autocron.start(url, workers=2) is True
        wait_until(lambda: len(worker_pids()) == 2, what="two workers")
        manager, workers = pool_pids()
        wait_until(lambda: pg_listeners(server) == 1, what="the pool to listen")
        results = [wide_after(str(gate), str(log), i) for i in range(6)]
        wait_until(lambda: all(row_status(url, r) == "running" for r in results[:2]),
                   what="the workers to start tasks")
        server.halt()
        try:            # those running end; the others start once a start can be written
            gate.write_text("")
            wait_until(lambda: len(logged(log)) >= 2, what="tasks to end while it is down")
            with pytest.raises(TimeoutError):           # a caller waits through it
                results[-1].get(timeout=0.5)
            with pytest.raises(TimeoutError):           # so does wait(), and await
                autocron.wait(results[-2:], timeout=0.5)
            with pytest.raises(asyncio.TimeoutError):
                run_async(asyncio.wait_for(awaited(results[-1]), 0.5))
            with pytest.raises(autocron.DatabaseError) as caught:
                add(1, 2)
            assert "cannot reach the PostgreSQL server" in str(caught.value)
            wait_until(lambda: "cannot write to its database" in caplog.text,
                       what="the pool to try to write the outcomes")
        finally:
            server.resume()
        assert autocron.wait(results, timeout=60) == [f"{i}:" + "x" * 100_000
                                                      for i in range(6)]
        assert run_async(awaited(results[-1])) == "5:" + "x" * 100_000
        assert sorted(map(int, logged(log))) == list(range(6))        # each ran once
        assert {r.attempts for r in results} == {1}
        wait_until(lambda: pg_listeners(server) == 1, 30, "the pool to listen again")
        assert add(2, 3).get(timeout=30) == 5
        assert pool_pids() == (manager, workers) and "writes to its database again" in \
            caplog.text
        assert query(url, "SELECT count(*) FROM tasks") == [(7,)]

    def test_the_dashboard_waits_through_a_postgresql_restart(self, own_postgres):
        url = own_postgres.url(schema="board")
        assert autocron.start(url, workers=1) is True
        assert add(1, 1).get(timeout=30) == 2
        server = DashboardServer(url)
        try:
            assert server.get("/")[0] == 200
            own_postgres.halt()
            try:
                status, body, headers = server.get("/")
                assert status == 503 and headers["Refresh"] == "2" and \
                    headers["Retry-After"] == "2", (status, body, headers)
                assert body.startswith("the database cannot be read now; this page tries "
                                       "again every 2 s: ")
            finally:
                own_postgres.resume()
            wait_until(lambda: server.get("/")[0] == 200, what="the page again")
        finally:
            server.stop()

    @pytest.mark.slow
    def test_due_times_go_by_the_server_s_clock_never_a_machine_s(self, own_postgres):
        url = own_postgres.url(schema="skew")
        now = "extract(epoch FROM clock_timestamp())"
        first, other = "test_autocron.cron_job", "test_autocron.cron_job_too"

        def runs(job):
            return query(url, "SELECT count(*) FROM tasks WHERE cron = ?", (job,))[0][0]
        try:
            # this machine's clock is ten minutes late, then ten minutes early
            for skew, ran, held in ((600, first, other), (-600, other, first)):
                autocron.stop()
                close_postgres_connections()
                own_postgres.halt()
                own_postgres.env = libfaketime(skew)          # the server's clock
                own_postgres.resume()
                assert autocron.start(url, workers=1) is True
                autocron.cron("0 0 1 1 *")(cron_job)      # never due, until the test says
                autocron.cron("0 0 1 1 *")(cron_job_too)
                held_before = runs(held)
                # `ran` due by the server's clock (by a late clock: in ten minutes); `held`
                # due in five minutes by it (by an early clock: five minutes ago), which the
                # round that starts `ran` would then start too
                autocron._open_store(url, existing=True, write=True).write(
                    f"UPDATE crons SET next_due = CASE name WHEN %s THEN {now} - 1 ELSE "
                    f"{now} + 300 END", (ran,))
                wait_until(lambda: runs(ran) == 1, 30,
                           f"the job due by the server's clock ({skew:+} s)")
                assert runs(held) == held_before
                made, = query(url, f"SELECT {now} - created FROM tasks WHERE cron = ?", (ran,))
                assert 0 <= made[0] < 30, made       # stamped by the server's clock
        finally:
            forget_cron(first)
            forget_cron(other)

    def test_calls_made_before_the_clock_stepped_back_run_at_once(self, database, tmp_path,
                                                                  monkeypatch):
        clock = FakeClock(time.time(), monkeypatch, tmp_path)
        assert autocron.start(database, workers=1) is True
        blocker = block(str(tmp_path))
        read_pid(tmp_path / "task.pid")
        behind = [add(i, i) for i in range(10)]     # most of them wait in the database
        wait_until(lambda: [row_status(database, r) for r in behind].count("waiting") >= 5,
                   what="calls waiting behind the busy worker")
        clock.now -= 3600                           # NTP, a VM restored from a snapshot
        (tmp_path / "task.go").write_text("")
        assert blocker.get(timeout=30) > 0
        assert [r.get(timeout=30) for r in behind] == [2 * i for i in range(10)]

    def test_calls_made_before_a_step_back_while_no_pool_ran_run_at_once(self, database,
                                                                         tmp_path, monkeypatch):
        clock = FakeClock(time.time(), monkeypatch, tmp_path)
        made = run_python("""
            import os, sys, autocron, test_autocron
            autocron._clock_file = os.environ["TEST_CLOCK_FILE"]
            autocron.start(sys.argv[1], workers=0)
            print(" ".join(test_autocron.add(i, 1).uuid for i in range(3)))
        """, database)
        assert made.returncode == 0, made.stderr
        clock.now -= 3600
        assert autocron.start(database, workers=1) is True
        later = [autocron.get_result(uid) for uid in made.stdout.split()]
        assert [r.get(timeout=30) for r in later] == [1, 2, 3]


# ---- the public API: delayed calls, results and how they show ------------------------------


class TestDelay:
    """Calls stored durably and run in real worker processes."""

    def test_value_comes_back(self, pool):
        result = add(2, 3)
        assert isinstance(result, autocron.Result)
        assert result.get(timeout=30) == 5
        assert (result.status, result.waiting, result.is_waiting, result.is_ready()) == \
            ("ready", False, False, True)
        assert (result.function_result, result.result, result.has_error,
                result.error_message) == (5, 5, False, "")

    @pytest.mark.parametrize("status, kind, raised, traceback", [
        ("error", "autocron.TaskTimeout", autocron.TaskTimeout, ""),
        ("error", "autocron.WorkerLost", autocron.WorkerLost, ""),
        ("cancelled", "autocron.Cancelled", autocron.Cancelled, ""),
        ("cancelled", "", autocron.Cancelled, ""),      # stored before the classes existed
        ("error", "autocron.DependencyFailed", autocron.DependencyFailed, ""),
        ("error", "mylib.TaskTimeout", autocron.TaskError, ""),     # a user's own exception
        ("error", "", autocron.TaskError, ""),
        # review: a task that lets an inner get()'s TaskTimeout escape did not time out
        ("error", "autocron.TaskTimeout", autocron.TaskError, "Traceback (most recent ...")])
    def test_each_ending_autocron_decides_has_its_own_class(self, status, kind, raised,
                                                            traceback):
        row = autocron._ResultRow("u", "f", "", status, 1.0, 1.0, 2.0, None, json.dumps(
            {"type": kind, "message": "it ended", "traceback": traceback}))
        with pytest.raises(autocron.TaskError) as caught:
            autocron.Result("u", None, row).get()
        assert type(caught.value) is raised and caught.value.type_name == kind
        # the class names an ending of its own; a user's exception keeps its name in front
        own = raised is not autocron.TaskError or not kind
        head = "it ended" if own else f"{kind}: it ended"
        assert str(caught.value) == (f"{head}\n\nRemote traceback:\n{traceback}" if traceback
                                     else head)
        assert raised.__name__ in autocron.__all__ or raised is autocron.TaskError

    def test_error_comes_back_as_data(self, pool):
        result = fail("no such user")
        with pytest.raises(autocron.TaskError) as caught:
            result.get(timeout=30)
        error = caught.value
        assert (error.type_name, error.message, error.uuid) == ("ValueError", "no such user",
                                                                result.uuid)
        assert 'raise ValueError(text)' in error.traceback
        assert str(error).startswith("ValueError: no such user\n\nRemote traceback:\n"
                                     "Traceback (most recent call last):")
        assert result.has_error and result.status == "error"
        assert result.error_message.startswith("ValueError: no such user\n\nTraceback")
        assert result.function_result is None

    @pytest.mark.parametrize("value", [
        0, -7, 2 ** 100, 3.5, float("inf"), 1 + 2j, "text", "ünïcødé", b"\x00\xff", None, True,
        [1, [2, [3]]], (1, "a"), {"a": {"b": [1, 2]}}, {1, 2}, frozenset({3}),
        datetime(2024, 1, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin")), date(2024, 2, 29),
        timedelta(hours=5), Decimal("1.10"), Fraction(1, 3), Point(1, 2), b"x" * 3_000_000,
    ], ids=lambda value: repr(value)[:40])
    def test_arguments_and_values_of_many_types(self, pool, value):
        assert echo(value, key=value).get(timeout=30) == ((value,), {"key": value})

    # -- map(): many calls in one transaction

    def test_map_runs_each_set_of_arguments_like_the_builtin(self, pool):
        results = add.map(range(300), range(0, 3000, 10))
        assert [r.get(timeout=60) for r in results] == [i + 10 * i for i in range(300)]
        assert len({r.uuid.rsplit("-", 1)[0] for r in results}) == 1    # one batch
        shortest = add.map([1, 2, 3], [10, 20])             # up to the shortest iterable
        assert [r.get(timeout=30) for r in shortest] == [11, 22]
        assert add.map([], []) == [] and add.map() == []

    def test_map_stores_nothing_when_one_call_cannot_be_pickled(self, pool):
        before = len(autocron.get_results())
        with pytest.raises(TypeError) as caught:
            add.map([1, 2, threading.Lock()], [1, 2, 3])
        assert str(caught.value).startswith("argument 1 of add() cannot be pickled (lock: ")
        assert len(autocron.get_results()) == before

    def test_map_stores_its_calls_a_chunk_at_a_time_in_one_transaction(self, pool,
                                                                       monkeypatch):
        # the calls are made as the store reads them, a chunk at a time, in one transaction:
        # a call of the third chunk that cannot be pickled leaves nothing stored
        monkeypatch.setattr(autocron, "_MAP_CHUNK", 1000)
        store = autocron._open_store(pool)
        before = store.read("SELECT count(*) FROM tasks")[0][0]
        values: list = list(range(2 * autocron._MAP_CHUNK + 500))
        values[-2] = threading.Lock()
        with pytest.raises(TypeError, match="cannot be pickled"):
            add.options(hours=1).map(values, itertools.count())
        assert store.read("SELECT count(*) FROM tasks")[0][0] == before
        results = add.options(hours=1).map(range(2 * autocron._MAP_CHUNK + 500),
                                           itertools.count())
        assert store.read("SELECT count(*) FROM tasks")[0][0] == before + len(results)
        assert len(results) == 2500 and len({r.uuid for r in results}) == 2500
        assert [int(r.uuid.rsplit("-", 1)[1]) for r in results] == sorted(
            int(r.uuid.rsplit("-", 1)[1]) for r in results)       # in order
        assert results[-1]._fetch().args == "2499, 2499"

    def test_map_of_a_generator_that_waits_for_other_results(self, pool):
        # the iterables are read before the calls' transaction opens: a generator that waits
        # for the results of other calls, which the pool writes meanwhile, does not stall it
        firsts = [add(i, i) for i in range(3)]
        results = add.map((r.get(timeout=20) for r in firsts), itertools.repeat(1))
        assert [r.get(timeout=30) for r in results] == [1, 3, 5]

    def test_map_stores_a_chunk_with_a_dependency_as_dependent_calls(self, pool, tmp_path,
                                                                     monkeypatch):
        # one call of the second chunk depends on a Result: its chunk goes in through the
        # dependent calls' way, the others as plain calls, all in the one transaction
        monkeypatch.setattr(autocron, "_MAP_CHUNK", 200)
        first = block(tmp_path)          # its value: the pid of the worker it ran in
        values = [*range(autocron._MAP_CHUNK + 3), first, 5]
        results = add.map(values, itertools.repeat(1))
        dependent = results[autocron._MAP_CHUNK + 3]
        assert results[0].get(timeout=60) == 1 and results[-1].get(timeout=60) == 6
        assert dependent.status == "waiting"
        assert len({r.uuid.rsplit("-", 1)[0] for r in results}) == 2     # a token a chunk
        (tmp_path / "task.go").write_text("")
        assert dependent.get(timeout=60) == first.get(timeout=60) + 1

    @pytest.mark.sqlite_only      # SQLite's statement trace
    def test_map_is_one_transaction(self, pool):
        statements = []
        store = autocron._state.store
        store._connection().set_trace_callback(statements.append)
        try:
            results = echo.map(["a", "b", "c"])
        finally:
            store._connection().set_trace_callback(None)
        assert [s.split()[0] for s in statements if s.split()[0] in (
            "BEGIN", "COMMIT", "INSERT")] == ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]
        assert [r.get(timeout=30) for r in results] == [(("a",), {}), (("b",), {}),
                                                        (("c",), {})]

    def test_map_of_a_function_shipped_by_value_stores_its_payload_once(self, pool):
        namespace = {"__name__": "__main__"}
        exec("def triple(x):\n    return 3 * x\n", namespace)
        triple = autocron.delay(namespace["triple"])
        assert [r.get(timeout=30) for r in triple.map(range(5))] == [0, 3, 6, 9, 12]
        store = autocron._open_store(pool)
        assert store.read("SELECT count(*) FROM functions")[0][0] == 1

    def test_map_runs_here_when_autocron_is_inactive(self):
        results = add.map([1, 2], [3, 4])
        assert [(r.status, r.get()) for r in results] == [("ready", 4), ("ready", 6)]

    def test_map_inside_a_worker_returns_the_values(self, pool):
        assert nested_map(3).get(timeout=30) == [0, 2, 4]

    # -- async def

    def test_an_async_function_runs_on_the_workers_event_loop(self, pool):
        assert async_add(2, 3).get(timeout=30) == 5
        assert [r.get(timeout=30) for r in async_add.map([1, 2], [10, 20])] == [11, 22]
        with pytest.raises(autocron.TaskError) as caught:
            async_fail("nope").get(timeout=30)
        assert caught.value.type_name == "LookupError" and "nope" in str(caught.value)
        assert "async_fail" in caught.value.traceback

    def test_a_worker_keeps_one_event_loop_for_its_async_tasks(self, database):
        autocron.start(database, workers=1)
        seen = [which_loop().get(timeout=30) for _ in range(3)]
        assert len({pid for pid, _, _ in seen}) == 1
        assert [(loops, calls) for _, loops, calls in seen] == [(1, 1), (1, 2), (1, 3)]

    def test_an_async_result_can_be_awaited(self, pool):
        async def main():
            return await async_add(20, 22)
        assert run_async(main()) == 42

    def test_an_async_function_runs_here_when_autocron_is_inactive(self):
        assert async_add(1, 1).get() == 2
        assert async_fail("x").error_message.startswith("LookupError: x")

        async def inside_a_running_loop():      # a notebook: the call may not block its loop
            return async_add(4, 4).get()
        assert run_async(inside_a_running_loop()) == 8

    def test_waiting_leaves_nothing_behind(self, pool):
        results = [add(i, i) for i in range(50)]
        assert [r.get(timeout=30) for r in results] == [2 * i for i in range(50)]
        assert [r.get(timeout=30) for r in results] == [2 * i for i in range(50)]
        assert autocron._state.pool._waiters == {}

    def test_a_task_stores_the_calls_it_makes_and_waits_for_them_without_deadlock(
            self, database):
        # one worker, three levels of nested get(): each waiting task's pool starts a spare
        assert autocron.start(database, workers=1) is True
        kind, value, inner = nested(41, 3).get(timeout=120)
        assert (kind, value) == ("Result", 42)
        assert isinstance(inner, autocron.Result) and inner.get(timeout=30)[:2] == ("Result", 42)
        assert len(autocron.get_results()) == 3 + 1       # every call stored: 3 nested, 1 add
        wait_until(lambda: len(worker_pids()) == 1, 60, "the spare workers to retire")
        with pytest.raises(autocron.TaskError, match="cannot wait for its own call"):
            autocron.delay(wait_for_itself)().get(timeout=30)

    def test_an_async_task_that_awaits_a_call_takes_a_spare_worker(self, database):
        # one worker: without a spare, the awaited call would never run
        assert autocron.start(database, workers=1) is True
        assert await_inside(41).get(timeout=60) == 42
        wait_until(lambda: len(worker_pids()) == 1, 60, "the spare worker to retire")
        with pytest.raises(autocron.TaskError, match="inside an async def task, await the "
                                                     "Result instead of calling get"):
            get_inside_async().get(timeout=30)

    def test_a_stray_thread_s_wait_ends_with_its_task(self, monkeypatch):
        told = []
        monkeypatch.setattr(autocron, "_IN_WORKER", True)
        monkeypatch.setattr(autocron, "_worker_reply", told.append)
        monkeypatch.setattr(autocron, "_running", object())
        stray = autocron._task_waits()
        stray.__enter__()                     # a thread of the task waits, and outlives it
        autocron._task_ended()                # the task ends: its waits end with it
        monkeypatch.setattr(autocron, "_running", object())      # the next task
        with autocron._task_waits():
            stray.__exit__(None, None, None)  # the stray thread's wait ends now
            assert [m.change for m in told] == [1, -1, 1]
        assert [m.change for m in told] == [1, -1, 1, -1]

    def test_a_delayed_call_while_a_worker_imports_a_module_is_refused(self, database,
                                                                        tmp_path,
                                                                        monkeypatch):
        (tmp_path / "eager.py").write_text(textwrap.dedent("""
            import test_autocron

            STORED = test_autocron.add(1, 2)


            def job():
                return "ran"
        """))
        monkeypatch.syspath_prepend(str(tmp_path))
        import eager                          # here (active or not) the call is stored
        try:
            assert autocron.start(database, workers=1) is True
            with pytest.raises(autocron.TaskError, match="while no task runs there"):
                autocron.delay(eager.job)().get(timeout=30)       # the worker imports it
        finally:
            sys.modules.pop("eager", None)

    def test_unpicklable_argument_is_named_and_nothing_is_stored(self, pool):
        before = len(autocron.get_results())
        with pytest.raises(TypeError) as caught:
            add(1, threading.Lock())
        assert str(caught.value).startswith("argument 2 of add() cannot be pickled (lock: ")
        assert str(caught.value).endswith("pass plain data and open files, locks or "
                                          "connections inside the task")
        with pytest.raises(TypeError, match=r"keyword argument 'b' of add\(\) cannot be "
                                            r"pickled \(generator: "):
            add(1, b=(i for i in range(3)))
        assert len(autocron.get_results()) == before

    def test_unpicklable_return_value_is_an_error(self, pool):
        result = make_lock()
        with pytest.raises(autocron.TaskError) as caught:
            result.get(timeout=30)
        assert caught.value.type_name == "TypeError"
        assert caught.value.message.startswith("the return value of test_autocron.make_lock "
                                               "cannot be pickled (lock: ")

    def test_undecorated_function_stays_reachable(self):
        assert echo.__wrapped__(1) == ((1,), {})
        assert echo.__name__ == "echo" and echo.__doc__ == echo.__wrapped__.__doc__

    def test_status_while_waiting_and_running(self, pool, tmp_path):
        running = block(str(tmp_path))
        wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
        assert running.status == "running" and running.waiting
        assert running.function_result is None
        shown = autocron._short_id(running.uuid)
        assert repr(running) == f"<Result {shown} block({str(tmp_path)!r}) running>"
        (tmp_path / "task.go").write_text("")
        assert running.get(timeout=30) == int((tmp_path / "task.pid").read_text())
        assert repr(running) == (f"<Result {shown} block({str(tmp_path)!r}) ready: "
                                 f"{running.result}>")

    def test_get_times_out(self, pool, tmp_path):
        result = block(tmp_path)
        with pytest.raises(TimeoutError, match=f"task {result.uuid} "
                                               r"\(test_autocron.block\) did not finish within "
                                               r"0.2 s"):
            result.get(timeout=0.2)
        (tmp_path / "task.go").write_text("")
        result.get(timeout=30)

    def test_await_a_result(self, pool):
        async def main():
            return await add(20, 22), await asyncio.wait_for(add(1, 1), 30)
        assert run_async(main()) == (42, 2)

    def test_await_a_failed_result_raises(self, pool):
        async def main():
            return await fail("async")
        with pytest.raises(autocron.TaskError, match="async"):
            run_async(main())

    def test_results_are_found_again_newest_first(self, pool):
        first, second = add(1, 1), add(2, 2)
        second.get(timeout=30), first.get(timeout=30)
        results = autocron.get_results()
        assert [r.uuid for r in results[:2]] == [second.uuid, first.uuid]
        found = autocron.get_result(first.uuid)
        assert found.get() == 2 and found.uuid == first.uuid
        assert autocron.get_result("no-such-id") is None
        for text in ("abc-\u00b2", f"abc-{2 ** 63}", "abc-99999999999999999999", "abc--1"):
            assert autocron.get_result(text) is None, text    # no id: nothing, not a crash

    def test_cancel_a_waiting_task(self, pool):
        waiting = add_in_an_hour(1, 2)
        assert waiting.cancel() is True
        assert waiting.status == "cancelled" and waiting.has_error
        with pytest.raises(autocron.Cancelled, match="^cancelled$"):
            waiting.get(timeout=5)
        assert waiting.cancel() is False

    def test_cancel_a_task_queued_in_a_worker(self, database, tmp_path):
        autocron.start(database, workers=1)
        blocker = block(str(tmp_path))
        wait_until(lambda: (tmp_path / "task.pid").exists(), what="the blocker")
        queued = add(1, 2)                      # handed to the busy worker, not started
        wait_until(lambda: row_status(database, queued) == "queued", what="the hand-over")
        assert queued.status == "waiting" and queued.waiting
        assert queued.cancel() is True
        assert queued.status == "cancelled"
        assert blocker.cancel() is False and blocker.status == "running"
        (tmp_path / "task.go").write_text("")
        assert blocker.get(timeout=30) > 0

    def test_delayed_calls_wait_for_their_time(self, pool):
        result = add_later(1, 2)
        assert result.get(timeout=30) == 3
        row = result._fetch()
        assert row.started - row.created >= 0.5
        assert add_in_the_past(2, 2).get(timeout=30) == 4

    def test_bad_delays_are_refused_at_decoration(self):
        with pytest.raises(ValueError, match="the delay must not be negative, got -60 s"):
            autocron.delay(minutes=-1)
        with pytest.raises(ValueError, match="give either a delay"):
            autocron.delay(minutes=1, schedule=datetime(2030, 1, 1))
        with pytest.raises(TypeError, match="schedule must be a datetime, not str"):
            autocron.delay(schedule="2030-01-01")
        with pytest.raises(TypeError, match="delay decorates a function, not int"):
            autocron.delay(5)

    def test_an_exception_that_cannot_be_shown_is_still_named(self, database):
        autocron.start(database, workers=1)

        def raising(kind):
            class Escape(BaseException):
                pass

            class Unprintable(Exception):
                def __str__(self):
                    raise RuntimeError("no text")

            class Hostile(Exception):
                def __str__(self):
                    raise Escape()

                def __repr__(self):
                    raise Escape()

            odd = type("Odd", (Exception,), {"__module__": 42})
            odd.__qualname__ = "Odd\udcff"     # a type's name cannot hold one, its qualname can
            raise {"str": Unprintable, "base": Hostile, "odd": odd}[kind]("odd text")

        def whoami():
            return os.getpid()

        worker = autocron.delay(whoami)().get(timeout=30)
        expected = {"str": ("Unprintable", "<exception str() failed: RuntimeError>"),
                    "base": ("Hostile", "<exception str() failed: Escape>"),
                    "odd": ("<unknown>.Odd\\udcff", "odd text")}
        for kind, (name, message) in expected.items():
            with pytest.raises(autocron.TaskError) as caught:
                autocron.delay(raising)(kind).get(timeout=30)
            assert caught.value.type_name.endswith(name), caught.value
            assert caught.value.message == message
            assert "in raising" in caught.value.traceback
        assert autocron.delay(whoami)().get(timeout=30) == worker     # not replaced

    @pytest.mark.parametrize("child", ["exits", "returns", "raises"])
    def test_a_forked_child_never_runs_the_queued_tasks(self, database, tmp_path, child):
        autocron.start(database, workers=1)
        log = str(tmp_path / "log")

        def forking(log, folder, child):
            with open(log, "a") as file:
                file.write("forking\n")
            while not os.path.exists(os.path.join(folder, "go")):
                time.sleep(0.01)
            pid = os.fork()
            if pid:
                Path(folder, "child.pid").write_text(str(pid))
            else:
                if child == "exits":
                    sys.exit(3)
                if child == "raises":
                    raise ValueError("in the child")
                return "the child's value"
            for _ in range(1000):             # the child leaves at once; a stuck one is a bug
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return "the parent's value", os.waitstatus_to_exitcode(status)
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "the parent's value", "the child did not leave"

        first = autocron.delay(forking)(log, str(tmp_path), child)
        wait_until(lambda: os.path.exists(log), what="the forking task to start")
        queued = [log_line(log, f"task {i}") for i in range(5)]
        wait_until(lambda: row_status(database, queued[0]) == "queued", what="the hand-over")
        (tmp_path / "go").write_text("")
        try:
            code = {"exits": 3, "returns": 0, "raises": 1}[child]
            assert first.get(timeout=30) == ("the parent's value", code)
            assert ("ValueError: in the child" in first.output) == (child == "raises")
            assert [r.get(timeout=30) for r in queued] == [f"task {i}" for i in range(5)]
            assert Path(log).read_text().splitlines() == \
                ["forking"] + [f"task {i}" for i in range(5)]
        finally:    # a child that ran on in the worker's loop would outlive the test
            pid = int(wait_until(lambda: (tmp_path / "child.pid").exists() and
                                 (tmp_path / "child.pid").read_text(), what="the fork"))
            with contextlib.suppress(OSError):       # gone (its pid reused or not)
                if str(tmp_path) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)

    def test_a_call_whose_text_has_a_lone_surrogate_is_stored_and_runs(self, pool):
        class Odd:
            def __repr__(self):
                return "Odd(\udcff)"

        def odd_name(value):
            return type(value).__name__
        odd_name.__qualname__ = "odd_name\udcff"
        result = autocron.delay(odd_name)(Odd())
        assert result.get(timeout=30) == "Odd"
        assert repr(result) == (f"<Result {autocron._short_id(result.uuid)} "
                                "odd_name\\udcff(Odd(\\udcff)) ready: 'Odd'>")


class TestInactive:
    """Before start(), after stop() and when disabled, calls run synchronously here."""

    def test_call_runs_here_before_start(self):
        assert not is_active()
        result = add(2, 2)
        assert (result.status, result.get(), result.function_result) == ("ready", 4, 4)
        failed = fail("here")
        assert failed.has_error and failed.error_message.startswith("ValueError: here")
        with pytest.raises(autocron.TaskError, match="here"):
            failed.get()

    def test_disabled_database_starts_nothing(self, database):
        autocron._open_store(database).set_setting("disabled", 1)
        assert autocron.start(database) is False
        assert autocron._state.pool is None
        assert add(1, 2).get() == 3

    def test_call_runs_here_after_stop(self, pool):
        assert add(1, 1).get(timeout=30) == 2
        autocron.stop()
        result = add(5, 5)
        assert result.status == "ready" and result.get() == 10
        assert autocron.start(pool) is True        # start() after stop() works
        assert add(3, 3).get(timeout=30) == 6


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


class TestResults:
    """The store under load: descriptors, the write-ahead log, bounded reads, durability."""

    def test_a_caller_waiting_through_a_retry_does_not_spin_on_the_database(self, database,
                                                                          tmp_path,
                                                                          monkeypatch):
        # The pool's notice for the failed first attempt set the caller's event for good:
        # it read the row in a loop until the retry ended (167,401 reads in 2.6 s).
        autocron.start(database, workers=1)
        store_class = type(autocron._state.store)
        original = store_class.result_row
        reads = []
        monkeypatch.setattr(store_class, "result_row",
                            lambda store, uid: reads.append(uid) or original(store, uid))
        flaky = autocron.delay(retries=1, retry_delay=1.0)(fails_once)
        began = time.monotonic()
        assert flaky(str(tmp_path / "count")).get(timeout=30) == "done"
        looks = (time.monotonic() - began) / autocron._WAITER_LOOK    # one every 0.25 s
        assert len(reads) < looks + 10, (len(reads), looks)           # and one a notice

    def test_a_caller_still_waiting_when_its_pool_stops_does_not_spin(self, database,
                                                                    monkeypatch):
        # stop() sets the events of the callers still waiting and leaves them set: a caller
        # whose call no worker ran read the database in a loop (327,581 reads in 3.5 s).
        autocron.start(database, workers=1, queues=["a"])
        result = autocron.delay(queue="b")(add.__wrapped__)(1, 2)     # no worker takes it
        store_class = type(autocron._state.store)
        original = store_class.result_row
        reads = []
        monkeypatch.setattr(store_class, "result_row",
                            lambda store, uid: reads.append(uid) or original(store, uid))
        ended = []

        def wait():
            try:
                result.get(timeout=3)
            except TimeoutError as error:
                ended.append(error)
        waiting = threading.Thread(target=wait)
        waiting.start()
        wait_until(lambda: result.uuid in autocron._state.pool._waiters, what="the wait")
        autocron.stop(timeout=5)
        waiting.join(timeout=30)
        assert not waiting.is_alive() and len(ended) == 1     # it timed out, as it should
        assert len(reads) < 200, len(reads)

    def test_a_row_come_before_the_callers_first_look_is_taken_without_a_new_watch(
            self, tmp_path, monkeypatch):
        # The notice can arrive between the wait's registration and its first look: the
        # event is set already, and the row it brought is the answer (not an attempt that
        # runs again, which would ask for a new watch and read).
        autocron.start(str(tmp_path / "a.db"), workers=1)
        result = add.options(hours=1)(2, 3)                 # no worker takes it meanwhile
        pool = autocron._state.pool
        event = pool.waiter(result.uuid)
        row = autocron._ResultRow(result.uuid, "test_autocron.add", "(2, 3)", "ready", 1.0,
                                  1.0, 2.0, pickle.dumps(5), None)
        pool._on_notice(autocron._Finished([result.uuid], [row]))   # the notice thread's
        watches, reads = [], []
        monkeypatch.setattr(pool, "waiter", watches.append)
        monkeypatch.setattr(type(pool.store), "result_row",
                            lambda store, uid: reads.append(uid))
        assert result._poll(5, event, looked=True, pool=pool) is True
        assert result.get(timeout=1) == 5 and watches == [] and reads == []
        pool.forget(result.uuid)

    def test_waiting_for_calls_in_turn_reads_the_next_ones_ahead(self, database,
                                                               monkeypatch):
        # PostgreSQL, [r.get() for r in results]: each Result's first read also reads the
        # finished rows of the next _AHEAD calls this process stored, which their get() then
        # takes; a row too large to read ahead, or one not finished then, is read by its own
        # get(). SQLite: a read each (cheaper there than the bookkeeping)
        autocron.start(database, workers=2)
        results = [add(i, i) for i in range(150)] + [echo("x" * 5000)] + \
            [add(i, i) for i in range(150, 230)]
        wait_until(lambda: len(autocron.get_results(status="ready")) == 231, 60,
                   "the calls to end")
        late = add.options(hours=1)(0, 0)           # not finished when read ahead
        store_class = type(autocron._state.store)
        reads, original, ahead = [], store_class.result_row, store_class.result_row_ahead
        monkeypatch.setattr(store_class, "result_row",
                            lambda store, uid: reads.append(1) or original(store, uid))
        monkeypatch.setattr(store_class, "result_row_ahead", lambda store, uid, others: reads.append(
            len(others)) or ahead(store, uid, others))
        values = [r.get(timeout=30) for r in results]
        assert values[:150] == [2 * i for i in range(150)]
        assert values[150] == (("x" * 5000,), {}) and values[151:] == [
            2 * i for i in range(150, 230)]
        # the first read reads calls 1-100 ahead, the 101st's 102-201 but the large one
        # (150), whose own read reads the 30 left (the late one among them, unfinished)
        remote = autocron._state.store.remote
        assert reads == ([100, 100, 30] if remote else [1] * 231), reads
        assert late.status == "waiting" and reads[-1] == 1     # read by itself

    def test_what_a_read_ahead_keeps_is_bounded(self, tmp_path, monkeypatch):
        monkeypatch.setattr(autocron, "_AHEAD_KEPT", 40)
        monkeypatch.setattr(autocron, "_AHEAD", 2)
        store = autocron._SqliteStore(tmp_path / "a.db")
        ahead = autocron._ReadAhead()
        ahead.stored(store, [store.add_task("f", "()", b"", 0.0)])
        assert not ahead._batches                   # SQLite's: a read each, none ahead
        monkeypatch.setattr(store, "remote", True)   # its bookkeeping, as on PostgreSQL
        uids = [store.add_task("f", "()", b"", 0.0) for _ in range(200)]
        ahead = autocron._ReadAhead()
        for uid in uids:                            # kept as stored until a read
            ahead.stored(store, [uid])
            assert 40 <= ahead._batched <= 41 or ahead._batched == len(uids[:uids.index(uid)
                                                                             + 1])
        assert [u for batch in ahead._batches for u in batch] == uids[-ahead._batched:]
        ahead = autocron._ReadAhead()
        ahead.stored(store, uids[:100])             # only the last _AHEAD_KEPT of a batch
        ahead._index()
        assert ahead._ids == uids[60:100]
        for uid in uids[100:]:                      # the newest 40 to 80, each in its place
            ahead.stored(store, [uid])
            ahead._index()
            kept = ahead._ids
            assert 40 <= len(kept) <= 80 and kept == uids[len(uids[:uids.index(uid) + 1]) -
                                                          len(kept):uids.index(uid) + 1]
            assert sorted(ahead._place) == sorted(kept) and all(
                kept[ahead._place[u] - ahead._dropped] == u for u in kept)
        with store.transaction() as con:
            claimed = store.claim(con, store.now(), list(range(201)))
            autocron._write_outcomes(store, con, [autocron._Outcome(
                c.id, "ready", value=b"v", started=1.0, finished=2.0) for c in claimed], 2.0)
        for uid in ahead._ids[::3]:             # each read reads the next 2 ahead
            assert ahead.read(store, uid).status == "ready"
            assert len(ahead._rows) <= 10 * autocron._AHEAD
        assert len(ahead._rows) == 10 * autocron._AHEAD     # the oldest went
        other = autocron._SqliteStore(tmp_path / "b.db")
        monkeypatch.setattr(other, "remote", True)
        theirs = other.add_task("f", "()", b"", 0.0)
        ahead.stored(other, [theirs])                                  # another database's
        assert ahead._ids == [] and list(ahead._batches) == [[theirs]] and ahead._rows == {}

    def test_a_call_stored_twice_keeps_one_place_in_the_read_ahead(self, tmp_path,
                                                                    monkeypatch):
        # a call with a key that an unfinished call holds gives that call's id again: the
        # read-ahead places it once (a second place was cut twice later: KeyError for good)
        monkeypatch.setattr(autocron, "_AHEAD_KEPT", 4)
        store = autocron._SqliteStore(tmp_path / "a.db")
        monkeypatch.setattr(store, "remote", True)   # the bookkeeping, as on PostgreSQL
        held = store.add_task("f", "()", b"", 0.0)
        others = [store.add_task("f", "()", b"", 0.0) for _ in range(12)]
        ahead = autocron._ReadAhead()
        ahead.stored(store, [held])
        ahead.stored(store, [held])
        for other in others:
            ahead.stored(store, [other])
            assert ahead.read(store, other).status == "waiting"
        assert ahead._ids == others[-len(ahead._ids):]

    def test_a_child_forked_while_a_thread_reads_ahead_is_not_stalled(self):
        # the read-ahead's lock held by another thread at the fork stays held in the child,
        # whose every call would wait on it: the child forgets what its parent read ahead
        holding, release = threading.Event(), threading.Event()

        def hold():
            with autocron._read_ahead._lock:
                holding.set()
                release.wait(30)
        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(30)
        try:
            pid = os.fork()
            if pid == 0:                             # the child: 0 if it got the lock
                os._exit(0 if autocron._read_ahead._lock.acquire(timeout=5) else 1)
        finally:
            release.set()
            holder.join(30)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def test_a_caller_woken_by_its_pool_reads_the_finished_row_no_more(self, database,
                                                                      tmp_path, monkeypatch):
        # PostgreSQL: its pool sends the row with the notice: get() reads once, to see that
        # the call has not finished, and not again when woken (a round trip). A try whose
        # task ended before the pool heard of the wait is read twice, rightly: five tries,
        # one of which must read once. SQLite: the caller reads (the pool's read would
        # cost more, on the dispatcher's path).
        autocron.start(database, workers=1)
        expected = 1 if autocron._state.store.remote else 2
        store_class = type(autocron._state.store)
        original = store_class.result_row
        reads = []
        monkeypatch.setattr(store_class, "result_row",
                            lambda store, uid: reads.append(uid) or original(store, uid))
        monkeypatch.setattr(autocron, "_WAITER_LOOK", 60.0)    # no look of its own meanwhile
        pool = autocron._state.pool
        counts = []
        for attempt in range(5):
            name = f"task{attempt}"
            result = block(str(tmp_path), name)
            pid = read_pid(tmp_path / f"{name}.pid")
            reads.clear()

            def open_gate(name=name, uid=result.uuid):
                # once the caller has asked the manager to watch; the manager's side of
                # it is not seen from here, hence a moment more, and the retries
                wait_until(lambda: uid in pool._waiters, what="the wait")
                time.sleep(0.3)
                (tmp_path / f"{name}.go").write_text("")
            opener = threading.Thread(target=open_gate)
            opener.start()
            try:
                assert result.get(timeout=30) == pid
            finally:
                opener.join()
            counts.append(reads.count(result.uuid))
            if counts[-1] == expected:
                break
        assert counts[-1] == expected, counts

    def test_get_result_reads_the_database_it_is_given_and_says_which_when_nothing_is_found(
            self, tmp_path):
        database = tmp_path / "jobs" / "elsewhere.db"
        made = run_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            result = test_autocron.add(2, 3)
            print(result.uuid, result.get(timeout=30))
            autocron.stop()
        """, database)
        uid = made.stdout.split()[0]
        (tmp_path / "fresh").mkdir()
        found = run_python("""
            import sys, autocron
            uid, database = sys.argv[1:]
            print(autocron.get_result(uid))                           # ./autocron.db: none
            print(autocron.get_result(uid, database=database).get())
            print([r.uuid for r in autocron.get_results(database=database)] == [uid])
            print(autocron.get_result("ffff-99", database=database))
        """, uid, database, cwd=tmp_path / "fresh")
        assert found.stdout.split() == ["None", "5", "True", "None"]
        assert found.stderr == (
            f"autocron: no task {uid} in autocron.db: there is no such database here (pass "
            "database= to read another)\n"
            f"autocron: no task ffff-99 in {database} (finished results are deleted after the "
            "result time-to-live, 1800 s)\n")

    def test_map_results_show_ids_that_tell_them_apart_and_a_short_id_finds_one(self, database):
        autocron.start(database, workers=1)
        batch = add.map([1, 2, 3], [1, 1, 1])
        assert [r.get(timeout=30) for r in batch] == [2, 3, 4]
        shown = [autocron._short_id(r.uuid) for r in batch]
        assert len(set(shown)) == 3 and all(len(text) <= 16 for text in shown)
        listing = repr(autocron.get_results())
        assert all(text in listing for text in shown)
        assert all(text in repr(r) for text, r in zip(shown, batch))
        assert [autocron.get_result(text).uuid for text in shown] == [r.uuid for r in batch]
        with pytest.raises(ValueError, match=re.escape(
                f"{batch[0].uuid[:6]!r} is the start of the ids of 3 or more tasks; give more "
                f"of it (as shown: {shown[0]})")):
            autocron.get_result(batch[0].uuid[:6])
        single = add(5, 5)
        assert autocron.get_result(single.uuid[:8]).get(timeout=30) == 10

    @pytest.mark.parametrize("text", ["0-" + "1" * 5000, "a" * 2_000_000, "%", "_-1", ""])
    def test_get_result_of_text_that_names_no_task_is_none(self, database, text):
        autocron.start(database, workers=0)
        assert autocron.get_result(text) is None

    def test_get_result_takes_an_id_in_capitals_or_with_spaces_around(self, database):
        autocron.start(database, workers=0)
        uid = add(1, 2).uuid
        assert autocron.get_result(f" {uid.upper()}\n").uuid == uid

    def test_a_script_that_exits_with_calls_waiting_says_so(self, tmp_path):
        database = tmp_path / "a.db"
        done = run_python("""
            import sys, autocron
            def later(x):
                return x
            autocron.start(sys.argv[1], workers=1)
            for i in range(3):
                autocron.delay(hours=1)(later)(i)
        """, database)
        assert done.returncode == 0
        assert done.stderr == (f"autocron: 3 calls are still waiting in {database}; they run "
                               "when a pool runs for it (the next start())\n")
        quiet = run_python("import sys, autocron; autocron.start(sys.argv[1]); "
                           "autocron.get_results()", tmp_path / "b.db")
        assert quiet.stderr == ""

    def test_get_with_no_pool_running_says_so(self, database):
        autocron.start(database, workers=0)               # this process only enqueues
        result = add(1, 2)
        with pytest.raises(TimeoutError, match=re.escape(
                f"task {result.uuid} (test_autocron.add) did not finish within 0.2 s, and no "
                f"pool is running for {autocron._current_store().path}: call "
                "autocron.start() in a process that runs the workers (workers=0 only stores "
                "calls)")):
            result.get(timeout=0.2)
        autocron.stop()
        autocron.start(database, workers=1)
        assert result.get(timeout=30) == 3

    @pytest.mark.sqlite_only
    def test_a_clean_stop_removes_the_lock_file(self, database):
        lock = database + ".lock"
        autocron.start(database, workers=1)
        assert add(1, 1).get(timeout=30) == 2
        assert os.path.exists(lock)
        autocron.stop()
        assert not os.path.exists(lock)
        assert autocron.start(database, workers=1) is True        # and a new one is made
        assert add(1, 2).get(timeout=30) == 3

    @pytest.mark.sqlite_only
    def test_a_lock_file_removed_before_it_was_locked_is_not_a_lock(self, database,
                                                                    monkeypatch):
        # A process opens the lock file, the owner's clean stop removes it, then the process
        # locks what it opened: a file that is gone. Locking that would let it run a pool
        # beside one that locks the new file; it locks the file that is there instead.
        lock = database + ".lock"
        store = autocron._open_store(database)
        open(lock, "ab").close()
        flock, removed = autocron._fcntl.flock, []

        def removed_in_between(fd, operation):
            if not removed:
                removed.append(os.fstat(fd).st_ino)
                os.unlink(lock)                     # the owner's stop, at the worst moment
            return flock(fd, operation)
        monkeypatch.setattr(autocron._fcntl, "flock", removed_in_between)
        held = autocron._try_lock(store)
        try:
            assert removed and os.fstat(held.fileno()).st_ino == os.stat(lock).st_ino
        finally:
            held.close()

    @pytest.mark.slow
    @pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
    def test_start_and_stop_cycles_keep_the_descriptor_count_flat(self, database):
        kept = []
        counts = []
        for _ in range(6):        # a descriptor lost per cycle shows from the third on
            assert autocron.start(database, workers=1) is True
            kept.append(add(1, 1))
            assert kept[-1].get(timeout=30) == 2
            autocron.stop()
            assert kept[-1].status == "ready"           # the old Result still reads
            counts.append(open_descriptors())
        assert counts[-1] <= counts[1], counts

    @pytest.mark.sqlite_only      # PRAGMA synchronous
    def test_full_synchronous_is_stored_and_used_by_every_connection(self, database):
        def level(path):
            """PRAGMA synchronous of this process's connection: 1 NORMAL, 2 FULL."""
            return autocron._SqliteStore(path).read("PRAGMA synchronous")[0][0]
        assert autocron.start(database, workers=1) is True
        assert level(database) == 1
        autocron.stop()
        assert autocron.start(database, synchronous="full") is True
        assert level(database) == 2
        assert autocron.delay(level)(database).get(timeout=30) == 2     # in a worker
        autocron.stop()
        assert autocron._open_store(database).settings()["synchronous"] == "full"
        assert run_python("import sys, autocron; print(autocron._SqliteStore(sys.argv[1])"
                          ".read('PRAGMA synchronous')[0][0])", database).stdout == "2\n"
        assert autocron.start(database) is True                # None keeps the stored value
        assert autocron.delay(level)(database).get(timeout=30) == 2
        assert autocron.start(database, synchronous="normal") is False   # while active
        assert level(database) == 1
        autocron.stop()
        assert autocron._open_store(database).settings()["synchronous"] == "normal"

    def test_a_busy_commit_is_retried(self, tmp_path):
        """In WAL mode COMMIT is not busy: BEGIN IMMEDIATE already holds the write lock
        (15,000 commits beside readers and checkpoints saw none). Where the file system
        cannot do WAL and SQLite keeps a rollback journal, COMMIT waits for the readers."""
        path = tmp_path / "journal.db"
        store = autocron._SqliteStore(path)
        assert store.read("PRAGMA journal_mode=DELETE") == [("delete",)]
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM settings").fetchall() == [(0,)]
        timer = threading.Timer(0.5, reader.execute, ("COMMIT",))   # the reader ends later
        timer.start()
        try:
            with store.transaction() as con:
                con.execute("INSERT INTO settings (key, value) VALUES ('workers', '3')")
        finally:
            timer.join()
            reader.close()
        assert store.settings()["workers"] == 3
        store.close()

    def stored_results(self, tmp_path, monkeypatch, statuses):
        """Results with these statuses, oldest first, in a database without a pool."""
        store = autocron._SqliteStore(tmp_path / "results.db")
        uids = [store.add_task(f"module.f{i}", str(i), b"", 0.0) for i in range(len(statuses))]
        with store.transaction() as con:
            con.executemany("UPDATE tasks SET status = ?, summary = 'x' WHERE id = ?",
                            [(s, int(u.rsplit("-", 1)[1])) for s, u in zip(statuses, uids)])
        monkeypatch.setattr(autocron._state, "last_store", store)
        return uids

    def test_results_newest_first_at_most_limit_with_a_status(self, tmp_path, monkeypatch):
        statuses = ["ready", "waiting", "queued", "running", "error", "cancelled", "ready",
                    "waiting"]
        uids = self.stored_results(tmp_path, monkeypatch, statuses)
        newest = uids[::-1]
        assert [r.uuid for r in autocron.get_results()] == newest
        assert [r.uuid for r in autocron.get_results(limit=3)] == newest[:3]
        assert autocron.get_results(limit=0) == []
        waiting = autocron.get_results(status="waiting")       # "queued" has not started
        assert [r.uuid for r in waiting] == [uids[7], uids[2], uids[1]]
        assert [r.status for r in waiting] == ["waiting"] * 3
        assert [r.uuid for r in autocron.get_results(2, "waiting")] == [uids[7], uids[2]]
        assert [r.uuid for r in autocron.get_results(limit=1, status="ready")] == [uids[6]]
        for status in ("running", "error", "cancelled"):
            assert [r.uuid for r in autocron.get_results(status=status)] == \
                [uids[statuses.index(status)]]

    @pytest.mark.parametrize("kwargs, message", [
        ({"status": "queued"}, "status must be one of 'waiting', 'running', 'ready', 'error', "
                               "'cancelled' (None: any), got 'queued'"),
        ({"status": "READY"}, "status must be one of 'waiting', 'running', 'ready', 'error', "
                              "'cancelled' (None: any), got 'READY'"),
        ({"limit": -1}, "limit must be a whole number, 0 or more (None: all results), got -1"),
        ({"limit": 2.5}, "limit must be a whole number, 0 or more (None: all results), got 2.5"),
        ({"limit": True}, "limit must be a whole number, 0 or more (None: all results), got "
                          "True"),
    ])
    def test_bad_limit_or_status_is_refused(self, kwargs, message):
        with pytest.raises(ValueError) as caught:
            autocron.get_results(**kwargs)
        assert str(caught.value) == message

    def test_the_table_shows_50_rows_and_says_how_many_more(self, tmp_path, monkeypatch):
        self.stored_results(tmp_path, monkeypatch, ["ready"] * 53)
        table = autocron.get_results()
        assert len(table) == 53
        lines = repr(table).splitlines()
        assert len(lines) == 1 + 50 + 1
        assert lines[1].split()[1] == "f52" and lines[50].split()[1] == "f3"
        assert lines[-1] == ("... and 3 more results (the list holds them all; "
                             "get_results(limit=..., status=...) narrows it)")
        html = table._repr_html_()
        assert html.count("<tr>") == 1 + 50 + 1
        assert '<tr><td colspan="6">... and 3 more results (the list' in html
        assert repr(autocron.get_results(limit=51)).splitlines()[-1].startswith(
            "... and 1 more result (the list")
        assert len(repr(autocron.get_results(limit=50)).splitlines()) == 51
        assert "more" not in autocron.get_results(limit=50)._repr_html_()

    @pytest.mark.sqlite_only      # SQLite's -wal file
    def test_the_write_ahead_log_stays_small_under_a_deep_queue(self, pool):
        """20,000 calls grew the -wal to 179 MB before the pool checkpointed it."""
        wal, largest, done = pool + "-wal", [0], threading.Event()

        def sample():
            while not done.wait(0.005):
                with contextlib.suppress(OSError):
                    largest[0] = max(largest[0], os.path.getsize(wal))
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            results = [add(i, i) for i in range(20_000)]
            assert results[-1].get(timeout=120) == 39_998
            assert all(results[i].get(timeout=60) == 2 * i for i in range(0, 20_000, 997))
        finally:
            done.set()
            sampler.join()
        assert largest[0] < 64 * 1024 * 1024, f"the -wal grew to {largest[0] / 2 ** 20:.0f} MB"
        wait_until(lambda: os.path.getsize(wal) == 0, 30, "the idle pool to empty the -wal")

    @pytest.mark.parametrize("value", ["maybe", "FULL", 2, True])
    def test_bad_synchronous_values_are_refused(self, database, value):
        with pytest.raises(ValueError) as caught:
            autocron.start(database, synchronous=value)
        assert str(caught.value) == ("synchronous must be 'normal' (a call survives a crash "
                                     f"of the application) or 'full' (also power loss), got "
                                     f"{value!r}")
        assert not is_active()


class TestResultDisplay:
    """What a task printed, repr, HTML, the result table and wait()."""

    def test_output_is_captured_into_the_result(self, pool):
        def chatty(n):
            print("line", n)
            print("warning", file=sys.stderr)
            return n
        result = autocron.delay(chatty)(3)
        assert result.get(timeout=30) == 3
        assert result.output == "line 3\nwarning\n"
        assert repr(result) == (f"<Result {autocron._short_id(result.uuid)} chatty(3) ready: 3 "
                                "| output: 'line 3\\nwarning'>")

    def test_output_keeps_the_last_64_kib(self, pool):
        def flood():
            for i in range(30_000):
                print(f"{i:09d}")
        result = autocron.delay(flood)()
        result.get(timeout=30)
        assert len(result.output) == 64 * 1024
        assert result.output.endswith("000029999\n")

    def test_html_view_shows_function_status_value_and_output(self, pool):
        def shout(text):
            print("shouting")
            return text.upper()
        result = autocron.delay(shout)("<b>")
        result.get(timeout=30)
        view = result._repr_html_()
        assert "<b>shout</b>('&lt;b&gt;')" in view
        assert ">ready</span>" in view and "<code>'&lt;B&gt;'</code>" in view
        assert "<pre>shouting\n</pre>" in view
        failed = fail("bad <input>")
        with pytest.raises(autocron.TaskError):
            failed.get(timeout=30)
        assert "ValueError: bad &lt;input&gt;" in failed._repr_html_()
        assert "background: #cf222e" in failed._repr_html_()

    def test_results_table_in_text_and_html(self, pool):
        add(1, 2).get(timeout=30)
        table = autocron.get_results()
        text = repr(table).splitlines()
        assert text[0].split() == ["id", "function", "args", "status", "value", "took"]
        assert text[1].split()[1:5] == ["add", "1,", "2", "ready"]
        assert "<table>" in table._repr_html_() and "<td>add</td>" in table._repr_html_()
        assert repr(type(table)()) == "(no results)"

    def test_wait_returns_values_in_order(self, pool):
        results = [add(i, i) for i in range(10)]
        assert autocron.wait(results, timeout=60) == [2 * i for i in range(10)]

    def test_wait_raises_for_a_failed_task_and_on_timeout(self, pool, tmp_path):
        with pytest.raises(autocron.TaskError, match="second"):
            autocron.wait([add(1, 1), fail("second")], timeout=60)
        with pytest.raises(TimeoutError, match="1 of 2 tasks did not finish within 0.3 s"):
            autocron.wait([add(1, 1), block(str(tmp_path))], timeout=0.3)
        (tmp_path / "task.go").write_text("")

    def test_wait_shows_progress_on_a_terminal_only(self, pool, monkeypatch):
        class Terminal(io.StringIO):
            def isatty(self):
                return True
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        autocron.wait([add(1, 1), add(2, 2)], timeout=60)
        assert terminal.getvalue().endswith("[##############################] 2/2 done, "
                                            f"{terminal.getvalue().split(', ')[-1]}")
        assert terminal.getvalue().startswith("\r[") and terminal.getvalue().endswith(" s\n")
        piped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", piped)
        autocron.wait([add(1, 1)], timeout=60)
        assert piped.getvalue() == ""

    def test_output_is_a_real_stream_that_catches_subprocesses_too(self, pool):
        def streams():
            print("text")
            sys.stdout.buffer.write(b"bytes\n")
            sys.stdout.flush()
            subprocess.run(["echo", "to our stdout"], stdout=sys.stdout, check=True)
            subprocess.run(["echo", "a child's own"], check=True)
            os.system("echo from os.system; echo to stderr >&2")
            print("flushed", flush=True)
            print("on stderr", file=sys.stderr)
            sys.stderr.buffer.write(b"stderr bytes\n")
            sys.stderr.flush()
            return (sys.stdout.encoding, sys.stdout.fileno(), sys.stderr.fileno(),
                    sys.stdout.isatty())
        result = autocron.delay(streams)()
        assert result.get(timeout=30) == ("utf-8", 1, 2, False)
        assert result.output == ("text\nbytes\nto our stdout\na child's own\nfrom os.system\n"
                                 "to stderr\nflushed\non stderr\nstderr bytes\n")

    def test_faulthandler_writes_into_the_output(self, pool):
        def traced():
            import faulthandler
            faulthandler.enable()
            faulthandler.dump_traceback(all_threads=False)
            enabled = faulthandler.is_enabled()
            faulthandler.disable()
            return enabled
        result = autocron.delay(traced)()
        assert result.get(timeout=30) is True
        assert "(most recent call first)" in result.output and "in traced" in result.output

    def test_output_of_one_task_does_not_leak_into_the_next(self, database):
        autocron.start(database, workers=1)

        def untidy():
            sys.stdout.write("no newline ")
            sys.stderr.buffer.write(b"raw bytes ")
            subprocess.run(["printf", "child "], check=True)
            sys.stdout = io.StringIO()            # and never put back
            return os.getpid()

        def silent():
            return os.getpid()

        def loud():
            print("loud")
            return os.getpid()
        results = [autocron.delay(f)() for f in (untidy, silent, loud, silent)]
        assert len({r.get(timeout=30) for r in results}) == 1           # one worker
        assert sorted(results[0].output.split()) == ["bytes", "child", "newline", "no", "raw"]
        assert [r.output for r in results[1:]] == ["", "loud\n", ""]

    def test_a_task_that_closes_or_redirects_fds_1_and_2_leaves_the_next_ones_captured(
            self, database):
        autocron.start(database, workers=1)

        def closes():
            os.close(1)
            os.close(2)
            return os.getpid()

        def redirects():
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
            return os.getpid()

        def prints(n):
            print("out", n)
            print("err", n, file=sys.stderr)
            subprocess.run(["echo", "child", str(n)], check=True)
            return os.getpid()
        results = [autocron.delay(closes)(), autocron.delay(prints)(1),
                   autocron.delay(redirects)(), autocron.delay(prints)(2)]
        assert len({r.get(timeout=30) for r in results}) == 1           # one worker
        assert [r.status for r in results] == ["ready"] * 4
        assert [r.output for r in results] == ["", "out 1\nerr 1\nchild 1\n",
                                               "", "out 2\nerr 2\nchild 2\n"]

    def test_output_cut_inside_a_character_starts_at_the_next_one(self, pool):
        def wide():
            print("é" * 40_000, end="")        # 80,000 bytes: the cut falls on a character
            sys.stdout.flush()
            sys.stdout.buffer.write(b"\n\xff\n")  # bytes that are not UTF-8 at all
        result = autocron.delay(wide)()
        result.get(timeout=30)
        assert result.output == "é" * (32 * 1024 - 2) + "\n\ufffd\n"

    def test_a_lone_surrogate_in_output_value_and_error_is_stored_escaped(self, database):
        autocron.start(database, workers=1)
        manager = wait_until(lambda: pool_pids()[0], what="the manager")

        class Odd:
            def __repr__(self):
                return "Odd(\udcff)"

        def odd():
            print("\udcff")
            print("\udcfe", file=sys.stderr)
            return Odd()

        def odd_error():
            raise ValueError("bad \udcff")
        result = autocron.delay(odd)()
        assert type(result.get(timeout=30)).__name__ == "Odd"
        assert result.status == "ready" and result.output == "\\udcff\n\\udcfe\n"
        assert repr(result).endswith(" ready: Odd(\\udcff) | output: '\\\\udcff\\n\\\\udcfe'>")
        with pytest.raises(autocron.TaskError) as caught:
            autocron.delay(odd_error)().get(timeout=30)
        assert caught.value.message == "bad \\udcff"
        assert add(1, 2).get(timeout=30) == 3
        assert pool_pids()[0] == manager

    def test_a_nul_character_in_output_value_and_error_is_stored_and_the_pool_goes_on(
            self, database):
        # PostgreSQL's text takes no NUL: a task that printed one wedged the pool (its
        # outcome taken for an outage, written again forever, and every other call waiting)
        autocron.start(database, workers=1)
        manager = wait_until(lambda: pool_pids()[0], what="the manager")

        def nul():
            print("a\x00b")
            sys.stdout.flush()
            os.write(1, b"c\x00d\n")                # through the file descriptor too
            return "v\x00"

        def nul_error():
            raise ValueError("bad \x00")
        result = autocron.delay(nul)()
        assert result.get(timeout=30) == "v\x00"
        assert result.output == "a\\x00b\nc\\x00d\n"
        with pytest.raises(autocron.TaskError) as caught:
            autocron.delay(nul_error)().get(timeout=30)
        assert caught.value.message == "bad \x00"
        assert add(1, 2).get(timeout=30) == 3
        assert pool_pids()[0] == manager

    def test_a_huge_error_is_stored_bounded_keeping_both_ends_and_saying_how_much_was_cut(
            self, database):
        autocron.start(database, workers=1)
        full = "start-of-message " + "x" * 20_000_000 + " end-of-message"

        def loud(text):
            raise ValueError(text)
        result = autocron.delay(loud)(full)
        with pytest.raises(autocron.TaskError) as caught:
            result.get(timeout=120)
        (stored,), = query(database, "SELECT error FROM tasks WHERE id = ?",
                           (int(result.uuid.rsplit("-", 1)[1]),))
        size = len(stored)
        assert size < 3 * 64 * 1024                      # message and traceback, 64 KiB each
        error = json.loads(stored)
        cut = re.compile(r"(.*)\n\.\.\. \[([0-9,]+) characters cut\] \.\.\.\n(.*)\Z", re.S)
        head, count, tail = cut.match(error["message"]).groups()
        assert len(error["message"]) <= 64 * 1024
        assert head.startswith("start-of-message xxx") and tail.endswith("xxx end-of-message")
        assert len(head) > 30_000 and len(tail) > 30_000
        assert len(head) + int(count.replace(",", "")) + len(tail) == len(full)
        head, count, tail = cut.match(error["traceback"]).groups()
        assert len(error["traceback"]) <= 64 * 1024
        assert head.startswith("Traceback (most recent call last):\n") and "in loud\n" in head
        assert tail.endswith("xxx end-of-message\n")
        assert (caught.value.message, caught.value.traceback) == (error["message"],
                                                                  error["traceback"])
        assert caught.value.type_name == "ValueError"


# ---- Jupyter -------------------------------------------------------------------------------


def kernel(tmp_path):
    """A real ipykernel, in tmp_path, that can import autocron and this module."""
    from jupyter_client import KernelManager
    manager = KernelManager(kernel_name="python3")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    manager.start_kernel(cwd=str(tmp_path), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return manager, client


def run_cell(client, code, timeout=60, shown=None):
    """Execute code; (text output, error name or None). `shown`, a list, gets the data
    ({mime type: text}) of what the cell displays."""
    reply_id = client.execute(code)
    out, error = [], None
    end = time.monotonic() + timeout
    while True:
        message = client.get_iopub_msg(timeout=max(1, end - time.monotonic()))
        if message["parent_header"].get("msg_id") != reply_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind in ("execute_result", "display_data") and shown is not None:
            shown.append(content["data"])
        if kind == "stream":
            out.append(content["text"])
        elif kind == "execute_result":
            out.append(content["data"]["text/plain"])
        elif kind == "error":
            error = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out), error


class TestJupyter:
    """The tour notebook and life in a real kernel."""

    @pytest.mark.slow
    def test_the_tour_notebook_runs_top_to_bottom(self, tmp_path):
        import nbclient
        import nbformat
        notebook = nbformat.read(os.path.join(HERE, "notebooks", "autocron_tour.ipynb"), 4)
        assert all(not cell.get("outputs") for cell in notebook.cells if
                   cell.cell_type == "code"), "commit the notebook without outputs"
        nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = []
        for cell in notebook.cells:
            text = ""
            for output in cell.get("outputs", []):
                text += output.get("text", "") + output.get("data", {}).get("text/plain", "")
            outputs.append(text)
        text = "\n".join(outputs)
        assert "10.0 'measuring 3 points\\n'" in text
        assert "ZeroDivisionError: division by zero" in text
        assert "Point(x=1.0, y=2.0)" in text
        assert "7.0710678118654755]" in text
        assert "(10.0, (2, 2, 'legs measured'))" in text        # tasks that start tasks
        assert "\n3.0\n" in f"\n{text}\n"                        # a Result as an argument
        assert "every 15 minutes from 09:00 to 17:59, Monday through Friday" in text
        assert "('ready', 2.0)" in text
        assert re.search(r"<autocron dashboard at http://127\.0\.0\.1:\d+/\?token=[\w-]+>",
                         text)
        assert "route_length" in outputs[-1]
        assert (tmp_path / "tour.db").exists()

    def test_where_the_browser_cannot_reach_the_kernel_the_cell_shows_a_fresh_view(
            self, tmp_path, chromium):
        manager, client = kernel(tmp_path)
        shown = []
        try:
            out, error = run_cell(client, textwrap.dedent("""
                import autocron, test_autocron
                autocron.start(workers=1)
                assert test_autocron.add(1, 1).get(timeout=30) == 2
                handle = autocron.dashboard()
                handle
            """), shown=shown)
            assert error is None, out
            frame, cell = shown                       # the frame with its probe; the cell view
            assert "data-autocron-frame" in frame["text/html"]
            assert "data-autocron-cell" in cell["text/html"]
            for _ in range(2):                        # the cell run again: one view's updates
                assert run_cell(client, "handle") == ("", None)
            # the kernel sends the cell view anew when what it shows changes
            out, error = run_cell(client, "print(test_autocron.add(2, 2).get(timeout=30))")
            assert (out, error) == ("4\n", None)
            fresh, updates, end = None, [], time.monotonic() + 30
            while fresh is None and time.monotonic() < end:
                with contextlib.suppress(queue_module.Empty):
                    message = client.get_iopub_msg(timeout=1)
                    if message["msg_type"] == "update_display_data":
                        updates.append(message["content"]["transient"]["display_id"])
                        html = message["content"]["data"]["text/html"]
                        if ">2</b>ready" in html:
                            fresh = html
            assert fresh is not None, "no update of the cell view"
            # one message updates the three displays (one id), and only when the view changed
            assert len(set(updates)) == 1 and len(updates) <= 3, updates
            assert "href='/" not in fresh          # its links go to the dashboard's address
            home = re.search(r"http://127\.0\.0\.1:(\d+)/", frame["text/html"]).group(0)
            for reachable in (True, False):
                # a remote kernel's address: one this browser cannot reach
                html = frame["text/html"] + fresh
                if not reachable:
                    html = html.replace(home, f"http://127.0.0.1:{free_tcp_port()}/")
                with notebook_page(html) as port:
                    context = chromium.new_context()
                    try:
                        tab = context.new_page()
                        failures = []
                        tab.on("pageerror", lambda error: failures.append(str(error)))
                        tab.goto(f"http://localhost:{port}/")
                        view = tab.locator("[data-autocron-cell]")
                        if reachable:
                            tab.frame_locator("iframe").locator(
                                "[data-count='ready'] b").wait_for(timeout=15_000)
                            tab.wait_for_function("Object.values(window.autocronReach || "
                                                  "{}).length === 1", timeout=15_000)
                            assert not view.is_visible()
                        else:
                            view.wait_for(state="visible", timeout=15_000)
                            assert not tab.locator("iframe").is_visible()
                            note = tab.locator("[data-autocron-remote]").inner_text()
                            assert note.startswith("This browser cannot reach the kernel's "
                                                   "address http://127.0.0.1:")
                            assert view.locator("[data-count='ready'] b").inner_text() == "2"
                            link = view.locator("a[data-count='ready']")
                            assert link.get_attribute("target") == "_blank"
                        assert failures == []
                    finally:
                        context.close()
        finally:
            with contextlib.suppress(Exception):
                run_cell(client, "handle.stop(); autocron.stop()", timeout=30)
            client.stop_channels()
            manager.shutdown_kernel(now=True)

    def test_restart_ends_the_workers_and_keeps_the_results(self, tmp_path):
        manager, client = kernel(tmp_path)
        try:
            out, error = run_cell(client, textwrap.dedent("""
                import autocron, test_autocron
                autocron.start(workers=2)              # ./autocron.db
                test_autocron.wait_until(lambda: len(test_autocron.worker_pids()) == 2)
                result = test_autocron.add(20, 22)
                print(result.get(timeout=30), result.uuid, *test_autocron.worker_pids())
            """))
            assert error is None, out
            value, uid, *pids = out.split()
            assert value == "42" and len(pids) == 2
            manager.restart_kernel(now=True)
            client.wait_for_ready(timeout=60)
            wait_until(lambda: not any(alive(int(p)) for p in pids), 30, "the workers to end")
            out, error = run_cell(client, textwrap.dedent(f"""
                import autocron                        # no start(): results are still there
                found = autocron.get_result({uid!r})
                print(found.get(), len(autocron.get_results()))
            """))
            assert (out.strip(), error) == ("42 1", None)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            with contextlib.suppress(FileNotFoundError):     # the restart gave no time to tidy
                os.unlink(autocron._wake_path(str(tmp_path / "autocron.db")))

    def test_the_dashboard_shows_in_the_cell_and_ends_with_the_kernel(self, tmp_path):
        manager, client = kernel(tmp_path)
        try:
            out, error = run_cell(client, textwrap.dedent("""
                import autocron, test_autocron
                autocron.start("k.db", workers=1)
                result = test_autocron.add(2, 3)
                print(result.uuid, result.get(timeout=30))
            """))
            assert error is None, out
            uid = out.split()[0]
            shown = []
            out, error = run_cell(client, "board = autocron.dashboard()\nboard", shown=shown)
            assert error is None, out
            url = re.fullmatch(r"<autocron dashboard at (http://127\.0\.0\.1:\d+/)\?token="
                               r"[\w-]+>", shown[0]["text/plain"]).group(1)
            printed = shown[0]["text/plain"][len("<autocron dashboard at "):-1]
            assert f"<iframe src='{printed.replace('/?', '/notebook?')}'" in \
                shown[0]["text/html"]
            status, body, _ = http_get(url + "tasks", signed_in(printed))
            assert status == 200 and f"data-task-id='{uid}'" in body
            out, error = run_cell(client, "print(autocron.dashboard() is board)")
            assert (out.strip(), error) == ("True", None)
            run_cell(client, "autocron.stop()")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        port = urllib.parse.urlsplit(url).port
        with socket.socket() as probe:            # the server ended with its kernel
            assert probe.connect_ex(("127.0.0.1", port)) != 0

    def test_interrupting_get_leaves_the_pool_running(self, tmp_path):
        manager, client = kernel(tmp_path)
        try:
            out, error = run_cell(client, textwrap.dedent(f"""
                import autocron, test_autocron
                print(autocron.start("k.db", workers=2))
                slow = test_autocron.block({str(tmp_path)!r})
            """))
            assert (out.strip(), error) == ("True", None)
            waiting = client.execute("slow.get()")
            wait_until(lambda: (tmp_path / "task.pid").exists(), what="the task to start")
            time.sleep(0.2)                        # let the cell enter get()
            manager.interrupt_kernel()
            errors = []
            while True:
                message = client.get_iopub_msg(timeout=30)
                if message["parent_header"].get("msg_id") != waiting:
                    continue
                if message["msg_type"] == "error":
                    errors.append(message["content"]["ename"])
                if message["content"].get("execution_state") == "idle":
                    break
            assert errors == ["KeyboardInterrupt"]
            out, error = run_cell(client, "print(test_autocron.add(1, 2).get(timeout=30))")
            assert (out.strip(), error) == ("3", None)
            (tmp_path / "task.go").write_text("")
            out, error = run_cell(client, "print(slow.get(timeout=30) > 0, autocron.start('k.db'))")
            assert (out.strip(), error) == ("True False", None)
            run_cell(client, "autocron.stop()")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)


# ---- the dashboard -----------------------------------------------------------------------------


XSS = "<img src=x onerror=window.__xss=1>"


@autocron.delay
def shout(text):
    print(text)
    return text


@autocron.delay
def fail_until(path):
    """Fail until `path` exists."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return "found"


@autocron.delay
def hold_until(path):
    """Run until `path` exists (a minute at most)."""
    end = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
    return "released"


@autocron.delay
def resize(photo, width):
    """The README picture's workload: a photo resized (a few milliseconds)."""
    time.sleep(0.01 * (1 + len(photo) % 4))
    return f"{photo} at {width}px"


@autocron.delay(retries=1, retry_delay=0)
def send_invoice(customer):
    """The README picture's workload: a mail that one customer's server refuses."""
    if customer == "acme":
        raise ConnectionError("smtp.acme.example refused the connection: 421 too many "
                              "connections\nafter 2 attempts")
    time.sleep(0.03)
    return f"invoice sent to {customer}"


@autocron.delay
def crawl_catalogue(folder, pages):
    """The README picture's workload: a long call that reports its progress, until
    folder/stop exists."""
    for page in range(1, pages + 1):
        autocron.progress(page, pages, "pages")
        if os.path.exists(os.path.join(folder, "stop")):
            return page
        time.sleep(0.2)
    return pages


def sync_orders():
    """The README picture's cron job."""
    return "12 orders synced"


@autocron.delay
def pid_and_hold(folder):
    """Write this worker's pid to folder/pid, then run until folder/go exists (a minute at
    most)."""
    Path(folder, "pid.new").write_text(str(os.getpid()))
    os.replace(os.path.join(folder, "pid.new"), os.path.join(folder, "pid"))   # whole at once
    end = time.monotonic() + 60
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < end:
        time.sleep(0.01)
    return "released"


def page_secret(body):
    """The secret that the forms of a dashboard page carry."""
    return re.search(r"name='secret' value='([^']+)'", body).group(1)


@pytest.fixture
def board(database):
    """A database with three finished tasks and one due in an hour, and its dashboard."""
    assert autocron.start(database, workers=1) is True
    assert [add(i, i).get(timeout=30) for i in range(3)] == [0, 2, 4]
    later = autocron.delay(hours=1)(add)(5, 5)
    server = DashboardServer(database)
    server.later = later
    yield server
    server.stop()


@pytest.fixture
def page(chromium, board):
    """A browser page on the board (see browsing)."""
    with browsing(chromium, board.base) as tab:
        tab.goto(board.url)               # the printed address: its token becomes a cookie
        yield tab


TYPED_SAMPLE = """
    import asyncio

    import autocron


    @autocron.delay
    def add(a: int, b: int) -> int:
        return a + b


    @autocron.delay(retries=2, timeout=30)
    async def fetch(url: str) -> bytes:
        return url.encode()


    result = add(1, 2)
    reveal_type(result)
    reveal_type(result.get(timeout=10))
    reveal_type(add.map([1, 2], [3, 4]))
    reveal_type(fetch("https://example.org").get())
    reveal_type(result.function_result)


    async def main() -> None:
        value = await add(1, 2)
        reveal_type(value)


    add("one", 2)
    asyncio.run(main())
    reveal_type(add.options(priority=1, retry_on=KeyError)(1, 2))
"""


def typed_project(tmp_path):
    """A project with a copy of autocron.py and the typed sample, as a user has it."""
    shutil.copy(AUTOCRON, tmp_path / "autocron.py")
    (tmp_path / "sample.py").write_text(textwrap.dedent(TYPED_SAMPLE).lstrip())
    return tmp_path


class TestTypes:
    """The public API keeps the types of the functions it runs (api.md, "Types")."""

    def test_mypy_strict_sees_the_parameters_and_the_return_types(self, tmp_path):
        pytest.importorskip("mypy")
        project = typed_project(tmp_path)
        done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                               "sample.py"], cwd=project, capture_output=True, text=True,
                              timeout=600)
        said = [re.sub(r"Union\[(.*), None\]", r"\1 | None", line.replace("builtins.", ""))
                for line in done.stdout.splitlines() if line.startswith("sample.py")]
        # (mypy before 2, the newest on Python 3.9, says builtins.int and Union[int, None])
        assert said == [
            'sample.py:17: note: Revealed type is "autocron.Result[int]"',
            'sample.py:18: note: Revealed type is "int"',
            'sample.py:19: note: Revealed type is "list[autocron.Result[int]]"',
            'sample.py:20: note: Revealed type is "bytes"',
            'sample.py:21: note: Revealed type is "int | None"',
            'sample.py:26: note: Revealed type is "int"',
            'sample.py:29: error: Argument 1 to "__call__" of "_Delayed" has incompatible '
            'type "str"; expected "int"  [arg-type]',
            'sample.py:31: note: Revealed type is "autocron.Result[int]"'], done.stdout

    def test_pyright_at_python_3_9_sees_the_same(self, tmp_path):
        pyright = os.path.join(os.path.dirname(sys.executable), "pyright")
        if not os.path.exists(pyright):
            pytest.skip("pyright is not installed (the test extra has it)")
        project = typed_project(tmp_path)
        done = subprocess.run([pyright, "--pythonversion", "3.9", "--outputjson", "sample.py"],
                              cwd=project, capture_output=True, text=True, timeout=600)
        said = [(d["range"]["start"]["line"] + 1, d["severity"], d["message"].splitlines()[0])
                for d in json.loads(done.stdout)["generalDiagnostics"]
                if d["file"].endswith("sample.py")]
        assert said == [
            (17, "information", 'Type of "result" is "Result[int]"'),
            (18, "information", 'Type of "result.get(timeout=10)" is "int"'),
            (19, "information", 'Type of "add.map([1, 2], [3, 4])" is "list[Result[int]]"'),
            (20, "information", 'Type of "fetch("https://example.org").get()" is "bytes"'),
            (21, "information", 'Type of "result.function_result" is "int | None"'),
            (26, "information", 'Type of "value" is "int"'),
            (29, "error", 'Argument of type "Literal[\'one\']" cannot be assigned to '
                          'parameter "a" of type "int" in function "__call__"'),
            (31, "information", 'Type of "add.options(priority=1, retry_on=KeyError)(1, 2)" '
                                'is "Result[int]"')], done.stdout


    @pytest.mark.parametrize("packages", ["installed", "absent"])
    def test_mypy_strict_finds_no_error_in_a_copy_of_the_module(self, tmp_path, packages):
        """A project that copies autocron.py gets no error from it, with psycopg and Django
        installed (the test extra has both) or without them (no site-packages at all)."""
        pytest.importorskip("mypy")
        project = typed_project(tmp_path)
        absent = ["--no-site-packages"] if packages == "absent" else []
        done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                               *absent, "autocron.py"], cwd=project, capture_output=True,
                              text=True, timeout=600)
        assert done.stdout.startswith("Success: no issues found"), done.stdout + done.stderr

    def test_pyright_finds_no_error_in_a_copy_of_the_module(self, tmp_path, version="3.9"):
        pyright = os.path.join(os.path.dirname(sys.executable), "pyright")
        if not os.path.exists(pyright):
            pytest.skip("pyright is not installed (the test extra has it)")
        project = typed_project(tmp_path)
        done = subprocess.run([pyright, "--pythonversion", version, "--pythonpath",
                               sys.executable, "--outputjson", "autocron.py"], cwd=project,
                              capture_output=True, text=True, timeout=600)
        found = json.loads(done.stdout)
        said = [(d["range"]["start"]["line"] + 1, d["message"].splitlines()[0])
                for d in found["generalDiagnostics"] if d["severity"] == "error"]
        assert said == [] and found["summary"]["errorCount"] == 0, done.stdout


class TestDashboard:
    """The dashboard as a person would use it, in a real browser, and as a script would."""

    def test_the_overview_shows_the_counts_of_the_database(self, board, page):
        page.goto(board.url)
        counts = {card.get_attribute("data-count"): card.locator("b").inner_text()
                  for card in page.locator("[data-count]").all()}
        assert counts["ready"] == "3" and counts["waiting"] == "1"
        assert counts["due now"] == "0" and counts["error"] == "0"
        assert page.locator("svg[data-chart='minutes'] rect").count() == 60
        bar = page.locator("svg[data-chart='run-time']")
        assert bar.count() == 1 and bar.get_attribute("aria-label").startswith("p50 ")
        assert page.locator("[data-error-rate]").inner_text() == "0.0%"
        assert "test_autocron.add" in page.locator("table").last.inner_text()

    def test_a_task_stored_while_the_page_is_open_appears_without_a_reload(self, board, page):
        page.goto(board.base + "tasks")
        assert page.locator(f"[data-task-id='{board.later.uuid}']").count() == 1
        fresh = add(20, 22)
        assert fresh.get(timeout=30) == 42
        page.wait_for_selector(f"[data-task-id='{fresh.uuid}']", timeout=15_000)

    def test_cancel_from_the_page_withdraws_the_task(self, board, page):
        page.goto(board.base + f"task/{board.later.uuid}")
        page.accepted = []
        page.click("[data-action='cancel']")
        page.wait_for_selector("span.cancelled", timeout=15_000)
        assert board.later.status == "cancelled"
        assert page.accepted == ["Cancel this waiting call of test_autocron.add? It will not "
                                 "run; the calls that depend on it fail."]

    def test_force_cancel_asks_first_then_stops_the_running_task(self, board, page, tmp_path):
        held = hold_until(str(tmp_path / "never"))
        wait_until(lambda: held.status == "running", what="the task to start")
        page.goto(board.base + f"task/{held.uuid}")
        page.accepted = []
        page.click("[data-action='cancel']")
        page.wait_for_selector("span.cancelled", timeout=30_000)
        assert page.accepted == ["Stop this running task? A synchronous task's worker is "
                                 "terminated and replaced; an async task's coroutine is "
                                 "cancelled."]
        assert held.status == "cancelled"

    def test_retry_from_the_page_runs_the_call_again_linked_to_the_old_task(self, board, page,
                                                                            database, tmp_path):
        ticket = tmp_path / "ticket"
        failed = fail_until(str(ticket))
        wait_until(lambda: not failed.waiting, what="the first attempt")
        assert failed.status == "error"
        page.goto(board.base + f"task/{failed.uuid}")
        assert page.locator("[data-action='cancel']").count() == 0
        ticket.touch()
        page.click("[data-action='retry']")
        page.wait_for_selector("[data-retry-of]", timeout=15_000)
        fresh = page.locator("table[data-task-id]").get_attribute("data-task-id")
        assert fresh != failed.uuid
        assert page.locator("[data-retry-of] a").get_attribute("href") == f"/task/{failed.uuid}"
        page.wait_for_selector("span.ready", timeout=30_000)      # live: no reload
        rows = {row[0]: row[1:] for row in query(
            database, "SELECT retry_of, name, args, record, attempts, status FROM tasks "
                      "WHERE name = 'test_autocron.fail_until'")}
        assert rows[failed.uuid][:3] == rows[None][:3]           # the same call
        assert (rows[failed.uuid][3:], rows[None][3:]) == ((1, "ready"), (1, "error"))
        page.goto(board.base + f"task/{failed.uuid}")
        assert page.locator("[data-retried-as] a").get_attribute("href") == f"/task/{fresh}"
        assert failed.status == "error"                           # the old one stays as it was

    def test_a_task_s_page_shows_its_key_and_progress(self, board, tmp_path):
        gate = tmp_path / "gate"
        keyed = autocron.delay(report_progress).options(key="crawl:1")(3, str(gate))
        wait_until(lambda: keyed.progress == (3, 3, "step 3"), 30, "the report")
        body = board.get(f"/task/{keyed.uuid}")[1]
        assert "<tr data-field='key'><th>key</th><td>crawl:1</td></tr>" in body
        assert "<tr data-field='progress'><th>progress</th><td>3/3 step 3</td></tr>" in body
        gate.write_text("")
        assert keyed.get(timeout=30) == keyed.uuid

    def test_a_task_s_page_links_its_dependencies_dependents_and_steps_both_ways(
            self, board, tmp_path):
        after = add(board.later, 1)                   # waits for the call due in an hour
        made = nested(1)                              # a task that makes a call (a step)
        kind, value, inner = made.get(timeout=30)
        body = board.get(f"/task/{after.uuid}")[1]
        assert f"<p data-links='deps'>Depends on: <a href='/task/{board.later.uuid}'>" in body
        assert "<tr data-field='waits for'><th>waits for</th><td>1 of the calls it depends on</td></tr>" in body
        body = board.get(f"/task/{board.later.uuid}")[1]
        assert "<tr data-field='waits for'><th>waits for</th><td>its time, " in body
        assert (f"<p data-links='dependents'>Calls that depend on it: <a href='/task/"
                f"{after.uuid}'>{autocron._short_id(after.uuid)}</a> test_autocron.add "
                "<span class='blocked'>blocked</span>.</p>") in body
        body = board.get(f"/task/{made.uuid}")[1]
        assert f"<p data-links='steps'>Calls it made: <a href='/task/{inner.uuid}'>" in body
        body = board.get(f"/task/{inner.uuid}")[1]
        assert f"<p data-links='parent'>Made by the task: <a href='/task/{made.uuid}'>" in body
        counts = board.get("/")[1]
        assert "<a class='card waiting' data-count='on other calls' href='/tasks?status=" \
               "waiting'><b>1</b>" in counts
        info = json.loads(cli("info", "--json", db=board.database).stdout)
        assert info["queue"]["waiting_on_calls"] == 1 and info["queue"]["waiting"] == 1

    def test_the_queues_page_lists_queues_and_changes_a_limit(self, board):
        status, body = board.get("/queues")[:2]
        assert status == 200
        assert "<tr data-queue='default'><td>default</td><td>1</td><td>0</td><td>3</td>" \
               "<td>-</td><td>-</td><td><form" in body      # 3 started in the last minute
        secret = page_secret(body)
        assert board.post("/queue/limit", {"secret": secret, "queue": "mail",
                                           "concurrency": "2", "rate": "10/m"})[0] == 200
        body = board.get("/queues")[1]
        assert "<tr data-queue='mail'><td>mail</td><td>0</td><td>0</td><td>0</td><td>2</td>" \
               "<td>10/minute</td><td></td></tr>" in body
        assert board.post("/queue/limit", {"secret": secret, "queue": "mail",
                                           "rate": "none"})[0] == 200
        assert autocron.limit("mail", database=board.database) == {"concurrency": 2,
                                                                   "rate": None}
        assert board.post("/queue/limit", {"secret": secret, "queue": "mail",
                                           "concurrency": "two"}) == (
            400, "concurrency must be a whole number, 1 or more, or none; got 'two'")
        status, text = board.post("/queue/limit", {"secret": secret, "queue": "mail",
                                                   "rate": "10/day"})
        assert status == 400 and text.startswith('rate must be "N/second"')
        assert board.post("/queue/limit", {"secret": "guess", "queue": "mail"})[0] == 403

    def test_retry_is_refused_for_a_task_that_did_not_fail(self, board):
        body = board.get(f"/task/{board.later.uuid}")[1]
        assert "data-action='retry'" not in body
        secret = page_secret(body)
        assert board.post(f"/task/{board.later.uuid}/retry", {"secret": secret}) == (
            409, "only a failed or cancelled task can be retried; this one is waiting")
        assert board.post("/task/nothing-1/retry", {"secret": secret}) == (404, "no such task")
        assert board.post(f"/task/{board.later.uuid}/retry", {"secret": "guess"})[0] == 403

    def test_pause_resume_and_remove_a_cron_job_from_the_page(self, database, chromium, monkeypatch,
                                                       tmp_path):
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        autocron.cron("0 9,15 * * *")(cron_job)
        name = "test_autocron.cron_job"
        try:
            autocron.start(database, workers=1)
            handle = autocron.dashboard()
            base = handle.url.split("?")[0]
            try:
                with browsing(chromium, base) as page:
                    page.goto(handle.url)
                    page.goto(base + "crons")
                    row = page.locator(f"[data-cron='{name}']")
                    assert row.get_attribute("data-paused") == "0"
                    row.locator("[data-action='pause']").click()
                    page.wait_for_selector(f"[data-cron='{name}'][data-paused='1']",
                                           timeout=15_000)
                    assert "paused: no runs until it is resumed" in row.inner_text()
                    assert page.locator("[data-timeline]").count() == 0
                    assert query(database, "SELECT paused FROM crons") == [(1,)]
                    clock.now += 7 * 3600                 # 15:59:30
                    row.locator("[data-action='resume']").click()
                    page.wait_for_selector(f"[data-cron='{name}'][data-paused='0']",
                                           timeout=15_000)
                    assert query(database, "SELECT paused, next_due FROM crons") == [
                        (0, datetime(2030, 1, 2, 9, 0).timestamp())]
                    assert "Wed 2030-01-02 09:00, Wed 2030-01-02 15:00" in row.inner_text()
                    page.accepted = []                    # the question is answered yes
                    row.locator("[data-action='remove']").click()
                    page.wait_for_selector(f"[data-cron='{name}']", state="detached",
                                           timeout=15_000)
                    assert page.accepted == [f"Remove the cron job {name}? Its runs stay; code "
                                             "that still declares it registers it again at "
                                             "its next start()."]
                    assert query(database, "SELECT count(*) FROM crons") == [(0,)]
                cookie = signed_in(handle.url)
                secret = page_secret(http_get(base + "tasks", cookie)[1])
                status, body = post_form(base + "cron/pause", {"secret": secret,
                                                               "name": "nope"}, cookie)
                assert (status, body) == (404, "no cron job named 'nope'")
            finally:
                handle.stop()
                autocron._dashboards.clear()
        finally:
            forget_cron(name)

    def test_a_payload_in_arguments_and_output_stays_text(self, board, page):
        result = shout(XSS)
        assert result.get(timeout=30) == XSS
        for path in ("tasks", f"task/{result.uuid}"):
            page.goto(board.base + path)
            assert XSS in page.locator("main").inner_text()
            assert page.locator("main img").count() == 0
            assert page.evaluate("window.__xss") is None
        assert page.locator("[data-output]").inner_text().strip() == XSS

    def test_the_task_list_filters_and_pages(self, board):
        status, body, _ = board.get("/tasks?status=ready")
        assert status == 200 and body.count("data-task-id=") == 3
        status, body, _ = board.get("/tasks?status=waiting&function=test_autocron.add")
        assert body.count("data-task-id=") == 1 and board.later.uuid in body
        newest = re.findall(r"data-task-id='([^']+)'", board.get("/tasks")[1])
        older = board.get(f"/tasks?before={newest[1].rsplit('-', 1)[1]}")[1]
        assert re.findall(r"data-task-id='([^']+)'", older) == newest[2:]

    def test_the_statistics_say_when_they_read_a_sample(self, board, database, monkeypatch):
        store = autocron._open_store(database)
        assert "data-sample" not in autocron._Dashboard(store, None).page("/", {})[1]
        monkeypatch.setattr(autocron, "_DASH_STATS", 2)
        shown = autocron._Dashboard(store, None).page("/", {})[1]
        assert "Counted over the newest 2 tasks that finished in the last hour." in shown

    def test_a_filter_reads_a_bounded_stretch_of_the_table(self, board, database, monkeypatch):
        monkeypatch.setattr(autocron, "_DASH_SCAN", 3)
        store = autocron._open_store(database)
        uids = dict(query(database, "SELECT id, token || '-' || id FROM tasks"))
        top = max(uids) + 1
        page = store.task_page(autocron._TaskFilter(function="test_autocron.add"), None, 50,
                               scan=3)
        assert [r.uuid for r in page.rows] == [uids[i] for i in sorted(uids, reverse=True)
                                               if i >= top - 3]
        assert page.lowest == top - 3
        further = store.task_page(autocron._TaskFilter(function="test_autocron.add"), top - 3,
                                  50, scan=3)
        assert [r.uuid for r in further.rows] == [uids[i] for i in sorted(uids, reverse=True)
                                                  if i < top - 3]
        assert further.lowest == (top - 6 if top - 6 > 1 else None)
        # a status has an index: the walk is exact, whatever the stretch
        assert len(store.task_page(autocron._TaskFilter("ready"), None, 50, scan=1).rows) == 3
        assert store.task_page(autocron._TaskFilter("cancelled"), None, 50, scan=1) == ([], None)
        shown = autocron._Dashboard(store, None).page("/tasks", {"function": "nothing"})[1]
        assert f"No match among the 3 rows above id {top - 3}: " in shown
        assert f"before={top - 3}'>look further</a>" in shown

    def test_the_pool_page_shows_what_runs_and_sets_the_worker_count(self, board, page,
                                                                     tmp_path):
        release = tmp_path / "release"
        held = hold_until(str(release))
        wait_until(lambda: held.status == "running", what="the task to start")
        page.goto(board.base + "pool")
        page.wait_for_selector(f"[data-task-id='{held.uuid}']", timeout=15_000)
        assert page.locator("[data-pool='running']").count() == 1
        page.fill("input[name='workers']", "2")
        page.click("[data-action='set workers']")
        wait_until(lambda: len(worker_pids()) == 2, what="a second worker")
        release.touch()
        assert held.get(timeout=30) == "released"

    def test_a_queue_s_limit_is_set_from_the_queues_page(self, board, page):
        page.goto(board.base + "queues")
        assert page.locator("tr[data-queue='default'] td").all_inner_texts()[:2] == [
            "default", "1"]
        page.fill("input[name='queue']:not([type='hidden'])", "mail")
        page.fill("input[name='concurrency']", "2")
        page.fill("input[name='rate']", "10/m")
        page.click("[data-action='limit']")
        page.wait_for_selector("tr[data-queue='mail']", timeout=15_000)
        assert page.locator("tr[data-queue='mail'] td").all_inner_texts() == [
            "mail", "0", "0", "0", "2", "10/minute", ""]
        assert autocron.limit("mail", database=board.database) == {"concurrency": 2,
                                                                   "rate": "10/minute"}

    def test_a_banner_on_every_page_says_when_no_pool_runs(self, board, page):
        page.goto(board.base)
        assert page.locator("[data-banner]").count() == 0           # the pool runs
        if autocron._is_postgres(board.database):                   # each machine's state
            page.goto(board.base + "pool")
            assert page.locator("tr[data-machine]").evaluate_all(
                "rows => rows.map(r => r.dataset.state)") == ["running"]
        autocron.stop()
        for path in ("", "tasks", "crons", "queues", "pool", f"task/{board.later.uuid}"):
            page.goto(board.base + path)
            banner = page.locator("[data-banner='no-pool']").inner_text()
            assert re.fullmatch(r"No pool is running for this database since \d{4}-\d\d-\d\d "
                                r"\d\d:\d\d:\d\d \S+\. 1 calls wait; they run when an "
                                r"application calls autocron\.start\(\) on it\.", banner), banner
        page.goto(board.base + "pool")
        assert page.locator("[data-pool='stopped']").count() == 1

    def test_a_machine_s_state_goes_by_its_last_heartbeat(self):
        machine = lambda since: autocron._MachineRow("m", 1, 2, [3], 0.0, since)
        assert [autocron._machine_state(machine(s)) for s in (0, 20, 3700)] == [
            "running", "late: no heartbeat for 20 s", "lost: no heartbeat for 1h 1m"]

    def test_failures_are_named_counted_per_function_and_linked(self, board, page):
        failed = [fail(f"boom {i}\nsecond line") for i in range(2)]
        for result in failed:
            with pytest.raises(autocron.TaskError):
                result.get(timeout=30)
        page.goto(board.base)
        row = page.locator("tr[data-failing='test_autocron.fail']")
        assert row.locator("td").all_inner_texts() == ["test_autocron.fail", "2"]
        row.locator("a").click()                       # to the list of its failures
        page.wait_for_url("**/tasks?status=error&function=test_autocron.fail")
        lines = page.locator("[data-error-line]").all_inner_texts()
        assert sorted(lines) == ["ValueError: boom 0", "ValueError: boom 1"]
        page.goto(board.base)
        page.click("a[data-count='ready']")               # a count card opens its list
        page.wait_for_url("**/tasks?status=ready")
        assert page.locator("tr[data-task-id]").count() == 3
        assert set(page.locator("[data-status]").all_inner_texts()) == {"ready"}

    def test_a_task_s_page_shows_it_whole(self, board, page, database):
        failing = autocron.delay(retries=1, retry_delay=0, timeout=60)(fail)("again")
        with pytest.raises(autocron.TaskError):
            failing.get(timeout=30)
        page.goto(board.base + f"task/{failing.uuid}")
        field = lambda name: page.locator(f"tr[data-field='{name}'] td").inner_text()
        assert re.fullmatch(r"\d+\.\d{3} s", field("ran for"))
        assert re.fullmatch(r"\d+\.\d{3} s", field("waited"))
        assert re.fullmatch(r"worker pid \d+( on \S+)?", field("ran on"))
        assert field("retries") == ("1 retries, 0 s before the first, times 1 at each next; "
                                    "timeout 60 s")
        assert field("queue") == "default"
        assert page.locator("tr[data-attempt]").count() == 2
        error = page.locator("pre[data-error]").inner_text()
        assert re.search(r"\n  \[\d+ frames? of autocron folded away\]\n", error)
        assert "/autocron.py" not in error
        assert 'test_autocron.py", line' in error and error.endswith("ValueError: again")
        # a run of a cron job links to its job
        store = autocron._open_store(database)
        job = autocron.CronExpression("0 0 1 1 *")
        store.register_cron("test_autocron.cron_job", job, cron_job, False, store.now() - 1)
        with store.transaction() as con:
            run, = store.due_crons(con, store.now())
        page.goto(board.base + f"task/{run}")
        page.click("tr[data-field='cron job'] a")
        page.wait_for_url("**/crons#cron-test_autocron.cron_job")
        assert page.locator("tr#cron-test_autocron\\.cron_job").count() == 1

    def test_acting_on_many_asks_first_with_the_count(self, board, page, database):
        failed = [fail(f"x{i}") for i in range(3)]
        for result in failed:
            with pytest.raises(autocron.TaskError):
                result.get(timeout=30)
        parked = [add.options(queue="night", hours=1)(i, i) for i in range(2)]
        page.accepted = []
        page.goto(board.base + "tasks?status=error&function=fail")
        page.click("[data-action='retry all 3 failed calls of test_autocron.fail']")
        page.wait_for_url("**/tasks?status=waiting&function=test_autocron.fail")
        assert page.accepted == ["Retry the 3 failed calls of test_autocron.fail? Each is "
                                 "stored again as a new task."]
        assert query(database, "SELECT count(*) FROM tasks WHERE retry_of IS NOT NULL") == [(3,)]
        store = autocron._open_store(database)        # those retried are counted no more
        assert not {r.uuid for r in failed} & set(store.failed_unretried(
            "test_autocron.fail", store.now()))
        page.goto(board.base + "queues")
        page.click("tr[data-queue='night'] [data-action='cancel 2 waiting']")
        page.wait_for_url("**/queues")
        assert page.accepted[1] == ("Cancel the 2 waiting calls of the queue night? Those not "
                                    "handed to a worker yet will not run; the calls that "
                                    "depend on them fail.")
        assert [r.status for r in parked] == ["cancelled"] * 2
        page.goto(board.base + "tasks")
        page.click("[data-action='purge']")
        page.wait_for_url("**/tasks")
        assert re.fullmatch(r"Purge every finished result \(\d+ ready, \d+ error, 2 "
                            r"cancelled\)\? Their values, errors and output go for good; "
                            r"waiting and running calls stay\.", page.accepted[2])

    def test_tasks_are_found_by_a_part_of_a_name_an_id_s_start_and_a_time_range(self, board,
                                                                                page):
        other = same("x")
        assert other.get(timeout=30) == "x"
        page.goto(board.base + "tasks")
        page.fill("[data-filter] input[name='function']", "ad")       # a part of add's name
        page.click("[data-filter] button")
        page.wait_for_url("**/tasks?status=&function=ad**")
        shown = set(page.locator("tr[data-task-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.taskId)"))
        assert other.uuid not in shown and board.later.uuid in shown and len(shown) == 4
        page.goto(board.base + f"tasks?id={other.uuid[:6]}")
        assert page.locator("tr[data-task-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.taskId)") == [other.uuid]
        page.goto(board.base + f"tasks?id={autocron._short_id(other.uuid)}")     # a short id
        assert page.locator(f"tr[data-task-id='{other.uuid}']").count() == 1
        later = (datetime.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
        page.goto(board.base + "tasks")
        page.fill("[data-filter] input[name='since']", later)
        page.click("[data-filter] button")
        page.wait_for_url("**since=**")
        assert page.locator("tr[data-task-id]").count() == 0
        page.goto(board.base + f"tasks?until={later}")
        assert page.locator("tr[data-task-id]").count() == 5
        status, body = board.get("/tasks?since=yesterday")[:2]
        assert (status, body) == (400, "since must be a local time as YYYY-MM-DDTHH:MM, got "
                                       "'yesterday'")
        status, body = board.get("/tasks?id=xyz")[:2]
        assert (status, body) == (400, "id must be the start of a task's id (hex digits) or a "
                                       "whole or short id, got 'xyz'")

    def test_charts_have_time_labels_counts_and_the_zone(self, board, page):
        page.goto(board.base)
        zone = page.locator("[data-zone]").inner_text()
        assert re.fullmatch(r"Times are in \S+ \(UTC[+-]\d\d:\d\d\)\.", zone)
        for chart in ("minutes", "run-times"):
            ticks = page.locator(f"svg[data-chart='{chart}'] [data-tick]").all_text_contents()
            assert len(ticks) == 7 and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks)
            assert ticks[-1] == datetime.now().strftime("%H:%M") or len(set(ticks)) == 7
            labels = page.locator(f"svg[data-chart='{chart}'] [data-y-label]").all_text_contents()
            assert len(labels) == 3 and labels[0].startswith("0")
        assert page.locator("svg[data-chart='minutes'] [data-y-label]").last.text_content() == "3"
        line = page.locator("svg[data-chart='run-times'] polyline[data-function="
                            "'test_autocron.add']")
        assert line.count() == 1
        page.goto(board.base + "tasks")
        stamps = [t for t in page.locator("tr[data-task-id] td:nth-child(7)").all_inner_texts()]
        assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", s)
                              for s in stamps)

    def test_the_readme_picture_shows_a_realistic_workload(self, chromium):
        # AUTOCRON_README_PICTURE=1 writes it to docs/dashboard.png; a shop's database
        shop = tempfile.mkdtemp(prefix="shop-")
        try:
            self.picture(chromium, Path(shop), str(Path(shop) / "autocron.db"))
        finally:
            autocron.stop(timeout=5)
            shutil.rmtree(shop, ignore_errors=True)

    def picture(self, chromium, tmp_path, database):
        assert autocron.start(database, workers=2) is True
        store = autocron._open_store(database)
        store.register_cron("test_autocron.sync_orders", autocron.CronExpression(
            "*/15 * * * *"), sync_orders, False, store.now() - 1)
        photos = resize.map([f"photo{i}.jpg" for i in range(40)], [800] * 40)
        invoices = [send_invoice(name) for name in ("globex", "initech", "acme", "umbrella")]
        crawl = crawl_catalogue(str(tmp_path), 400)
        autocron.wait(photos, timeout=60)
        for invoice in invoices:
            with contextlib.suppress(autocron.TaskError):
                invoice.get(timeout=30)
        autocron.delay(hours=2)(resize)("banner.png", 1200)
        wait_until(lambda: (crawl.progress or (0,))[0] >= 3, what="the crawl's progress")
        board = DashboardServer(database)
        try:
            with browsing(chromium, board.base) as tab:
                tab.set_viewport_size({"width": 1100, "height": 900})
                tab.goto(board.url)
                failing = tab.locator("tr[data-failing='test_autocron.send_invoice'] td")
                assert failing.all_inner_texts() == ["test_autocron.send_invoice", "1"]
                running = tab.locator(f"tr[data-running='{crawl.uuid}'] [data-progress]")
                assert re.fullmatch(r"\d+/400 pages", running.inner_text())
                assert tab.locator("svg[data-chart='run-times'] polyline").count() >= 2
                if os.environ.get("AUTOCRON_README_PICTURE"):
                    tab.screenshot(path=str(Path(HERE) / "docs" / "dashboard.png"),
                                   full_page=True)
                tab.goto(board.base + "crons")
                assert tab.locator("tr[data-cron='test_autocron.sync_orders']").count() == 1
        finally:
            board.stop()
            (tmp_path / "stop").touch()
        assert crawl.get(timeout=30) < 400

    def test_purge_from_the_page_deletes_the_finished_results(self, board, database):
        secret = page_secret(board.get("/tasks")[1])
        assert board.post("/purge", {"secret": secret})[0] == 200     # followed to /tasks
        assert query(database, "SELECT status FROM tasks") == [("waiting",)]
        assert board.post("/pool/workers", {"secret": secret, "workers": "0"}) == (
            400, "workers must be a whole number from 1 to 1000, got '0'")

    def test_a_port_in_use_is_named(self, board):
        port = board.base.rsplit(":", 1)[1].strip("/")
        taken = cli("dashboard", "--port", port, db=board.database)
        assert (taken.returncode, taken.stderr) == (1, f"autocron: cannot serve the dashboard "
                                                       f"on 127.0.0.1:{port} (Address already in "
                                                       "use); choose another --port\n")

    def test_a_forged_post_is_refused_and_changes_nothing(self, board):
        status, body = board.post(f"/task/{board.later.uuid}/cancel", {"secret": "guess"})
        assert (status, body) == (403, "this action did not come from the dashboard's page")
        assert board.later.status == "waiting"
        assert board.get("/nothing")[0] == 404

    def test_a_page_reading_nothing_changes_nothing(self, board, database):
        before = query(database, "SELECT count(*), max(id) FROM tasks")
        for path in ("/", "/tasks", f"/task/{board.later.uuid}", "/crons"):
            assert board.get(path)[0] == 200
        assert query(database, "SELECT count(*), max(id) FROM tasks") == before

    def test_bound_elsewhere_it_demands_the_token(self, database):
        autocron.start(database, workers=1)
        server = DashboardServer(database, "--host", "0.0.0.0")
        try:
            assert re.fullmatch(r"http://0\.0\.0\.0:\d+/\?token=[\w-]{43}", server.url)
            token = re.search(r"token=(\S+)", server.url).group(1)
            status, body, _ = http_get(server.base)
            assert (status, body) == (401, "a token is needed: open the address that `autocron "
                                           "dashboard` printed, with its ?token=... (in a "
                                           "notebook, the link under autocron.dashboard())")
            status, _, headers = http_get(f"{server.base}?token={token}", redirect=False)
            assert status == 303
            cookie = headers["Set-Cookie"].split(";")[0]
            assert cookie == f"autocron_token_{server.port}={token}"
            assert http_get(server.base + "tasks", {"Cookie": cookie})[0] == 200
            assert http_get(server.base + "tasks", {"Host": "elsewhere.example",
                                                    "Cookie": cookie})[0] == 200
            assert http_get(server.base + "tasks", {"Cookie": f"autocron_token_{server.port}="
                                                              "wrong"})[0] == 401
        finally:
            server.stop()

    def test_the_cron_page_shows_the_next_runs_the_last_status_and_a_day(self, database,
                                                                          monkeypatch, tmp_path):
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(tmp_path / "cron.log"))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        autocron.cron("0 9,15 * * *")(cron_job)
        try:
            autocron.start(database, workers=1)
            clock.now += 60                               # 09:00:30: due
            wake_pool()
            wait_until(lambda: query(database, "SELECT status FROM tasks") == [("ready",)],
                       what="the run")
            handle = autocron.dashboard()
            try:
                status, body, _ = http_get(handle.url.split("?")[0] + "crons",
                                           signed_in(handle.url))
                assert status == 200
            finally:
                handle.stop()
                autocron._dashboards.clear()
            assert "data-cron='test_autocron.cron_job'" in body
            assert "at 09:00 and 15:00 every day" in body
            assert "Tue 2030-01-01 15:00, Wed 2030-01-02 09:00, Wed 2030-01-02 15:00" in body
            assert "<span class='ready' data-last-status>ready</span>" in body
            assert 'aria-label="due times, the next 24 hours: 2"' in body
        finally:
            forget_cron("test_autocron.cron_job")

    def test_requests_share_a_few_connections_to_the_database(self, database, monkeypatch):
        autocron.start(database, workers=1)
        store = autocron._current_store()
        opened = []
        real_open = type(store)._open

        def counting_open(self):
            opened.append(threading.get_ident())
            return real_open(self)
        monkeypatch.setattr(type(store), "_open", counting_open)
        handle = autocron.dashboard()
        try:
            cookie = signed_in(handle.url)
            for _ in range(40):
                assert http_get(handle.url.split("?")[0] + "tasks", cookie)[0] == 200
        finally:
            handle.stop()
            autocron._dashboards.clear()
        assert 1 <= len(opened) <= autocron._DASH_THREADS

    def test_in_a_notebook_dashboard_serves_the_current_database(self, database):
        autocron.start(database, workers=1)
        assert add(1, 1).get(timeout=30) == 2
        handle = autocron.dashboard()
        try:
            assert autocron.dashboard() is handle
            assert re.fullmatch(r"<autocron dashboard at http://127\.0\.0\.1:\d+/\?token="
                                r"[\w-]{43}>", repr(handle))
            assert f"<iframe src='{handle.url.replace('/?', '/notebook?')}'" in \
                handle._repr_html_()
            cookie = signed_in(handle.url)
            status, body, _ = http_get(handle.url.split("?")[0] + "tasks", cookie)
            assert body.count("data-task-id=") == 1
        finally:
            handle.stop()
            autocron._dashboards.clear()


def raw_answer(port, data, timeout=30, host="127.0.0.1"):
    """What the server answers to these bytes (the connection left open), read until it
    closes: b"" if it closes without a word."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def status_and_body(answer):
    """(status, body text) of a raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def open_sockets(pid):
    """How many sockets a process holds."""
    return sum(1 for name in os.listdir(f"/proc/{pid}/fd") if os.readlink(
        f"/proc/{pid}/fd/{name}").startswith("socket:"))


@contextlib.contextmanager
def notebook_page(html, host="127.0.0.1"):
    """A page with `html` in it, served from the loopback on a port of its own, as Jupyter
    serves a notebook with a cell's output; yields its port."""
    import http.server

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"<!doctype html><html><body><h1>notebook</h1>{html}</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def lone_board(tmp_path):
    """The dashboard of an empty SQLite database, no pool: for what its server does with
    requests, which no store changes."""
    database = str(tmp_path / "autocron.db")
    autocron._open_store(database).close()
    server = DashboardServer(database)
    yield server
    server.stop()


QUICK_READ = 4.0         # seconds quick_board's server gives a client to send its request


@pytest.fixture
def quick_board(tmp_path):
    """lone_board whose server gives a client QUICK_READ s to send its whole request
    (_DASH_READ, 10 s otherwise)."""
    database = str(tmp_path / "autocron.db")
    autocron._open_store(database).close()
    server = DashboardServer(database, settings={"_DASH_READ": QUICK_READ})
    yield server
    server.stop()


class TestDashboardAccess:
    """Who may use the dashboard, and what its server does with bad and slow clients."""

    def test_a_foreign_host_or_origin_is_refused(self, lone_board):
        port = lone_board.port
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", f"localhost:{port + 1}",
                     f"localhost.evil.example:{port}", ""):
            status, body, _ = lone_board.get("/", {"Host": host})
            assert (status, body) == (421, f"this dashboard answers to 127.0.0.1:{port} and "
                                           f"localhost:{port} only: open http://127.0.0.1:{port}/"
                                           f" (the request was for {host!r})")
        for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LocalHost:{port}"):
            assert lone_board.get("/", {"Host": host})[0] == 200
        secret = page_secret(lone_board.get("/pool")[1])
        for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null",
                       f"https://127.0.0.1:{port}", f"http://localhost:{port}"):
            status, body = lone_board.post("/pool/workers", {"secret": secret, "workers": "999"},
                                           {"Origin": origin})
            assert (status, body) == (403, f"this action came from another site ({origin}): "
                                           "use the dashboard's own page")
            status, body = lone_board.post("/purge", {"secret": secret}, {"Origin": origin})
            assert status == 403
        assert autocron._open_store(lone_board.database).settings()["workers"] != 999
        for name in ("127.0.0.1", "localhost"):            # the page's own origin
            assert lone_board.post("/pool/workers", {"secret": secret, "workers": "3"}, {
                "Origin": f"http://{name}:{port}", "Host": f"{name}:{port}"})[0] == 200
        assert autocron._open_store(lone_board.database).settings()["workers"] == 3


    def test_the_loopback_dashboard_lets_in_only_who_has_the_printed_url(self, lone_board):
        port, base = lone_board.port, lone_board.base
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/\?token=[\w-]{{43}}", lone_board.url)
        token = lone_board.url.split("token=")[1]
        needed = ("a token is needed: open the address that `autocron dashboard` printed, with "
                  "its ?token=... (in a notebook, the link under autocron.dashboard())")
        for headers in ({}, {"Cookie": f"autocron_token_{port}=wrong"},
                        {"Cookie": f"autocron_token_{port + 1}={token}"},   # another port's
                        {"Cookie": f"autocron_token={token}"}):
            assert http_get(base + "pool", headers)[:2] == (401, needed)
            assert post_form(base + "purge", {}, headers) == (401, needed)
        assert http_get(base + "tasks?token=wrong")[:2] == (401, needed)
        status, body, headers = http_get(f"{base}tasks?status=ready&token={token}&x=1",
                                         redirect=False)
        assert (status, headers["Location"]) == (303, "/tasks?status=ready&x=1")
        assert headers["Set-Cookie"] == (f"autocron_token_{port}={token}; HttpOnly; "
                                         "SameSite=Strict; Path=/")
        status, body, headers = http_get(base + "pool", lone_board.cookie)
        assert status == 200 and "data-pool" in body and "Set-Cookie" not in headers

    def test_every_page_carries_its_icon_so_the_browser_fetches_none(self, lone_board):
        # A fetched icon raced the next navigation: Chromium checked /favicon.ico of one
        # dashboard against the policy of another (another port) and wrote an error to the
        # console (CI, Python 3.9; one run in three of the test below).
        status, body, headers = http_get(lone_board.base + "pool", lone_board.cookie)
        icon = re.search(r"<link rel='icon' href='([^']*)'>", body).group(1)
        assert status == 200 and icon.startswith("data:image/svg+xml,")
        policy = dict(part.strip().split(" ", 1)
                      for part in headers["Content-Security-Policy"].split(";"))
        assert policy["img-src"].split() == ["'self'", "data:"]

    def test_a_page_asks_again_only_once_its_last_answer_came(self, lone_board, chromium):
        # A slow dashboard (a deep backlog, a busy database) must not pile up its page's
        # refreshes: the next one is asked 2 s after the last answer, not every 2 s. (The
        # page's script is the same whatever the store.)
        with browsing(chromium, lone_board.base) as page:
            page.goto(lone_board.url)
            page.goto(lone_board.base + "tasks")
            asked, held = [], []

            def hold(route):
                asked.append(time.monotonic())
                held.append(route)          # answered later, as a slow server would

            page.route("**/tasks", hold)
            try:
                browser_wait(page, lambda: len(asked) >= 1, 15, "the first refresh")
                page.wait_for_timeout(4_500)        # two more periods, one answer pending
                assert len(asked) == 1, f"{len(asked)} refreshes asked while one was pending"
                held.pop().continue_()
                browser_wait(page, lambda: len(asked) >= 2, 15, "a refresh after the answer")
            finally:
                for route in held:
                    route.continue_()
                page.unroute("**/tasks")

    def test_two_dashboards_in_one_browser_keep_their_own_cookies(self, lone_board, chromium):
        other = DashboardServer(lone_board.database)
        try:
            with browsing(chromium, "http://127.0.0.1:") as tab:
                for board in (lone_board, other):
                    tab.goto(board.url)
                    assert tab.url == board.base
                for board in (lone_board, other):
                    answer = tab.goto(board.base + "pool")
                    assert answer.status == 200 and tab.locator("[data-pool]").count() == 1
                cookies = {c["name"]: c for c in tab.context.cookies()}
                assert sorted(cookies) == sorted(f"autocron_token_{b.port}"
                                                 for b in (lone_board, other))
                assert all(c["httpOnly"] and c["sameSite"] == "Strict"
                           for c in cookies.values())
        finally:
            other.stop()


    TOKEN_RULE = ('the token must be 22 or more letters, digits, "-" or "_"; make one with: '
                  'python -c "import secrets; print(secrets.token_urlsafe(32))"')

    @pytest.mark.parametrize("token", ["", "short", "x" * 21, "a" * 30 + " b", "a" * 30 + ";b",
                                       "\u00e9" * 30])
    def test_an_empty_or_weak_token_is_refused(self, lone_board, token):
        for host in ("0.0.0.0", "127.0.0.1"):
            refused = cli("dashboard", "--port", "0", "--host", host, "--token", token,
                          db=lone_board.database, timeout=30)
            assert (refused.returncode, refused.stdout, refused.stderr) == (
                2, "", f"autocron: {self.TOKEN_RULE}\n")
        with pytest.raises(ValueError) as refused:
            autocron.dashboard(token=token)
        assert str(refused.value) == self.TOKEN_RULE

    def test_a_token_that_starts_with_a_dash_is_taken_as_written(self, tmp_path):
        # token_urlsafe, as the hint says to make one, starts one token in 64 with "-",
        # which argparse took for an option ("expected one argument")
        token = "-" + secrets.token_urlsafe(24)
        autocron._open_store(str(tmp_path / "autocron.db")).close()
        server = DashboardServer(tmp_path / "autocron.db", "--token", token)
        try:
            assert server.url.endswith(f"/?token={token}")
            assert server.get("/pool")[0] == 200
        finally:
            server.stop()

    def test_a_given_token_is_the_one_needed(self, tmp_path):
        token = secrets.token_urlsafe(16)                     # 22 characters
        autocron._open_store(str(tmp_path / "autocron.db")).close()
        server = DashboardServer(tmp_path / "autocron.db", "--host", "0.0.0.0", "--token",
                                 token)
        try:
            assert server.url.endswith(f"/?token={token}")
            assert server.get("/pool")[0] == 200
        finally:
            server.stop()
        autocron.start(str(tmp_path / "autocron.db"), workers=1)
        try:
            handle = autocron.dashboard(token="0123456789abcdef" * 2)
            try:
                assert handle.url.endswith("/?token=0123456789abcdef0123456789abcdef")
                assert http_get(handle.url.split("?")[0] + "pool",
                                signed_in(handle.url))[0] == 200
            finally:
                handle.stop()
                autocron._dashboards.clear()
        finally:
            autocron.stop(timeout=5)


    def timed_page(self, board):
        start = time.monotonic()
        status, body, _ = board.get("/pool")
        assert status == 200 and "data-pool" in body
        return time.monotonic() - start

    @pytest.mark.slow
    def test_slow_clients_do_not_hold_the_page(self, quick_board):
        board, deadline = quick_board, QUICK_READ          # its read deadline
        port, head = board.port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{board.port}\r\n"
        alone = max(self.timed_page(board) for _ in range(3))
        slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(50)]
        trickle = slow[-1]                              # a byte now and then: still too slow
        try:
            for sock in slow:
                sock.sendall(head.encode())             # half a request, then nothing
            wait_until(lambda: open_sockets(board.process.pid) >= 50, 30,
                       "the server to take the slow clients")
            assert self.timed_page(board) < alone + 1.0
            started = time.monotonic()
            end = started + 30
            while time.monotonic() < end:
                try:
                    trickle.sendall(b"X")
                except OSError:
                    break
                ready = select.select([trickle], [], [], 0.5)[0]
                if ready:
                    break
            assert time.monotonic() < started + deadline + 5     # cut at the read deadline
            answer = trickle.recv(65536)
            assert status_and_body(answer) == (
                408, f"the request took more than {deadline:.0f} s to arrive: send it at once")
            for sock in slow[:-1]:                      # the waiting ones end too
                assert sock.recv(65536).startswith(b"HTTP/1.0 408 ")
        finally:
            for sock in slow:
                sock.close()

    def test_connections_beyond_the_limit_are_closed_and_the_server_serves_on(self, lone_board):
        pid = lone_board.process.pid
        idle = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", lone_board.port), timeout=30))
            assert self.timed_page(lone_board) < 5
            # besides the connections: the listening socket, the intake's wake-up pair, and
            # one accepted a moment before it is counted
            assert open_sockets(pid) <= autocron._DASH_CONNECTIONS + 4
            closed = [sock for sock in idle if select.select([sock], [], [], 0)[0] and
                      sock.recv(1) == b""]
            assert len(closed) >= 300 - autocron._DASH_CONNECTIONS
        finally:
            for sock in idle:
                sock.close()
        assert self.timed_page(lone_board) < 5

    def test_a_bad_content_length_is_answered_at_once(self, lone_board):
        port, cookie = lone_board.port, lone_board.cookie["Cookie"]
        head = f"POST /purge HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
        for length, status, text in (
                ("-1", 400, "Content-Length must be a whole number of bytes, got '-1'"),
                ("12abc", 400, "Content-Length must be a whole number of bytes, got '12abc'"),
                ("\u00b2", 400, "Content-Length must be a whole number of bytes, got "
                               "'\u00c2\u00b2'"),
                ("99999999", 413, "a form may have 65536 bytes at most, got 99999999")):
            answer = raw_answer(port, (head + f"Content-Length: {length}\r\n\r\n").encode(),
                                timeout=5)
            assert status_and_body(answer) == (status, text)
        twice = head + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"
        assert status_and_body(raw_answer(port, twice.encode(), timeout=5)) == (
            400, "Content-Length must be a whole number of bytes, got '1, 2'")
        needed = (411, "a POST needs a Content-Length header (and no Transfer-Encoding)")
        assert status_and_body(raw_answer(port, (head + "\r\n").encode(), timeout=5)) == needed
        chunked = head + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        assert status_and_body(raw_answer(port, chunked.encode(), timeout=5)) == needed
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall((head + "Content-Length: 10\r\n\r\nabc").encode())
            sock.shutdown(socket.SHUT_WR)               # the rest never comes
            assert status_and_body(sock.recv(65536)) == (
                400, "the request ended after 3 of its 10 bytes: send the whole form")
        assert self.timed_page(lone_board) < 5


    def test_malformed_requests_get_a_4xx_and_the_server_serves_on(self, database):
        autocron._open_store(database).close()
        board = DashboardServer(database)
        try:
            port, cookie = board.port, board.cookie["Cookie"]
            needed = ("a token is needed: open the address that `autocron dashboard` printed, "
                      "with its ?token=... (in a notebook, the link under autocron.dashboard())")
            unknown, beyond = (404, "no such task"), "7f3a-" + str(2 ** 63)
            forged = (403, "this action did not come from the dashboard's page")
            secret = b"secret=" + page_secret(board.get("/tasks")[1]).encode()
            for line, headers, body, expected in (
                    (b"GET /?token=%C3%A9 HTTP/1.1", b"", b"", (401, needed)),
                    (b"GET /?token=\xc3\xa9\xff HTTP/1.1", b"", b"", (401, needed)),
                    (b"GET / HTTP/1.1", b"Cookie: autocron_token_%d=\xc3\xa9\r\n" % port, b"",
                     (401, needed)),
                    (b"GET /tasks?before=%C2%B2 HTTP/1.1", None, b"", (
                        400, "before must be a row number from the page's own links, got "
                             "'\u00b2'")),
                    (b"GET /tasks?before=" + str(2 ** 63).encode() + b" HTTP/1.1", None, b"", (
                        400, f"before must be a row number from the page's own links, got "
                             f"'{2 ** 63}'")),
                    (b"GET /task/" + beyond.encode() + b" HTTP/1.1", None, b"", unknown),
                    (b"GET /task/7f3a-%C2%B2 HTTP/1.1", None, b"", unknown),
                    (b"GET /task/7f3a-\xc2\xb2 HTTP/1.1", None, b"", unknown),
                    (b"GET /task/7f\x003a-1 HTTP/1.1", None, b"", unknown),
                    (b"GET /tasks?function=a%00b HTTP/1.1", None, b"", (
                        400, "function must be (a part of) a function's name, got 'a\\x00b'")),
                    (b"POST /task/" + beyond.encode() + b"/cancel HTTP/1.1", None,
                     secret, unknown),
                    (b"POST /task/7f3a-%C2%B2/retry HTTP/1.1", None, secret, unknown),
                    (b"POST /purge HTTP/1.1", None, b"secret=%C3%A9%FF", forged),
                    (b"POST /cron/pause HTTP/1.1", None, b"\xff\xfe=\xc3", forged)):
                if headers is None:
                    headers = f"Cookie: {cookie}\r\n".encode()
                if line.startswith(b"POST "):
                    headers += b"Content-Length: %d\r\n" % len(body)
                request = (line + b"\r\nHost: 127.0.0.1:%d\r\n" % port + headers + b"\r\n" +
                           body)
                answer = raw_answer(port, request, timeout=10)
                assert answer.startswith(b"HTTP/1.0 4"), (request, answer)
                assert status_and_body(answer) == expected, request
            assert raw_answer(port, b"\xff\xfe nonsense\r\n\r\n", timeout=10).startswith(
                b"HTTP/1.0 400 ")
            assert board.get("/pool")[0] == 200
        finally:
            assert "Traceback" not in board.stop()


    def test_the_notebook_view_shows_in_a_notebook_on_the_loopback(self, tmp_path, chromium):
        autocron.start(str(tmp_path / "autocron.db"), workers=1)
        try:
            assert add(1, 1).get(timeout=30) == 2
            handle = autocron.dashboard()
            try:
                with notebook_page(handle._repr_html_()) as port:
                    # Jupyter prints both; localhost and 127.0.0.1 are different sites: in
                    # a frame under localhost no cookie of 127.0.0.1 is set or sent
                    for origin in (f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
                        with browsing(chromium, "http://") as tab:
                            tab.goto(origin + "/")
                            cards = tab.frame_locator("iframe").locator(
                                "[data-count='ready'] b")
                            cards.wait_for(timeout=15_000)
                            assert cards.inner_text() == str(1 + (origin[7:16] == "127.0.0.1"))
                            if origin.startswith("http://localhost"):
                                assert add(2, 2).get(timeout=30) == 4     # live in the frame
                                tab.frame_locator("iframe").locator(
                                    "[data-count='ready'] b:text-is('2')").wait_for(
                                    timeout=15_000)
                            link = tab.locator("a[target='_blank']")
                            assert link.get_attribute("href") == handle.url
            finally:
                handle.stop()
                autocron._dashboards.clear()
        finally:
            autocron.stop(timeout=5)

    def test_only_the_notebook_view_may_be_framed_and_only_from_the_loopback(self, lone_board,
                                                                             chromium):
        token = lone_board.url.split("token=")[1]
        status, body, headers = http_get(f"{lone_board.base}notebook?token={token}")
        assert status == 200 and "data-count" in body and "<base target='_blank'>" in body
        assert headers["X-Frame-Options"] is None
        assert headers["Content-Security-Policy"].endswith(
            "; frame-ancestors 'self' http://127.0.0.1:* http://localhost:* "
            "https://127.0.0.1:* https://localhost:*")
        assert http_get(lone_board.base + "notebook")[:2][0] == 401
        for path in ("", "tasks", "pool", "nothing"):
            status, _, headers = lone_board.get("/" + path)
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["Content-Security-Policy"].endswith("; frame-ancestors 'none'")
        view = f"{lone_board.base}notebook?token={token}"
        context = chromium.new_context()
        try:
            tab = context.new_page()
            console = []
            tab.on("console", lambda message: console.append(message.text))
            # 127.0.0.2 is the loopback too, but no notebook's name: it stands for a site
            # (a browser of its own blocks a public site's frame of the loopback before
            # any request)
            for host, src, refusal in (
                    ("127.0.0.2", view, f"frame-ancestors {autocron._DASH_NOTEBOOKS}"),
                    ("127.0.0.1", lone_board.url, "frame-ancestors 'none'")):  # not the view
                console.clear()
                with notebook_page(f"<iframe src='{src}'></iframe>", host) as port:
                    tab.goto(f"http://{host}:{port}/")
                    frame = tab.frames[1]
                    # the frame's refusal arrives as events, which Playwright's sync API
                    # delivers only while it is called: wait inside the page, not in sleep
                    # (its address then reads chrome-error://, or '' with older Playwrights)
                    try:
                        browser_wait(tab, lambda: any(refusal in text for text in console), 15,
                                     f"the browser to refuse the frame ({refusal})")
                    except AssertionError as error:
                        raise AssertionError(f"{error}; the frame is at {frame.url!r}, the "
                                             f"console said {console}") from None
                    assert frame.url in ("", "about:blank") or \
                        frame.url.startswith("chrome-error://"), frame.url
                    assert "data-count" not in frame.content()
        finally:
            context.close()

    def test_on_the_ipv6_loopback(self, tmp_path):
        autocron._open_store(str(tmp_path / "autocron.db")).close()
        server = DashboardServer(tmp_path / "autocron.db", "--host", "::1")
        try:
            port = server.port
            assert re.fullmatch(rf"http://\[::1\]:{port}/\?token=[\w-]{{43}}", server.url)
            assert server.base == f"http://[::1]:{port}/"
            for host in (f"[::1]:{port}", "[::1]", f"localhost:{port}"):
                assert server.get("/pool", {"Host": host})[0] == 200
            assert server.get("/pool", {"Host": f"127.0.0.1:{port}"})[:2] == (
                421, f"this dashboard answers to [::1]:{port} and localhost:{port} only: open "
                     f"http://[::1]:{port}/ (the request was for '127.0.0.1:{port}')")
            secret = page_secret(server.get("/pool")[1])
            assert server.post("/pool/workers", {"secret": secret, "workers": "2"},
                               {"Origin": f"http://[::1]:{port}"})[0] == 200
        finally:
            server.stop()


# ---- the admin command line ----------------------------------------------------------------


def cli(*args, db=None, timeout=120):
    """Run the admin tool for real: python autocron.py [--db DB] ARGS."""
    command = [sys.executable, AUTOCRON] + (["--db", str(db)] if db else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE)


@pytest.fixture
def live_pool(tmp_path):
    """A pool owned by another process, with finished results and one job, until the test ends."""
    database = tmp_path / "live.db"
    owner = spawn_python("""
        import sys, autocron, test_autocron
        autocron.cron("*/15 9-17 * * mon-fri")(test_autocron.cron_job)
        assert autocron.start(sys.argv[1], workers=2)
        test_autocron.wait_until(lambda: len(test_autocron.worker_pids()) == 2)
        assert [test_autocron.add(i, i).get(timeout=30) for i in range(3)] == [0, 2, 4]
        failed = test_autocron.fail("on purpose")
        test_autocron.wait_until(lambda: not failed.waiting)
        print("ready", flush=True)
        sys.stdin.read()
    """, database, stdin=subprocess.PIPE)
    assert owner.stdout.readline().strip() == "ready", owner.stderr.read()
    yield database, owner
    owner.communicate(timeout=60)


def scrape(board, headers=None):
    """(status, families {name: {frozenset of labels: value}}, response headers) of the
    board's GET /metrics, with its token as a bearer token unless `headers` say otherwise;
    parsed with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(board.url).query)["token"][0]
    status, body, answer = http_get(board.base + "metrics", headers if headers is not None
                                    else {"Authorization": f"Bearer {token}"})
    if status != 200:
        return status, body, answer
    families = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            families.setdefault(sample.name, {})[frozenset(sample.labels.items())] = \
                sample.value
    return status, families, answer


def sample(families, name, **labels):
    """The value of one sample (None if there is none)."""
    return families.get(name, {}).get(frozenset(labels.items()))


class TestMetrics:
    """GET /metrics: Prometheus's text format, parsed by prometheus_client, with the values
    of a known workload; its counters outlive purge."""

    QUEUE = 'slow "eu"\\1'      # a name the format must escape

    def test_the_metrics_of_a_known_workload(self, database, tmp_path):
        assert autocron.start(database, workers=2) is True
        autocron.limit(self.QUEUE, concurrency=1)
        assert [add(i, i).get(timeout=30) for i in range(3)] == [0, 2, 4]
        failing = autocron.delay(retries=1, retry_delay=0)(fail)("no")
        with pytest.raises(autocron.TaskError):
            failing.get(timeout=30)
        orphan = add(failing, 1)                     # fails with its dependency
        with pytest.raises(autocron.DependencyFailed):
            orphan.get(timeout=30)
        withdrawn = autocron.delay(hours=1)(add)(7, 7)
        withdrawn.cancel()
        scheduled = autocron.delay(hours=1)(add)(8, 8)
        held = hold_until.options(queue=self.QUEUE)(str(tmp_path / "go"))
        wait_until(lambda: held.status == "running", what="the held call to start")
        behind = hold_until.options(queue=self.QUEUE)(str(tmp_path / "go"))
        dependent = same(held)
        board = DashboardServer(database)
        try:
            status, families, headers = scrape(board)
            assert status == 200
            assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            ended = "autocron_calls_ended_total"
            add_name, fail_name = "test_autocron.add", "test_autocron.fail"
            assert sample(families, ended, function=add_name, queue="default",
                          status="ready") == 3
            assert sample(families, ended, function=fail_name, queue="default",
                          status="error") == 1
            assert sample(families, ended, function=add_name, queue="default",
                          status="error") == 1                       # the dependency failed
            assert sample(families, ended, function=add_name, queue="default",
                          status="cancelled") == 1
            assert sample(families, "autocron_retries_total", function=fail_name,
                          queue="default") == 1
            assert sample(families, "autocron_retries_total", function=add_name,
                          queue="default") is None
            for kind in ("run", "wait"):                  # every attempt that started
                for function, attempts in ((add_name, 3), (fail_name, 2)):
                    who = {"function": function, "queue": "default"}
                    assert sample(families, f"autocron_{kind}_seconds_count", **who) == attempts
                    buckets = [sample(families, f"autocron_{kind}_seconds_bucket", le=le, **who)
                               for le in [repr(b) for b in autocron._METRIC_BUCKETS] + ["+Inf"]]
                    assert buckets == sorted(buckets) and buckets[-1] == attempts
                    assert 0 <= sample(families, f"autocron_{kind}_seconds_sum", **who) < 30
            hold = "test_autocron.hold_until"
            assert sample(families, "autocron_calls_running", function=hold,
                          queue=self.QUEUE) == 1
            waiting = {tuple(sorted(dict(k).items())): v
                       for k, v in families["autocron_calls_waiting"].items()}
            assert waiting == {
                (("function", hold), ("queue", self.QUEUE), ("reason", "limit")): 1,
                (("function", add_name), ("queue", "default"), ("reason", "scheduled")): 1,
                (("function", "test_autocron.same"), ("queue", "default"),
                 ("reason", "dependency")): 1}
            assert sample(families, "autocron_oldest_due_age_seconds", queue=self.QUEUE) > 0
            assert sample(families, "autocron_pool_running") == 1
            workers = families["autocron_machine_workers"]
            assert list(workers.values()) == [2]
            assert list(families["autocron_machine_lease_age_seconds"].values())[0] < 30
            # counters are never lowered: a purge deletes the results, not what they added
            autocron._open_store(database).purge()
            assert scrape(board)[1][ended] == families[ended]
            # the token, as a bearer token only
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                status, body, answer = scrape(board, headers)
                assert (status, body) == (401, "a token is needed: send it as the header "
                                               "'Authorization: Bearer TOKEN' (Prometheus: "
                                               "authorization: {credentials: TOKEN} in the "
                                               "scrape job)")
                assert answer["WWW-Authenticate"] == 'Bearer realm="autocron"'
        finally:
            board.stop()
            Path(tmp_path / "go").touch()
        assert [held.get(timeout=30), behind.get(timeout=30)] == ["released"] * 2
        assert dependent.get(timeout=30) == "released" and scheduled.status == "waiting"

    def test_attempts_the_pool_ends_count_in_the_run_and_wait_histograms(self, database,
                                                                          tmp_path):
        # a timed-out attempt, one stopped by a forced cancel and one whose worker was
        # killed all started and ran: each is an observation of both histograms
        assert autocron.start(database, workers=2) is True
        timed = autocron.delay(timeout=0.5)(hold_until)(str(tmp_path / "never"))
        with pytest.raises(autocron.TaskTimeout):
            timed.get(timeout=30)
        stopped = pid_and_hold(str(tmp_path))
        wait_until(lambda: (tmp_path / "pid").exists(), what="the call to start")
        stopped.cancel(force=True)
        with pytest.raises(autocron.Cancelled):
            stopped.get(timeout=30)
        (tmp_path / "pid").unlink()
        killed = pid_and_hold(str(tmp_path))
        wait_until(lambda: (tmp_path / "pid").exists(), what="the call to start")
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
        with pytest.raises(autocron.TaskError):
            killed.get(timeout=30)
        board = DashboardServer(database)
        try:
            families = scrape(board)[1]
        finally:
            board.stop()
        ended = "autocron_calls_ended_total"
        hold = {"function": "test_autocron.hold_until", "queue": "default"}
        mine = {"function": "test_autocron.pid_and_hold", "queue": "default"}
        assert sample(families, ended, status="error", **hold) == 1
        assert sample(families, ended, status="cancelled", **mine) == 1
        assert sample(families, ended, status="error", **mine) == 1
        assert sample(families, "autocron_run_seconds_count", **hold) == 1
        assert sample(families, "autocron_run_seconds_count", **mine) == 2
        assert sample(families, "autocron_wait_seconds_count", **mine) == 2
        assert sample(families, "autocron_run_seconds_sum", **hold) >= 0.5

    def test_a_dependent_failed_by_two_ends_at_once_counts_once(self, database):
        # e depends on a and b, withdrawn in two transactions at once (two machines, or a
        # producer and a pool): e's DependencyFailed end is counted by the one that wrote it
        assert autocron.start(database, workers=1) is True
        later = autocron.delay(hours=1)(add)
        a, b = later(1, 1), later(2, 2)
        d = same(a)
        e = add(a, b)
        store = autocron._open_store(database)

        def withdraw_b():
            with store.transaction() as con:
                store.cancel(con, b.uuid, store.now())
        second = threading.Thread(target=withdraw_b)
        with store.transaction() as con:
            store.cancel(con, a.uuid, store.now())
            second.start()
            if autocron._is_postgres(database):    # SQLite: it waits for the write lock
                wait_until(lambda: query(database, "SELECT count(*) FROM pg_locks WHERE NOT "
                                                   "granted") != [(0,)], 30,
                           "the other withdrawal to wait for a row's lock")
        second.join(30)
        assert [d.status, e.status] == ["error", "error"]
        counted = dict(((f, label), n) for f, label, n in store.read(
            "SELECT function, label, sum(n) FROM metrics WHERE kind = 'ended' GROUP BY 1, 2"))
        assert counted == {("test_autocron.add", "cancelled"): 2,
                           ("test_autocron.same", "error"): 1,
                           ("test_autocron.add", "error"): 1}       # e ended once

    def test_a_call_queued_behind_a_running_one_counts_in_the_oldest_due_age(self, database,
                                                                              tmp_path):
        assert autocron.start(database, workers=1) is True
        held = hold_until(str(tmp_path / "go"))
        wait_until(lambda: held.status == "running", what="the held call to start")
        behind = add(1, 2)
        board = DashboardServer(database)
        try:
            wait_until(lambda: row_status(database, behind) == "queued", what="a hand-over")
            wait_until(lambda: (sample(scrape(board)[1], "autocron_oldest_due_age_seconds",
                                       queue="default") or 0) >= 1, 30,
                       "the queued call's age to count")
            assert sample(scrape(board)[1], "autocron_calls_waiting", queue="default",
                          function="test_autocron.add", reason="due") == 1
        finally:
            board.stop()
            (tmp_path / "go").touch()
        assert behind.get(timeout=30) == 3

    def test_the_queues_page_reads_no_row_per_waiting_call(self, database, monkeypatch):
        assert autocron.start(database, workers=1) is True
        add.options(hours=1, queue="bulk").map(range(5000), range(5000))
        store = autocron._open_store(database)
        board = autocron._Dashboard(store, None)
        sizes, read = [], store.read

        def counted(sql, params=()):
            rows = read(sql, params)
            sizes.append(len(rows))
            return rows
        monkeypatch.setattr(store, "read", counted)
        status, body = board.page("/queues", {})
        assert status == 200 and "cancel 5000 waiting" in body
        assert max(sizes) <= autocron._DASH_PAGE, sorted(sizes)[-3:]

    def test_what_an_attempt_s_end_adds(self):
        Outcome, Ending = autocron._Outcome, autocron._Ending
        endings = [Ending(1, "m.f", "q", 100.0, "running"), Ending(2, "m.f", "q", 100.0,
                                                                   "queued")]
        deltas = {}
        autocron._metric_deltas([
            Outcome(1, "ready", started=100.5, finished=101.0),
            Outcome(2, "error", started=99.0, finished=99.002, retry_at=200.0),
            Outcome(3, "ready", started=1.0, finished=2.0),          # not live: not written
        ], endings, deltas)
        assert deltas == {("m.f", "q", "ended", "ready"): [1, 0.0],
                          ("m.f", "q", "retried", ""): [1, 0.0],
                          ("m.f", "q", "wait", "0.5"): [1, 0.5],
                          ("m.f", "q", "run", "0.5"): [1, 0.5],
                          ("m.f", "q", "wait", "0.005"): [1, 0.0],   # started before due: 0
                          ("m.f", "q", "run", "0.005"): [1, pytest.approx(0.002)]}
        free = {}
        autocron._metric_deltas([Outcome(1, "error", retry_at=5.0, free=True)], endings, free)
        assert free == {}                              # a free rerun is no retry
        assert [autocron._bucket(s) for s in (0, 0.005, 0.0051, 3600, 3600.5)] == [
            "0.005", "0.005", "0.01", "3600.0", "+Inf"]

    def test_why_calls_wait(self):
        Limit = autocron._Limit
        values = autocron._MetricValues(
            counters=[], held=[("f", "a", "running", 2, 1.0), ("f", "a", "queued", 1, 1.0),
                               ("f", "b", "running", 1, 1.0)],
            waiting=[("f", "a", True, 4, 1.0), ("f", "a", False, 2, 9.0),
                     ("f", "b", True, 1, 1.0), ("f", "c", True, 5, 1.0)],
            blocked=[("g", "a", 3)],
            limits={"a": Limit("a", 3, None, None), "b": Limit("b", 5, None, None),
                    "c": Limit("c", None, 10, 60.0)},
            starts={"c": 10})
        assert autocron._waiting_reasons(values) == {
            ("f", "a", "due"): 1, ("f", "a", "limit"): 4, ("f", "a", "scheduled"): 2,
            ("f", "b", "due"): 1, ("f", "c", "limit"): 5, ("g", "a", "dependency"): 3}


class TestAdmin:
    """The admin tool, run as a real command against real databases."""

    @pytest.mark.parametrize("command", [[], ["demo"], ["info"], ["tasks"], ["results"],
                                         ["set"], ["disable"], ["enable"], ["purge"], ["next"],
                                         ["pause"], ["resume"], ["cron"], ["cron", "remove"],
                                         ["dashboard"]])
    def test_every_command_has_help(self, command):
        out = cli(*command, "--help")
        assert out.returncode == 0 and out.stdout.startswith("usage: autocron")
        described = out.stdout.split("\n\n")[1]        # the paragraph after the usage
        assert described[:1].isupper() and not described.startswith(
            ("positional", "options")), out.stdout

    def test_the_defaults_of_options_are_shown(self):
        for command in ("tasks", "results"):
            assert "at most N rows (default: 50)" in " ".join(cli(command, "--help").stdout.split())

    def test_module_and_console_script_are_the_same_program(self):
        as_module = subprocess.run([sys.executable, "-m", "autocron", "next", "@daily", "-n",
                                    "1"], capture_output=True, text=True, timeout=60, cwd=HERE)
        assert as_module.returncode == 0 and as_module.stdout.startswith(
            "0 0 * * *: at 00:00 every day\n")
        script = os.path.join(os.path.dirname(sys.executable), "autocron")
        if os.path.exists(script):
            out = subprocess.run([script, "next", "@daily", "-n", "1"], capture_output=True,
                                 text=True, timeout=60)
            assert out.stdout == as_module.stdout

    def test_next_prints_description_and_times(self):
        out = cli("next", "30 9 * * 1,3", "-n", "3", "--json")
        data = json.loads(out.stdout)
        assert data["description"] == "at 09:30 on Monday and Wednesday"
        times = [datetime.fromisoformat(t) for t in data["next"]]
        assert len(times) == 3 and all(t.hour == 9 and t.minute == 30 for t in times)
        assert all(t.isoweekday() in (1, 3) for t in times)
        out = cli("next", "0 8 * * *", "--tz", "Europe/Berlin", "-n", "2")
        assert out.stdout.splitlines()[0] == "0 8 * * *: at 08:00 every day (Europe/Berlin)"
        assert out.stdout.splitlines()[1].endswith(("08:00 CET", "08:00 CEST"))

    @pytest.mark.parametrize("args, status, message", [
        (["next", "30 9 0,2 * *"], 2, 'autocron: day-of-month 0 is out of range 1-31; for '
         'Monday and Wednesday write "30 9 * * 1,3" (day-of-week is the fifth field, 0 or 7 = '
         'Sunday)'),
        (["next", "* * *"], 2, "autocron: expected 5 fields (minute hour day-of-month month "
                               "day-of-week), got 3"),
        (["next", "@daily", "--tz", "Mars/Base"], 2, "autocron: unknown time zone "
         "'Mars/Base'; use an IANA name like 'Europe/Berlin' or 'America/New_York'"),
        (["next", "@daily", "-n", "0"], 2, "autocron next: argument -n: '0' is not a positive "
                                           "whole number (see autocron next --help)"),
        (["set", "workers", "many"], 2, "autocron set: argument value: 'many' is not a "
                                        "positive whole number (see autocron set --help)"),
        (["set", "async-concurrency", "0"], 2, "autocron set: argument value: '0' is not a "
                                               "positive whole number (see autocron set "
                                               "--help)"),
        (["set", "async-concurrency", "1001"], 2, "autocron set: argument value: "
                                                  "async-concurrency is at most 1000, got 1001 "
                                                  "(see autocron set --help)"),
        (["frobnicate"], 2, "autocron: argument COMMAND: invalid choice: 'frobnicate' (choose "
                            "from 'demo', 'info', 'tasks', 'results', 'set', 'disable', "
                            "'enable', 'purge', 'limit', 'pause', 'resume', 'cron', "
                            "'dashboard', 'next') (see autocron --help)"),
    ])
    def test_bad_input_is_one_line_and_exit_2(self, args, status, message):
        out = cli(*args)
        assert (out.returncode, out.stderr, out.stdout) == (status, message + "\n", "")

    @pytest.mark.parametrize("command", [["info"], ["tasks"], ["results"], ["purge"],
                                         ["set", "workers", "2"], ["disable"]])
    def test_missing_database_is_never_created(self, tmp_path, command):
        database = tmp_path / "missing.db"
        out = cli(*command, db=database)
        assert out.returncode == 2
        assert out.stderr == (f"autocron: no database at {database}; pass --db PATH (start() "
                              "creates one; reading commands never do)\n")
        assert list(tmp_path.iterdir()) == []

    def test_damaged_database_is_a_runtime_failure(self, tmp_path):
        database = tmp_path / "bad.db"
        database.write_bytes(b"not a database at all" * 100)
        os.chmod(database, 0o600)
        out = cli("info", db=database)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.startswith(f"autocron: {database}: it is not an SQLite database or "
                                     "it is damaged")
        assert len(out.stderr.splitlines()) == 1

    def test_foreign_database_is_refused(self, tmp_path):
        database = tmp_path / "foreign.db"
        with contextlib.closing(sqlite3.connect(database)) as con:
            con.execute("CREATE TABLE x (y)")
        os.chmod(database, 0o600)
        out = cli("results", db=database)
        assert (out.returncode, out.stderr) == (
            1, f"autocron: {database} is not an autocron database; pass --db PATH\n")

    def test_info_of_a_live_pool(self, live_pool):
        database, owner = live_pool
        out = cli("info", db=database)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith(f"database   {database} (schema 3, ")
        assert lines[1] == "settings   workers 2, result-ttl 1800 s, async-concurrency 100, " \
            "enabled"
        assert lines[2].startswith(f"pool       running: owner pid {owner.pid}, manager pid ")
        assert lines[3] == ("queue      0 waiting (0 due now), 0 waiting on other calls, 0 "
                            "queued in workers, 0 running")
        assert lines[4] == "results    3 ready, 1 error, 0 cancelled"
        assert lines[5] == "cron jobs  1"
        assert lines[6] == ("  test_autocron.cron_job  */15 9-17 * * 1-5  every 15 minutes "
                            "from 09:00 to 17:59, Monday through Friday")
        assert lines[7].startswith("    next: ") and lines[7].endswith("; last run: never")
        info = json.loads(cli("info", "--json", db=database).stdout)
        assert info["pool"]["owner"] == owner.pid and len(info["pool"]["workers"]) == 2
        assert all(alive(pid) for pid in info["pool"]["workers"] + [info["pool"]["manager"]])
        assert info["results"] == {"ready": 3, "error": 1, "cancelled": 0}
        assert len(info["cron_jobs"][0]["next"]) == 3

    def test_results_and_tasks_tables(self, live_pool):
        database, _ = live_pool
        out = cli("results", "--limit", "2", db=database)
        lines = out.stdout.splitlines()
        assert lines[0].split() == ["id", "function", "args", "status", "value", "finished",
                                    "took"]
        assert len(lines) == 3 and "ValueError: on purpose" in lines[1]
        assert lines[2].split()[1:5] == ["test_autocron.add", "2,", "2", "ready"]
        rows = json.loads(cli("results", "--status", "ready", "--json", db=database).stdout)
        assert [r["value"] for r in rows] == [4, 2, 0]
        assert datetime.fromisoformat(rows[0]["finished"]).tzinfo is not None
        assert cli("tasks", db=database).stdout == "(none)\n"
        try:
            assert autocron.start(database) is False       # a producer beside the pool
            waiting = add_in_an_hour(1, 2)
            out = cli("tasks", db=database)
            assert waiting.uuid in out.stdout and " waiting " in out.stdout
        finally:
            autocron.stop()

    def test_long_values_are_cut(self, tmp_path):
        database = tmp_path / "long.db"
        store = autocron._open_store(database)
        store.add_task("module.function", "x" * 500, b"", 0.0)
        out = cli("tasks", db=database)
        assert "x" * 27 + "..." in out.stdout and "x" * 31 not in out.stdout

    def test_set_workers_resizes_a_live_pool(self, live_pool):
        database, owner = live_pool
        out = cli("set", "workers", "3", db=database)
        assert out.stdout == (f"workers set to 3; the running pool (owner pid {owner.pid}) "
                              "adjusts within a few seconds\n")
        wait_until(lambda: len(json.loads(cli("info", "--json", db=database).stdout)
                               ["pool"]["workers"]) == 3, 30, "a third worker")
        assert cli("set", "workers", "1", db=database).returncode == 0
        wait_until(lambda: len(json.loads(cli("info", "--json", db=database).stdout)
                               ["pool"]["workers"]) == 1, 30, "the pool to shrink")
        out = cli("set", "result-ttl", "60", db=database)
        assert out.stdout == (f"result-ttl set to 60 s; the running pool (owner pid "
                              f"{owner.pid}) applies it at its next cleanup, within a minute\n")
        out = cli("set", "async-concurrency", "20", db=database)
        assert out.stdout == (f"async-concurrency set to 20; the running pool (owner pid "
                              f"{owner.pid}) hands out async calls by it within a few seconds "
                              "(calls running past it end as they do)\n")
        assert autocron._open_store(database).settings()["async_concurrency"] == 20

    def test_settings_without_a_pool_apply_at_the_next_start(self, tmp_path):
        database = tmp_path / "idle.db"
        autocron._open_store(database).close()
        assert cli("set", "workers", "4", db=database).stdout == \
            "workers set to 4; used from the next start()\n"
        assert autocron._open_store(database).settings()["workers"] == 4

    def test_disable_and_enable(self, tmp_path):
        database = tmp_path / "d.db"
        autocron._open_store(database).close()
        out = cli("disable", db=database)
        assert out.stdout == (f"autocron disabled for {database}: start() starts nothing and "
                              "calls run synchronously\n")
        assert autocron.start(database) is False and add(1, 1).get() == 2
        out = cli("enable", db=database)
        assert out.stdout == f"autocron enabled for {database}: the next start() starts a pool\n"
        assert autocron.start(database) is True
        autocron.stop()

    def test_pause_and_resume_a_cron_job(self, live_pool):
        database, _ = live_pool
        name = "test_autocron.cron_job"
        paused = cli("pause", name, db=database)
        assert (paused.returncode, paused.stdout) == (0, f"paused {name}: no runs start until "
                                                         f"`autocron resume {name}` (a run that "
                                                         "is running goes on)\n")
        assert f"    next: paused (autocron resume {name}); last run: never" in \
            cli("info", db=database).stdout.splitlines()
        job = json.loads(cli("info", "--json", db=database).stdout)["cron_jobs"][0]
        assert (job["paused"], job["next"], job["due"]) == (True, [], None)
        resumed = cli("resume", name, db=database)
        due = query(database, "SELECT next_due FROM crons")[0][0]
        assert (resumed.returncode, resumed.stdout) == (
            0, f"resumed {name}: next run {autocron._local_time(due)}\n")
        job = json.loads(cli("info", "--json", db=database).stdout)["cron_jobs"][0]
        assert job["paused"] is False and len(job["next"]) == 3
        unknown = cli("resume", "nope", db=database)
        assert (unknown.returncode, unknown.stderr) == (
            2, f"autocron: no cron job named 'nope' in {database} (its jobs: {name})\n")

    def test_cron_remove_deletes_a_job(self, live_pool):
        database, _ = live_pool
        name = "test_autocron.cron_job"
        removed = cli("cron", "remove", name, db=database)
        assert (removed.returncode, removed.stdout) == (
            0, f"removed the cron job {name}; code that still declares it (@cron) registers "
               "it again at its next start()\n")
        assert query(database, "SELECT count(*) FROM crons") == [(0,)]
        again = cli("cron", "remove", name, db=database)
        assert (again.returncode, again.stderr) == (
            2, f"autocron: no cron job named {name!r} in {database} (its jobs: none)\n")

    def test_resume_of_a_job_that_is_not_paused_says_so(self, live_pool):
        database, _ = live_pool
        name = "test_autocron.cron_job"
        due = query(database, "SELECT next_due FROM crons")[0][0]
        out = cli("resume", name, db=database)
        assert (out.returncode, out.stdout) == (
            0, f"{name} is not paused: next run {autocron._local_time(due)}\n")

    def test_the_database_may_follow_the_command(self, live_pool):
        database, _ = live_pool
        before = cli("info", "--json", db=database)
        after = subprocess.run([sys.executable, AUTOCRON, "info", "--json", "--db",
                                str(database)], capture_output=True, text=True, timeout=120,
                               cwd=HERE)
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout)["database"] == json.loads(before.stdout)["database"]
        removed = subprocess.run([sys.executable, AUTOCRON, "cron", "remove", "nope", "--db",
                                  str(database)], capture_output=True, text=True, timeout=120,
                                 cwd=HERE)
        assert f"no cron job named 'nope' in {database}" in removed.stderr

    def test_results_json_gives_values_as_json_with_their_repr_beside(self, live_pool):
        database, _ = live_pool
        rows = json.loads(cli("results", "--json", db=database).stdout)
        by_value = {row["value_repr"]: row["value"] for row in rows if row["status"] == "ready"}
        assert by_value == {"0": 0, "2": 2, "4": 4}
        failed = [row for row in rows if row["status"] == "error"]
        assert [(row["value"], row["value_repr"]) for row in failed] == [(None, None)]
        assert failed[0]["error"].startswith("ValueError: on purpose")

    def test_a_value_that_is_not_json_is_null_beside_its_repr(self, tmp_path):
        database = tmp_path / "a.db"
        assert run_python("""
            import sys, datetime, autocron, test_autocron
            autocron.start(sys.argv[1], workers=1)
            print(test_autocron.same({1, 2}).get(timeout=30))
            print(test_autocron.same(datetime.date(2030, 1, 2)).get(timeout=30))
            print(test_autocron.same([1.5, "x", None, True]).get(timeout=30))
            autocron.stop()
        """, database).returncode == 0
        rows = json.loads(cli("results", "--json", db=database).stdout)
        assert [(row["value"], row["value_repr"]) for row in rows] == [
            ([1.5, "x", None, True], "[1.5, 'x', None, True]"),
            (None, "datetime.date(2030, 1, 2)"), (None, "{1, 2}")]

    def test_a_hostile_value_cannot_hang_or_break_the_json_listing(self, tmp_path):
        # review: a 184-byte pickle of 2**60 shared leaves hung it; 200,000 nested lists
        # broke it with a RecursionError
        database = tmp_path / "a.db"
        store = autocron._open_store(database)
        shared = b"\x80\x04]\x94" + b"h\x00h\x00\x86\x94" * 60 + b"."   # each level twice
        deep = b"\x80\x04" + b"]" * 200_000 + b"a" * 199_999 + b"."
        for value in (shared, deep, pickle.dumps([1, "x"])):
            uid = store.add_task("f", "()", b"", 0.0)
            store.write("UPDATE tasks SET status = 'ready', finished = 1.0, value = ?, "
                        "summary = 'v' WHERE id = ?", (value, autocron._row_key(uid)[0]))
        out = cli("results", "--json", db=database, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [row["value"] for row in json.loads(out.stdout)] == [[1, "x"], None, None]

    def test_info_json_gives_the_zone_apart_from_the_expression(self, tmp_path):
        database = tmp_path / "a.db"
        assert run_python("""
            import sys, autocron, test_autocron
            autocron.cron("0 8 * * *", tz="Europe/Berlin")(test_autocron.cron_job)
            autocron.start(sys.argv[1], workers=0)
        """, database).returncode == 0
        (job,) = json.loads(cli("info", "--json", db=database).stdout)["cron_jobs"]
        assert (job["expression"], job["tz"]) == ("0 8 * * *", "Europe/Berlin")
        assert "0 8 * * * (Europe/Berlin)" in cli("info", db=database).stdout

    def test_a_reader_that_closes_the_pipe_ends_it_quietly(self, live_pool):
        database, _ = live_pool
        shell = subprocess.run(f"{shlex.quote(sys.executable)} {shlex.quote(AUTOCRON)} --db "
                               f"{shlex.quote(str(database))} info | head -1", shell=True,
                               capture_output=True, text=True, timeout=120, cwd=HERE)
        assert shell.stdout.startswith("database ") and shell.stderr == ""

    def test_a_worker_count_far_above_the_cpus_is_taken_with_a_warning(self, tmp_path):
        database = tmp_path / "a.db"
        autocron._open_store(database)
        out = cli("set", "workers", "1000", db=database)
        cpus = os.cpu_count()
        assert out.returncode == 0 and out.stdout.startswith("workers set to 1000")
        assert out.stderr == (
            f"autocron: warning: 1000 workers on a machine with {cpus} CPUs: each worker is "
            f"a process of its own, and more than {4 * cpus} rarely helps unless the tasks "
            "mostly wait (then consider async def tasks)\n")
        assert cli("set", "workers", str(4 * cpus), db=database).stderr == ""

    def test_a_result_ttl_of_zero_keeps_results_forever(self, tmp_path):
        database = tmp_path / "a.db"
        store = autocron._open_store(database)
        assert cli("set", "result-ttl", "0", db=database).stdout.startswith(
            "result-ttl set to 0 (results are kept until purged)")
        uid = store.add_task("f", "()", b"", 0.0)
        store.write("UPDATE tasks SET status = 'ready', finished = 1.0")
        assert store.cleanup(10 ** 10, store.settings()["result_ttl"]) == 0
        assert store.result_row(uid) is not None

    def test_purge_deletes_finished_results(self, live_pool):
        database, _ = live_pool
        assert cli("purge", db=database).stdout == "deleted 4 finished results\n"
        assert cli("results", db=database).stdout == "(none)\n"

    def test_verbose_shows_the_log(self):
        out = cli("-v", "demo")
        assert out.returncode == 0
        assert "autocron INFO autocron worker" in out.stderr and "started" in out.stderr
        assert "autocron ERROR autocron task" in out.stderr and "ValueError" in out.stderr

    def test_set_synchronous(self, tmp_path):
        database = tmp_path / "sync.db"
        autocron._open_store(database).close()
        out = cli("set", "synchronous", "full", db=database)
        assert (out.returncode, out.stdout) == (0, "synchronous set to full; used from the "
                                                   "next start()\n")
        store = autocron._open_store(database)
        assert store.settings()["synchronous"] == "full"
        assert store.read("PRAGMA synchronous") == [(2,)]
        store.close()
        assert cli("set", "synchronous", "normal", db=database).returncode == 0
        assert autocron._open_store(database).settings()["synchronous"] == "normal"

    def test_set_synchronous_to_a_live_pool(self, live_pool):
        database, owner = live_pool
        out = cli("set", "synchronous", "full", db=database)
        assert out.stdout == (f"synchronous set to full; the running pool (owner pid "
                              f"{owner.pid}) applies it within a second, other running "
                              "processes at their next start()\n")

    @pytest.mark.parametrize("args, message", [
        (["set", "synchronous", "maybe"], "autocron set: argument value: 'maybe' is not normal "
                                          "or full (see autocron set --help)"),
        (["set", "synchronous", "2"], "autocron set: argument value: '2' is not normal or full "
                                      "(see autocron set --help)"),
        (["set", "result-ttl", "full"], "autocron set: argument value: 'full' is not a positive "
                                        "whole number (see autocron set --help)"),
        (["set", "durability", "full"], "autocron set: argument setting: invalid choice: "
                                        "'durability' (choose from 'workers', 'result-ttl', "
                                        "'synchronous', 'async-concurrency') (see autocron "
                                        "set --help)"),
    ])
    def test_bad_settings_are_one_line_and_exit_2(self, tmp_path, args, message):
        database = tmp_path / "bad.db"
        autocron._open_store(database).close()
        out = cli(*args, db=database)
        assert (out.returncode, out.stderr, out.stdout) == (2, message + "\n", "")
        assert autocron._open_store(database).settings()["synchronous"] == "normal"


class TestDemo:
    def test_demo_runs_the_whole_flow(self):
        out = subprocess.run([sys.executable, autocron.__file__, "demo"], capture_output=True,
                             text=True, timeout=120, cwd=HERE)
        assert out.returncode == 0, out.stderr
        assert "ValueError: this task fails on purpose" in out.stdout
        assert "ready  25" in out.stdout
        assert 'A cron job "*/15 9-17 * * 1-5" runs every 15 minutes' in out.stdout


    @pytest.mark.slow
    def test_the_readme_s_install_commands_install_this_project(self, tmp_path):
        # as written, in a fresh venv, from a copy of the repository as a user gets it: a
        # clone's files (git archive of HEAD), else the folder without what tests leave
        blocks = re.findall(r"```install\n(.*?)```", Path(HERE, "README.md").read_text(),
                            re.S)
        commands = [line.split("  #")[0].strip() for block in blocks
                    for line in block.splitlines() if line.strip()]
        assert commands == ["pip install .", 'pip install ".[postgres]"']
        clone = tmp_path / "autocron"
        clone.mkdir()
        archive = subprocess.run(["git", "-C", HERE, "archive", "HEAD"], capture_output=True) \
            if shutil.which("git") else None
        if archive is not None and archive.returncode == 0:
            subprocess.run(["tar", "-x", "-C", str(clone)], input=archive.stdout, check=True)
        else:
            shutil.copytree(HERE, clone, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
                ".git", ".venv*", "__pycache__", "*.db", "*.db-*", "*.lock"))
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   VIRTUAL_ENV=str(venv))
        env.pop("PYTHONPATH", None)
        for command in commands:
            done = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        check = subprocess.run([str(venv / "bin" / "python"), "-c", "import autocron, psycopg; "
                                "print(autocron.__file__, autocron.CronExpression)"],
                               capture_output=True, text=True, cwd=tmp_path, env=env)
        assert check.stdout.startswith(str(venv)), check
        assert Path(check.stdout.split()[0]).read_bytes() == \
            Path(clone, "autocron.py").read_bytes()            # this project's module
        command = subprocess.run([str(venv / "bin" / "autocron"), "next", "@daily", "-n", "1"],
                                 capture_output=True, text=True, cwd=tmp_path, env=env)
        assert command.stdout.startswith("0 0 * * *: at 00:00 every day\n"), command

# ---- the module's layout ---------------------------------------------------------------------


SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|DROP|ALTER|BEGIN|COMMIT|"
                       r"ROLLBACK|WITH)\b")


def module_sections(lines):
    """[(first line, title)] of the banner sections: '# ===' / '# Title' / '# ==='."""
    return [(number + 2, lines[number + 1][1:].strip()) for number in range(len(lines) - 2)
            if lines[number].startswith("# ====") and lines[number + 2].startswith("# ====")]


def section_of(sections, line):
    return max((i for i, (first, _) in enumerate(sections) if first <= line), default=-1)


def bound_names(function):
    """The names a function (or lambda) binds itself: parameters, assignments, imports..."""
    arguments = function.args
    names = {a.arg for a in arguments.args + arguments.kwonlyargs +
             getattr(arguments, "posonlyargs", [])}
    names |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    for node in ast.walk(function) if not isinstance(function, ast.Lambda) else ():
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                node is not function:
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names -= set(node.names)
    return names


def global_reads(node, local=frozenset()):
    """(name, line) of every module-level name that `node` reads, at any depth."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        for outer in getattr(node, "decorator_list", []) + node.args.defaults + \
                [d for d in node.args.kw_defaults if d is not None]:
            yield from global_reads(outer, local)
        inner = local | bound_names(node)
        for child in node.body if isinstance(node.body, list) else [node.body]:
            yield from global_reads(child, inner)
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
        yield node.id, node.lineno
    for child in ast.iter_child_nodes(node):
        yield from global_reads(child, local)


class TestModuleLayout:
    """autocron.py reads top to bottom: no section uses what a later one defines, and SQL
    lives in the store sections only (the seam both stores implement)."""

    def layout(self):
        text = Path(autocron.__file__).read_text()
        return ast.parse(text), module_sections(text.splitlines())

    def test_the_sections_are_the_ones_of_the_house_style(self):
        _, sections = self.layout()
        assert [title for _, title in sections] == [
            "Constants", "Exceptions", "Cron expressions", "Task records and serialisation",
            "The SQLite store", "The PostgreSQL store", "Workers and the pool", "Public API",
            "Dashboard", "Admin command line"]

    def test_the_module_docstring_maps_the_sections(self):
        # its map names every banner, in order, with its length within a factor of two,
        # and every name it points a newcomer to exists
        lines = Path(autocron.__file__).read_text().splitlines()
        sections = module_sections(lines)
        ends = [first for first, _ in sections[1:]] + [len(lines)]
        doc = autocron.__doc__
        mapped = re.findall(r"^    (\S.*?\S) +(\d+)  ", doc.split("Sections, in dependency")[1],
                            re.MULTILINE)
        assert [title for title, _ in mapped] == [title for _, title in sections]
        for (title, said), (first, _), end in zip(mapped, sections, ends):
            assert 0.5 <= (end - first) / int(said) <= 2, (title, said, end - first)
        named = set(re.findall(r"(?<![\w.])(_?[A-Z]\w*\.\w+|_[a-z]\w*)",
                               doc.split("How a call travels")[1]))
        assert len(named) > 10
        for name in named:
            owner, _, member = name.partition(".")
            assert hasattr(autocron, owner) and (
                not member or hasattr(getattr(autocron, owner), member)), name

    def test_no_section_uses_a_name_that_a_later_section_defines(self):
        tree, sections = self.layout()
        defined = {}
        for node in tree.body:
            targets = [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                [t for t in ast.walk(node) if isinstance(t, ast.Name) and
                 isinstance(t.ctx, ast.Store)] if isinstance(node, (ast.Assign,
                                                                    ast.AnnAssign)) else []
            for target in targets:
                name = target.name if hasattr(target, "name") else target.id
                defined.setdefault(name, section_of(sections, node.lineno))
        forward = []
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                continue                     # the __main__ guard comes last on purpose
            here = section_of(sections, node.lineno)
            forward += [f"line {line}: {sections[here][1]!r} uses {name} from "
                        f"{sections[defined[name]][1]!r}"
                        for name, line in global_reads(node) if defined.get(name, -1) > here]
        assert forward == []

    def test_no_class_is_longer_than_300_lines(self):
        # a room a newcomer can enter: the pool and the stores are made of parts
        tree, _ = self.layout()
        long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= 300]
        assert long == []

    def test_sql_lives_in_the_store_section_only(self):
        tree, sections = self.layout()
        outside = [f"line {node.lineno} in {sections[section_of(sections, node.lineno)][1]!r}: "
                   f"{node.value.strip()[:40]!r}" for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and isinstance(node.value, str) and
                   SQL_START.match(node.value) and
                   "store" not in sections[section_of(sections, node.lineno)][1].lower()]
        assert outside == []


# ---- system tests: chaos, and a real WSGI server as a client ----------------------------------


def needs(module, extra="test"):
    """Skip without an optional part of the test extra, but never in CI."""
    import importlib.util
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install -e '.[{extra}]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@autocron.delay
def on_machine(key, log, seconds=0.0):
    """Record which machine ran the call (each key once, if nothing runs twice)."""
    with open(log, "a") as file:
        file.write(f"{key} {os.environ.get('AUTOCRON_HOST')}\n")
    time.sleep(seconds)
    return os.environ.get("AUTOCRON_HOST")


@autocron.delay
def merge_hosts(parts):
    """The machines named in `parts` (machine names, or lists of them), sorted, once each."""
    return sorted({host for part in parts for host in ([part] if isinstance(part, str)
                                                       else part)})


def slow_the_first_time(counter, seconds):
    """Sleeps `seconds` on its first attempt only; returns the machine that ran it."""
    if count_attempt(counter) == 1:
        time.sleep(seconds)
    return os.environ.get("AUTOCRON_HOST")


class TestManyMachines:
    """Pools on several machines share one PostgreSQL database: each task runs once, a lost
    machine's tasks are settled by the others, a paused one cannot overwrite them."""

    def test_four_producers_and_two_machines_run_every_task_once(self, machines, tmp_path):
        a, b = machines("a"), machines("b")
        log = tmp_path / "ran.log"
        producers = [spawn_python("""
            import sys, autocron, test_autocron
            autocron.start(sys.argv[1], workers=0)
            for i in range(150):
                test_autocron.on_machine(f"{sys.argv[2]}-{i}", sys.argv[3], 0.002)
            autocron.stop()
        """, machines.url, p, log) for p in range(4)]
        for producer in producers:
            assert producer.wait(timeout=120) == 0, producer.stderr.read()
        wait_until(lambda: query(machines.url, "SELECT count(*) FROM tasks WHERE status = "
                                 "'ready'") == [(600,)], 120, "600 tasks done")
        lines = log.read_text().split("\n")[:-1]
        keys = collections.Counter(line.split()[0] for line in lines)
        assert len(keys) == 600 and set(keys.values()) == {1}
        hosts = collections.Counter(line.split()[1] for line in lines)
        assert set(hosts) == {"a", "b"} and min(hosts.values()) >= 20, hosts
        assert query(machines.url, "SELECT DISTINCT attempts FROM tasks") == [(1,)]
        # each end counted once, by the pool that wrote it, in rows of its own
        assert dict(query(machines.url, "SELECT split_part(adder, '#', 1), sum(n) FROM metrics "
                                        "WHERE kind = 'ended' GROUP BY 1")) == dict(hosts)
        assert "lost" not in a.stop() + b.stop()

    def test_calls_wait_for_their_dependencies_across_machines(self, machines, tmp_path):
        a, b = machines("a"), machines("b")
        autocron.start(machines.url, workers=0)        # a producer only
        log = str(tmp_path / "ran.log")
        # 20 fan-ins of 10 calls each, and a chain through all of them: whichever machine
        # ends a dependency, the machine that runs the dependent sees its value
        fan_ins = [merge_hosts([on_machine(f"{group}-{i}", log, 0.005) for i in range(10)])
                   for group in range(20)]
        chain = fan_ins[0]
        for fan_in in fan_ins[1:]:
            chain = merge_hosts([chain, fan_in])
        hosts = chain.get(timeout=120)
        assert set(hosts) == {"a", "b"}, hosts             # both machines ran calls
        keys = collections.Counter(line.split()[0] for line in open(log).read().splitlines())
        assert len(keys) == 200 and set(keys.values()) == {1}   # each once
        assert "lost" not in a.stop() + b.stop()

    def test_a_concurrency_limit_holds_across_machines(self, machines, tmp_path):
        a, b = machines("a"), machines("b")           # 2 workers each
        autocron.limit("slow", concurrency=2, database=machines.url)
        autocron.start(machines.url, workers=0)
        log = str(tmp_path / "stamps")
        calls = [stamped(log, i, 0.2) for i in range(12)]
        assert [r.get(timeout=120) for r in calls] == list(range(12))
        assert most_at_once(stamps(log)) == 2          # 4 workers, never more than 2
        assert "lost" not in a.stop() + b.stop()

    @pytest.mark.slow
    def test_a_machine_killed_whole_has_its_tasks_finished_elsewhere(self, machines, tmp_path):
        a = machines("a")
        autocron.start(machines.url, workers=0)
        again = autocron.delay(retries=1)(slow_the_first_time)(str(tmp_path / "n1"), 120)
        once = autocron.delay(slow_the_first_time)(str(tmp_path / "n2"), 120)
        wait_until(lambda: query(machines.url, "SELECT count(*) FROM tasks WHERE status = "
                                 "'running' AND machine = 'a'") == [(2,)], 30, "two tasks on a")
        queued = [add(i, i) for i in range(5)]
        b = machines("b")
        a.signal(signal.SIGKILL)
        assert again.get(timeout=60) == "b" and again.attempts == 2
        with pytest.raises(autocron.WorkerLost, match=r"machine a lost \(no heartbeat since "
                                                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"):
            once.get(timeout=60)
        assert [r.get(timeout=60) for r in queued] == [0, 2, 4, 6, 8]
        assert query(machines.url, "SELECT name FROM machines") == [("b",)]
        assert "machine a of " in b.stop()

    @pytest.mark.slow
    def test_a_paused_machine_cannot_overwrite_the_rerun_of_its_task(self, machines, tmp_path):
        a = machines("a", workers=1)
        autocron.start(machines.url, workers=0)
        counter = tmp_path / "n"
        result = autocron.delay(retries=1)(slow_the_first_time)(str(counter), 4)
        # its work begun (its attempt counted), not only its row "running": a worker paused
        # before that would leave the slow first attempt to b
        wait_until(lambda: counter.exists() and counter.read_text(), 30, "a running it")
        a.signal(signal.SIGSTOP)
        b = machines("b", workers=1)
        assert result.get(timeout=60) == "b" and result.attempts == 2
        a.signal(signal.SIGCONT)    # its first attempt goes on, and ends with "a" while a stops
        # b forgot a's row when it settled a's task; a, finding its lease taken over, takes a
        # new one (after saying so): stopping it before then would race that discovery
        wait_until(lambda: query(machines.url, "SELECT count(*) FROM machines WHERE name = 'a'")
                   == [(1,)], 60, "machine a to take a new lease")
        log = a.stop()
        assert "the pool of machine a lost its lease" in log
        (value, attempts), = query(machines.url, "SELECT value, attempts FROM tasks")
        assert (pickle.loads(value), attempts) == ("b", 2)
        b.stop()

    def test_two_pools_under_one_machine_name_are_one_series_of_each_machine_gauge(
            self, machines):
        # The number of workers is a setting of the database: a pool that starts with 2
        # stores it, and the pool that started with 1 follows it (so both start with 2).
        machines("twin", workers=2), machines("twin", workers=2)
        board = DashboardServer(machines.url)
        try:
            # one series each, the pools' workers summed (a worker being replaced may show
            # for a moment)
            seen = []

            def summed():
                seen.append((scrape(board)[1]["autocron_machine_workers"],
                             query(machines.url, "SELECT lease, workers FROM machines")))
                return seen[-1][0] == {frozenset({("machine", "twin")}): 4}
            try:
                wait_until(summed, 30, "the twins' 4 workers")
            except AssertionError as error:
                raise AssertionError(f"{error}; last seen {seen[-1]}") from None
            assert list(scrape(board)[1]["autocron_machine_lease_age_seconds"]) == [
                frozenset({("machine", "twin")})]
        finally:
            board.stop()

    def test_two_pools_under_one_machine_name_work_side_by_side(self, machines, tmp_path):
        # Two containers with one host name, or one pool reaching the server as 127.0.0.1
        # and another as localhost: each pool is a pool of its own.
        first, second = machines("twin", workers=1), machines("twin", workers=1)
        autocron.start(machines.url, workers=0)
        log = tmp_path / "ran.log"
        results = [on_machine(f"k{i}", str(log), 0.05) for i in range(40)]
        assert [r.get(timeout=60) for r in results] == ["twin"] * 40
        keys = collections.Counter(line.split()[0] for line in log.read_text().splitlines())
        assert len(keys) == 40 and set(keys.values()) == {1}
        assert query(machines.url, "SELECT count(*) FROM machines WHERE name = 'twin'") == [(2,)]
        assert "lost" not in first.stop() + second.stop()

    @pytest.mark.slow
    def test_a_paused_machine_starts_nothing_it_held_and_claims_under_a_new_lease(
            self, machines, tmp_path):
        a = machines("a", workers=1)
        autocron.start(machines.url, workers=0)
        log = tmp_path / "ran.log"
        first = on_machine("first", str(log), 2)
        wait_until(lambda: row_status(machines.url, first) == "running", 30, "a running it")
        held = [on_machine(f"held{i}", str(log)) for i in range(3)]
        wait_until(lambda: all(row_status(machines.url, r) == "queued" for r in held), 30,
                   "a's worker to hold three more")
        a.signal(signal.SIGSTOP)            # longer than its lease: the others settle it
        b = machines("b", workers=1)
        assert [r.get(timeout=60) for r in held] == ["b"] * 3
        b_log = b.stop()
        a.signal(signal.SIGCONT)            # it must not start what it held, and must not
        later = [on_machine(f"later{i}", str(log)) for i in range(5)]   # claim under the
        assert [r.get(timeout=60) for r in later] == ["a"] * 5         # lease it lost
        a_log = a.stop()
        assert "machine a of " in b_log and "the pool of machine a lost its lease" in a_log
        keys = collections.Counter(line.split()[0] for line in log.read_text().splitlines())
        assert {key: n for key, n in keys.items() if key != "first"} == dict.fromkeys(
            [f"held{i}" for i in range(3)] + [f"later{i}" for i in range(5)], 1)

    def test_a_call_claimed_by_a_live_machine_that_never_heard_of_it_runs(self, machines):
        # The connection dropped after the server committed a claim and before the machine
        # read the reply: the call is queued under a live lease that no worker holds.
        machines("a", workers=1)
        autocron.start(machines.url, workers=0)
        result = add_in_an_hour(1, 2)
        (lease,), = query(machines.url, "SELECT lease FROM machines WHERE name = 'a'")
        autocron._open_store(machines.url, existing=True, write=True).write(
            "UPDATE tasks SET status = 'queued', machine = 'a', lease = ?, due = ? WHERE id = ?",
            (lease, time.time(), int(result.uuid.rsplit("-", 1)[1])))
        assert result.get(timeout=30) == 3 and result.attempts == 1

    @pytest.mark.slow
    def test_a_lease_is_renewed_while_a_round_waits_for_the_database(self, machines,
                                                                     postgres_server):
        a = machines("a", workers=1, lease=2.0)
        autocron.start(machines.url, workers=0)
        schema = urllib.parse.parse_qs(urllib.parse.urlparse(machines.url).query)["schema"][0]
        result = add_later(1, 2)             # due in half a second: the round that claims
        with postgres_server.connect(postgres_server.database) as con:     # it waits
            con.execute(f"LOCK TABLE {schema}.tasks IN ACCESS EXCLUSIVE MODE")
            ages, end = [], time.monotonic() + 6
            while time.monotonic() < end:    # three leases long, a heartbeat's age each tick
                with postgres_server.connect(postgres_server.database) as look:
                    ages += look.execute(f"SELECT extract(epoch FROM clock_timestamp()) - "
                                         f"heartbeat FROM {schema}.machines").fetchone()
                time.sleep(0.2)
            con.rollback()
        assert max(ages) < 2.0, ages
        assert result.get(timeout=30) == 3
        assert "lost" not in a.stop()

    @pytest.mark.slow
    def test_a_cron_job_on_three_machines_runs_once_per_due_time(self, machines, tmp_path,
                                                                 monkeypatch):
        log = tmp_path / "cron.log"
        monkeypatch.setenv("AUTOCRON_TEST_LOG", str(log))
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        started = [machines(name, workers=1, clock=clock.path, cron="* * * * *")
                   for name in "abc"]
        for minute in range(1, 4):
            clock.now += 60
            wait_until(lambda: query(machines.url, "SELECT count(*) FROM tasks WHERE cron IS "
                                     "NOT NULL AND status = 'ready'") == [(minute,)], 30,
                       f"run {minute}")
            assert query(machines.url, "SELECT count(*) FROM tasks WHERE cron IS NOT "
                         "NULL") == [(minute,)]
        runs = query(machines.url, "SELECT created FROM tasks WHERE cron IS NOT NULL")
        assert len(runs) == 3 and len(set(runs)) == 3
        assert log.read_text() == "run\n" * 3
        autocron.start(machines.url, workers=0)          # a new schedule, from elsewhere
        try:
            autocron.cron("30 10 * * *")(cron_job)
            ten_thirty = datetime(2030, 1, 1, 10, 30).timestamp()
            assert query(machines.url, "SELECT expression, next_due FROM crons") == \
                [("30 10 * * *", ten_thirty)]
            clock.now = ten_thirty + 30
            wait_until(lambda: query(machines.url, "SELECT count(*) FROM tasks WHERE cron IS "
                                     "NOT NULL AND status = 'ready'") == [(4,)], 30, "run 4")
            assert max(query(machines.url, "SELECT created FROM tasks"))[0] == clock.now
        finally:
            forget_cron("test_autocron.cron_job")
        for machine in started:
            machine.stop()

    def test_a_function_shipped_by_value_runs_on_another_machine(self, machines):
        machines("a", workers=1)
        autocron.start(machines.url, workers=0)
        offset = 40

        def shifted(x):                  # a closure: its code travels in the database
            return (x + offset, os.environ.get("AUTOCRON_HOST"))
        assert autocron.delay(shifted)(2).get(timeout=30) == (42, "a")


class TestWSGIServer:
    """A real gunicorn (-w 4) whose every process calls start(): one pool, each request's task
    run once, a pool that outlives its owner, cron once per due time, nothing left behind."""

    @pytest.mark.slow
    def test_gunicorn_workers_share_one_pool_that_outlives_its_owner(self, tmp_path,
                                                                     monkeypatch):
        needs("gunicorn")
        clock = FakeClock(datetime(2030, 1, 1, 8, 59, 30).timestamp(), monkeypatch, tmp_path)
        server = WSGIServer(tmp_path)
        try:
            owner, manager, _ = wait_until(lambda: server.settled(
                lambda owner: owner in server.workers()), 60, "one pool owned by a worker")
            ids = server.call([f"first-{i}" for i in range(20)])
            assert all(re.fullmatch(r"[0-9a-f]+-\d+", uid) for uid in ids.values()), ids
            for key, (status, value, ran) in server.runs(ids).items():
                assert (status, value, len(ran)) == ("ready", key, 1), (key, ran)
                assert ran[0] in server.pool()[2], f"{key} ran in {ran[0]}, not in the pool"
            for minute in (0, 1):                    # cron: once per due minute
                clock.now = datetime(2030, 1, 1, 9, minute, 30).timestamp()
                wait_until(lambda: f"cron-09:0{minute}" in server.cron_runs() and
                           server.cron_idle(), 30, f"the cron run of 09:0{minute}")
            clock.now = datetime(2030, 1, 1, 9, 2, 30).timestamp()
            os.kill(owner, signal.SIGKILL)           # the owner dies as 09:02 falls due
            new_owner, new_manager, _ = wait_until(lambda: server.settled(
                lambda new: new != owner and new in server.workers()), 60,
                f"another worker to take the pool over (the owner {owner} was killed)\n"
                f"{server.tail()}")
            assert new_manager != manager and not alive(manager)
            ids = server.call([f"then-{i}" for i in range(20)])
            for key, (status, value, ran) in server.runs(ids).items():
                assert (status, value, len(ran)) == ("ready", key, 1), (key, ran)
            wait_until(server.cron_idle, 30, "the run of 09:02, if any, to end")
            clock.now = datetime(2030, 1, 1, 9, 3, 30).timestamp()
            wait_until(lambda: "cron-09:03" in server.cron_runs(), 30, "the cron run of 09:03")
            runs = server.cron_runs()
            assert len(runs.pop("cron-09:02", [])) <= 1, runs   # killed while due: not twice
            assert {minute: len(ran) for minute, ran in runs.items()} == {
                "cron-09:00": 1, "cron-09:01": 1, "cron-09:03": 1}, runs
            assert server.managers() == {new_manager: new_owner}    # still one pool
            server.kill()
            wait_until(lambda: not processes_of(tmp_path, server.database), 30,
                       "every process of the server to end")
            assert not [pid for pid in server.seen if belongs(pid, tmp_path, server.database)]
        finally:
            server.kill_everything()

    @pytest.mark.parametrize("hook", [True, False], ids=["post_fork-start", "no-hook"])
    def test_preloaded_app_keeps_one_pool_in_the_master(self, tmp_path, hook):
        """--preload: the master imports the app and owns the pool; each worker it forks
        enqueues, whether or not it starts again (gunicorn's post_fork hook)."""
        needs("gunicorn")
        server = WSGIServer(tmp_path, preload=True, hook=hook)
        try:
            owner, manager, _ = wait_until(lambda: server.settled(
                lambda owner: owner == server.master.pid), 60, "one pool owned by the master")
            ids = server.call([f"first-{i}" for i in range(20)])
            for key, (status, value, ran) in server.runs(ids).items():
                assert (status, value, len(ran)) == ("ready", key, 1), (key, ran)
                assert ran[0] in server.pool()[2], f"{key} ran in {ran[0]}, not in the pool"
            victim = server.workers()[0]
            os.kill(victim, signal.SIGTERM)          # it exits (atexit runs), another forks
            wait_until(lambda: victim not in server.workers() and len(server.workers()) == 4,
                       60, "gunicorn to replace the worker")
            assert wait_until(lambda: server.settled(lambda new: new == owner), 30,
                              "the master's pool to go on")[1] == manager    # the same pool
            ids = server.call([f"then-{i}" for i in range(20)])
            for key, (status, value, ran) in server.runs(ids).items():
                assert (status, value, len(ran)) == ("ready", key, 1), (key, ran)
            assert server.managers() == {manager: owner}            # still one pool
            server.kill()
            wait_until(lambda: not processes_of(tmp_path, server.database), 30,
                       "every process of the server to end")
        finally:
            server.kill_everything()


# ---- the chaos test of issue 20: every fault at once, from a seed --------------------------


DJANGO_SETTINGS = """
    SECRET_KEY = "test"
    USE_TZ = True
    INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": __file__.rsplit("/", 2)[0] + "/app.sqlite3"}}
"""

DJANGO_TASKS = """
    import autocron
    from django.db import connection


    @autocron.delay
    def add_user(name):
        from django.contrib.auth.models import User      # needs django.setup()
        User.objects.create(username=name)
        return User.objects.count()


    @autocron.delay
    def connection_closed():
        closed = connection.connection is None             # closed since the last task?
        from django.contrib.auth.models import User
        User.objects.count()
        return closed
"""


@pytest.fixture
def django_project(tmp_path):
    """A Django project in a folder of its own: settings, a tasks module, its tables made."""
    pytest.importorskip("django")
    project = tmp_path / "site"
    (project / "proj").mkdir(parents=True)
    (project / "proj" / "__init__.py").write_text("")
    (project / "proj" / "settings.py").write_text(textwrap.dedent(DJANGO_SETTINGS))
    (project / "proj" / "tasks.py").write_text(textwrap.dedent(DJANGO_TASKS))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="proj.settings",
               PYTHONPATH=os.pathsep.join([str(project), HERE]))
    made = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django."
                           "core.management import call_command; call_command('migrate', "
                           "verbosity=0)"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return project, env


class TestFrameworks:
    """Where users live: Django projects, ASGI and WSGI apps."""

    @pytest.mark.parametrize("argv, environ, reloading", [
        (["manage.py", "runserver", "127.0.0.1:8000"], {}, True),            # the reloader
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),           # its served child
        (["manage.py", "runserver", "--noreload"], {}, False),
        (["manage.py", "migrate"], {}, False),
        (["/venv/bin/uvicorn", "app:app", "--reload"], {}, True),
        (["/venv/lib/python3.12/site-packages/uvicorn/__main__.py", "app:app", "--reload"],
         {}, True),
        (["/venv/bin/uvicorn", "app:app"], {}, False),
        (["/venv/bin/flask", "run", "--debug"], {}, True),
        (["/venv/bin/flask", "run", "--debug", "--no-reload"], {}, False),
        (["/venv/bin/flask", "run"], {"WERKZEUG_RUN_MAIN": "true"}, True),
        (["/venv/bin/gunicorn", "app:app"], {}, False),
        (["app.py"], {"AUTOCRON_RELOAD": "1"}, True),
        (["app.py"], {}, False),
    ])
    def test_a_reloading_development_server_is_recognised(self, argv, environ, reloading):
        assert autocron._reloading(argv, environ) is reloading

    def test_a_pool_handed_over_stops_when_its_reloader_ends_though_its_pid_is_taken(
            self, monkeypatch):
        # review: the manager looked at the reloader's pid alone, which another process may
        # have got since: the pool lived on behind it
        monkeypatch.setattr(autocron, "_LINGER_LOOK", 0.01)
        asked = []

        class Pool:                       # what _outlive asks of the pool: request_stop
            def request_stop(self, timeout):
                asked.append(timeout)
        me = os.getpid()
        autocron._outlive([me, autocron._started_at(me) + 1], Pool())   # its pid, not it
        assert asked == [autocron._LINGER_STOP]
        reloader = subprocess.Popen(["sleep", "60"])
        watch = threading.Thread(target=autocron._outlive, daemon=True, args=(
            [reloader.pid, autocron._started_at(reloader.pid)], Pool()))
        watch.start()
        watch.join(0.5)
        assert watch.is_alive() and len(asked) == 1         # the reloader runs: it goes on
        reloader.kill()
        reloader.wait()
        watch.join(30)
        assert not watch.is_alive() and asked == [autocron._LINGER_STOP] * 2

    @pytest.mark.parametrize("argv, environ, parent, restarted", [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"},
         ["/usr/bin/python3", "manage.py", "runserver"], True),         # the served child
        (["manage.py", "runserver"], {}, ["-bash"], False),    # the reloader never restarts
        # review: a program a development server starts inherits RUN_MAIN; its parent is
        # the server, which runs another command
        (["manage.py", "shell"], {"RUN_MAIN": "true"},
         ["/usr/bin/python3", "manage.py", "runserver"], False),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, None, False),     # no /proc
        (["/venv/bin/flask", "--app", "app", "run", "--debug"], {"WERKZEUG_RUN_MAIN": "true"},
         ["/venv/bin/python", "/venv/bin/flask", "--app", "app", "run", "--debug"], True),
        (["/venv/bin/uvicorn", "app:app", "--reload"], {},
         ["/venv/bin/python", "/venv/bin/uvicorn", "app:app", "--reload"], False),  # no child
        (["app.py"], {"AUTOCRON_RELOAD": "1"}, ["-bash"], False),    # its parent: a shell
        (["app.py"], {}, ["/usr/bin/python3", "app.py"], False),
    ])
    def test_the_process_a_reloader_restarts_is_recognised(self, argv, environ, parent,
                                                            restarted):
        # (uvicorn's server process, a multiprocessing child, is recognised in
        # test_a_reload_neither_waits_for_a_running_call_nor_fails_it)
        assert autocron._restarted_by_reloader(argv, environ, parent) is restarted

    def test_calls_held_by_a_worker_whose_code_changed_run_on_the_new_code(self, tmp_path):
        # review: the worker waited for acknowledgements that only travel with new calls
        (tmp_path / "slowmod.py").write_text("import time\n\n\ndef work(n):\n"
                                             "    time.sleep(1)\n    return n\n")
        done = run_python("""
            import sys, time, autocron
            sys.path.insert(0, sys.argv[2])
            import slowmod
            work = autocron.delay(slowmod.work)
            autocron.start(sys.argv[1], workers=1)
            results = [work(i) for i in range(6)]
            time.sleep(1.5)
            with open(slowmod.__file__, "a") as source:
                source.write("# edited\\n")
            print([r.get(timeout=30) for r in results])
            print(sorted(r.attempts for r in results))
        """, tmp_path / "a.db", tmp_path, env=dict(os.environ, AUTOCRON_RELOAD="1",
                                                   PYTHONPATH=os.pathsep.join([HERE] +
                                                                              sys.path)),
            timeout=120)
        assert done.stdout.splitlines() == ["[0, 1, 2, 3, 4, 5]", "[1, 1, 1, 1, 1, 1]"], \
            done.stderr

    @pytest.mark.slow
    def test_runserver_runs_the_new_code_after_an_edit(self, tmp_path):
        pytest.importorskip("django")
        site = tmp_path / "site"
        for folder in ("proj", "jobs"):
            (site / folder).mkdir(parents=True)
            (site / folder / "__init__.py").write_text("")
        (site / "manage.py").write_text(textwrap.dedent("""
            import sys
            from django.core.management import execute_from_command_line
            execute_from_command_line(sys.argv)
        """))
        (site / "proj" / "settings.py").write_text(textwrap.dedent("""
            SECRET_KEY = "test"
            DEBUG = True
            ALLOWED_HOSTS = ["127.0.0.1"]
            ROOT_URLCONF = "proj.urls"
            INSTALLED_APPS = ["jobs"]
            DATABASES = {}
        """))
        (site / "proj" / "urls.py").write_text(textwrap.dedent("""
            from django.http import HttpResponse
            from django.urls import path


            def call(request, name):
                from jobs import tasks
                return HttpResponse(getattr(tasks, name)().get(timeout=20))


            urlpatterns = [path("call/<name>", call)]
        """))
        (site / "jobs" / "apps.py").write_text(readme_file("jobs/apps.py"))      # as written
        tasks = site / "jobs" / "tasks.py"
        tasks.write_text(readme_file("jobs/tasks.py"))
        port = free_tcp_port()
        serve_edit_and_ask(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], port, site,
            dict(os.environ, DJANGO_SETTINGS_MODULE="proj.settings", PYTHONPATH=HERE), tasks,
            site / "jobs" / "jobs.db")

    @pytest.mark.slow
    def test_uvicorn_reload_runs_the_new_code_after_an_edit(self, tmp_path):
        uvicorn, site, port = dev_server_site(tmp_path, "uvicorn", readme_file("app.py"))
        tasks = site / "tasks.py"
        tasks.write_text(readme_file("jobs/tasks.py"))
        serve_edit_and_ask([uvicorn, "app:app", "--reload", "--port", str(port), "--reload-dir",
                            str(site)], port, site, dict(os.environ, PYTHONPATH=HERE), tasks,
                           site / "jobs.db")

    @pytest.mark.slow
    def test_flask_debug_runs_the_new_code_after_an_edit(self, tmp_path):
        flask, site, port = dev_server_site(tmp_path, "flask", textwrap.dedent("""
            import os

            from flask import Flask

            import autocron
            import tasks

            autocron.start(os.path.join(os.path.dirname(__file__), "jobs.db"), workers=2)
            app = Flask(__name__)


            @app.get("/call/<name>")
            def call(name):
                return getattr(tasks, name)().get(timeout=20)
        """))
        tasks = site / "tasks.py"
        tasks.write_text(readme_file("jobs/tasks.py"))
        serve_edit_and_ask([flask, "--app", "app", "run", "--debug", "--port", str(port)],
                           port, site, dict(os.environ, PYTHONPATH=HERE), tasks,
                           site / "jobs.db")

    @pytest.mark.slow
    def test_a_reload_neither_waits_for_a_running_call_nor_fails_it(self, tmp_path):
        # uvicorn's server process owns the pool and ends at each reload: it hands the pool
        # to its manager, whose workers then run the next process's calls on the new code
        uvicorn, site, port = dev_server_site(tmp_path, "uvicorn", readme_file("app.py"))
        tasks = site / "tasks.py"
        tasks.write_text(textwrap.dedent(GATED_TASKS).replace("VERSION", "v1"))
        database, gate = site / "jobs.db", tmp_path / "gate"
        server = start_server([uvicorn, "app:app", "--reload", "--port", str(port),
                               "--reload-dir", str(site)], site,
                              dict(os.environ, PYTHONPATH=HERE))
        base = f"http://127.0.0.1:{port}/call/"
        try:
            assert wait_for_answer(base + "version", "v1") == "v1"
            stored = run_python("""
                import sys, autocron, tasks
                autocron.start(sys.argv[1], workers=0)
                print(tasks.gated(sys.argv[2]).uuid)
            """, database, gate, cwd=site, env=dict(os.environ, PYTHONPATH=HERE))
            uid = stored.stdout.strip()
            assert stored.returncode == 0 and uid, stored.stderr
            running = autocron.get_result(uid, database=database)
            wait_until(lambda: running.status == "running", 30, "the gated call to start")
            first = served_by(server)
            time.sleep(1.5)      # a real edit comes after the reloader's first look
            tasks.write_text(textwrap.dedent(GATED_TASKS).replace("VERSION", "v2"))
            wait_until(lambda: served_by(server) not in (None, first), 60, "the reload")
            assert running.status == "running"      # the reload did not wait for it
            assert wait_for_answer(base + "version", "v2", timeout=60) == "v2"
            gate.write_text("")
            assert running.get(timeout=30) == "gated v1"        # nor fail it: its old code
            assert running.attempts == 1
        finally:
            end_server(server)
        store = autocron._open_store(database)
        wait_until(lambda: not store.pool_running(), 30, "no pool left behind")

    @pytest.mark.parametrize("argv, environ, starts", [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),          # its serving child
        (["manage.py", "runserver"], {}, False),                           # its reloader
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "shell"], {}, True),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "test"], {}, False),
        (["/venv/bin/django-admin", "check"], {}, False),
        (["/venv/bin/gunicorn", "proj.wsgi"], {}, True),
        (["/venv/bin/uvicorn", "proj.asgi:application"], {}, True),
    ])
    def test_the_django_backend_starts_the_pool_in_server_processes_only(self, argv, environ,
                                                                         starts):
        assert autocron._django_starts(argv, environ) is starts

    def test_django_is_imported_only_when_its_backend_is_asked_for(self):
        done = run_python("""
            import sys, autocron
            print("django" in sys.modules)
            import django
            try:
                autocron.DjangoBackend
            except ImportError as error:      # Django before 6 has no tasks framework
                assert django.VERSION < (6,) and str(error) == (
                    "autocron.DjangoBackend needs Django 6 or later (its tasks framework, "
                    f"django.tasks); this is Django {django.__version__}. Call autocron's "
                    "@delay functions directly instead"), error
            print("django" in sys.modules)
            try:
                autocron.NoSuchThing
            except AttributeError as error:
                print(error)
        """)
        assert done.stdout.splitlines() == [
            "False", "True", "module 'autocron' has no attribute 'NoSuchThing'"], done.stderr

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="Django 6 (django.tasks) needs "
                        "Python 3.12 or later")
    def test_django_s_own_tasks_run_on_autocron(self, tmp_path):
        pytest.importorskip("django.tasks")
        site = tmp_path / "site"
        (site / "proj").mkdir(parents=True)
        (site / "proj" / "__init__.py").write_text("")
        (site / "proj" / "settings.py").write_text(textwrap.dedent("""
            import os
            SECRET_KEY = "test"
            USE_TZ = True
            INSTALLED_APPS = []
            DATABASES = {}
            TASKS = {"default": {"BACKEND": "autocron.DjangoBackend", "OPTIONS": {
                "database": os.path.join(os.path.dirname(__file__), "jobs.db"),
                "workers": 1}}}
        """))
        (site / "proj" / "tasks.py").write_text(textwrap.dedent("""
            import os
            from django.dispatch import receiver
            from django.tasks import task
            from django.tasks.signals import task_finished, task_started


            @task
            def add(a, b):
                return {"sum": a + b}


            @task(priority=5)
            async def shout(text):
                return text.upper()


            @task(takes_context=True)
            def attempt(context):
                return [context.attempt, context.task_result.id]


            @task
            def broken():
                raise KeyError("missing")


            @task
            def lost():
                os._exit(3)


            @receiver(task_started)
            @receiver(task_finished)
            def heard(sender, task_result, **kwargs):     # sent in the worker
                with open(os.environ["HEARD"], "a") as file:
                    file.write(f"{task_result.task.name} {task_result.status}\\n")
                with open(os.environ["HEARD"].replace("heard", "errors"), "a") as file:
                    for error in task_result.errors:      # this attempt's, in the worker
                        file.write(f"{task_result.task.name} {task_result.status} "
                                   f"{error.exception_class.__name__}\\n")
        """))
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="proj.settings", HEARD=str(tmp_path /
                   "heard.log"), PYTHONPATH=os.pathsep.join([str(site), HERE]))
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import datetime, json, time, django
            django.setup()
            import autocron
            from django.tasks.signals import task_enqueued
            from proj import tasks
            enqueued = []

            def on_enqueued(sender, task_result, **kwargs):       # sent in the caller
                enqueued.append(task_result.id)
            task_enqueued.connect(on_enqueued)

            def finished(result):
                while not result.is_finished:
                    time.sleep(0.05)
                    result.refresh()
                return result

            added = tasks.add.enqueue(2, b=3)
            print(added.status, type(autocron.get_result(added.id)).__name__)
            print(json.dumps(finished(added).return_value), added.attempts)
            print(finished(tasks.shout.enqueue("hi")).return_value)
            attempt = finished(tasks.attempt.enqueue())
            print(attempt.return_value == [1, attempt.id])
            broken = finished(tasks.broken.enqueue())
            print(broken.status, broken.errors[0].exception_class.__name__, len(broken.errors))
            lost = finished(tasks.lost.enqueue())
            print(lost.status, lost.errors[0].exception_class_path, len(lost.errors))
            later = tasks.add.using(run_after=datetime.datetime.now(datetime.timezone.utc)
                                    + datetime.timedelta(hours=1)).enqueue(1, 1)
            print(tasks.add.get_result(later.id).status)
            print(len(enqueued))
            try:
                tasks.add.get_result("nope-1")
            except Exception as error:
                print(type(error).__name__)
        """)], cwd=site, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "READY Result", '{"sum": 5} 1', "HI", "True", "FAILED KeyError 1",
            "FAILED autocron.WorkerLost 1", "READY", "6", "TaskResultDoesNotExist"], done.stdout
        heard = (tmp_path / "heard.log").read_text().splitlines()
        assert "add RUNNING" in heard and "add SUCCESSFUL" in heard and "broken FAILED" in heard
        assert "broken FAILED KeyError" in (tmp_path / "errors.log").read_text()

    @pytest.mark.skipif(sys.version_info < (3, 12), reason="Django 6 (django.tasks) needs "
                        "Python 3.12 or later")
    def test_django_s_tasks_enqueued_inside_atomic_commit_or_roll_back_with_it(
            self, tmp_path, pg):
        pytest.importorskip("django.tasks")
        site = tmp_path / "site"
        (site / "proj").mkdir(parents=True)
        (site / "proj" / "__init__.py").write_text("")
        (site / "proj" / "settings.py").write_text(textwrap.dedent(f"""
            SECRET_KEY = "test"
            USE_TZ = True
            INSTALLED_APPS = []
            DATABASES = {{"default": {{
                "ENGINE": "django.db.backends.postgresql", "NAME": {pg.database!r},
                "USER": {pg.user!r}, "PASSWORD": {pg.password!r}, "HOST": {pg.host!r},
                "PORT": {pg.port!r}}}}}
            TASKS = {{"default": {{"BACKEND": "autocron.DjangoBackend", "OPTIONS": {{
                "database": {pg_url(pg)!r}, "workers": 1}}}}}}
        """))
        (site / "proj" / "tasks.py").write_text(textwrap.dedent("""
            from django.tasks import task


            @task
            def add(a, b):
                return a + b
        """))
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import time, django
            django.setup()
            import autocron
            from django.db import transaction
            from proj import tasks
            with transaction.atomic():
                kept = tasks.add.enqueue(1, 2)
                print(autocron.get_result(kept.id))          # not committed: unseen
            try:
                with transaction.atomic():
                    dropped = tasks.add.enqueue(3, 4)
                    raise RuntimeError("the order failed")
            except RuntimeError:
                pass
            print(autocron.get_result(dropped.id))           # rolled back with it
            while not kept.is_finished:
                time.sleep(0.05)
                kept.refresh()
            print(kept.return_value)
            print(tasks.add.enqueue(5, 6).status)            # outside atomic: at once
        """)], cwd=site, env=dict(os.environ, DJANGO_SETTINGS_MODULE="proj.settings",
                                  PYTHONPATH=os.pathsep.join([str(site), HERE])),
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["None", "None", "3", "READY"], done.stdout

    def test_django_s_orm_works_in_tasks_and_connections_close_between_them(
            self, django_project):
        project, env = django_project
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import django, autocron
            django.setup()
            from proj import tasks
            autocron.start("jobs.db", workers=1)
            print(tasks.add_user("ada").get(timeout=60), tasks.add_user("bob").get(timeout=60))
            print(tasks.connection_closed().get(timeout=60),
                  tasks.connection_closed().get(timeout=60))
            autocron.stop()
        """)], cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", "2", "True", "True"]


GATED_TASKS = """
    import os
    import time

    import autocron


    @autocron.delay
    def version():
        return "VERSION"


    @autocron.delay
    def gated(gate):
        while not os.path.exists(gate):
            time.sleep(0.05)
        return "gated VERSION"
"""


RELOADED_TASKS_V2 = """
    import autocron


    @autocron.delay
    def version():
        return "v2"


    @autocron.delay
    def added():
        return "added"
"""


def run_readme_example(folder, name):
    """Run the README's example `name` as written, as a script in `folder`; it must end well."""
    (folder / name).write_text(readme_file(name))
    done = run_python(f"import runpy; runpy.run_path({name!r}, run_name='__main__')",
                      cwd=folder, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def readme_file(name):
    """The README's code block that starts with the line "# <name>", as written (the
    examples of its Django and ASGI sections, which the tests run)."""
    for block in re.findall(r"```python\n(.*?)```", Path(HERE, "README.md").read_text(),
                            re.S):
        first, _, rest = block.partition("\n")
        if first == f"# {name}":
            return rest
    raise AssertionError(f"the README has no example # {name}")


def wait_for_answer(url, expected, timeout=60.0):
    """Poll `url` until it answers `expected` (200); the last answer otherwise."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=30) as answer:
                last = answer.read().decode()
                if last == expected:
                    return last
        time.sleep(0.2)
    return last


def serve_edit_and_ask(command, port, site, env, tasks, database):
    """Run a reloading development server of `site` whose /call/NAME answers tasks.NAME();
    edit `tasks` (version v1 to v2, a function added) while it serves: the next calls run
    the new code. Afterwards no pool is left for `database`."""
    server = start_server(command, cwd=site, env=env)
    base = f"http://127.0.0.1:{port}/call/"
    try:
        assert wait_for_answer(base + "version", "v1") == "v1"
        served = set(children_of().get(server.pid, []))      # the process it serves from

        def restarted():
            return set(children_of().get(server.pid, [])) != served
        before = os.stat(tasks).st_mtime
        tasks.write_text(textwrap.dedent(RELOADED_TASKS_V2))
        # The server's own reloader (Django's looks once a second) takes the first
        # modification time it sees of a file for the file's own: one that first looked
        # after the edit (Django's first call imports the module) restarts at the next edit
        # only. A real edit comes seconds after the first call; here the file is touched
        # again (a newer modification time, whatever its grain) while the server has not
        # begun to restart the process it serves from, 1.5, 3, 6 ... s after the last touch.
        stamp, end, look = before, time.monotonic() + 30, 1.5
        while not restarted() and time.monotonic() < end:
            stamp += 2
            os.utime(tasks, (stamp, stamp))
            touched = time.monotonic()
            while not restarted() and time.monotonic() < touched + look:
                time.sleep(0.05)
            look *= 2
        assert wait_for_answer(base + "added", "added", timeout=30) == "added"
        assert wait_for_answer(base + "version", "v2", timeout=30) == "v2"
    finally:
        end_server(server)
    store = autocron._open_store(database)
    wait_until(lambda: not store.pool_running(), what="no pool left behind")


def dev_server_site(tmp_path, tool, app):
    """A development server's program in this environment (skipped where the test extra is
    not installed), a site folder holding `app` as app.py, and a free port."""
    program = os.path.join(os.path.dirname(sys.executable), tool)
    if not os.path.exists(program):
        pytest.skip(f"{tool} is not installed (the test extra has it)")
    site = tmp_path / "site"
    site.mkdir()
    (site / "app.py").write_text(app)
    return program, site, free_tcp_port()


def served_by(server):
    """The pid of the process that a reloading server (uvicorn --reload) serves from: its
    multiprocessing child; None between two."""
    listed = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(server.pid)],
                            capture_output=True, text=True).stdout
    found = [int(line.split()[0]) for line in listed.splitlines()
             if "multiprocessing.spawn" in line]
    return found[0] if found else None


# A development server is ended as a terminal's Ctrl-C ends it (end_server). Tests started
# in the background of a script (`pytest &`: a shell without job control ignores SIGINT in
# what it starts so) pass SIGINT ignored on to every program they start: Django's and
# Flask's reloaders then never saw the Ctrl-C, and end_server waited 30 s and killed them.
# The server gets SIGINT's default back before its program starts (an exec: one process).
WITH_CTRL_C = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])")


def start_server(command, cwd, env):
    """Start a development server in a session of its own, as a terminal would (Ctrl-C
    ends it); end it with end_server."""
    return subprocess.Popen([sys.executable, "-c", WITH_CTRL_C, *command], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def end_server(server):
    """End a development server and what it started (its reloader's child too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)


class Chaos:
    """Producers and two pools under every fault at once, from a seed (AUTOCRON_CHAOS_SEED,
    else random; printed in every failure with the faults injected, (seconds, fault) each).

    What the end must show, once the faults stopped and everything is healthy again:

    - a call is acknowledged when the producer's call returned its Result (its id written
      down after that); one that raised DatabaseError is not, and it must either be absent
      (no row, no run) or, stored all the same, be held to the rules below like the others;
    - every acknowledged call has exactly one row, with its own id;
    - no call is stuck: within a generous timeout every row is 'ready' or 'error';
    - exactly once: a call ends once, with one outcome; a 'ready' one holds its own value
      (its key) and at least one run of it reached its end. A run is the task's work
      between its "start" and "end" lines in the log outside the database. A worker killed
      while it runs a task (kill -9 of the worker, of its manager or owner, or the machine
      lost: paused past its lease) makes that attempt end: it counts, and the task runs
      again while it has retries left (the tasks have retries=3; one call in four has none).
      So a call may start several times, but never more often than the attempts the
      database counted for it (a run nobody counted is a run twice), never more attempts
      than its retries allow, and it ends 'error' only with such an interruption as its
      error, after its last attempt (its work itself cannot fail). A run that reached its
      "end" line before its worker was killed may thus be followed by another: that is
      the at-least-once of an interrupted attempt, not a second outcome;
    - no process of the run is left once its owners were told to stop: no owner, manager,
      worker or producer, nor anything else that works in the run's folder.
    """

    # seconds of faults (and of calls), and of the gaps between two: a storm brings about
    # as many faults as 35 s with gaps of 0.8 to 2.5 s did (about 19), more of them at once
    DURATION = 20.0
    GAP = (0.45, 1.45)

    def storm(self, storm, runner, pools):
        """Run a storm to its end and check it; a failure shows the seed and the faults."""
        problems = []
        try:
            if not storm.wait(lambda: storm.ready(pools), 60):
                raise AssertionError(f"no {pools} pool(s) with two workers came up")
            for n in range(2):
                storm.produce(n, self.DURATION)
            storm.t0 = time.time()
            runner.run(storm.supervise)
            runner.note("faults over: everything healthy again")
            if not storm.wait(storm.producers_done, 60):
                problems.append("the producers did not end within 60 s of the last fault")
            elif not storm.wait(lambda: storm.unfinished() == 0, 60):
                problems.append(f"{storm.unfinished()} calls unfinished 60 s after the last "
                                "call (listed below as stuck)")
            runner.note("every call finished" if not problems else "gave up waiting")
            problems += storm.problems()
            storm.before_stop = storm.summary()      # the machines table is gone after
            storm.shut_down(30)
            runner.note("owners told to stop")
            left = storm.leftovers()
            if left:
                problems.append(f"processes left after every owner stopped: {left}")
        except Exception as error:
            problems.append(f"the test itself failed: {error!r}")
            raise AssertionError(storm.report(runner, problems)) from error
        if problems:
            pytest.fail(storm.report(runner, problems), pytrace=False)

    def pick(self, storm, rng, role, names=None):
        """A live (name, pid) of a worker, manager or owner of a running pool, or None."""
        tree = children_of()
        found = []
        for name in names or sorted(storm.slots):
            owner, manager, workers = storm.pool(name, tree)
            if manager:
                found += [(name, pid) for pid in {"owner": [owner], "manager": [manager],
                                                  "worker": sorted(workers)}[role]]
        return rng.choice(found) if found else None

    def kill(self, storm, role):
        def inject(rng):
            victim = self.pick(storm, rng, role)
            if victim is None:
                return f"kill -9 {role}: none running", None
            storm.signal([victim[1]], signal.SIGKILL)
            return f"kill -9 {role} {victim[1]} of {victim[0]}", None
        return inject

    def pause(self, storm, role):
        def inject(rng):
            victim = self.pick(storm, rng, role)
            if victim is None:
                return f"SIGSTOP {role}: none running", None
            stopped = storm.signal([victim[1]], signal.SIGSTOP)
            storm.stopped.update(stopped)

            def undo():
                storm.stopped.difference_update(stopped)
                return f"SIGCONT {role} {storm.signal(stopped, signal.SIGCONT)} of {victim[0]}"
            return f"SIGSTOP {role} {victim[1]} of {victim[0]}", undo
        return inject


class TestChaosSqlite(Chaos):
    """The storm on an SQLite file (a class of its own: it runs beside the other one)."""

    @pytest.mark.slow
    def test_sqlite_full_disk_kills_and_pauses(self, small_disk, tmp_path):
        """Two owners on one database file on a small disk (one owns the pool, the other
        stands by; a killed one is replaced), two producers; faults: the disk filled and
        freed, kill -9 of workers, managers and owners, SIGSTOP/SIGCONT of a manager or a
        worker. About a minute."""
        seed = chaos_seed()
        storm = Storm(tmp_path, small_disk.path("chaos.db"))
        autocron._SqliteStore(storm.database).close()
        storm.slot("first")
        storm.slot("second")

        def fill(rng):
            small_disk.fill()
            return "disk filled", lambda: small_disk.free() or "disk freed"
        runner = ChaosRunner(seed, {
            "fill disk": Fault(2, fill, (1.0, 4.0), "disk"),
            "kill worker": Fault(3, self.kill(storm, "worker")),
            "kill manager": Fault(2, self.kill(storm, "manager")),
            "kill owner": Fault(2, self.kill(storm, "owner")),
            "stop manager": Fault(1, self.pause(storm, "manager"), (1.0, 4.0), "stop"),
            "stop worker": Fault(1, self.pause(storm, "worker"), (1.0, 4.0), "stop"),
        }, self.DURATION, self.GAP)
        try:
            self.storm(storm, runner, pools=1)
        finally:
            runner.heal()
            small_disk.free()
            storm.kill_everything()


class TestChaosPostgres(Chaos):
    """The storm on a PostgreSQL server (a class of its own: it runs beside the other one)."""

    @pytest.mark.slow
    def test_postgresql_restarts_network_faults_pauses_and_kills(self, own_postgres,
                                                                  tcp_proxy, tmp_path):
        """Two machines (each an owner with its own host name and pool, leases of 3 s) and
        two producers, all through a TCP proxy; faults: the server restarted, connections
        dropped, delayed or held (blackhole) for a few seconds, a whole machine (owner,
        manager, workers) paused longer than its lease, kill -9 of workers, managers and
        owners (a killed owner is started again, as a service manager would). About a
        minute."""
        seed, server = chaos_seed(), own_postgres
        direct = server.url(schema="chaos")
        proxy = tcp_proxy((server.host, server.port))
        through = direct.replace(f":{server.port}/", f":{proxy.port}/")
        autocron._open_store(direct).close()
        close_postgres_connections()
        lease = 3.0
        storm = Storm(tmp_path, through, direct, lease=lease)
        storm.slot("a", machine=True)
        storm.slot("b", machine=True)

        def restart(rng):
            server.halt()
            return "server halted", lambda: server.resume() or "server resumed"

        def drop(rng):
            return f"proxy dropped {proxy.drop()} connections", None

        def delay(rng):
            latency = round(rng.uniform(0.05, 0.5), 2)
            proxy.delay(latency)
            return f"proxy delays each chunk {latency} s", \
                lambda: proxy.pass_through() or "proxy passes again"

        def blackhole(rng):
            proxy.blackhole()
            return "proxy blackhole", lambda: proxy.pass_through() or "proxy passes again"

        def stop_machine(rng):
            name = rng.choice(sorted(storm.slots))
            stopped, tree = [], storm.tree(storm.slots[name][0].pid)
            while set(tree) - set(stopped):      # the owner first: it then starts nothing
                stopped += storm.signal([p for p in tree if p not in stopped], signal.SIGSTOP)
                tree = [p for p in storm.tree(storm.slots[name][0].pid) if alive(p)]
            storm.stopped.update(stopped)

            def undo():
                storm.stopped.difference_update(stopped)
                return f"SIGCONT machine {name}: {storm.signal(stopped, signal.SIGCONT)}"
            return f"SIGSTOP machine {name}: {stopped}", undo
        runner = ChaosRunner(seed, {
            "restart server": Fault(1, restart, (1.0, 4.0), "server"),
            "proxy drop": Fault(1, drop, (0, 0), "proxy"),
            "proxy delay": Fault(1, delay, (2.0, 5.0), "proxy"),
            "proxy blackhole": Fault(1, blackhole, (1.0, 4.0), "proxy"),
            "stop machine": Fault(1.5, stop_machine, (lease + 1, lease + 3), "machine"),
            "kill worker": Fault(2, self.kill(storm, "worker")),
            "kill manager": Fault(1, self.kill(storm, "manager")),
            "kill owner": Fault(1, self.kill(storm, "owner")),
        }, self.DURATION, self.GAP)
        try:
            self.storm(storm, runner, pools=2)
        finally:
            runner.heal()
            proxy.pass_through()
            storm.kill_everything()
            close_postgres_connections()
