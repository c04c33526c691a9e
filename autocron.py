"""autocron: durable background tasks and cron jobs for Python, standard library only.

One file, no broker, no separate consumer: the application starts its own pool of worker
processes, SQLite keeps the tasks, and a notebook works as well as a script::

    import autocron

    @autocron.delay
    def send_mail(to, text):
        ...

    @autocron.cron("30 9 * * 1,3")          # Monday and Wednesday at 09:30
    def weekly_report():
        ...

    autocron.start("autocron.db", workers=2)
    result = send_mail("ada@example.org", "hello")   # stored, returns at once
    result.get(timeout=10)

This section of the module is the cron engine, `CronExpression`: a pure, exact evaluator of
standard five-field cron expressions (Vixie/Debian semantics, with the extensions L, LW, nW,
nL and n#k) that never reads the clock itself.
"""

from __future__ import annotations

__version__ = "2.0.0.dev0"

__all__ = [
    "CronExpression",
    "AutocronError",
    "CronError",
]

import calendar
import datetime as _dt
import re
from bisect import bisect_left
from typing import Iterable, Iterator, Optional, Union

try:  # zoneinfo arrived in Python 3.9; a build without tzdata still imports the module
    import zoneinfo as _zoneinfo
except ImportError:  # pragma: no cover - Python 3.9+ always has it
    _zoneinfo = None


# ==============================================================================================
# Constants
# ==============================================================================================

_MINUTE = _dt.timedelta(minutes=1)
_UTC = _dt.timezone.utc

# A next fire time is searched at most this many years ahead. Any expression that passes the
# parse-time check fires within 41 years on a naive clock (cron-spec.md section 6.3); the limit
# only ends a search for a wildcard job whose every match falls into a daylight-saving gap.
_SEARCH_YEARS = 50
_MAX_EXPRESSION = 1024
_MAX_NUMBER_DIGITS = 10


# ==============================================================================================
# Exceptions
# ==============================================================================================


class AutocronError(Exception):
    """Base class of every error autocron raises on purpose."""


class CronError(AutocronError, ValueError):
    """A cron expression is malformed, out of range or can never fire.

    The message names the field, quotes the bad part and says how to fix it; `field` and
    `token` carry the same facts for programs.
    """

    def __init__(self, message: str, field: str = "", token: str = ""):
        super().__init__(message)
        self.field = field
        self.token = token


# ==============================================================================================
# Cron expressions
# ==============================================================================================
#
# An expression is parsed into five sorted value tuples plus the day-of-month extensions (L,
# LW, nW) and the day-of-week extensions (nL, n#k). Which days of a month match depends only on
# the month's length and the weekday of its 1st, so the matching days are computed once per
# such pair (at most 28 pairs) and iteration walks years -> months -> matching days -> hours ->
# minutes over precomputed tuples. Time zones are handled per local day: a day without a
# daylight-saving transition maps wall-clock times to instants one to one; a day with one gets
# its fire instants worked out exactly and sorted (cron-spec.md section 7.4).

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_WORDS = tuple(calendar.month_name[1:])
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest length per month
_ORDINALS = ("", "first", "second", "third", "fourth", "fifth")

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_NUMBER = re.compile(r"[0-9]+\Z")
_NAME = re.compile(r"[A-Z]+\Z")
_NEAREST_WEEKDAY = re.compile(r"([0-9]+)W\Z")
_LAST_WEEKDAY = re.compile(r"([0-9]+|[A-Z]+)L\Z")
_NTH_WEEKDAY = re.compile(r"([0-9]+|[A-Z]+)#(.*)\Z")
_ITEM_CHARS = re.compile(r"[0-9A-Za-z*/,#?-]*\Z")


class _Field:
    """What one field of the five is called, which values it takes and how to hint at it."""

    __slots__ = ("index", "name", "low", "high", "names", "hint")

    def __init__(self, index, name, low, high, names, hint):
        self.index, self.name, self.low, self.high = index, name, low, high
        self.names, self.hint = names, hint


_FIELDS = (
    _Field(0, "minute", 0, 59, None,
           "write a number 0-59, a range like 10-20, a step like */15 or a list like 0,30"),
    _Field(1, "hour", 0, 23, None,
           "write a number 0-23, a range like 8-17, a step like */2 or a list like 9,17"),
    _Field(2, "day-of-month", 1, 31, None,
           "write a number 1-31, a range like 1-15, a step like */2, a list like 1,15, "
           "L (last day), LW (last weekday) or 15W (weekday nearest the 15th)"),
    _Field(3, "month", 1, 12, _MONTH_NAMES,
           "write a number 1-12 or a name JAN-DEC, a range like JAN-MAR or a list like 1,7"),
    _Field(4, "day-of-week", 0, 7, _DAY_NAMES,
           "write a number 0-7 (0 and 7 are Sunday) or a name SUN-SAT, a range like MON-FRI, "
           "a list like 1,3, 5L (last Friday) or 1#2 (second Monday)"),
)


def _fail(field: _Field, message: str, token: str) -> CronError:
    return CronError(f"{field.name}: {message}", field.name, token)


def _quote(token: str) -> str:
    """Quote user text for a message, shortened so a megabyte of input cannot flood it."""
    return repr(token if len(token) <= 24 else token[:20] + "...")


def _read_number(field: _Field, text: str, item: str, allow_names: bool = True) -> int:
    """One value of a field: ASCII digits or (month, day of week) a three-letter name."""
    if _NUMBER.match(text):
        if len(text) > _MAX_NUMBER_DIGITS:
            raise _fail(field, f"number {_quote(text)} is too long; {field.hint}", item)
        value = int(text)
        if not field.low <= value <= field.high:
            raise CronError(f"{field.name} {value} is out of range {field.low}-{field.high}",
                            field.name, item)
        return value
    if _NAME.match(text) and allow_names:
        return _read_name(field, text, item)
    raise _fail(field, f"cannot read {_quote(item)}; {field.hint}", item)


def _read_name(field: _Field, name: str, item: str) -> int:
    if field.names and name in field.names:
        return field.names.index(name) + (1 if field.names is _MONTH_NAMES else 0)
    if field.names is _MONTH_NAMES and name in _DAY_NAMES:
        raise _fail(field, f"{_quote(name)} is a day name; day names belong in the "
                           "day-of-week (fifth) field", item)
    if field.names is _DAY_NAMES and name in _MONTH_NAMES:
        raise _fail(field, f"{_quote(name)} is a month name; month names belong in the "
                           "month (fourth) field", item)
    if field.names is None:
        raise _fail(field, f"names are not allowed here ({_quote(name)}); use numbers "
                           f"{field.low}-{field.high}", item)
    first, last = field.names[0], field.names[-1]
    raise _fail(field, f"unknown name {_quote(name)}; use {first}-{last} or numbers "
                       f"{field.low}-{field.high}", item)


def _reversed_range_hint(field: _Field, a: int, b: int, left: str, right: str) -> str:
    if field.index == 4 and b == 0:
        names = ",".join(_DAY_NAMES[a:]) + ",SUN"
        return (f"range {left}-{right} is reversed (SUN is 0); write {left}-7 or "
                f"{names if left.isalpha() else ','.join(map(str, range(a, 7))) + ',0'}")
    high = 7 if field.index == 4 else field.high
    low = 1 if field.index == 4 else field.low
    head = f"{left}-{high}" if a < high else left
    tail = f"{low}-{right}" if b > low else right
    return f"range {left}-{right} is reversed; write it as {head},{tail}"


def _read_step(field: _Field, text: str, item: str) -> int:
    if not _NUMBER.match(text):
        what = "is missing" if not text else f"must be a number, got {_quote(text)}"
        raise _fail(field, f"step in {_quote(item)} {what}; write it like */15", item)
    if len(text) > _MAX_NUMBER_DIGITS:
        raise _fail(field, f"step {_quote(text)} is too long", item)
    step = int(text)
    if step < 1:
        raise _fail(field, f"step must be at least 1 in {_quote(item)}", item)
    return step


def _read_range(field: _Field, item: str) -> range:
    """An ordinary item: `*`, `a`, `a-b`, each optionally with `/step` (`a/n` is `a-MAX/n`)."""
    base, slash, step_text = item.partition("/")
    step = _read_step(field, step_text, item) if slash else 1
    high = field.high
    if base == "*":
        return range(field.low, high + 1, step)
    if not base:
        raise _fail(field, f"a value is missing before '/' in {_quote(item)}; {field.hint}",
                    item)
    left, dash, right = base.partition("-")
    if not dash:
        start = _read_number(field, left, item)
        return range(start, (high if slash else start) + 1, step)
    if not left or not right:
        side = "start" if not left else "end"
        raise _fail(field, f"range {_quote(item)} is missing its {side}; {field.hint}", item)
    a, b = _read_number(field, left, item), _read_number(field, right, item)
    if a > b:
        raise _fail(field, _reversed_range_hint(field, a, b, left, right), item)
    return range(a, b + 1, step)


class _Spec:
    """The parsed fields of one expression (value tuples and day extensions)."""

    __slots__ = ("minutes", "hours", "doms", "months", "dows", "last_day", "last_weekday",
                 "nearest", "last_dows", "nth_dows", "dom_star", "dow_star", "wildcard",
                 "texts")

    def __init__(self):
        self.last_day = self.last_weekday = False
        self.nearest: set = set()       # nW: n
        self.last_dows: set = set()     # nL: weekday (0 = Sunday)
        self.nth_dows: set = set()      # n#k: (weekday, k)


def _parse_dom_item(spec: _Spec, field: _Field, item: str, values: set) -> None:
    if item == "L":
        spec.last_day = True
    elif item == "LW":
        spec.last_weekday = True
    elif _NEAREST_WEEKDAY.match(item):
        number = item[:-1]
        spec.nearest.add(_read_number(field, number, item, allow_names=False))
    elif item.startswith("L-"):
        raise _fail(field, f"offsets from the last day ({_quote(item)}) are not "
                           "supported; use L for the last day of the month", item)
    elif ("L" in item or "W" in item) and ("-" in item or "/" in item):
        raise _fail(field, f"'L' and 'W' cannot be used in a range or with a step "
                           f"({_quote(item)}); {field.hint}", item)
    else:
        values.update(_read_range(field, item))


def _parse_dow_item(spec: _Spec, field: _Field, item: str, values: set) -> None:
    last, nth = _LAST_WEEKDAY.match(item), _NTH_WEEKDAY.match(item)
    if item == "L":
        raise _fail(field, "'L' needs a weekday, e.g. 5L for the last Friday of the month",
                    item)
    if last and item not in _MONTH_NAMES:
        spec.last_dows.add(_read_number(field, last.group(1), item) % 7)
    elif nth:
        day = _read_number(field, nth.group(1), item) % 7
        k = nth.group(2)
        if not (len(k) == 1 and k in "12345"):
            raise _fail(field, f"nth must be 1-5 in {_quote(item)} (1#2 is the second "
                               "Monday of the month)", item)
        spec.nth_dows.add((day, int(k)))
    elif ("L" in item or "#" in item) and ("-" in item or "/" in item):
        raise _fail(field, f"'L' and '#' cannot be used in a range or with a step "
                           f"({_quote(item)}); {field.hint}", item)
    else:
        values.update(v % 7 for v in _read_range(field, item))


def _parse_field(spec: _Spec, field: _Field, text: str) -> tuple:
    """The sorted values of one field; day extensions go into `spec`."""
    if text == "*":
        return tuple(range(field.low, min(field.high, 6 if field.index == 4 else 99) + 1))
    if "?" in text:
        if text == "?" and field.index in (2, 4):
            return _parse_field(spec, field, "*")
        raise _fail(field, "'?' is only allowed as the entire day-of-month or day-of-week "
                           f"field, got {_quote(text)}", text)
    if not _ITEM_CHARS.match(text):
        bad = next(ch for ch in text if not _ITEM_CHARS.match(ch))
        raise _fail(field, f"unexpected character {bad!r} in {_quote(text)}; {field.hint}",
                    text)
    values: set = set()
    upper = text.upper()
    for item in upper.split(","):
        if not item:
            raise _fail(field, f"empty list item in {_quote(text)}; separate values with "
                               "single commas", text)
        if field.index == 2:
            _parse_dom_item(spec, field, item, values)
        elif field.index == 4:
            _parse_dow_item(spec, field, item, values)
        else:
            values.update(_read_range(field, item))
    return tuple(sorted(values))


def _check_characters(text: str) -> None:
    for position, ch in enumerate(text):
        if " " <= ch <= "~" or ch == "\t":
            continue
        code = f"U+{ord(ch):04X}"
        if ch.isspace():
            hint = "separate fields with ASCII spaces or tabs and write the expression on one line"
            kind = "whitespace" if ch.isascii() else "non-ASCII whitespace"
        elif not ch.isascii():
            kind, hint = "non-ASCII character", "use ASCII digits and names only"
        else:
            kind, hint = "control character", "remove it"
        raise CronError(f"{kind} {code} at position {position}; {hint}", "", ch)


def _split(text: str) -> list:
    if not isinstance(text, str):
        raise TypeError(f"a cron expression must be a str, not {type(text).__name__}")
    if len(text) > _MAX_EXPRESSION:
        raise CronError(f"cron expression is too long ({len(text)} characters, at most "
                        f"{_MAX_EXPRESSION})")
    text = text.strip(" \t\r\n")
    _check_characters(text)
    if not text:
        raise CronError('empty cron expression; write five fields like "30 9 * * 1-5" '
                        'or a macro like "@daily"')
    parts = text.split()
    if parts[0].startswith("@"):
        return _expand_macro(parts)
    if len(parts) != 5:
        raise CronError(_count_message(parts))
    return parts


def _expand_macro(parts: list) -> list:
    macro = parts[0].lower()
    if macro == "@reboot":
        raise CronError("@reboot has no calendar schedule; run start-up work yourself after "
                        "autocron.start()", "", parts[0])
    if macro not in _MACROS:
        raise CronError(f"unknown macro {_quote(parts[0])}; use one of "
                        f"{', '.join(_MACROS)}", "", parts[0])
    if len(parts) > 1:
        raise CronError(f"a macro must be the whole expression, got {_quote(' '.join(parts))}",
                        "", parts[0])
    return _MACROS[macro].split()


def _count_message(parts: list) -> str:
    message = (f"expected 5 fields (minute hour day-of-month month day-of-week), "
               f"got {len(parts)}")
    glued = any(p[-1] in ",-/" for p in parts[:-1]) or any(p[0] in ",-/" for p in parts[1:])
    if glued:
        return message + "; spaces are not allowed inside a field (write 1,2 not 1, 2)"
    if len(parts) in (6, 7):
        return message + " (seconds and year fields are not supported)"
    return message


def _dom_zero_hint(parts: list) -> Optional[str]:
    """The seed documentation of autocron 1.x wrote weekdays into the third field."""
    try:
        days = [int(v) for v in parts[2].split(",")]
    except ValueError:
        return None
    if 0 not in days or not all(0 <= d <= 6 for d in days) or parts[3:] != ["*", "*"]:
        return None
    cron_days = sorted({(d + 1) % 7 for d in days})
    words = _join_words([_DAY_WORDS[(d + 1) % 7] for d in sorted(set(days))])
    fixed = " ".join(parts[:2] + ["*", "*", ",".join(map(str, cron_days))])
    return (f'day-of-month 0 is out of range 1-31; for {words} write "{fixed}" '
            f"(day-of-week is the fifth field, 0 or 7 = Sunday)")


def _parse(text: str) -> _Spec:
    parts = _split(text)
    spec = _Spec()
    try:
        fields = [_parse_field(spec, f, t) for f, t in zip(_FIELDS, parts)]
    except CronError as error:
        hint = _dom_zero_hint(parts) if error.field == "day-of-month" else None
        if hint:
            raise CronError(hint, "day-of-month", parts[2]) from None
        raise
    spec.minutes, spec.hours, spec.doms, spec.months, spec.dows = fields
    spec.texts = tuple(parts)
    spec.dom_star = parts[2].startswith("*") or parts[2] == "?"
    spec.dow_star = parts[4].startswith("*") or parts[4] == "?"
    spec.wildcard = parts[0].startswith("*") or parts[1].startswith("*")
    return spec


# ---- which days of a month match --------------------------------------------------------------


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return _MONTH_DAYS[month]


def _matching_days(spec: _Spec, length: int, first_weekday: int) -> tuple:
    """Days 1..length that match, for a month whose 1st is `first_weekday` (0 = Sunday)."""
    doms, dows = set(spec.doms), set(spec.dows)
    weekday_of = lambda day: (first_weekday + day - 1) % 7  # noqa: E731 - local shorthand
    dom_days = {d for d in doms if d <= length}
    if spec.last_day:
        dom_days.add(length)
    if spec.last_weekday:
        w = weekday_of(length)
        dom_days.add(length - 1 if w == 6 else length - 2 if w == 0 else length)
    for n in spec.nearest:
        if n <= length:
            dom_days.add(_nearest_weekday(n, weekday_of(n), length))
    dow_days = set()
    for day in range(1, length + 1):
        w = weekday_of(day)
        if (w in dows or (w in spec.last_dows and day + 7 > length)
                or (w, (day + 6) // 7) in spec.nth_dows):
            dow_days.add(day)
    if spec.dom_star or spec.dow_star:
        return tuple(sorted(dom_days & dow_days))
    return tuple(sorted(dom_days | dow_days))


def _nearest_weekday(n: int, weekday: int, length: int) -> int:
    """Quartz's nW: the Monday-Friday date nearest day n, never leaving the month."""
    if weekday == 6:                       # Saturday: the Friday before, or Monday the 3rd
        return n - 1 if n > 1 else 3
    if weekday == 0:                       # Sunday: the Monday after, or Friday if n is last
        return n + 1 if n < length else n - 2
    return n


def _never_fires_reason(spec: _Spec) -> Optional[str]:
    """Why no date can ever match, or None; exact (cron-spec.md section 6.2)."""
    lengths = {n for m in spec.months for n in ((28, 29) if m == 2 else (_MONTH_DAYS[m],))}
    if _fires_obviously(spec, max(lengths)):
        return None
    for length in lengths:
        for first in range(7):
            if _matching_days(spec, length, first):
                return None
    dom, dow = spec.texts[2], spec.texts[4]
    if spec.dow_star and len(spec.dows) == 7 and not (spec.last_dows or spec.nth_dows):
        months = _join_words([_MONTH_NAMES[m - 1] for m in spec.months], "or")
        return f"day-of-month {dom} does not exist in {months}"
    star = "day-of-month" if spec.dom_star else "day-of-week"
    return (f"day-of-month {dom!r} is ANDed with day-of-week {dow!r} ({star} starts with "
            "'*'); no date satisfies both")


def _fires_obviously(spec: _Spec, longest: int) -> bool:
    """Fast paths for the common shapes, so parsing stays cheap."""
    dom_any = (spec.last_day or spec.last_weekday
               or any(d <= longest for d in spec.doms) or any(n <= longest for n in spec.nearest))
    dow_any = bool(spec.dows or spec.last_dows)    # every month has every weekday
    dom_full, dow_full = len(spec.doms) == 31, len(spec.dows) == 7
    if spec.dom_star or spec.dow_star:
        return (dow_full and dom_any) or (dom_full and dow_any)
    return dom_any or dow_any


# ---- keyword form -----------------------------------------------------------------------------

_KEYWORDS = (("minutes", 0, 59), ("hours", 0, 23), ("days", 1, 31), ("months", 1, 12),
             ("dow", 0, 6))
_PY_DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _keyword_values(name: str, low: int, high: int, value) -> list:
    items = [value] if isinstance(value, (int, str)) else value
    try:
        items = list(items)
    except TypeError:
        raise CronError(f"{name} must be an int, an iterable of ints or a range, "
                        f"got {value!r}", name) from None
    if not items:
        raise CronError(f"{name} is empty; leave it out to mean every value", name)
    numbers = []
    for item in items:
        if name == "dow" and isinstance(item, str) and item[:3].upper() in _PY_DAY_NAMES \
                and len(item) == 3:
            item = _PY_DAY_NAMES.index(item.upper())
        if isinstance(item, bool) or not isinstance(item, int):
            hint = " or a day name like 'mon'" if name == "dow" else ""
            raise CronError(f"{name} values must be ints{hint}, got {item!r}", name, str(item))
        if not low <= item <= high:
            extra = " (0 = Monday ... 6 = Sunday, as datetime.weekday())" if name == "dow" else ""
            raise CronError(f"{name} value {item} is out of range {low}-{high}{extra}",
                            name, str(item))
        numbers.append(item)
    return sorted(set(numbers))


def _keyword_expression(fields: dict) -> str:
    parts = []
    for name, low, high in _KEYWORDS:
        value = fields.pop(name, None)
        if value is None:
            parts.append("*")
            continue
        numbers = _keyword_values(name, low, high, value)
        if len(numbers) == high - low + 1:
            parts.append("*")
        elif name == "dow":
            parts.append(_render_values(sorted((d + 1) % 7 for d in numbers)))
        else:
            parts.append(_render_values(numbers))
    if fields:
        raise TypeError(f"unexpected keyword argument {next(iter(fields))!r}; use minutes, "
                        "hours, days, months and dow")
    return " ".join(parts)


# ---- the normalised text ----------------------------------------------------------------------


def _render_values(values: list) -> str:
    """Values as a compact list of runs (1-5,7) or one arithmetic progression (0-45/15)."""
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in zip(values, values[1:])):
            return f"{values[0]}-{values[-1]}/{step}"
    out, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{values[i]}-{values[j]}")
        else:
            out.extend(str(v) for v in values[i:j + 1])
        i = j + 1
    return ",".join(out)


def _render_star(values: tuple, low: int, span: int) -> str:
    """A set whose text started with '*': it must keep a leading '*' (it decides semantics)."""
    for step in range(1, span + 1):
        stepped = list(range(low, low + span, step))
        if set(stepped) <= set(values):
            rest = sorted(set(values) - set(stepped))
            head = "*" if step == 1 else f"*/{step}"
            return ",".join([head] + ([_render_values(rest)] if rest else []))
    raise AssertionError("a star field always holds its low value")


def _render_field(spec: _Spec, index: int) -> str:
    field = _FIELDS[index]
    values = getattr(spec, ("minutes", "hours", "doms", "months", "dows")[index])
    star = spec.texts[index].startswith("*") or spec.texts[index] == "?"
    span = 7 if index == 4 else field.high - field.low + 1
    extras = []
    if index == 2:
        extras = (["L"] if spec.last_day else []) + (["LW"] if spec.last_weekday else []) \
            + [f"{n}W" for n in sorted(spec.nearest)]
    elif index == 4:
        extras = [f"{d}L" for d in sorted(spec.last_dows)] \
            + [f"{d}#{k}" for d, k in sorted(spec.nth_dows)]
    if star:
        head = _render_star(values, field.low, span)
    else:
        head = _render_values(list(values)) if values else ""
    return ",".join(p for p in [head] + extras if p)


# ---- English ----------------------------------------------------------------------------------


def _join_words(words: list, conjunction: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _runs(values: tuple) -> list:
    """Consecutive runs of values as (first, last) pairs."""
    runs: list = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def _describe_set(values: tuple, word, through: str = "through") -> str:
    parts = [word(a) if a == b else f"{word(a)} {through} {word(b)}" if b > a + 1
             else f"{word(a)} and {word(b)}" for a, b in _runs(values)]
    return _join_words(parts)


def _describe_time(spec: _Spec) -> str:
    minutes, hours = spec.minutes, spec.hours
    step, hour_step = _uniform_step(minutes, 60), _uniform_step(hours, 24)
    if len(minutes) * len(hours) <= 6 and not (step or hour_step):
        return "at " + _join_words([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    if len(minutes) == 60:
        minute_text = "every minute"
    elif step:
        minute_text = f"every {step} minutes"
    else:
        minute_text = ("at minute " if len(minutes) == 1 else "at minutes ") \
            + _describe_set(minutes, str)
    if len(hours) == 24:
        return minute_text if minute_text.startswith("every") else f"every hour {minute_text}"
    if hour_step:
        return f"every {hour_step} hours {minute_text}" if minute_text.startswith("at") \
            else f"{minute_text} in every {_ordinal(hour_step)} hour"
    hour_text = _join_words([f"from {a:02d}:00 to {b:02d}:59" for a, b in _runs(hours)])
    return f"{minute_text} {hour_text}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _uniform_step(values: tuple, span: int) -> int:
    """n when values are exactly 0, n, 2n, ... over the whole span (n > 1)."""
    if len(values) < 2 or values[0] != 0:
        return 0
    step = values[1]
    return step if step > 1 and values == tuple(range(0, span, step)) else 0


def _describe_doms(spec: _Spec) -> str:
    parts = []
    if spec.doms:
        label = "day " if len(spec.doms) == 1 else "days "
        parts.append(label + _describe_set(spec.doms, str) + " of the month")
    if spec.last_day:
        parts.append("the last day of the month")
    if spec.last_weekday:
        parts.append("the last weekday of the month")
    parts += [f"the weekday nearest day {n} of the month" for n in sorted(spec.nearest)]
    return _join_words(parts, "or")


def _describe_dows(spec: _Spec) -> str:
    parts = []
    if spec.dows:
        ordered = tuple(sorted(spec.dows, key=lambda d: (d + 6) % 7))  # Monday first
        runs = _runs(tuple((d + 6) % 7 for d in ordered))
        word = lambda i: _DAY_WORDS[(i + 1) % 7]  # noqa: E731 - Monday-first index to name
        parts.append(_join_words([word(a) if a == b else f"{word(a)} through {word(b)}"
                                  if b > a + 1 else f"{word(a)} and {word(b)}"
                                  for a, b in runs]))
    parts += [f"the last {_DAY_WORDS[d]} of the month" for d in sorted(spec.last_dows)]
    parts += [f"the {_ORDINALS[k]} {_DAY_WORDS[d]} of the month"
              for d, k in sorted(spec.nth_dows)]
    return _join_words(parts, "or")


def _describe_days(spec: _Spec) -> str:
    dom_all = len(spec.doms) == 31
    dow_all = len(spec.dows) == 7
    dom_text, dow_text = _describe_doms(spec), _describe_dows(spec)
    if spec.dom_star or spec.dow_star:
        if dom_all and dow_all:
            return ""
        if dom_all:
            return dow_text
        if dow_all:
            return dom_text
        return f"{dom_text} if it is also {dow_text}"
    return f"{dom_text} or {dow_text}"


def _describe(spec: _Spec) -> str:
    text = _describe_time(spec)
    days = _describe_days(spec)
    if days:
        # "at 09:00, Monday through Friday" but "at 09:30 on Monday and Wednesday"
        single_range = " through " in days and "," not in days and " of " not in days
        text += (", " if single_range else " on ") + days
    elif text.startswith("at "):
        text += " every day"
    if len(spec.months) < 12:
        text += " in " + _describe_set(spec.months, lambda m: _MONTH_WORDS[m - 1])
    return text


# ---- the public class -------------------------------------------------------------------------


def _utc_naive(moment: _dt.datetime) -> _dt.datetime:
    """The instant of an aware datetime as naive UTC, for comparisons that respect `fold`.

    Python compares two datetimes that share a tzinfo by their wall-clock fields and ignores
    `fold`, which would confuse the two passes of a repeated hour.
    """
    return moment.replace(tzinfo=None) - moment.utcoffset()


def _resolve_zone(tz) -> Optional[_dt.tzinfo]:
    if tz is None or isinstance(tz, _dt.tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be an IANA zone name or a tzinfo, not {type(tz).__name__}")
    if _zoneinfo is None:  # pragma: no cover
        raise CronError("time zones need the zoneinfo module (Python 3.9 or later)", "tz", tz)
    try:
        return _zoneinfo.ZoneInfo(tz)
    except (_zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {_quote(tz)}; use an IANA name like "
                        "'Europe/Berlin' or 'America/New_York'", "tz", tz) from None


class CronExpression:
    """A standard five-field cron expression, evaluated exactly (Vixie/Debian semantics).

    >>> c = CronExpression("30 9 * * 1,3")
    >>> c.next(datetime.datetime(2024, 1, 1))
    datetime.datetime(2024, 1, 1, 9, 30)
    >>> c.describe()
    'at 09:30 on Monday and Wednesday'

    The keyword form takes `minutes`, `hours`, `days`, `months` and `dow` (0 = Monday, as
    `datetime.weekday()`), each an int, an iterable of ints or a range, and is converted to the
    equivalent standard expression: `CronExpression(minutes=[30], hours=[9], dow=[0, 2])` is
    `"30 9 * * 1,3"`. A field given with all its values counts as `*`.

    `tz` (an IANA name or a tzinfo) makes results aware in that zone, following Debian cron's
    daylight-saving rules; without it a naive `after` gives naive wall-clock results and an
    aware `after` is followed in its own zone. Malformed input raises `CronError`.
    """

    __slots__ = ("_spec", "_text", "_tz", "_day_cache", "_month_cache")

    def __init__(self, expression: Optional[str] = None, tz: Union[str, _dt.tzinfo, None] = None,
                 **fields: Union[int, Iterable[int], range]):
        if fields:
            if expression is not None:
                raise TypeError("give either a cron expression or keyword fields, not both")
            expression = _keyword_expression(fields)
        elif expression is None:
            expression = "* * * * *"
        spec = _parse(expression)
        reason = _never_fires_reason(spec)
        if reason:
            raise CronError(f"expression can never fire: {reason}", "day-of-month", expression)
        self._spec = spec
        self._text = " ".join(_render_field(spec, i) for i in range(5))
        self._tz = _resolve_zone(tz)
        self._day_cache: dict = {}
        self._month_cache: dict = {}

    # -- identity

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        zone = f", tz={str(self._tz)!r}" if self._tz is not None else ""
        return f"CronExpression({self._text!r}{zone})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return self._text == other._text and self._tz == other._tz

    def __hash__(self) -> int:
        return hash((self._text, str(self._tz)))

    @property
    def tz(self) -> Optional[_dt.tzinfo]:
        """The zone results are computed in, or None for the zone of `after` (or naive)."""
        return self._tz

    def describe(self) -> str:
        """The schedule in plain English, e.g. "at 09:00, Monday through Friday"."""
        text = _describe(self._spec)
        return f"{text} ({self._tz})" if self._tz is not None else text

    # -- evaluation

    def next(self, after: Optional[_dt.datetime] = None) -> _dt.datetime:
        """The first fire time strictly after `after` (default: now)."""
        for moment in self.iter(after):
            return moment
        raise CronError(f"{self._text!r} has no fire time within {_SEARCH_YEARS} years after "
                        f"{after} (every match falls into a daylight-saving gap or past 9999)")

    def iter(self, after: Optional[_dt.datetime] = None) -> Iterator[_dt.datetime]:
        """Fire times strictly after `after` (default: now), in increasing order."""
        if after is None:
            after = _dt.datetime.now(self._tz)
        elif not isinstance(after, _dt.datetime):
            raise TypeError(f"after must be a datetime, not {type(after).__name__}")
        zone = self._tz or after.tzinfo
        if zone is None:
            return self._naive_times(after)
        if after.tzinfo is None:
            after = after.replace(tzinfo=zone)
        return self._aware_times(after, zone)

    def matches(self, moment: _dt.datetime) -> bool:
        """True if `moment` is one of the fire times (at a whole minute)."""
        if moment.second or moment.microsecond:
            return False
        zone = self._tz or moment.tzinfo
        if zone is None:
            spec = self._spec
            return (moment.minute in spec.minutes and moment.hour in spec.hours
                    and moment.month in spec.months
                    and moment.day in self._days(moment.year, moment.month))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        instant = moment.astimezone(_UTC)
        for fire in self._aware_times(instant - _dt.timedelta(microseconds=1), zone):
            return _utc_naive(fire) == instant.replace(tzinfo=None)
        return False

    # -- the walk

    def _days(self, year: int, month: int) -> tuple:
        """The matching days of one month, cached by (length, weekday of the 1st)."""
        key = (year, month)
        days = self._month_cache.get(key)
        if days is None:
            length = _month_length(year, month)
            first = (_dt.date(year, month, 1).weekday() + 1) % 7
            days = self._day_cache.get((length, first))
            if days is None:
                days = self._day_cache[length, first] = _matching_days(self._spec, length, first)
            if len(self._month_cache) > 4096:
                self._month_cache.clear()
            self._month_cache[key] = days
        return days

    def _walk_days(self, year: int, month: int, day: int) -> Iterator[tuple]:
        """(year, month, day) of every matching day from the given date on, in order."""
        months, days_of = self._spec.months, self._days
        month_list = months[bisect_left(months, month):]
        while year <= _dt.MAXYEAR:
            for m in month_list:
                days = days_of(year, m)
                if day > 1 and m == month:
                    days = days[bisect_left(days, day):]
                for d in days:
                    yield year, m, d
            year += 1
            month_list = months
            day = 1

    def _naive_times(self, after: _dt.datetime) -> Iterator[_dt.datetime]:
        try:
            start = after.replace(second=0, microsecond=0) + _MINUTE
        except OverflowError:
            return
        hours, minutes = self._spec.hours, self._spec.minutes
        datetime = _dt.datetime
        first = (start.year, start.month, start.day)
        for year, month, day in self._walk_days(*first):
            if (year, month, day) == first:
                for hour in hours[bisect_left(hours, start.hour):]:
                    low = start.minute if hour == start.hour else 0
                    for minute in minutes[bisect_left(minutes, low):]:
                        yield datetime(year, month, day, hour, minute)
                continue
            for hour in hours:
                for minute in minutes:
                    yield datetime(year, month, day, hour, minute)

    def _aware_times(self, after: _dt.datetime, zone: _dt.tzinfo) -> Iterator[_dt.datetime]:
        after_utc = _utc_naive(after)
        local = after.astimezone(_UTC).astimezone(zone)
        try:
            start = local.replace(second=0, microsecond=0, tzinfo=None) + _MINUTE
        except OverflowError:
            return
        hours, minutes = self._spec.hours, self._spec.minutes
        datetime = _dt.datetime
        first = (start.year, start.month, start.day)
        last, last_year = after_utc, start.year
        for year, month, day in self._walk_days(*first):
            if year > last_year + _SEARCH_YEARS:
                return
            if not _plain_day(year, month, day, zone):
                for moment in self._transition_day(year, month, day, zone):
                    instant = _utc_naive(moment)
                    if instant > last:
                        last, last_year = instant, year
                        yield moment
                continue
            last_year = year
            if (year, month, day) == first:
                for hour in hours[bisect_left(hours, start.hour):]:
                    low = start.minute if hour == start.hour else 0
                    for minute in minutes[bisect_left(minutes, low):]:
                        yield datetime(year, month, day, hour, minute, tzinfo=zone)
                continue
            for hour in hours:
                for minute in minutes:
                    yield datetime(year, month, day, hour, minute, tzinfo=zone)

    def _transition_day(self, year, month, day, zone) -> list:
        """Every fire instant of a local day with a daylight-saving transition, sorted.

        Fixed-time jobs run a time in a gap at the first instant after it and a repeated time
        once, on the first pass; wildcard jobs follow the real clock (cron-spec.md 7.4).
        """
        out = []
        for hour in self._spec.hours:
            for minute in self._spec.minutes:
                wall = _dt.datetime(year, month, day, hour, minute, tzinfo=zone)
                exists = _exists(wall)
                if self._spec.wildcard:
                    if exists:
                        out.append(wall)
                        second = wall.replace(fold=1)
                        if second.utcoffset() != wall.utcoffset():
                            out.append(second)
                elif exists:
                    out.append(wall)
                else:
                    while not _exists(wall):
                        wall = (wall.replace(tzinfo=None) + _MINUTE).replace(tzinfo=zone)
                    out.append(wall)
        out.sort(key=_utc_naive)
        return out


def _exists(wall: _dt.datetime) -> bool:
    """False for a wall-clock time that falls into a daylight-saving gap."""
    back = wall.astimezone(_UTC).astimezone(wall.tzinfo)
    return back.replace(tzinfo=None, fold=0) == wall.replace(tzinfo=None, fold=0)


def _plain_day(year: int, month: int, day: int, zone: _dt.tzinfo) -> bool:
    """True when a local day has one UTC offset throughout (no gap, no repeated time)."""
    start = _dt.datetime(year, month, day, tzinfo=zone)
    end = _dt.datetime(year, month, day, 23, 59, tzinfo=zone)
    offset = start.utcoffset()
    return (offset == start.replace(fold=1).utcoffset() == end.utcoffset()
            == end.replace(fold=1).utcoffset())
