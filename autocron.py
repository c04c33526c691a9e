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

How a call travels, with the names to read at each step::

    caller: send_mail(...)  (delay's `delayed`)
        store.add_task: INSERT, commit --> "tasks" row, status waiting
        _wake_pool: a wake-up datagram (PostgreSQL: NOTIFY in the same statement) --+
                                                                                 v
    pool manager (_manager_main; a process started by the owner, whose start() took the
    flock), its dispatcher _Pool.run, one _Pool._round after another:
        _Pool._commit: in one transaction write what the workers reported and
            store.claim the due rows --> _Worker.push: a _Run down the pipe
                                                   worker process (_worker_main, a fresh
                                                   interpreter): _WorkerState.take says
                                                   it starts the task (_Started), and
                                                   _run_task imports or unpickles the
                                                   function, runs it, captures its output
        _Pool._collect  <--pipe-- _Done: the _Outcome, value or error as data
        _Pool._commit writes it (_write_outcomes), then _Pool._acknowledge: _Ack down
            the pipe (the worker forgets it), _Finished up to the owner
    owner (_PoolHandle._on_notice) sets the events of waiting callers:
    caller: result.get() (Result._wait) / result.waiting / await result --reads--> the row

The owner holds the lock and a pipe to the manager; when the owner ends, however it ends,
the pipe closes and the manager exits, and with it every worker through its own pipe, after
writing what only it knows (starts and outcomes not yet acknowledged). The next pool waits
for that before it settles what the last one left behind.

With a postgresql:// URL (psycopg 3, imported only then) the same travels through a
PostgreSQL schema instead, and every machine runs such a pool: claims skip the rows other
pools hold (FOR UPDATE SKIP LOCKED), a call NOTIFYs the pools that LISTEN, and each pool
renews a lease that fences its writes; the pools settle the tasks of a machine whose lease
ran out.

Sections, in dependency order, each under a banner, with about how many lines it takes
(test_the_module_docstring_maps_the_sections keeps this list true)::

    Constants                        100  limits, pauses and timeouts; _clock, the clock seam
    Exceptions                        50  DatabaseError, TaskError, CronError
    Cron expressions                 900  CronExpression: a pure engine, never reads the clock
    Task records and serialisation   650  the named records; policy (retries, misfires, next
                                          due times); functions by reference or by value
    The SQLite store                1500  the _Store protocol; the SQL both stores share
                                          (_SharedReads, _SharedSql, _SharedCalls);
                                          _StartLog; _SqliteStore
                                          of _SqliteFile (the doorway) and _SqlitePool
    The PostgreSQL store             800  _PgStore of _PgLink (the doorway) and _PgMachines
                                          (leases, LISTEN/NOTIFY, the server's clock)
    Workers and the pool            2000  _worker_main; _Pool (the dispatcher) of its parts
                                          _PoolWakeups, _PoolLease, _PoolDeadlines,
                                          _PoolCrew, _PoolWrites;
                                          _PoolHandle (the owner's side)
    Public API                      1450  start, stop, delay (options, dependencies, steps),
                                          cron, Result, get_results, DjangoBackend
    Dashboard                        850  the pages the module serves itself
    Admin command line               450  python autocron.py / autocron ...

To follow one call from `delay` to its result, read `delay` (Public API), `_Pool._round`
(Workers and the pool) and `_run_task`, then `Result.get`.
"""

from __future__ import annotations

# Django is optional and ships no type information: a project's type checker reads autocron
# without django-stubs, and without Django at all.
# mypy: disable-error-code="import-untyped, import-not-found"
# pyright: reportMissingImports=false

__version__ = "2.0.0.dev0"

__all__ = [
    "start",
    "stop",
    "delay",
    "cron",
    "get_results",
    "get_result",
    "wait",
    "progress",
    "current",
    "dashboard",
    "Result",
    "CronExpression",
    "AutocronError",
    "CronError",
    "TaskError",
    "TaskTimeout",
    "WorkerLost",
    "Cancelled",
    "DependencyFailed",
    "DatabaseError",
]

import atexit
import builtins
import collections
import contextlib
import contextvars
import datetime as _dt
import errno
import functools
import importlib
import io
import itertools
import json
import logging
import marshal
import math
import os
import pickle
import random
import re
import select
import selectors
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import traceback
import types
from bisect import bisect_left
from typing import (TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Generic, Iterable,
                    Iterator, NamedTuple, NoReturn, Optional, Protocol, TypeVar, Union, cast,
                    overload)

_T = TypeVar("_T")
_Database = Union[str, "os.PathLike[str]"]    # a PostgreSQL URL or an SQLite file
if TYPE_CHECKING:       # for type checkers only: nothing of this is imported at run time
    from typing import Coroutine, Generator
    from typing_extensions import ParamSpec, TypeGuard     # typing's own from Python 3.10
    _P = ParamSpec("_P")

if sys.platform == "win32":  # pragma: no cover - one pool per process there, unlocked
    _fcntl = None
else:  # POSIX: the pool lock is an flock that dies with its holder
    import fcntl as _fcntl


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

_SCHEMA_VERSION = 3
_RETIRED = 2                    # crons.paused of a job its code no longer declares (0, 1: paused)
_PICKLE_PROTOCOL = 4            # readable by every Python that autocron supports (3.9+)
_DEFAULT_SETTINGS = {"workers": 1, "result_ttl": 1800, "disabled": 0, "synchronous": "normal",
                     "initializer_error": None, "async_concurrency": 100, "pool_ended": None}
# "normal": a committed call survives a crash of the application, "full": also power loss or
# an OS crash (the log is synced at every commit, not only at checkpoints).
_SYNCHRONOUS = ("normal", "full")
_BUSY_TIMEOUT = 30.0            # seconds a writer waits for another writer before giving up
_FALLBACK_WAKE = 2.0            # an idle pool looks for due work this often anyway, for
                                # producers whose wake-up datagram could not arrive
_CLEANUP_INTERVAL = 60.0        # finished results past their time-to-live go this often
_WAL_LIMIT = 8 * 1024 * 1024    # the pool empties a write-ahead log this large at once, and
_WAL_QUIET = 1.0                # one that has not grown for this many seconds (see checkpoint)
_CHECKPOINT_LOOK = 0.05         # seconds between two looks at the log's size
_WAL_URGENT = 3 * _WAL_LIMIT    # a log this large is emptied even if the looker must wait
_CHECKPOINT_WAIT = 0.1          # for this many seconds at most
_WAL_LOOK = 512                 # a producer looks at the log's size after this many calls
_PREFETCH = 4                   # tasks a worker holds: one running, the rest ready to start
_PREFETCH_QUICK = 16            # as many while tasks take under _QUICK_TASK s: a worker that
_QUICK_TASK = 0.002             # runs dry announces its next start alone, which costs the
                                # dispatcher a round of its own (4 made that common)
_HANDOVER_WAIT = 10.0           # a new pool waits this long for the processes of one that
                                # ended abruptly to write what only they know
_OUTAGE_PAUSES = (0.05, 2.0)    # a pool whose database is unavailable tries again after the
                                # first pause, doubled after each failure up to the second
_CLOCK_STEP = 1.0               # the wall clock going back by more than this is a step back
_OUTAGE_REPORT = 60.0           # and says every this many seconds that it still cannot write
_FALLBACK_REAP = 0.5            # without SIGCHLD a pool looks for ended workers this often
_READ_SIZE = 1 << 16            # the dispatcher reads a worker's pipe in pieces this large
_START_COMMIT_DELAY = 0.02      # a start is written with the next outcome, or after this
                                # (a worker that loses its manager writes its own starts)
_RELOAD_EXIT = 4                # a worker's exit status when its code changed (_watch_code)
_SOURCE_LOOK = 1.0              # how often a watching worker looks at its source files
_LINGER_STOP = 10.0             # a pool handed over at a reload (_PoolHandle.linger) stops as
                                # stop() does, with this timeout, once its reloader ended
_LINGER_LOOK = 1.0              # and looks this often whether the reloader still runs
_INIT_PAUSES = (1.0, 300.0)     # after a failed initializer no worker starts for a pause that
                                # doubles from the first to the second (api.md: 1 s to 5 min)
_RESTART_PAUSE = (0.5, 30.0)    # a worker or manager that dies young is restarted after a
_YOUNG = 2.0                    # pause that doubles up to its maximum (young: a worker that
_YOUNG_MANAGER = 10.0           # lived less than this, a manager less than this)
_SETTINGS_LOOK = 1.0            # the pool reads its settings (the admin tool's) this often
_SHUTDOWN_WAIT = 5.0            # workers told to exit get this long before they are killed
_LEFTOVER_WAIT = 1.0            # killed processes of a task get this long to end and be reaped
_PR_SET_CHILD_SUBREAPER = 36    # prctl option (Linux 3.4+): orphans below come to this process
_MANAGER_GRACE = 15.0           # stop(timeout) waits this much longer for the manager
_WAITER_LOOK = 0.25             # a caller with an event looks at the database this often too
_SHIP_MOST = 1 << 16            # a finished row goes to its waiting caller with the notice
                                # (which then reads nothing) up to this size of value and output
_AHEAD = 100                    # a wait's first read reads this many calls ahead (_ReadAhead)
_AHEAD_KEPT = 10_000            # ... among the ids of the calls this process stored last
_AHEAD_MOST = 4096              # ... of rows of at most this many bytes of value, output, error
_CANCEL_WAIT = 10.0             # cancel() of a handed-over task waits this long for the pool
_ACK_BATCH = 32                 # a busy worker is told about committed outcomes this often
_MAX_OUTPUT = 64 * 1024         # bytes of what a task printed that are kept: the last ones
_MAX_ERROR_TEXT = 64 * 1024     # characters of a task's error message, and of its traceback,
                                # that are kept: the start and the end, saying how much was cut
_MAX_SUMMARY = 200              # characters of a value's repr kept for tables
_RETRY_JITTER = 0.25            # a retry's delay is lengthened by a random part up to this
_MAX_SPARES = 64                # spare workers for tasks that wait for other calls (api.md)
_CO_COROUTINE = 0x80            # inspect.CO_COROUTINE: the code of an async def function
_MOST_ASYNC = 1000              # async_concurrency at most (a worker's start log holds its
                                # running and unacknowledged calls: _StartLog.RING)
_ASYNC_GRACE = 5.0              # an async call cancelled (a timeout, cancel(force=True)) that
                                # has not ended this long after blocks its loop: the worker ends
_LOOP_BLOCKED = 1.0             # a worker's loop that answers nothing this long is blocked,
_LOOP_LOOK = 0.5                # which its watchdog asks this often (and says once a call)
_LARGEST_INT = 2 ** 31 - 1      # retries and priority: PostgreSQL's integer column
_DEFAULT_QUEUE = "default"      # the queue of a call that names none
_MAX_QUEUE = 100                # characters in a queue's name
_RATE_MARGIN = 1.05             # a rate's window, as claims count it: a claimed call starts a
                                # moment later, and no window of its starts may hold more
_MAX_KEY = 200                  # characters of a call's unique key (api.md)
_PROGRESS_EVERY = 0.5           # a running call's progress reaches the database this often
_MAX_PROGRESS_TEXT = 200        # characters of a progress report's text that are kept
_RETRIES_SHOWN = 20             # a task's page links to this many of the tasks that retry it
_LINKS_SHOWN = 100              # and to this many of its dependencies, dependents and steps
_MISFIRE_GRACE = 60.0           # a cron due time missed by less than this still runs (a pool
                                # taken over after its owner ended); older ones follow catch_up
_MIN_SQLITE = (3, 24, 0)        # INSERT ... ON CONFLICT DO UPDATE (UPSERT) arrived in 3.24
_SOCKET_PATH_MAX = 103          # bytes in an AF_UNIX address without its NUL: 104 on macOS and
                                # the BSDs, 108 on Linux
# The statuses users see. Inside the database a task handed to a worker that has not started
# it yet is "queued": users see it as "waiting", the admin tool shows it as it is.
_STATUSES = ("waiting", "running", "ready", "error", "cancelled")
# What users see as "waiting": due or not yet, handed to a worker, or waiting for the calls
# it depends on ("blocked": the admin tool shows it as it is).
_WAITING = ("waiting", "queued", "blocked")
_FINISHED = ("ready", "error", "cancelled")

_IN_WORKER = False              # True in a worker process: a delayed call runs directly
_IN_POOL = False                # True in a pool's manager and workers: the owner's start()
                                # admitted the database they open

# What the platform offers, in one place (Linux and macOS have it all; Windows may degrade
# but must not crash on import):
_POSIX = os.name == "posix"                    # uids and mode bits: the privacy checks
_HAS_FLOCK = _fcntl is not None                # one pool per database, else one per process
_HAS_UNIX_SOCKETS = hasattr(socket, "AF_UNIX")   # wake-up datagrams, else the fallback check
_CAN_KILL_GROUPS = hasattr(os, "killpg")       # a worker and what its tasks start die together
_HAS_PREAD = hasattr(os, "pread")              # the cancel mark, else the database every time
_HAS_SIGCHLD = hasattr(signal, "SIGCHLD")      # a worker's end wakes the pool, else it looks
_HAS_FORK_HOOKS = hasattr(os, "register_at_fork")   # a forked child drops the pool's pipes
# Linux: /proc names every process's parent, and prctl makes the pool's processes child
# subreapers, so that whatever a task started (a session of its own, a daemon's double fork)
# stays below its worker and ends with the task; elsewhere (macOS) only the process group.
_HAS_PROCESS_TREE = sys.platform.startswith("linux") and os.path.isdir("/proc")

_log = logging.getLogger("autocron")
_log.addHandler(logging.NullHandler())   # a library logs; the application decides where to


def _tell(text: str) -> None:
    """Something the user must hear of (no task found, calls left waiting): a warning in
    autocron's log where the application has set up logging, else a line on stderr, as
    Python itself does for a logger without handlers."""
    logger: Optional[logging.Logger] = _log
    while logger is not None:
        if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            _log.warning("autocron: %s", text)
            return
        logger = logger.parent if logger.propagate else None
    print(f"autocron: {text}", file=sys.stderr)


_clock_file: Optional[str] = None   # tests: a file that holds the time (see _clock)


def _clock() -> float:
    """The one clock seam: wall-clock seconds since the epoch for due times.

    Tests replace it to run cron logic at fixed moments. The pool's processes cannot see a
    replaced function, so a test also names a file that holds the time in `_clock_file`,
    which travels to them in their start configuration (_spawn). Intervals and timeouts use
    `time.monotonic()` instead. What a store writes and compares goes by its now(): this
    clock for SQLite, the server's for PostgreSQL (this clock plus the measured skew).
    """
    if _clock_file is None:
        return time.time()
    with open(_clock_file) as file:
        return float(file.read())


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


class TaskError(AutocronError):
    """A task failed in a worker; carries the remote exception as data.

    `type_name` and `message` describe the exception raised in the worker, `traceback` is its
    formatted traceback text, `uuid` the task's id. Exception objects never cross processes.
    """

    def __init__(self, message: str, type_name: str = "", traceback: str = "", uuid: str = ""):
        super().__init__(message)
        self.message, self.type_name, self.traceback, self.uuid = message, type_name, traceback, uuid

    def __str__(self) -> str:
        own = self.type_name == f"autocron.{type(self).__name__}"   # the class says it
        head = f"{self.type_name}: {self.message}" if self.type_name and not own \
            else self.message
        return f"{head}\n\nRemote traceback:\n{self.traceback}" if self.traceback else head


class TaskTimeout(TaskError):
    """The task ran past its timeout, and its worker was ended."""


class WorkerLost(TaskError):
    """The task's worker or machine died, or its pool ended, while the task was running."""


class Cancelled(TaskError):
    """The call was withdrawn (Result.cancel, the admin tool, the dashboard)."""


class DependencyFailed(TaskError):
    """A call this one depends on failed or was cancelled, so this one never ran."""


# The endings that autocron decides itself, by the type name their error carries.
_ENDINGS: "dict[str, type[TaskError]]" = {
    f"autocron.{kind.__name__}": kind
    for kind in (TaskTimeout, WorkerLost, Cancelled, DependencyFailed)}


class DatabaseError(AutocronError):
    """The SQLite file cannot be used; the message names the path and what to do."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


class _DataRefused(DatabaseError):
    """The database refused this data (a value too large for it, text it cannot hold), as
    opposed to the database being unavailable for a while (a full disk, a server restarting):
    writing the same again would fail again. The pool fails the one task whose outcome it is;
    every other DatabaseError is weather that the pool waits out (_Pool._outage)."""


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
_MONTH_WORDS = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
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

    def __init__(self, index: int, name: str, low: int, high: int,
                 names: Optional[tuple[str, ...]], hint: str) -> None:
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
    if text.isdigit() and text.isascii():
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


_EVERY = tuple(tuple(range(f.low, min(f.high, 6) + 1 if f.index == 4 else f.high + 1))
               for f in _FIELDS)


class _Spec:
    """The parsed fields of one expression (value tuples and day extensions)."""

    __slots__ = ("minutes", "hours", "doms", "months", "dows", "last_day", "last_weekday",
                 "nearest", "last_dows", "nth_dows", "dom_star", "dow_star", "wildcard",
                 "texts")
    minutes: tuple[int, ...]         # the values each field allows, ascending
    hours: tuple[int, ...]
    doms: tuple[int, ...]
    months: tuple[int, ...]
    dows: tuple[int, ...]
    texts: tuple[str, ...]           # the five fields as written (macros expanded)
    dom_star: bool                   # day-of-month starts with * (or is ?): the day rule
    dow_star: bool
    wildcard: bool                   # minute or hour starts with *: follows the real clock

    def __init__(self) -> None:
        self.last_day = self.last_weekday = False
        self.nearest: set[Any] = set()       # nW: n
        self.last_dows: set[Any] = set()     # nL: weekday (0 = Sunday)
        self.nth_dows: set[Any] = set()      # n#k: (weekday, k)


def _parse_dom_item(spec: _Spec, field: _Field, item: str, values: set[Any]) -> None:
    if "L" not in item and "W" not in item:       # the common case: a plain item
        values.update(_read_range(field, item))
    elif item == "L":
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


def _parse_dow_item(spec: _Spec, field: _Field, item: str, values: set[Any]) -> None:
    if "L" not in item and "#" not in item:       # the common case: a plain item
        values.update(v % 7 for v in _read_range(field, item))
        return
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


def _parse_field(spec: _Spec, field: _Field, text: str) -> tuple[Any, ...]:
    """The sorted values of one field; day extensions go into `spec`."""
    if text == "*":
        return _EVERY[field.index]
    if text.isdigit() and text.isascii() and len(text) <= 2:     # the common "30", "9"
        value = int(text)
        if field.low <= value <= field.high:
            return (value % 7,) if field.index == 4 else (value,)
    if "?" in text:
        if text == "?" and field.index in (2, 4):
            return _parse_field(spec, field, "*")
        raise _fail(field, "'?' is only allowed as the entire day-of-month or day-of-week "
                           f"field, got {_quote(text)}", text)
    if not _ITEM_CHARS.match(text):
        bad = next(ch for ch in text if not _ITEM_CHARS.match(ch))
        raise _fail(field, f"unexpected character {bad!r} in {_quote(text)}; {field.hint}",
                    text)
    values: set[Any] = set()
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


_PRINTABLE = re.compile(r"[ -~\t]*\Z")


def _check_characters(text: str) -> None:
    if _PRINTABLE.match(text):
        return
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


def _split(text: str) -> list[Any]:
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


def _expand_macro(parts: list[Any]) -> list[Any]:
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


def _count_message(parts: list[Any]) -> str:
    message = (f"expected 5 fields (minute hour day-of-month month day-of-week), "
               f"got {len(parts)}")
    glued = any(p[-1] in ",-/" for p in parts[:-1]) or any(p[0] in ",-/" for p in parts[1:])
    if glued:
        return message + "; spaces are not allowed inside a field (write 1,2 not 1, 2)"
    if len(parts) in (6, 7):
        return message + " (seconds and year fields are not supported)"
    return message


def _dom_zero_hint(parts: list[Any]) -> Optional[str]:
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


def _matching_days(spec: _Spec, length: int, first_weekday: int) -> tuple[Any, ...]:
    """Days 1..length that match, for a month whose 1st is `first_weekday` (0 = Sunday)."""
    doms, dows = set(spec.doms), set(spec.dows)
    def weekday_of(day: int) -> int:
        return (first_weekday + day - 1) % 7
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


def _keyword_values(name: str, low: int, high: int, value: Any) -> list[Any]:
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


def _keyword_expression(fields: dict[Any, Any]) -> str:
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


def _render_values(values: list[Any]) -> str:
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


def _render_star(values: tuple[Any, ...], low: int, span: int) -> str:
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


def _join_words(words: list[Any], conjunction: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _runs(values: tuple[Any, ...]) -> list[Any]:
    """Consecutive runs of values as (first, last) pairs."""
    runs: list[Any] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def _describe_set(values: tuple[Any, ...], word: Callable[[int], str],
                  through: str = "through") -> str:
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


def _uniform_step(values: tuple[Any, ...], span: int) -> int:
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
        def word(i: int) -> str:          # a Monday-first index to its name
            return _DAY_WORDS[(i + 1) % 7]
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
    return moment.replace(tzinfo=None) - (moment.utcoffset() or _dt.timedelta())


def _resolve_zone(tz: Any) -> Optional[_dt.tzinfo]:
    if tz is None or isinstance(tz, _dt.tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be an IANA zone name or a tzinfo, not {type(tz).__name__}")
    import zoneinfo         # where zones are named: a worker may never need it (1 MB)
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
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

    __slots__ = ("_spec", "_text", "_tz", "_day_cache", "_month_cache", "_transitions")

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
        self._text = ""        # the normalised text, rendered when first asked for
        self._tz = _resolve_zone(tz)
        self._day_cache: dict[Any, Any] = {}
        self._month_cache: dict[Any, Any] = {}
        self._transitions: dict[Any, Any] = {}     # (zone, year, month, day) -> fire instants

    # -- identity

    def __str__(self) -> str:
        if not self._text:
            self._text = " ".join(_render_field(self._spec, i) for i in range(5))
        return self._text

    def __repr__(self) -> str:
        zone = f", tz={str(self._tz)!r}" if self._tz is not None else ""
        return f"CronExpression({str(self)!r}{zone})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return str(self) == str(other) and self._tz == other._tz

    def __hash__(self) -> int:
        return hash((str(self), str(self._tz)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (CronExpression, (str(self), self._tz))

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
        raise CronError(f"{str(self)!r} has no fire time within {_SEARCH_YEARS} years after "
                        f"{after} (every match falls into a daylight-saving gap or past 9999)")

    def iter(self, after: Optional[_dt.datetime] = None) -> Iterator[_dt.datetime]:
        """Fire times strictly after `after` (default: now), in increasing order."""
        if after is None:     # the one clock seam, so that tests can fix "now"
            after = _dt.datetime.fromtimestamp(_clock(), self._tz)
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

    def _days(self, year: int, month: int) -> tuple[Any, ...]:
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

    def _walk_months(self, year: int, month: int,
                     day: int) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """(year, month, matching days) of every month from the given date on, in order."""
        months, days_of, cached = self._spec.months, self._days, self._month_cache.get
        month_list = months[bisect_left(months, month):]
        while year <= _dt.MAXYEAR:
            for m in month_list:
                days = cached((year, m))       # inlined: this loop is the hot path for
                if days is None:               # sparse schedules such as "0 0 29 2 *"
                    days = days_of(year, m)
                if day > 1 and m == month:
                    days = days[bisect_left(days, day):]
                if days:
                    yield year, m, days
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
        walk = self._walk_months(start.year, start.month, start.day)
        for year, month, days in walk:         # the first month: it may hold the start day
            if (year, month, days[0]) == (start.year, start.month, start.day):
                yield from self._rest_of_day(start, hours, minutes, None)
                days = days[1:]
            for day in days:
                for hour in hours:
                    for minute in minutes:
                        yield datetime(year, month, day, hour, minute)
            break
        for year, month, days in walk:         # every later month, the same generator
            for day in days:
                for hour in hours:
                    for minute in minutes:
                        yield datetime(year, month, day, hour, minute)

    @staticmethod
    def _rest_of_day(start: _dt.datetime, hours: tuple[int, ...], minutes: tuple[int, ...],
                     zone: Any) -> Iterator[_dt.datetime]:
        """The fire times of the start's own day, from its minute on."""
        year, month, day = start.year, start.month, start.day
        for hour in hours[bisect_left(hours, start.hour):]:
            low = start.minute if hour == start.hour else 0
            for minute in minutes[bisect_left(minutes, low):]:
                yield _dt.datetime(year, month, day, hour, minute, tzinfo=zone)

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
        for year, month, days in self._walk_months(*first):
            if year > last_year + _SEARCH_YEARS:
                return
            plain_month = _plain(zone, year, month, 1, year, month, _month_length(year, month))
            for day in days:
                if not (plain_month or _plain(zone, year, month, day, year, month, day)):
                    for moment in self._transition_day(year, month, day, zone):
                        instant = _utc_naive(moment)
                        if instant > last:
                            last, last_year = instant, year
                            yield moment
                    continue
                last_year = year
                if (year, month, day) == first:
                    yield from self._rest_of_day(start, hours, minutes, zone)
                    continue
                for hour in hours:
                    for minute in minutes:
                        yield datetime(year, month, day, hour, minute, tzinfo=zone)

    def _transition_day(self, year: int, month: int, day: int, zone: Any) -> list[Any]:
        """Every fire instant of a local day with a daylight-saving transition, sorted.

        Fixed-time jobs run a time in a gap at the first instant after it and a repeated time
        once, on the first pass; wildcard jobs follow the real clock (cron-spec.md 7.4).
        Cached: a scheduler asks about the same day again every minute.
        """
        key = (zone, year, month, day)
        out = self._transitions.get(key)
        if out is None:
            if len(self._transitions) > 64:
                self._transitions.clear()
            out = self._transitions[key] = self._transition_instants(year, month, day, zone)
        return out

    def _transition_instants(self, year: int, month: int, day: int, zone: Any) -> list[Any]:
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


def _plain(zone: Any, year: int, month: int, day: int, end_year: int, end_month: int,
           end_day: int) -> bool:
    """True when local time has one UTC offset from a day's start to another day's end.

    Such a span has no daylight-saving gap and no repeated time, so wall-clock times map to
    instants one to one. (Two transitions that cancel out within one span would go unnoticed;
    no zone in the tz database has them within a month.)
    """
    start = _dt.datetime(year, month, day, tzinfo=zone)
    end = _dt.datetime(end_year, end_month, end_day, 23, 59, tzinfo=zone)
    offset = start.utcoffset()
    return (offset == start.replace(fold=1).utcoffset() == end.utcoffset()
            == end.replace(fold=1).utcoffset())


# ==============================================================================================
# Task records and serialisation
# ==============================================================================================
#
# A task is one row in SQLite. Its `record` column holds a pickled dict (new keys get defaults
# when an older row is read), with the function as a reference that a worker can resolve:
# ("import", module, qualname) for a function its module defines at top level. Results and
# errors come back as data: the pickled return value, or the exception's type, message and
# formatted traceback text - never a pickled exception object.

_RECORD_DEFAULTS = {"v": 1, "args": (), "kwargs": {}, "retry_on": None}


class _Outcome(NamedTuple):
    """How one attempt of a task ended: what a worker reports and the store writes."""

    id: int                          # the task's row id
    status: str                      # "ready", "error" or "cancelled"
    value: Optional[bytes] = None    # the pickled return value ("ready")
    error: Optional[dict[Any, Any]] = None     # {"type", "message", "traceback"} (otherwise)
    started: Optional[float] = None  # wall-clock times of the attempt
    finished: Optional[float] = None
    output: str = ""                 # what the task printed, the tail
    summary: Optional[str] = None    # repr of the value, shortened, for tables
    cron: Optional[str] = None       # the cron job this run belongs to
    retryable: bool = True           # an error may run again while retries are left
    retry_at: Optional[float] = None  # decided by the pool (_decide_retries): it runs again
    retire: bool = False             # a cron run found its job no longer declared (_JobRetired)
    free: bool = False               # it runs again at once without using a retry: its
                                     # worker was ended for another call (a blocked loop)


class _ResultRow(NamedTuple):
    """What a Result shows: a task's row as the store reads it, or a call run here."""

    uuid: str
    name: str                        # module.qualname of the function
    args: str                        # the arguments as written, shortened
    status: str                      # as stored ("queued" included)
    created: Optional[float]
    started: Optional[float]
    finished: Optional[float]
    value: Any                       # the return value, pickled unless `pickled` is False
    error: Optional[str]             # JSON of {"type", "message", "traceback"}
    output: str = ""
    summary: Optional[str] = None    # repr of the value, shortened
    attempts: int = 1
    pickled: bool = True             # False: a call run here keeps its value as it is


def _sha256(data: bytes) -> str:
    """SHA-256 in hex. hashlib is imported here, where a digest is needed: it loads OpenSSL
    (3.7 MB), which a worker that runs plain calls never needs."""
    import hashlib
    return hashlib.sha256(data).hexdigest()


def _new_uuid() -> str:
    """A random (version 4) UUID in hex, as uuid.uuid4().hex makes it."""
    data = bytearray(os.urandom(16))
    data[6] = data[6] & 0x0F | 0x40
    data[8] = data[8] & 0x3F | 0x80
    return data.hex()


def _url_secret(size: int) -> str:
    """A secret for a URL, of `size` random bytes (the dashboard's)."""
    import secrets          # it loads OpenSSL: never in a worker
    return secrets.token_urlsafe(size)


def _pauses(first: float = 0.0005, most: float = 0.05) -> Iterator[float]:
    """Waits that double from `first` up to `most`: how a caller polls the database."""
    pause = first
    while True:
        yield pause
        pause = min(pause * 2, most)


def _failure(message: str, ending: Optional[type] = None) -> dict[Any, Any]:
    """An error autocron states itself; `ending`: its TaskError class (TaskTimeout, ...)."""
    kind = "" if ending is None else f"autocron.{ending.__name__}"
    return {"type": kind, "message": message, "traceback": ""}


class _NewCall(NamedTuple):
    """A call on its way into the database (the stores' add_calls())."""
    args: str                        # its arguments as text
    record: bytes
    key: Optional[str] = None        # its unique key
    deps: tuple[str, ...] = ()       # the ids of the calls it depends on, each once
    failed: Optional[dict[Any, Any]] = None   # the error it ends with at once, if any
    step: Optional[str] = None       # its step in the task that makes it (durable steps)


class _Dependency(NamedTuple):
    """A call that another depends on, as the stores read it."""
    id: int
    token: str
    status: str
    name: str
    error: Optional[str]


class _Start(NamedTuple):
    """How a call that depends on others is stored (_starting)."""
    status: str                         # 'waiting', 'blocked' or 'error'
    waits: int                          # its dependencies not finished yet
    error: Optional[dict[Any, Any]]     # why it ended at once


def _starting(deps: list[_Dependency], failed: Optional[dict[Any, Any]] = None) -> _Start:
    """A new call with these dependencies: it ends at once (`failed`, or the first that
    failed or was cancelled), waits for the unfinished ones ('blocked'), or is due."""
    bad = next((d for d in deps if d.status in ("error", "cancelled")), None)
    if bad is not None and failed is None:
        failed = _dependency_failed(bad.name, f"{bad.token}-{bad.id}", bad.status, bad.error)
    waits = sum(1 for d in deps if d.status not in _FINISHED)
    return _Start("error" if failed else "blocked" if waits else "waiting", waits, failed)


def _dependency_failed(name: str, uid: str, status: str, error: Optional[str]
                       ) -> dict[Any, Any]:
    """The error of a call whose dependency `uid` (of the function `name`) ended with
    `status` and `error` (JSON): DependencyFailed, naming it and its error's first line."""
    found = json.loads(error) if error else {}
    if found.get("root"):        # it did not run either: name it and the first that failed
        failed = _failure(f"its dependency {name} ({uid}) did not run: {found['root']}",
                          DependencyFailed)
        return dict(failed, root=found["root"])
    if status == "cancelled":
        root = f"{name} ({uid}) was cancelled"
    else:
        head = f"{found.get('type')}: {found.get('message', '')}" if found.get("type") \
            else found.get("message", "")
        root = f"{name} ({uid}) failed: {head.splitlines()[0] if head.strip() else 'no message'}"
    return dict(_failure(f"its dependency {root}", DependencyFailed), root=root)


def _no_nul(text: str) -> str:
    """What a task printed, as PostgreSQL's text takes it: a NUL character, which it refuses
    (the outcome could never be written), becomes its escape, `\\x00`."""
    return text.replace("\x00", "\\x00")


def _safe_text(text: str) -> str:
    """`text` as SQLite (and any terminal) takes it: a lone surrogate - what `surrogateescape`
    file names give, or a custom __repr__ - becomes its escape, `\\udcff`, instead of an
    error that would cost the write."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class _Claimed(NamedTuple):
    """A task a claim handed to a worker (the stores' claim())."""
    id: int
    uuid: str
    record: bytes
    cron: Optional[str]
    timeout: Optional[float]
    priority: int
    attempts: int = 0      # attempts counted before this claim (see _StartLog)
    asynchronous: bool = False   # an async def call (it runs beside others)
    queue: str = "default"
    place: int = 0         # the index of the place it goes to (claim()'s `pids`)


def _outranking(highest: Optional[int], heard: Union[bytes, str]) -> Optional[int]:
    """The highest priority of the calls a pool heard of, after hearing `heard` (a wake-up's
    "!<priority>" or a notification's payload; nothing after "!" or "": priority 0)."""
    text = heard.decode("ascii", "replace") if isinstance(heard, bytes) else heard
    try:
        priority = int(text.lstrip("!") or 0)
    except ValueError:        # not ours: a wake-up all the same
        priority = 0
    return priority if highest is None else max(highest, priority)


class _PoolId(NamedTuple):
    """A pool among those of a PostgreSQL database: its machine's name (as shown) and its
    lease, which no other pool has; when it last renewed the lease (server time), if known."""
    name: str
    lease: int
    heartbeat: Optional[float] = None


def _check_queue(name: Any) -> str:
    """A queue's name, or ValueError naming the accepted form."""
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_QUEUE or not name.strip() or \
            not name.isprintable():
        raise ValueError(f"a queue's name is printable text of 1 to {_MAX_QUEUE} characters, "
                         f"got {_shorten(repr(name), 60)}")
    return name


class _Limit(NamedTuple):
    """A queue's limits, as stored (autocron.limit()): None is no limit."""
    queue: str
    concurrency: Optional[int]       # at most this many of its calls held or running
    rate: Optional[int]              # at most this many starts in any window of
    per: Optional[float]             # this many seconds


_RATE_UNITS = {"second": 1.0, "s": 1.0, "minute": 60.0, "m": 60.0, "hour": 3600.0, "h": 3600.0}
_RATE_FORMS = '"N/second", "N/minute" or "N/hour" (or N/s, N/m, N/h), N 1 or more'


def _parse_rate(text: Any) -> tuple[int, float]:
    """(N, the window in seconds) of a rate "N/second|minute|hour" (or N/s, N/m, N/h)."""
    found = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([a-z]+)\s*", text) \
        if isinstance(text, str) else None
    if found is None or found.group(2) not in _RATE_UNITS or int(found.group(1)) < 1:
        raise ValueError(f"rate must be {_RATE_FORMS}, or None (no rate limit); got "
                         f"{_shorten(repr(text), 60)}")
    return int(found.group(1)), _RATE_UNITS[found.group(2)]


def _rate_text(rate: Optional[int], per: Optional[float]) -> Optional[str]:
    """A stored rate as limit() takes it ("100/minute"); None: no rate limit."""
    if rate is None or per is None:
        return None
    unit = {1.0: "second", 60.0: "minute", 3600.0: "hour"}.get(per, f"{per:g} s")
    return f"{rate}/{unit}"


def _allowances(limits: dict[str, _Limit], busy: dict[str, int],
                recent: dict[str, int]) -> dict[str, int]:
    """How many more calls of each limited queue a claim may take now: its concurrency less
    the calls held or running (`busy`), its rate less the starts in the window (`recent`)."""
    allowed = {}
    for name, limit in limits.items():
        room = [_LARGEST_INT]
        if limit.concurrency is not None:
            room.append(limit.concurrency - busy.get(name, 0))
        if limit.rate is not None:
            room.append(limit.rate - recent.get(name, 0))
        allowed[name] = max(0, min(room))
    return allowed


# The places a claim fills (claim()'s `kinds`, a letter a place): an idle worker; room
# beside a worker's async calls, a place behind a running synchronous call for an async
# call (both for async calls only); a place behind a running synchronous call, one behind
# a worker's async calls (both for synchronous calls only).
_IDLE, _ROOM, _AFTER_SYNC, _BEHIND, _AFTER_ASYNC = "i", "r", "c", "b", "a"


def _plain_places(kinds: str) -> bool:
    """Whether every place of a claim but idle workers takes synchronous calls only: the
    most urgent calls can go to the places in order, an async one only to an idle worker."""
    return not kinds.strip(_IDLE + _BEHIND + _AFTER_ASYNC)


def _async_left(rows: list[Any], chosen: list[tuple[int, Any]]) -> bool:
    """Whether a claim left an async call it saw (`rows`, each ending with its async flag
    and queue) without a place: the pool then offers places behind synchronous calls."""
    taken = {id(row) for _, row in chosen}
    return any(row[-2] and id(row) not in taken for row in rows)


def _kinds_missing(rows: list[Any], kinds: str) -> list[tuple[bool, int]]:
    """A claim's candidates (`rows`, each ending with its async flag and queue) fill its
    window, all of one kind, while places take only the other (room for async calls, places
    for synchronous ones behind running calls): [(asynchronous, how many)] to look for
    further, so that a flood of one kind never starves the other."""
    missing = []
    rooms = kinds.count(_ROOM) + kinds.count(_AFTER_SYNC)
    if rooms and not any(row[-2] for row in rows):
        missing.append((True, rooms))
    sync_places = len(kinds) - rooms
    if sync_places and all(row[-2] for row in rows):
        missing.append((False, sync_places))
    return missing


def _assign(rows: list[Any], kinds: str, allowed: dict[str, int]) -> list[tuple[int, Any]]:
    """Which of the candidate rows (in order of urgency; each ends with its async flag
    and its queue) a claim takes, and the place each goes to (an index into `kinds`):
    - an async call goes to room beside other async calls; an idle worker takes one only
      once the synchronous calls of the window have had it (they can run nowhere else,
      while async calls share rooms), and a place behind a synchronous call last (one a
      worker: never more than async_concurrency);
    - a call of a limited queue, only while its allowance (`allowed`, used up as it goes)
      lasts, and only to an idle worker or room: it never waits behind another call;
    - any other call to an idle worker first, then behind a running call, last behind a
      worker's async calls.
    A row that finds no place of its kinds is skipped, and later ones may still fit."""
    free: dict[str, list[int]] = {kind: [] for kind in (_IDLE, _ROOM, _AFTER_SYNC, _BEHIND,
                                                       _AFTER_ASYNC)}
    for place, letter in enumerate(kinds):
        free[letter].append(place)
    for places in free.values():
        places.reverse()                # popped from the end: the first place first
    left = dict(allowed)
    chosen: list[tuple[int, Any]] = []
    if not allowed and _plain_places(kinds) and not any(row[-2] for row in rows):
        return list(enumerate(rows[:len(kinds)]))   # synchronous calls, places in order
    later: list[Any] = []               # async calls that found no room: idle workers next
    for rows_now, idle_too in ((rows, False), (later, True)):
        for row in rows_now:
            asynchronous, queue = row[-2], row[-1]
            limited = queue in left
            if limited and left[queue] < 1:
                continue
            if asynchronous:        # a limited call never waits behind another
                order = _ROOM + (_IDLE + ("" if limited else _AFTER_SYNC) if idle_too else "")
            else:
                order = _IDLE if limited else _IDLE + _BEHIND + _AFTER_ASYNC
            kind = next((k for k in order if free[k]), None)
            if kind is None:
                if asynchronous and not idle_too:
                    later.append(row)
                continue
            if limited:
                left[queue] -= 1
            chosen.append((free[kind].pop(), row))
            if len(chosen) == len(kinds):
                return chosen
    return chosen


class _Options:
    """How a delayed function's calls run: retries, timeout, priority, queue (checked at
    decoration)."""

    __slots__ = ("retries", "retry_delay", "backoff", "timeout", "priority", "queue",
                 "asynchronous")

    def __init__(self, retries: int = 0, retry_delay: float = 0, backoff: float = 1.0,
                 timeout: Optional[float] = None, priority: int = 0,
                 queue: str = _DEFAULT_QUEUE, asynchronous: bool = False):
        def number(name: str, value: Any, low: float, strict: bool = False) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    value != value or (value <= low if strict else value < low):
                bound = f"greater than {low}" if strict else f"at least {low}"
                raise ValueError(f"{name} must be a number {bound}, got {value!r}")
            return float(value)
        if isinstance(retries, bool) or not isinstance(retries, int) or \
                not 0 <= retries <= _LARGEST_INT:
            raise ValueError(f"retries must be a whole number from 0 to {_LARGEST_INT}, got "
                             f"{_shorten(repr(retries), 40)}")
        if isinstance(priority, bool) or not isinstance(priority, int) or \
                not -_LARGEST_INT - 1 <= priority <= _LARGEST_INT:
            raise ValueError(f"priority must be an int from {-_LARGEST_INT - 1} to "
                             f"{_LARGEST_INT} (higher runs first), got "
                             f"{_shorten(repr(priority), 40)}")
        self.retries, self.priority = retries, priority
        self.retry_delay = number("retry_delay", retry_delay, 0)
        self.backoff = number("backoff", backoff, 1)
        self.timeout = None if timeout is None else number("timeout", timeout, 0, strict=True)
        self.queue = _check_queue(queue)
        self.asynchronous = asynchronous      # an async def function's: run beside others

    def columns(self) -> tuple[Any, ...]:
        """Its columns of a stored call: priority, queue, asynchronous, retries, retry_delay,
        backoff, timeout."""
        return (self.priority, self.queue, 1 if self.asynchronous else None, self.retries,
                self.retry_delay, self.backoff, self.timeout)


def _is_async(func: Callable[..., Any]) -> bool:
    """Whether calling `func` makes a coroutine that a worker runs beside other async calls
    (an async def function; without importing inspect, which a worker does not need). A
    function taken for the wrong kind still runs: the worker awaits whatever coroutine a
    call returns."""
    code = getattr(func, "__code__", None)
    return isinstance(code, types.CodeType) and bool(code.co_flags & _CO_COROUTINE)


_PLAIN = _Options()


def _shorten(text: str, limit: int, tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3):] if tail else text[:limit - 3] + "..."


def _cut_middle(text: str, limit: int = _MAX_ERROR_TEXT) -> str:
    """`text` in at most `limit` characters: its start and its end, and between them how
    many characters were cut. An error's start says what went wrong and its end where (the
    innermost frame, the exception's line); a 20 MB message stored whole would be read by
    every Result and every refresh of the dashboard."""
    if len(text) <= limit:
        return text
    keep = (limit - 64) // 2     # the marker takes fewer than 64 characters
    marker = f"\n... [{len(text) - 2 * keep:,} characters cut] ...\n"
    return text[:keep] + marker + text[-keep:]


def _function_name(func: Callable[..., Any]) -> str:
    return _safe_text(f"{getattr(func, '__module__', '?')}."
                      f"{getattr(func, '__qualname__', repr(func))}")


def _short_id(uid: str) -> str:
    """A task's id as tables show it: the start of its token and its row id ("3f9a1c-1042"),
    which tell apart the calls of one map() (they share a token); get_result() takes it."""
    token, _, row = uid.rpartition("-")
    return f"{token[:6]}-{row}" if token else uid


def _importable(obj: Any) -> bool:
    """True when a worker finds `obj` by importing its module and walking its qualname."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not isinstance(qualname, str) or module == "__main__" or "<" in qualname:
        return False
    found = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj or getattr(found, "_autocron_function", None) is obj


# ---- policy: when a task runs again, when a cron job runs next ------------------------------
#
# Plain functions of plain values: the pool decides with them and hands the store the
# results, which it writes as they are (another backend implements no policy).


class _RetryTerms(NamedTuple):
    """What decides whether a failed attempt runs again: a task's row as stored."""

    attempts: int                    # the attempts started so far, this one included
    retries: int
    retry_delay: float
    backoff: float


class _CronEnd(NamedTuple):
    """The current run of a cron job ended (or was withdrawn): the job is free again."""

    name: str
    schedule: "CronExpression"
    ended: float                     # when the run ended: the next due time counts from it
    due: Optional[float] = None      # the due time the run was for: never due again, even
                                     # where a lagging clock ended the run before it


class _CronRow(NamedTuple):
    """A cron job as the admin tool and the dashboard show it."""

    name: str
    expression: str                  # as registered, with its zone
    schedule: "CronExpression"
    next_due: Optional[float]
    last_run: Optional[float]
    running: Optional[str]           # the id of its current run, if any
    paused: bool                     # no runs start until it is resumed
    retired: bool = False            # its code no longer declares it (_JobRetired)


class _Interrupted(NamedTuple):
    """A task that had started when its pool ended (or its worker, unseen): it is settled."""

    id: int
    cron: Optional[str]              # the cron job it is a run of, if any


class _PoolPids(NamedTuple):
    """The processes of a pool as it last published them (none known: None, None, [])."""

    owner: Optional[int]
    manager: Optional[int]
    workers: list[Any]


class _PoolRow(NamedTuple):
    """This machine's pool as the admin tool and the dashboard show it."""

    owner: int
    manager: Optional[int]
    started: float                   # when it took the database
    workers: list[Any]                    # their pids


class _MachineRow(NamedTuple):
    """A machine's pool on a shared database (PostgreSQL), with its last heartbeat."""

    name: str
    owner: int
    manager: Optional[int]
    workers: list[Any]
    heartbeat: float
    since: float                     # seconds since, by the server's clock


class _MetricValues(NamedTuple):
    """What GET /metrics shows, as a store reads it (metric_values)."""

    counters: list[Any]      # (function, queue, kind, label, n, total): what the ends added
    held: list[Any]          # (function, queue, status, n, the oldest due time) of the calls
                             # handed to workers
    waiting: list[Any]       # (function, queue, due by now, n, the oldest due time)
    blocked: list[Any]       # (function, queue, n) of the calls waiting for dependencies
    limits: dict[str, Any]   # {queue: _Limit}
    starts: dict[str, int]   # {queue: its starts in its rate's window}


class _TaskRow(NamedTuple):
    """A task as the admin tool's lists and the dashboard's pool page show it."""

    uid: str
    name: str
    args: str
    status: str
    priority: int
    due: float
    created: float
    started: Optional[float]
    finished: Optional[float]
    summary: Optional[str]           # of its value
    error: Optional[str]             # as stored (JSON)
    worker: Optional[int]
    value: Optional[bytes] = None    # the pickled value (the admin tool's JSON)


class _FinishedRow(NamedTuple):
    """A task that finished, for the dashboard's statistics."""

    name: str
    status: str
    started: Optional[float]
    finished: float


class _TaskFilter(NamedTuple):
    """What the dashboard's task list shows: calls with this public status, whose function's
    name holds `function`, whose id starts with `prefix`, made in [since, until)."""

    status: Optional[str] = None
    function: Optional[str] = None
    prefix: Optional[str] = None     # of the token (hex digits)
    since: Optional[float] = None
    until: Optional[float] = None


class _CallDetails(NamedTuple):
    """What a call's page shows beside its result row (call_details)."""

    retries: int                     # its policy: retries left after the first attempt,
    retry_delay: float               # the delay before the first retry,
    backoff: float                   # its factor at each further one,
    timeout: Optional[float]         # and the time an attempt may run
    priority: int
    worker: Optional[int]            # the pid of the worker that ran its last attempt
    machine: Optional[str]           # and its machine (PostgreSQL)
    cron: Optional[str]              # the cron job it is a run of
    due: float                       # when its last attempt was (or next is) due


class _TaskPage(NamedTuple):
    """A page of the dashboard's task list."""

    rows: list[Any]                       # [_ResultRow], newest first
    lowest: Optional[int]            # a filtered walk stopped at this row id, short of a
                                     # full page (None: it reached the oldest, or filled it)


class _CallLinks(NamedTuple):
    """The calls linked to one call, each [(id, function, status)], the first
    _LINKS_SHOWN of each: what it depends on, what depends on it, the task that made it,
    and the calls it made (its steps)."""
    deps: list[Any]
    dependents: list[Any]
    parents: list[Any]
    steps: list[Any]


class _CronState(NamedTuple):
    """A cron job as a pool that ended left it (see _resume_due)."""

    name: str
    schedule: "CronExpression"
    catch_up: bool
    next_due: Optional[float]
    running: Optional[str]           # the id of its current run, if any
    live: bool                       # that run is still waiting to start


def _retry_due(attempts: int, retries: int, retry_delay: float, backoff: float,
               now: float, jitter: float = 0.0) -> Optional[float]:
    """When a failed attempt runs again (the attempts so far counted), or None: used up.
    `jitter` (0 to _RETRY_JITTER) lengthens the delay by that part, so that calls that
    failed together do not all run again in the same instant."""
    if attempts > retries:
        return None
    return now + retry_delay * backoff ** max(attempts - 1, 0) * (1 + jitter)


def _decide_retries(outcomes: list[Any], terms: dict[Any, _RetryTerms], now: float,
                    jitter: Callable[[], float] = random.random) -> list[Any]:
    """The outcomes as they are written: a retryable failure of a task with retries left
    gets `retry_at`, when it runs again (`terms`: {task id: _RetryTerms} as stored)."""
    decided = []
    for outcome in outcomes:
        if outcome.free:
            decided.append(outcome._replace(retry_at=now))
            continue
        term = terms.get(outcome.id) if outcome.status == "error" and outcome.retryable \
            else None
        due = None if term is None else _retry_due(*term, now, _RETRY_JITTER * jitter())
        decided.append(outcome if due is None else outcome._replace(retry_at=due))
    return decided


def _local_zone() -> Optional[_dt.tzinfo]:
    """The machine's zone with its daylight-saving rules, or None for naive local time."""
    global _LOCAL_ZONE
    if _LOCAL_ZONE is False:
        _LOCAL_ZONE = None
        name = os.environ.get("TZ", "").lstrip(":")
        with contextlib.suppress(Exception):
            import zoneinfo     # a build without tzdata still imports it
            if name:
                _LOCAL_ZONE = zoneinfo.ZoneInfo(name)
            elif os.path.exists("/etc/localtime"):
                with open("/etc/localtime", "rb") as file:
                    _LOCAL_ZONE = zoneinfo.ZoneInfo.from_file(file, key="localtime")
    zone: Optional[_dt.tzinfo] = _LOCAL_ZONE
    return zone


_LOCAL_ZONE: Any = False


def _next_due(schedule: "CronExpression", after: float) -> float:
    """The next fire time of a cron job after an epoch time, as an epoch time."""
    zone = schedule.tz or _local_zone()
    if zone is None:
        return schedule.next(_dt.datetime.fromtimestamp(after)).timestamp()
    return schedule.next(_dt.datetime.fromtimestamp(after, zone)).timestamp()


def _next_runs(ended: list[Any], now: float) -> list[Any]:
    """[(job name, next due time)] for cron jobs whose run ended (_CronEnd): counted from the
    end of the run (else from `now`), so that runs never overlap, and from no earlier than
    the due time the run was for: a machine whose clock lags never makes a due time that a
    run was started for due again."""
    return [(end.name, _next_due(end.schedule, max(end.ended or now, end.due or 0.0)))
            for end in ended]


def _resume_due(job: _CronState, now: float) -> Optional[float]:
    """The next due time of a job that a pool which ended left behind, or None: as it is.

    A run still waiting to start keeps its job running. A job that was running, or whose due
    time was missed by more than _MISFIRE_GRACE (the pool was down), runs at once if it asks
    to catch up on a missed time, else at its next due time from now; one missed by less runs
    now all the same (a pool taken over after its owner ended).
    """
    if job.live:
        return None
    if job.running or job.next_due is None or job.next_due < now - _MISFIRE_GRACE:
        if job.catch_up and job.next_due is not None and job.next_due < now:
            return now
        return _next_due(job.schedule, now)
    return None


# ---- policy: what an attempt's end adds to the metrics ---------------------------------------
#
# GET /metrics counts from the database: the stores add to its counters and histograms in the
# transaction that writes an attempt's end, so that each end counts once whichever machine
# writes it, and no cleanup or purge lowers them. Keys: (function, queue, kind, label), where
# kind "ended" has the final status as its label, "retried" none, and the histograms "run"
# (started to finished) and "wait" (due to started) the upper bound of a bucket; each value is
# [how many, their sum]. A histogram's buckets are stored apart and added up when scraped.

_METRIC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0, 900.0, 3600.0)
_BUCKET_LABELS = tuple(repr(bound) for bound in _METRIC_BUCKETS) + ("+Inf",)   # le="..."


class _Ending(NamedTuple):
    """A call whose attempt ends, as its row was before the end is written."""

    id: int
    name: str                        # the function's module.qualname
    queue: str
    due: float                       # when the attempt was due
    status: str                      # "queued" (its start not written yet) or "running"
    started: Optional[float] = None  # when it started, as written (wall clock)


def _bucket(seconds: float) -> str:
    """The histogram bucket of a duration: its upper bound as the le label writes it."""
    return _BUCKET_LABELS[bisect_left(_METRIC_BUCKETS, seconds)]


def _add_metric(deltas: dict[tuple[str, ...], list[Any]], key: tuple[str, ...], value: float,
                n: int = 1) -> None:
    """Add `n` observations that sum to `value` to `deltas` at `key`."""
    entry = deltas.setdefault(key, [0, 0.0])
    entry[0] += n
    entry[1] += value


def _metric_deltas(outcomes: list[Any], endings: list[_Ending],
                   deltas: dict[tuple[str, ...], list[Any]]) -> None:
    """Add to `deltas` what these outcomes (_Outcome) of the calls `endings` add to the
    metrics. An outcome without its call among `endings` is not written (not live) and counts
    nothing; a rerun that uses no retry (_Outcome.free) is no retry."""
    calls = {ending.id: ending for ending in endings}
    for outcome in outcomes:
        call = calls.get(outcome.id)
        if call is None:
            continue
        name, queue = call.name, call.queue
        if outcome.retry_at is None:
            _add_metric(deltas, (name, queue, "ended", outcome.status), 0.0)
        elif not outcome.free:
            _add_metric(deltas, (name, queue, "retried", ""), 0.0)
        # an attempt the pool ends itself (a timeout, a worker lost) started as written
        started = outcome.started if outcome.started is not None else \
            call.started if call.status == "running" else None
        if started is not None:
            waited = max(0.0, started - call.due)
            _add_metric(deltas, (name, queue, "wait", _bucket(waited)), waited)
            if outcome.finished is not None:
                ran = max(0.0, outcome.finished - started)
                _add_metric(deltas, (name, queue, "run", _bucket(ran)), ran)


# ---- functions by value ----------------------------------------------------------------------
#
# A function the workers cannot import (defined in __main__ - a notebook cell or a script - or
# a closure or lambda) travels as its code object (marshal), defaults, closure cells and the
# globals its code names; modules travel by name, importable functions and classes by
# reference, other functions and classes by value again, plain values as pickles. The payload
# is stored once per content hash in the `functions` table; tasks name the hash, and workers
# cache what they loaded, so a thousand calls cost one payload.

class _EmptyCell:
    """Marks a closure cell without a value (pickled by reference, so it stays itself)."""


_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"))
_global_names_cache: dict[Any, Any] = {}


def _global_names(code: types.CodeType) -> tuple[Any, ...]:
    """The global names a code object and the code nested in it use, sorted."""
    names = _global_names_cache.get(code)
    if names is None:
        import dis          # only where functions are shipped by value
        found = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS}
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(_global_names(const))
        if len(_global_names_cache) > 4096:
            _global_names_cache.clear()
        names = _global_names_cache[code] = tuple(sorted(found))
    return names


def _function_parts(func: types.FunctionType) -> list[Any]:
    """(label, value) of everything a function needs besides its code, for messages."""
    base = func.__globals__
    parts = [(f"global {name!r}", base[name]) for name in _global_names(func.__code__)
             if name in base]
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            parts.append((f"variable {name!r} of an enclosing function", cell.cell_contents))
        except ValueError:
            pass
    parts += [("a default argument", v) for v in func.__defaults__ or ()]
    parts += [(f"the default of {k!r}", v) for k, v in (func.__kwdefaults__ or {}).items()]
    return parts


def _referenced(func: types.FunctionType) -> list[Any]:
    """The values of _function_parts without their labels (cheap: checked on every call)."""
    base = func.__globals__
    values = [base[name] for name in _global_names(func.__code__) if name in base]
    for cell in func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:
            values.append(_EmptyCell)
    values += func.__defaults__ or ()
    values += (func.__kwdefaults__ or {}).values()
    return values


def _reduce_function(func: types.FunctionType) -> tuple[Any, ...]:
    base = func.__globals__
    names = [n for n in _global_names(func.__code__) if n in base and n != "__builtins__"]
    cells = []
    for cell in func.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_EmptyCell)
    state = ({n: base[n] for n in names}, func.__defaults__, func.__kwdefaults__, tuple(cells),
             func.__qualname__, func.__doc__, dict(func.__dict__))
    skeleton = (sys.version_info[:2], marshal.dumps(func.__code__), func.__name__,
                func.__module__, len(cells))
    return (_make_function, skeleton, state, None, None, _fill_function)


def _make_function(version: tuple[Any, ...], code: bytes, name: str, module: str,
                   cells: int) -> types.FunctionType:
    if tuple(version) != sys.version_info[:2]:
        raise TypeError(f"{name} was shipped by Python {version[0]}.{version[1]} and cannot "
                        f"run on Python {sys.version_info[0]}.{sys.version_info[1]}; call it "
                        "again from a process with the workers' Python")
    namespace = {"__builtins__": builtins, "__name__": module}
    closure = tuple(types.CellType() for _ in range(cells)) or None
    return types.FunctionType(marshal.loads(code), namespace, name, None, closure)


def _fill_function(func: types.FunctionType, state: tuple[Any, ...]) -> None:
    names, defaults, kwdefaults, cells, qualname, doc, attributes = state
    func.__globals__.update(names)
    func.__defaults__, func.__kwdefaults__ = defaults, kwdefaults
    for cell, value in zip(func.__closure__ or (), cells):
        if value is not _EmptyCell:
            cell.cell_contents = value
    func.__qualname__, func.__doc__ = qualname, doc
    func.__dict__.update(attributes)


def _reduce_class(cls: type) -> tuple[Any, ...]:
    slots = cls.__dict__.get("__slots__")
    slot_names = {slots} if isinstance(slots, str) else set(slots or ())
    state = {k: v for k, v in cls.__dict__.items()
             if k not in ("__dict__", "__weakref__", "__slots__") and k not in slot_names}
    skeleton = (type(cls), cls.__name__, cls.__bases__, cls.__module__, cls.__qualname__, slots)
    return (_make_class, skeleton, state, None, None, _fill_class)


def _make_class(metaclass: type, name: str, bases: tuple[Any, ...], module: str, qualname: str,
                slots: Any) -> type:
    namespace: dict[str, Any] = {"__module__": module, "__qualname__": qualname}
    if slots is not None:
        namespace["__slots__"] = slots
    cls: type = metaclass(name, bases, namespace)
    if _IN_WORKER and module == "__main__" and qualname.isidentifier():
        # so that values of this class pickle by reference on the way back to the caller,
        # whose __main__ holds the original
        setattr(sys.modules["__main__"], qualname, cls)
    return cls


def _fill_class(cls: type, state: dict[Any, Any]) -> None:
    for key, value in state.items():
        if key not in ("__module__", "__qualname__"):
            setattr(cls, key, value)


def _sentinel_reducers() -> dict[Any, Any]:
    """Module-level singletons that must stay themselves (dataclasses compares by identity)."""
    import dataclasses      # only needed once something is shipped by value
    names = ("MISSING", "KW_ONLY", "_FIELD", "_FIELD_CLASSVAR", "_FIELD_INITVAR")
    return {id(getattr(dataclasses, n)): (getattr, (dataclasses, n))
            for n in names if hasattr(dataclasses, n)}


_SENTINELS: dict[Any, Any] = {}
_HEAP_TYPE = 1 << 9     # Py_TPFLAGS_HEAPTYPE: a class made by a class statement


def _mapping_proxy(mapping: dict[Any, Any]) -> "types.MappingProxyType[Any, Any]":
    return types.MappingProxyType(mapping)


class _Pickler(pickle.Pickler):
    """Pickles functions and classes that the workers cannot import by value."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            wrapped = getattr(obj, "_autocron_function", None)
            if wrapped is not None and not _importable(obj):   # a @delay wrapper: made
                return (getattr(obj, "_autocron_decorator"), (wrapped,),  # again
                        None, None, None, None)
            return NotImplemented if _importable(obj) else _reduce_function(obj)
        if isinstance(obj, type):
            if _importable(obj) or not obj.__flags__ & _HEAP_TYPE:   # C types pickle by name
                return NotImplemented
            return _reduce_class(obj)
        if isinstance(obj, types.ModuleType):
            return (importlib.import_module, (obj.__name__,))
        if isinstance(obj, types.MappingProxyType):     # dataclass field metadata
            return (_mapping_proxy, (dict(obj),))
        if not _SENTINELS:
            _SENTINELS.update(_sentinel_reducers())
        return _SENTINELS.get(id(obj), NotImplemented)


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, _PICKLE_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _fingerprint(obj: Any, seen: Optional[set[Any]] = None) -> Any:
    """What must stay the same for a shipped function's payload to stay valid, or None.

    Identity for functions, classes and modules, the value for immutable scalars and tuples;
    None (do not cache) once a mutable value is involved, since it may change in place.
    """
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj), obj)
    if isinstance(obj, tuple):
        parts = tuple(_fingerprint(v, seen) for v in obj)
        return None if None in parts else parts
    if isinstance(obj, types.FunctionType) and not _importable(obj):
        return _function_fingerprint(obj, set() if seen is None else seen)
    if isinstance(obj, (types.FunctionType, type, types.ModuleType, types.BuiltinFunctionType)):
        return id(obj)
    return None


def _function_fingerprint(func: types.FunctionType, seen: set[Any]) -> Any:
    """_fingerprint of a function shipped by value: its code and what it references."""
    if id(func) in seen:
        return id(func)
    seen.add(id(func))
    parts = tuple(_fingerprint(v, seen) for v in _referenced(func))
    return None if None in parts else (id(func), id(func.__code__), parts)


class _Shipped:
    """The payload of one function shipped by value, with its hash."""

    __slots__ = ("fingerprint", "hash", "payload")

    def __init__(self, fingerprint: Any, digest: str, payload: bytes):
        self.fingerprint, self.hash, self.payload = fingerprint, digest, payload


_shipped: dict[Any, Any] = {}        # function -> _Shipped (the last payload made for it)


def _ship(func: Callable[..., Any]) -> _Shipped:
    """The payload of `func`, made again only when what it references has changed."""
    fingerprint = _function_fingerprint(func, set()) \
        if isinstance(func, types.FunctionType) else None
    known: Optional[_Shipped] = _shipped.get(func)
    if known is not None and fingerprint is not None and known.fingerprint == fingerprint:
        return known
    try:
        payload = _dumps(func)
    except Exception as error:
        raise _unshippable(func, error) from None
    shipped = _Shipped(fingerprint, _sha256(payload)[:32], payload)
    if len(_shipped) > 1024:
        _shipped.clear()
    _shipped[func] = shipped
    return shipped


def _first_unpicklable(parts: list[Any]) -> Optional[tuple[Any, ...]]:
    """(label, value, error) of the first (label, value) part that cannot be pickled."""
    for label, value in parts:
        try:
            _dumps(value)
        except Exception as cause:
            return label, value, cause
    return None


def _unshippable(func: Callable[..., Any], error: Exception) -> TypeError:
    """A TypeError naming the global (or default, or closure variable) that cannot travel."""
    found = _first_unpicklable(_function_parts(func) if isinstance(func, types.FunctionType)
                               else [])
    if found is None:
        return TypeError(f"{_function_name(func)} cannot be sent to the workers: {error}")
    label, value, cause = found
    return TypeError(f"{label} of {func.__qualname__}() cannot be sent to the workers "
                     f"({type(value).__name__}: {cause}); create it inside the function or "
                     "pass plain data as an argument")


def _reference(func: Callable[..., Any]) -> "tuple[tuple[Any, ...], Optional[_Shipped]]":
    """(how a worker finds `func`, its _Shipped payload or None): ("import", module,
    qualname) for a function the workers can import, else ("value", hash)."""
    if _importable(func):
        return ("import", func.__module__, func.__qualname__), None
    shipped = _ship(func)
    return ("value", shipped.hash), shipped


def _function_ref(func: Callable[..., Any]) -> tuple[Any, ...]:
    """How a worker finds `func`: ("import", module, qualname) or ("value", hash)."""
    return _reference(func)[0]


def _dump_call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any],
               retry_on: Optional[tuple[type, ...]] = None) -> tuple[Any, ...]:
    """The pickled record of a call, and the _Shipped payload of its function (or None).

    The payload is stored together with the task (_SqliteStore.add_task), never apart from it:
    a payload stored earlier may have been deleted by the cleanup since.
    """
    ref, shipped = _reference(func)
    return _dump_record(func, ref, args, kwargs, retry_on), shipped


# Arguments of these types hold nothing to ship by value: the C pickler alone does.
_ATOMS = frozenset({int, float, str, bytes, bool, type(None)})


class _Refused(Exception):
    """What a pickler met that the call must not be stored with (`error`, raised as it is:
    a ValueError is not a pickling problem)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _dump_record(func: Callable[..., Any], ref: tuple[Any, ...], args: tuple[Any, ...],
                 kwargs: dict[Any, Any], retry_on: Optional[tuple[type, ...]] = None,
                 pickler: Optional[Callable[[io.BytesIO], pickle.Pickler]] = None) -> bytes:
    """The pickled record of one call of `func`, found by `ref` (see _reference);
    `retry_on`: the exception classes that may run again (None: any); `pickler`: makes the
    pickler of arguments that are not plain values (None: _Pickler)."""
    record = {"v": 1, "function": ref, "args": args, "kwargs": kwargs}
    if retry_on is not None:
        record["retry_on"] = retry_on
    try:
        if retry_on is None and _ATOMS.issuperset(map(type, args)) and \
                (not kwargs or _ATOMS.issuperset(map(type, kwargs.values()))):
            return pickle.dumps(record, _PICKLE_PROTOCOL)   # 4x faster than _Pickler's
        if pickler is None:
            return _dumps(record)
        buffer = io.BytesIO()
        pickler(buffer).dump(record)
        return buffer.getvalue()
    except _Refused as refused:
        raise refused.error from None
    except Exception as error:
        raise _unpicklable(func, args, kwargs, error) from None


def _dependent_record(inner: bytes, ref: tuple[Any, ...], deps: list[str]) -> bytes:
    """The record of a call that depends on others: its own record (`inner`, pickled with
    the ids of those calls where their Results were) inside a plain one that names them."""
    return pickle.dumps({"v": 1, "function": ref, "call": inner, "deps": deps},
                        _PICKLE_PROTOCOL)


def _unpicklable(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any],
                 error: Exception) -> TypeError:
    """A TypeError naming the argument that cannot be pickled."""
    named = [(f"argument {i + 1}", v) for i, v in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    found = _first_unpicklable(named)
    if found is None:
        return TypeError(f"the call of {func.__qualname__}() cannot be pickled: {error}")
    label, value, cause = found
    return TypeError(f"{label} of {func.__qualname__}() cannot be pickled "
                     f"({type(value).__name__}: {cause}); pass plain data and open files, "
                     "locks or connections inside the task")


class _ValuesUnpickler(pickle.Unpickler):
    """Loads a call pickled with the ids of the calls it depends on: each becomes
    `value_of(its id)` (a method: Python 3.13's unpickler takes no assigned one)."""

    def __init__(self, data: bytes, value_of: Callable[[str], Any]):
        super().__init__(io.BytesIO(data))
        self._value_of = value_of

    def persistent_load(self, pid: Any) -> Any:
        return self._value_of(pid)


def _load_record(data: bytes, value_of: Optional[Callable[[str], Any]] = None
                 ) -> dict[Any, Any]:
    """A call's record; one that depends on other calls gets each one's value from
    `value_of(its id)` (None: ValueError)."""
    record = dict(_RECORD_DEFAULTS)
    record.update(pickle.loads(data))
    if "call" in record:
        if value_of is None:
            raise ValueError("this call depends on others, and only a worker gets their values")
        record.update(_ValuesUnpickler(cast(bytes, record["call"]), value_of).load())
    return record


def _machine_name() -> str:
    """What this machine is called among the pools of a database: AUTOCRON_HOST or its name."""
    return os.environ.get("AUTOCRON_HOST") or socket.gethostname()


class _JobRetired(Exception):
    """A cron run found that the code no longer declares its job (see _resolve_function)."""


def _resolve_function(ref: tuple[Any, ...], load_payload: Callable[[str], bytes],
                      job: Optional[str] = None,
                      declared: Optional[str] = None) -> Callable[..., Any]:
    """The undecorated function behind a reference (in a worker).

    For a run of the cron job `job`, declared by a cron() call in the module `declared`:
    once the function's module imports, a function that is gone, or one that its own module
    declared and declares no more (no @cron on it), is _JobRetired. A job declared elsewhere
    (an application module that a worker does not import) is retired only when its function
    is gone; one shipped by value (__main__, a notebook) never is.
    """
    obj: Any
    if ref[0] == "value":
        obj = pickle.loads(load_payload(ref[1]))
    elif ref[0] == "import":
        try:
            obj = importlib.import_module(ref[1])
        except ImportError as error:
            raise ImportError(f"cannot import the module {ref[1]} (of {ref[2]}) on machine "
                              f"{_machine_name()}: {error}; install it there, or start the "
                              "pool where it can be imported") from None
        try:
            for part in ref[2].split("."):
                obj = getattr(obj, part)
        except AttributeError:
            if job is None:
                raise
            raise _JobRetired(f"the module {ref[1]} has no {ref[2]} any more") from None
        if job is not None and declared == ref[1] and \
                getattr(obj, "_autocron_cron", None) != job:
            raise _JobRetired(f"{ref[1]}.{ref[2]} is no longer decorated with @cron") from None
    else:
        raise TypeError(f"unknown kind of function reference {ref[0]!r}; this task was "
                        "stored by a newer autocron")
    function: Callable[..., Any] = getattr(obj, "_autocron_function", obj)
    return function


# While a call's text is written, a Result shows as its id (no read of the database; what it
# reads now would be stale later anyway).
_texting = threading.local()


def _call_text(args: tuple[Any, ...], kwargs: dict[Any, Any], limit: int = 200) -> str:
    """The arguments of a call as the user would have written them, shortened."""
    _texting.on = True
    try:
        text = ", ".join(map(repr, args)) if not kwargs else ", ".join(
            [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    except Exception:  # a broken __repr__ must not stop the call
        text = "..."
    finally:
        _texting.on = False
    text = _safe_text(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _error_info(error: BaseException) -> dict[Any, Any]:
    """An exception as data: its type's name, its text and its traceback, whatever they hold.

    A task's exception may have a __str__ that raises (even a BaseException, which the
    traceback module lets through), a __module__ that is no text, or lone surrogates; the
    worker reports all of them and lives on. A message or traceback of megabytes keeps its
    start and its end (_cut_middle).
    """
    kind = type(error)
    module = kind.__module__ if isinstance(kind.__module__, str) else "<unknown>"
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    try:
        message = str(error)
    except BaseException as failure:
        message = f"<exception str() failed: {type(failure).__name__}>"
    try:
        text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    except BaseException:    # the frames at least, and what we know of the exception
        text = "".join(["Traceback (most recent call last):\n",
                        *traceback.format_tb(error.__traceback__), f"{name}: {message}\n"])
    return {"type": _cut_middle(_safe_text(name)), "message": _cut_middle(_safe_text(message)),
            "traceback": _cut_middle(_safe_text(text))}


# ==============================================================================================
# The SQLite store
# ==============================================================================================
#
# Every statement goes through `_SqliteStore.transaction()` (writes, BEGIN IMMEDIATE) or
# `_SqliteStore.read()`, which open one connection per thread and process (never inherited across
# fork), set WAL and a busy timeout, and turn sqlite3 errors into DatabaseError with the path.
#
# The interface is the protocol _Store, just below: what the rest of the module asks of a
# store, and so what the PostgreSQL store implements too.

_Later = Callable[[], Optional[list[Any]]]      # claim_later's: the rows claimed, read later
_RowsAhead = tuple[Optional[_ResultRow], list[_ResultRow]]    # result_row_ahead's


class _StoreViews(Protocol):
    """What the admin tool, the dashboard and GET /metrics read of a store: the part of
    the protocol _Store (below) that only shows."""

    def counts(self, now: float, finished: bool = True) -> tuple[Any, ...]:
        """({status: number}, the number of waiting tasks due at `now`); without the
        finished ones if not `finished`."""
        ...
    def queue_counts(self, since: float) -> dict[str, Any]:
        """{queue: {"waiting": n, "running": n, "started": n}} of the unfinished calls
        ("started": their last attempt started since then)."""
        ...
    def queue_starts(self, since: float) -> dict[str, int]:
        """{queue: the calls that started since then and have ended}."""
        ...
    def size_bytes(self) -> int:
        """What the database takes on disk (or on the server)."""
        ...
    def task_rows(self, statuses: tuple[Any, ...], limit: int, newest_first: bool) -> list[Any]:
        """[_TaskRow] with these statuses, the newest first or in the order of the queue."""
        ...
    def task_page(self, wanted: _TaskFilter, before: Optional[int], limit: int,
                  scan: int) -> _TaskPage:
        """A page of the dashboard's task list."""
        ...
    def call_details(self, uid: str) -> Optional[_CallDetails]:
        """Its retry policy, worker, machine and cron job (_CallDetails), or None."""
        ...
    def failed_unretried(self, function: str, until: float) -> list[str]:
        """The ids of the failed calls of a function, finished by `until`, not retried by
        hand."""
        ...
    def waiting_in(self, queue: str, until: float) -> list[str]:
        """The ids of the waiting calls of a queue (those on dependencies too) made by
        `until`, the newest first (a call's dependents before it)."""
        ...
    def finished_since(self, since: float, limit: int) -> list[Any]:
        """[_FinishedRow] of the tasks finished since then, the newest first."""
        ...
    def retry_links(self, uid: str) -> tuple[Any, ...]:
        """(the id of the task this one retries or None, [ids of those that retry it])."""
        ...
    def call_links(self, uid: str) -> _CallLinks:
        """Its dependencies, dependents, parent task and steps (_CallLinks)."""
        ...
    def purge(self) -> int:
        """Delete every finished result; how many."""
        ...
    def metric_values(self, now: float) -> _MetricValues:
        """What GET /metrics shows, as stored (_MetricValues)."""
        ...


class _Store(_StoreViews, Protocol):
    """What the rest of the module asks of a store, the one list: _SqliteStore (a file) and
    _PgStore (a schema on a server) implement it (test_both_stores_implement_the_protocol).
    Methods taking `con` run inside the caller's transaction(), so that a round of the pool
    is one atomic write. The store decides nothing: retries and cron due times are the
    policy functions' (records section), applied before the store is handed the values."""

    # -- where it is, and its kind
    path: str             # what start() compares, messages and info show (no password)
    @property
    def wake_path(self) -> Optional[str]:
        """Where this machine's pool hears of new calls, if it can (worked out when first
        asked: a worker may never ask, and the temporary folder costs it an import)."""
        ...
    @property
    def lock_path(self) -> str:
        """The pool's lock file."""
        ...
    leased: bool          # pools hold leases (PostgreSQL: many machines)
    starts_committed: bool    # a worker commits each start itself before the task runs
                              # (start_now, PostgreSQL): the pool writes no starts
    remote: bool          # a read is a round trip to a server (PostgreSQL): the pool sends
                          # a waiting caller the row it finished (_Finished.rows)
    wakes_pools: bool     # a stored call wakes every pool by itself (NOTIFY)
    @property
    def machine(self) -> Optional[str]:
        """This machine's name (PostgreSQL)."""
        ...
    lease: Optional[int]  # the lease of this process's pool (PostgreSQL)
    version: int          # the schema version of the database as opened

    # -- statements and time
    def transaction(self) -> ContextManager[Any]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        ...
    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one statement (SQLite's ? placeholders)."""
        ...
    def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        ...
    def now(self, look: bool = True) -> float:
        """The time every due time goes by (the server's, for PostgreSQL)."""
        ...
    def close(self) -> None:
        """Close this thread's connection; the next use opens another."""
        ...
    def schema_version(self) -> int:
        """The schema version stored in the database."""
        ...

    # -- settings
    def settings(self) -> dict[Any, Any]:
        """The stored settings over the defaults."""
        ...
    def set_setting(self, key: str, value: Any) -> None:
        """Store one setting (the admin tool's `set`, start()'s workers)."""
        ...

    # -- calls, as producers and readers see them
    def add_task(self, name: str, args: str, record: bytes, due: float,
                 options: Optional[_Options] = None,
                 shipped: Optional[_Shipped] = None) -> str:
        """Store a call (committed when this returns); its id."""
        ...
    def add_tasks(self, name: str, calls: Iterable[Any], due: float,
                  options: Optional[_Options] = None,
                  shipped: Optional[_Shipped] = None) -> list[Any]:
        """Store many calls of one function, [_NewCall] read as they come, in one
        transaction; their ids."""
        ...
    def add_calls(self, name: str, calls: list[Any], due: float,
                  options: Optional[_Options] = None, shipped: Optional[_Shipped] = None,
                  parent: Optional[int] = None, connection: Any = None) -> list[Any]:
        """Store calls, [_NewCall], in one transaction (PostgreSQL: maybe the caller's):
        [(id, None) if stored, (the id of the call holding its key, its args)]."""
        ...
    def depends_on(self, uid: str, task_id: int) -> bool:
        """Whether the call `uid` depends on the task `task_id`, directly or not."""
        ...
    def sweep_dependents(self, con: Any, now: float) -> None:
        """Count the dependency ends that dependents stored meanwhile did not see."""
        ...
    def steps_of(self, parent: int, steps: list[str]) -> dict[str, str]:
        """{step: call id} of the live steps an earlier attempt of `parent` made."""
        ...
    def unfinished_steps(self, parent: int) -> dict[str, str]:
        """{step: call id} of the unfinished calls the task `parent` made as its steps."""
        ...
    def reached_by(self, connection: Any) -> bool:
        """Whether a psycopg connection reaches this database and schema (PostgreSQL)."""
        ...
    def identity(self) -> tuple[Any, ...]:
        """What tells this database from another, whatever path or URL spells it."""
        ...
    def keep_function(self, con: Any, shipped: _Shipped) -> None:
        """Store a shipped function's payload, in the caller's transaction."""
        ...
    def function_payload(self, digest: str) -> bytes:
        """A shipped function's pickle (a worker loads it)."""
        ...
    def result_row(self, uid: str) -> Optional[_ResultRow]:
        """One task as a Result reads it, or None."""
        ...
    def result_row_ahead(self, uid: str, ahead: list[str]) -> _RowsAhead:
        """result_row(uid), and in the same read the rows of the calls among `ahead` that
        are finished, each with at most _AHEAD_MOST bytes of value, output and error."""
        ...
    def finished_rows(self, con: Any, ids: list[Any]) -> Callable[[], list[Any]]:
        """[_ResultRow] of those of these tasks that are finished, in the transaction: asked
        now, read when the returned function is called."""
        ...
    def attempt_errors(self, uid: str) -> list[Any]:
        """The errors of a task's failed attempts, first first (_error_info, and times)."""
        ...
    def call_state(self, uid: str) -> Optional[tuple[Any, ...]]:
        """(key, progress JSON, queue, due, waits) of a call, or None."""
        ...
    def set_progress(self, task_id: int, progress: str) -> None:
        """A running call's report, written by its worker."""
        ...
    def result_rows(self, limit: Optional[int] = None,
                    status: Optional[str] = None) -> list[Any]:
        """[_ResultRow] newest first (get_results)."""
        ...
    def ids_named(self, text: str, limit: int) -> list[Any]:
        """Up to `limit` task ids that `text` names: the start of an id, or a short id."""
        ...
    def call_record(self, uid: str) -> Optional[bytes]:
        """The pickled call of a task (_dump_record), or None."""
        ...
    def cancel(self, con: Any, uid: str, now: float) -> Optional[list[Any]]:
        """Withdraw a waiting task: None if it was not waiting, else its cron run's end."""
        ...
    def request_cancel(self, uid: str, force: bool) -> bool:
        """Ask the pool holding a task to withdraw it (force: also a running one)."""
        ...
    def cancel_pending(self, uid: str) -> bool:
        """Whether a withdrawal of this task is still asked for."""
        ...
    def cancel_mark(self) -> Union[bytes, int, None]:
        """What changes whenever a withdrawal is asked for (a worker looks at it)."""
        ...
    def cancel_requests(self) -> dict[Any, Any]:
        """{task id: 1 (withdraw if not started) or 2 (also stop it)}."""
        ...
    def retry(self, uid: str, now: float) -> Optional[str]:
        """Store a failed or cancelled task's call again (the dashboard); the new id."""
        ...

    # -- cron jobs
    def register_cron(self, name: str, schedule: CronExpression, func: Callable[..., Any],
                      catch_up: bool, next_due: float, declared: Optional[str] = None,
                      queue: str = _DEFAULT_QUEUE) -> None:
        """Add, replace or revive a job, due at `next_due`; an unchanged schedule keeps its own."""
        ...
    def remove_cron(self, name: str) -> bool:
        """Delete a job (its runs stay); False if there is none."""
        ...
    def due_crons(self, con: Any, now: float) -> list[Any]:
        """Start a run of every job due and not running (each due time once)."""
        ...
    def end_cron_runs(self, con: Any, jobs: list[Any]) -> None:
        """These jobs run no more and are next due then: [(name, due time)]."""
        ...
    def cron_states(self, con: Any) -> list[Any]:
        """[_CronState] of every job, for the caller to settle after a pool ended."""
        ...
    def cron_rows(self) -> list[Any]:
        """[_CronRow] by name (the admin tool, the dashboard)."""
        ...
    def last_runs(self) -> dict[Any, Any]:
        """{job: (status, finished)} of each job's newest run."""
        ...
    def pause_cron(self, name: str) -> bool:
        """Start no more runs of a job until it is resumed; False if there is none."""
        ...
    def resume_cron(self, name: str, now: float) -> Optional[float]:
        """Let a paused job run again; its next due time, None if there is no such job."""
        ...

    # -- the pool's round
    def anything_due(self, now: float) -> tuple[Any, ...]:
        """(a task may be due, a cron job is due)."""
        ...
    def next_due(self, busy: Optional[dict[str, tuple[int, int]]] = None) -> Optional[float]:
        """When the next waiting task is due, if any (one a limit holds back is not)."""
        ...
    def claim(self, con: Any, now: float, pids: list[Any],
              queues: Optional[tuple[str, ...]] = None,
              busy: Optional[dict[str, tuple[int, int]]] = None,
              kinds: Optional[str] = None) -> list[Any]:
        """The most urgent due tasks (of `queues`) to these workers' places of `kinds`
        (_assign), within limits (`busy`: the pool's calls by queue; SQLite): [_Claimed]."""
        ...
    def claim_alone(self, now: float, pids: list[Any], queues: Optional[tuple[str, ...]],
                    kinds: str) -> Optional[list[Any]]:
        """claim() committed by itself, if it can be one statement; None: claim() in a
        transaction (a queue is limited, or SQLite, whose transactions cost no round trip)."""
        ...
    def claim_later(self, con: Any, now: float, pids: list[Any],
                    queues: Optional[tuple[str, ...]], kinds: str) -> Optional[_Later]:
        """claim() in the caller's transaction, read once it committed (its answer comes with
        COMMIT's); None: claim() (see claim_alone). Read as None: a limit; nothing taken."""
        ...
    drained: bool         # the last claim placed every due call it saw: none is left
    async_left: bool      # it saw an async call it found no place for
    def limits(self) -> dict[str, _Limit]:
        """{queue: _Limit} as stored."""
        ...
    def set_limit(self, queue: str, given: dict[str, Any]) -> Optional[_Limit]:
        """Change a queue's limits (the keywords given); what is stored then."""
        ...
    def claimed(self) -> list[Any]:
        """Ids of the calls claimed under this pool's lease and not started."""
        ...
    def start_now(self, task_id: int, lease: Optional[int], at: float) -> bool:
        """A worker starts a task: False if it may not (PostgreSQL commits the start)."""
        ...
    def start_log(self) -> Optional[_StartLog]:
        """Where workers note starts the pool writes later (SQLite), or None."""
        ...
    def mark_started(self, con: Any, started: list[Any]) -> None:
        """Workers started these tasks ([_Started]): an attempt each."""
        ...
    def note_starts(self, con: Any, started: list[Any]) -> None:
        """Workers started these tasks ([_Started]): noted for their queues' rates."""
        ...
    def started_unseen(self, con: Any, ids: list[Any]) -> list[Any]:
        """[_Interrupted] of these that a worker started without telling the pool."""
        ...
    def retry_terms(self, con: Any, ids: list[Any]) -> dict[Any, Any]:
        """{task id: _RetryTerms} of these tasks, as stored."""
        ...
    def finish(self, con: Any, outcomes: list[Any]) -> list[Any]:
        """Write outcomes ([_Outcome]) of live tasks; [_CronEnd] of the runs that ended."""
        ...
    def requeue(self, con: Any, ids: list[Any]) -> None:
        """Tasks handed to a worker that never started them wait again."""
        ...
    def refuse_cancel(self, con: Any, ids: list[Any]) -> None:
        """A withdrawal came too late: the task had started."""
        ...
    def clock_went_back(self, now: float) -> int:
        """The wall clock stepped back: calls due when made are due at `now`; how many."""
        ...
    def cleanup(self, now: float, ttl: float) -> int:
        """Delete finished results past their time-to-live; how many."""
        ...
    def checkpoint(self, limit: int = ..., quiet_too: bool = True) -> bool:
        """Keep the write-ahead log small (SQLite); whether it was emptied."""
        ...
    def checkpoint_as_pool(self) -> None:
        """The pool's connection copies the log into the database as it goes (SQLite)."""
        ...

    # -- pools, machines and leases
    def set_pool(self, owner: Optional[int], manager: Optional[int] = None,
                 workers: tuple[Any, ...] = ()) -> None:
        """Say which processes run this machine's pool; None: none does."""
        ...
    def pool_pids(self, pool: Optional[_PoolId] = None) -> _PoolPids:
        """The processes of a pool as it last published them."""
        ...
    def pool_row(self) -> Optional[_PoolRow]:
        """This machine's pool, or None."""
        ...
    def pool_running(self) -> bool:
        """Whether a pool runs (SQLite: holds the lock; PostgreSQL: a live lease)."""
        ...
    def machine_rows(self) -> list[Any]:
        """[_MachineRow] by name (PostgreSQL; none for SQLite)."""
        ...
    def take_lease(self, con: Any, owner: int) -> None:
        """Start a lease with a new number: this pool's identity."""
        ...
    def renew_lease(self, lease: Optional[int] = None) -> bool:
        """Renew this pool's lease; False if another pool took it over."""
        ...
    def previous_pool(self) -> Optional[_PoolId]:
        """The pool that last ran on this machine, if it must be settled."""
        ...
    def remember_pool(self) -> None:
        """Write down this pool's lease for the next pool on this machine."""
        ...
    def recover(self, con: Any, pool: Optional[_PoolId] = None) -> list[Any]:
        """[_Interrupted] of what a pool that ended had started; the rest waits again."""
        ...
    def lost_machines(self, con: Any) -> list[Any]:
        """[_PoolId] of the pools that missed their lease renewals (taken)."""
        ...
    def forget_machine(self, con: Any, pool: _PoolId) -> None:
        """Remove a settled pool's row."""
        ...
    def fold_counts(self, con: Any) -> None:
        """Fold the metrics' rows of writers that are done (PostgreSQL)."""
        ...
    def listener(self, again: bool = False) -> Any:
        """The pool's LISTEN connection (PostgreSQL), or None."""
        ...


# The tables both stores make, in the words each database has for a row id, a number with a
# fraction and bytes; where a store has columns or tables of its own, it names them
# (_SqliteStore: the pool table; _PgStore: each task's machine and lease, the machines table).
_TABLES = (
    """CREATE TABLE tasks (
        id {id},
        token TEXT NOT NULL,
        name TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        retry_delay {real} NOT NULL DEFAULT 0,
        backoff {real} NOT NULL DEFAULT 1,
        timeout {real},
        cancel INTEGER NOT NULL DEFAULT 0,   -- 1: if not started yet, 2: also if running
        due {real} NOT NULL,
        created {real} NOT NULL,
        started {real},
        finished {real},
        worker INTEGER,{held_by}
        cron TEXT,
        function TEXT,
        record {blob} NOT NULL,
        value {blob},
        summary TEXT,
        error TEXT,
        output TEXT,
        retry_of TEXT,                       -- the task this one retries (the dashboard's retry)
        errors TEXT,                         -- the errors of its attempts that ran again
        key TEXT,                            -- its unique key
        progress TEXT,                       -- what it last reported (progress())
        queue TEXT,                          -- its queue (NULL: "default", an older call)
        asynchronous INTEGER,                -- 1: an async def call (a worker runs many)
        waits INTEGER,                       -- its dependencies not finished ('blocked')
        settled {real})                      -- kept for a call stored since (see cleanup)""",
    "CREATE INDEX tasks_queue ON tasks (priority DESC, due, id) WHERE status = 'waiting'",
    "CREATE INDEX tasks_finished ON tasks (finished) WHERE finished IS NOT NULL",
    "CREATE INDEX tasks_cancel ON tasks (id) WHERE cancel > 0",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE functions (hash TEXT PRIMARY KEY, payload {blob} NOT NULL, created {real})",
    """CREATE TABLE crons (
        name TEXT PRIMARY KEY,
        expression TEXT NOT NULL,
        schedule {blob} NOT NULL,
        record {blob} NOT NULL,
        function TEXT,
        catch_up INTEGER NOT NULL DEFAULT 0,
        next_due {real},
        last_run {real},
        running TEXT,
        paused INTEGER NOT NULL DEFAULT 0)""",
)
# The calls' dependencies and the steps of tasks (durable steps), made where missing too
# (an older release of the same schema neither reads nor writes them).
_ADDED_TABLES = (
    """CREATE TABLE deps (
        task_id {big} NOT NULL,              -- a call
        dep_id {big} NOT NULL,               -- and one it depends on
        done INTEGER NOT NULL DEFAULT 0,     -- 1 once that one's end is counted
        PRIMARY KEY (task_id, dep_id))""",
    "CREATE INDEX deps_dep ON deps (dep_id)",
    """CREATE TABLE steps (
        parent {big} NOT NULL,               -- a task
        step TEXT NOT NULL,                  -- the k-th call it made of a function and args
        task_id {big} NOT NULL,              -- and that call
        PRIMARY KEY (parent, step))""",
    "CREATE INDEX steps_task ON steps (task_id)",
    "CREATE INDEX tasks_blocked ON tasks (id) WHERE status = 'blocked'",
    # the async calls due: found apart where a flood of synchronous ones fills a claim's window
    "CREATE INDEX tasks_async ON tasks (priority DESC, due, id) WHERE status = 'waiting' AND "
    "asynchronous IS NOT NULL",
    """CREATE TABLE limits (
        queue TEXT PRIMARY KEY,
        concurrency INTEGER,                 -- at most this many held or running at once
        rate INTEGER,                        -- at most this many starts in any window of
        per {real})                          -- this many seconds""",
    """CREATE TABLE starts (                 -- the starts of calls of rate-limited queues
        queue TEXT NOT NULL,
        at {real} NOT NULL)""",
    "CREATE INDEX starts_queue ON starts (queue, at)",
    """CREATE TABLE metrics (                -- GET /metrics: what ends added (_metric_deltas)
        adder TEXT NOT NULL,                 -- PostgreSQL: the machine that added (each its
        function TEXT NOT NULL,              -- own rows: none waits for another's lock)
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        n {big} NOT NULL,
        total {real} NOT NULL,
        PRIMARY KEY (adder, function, queue, kind, label))""",
)
_SCHEMA = tuple(t.format(id="INTEGER PRIMARY KEY", real="REAL", blob="BLOB", held_by="",
                         big="INTEGER") for t in _TABLES + _ADDED_TABLES) + (
    """CREATE TABLE pool (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        owner INTEGER NOT NULL,
        manager INTEGER,
        started REAL NOT NULL,
        workers TEXT NOT NULL DEFAULT '[]')""",
)

# Schema 2 over schema 1, for both stores (the same SQL): the dashboard's retry link and a
# cron job's pause; each job's newest run and each task's retries found through an index. A
# store opened for writing upgrades an older schema in one transaction; one opened for
# reading leaves it as it is and reads around what it lacks (see `version`).
_UPGRADE_TO_2 = (
    "ALTER TABLE tasks ADD COLUMN retry_of TEXT",
    "ALTER TABLE crons ADD COLUMN paused INTEGER NOT NULL DEFAULT 0",
)
# Columns that an older release of the same schema does without (it names the columns it
# reads and writes), added by the first writer that finds them missing, and their index:
# - errors: the errors of a task's attempts that ran again, as JSON objects separated by
#   commas, the first first, kept up to _MAX_ATTEMPT_ERRORS characters (no later ones);
# - key: a call's unique key, which one unfinished call at most holds (a retry is not
#   finished). An older release's pool runs such a call as any other;
# - progress: what a running call last reported (JSON [done, total, text]; progress());
# - waits: how many of a call's dependencies have not finished; it is 'blocked' till none.
_ADDED_COLUMNS = (("errors", "TEXT"), ("key", "TEXT"), ("progress", "TEXT"),
                  ("waits", "INTEGER"), ("settled", "REAL"), ("queue", "TEXT"),
                  ("asynchronous", "INTEGER"))
_ADDED_INDEX = ("CREATE UNIQUE INDEX tasks_key ON tasks (key) WHERE key IS NOT NULL AND "
                "finished IS NULL")
_MAX_ATTEMPT_ERRORS = 256 * 1024
# The tasks that workers hold. PostgreSQL finds them through an index (tasks_held); SQLite
# reads the table for them: an index of them cost 4% of the pool's throughput (it changes at
# every claim, start and end), more than the dashboard's pool page and counts are worth.
_HELD = "status IN ('queued', 'running')"
# The unfinished calls, each status through its own partial index (PostgreSQL combines them:
# a read of 2,000 of 200,000 stored calls took 2.7 ms, against 28 ms for "finished IS NULL",
# which walks the table; SQLite walks the table for the held ones either way).
_UNFINISHED = f"(status = 'waiting' OR status = 'blocked' OR {_HELD})"
_INDEXES_2 = (
    "CREATE INDEX IF NOT EXISTS tasks_cron ON tasks (cron, id) WHERE cron IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS tasks_retry ON tasks (retry_of, id) WHERE retry_of IS NOT NULL",
    # the counts and lists of finished tasks by status (one entry when a task ends; it
    # cost no throughput that could be measured)
    "CREATE INDEX IF NOT EXISTS tasks_outcome ON tasks (status, id) WHERE finished IS NOT NULL",
)

# A task's public id is "<token>-<row id>": found through the primary key, so an enqueue
# updates no extra index, and a random token keeps a recycled row id from matching an old id.
_UUID = "token || '-' || id"
_RESULT_COLUMNS = (f"{_UUID}, name, args, status, created, started, finished, value, error, "
                   "output, summary, attempts")


# A call is one statement (built once here, not per call); a call of a shipped function
# stores itself only if its payload is there (else add_task stores both in a transaction).
_INSERT_TASK = ("INSERT INTO tasks (token, name, args, status, priority, queue, asynchronous, "
                "retries, retry_delay, backoff, timeout, due, created, record, function) "
                "VALUES (?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_TASK_AT = ("INSERT INTO tasks (id, args, record, function, token, name, status, "
                   "priority, queue, asynchronous, retries, retry_delay, backoff, timeout, due, "
                   "created) VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# A call of add_calls(): with a unique key (stored unless an unfinished call holds the key:
# tasks_key), dependencies ('blocked' while `waits` of them have not finished), or an error
# it ends with at once.
_INSERT_CALL = ("INSERT INTO tasks (token, name, args, status, priority, queue, asynchronous, "
                "retries, retry_delay, backoff, timeout, due, created, record, function, key, "
                "waits, finished, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?) ON CONFLICT DO NOTHING")
_INSERT_CALL_AT = ("INSERT INTO tasks (id, token, name, args, status, priority, queue, "
                   "asynchronous, retries, retry_delay, backoff, timeout, due, created, record, "
                   "function, key, waits, finished, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_HOLDER = f"SELECT {_UUID}, args FROM tasks WHERE key = ? AND finished IS NULL"
# A call starts (each attempt): noted if its queue has a rate limit (the claims count them).
_STARTED = (f"INSERT INTO starts (queue, at) SELECT coalesce(queue, '{_DEFAULT_QUEUE}'), ? "
            f"FROM tasks WHERE id = ? AND coalesce(queue, '{_DEFAULT_QUEUE}') IN (SELECT queue "
            "FROM limits WHERE rate IS NOT NULL)")
# A claim's candidates of one kind (_kinds_missing): async calls, or synchronous ones.
_KIND_IS = {True: " AND asynchronous IS NOT NULL", False: " AND asynchronous IS NULL"}
# At most this many parameters in one statement (SQLite before 3.32 takes 999).
_CHUNK = 500
# add_tasks() reads the calls of map() this many at a time (PostgreSQL: a COPY each).
_MAP_CHUNK = 10_000


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """`items` in lists of `size` (the last one shorter), read as they are asked for."""
    iterator = iter(items)
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _not_in_queues(count: int) -> str:
    """SQL that leaves out calls of `count` queues (their names the parameters)."""
    return "" if not count else \
        f" AND coalesce(queue, '{_DEFAULT_QUEUE}') NOT IN ({', '.join('?' * count)})"
# The notice (PostgreSQL) of calls stored with dependencies in a caller's own transaction:
# the pools count the ends it did not see (sweep_dependents).
_SWEEP = "deps"
# A finished call that the cleanup and purge keep: one that a call depends on, or whose
# task made it as a step, while that call or task has not finished, or finished after the
# time given (twice): a kept call's time-to-live counts from that end.
_UNNEEDED = (" AND NOT EXISTS (SELECT 1 FROM deps d JOIN tasks t ON t.id = d.task_id WHERE "
             "d.dep_id = tasks.id AND (t.finished IS NULL OR t.finished >= ?)) AND NOT EXISTS "
             "(SELECT 1 FROM steps s JOIN tasks p ON p.id = s.parent WHERE s.task_id = "
             "tasks.id AND (p.finished IS NULL OR p.finished >= ?))")
_INSERT_SHIPPED_TASK = ("INSERT INTO tasks (token, name, args, status, priority, queue, "
                        "asynchronous, retries, retry_delay, backoff, timeout, due, created, "
                        "record, function) SELECT ?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ? "
                        "WHERE EXISTS (SELECT 1 FROM functions WHERE hash = ?)")

# The dashboard's retry: a new task with the call of a failed or cancelled one, linked to it.
_RETRY_TASK = ("INSERT INTO tasks (token, name, args, status, priority, queue, asynchronous, "
               "retries, retry_delay, backoff, timeout, due, created, record, function, retry_of) "
               "SELECT ?, name, args, 'waiting', priority, queue, asynchronous, retries, "
               "retry_delay, backoff, "
               f"timeout, ?, ?, record, function, {_UUID} FROM tasks WHERE id = ? AND token = ? "
               "AND status IN ('error', 'cancelled')")


def _newer_schema(path: str, version: int, known: int, instead: str = "") -> DatabaseError:
    """The error for a database that a newer autocron wrote."""
    return DatabaseError(f"{path} was written by a newer autocron (schema {version}, this one "
                         f"knows {known}); upgrade autocron{instead}", path)


def _row_key(uid: str) -> tuple[Any, ...]:
    """(row id, token) of a task id; (-1, "") for text that cannot be one."""
    token, _, row = str(uid).rpartition("-")
    # ASCII digits only ("²" is a digit to isdigit(), not to int()), and a row id that
    # fits the databases' 64-bit integers (PostgreSQL refuses a larger parameter)
    if token and row.isascii() and row.isdigit() and len(row) <= 19 and int(row) < 2 ** 63:
        return int(row), token
    return -1, ""


# The tokens of task ids come from a generator of autocron's own, seeded anew in every child
# process: an application that seeds `random` (random.seed(7) at start, in each process)
# would otherwise give a recreated or purged database the ids and tokens of earlier calls.
_tokens = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_tokens.seed)


def _token() -> str:
    return f"{_tokens.getrandbits(64):016x}"


def _private_folder(folder: str) -> None:
    """Create the database's folder (private) if missing; refuse one that others can write."""
    if folder and not os.path.isdir(folder):
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as error:
            raise DatabaseError(f"cannot create the folder {folder} for the database "
                                f"({error.strerror}); create it yourself or pass another path",
                                folder) from None
    _check_folder(folder or os.curdir)


def _group_members(gid: int) -> tuple[Any, ...]:
    """(name, member names) of a group: its listed members and whose primary group it is."""
    import grp      # POSIX-only modules, imported where they are used
    import pwd
    try:
        group = grp.getgrgid(gid)
        name, members = group.gr_name, set(group.gr_mem)
    except KeyError:
        name, members = str(gid), set()
    members.update(user.pw_name for user in pwd.getpwall() if user.pw_gid == gid)
    return name, members


def _folder_problem(folder: str, uid: int) -> Optional[str]:
    """Why users other than `uid` could create files in `folder`, or None if they cannot.

    SQLite opens the companions `<db>-wal` and `<db>-shm` beside the database, and the pool
    its `<db>.lock`: whoever can create them first can plant a write-ahead log whose tasks
    are pickles, which the workers would load. Checking the companions themselves would race
    with SQLite creating them, so the folder must be closed to others: not writable by
    everyone (a sticky bit does not help: others still create the names first), and
    group-writable only by a group without other members (a user's private group, as umask
    002 setups have). Root may write anywhere anyway and is not counted as another user.
    """
    import pwd              # POSIX-only, imported where it is used
    info = os.stat(folder)
    if info.st_uid not in (uid, 0):
        return (f"{folder} belongs to another user (uid {info.st_uid}), who could plant files "
                "beside the database that make the workers run code; keep the database in a "
                "folder of your own")
    if info.st_mode & 0o002:
        why = "anyone"
    elif info.st_mode & 0o020:
        name, members = _group_members(info.st_gid)
        for trusted in (uid, 0):
            with contextlib.suppress(KeyError):
                members.discard(pwd.getpwuid(trusted).pw_name)
        if not members:
            return None
        why = f"group {name}, which has the members {', '.join(sorted(members))}"
    else:
        return None
    return (f"{folder} can be written by other users (mode {info.st_mode & 0o7777:o}: {why}); "
            "they could plant files beside the database that make the workers run code. Keep "
            f"the database in a folder of your own, or fix it with: chmod o-w,g-w {folder}")


def _check_folder(folder: str) -> None:
    """Refuse a database folder that other users can write (see _folder_problem)."""
    if not _POSIX:  # pragma: no cover - no uid/mode bits to check on Windows
        return
    problem = _folder_problem(folder, os.geteuid())
    if problem:
        raise DatabaseError(problem, folder)


def _check_private(path: str) -> None:
    """Refuse a database that other users can write: they could make the workers run code."""
    if not _POSIX:  # pragma: no cover - no uid/mode bits to check on Windows
        return
    info = os.stat(path)
    if info.st_uid != os.geteuid():
        raise DatabaseError(f"{path} belongs to another user (uid {info.st_uid}); whoever can "
                            "write the database can make the workers run code, so use a "
                            "database file of your own", path)
    if info.st_mode & 0o022:
        raise DatabaseError(f"{path} can be written by other users (mode "
                            f"{info.st_mode & 0o777:03o}); whoever can write the database can "
                            f"make the workers run code. Fix it with: chmod 600 {path}", path)


def _check_one_name(path: str) -> None:
    """Refuse a database file that has other names (hard links). SQLite keeps its
    write-ahead log and shared memory beside the name it was given, so processes that open
    one file by two names each see their own log: calls written under one name are lost to
    the other, and their checkpoints corrupt the file. A pool lock by the file's inode would
    stop a second pool, not that (a symbolic link is harmless: realpath resolves it). The
    pool's own processes are exempt: their owner was admitted, and a link made later must not
    make the running pool's new workers fail."""
    if _IN_POOL:
        return
    names = os.stat(path).st_nlink
    if names > 1:
        raise DatabaseError(f"{path} has {names} names (hard links); SQLite keeps a write-ahead "
                            "log beside each name, so processes that open the file by different "
                            "names lose calls and corrupt it. Keep one name (find the others "
                            f"with: find / -samefile {path}), or give autocron a copy of "
                            "the file", path)


def _execute(con: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
    """Run one statement, retrying while another connection holds the write lock."""
    pause, end = 0.0001, time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            return con.execute(sql, params)
        except sqlite3.OperationalError as error:
            text = str(error)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > end:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def _wake_folders(uid: int) -> list[Any]:
    """Where wake-up sockets may live, best first: the user's private runtime folder
    ($XDG_RUNTIME_DIR, which the login manager makes), else a folder of the user's own in
    the temporary folder. Producers and the pool compute the same list from the same
    environment; a producer with another environment is seen by the fallback check."""
    folders = []
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and _wake_folder_problem(runtime, uid, missing=False) is None:
        folders.append(os.path.join(runtime, "autocron"))
    import tempfile      # where a wake-up is sent: a worker may never send one (1.4 MB)
    folders.append(os.path.join(tempfile.gettempdir(), f"autocron-{uid}"))
    return folders


def _wake_folder_problem(folder: str, uid: int, missing: bool = True) -> Optional[str]:
    """Why a folder cannot hold wake-up sockets, or None: it must be a real folder (not a
    symbolic link), ours, closed to others; a `missing` one is fine (the pool makes it)."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None if missing else f"{folder} does not exist"
    except OSError as error:
        return f"{folder}: {error.strerror}"
    if info.st_mode & 0o170000 != 0o040000:       # S_ISDIR, without following a link
        return f"{folder} is a symbolic link or a file, not a folder"
    if info.st_uid != uid:
        return f"{folder} belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o077:
        return f"{folder} is open to other users (mode {info.st_mode & 0o7777:o})"
    return None


def _runtime_name(database: str) -> str:
    """The name of a database's pool in the wake-up folder (its socket, its lock)."""
    return _sha256(database.encode("utf-8", "surrogateescape"))[:24]


def _wake_choice(database: str) -> tuple[Any, ...]:
    """(the wake-up socket path of a database's pool or None, why each folder was passed over)."""
    name = _runtime_name(database)
    uid = os.geteuid() if _POSIX else 0
    problems: list[str] = []
    for folder in _wake_folders(uid):
        path = os.path.join(folder, f"{name}.wake")
        problem = _wake_folder_problem(folder, uid)
        if problem is None and len(os.fsencode(path)) > _SOCKET_PATH_MAX:
            problem = (f"{path} is longer than the {_SOCKET_PATH_MAX} bytes that a socket "
                       "address can hold")
        if problem is None:
            return path, problems
        problems.append(problem)
    return None, problems


def _wake_path(database: str) -> Optional[str]:
    """Where the pool of a database listens for wake-up datagrams; None if nowhere safe."""
    path: Optional[str] = _wake_choice(database)[0]
    return path


# This thread's connections, {database path: [connection, synchronous level]}: shared by
# every _SqliteStore of the same file, so that a _SqliteStore per start() (kept alive by the
# Results it made) costs no descriptors.
_links = threading.local()


class _StoreParts:
    """What the parts of a store (_SharedReads, _SharedSql, _SqlitePool, _PgMachines) use of
    its doorway (_SqliteFile, _PgLink), declared for the reader and the type checker."""

    path: str
    version: int
    _write: bool

    @property
    def lock_path(self) -> str:
        """The pool's lock file (its doorway's)."""
        raise NotImplementedError

    drained = False       # the last claim placed every due call it saw (_Store.drained)
    async_left = False    # and it saw an async call it found no place for

    def _place_candidates(self, con: Any, sql: str, given: tuple[Any, ...], window: int,
                          kinds: str, allowed: Optional[dict[str, int]]) -> list[Any]:
        """A claim's candidates (`sql`, with {kind} for a kind's condition and the window
        its last parameter) placed by kind (_assign): [(place, row)]; a window of one kind
        while places want the other looks further (_kinds_missing). Notes what the claim
        saw (drained, async_left)."""
        rows = con.execute(sql.format(kind=""), given + (window,)).fetchall()
        seen = len(rows)
        if seen == window and not _plain_places(kinds):
            for asynchronous, count in _kinds_missing(rows, kinds):
                rows += con.execute(sql.format(kind=_KIND_IS[asynchronous]),
                                    given + (count,)).fetchall()
        chosen = _assign(rows, kinds, allowed or {})
        self.drained = seen < window and len(chosen) == len(rows)
        self.async_left = _async_left(rows, chosen)
        return chosen

    if TYPE_CHECKING:       # the doorway's, called by the parts
        def read(self, sql: str, params: Any = ()) -> list[Any]: ...
        def write(self, sql: str, params: Any = ()) -> int: ...
        def transaction(self) -> ContextManager[Any]: ...
        def now(self, look: bool = True) -> float: ...
        def _synchronous(self, level: Any) -> None: ...
        def _connection(self) -> Any: ...
        def _error(self, error: Any) -> DatabaseError: ...
        def _open(self) -> list[Any]: ...


class _SharedReads(_StoreParts):
    """What both stores read for callers, the admin tool and the dashboard with the same SQL
    (and the few writes they make from outside the pool), with SQLite's ? placeholders."""

    _FIND = "instr"        # PostgreSQL: "strpos": where text holds other text, from 1 (0: not)
    _RAN_ON = "NULL"       # PostgreSQL: "machine": the machine of a call's last attempt

    def set_setting(self, key: str, value: Any) -> None:
        self.write("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                   "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))
        if key == "synchronous":
            self._synchronous(value)

    def function_payload(self, digest: str) -> bytes:
        rows = self.read("SELECT payload FROM functions WHERE hash = ?", (digest,))
        if not rows:
            raise LookupError(f"the shipped function {digest} is not in {self.path}; it was "
                              "deleted with its last task - call the function again")
        payload: bytes = rows[0][0]
        return payload

    def result_row(self, uid: str) -> Optional[_ResultRow]:
        rows = self.read(f"SELECT {_RESULT_COLUMNS} FROM tasks WHERE id = ? AND token = ?",
                         _row_key(uid))
        return _ResultRow(*rows[0]) if rows else None

    def call_state(self, uid: str) -> Optional[tuple[Any, ...]]:
        """(key, progress JSON, queue, due time, dependencies not finished) of a call; None
        if there is no such call, or the file is an older release's that has none of them
        (opened for reading)."""
        try:
            rows = self.read(f"SELECT key, progress, coalesce(queue, '{_DEFAULT_QUEUE}'), due, "
                             "waits FROM tasks WHERE id = ? AND token = ?", _row_key(uid))
        except DatabaseError as error:
            if not any(column in str(error) for column in ("key", "progress", "queue")):
                raise
            return None
        return tuple(rows[0]) if rows else None

    def set_progress(self, task_id: int, progress: str) -> None:
        """A running call's report, from its worker (whose start the pool may not have
        written yet: 'queued'); a call that ended keeps its last."""
        self.write("UPDATE tasks SET progress = ? WHERE id = ? AND status IN ('queued', "
                   "'running')", (progress, task_id))

    def attempt_errors(self, uid: str) -> list[Any]:
        """The errors of a task's failed attempts, the first first: those that ran again
        (each with its "started" and "finished"), then the final one (or a cancel)."""
        sql = "SELECT errors, error, status FROM tasks WHERE id = ? AND token = ?"
        try:
            rows = self.read(sql, _row_key(uid))
        except DatabaseError as error:    # an older release's file, opened for reading
            if "errors" not in str(error):
                raise
            rows = self.read(sql.replace("errors,", "NULL,"), _row_key(uid))
        if not rows:
            return []
        earlier, last, status = rows[0]
        found: list[Any] = json.loads(f"[{earlier or ''}]")
        return found + [json.loads(last)] if last and status in ("error", "cancelled") \
            else found

    def result_rows(self, limit: Optional[int] = None, status: Optional[str] = None) -> list[Any]:
        """Results newest first: at most `limit` (None: all), only those with the public
        `status` (None: any; "waiting" includes "queued"). The newest-first walk of the
        primary key stops at `limit` rows: memory never grows with the table."""
        where, params = "", cast("tuple[Any, ...]", ())
        if status is not None:
            params = _WAITING if status == "waiting" else (status,)
            where = f"WHERE status IN ({', '.join('?' * len(params))}) "
        bound = "" if limit is None else " LIMIT ?"     # SQL has no "no limit" both agree on
        return [_ResultRow(*row) for row in self.read(
            f"SELECT {_RESULT_COLUMNS} FROM tasks {where}ORDER BY id DESC{bound}",
            params + (() if limit is None else (limit,)))]

    def call_record(self, uid: str) -> Optional[bytes]:
        """The pickled call of a task (_dump_record), or None (DjangoBackend reads its
        arguments)."""
        rows = self.read("SELECT record FROM tasks WHERE id = ? AND token = ?", _row_key(uid))
        return bytes(rows[0][0]) if rows else None

    def ids_named(self, text: str, limit: int) -> list[Any]:
        """Up to `limit` ids of the tasks that `text` names: the start of their id, or a
        short id (_short_id: the start of the token, "-", the row id)."""
        if len(text) > 40:          # longer than any id (16 + 1 + 19)
            return []
        token, dash, row = text.rpartition("-")
        if dash and re.fullmatch("[0-9a-f]+", token) and row.isascii() and row.isdigit() and \
                len(row) <= 19 and int(row) < 2 ** 63:
            return [r[0] for r in self.read(f"SELECT {_UUID} FROM tasks WHERE id = ? AND token "
                                            "LIKE ?", (int(row), token + "%"))]
        if not re.fullmatch("[0-9a-f]+", text):
            return []
        return [r[0] for r in self.read(f"SELECT {_UUID} FROM tasks WHERE token LIKE ? ORDER "
                                        "BY id LIMIT ?", (text + "%", limit))]

    def clock_went_back(self, now: float) -> int:
        """The wall clock stepped back (NTP, a VM restored from a snapshot): calls that were
        due when they were made (not delayed) become due at `now`, instead of waiting until
        the clock catches up with the time they were made. Delayed calls and retries keep
        their times, which are times of the wall clock. How many there were."""
        return self.write("UPDATE tasks SET due = ? WHERE status = 'waiting' AND due > ? AND "
                          "due <= created", (now, now))

    def cancel_pending(self, uid: str) -> bool:
        rows = self.read("SELECT cancel FROM tasks WHERE id = ? AND token = ?", _row_key(uid))
        return bool(rows and rows[0][0])

    def cancel_requests(self) -> dict[Any, Any]:
        """{task id: 1 (withdraw if not started) or 2 (also stop it)}."""
        return dict(self.read("SELECT id, cancel FROM tasks WHERE cancel > 0 AND "
                              "status IN ('queued', 'running')"))

    def cron_rows(self) -> list[Any]:
        """[_CronRow] by name."""
        paused = "paused" if self.version >= 2 else "0"
        return [_CronRow(name, expression, pickle.loads(blob), next_due, last_run, running,
                         stopped == 1, stopped == _RETIRED)
                for name, expression, blob, next_due, last_run, running, stopped in self.read(
                    "SELECT name, expression, schedule, next_due, last_run, running, "
                    f"{paused} FROM crons ORDER BY name")]

    def pause_cron(self, name: str) -> bool:
        """Start no more runs of a job until it is resumed (one running goes on); False if
        there is no such job."""
        return self.write("UPDATE crons SET paused = 1 WHERE name = ?", (name,)) == 1

    def resume_cron(self, name: str, now: float) -> Optional[float]:
        """Let a paused job run again, from its first due time after `now`: the times it
        missed while paused are skipped, catch_up or not (a job that is not paused keeps its
        own). Its next due time; None if there is no such job."""
        rows = self.read("SELECT schedule, paused, next_due FROM crons WHERE name = ?",
                         (name,))
        if not rows:
            return None
        blob, paused, due = rows[0]
        if paused:
            due = _next_due(pickle.loads(blob), now)
            self.write("UPDATE crons SET paused = 0, next_due = ? WHERE name = ?", (due, name))
        return float(due)

    def call_links(self, uid: str) -> _CallLinks:
        """The calls linked to the call `uid` (_CallLinks); none in a file of an older
        release, opened for reading, that has no dependencies."""
        row = _row_key(uid)[0]
        found = []
        for sql in ("SELECT dep_id FROM deps WHERE task_id = ?",
                    "SELECT task_id FROM deps WHERE dep_id = ?",
                    "SELECT parent FROM steps WHERE task_id = ?",
                    "SELECT task_id FROM steps WHERE parent = ?"):
            try:
                found.append([tuple(r) for r in self.read(
                    f"SELECT {_UUID}, name, status FROM tasks WHERE id IN ({sql}) ORDER BY id "
                    "LIMIT ?", (row, _LINKS_SHOWN))])
            except DatabaseError as error:
                if "deps" not in str(error) and "steps" not in str(error):
                    raise
                found.append([])
        return _CallLinks(*found)

    def retry_links(self, uid: str) -> tuple[Any, ...]:
        """(the id of the task this one retries or None, [ids of the tasks that retry it],
        oldest first, at most _RETRIES_SHOWN)."""
        if self.version < 2:
            return None, []
        rows = self.read("SELECT retry_of FROM tasks WHERE id = ? AND token = ?", _row_key(uid))
        later = self.read(f"SELECT {_UUID} FROM tasks WHERE retry_of = ? ORDER BY id LIMIT ?",
                          (uid, _RETRIES_SHOWN))
        return (rows[0][0] if rows else None), [row[0] for row in later]

    def counts(self, now: float, finished: bool = True) -> tuple[Any, ...]:
        """({status: number of tasks}, the number of waiting tasks due at `now`): each group
        of statuses counted through its own index; the finished ones (a walk of their index)
        only if `finished`."""
        counts = dict(self.read("SELECT status, count(*) FROM tasks WHERE finished IS NOT "
                                "NULL GROUP BY status")) if finished else {}
        counts.update(self.read(f"SELECT status, count(*) FROM tasks WHERE {_HELD} GROUP BY "
                                "status"))
        waiting, due = self.read("SELECT count(*), coalesce(sum(CASE WHEN due <= ? THEN 1 "
                                 "ELSE 0 END), 0) FROM tasks WHERE status = 'waiting'",
                                 (now,))[0]
        if waiting:
            counts["waiting"] = waiting
        blocked = self.read("SELECT count(*) FROM tasks WHERE status = 'blocked'")[0][0]
        if blocked:
            counts["blocked"] = blocked
        return counts, due

    def queue_counts(self, since: float) -> dict[str, Any]:
        """{queue: {"waiting": n, "running": n, "started": n}} of the unfinished calls, by
        queue name ("waiting" as users see it: due or not, handed over, waiting on other
        calls; "started": those whose last attempt started since then, a retry's too)."""
        found: dict[str, Any] = {}
        for queue, status, count, started in self.read(
                f"SELECT coalesce(queue, '{_DEFAULT_QUEUE}'), status, count(*), "
                f"sum(CASE WHEN started >= ? THEN 1 ELSE 0 END) FROM tasks WHERE {_UNFINISHED} "
                "GROUP BY 1, 2 ORDER BY 1", (since,)):
            shown = found.setdefault(queue, {"waiting": 0, "running": 0, "started": 0})
            shown["running" if status == "running" else "waiting"] += count
            shown["started"] += started
        return found

    def queue_starts(self, since: float) -> dict[str, int]:
        """{queue: how many of its calls started (their last attempt) since then and have
        ended}: through the index of finished times, not a walk of every stored result."""
        return dict(self.read(f"SELECT coalesce(queue, '{_DEFAULT_QUEUE}'), count(*) FROM "
                              "tasks WHERE finished >= ? AND started >= ? GROUP BY 1",
                              (since, since)))

    def task_rows(self, statuses: tuple[Any, ...], limit: int, newest_first: bool) -> list[Any]:
        """[_TaskRow] of the tasks with these statuses: the newest first, or in the order
        the pool takes them. Each group of statuses is read through its own index, at most
        `limit` rows of each: the finished, the held, the queue (tasks_queue)."""
        order = "id DESC" if newest_first else "priority DESC, due, id"
        rows = []
        for group, where in ((_FINISHED, "finished IS NOT NULL"), (("queued", "running"),
                                                                   _HELD), (("waiting",), ""),
                             (("blocked",), "")):
            wanted = tuple(s for s in statuses if s in group)
            if wanted:
                terms = ([where] if where else []) + [
                    f"status IN ({', '.join('?' * len(wanted))})"]
                rows += self.read(
                    f"SELECT {_UUID}, name, args, status, priority, due, created, started, "
                    f"finished, summary, error, worker, value, id FROM tasks WHERE "
                    f"{' AND '.join(terms)} ORDER BY {order} LIMIT ?", wanted + (limit,))
        rows.sort(key=(lambda r: -r[-1]) if newest_first else (lambda r: (-r[4], r[5], r[-1])))
        return [_TaskRow(*row[:-1]) for row in rows[:limit]]

    def finished_since(self, since: float, limit: int) -> list[Any]:
        """[_FinishedRow] of the tasks finished since then, the newest first, at most
        `limit` (the dashboard's statistics; the index of finished times)."""
        return [_FinishedRow(*row) for row in self.read(
            "SELECT name, status, started, finished FROM tasks WHERE finished >= ? ORDER BY "
            "finished DESC LIMIT ?", (since, limit))]

    def task_page(self, wanted: _TaskFilter, before: Optional[int], limit: int,
                  scan: int) -> _TaskPage:
        """The tasks newest first that `wanted` picks (_TaskFilter) with a row id below
        `before` (None: from the newest), at most `limit`: a walk of the primary key, as
        result_rows, or of the finished tasks' index by status. A walk that no index serves
        (a function, an id, a time, a status of unfinished tasks) looks at the `scan` row ids
        below `before` at most, so that a filter few rows match costs no more than one many
        do."""
        status, function = wanted.status, wanted.function
        bounded = any(given is not None for given in wanted[1:]) or \
            status not in _FINISHED + (None,)
        top = before if before is not None else 2 ** 62 if not bounded else \
            self.read("SELECT coalesce(max(id), 0) + 1 FROM tasks")[0][0]
        low = top - scan if bounded else 0
        where, params = ["id < ?", "id >= ?"], [top, low]
        if status in _FINISHED:
            where.append("finished IS NOT NULL")      # tasks_outcome: any page is bounded
        if status is not None:
            states = _WAITING if status == "waiting" else (status,)
            where.append(f"status IN ({', '.join('?' * len(states))})")
            params += states
        if function:
            where.append(f"{self._FIND}(name, ?) > 0")
            params.append(function)
        if wanted.prefix:
            where.append("substr(token, 1, ?) = ?")
            params += [len(wanted.prefix), wanted.prefix]
        for bound, sign in ((wanted.since, ">="), (wanted.until, "<")):
            if bound is not None:
                where.append(f"created {sign} ?")
                params.append(bound)
        rows = [_ResultRow(*row) for row in self.read(
            f"SELECT {_RESULT_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ?", tuple(params) + (limit,))]
        return _TaskPage(rows, low if low > 1 and len(rows) < limit else None)

    def call_details(self, uid: str) -> Optional[_CallDetails]:
        rows = self.read(f"SELECT retries, retry_delay, backoff, timeout, priority, worker, "
                         f"{self._RAN_ON}, cron, due FROM tasks WHERE id = ? AND token = ?",
                         _row_key(uid))
        return _CallDetails(*rows[0]) if rows else None

    def failed_unretried(self, function: str, until: float) -> list[str]:
        return [row[0] for row in self.read(
            f"SELECT {_UUID} FROM tasks t WHERE status = 'error' AND finished <= ? AND "
            f"name = ? AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.retry_of = t.token || "
            "'-' || t.id) ORDER BY id", (until, function))]

    def waiting_in(self, queue: str, until: float) -> list[str]:
        return [row[0] for row in self.read(
            f"SELECT {_UUID} FROM tasks WHERE status IN ('waiting', 'blocked') AND "
            f"coalesce(queue, '{_DEFAULT_QUEUE}') = ? AND created <= ? ORDER BY id DESC",
            (queue, until))]

    def last_runs(self) -> dict[Any, Any]:
        """{cron job: (status, finished)} of each job's newest run (through tasks_cron)."""
        return {name: (status, finished) for name, status, finished in self.read(
            "SELECT c.name, t.status, t.finished FROM crons c JOIN tasks t ON t.id = "
            "(SELECT max(id) FROM tasks WHERE cron = c.name)")}


class _SharedSql(_SharedReads):
    """What both stores read and write with the same SQL, written with SQLite's ?
    placeholders (the PostgreSQL store's read(), write(), _run() and _run_many() turn them
    into %s). Where their SQL differs in a few words, the words are named below and each
    store sets its own, so that a fix here lands in both."""

    # The schema version. Opened for reading, an older schema stays as it is: what it lacks
    # reads as nothing paused and nothing retried.
    version = _SCHEMA_VERSION

    # -- the differences, named
    _FENCE = ""        # PostgreSQL: " AND lease = ?": a pool writes only rows it holds under
                       # its lease (the parameter: _fence())
    _LET_GO = ""       # PostgreSQL: ", machine = NULL, lease = NULL": a row that waits again
                       # is no machine's
    _TAKE = ""         # PostgreSQL: " FOR UPDATE SKIP LOCKED": rows another pool is taking
                       # are left to it
    _NEW_ID = ""       # PostgreSQL: " RETURNING id" after an INSERT (SQLite: lastrowid)
    _LOCK = ""         # PostgreSQL: " FOR UPDATE": the rows read are written next, and
                       # no other pool's transaction may change them in between
    _SHARE = ""        # PostgreSQL: " FOR SHARE": the rows read may not change until the
                       # transaction ends (a dependency's end waits for its new dependents)
    _STARTS_NOTED = True   # PostgreSQL: False: a worker's start_now notes a call's start,
                           # and the held calls are counted in the database (many pools)
    _DONE_WRITERS: Optional[str] = None   # PostgreSQL: the metrics' rows to fold: those of
                                          # writers other than the live pools (fold_counts)

    def _fence(self) -> tuple[Any, ...]:
        """The parameters of _FENCE: none here (one pool, whose flock is its lease)."""
        return ()

    def _run(self, con: Any, sql: str, params: Any = ()) -> Any:
        """One statement in the caller's transaction; its cursor."""
        return con.execute(sql, params)

    def _run_many(self, con: Any, sql: str, rows: list[Any]) -> None:
        """One statement for each of `rows`, in the caller's transaction."""
        if rows:
            con.executemany(sql, rows)

    def _later(self, cursors: list[Any]) -> Callable[[], list[Any]]:
        """The rows of these statements' cursors, read when the function returned is
        called (PostgreSQL: in its pipeline, with the answer to a later statement, at no
        round trip of their own); here read now, before a later statement changes them."""
        rows = [row for cursor in cursors for row in cursor.fetchall()]
        return lambda: rows

    def _rows_of(self, con: Any, select: str, ids: list[Any], rest: str = "",
                 params: tuple[Any, ...] = ()) -> Callable[[], list[Any]]:
        """`select` ... WHERE id IN (`ids`, _CHUNK at a time) `rest` (with `params`), in the
        caller's transaction; the rows returned later (_later)."""
        return self._later([
            self._run(con, f"{select} WHERE id IN ({', '.join('?' * len(part))}){rest}",
                      part + list(params)) for part in _chunks(ids, _CHUNK)])

    def _new_id(self, cursor: Any) -> int:
        """The id of the row an INSERT (ending in _NEW_ID) made."""
        return int(cursor.lastrowid)

    def _made_id(self, cursor: Any) -> Optional[int]:
        """The id of the row an INSERT ... ON CONFLICT DO NOTHING (and _NEW_ID) made; None if
        it made none."""
        return int(cursor.lastrowid) if cursor.rowcount == 1 else None

    def _notify(self, con: Any, priority: Union[int, str]) -> None:
        """Wake the pools, in the caller's transaction (PostgreSQL; here the caller wakes
        its machine's pool after the commit)."""

    def _deleted(self, con: Any, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a DELETE in the caller's transaction; how many rows it deleted."""
        return int(con.execute(sql, params).rowcount)

    def _check_size(self, data: Optional[bytes], what: str) -> None:
        """Refuse a value the database could not hand back (_DataRefused); SQLite refuses
        such a value itself."""

    def _adder(self) -> str:
        """Whose rows of the metrics table this store adds to: SQLite's one writer at a time
        all; on PostgreSQL a pool its own, and every other writer rows of its own that no one
        else writes (see fold_counts)."""
        return ""


    # -- a Result's first read (see _ReadAhead)

    def result_row_ahead(self, uid: str, ahead: list[str]) -> _RowsAhead:
        key = _row_key(uid)
        ids = [key[0]] + [_row_key(other)[0] for other in ahead[:_AHEAD]]
        rows = {row.uuid: row for row in (_ResultRow(*found) for found in self.read(
            f"SELECT {_RESULT_COLUMNS} FROM tasks WHERE id IN ({', '.join('?' * len(ids))}) "
            "AND (id = ? OR status IN ('ready', 'error', 'cancelled') AND coalesce(length("
            "value), 0) + coalesce(length(output), 0) + coalesce(length(error), 0) <= ?)",
            (*ids, key[0], _AHEAD_MOST)))}
        return rows.pop(uid, None), [rows[other] for other in ahead if other in rows]


    # -- the metrics (GET /metrics): added to in the transaction that writes the ends

    def _endings(self, con: Any, ids: list[Any]) -> Callable[[], list[Any]]:
        """[_Ending] of the calls among `ids` whose attempts the pool may end now: held, and
        (PostgreSQL) under its lease; their rows locked until the transaction ends. Read as
        they are now, returned later (_later)."""
        rows = self._rows_of(con, f"SELECT id, name, coalesce(queue, '{_DEFAULT_QUEUE}'), "
                                  "due, status, started FROM tasks", ids,
                             f" AND {_HELD}{self._FENCE} ORDER BY id{self._LOCK}", self._fence())
        return lambda: [_Ending._make(row) for row in rows()]

    def finished_rows(self, con: Any, ids: list[Any]) -> Callable[[], list[Any]]:
        """[_ResultRow] of the finished tasks among `ids`, as result_row() reads them, in the
        caller's transaction (the pool's, which finished them: their callers need not read),
        returned later (_later)."""
        rows = self._rows_of(con, f"SELECT {_RESULT_COLUMNS} FROM tasks", ids,
                             " AND status IN ('ready', 'error', 'cancelled')")
        return lambda: [_ResultRow(*row) for row in rows()]

    def fold_counts(self, con: Any) -> None:
        """Fold the metrics' rows of the writers that are done (_DONE_WRITERS), 10,000 at
        most, into the rows of no writer (adder ''), skipping rows another transaction holds:
        the scrape sums fewer rows."""
        if self._DONE_WRITERS is None:
            return
        rows = self._run(con, "SELECT adder, function, queue, kind, label, n, total FROM "
                              f"metrics WHERE {self._DONE_WRITERS} ORDER BY adder, function, "
                              f"queue, kind, label LIMIT 10000{self._TAKE}").fetchall()
        folded: dict[tuple[str, ...], list[Any]] = {}
        for _, function, queue, kind, label, n, total in rows:
            _add_metric(folded, (function, queue, kind, label), total, n)
        self._run_many(con, "DELETE FROM metrics WHERE adder = ? AND function = ? AND queue = ? "
                            "AND kind = ? AND label = ?", [tuple(row[:5]) for row in rows])
        self._run_many(con, "INSERT INTO metrics (adder, function, queue, kind, label, n, "
                            "total) VALUES ('', ?, ?, ?, ?, ?, ?) ON CONFLICT (adder, function, "
                            "queue, kind, label) DO UPDATE SET n = metrics.n + excluded.n, "
                            "total = metrics.total + excluded.total",
                       [key + tuple(folded[key]) for key in sorted(folded)])

    def _count(self, con: Any, deltas: dict[tuple[str, ...], list[Any]]) -> None:
        """Add `deltas` (_metric_deltas) to the metrics, in the order of their keys, after
        every other row the write locks (calls, then their dependents): a transaction that
        holds a counter's lock waits for no other lock but a counter's, in one order."""
        self._run_many(con, "INSERT INTO metrics (adder, function, queue, kind, label, n, "
                            "total) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (adder, function, "
                            "queue, kind, label) DO UPDATE SET n = metrics.n + excluded.n, "
                            "total = metrics.total + excluded.total",
                       [(self._adder(),) + key + tuple(deltas[key]) for key in sorted(deltas)])

    # -- settings and shipped functions

    def settings(self) -> dict[Any, Any]:
        """The stored settings over the defaults; this thread's connection takes up a changed
        synchronous level (the pool reads them every second)."""
        values = dict(_DEFAULT_SETTINGS)
        values.update((k, json.loads(v)) for k, v in self.read("SELECT key, value FROM settings"))
        if self._write:
            self._synchronous(values["synchronous"])
        return values

    def keep_function(self, con: Any, shipped: _Shipped) -> None:
        """Store a shipped function's payload, in the caller's transaction."""
        self._run(con, "INSERT INTO functions (hash, payload, created) VALUES (?, ?, ?) "
                       "ON CONFLICT (hash) DO NOTHING", (shipped.hash, shipped.payload,
                                                         self.now()))

    # -- cron jobs

    def register_cron(self, name: str, schedule: "CronExpression", func: Callable[..., Any],
                      catch_up: bool, next_due: float, declared: Optional[str] = None,
                      queue: str = _DEFAULT_QUEUE) -> None:
        """Add or replace a job, due at `next_due`; an unchanged schedule keeps its own. A
        retired job is revived (a paused one stays paused). `declared`: the module that
        called cron(), where a worker looks for the declaration (_JobRetired)."""
        text = f"{schedule}" + (f" ({schedule.tz})" if schedule.tz is not None else "")
        ref, shipped = _reference(func)
        record = _dumps({"v": 1, "function": ref, "args": (), "kwargs": {},
                         "declared": declared, "queue": queue})
        with self.transaction() as con:     # the job and its payload, never one without the other
            if shipped is not None:
                self.keep_function(con, shipped)
            self._run(
                con, "INSERT INTO crons (name, expression, schedule, record, function, "
                "catch_up, next_due) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET record = excluded.record, catch_up = excluded.catch_up, "
                "function = excluded.function, "
                "schedule = excluded.schedule, next_due = CASE WHEN crons.expression = "
                "excluded.expression THEN crons.next_due ELSE excluded.next_due END, "
                "expression = excluded.expression, paused = CASE crons.paused WHEN "
                f"{_RETIRED} THEN 0 ELSE crons.paused END",
                (name, text, pickle.dumps(schedule, _PICKLE_PROTOCOL), record,
                 shipped and shipped.hash, int(catch_up), next_due))

    def remove_cron(self, name: str) -> bool:
        """Delete a job (its runs stay); False if there is none. Code that still declares
        it registers it again at the next start()."""
        with self.transaction() as con:
            return self._deleted(con, "DELETE FROM crons WHERE name = ?", (name,)) == 1

    def due_crons(self, con: Any, now: float) -> list[Any]:
        """Start a run of every job that is due and not running (each due time once, across
        all machines on PostgreSQL: the rows are taken); their new task ids."""
        started = []
        for name, record, function in self._run(
                con, "SELECT name, record, function FROM crons WHERE running IS NULL AND "
                f"paused = 0 AND next_due <= ?{self._TAKE}", (now,)).fetchall():
            token = _token()
            queue = pickle.loads(record).get("queue", _DEFAULT_QUEUE)   # its runs' queue
            row = self._new_id(self._run(
                con, "INSERT INTO tasks (token, name, status, due, created, record, cron, "
                f"function, queue) VALUES (?, ?, 'waiting', ?, ?, ?, ?, ?, ?){self._NEW_ID}",
                (token, name, now, now, record, name, function, queue)))
            uid = f"{token}-{row}"
            self._run(con, "UPDATE crons SET running = ?, last_run = ? WHERE name = ?",
                      (uid, now, name))
            started.append(uid)
        return started

    def cron_states(self, con: Any) -> list[Any]:
        """Every cron job as it is (_CronState), for the caller to settle after a pool ended
        (its own tasks settled first); a run counts as live while it is not finished (it may
        be another machine's)."""
        return [_CronState(name, pickle.loads(blob), bool(catch_up), next_due, running,
                           bool(live)) for name, blob, catch_up, next_due, running, live in
                self._run(con, "SELECT name, schedule, catch_up, next_due, running, EXISTS "
                               f"(SELECT 1 FROM tasks WHERE {_UUID} = crons.running AND status "
                               f"IN ('waiting', 'queued', 'running')) FROM crons{self._LOCK}"
                          ).fetchall()]

    def _current_runs(self, con: Any, runs: list[Any]) -> list[Any]:
        """[_CronEnd] of the runs [(job name, task id, ended)] that are their job's current
        run (an older run, taken over from a pool that ended, is not)."""
        ended = []
        for name, task_id, at in runs:
            rows = self._run(con, f"SELECT schedule, next_due FROM crons WHERE name = ? AND "
                                  f"running = (SELECT {_UUID} FROM tasks WHERE id = ?)",
                             (name, task_id)).fetchall()
            if rows:
                ended.append(_CronEnd(name, pickle.loads(rows[0][0]), at, rows[0][1]))
        return ended


class _SharedEnds(_SharedSql):
    """The writes that end calls or hand them back, as both stores make them (the same SQL;
    see _SharedSql): withdrawals and the pool's round, each counting its ends in the
    metrics, and the release of the calls that depend on what ended."""

    def _depended_on(self, con: Any, ended: list[Any]) -> Callable[[], list[Any]]:
        """[_Dependency] of the ended calls among `ended` (row ids) that others wait on,
        returned later (_later)."""
        rows = self._rows_of(con, "SELECT id, token, status, name, error FROM tasks", ended,
                             " AND finished IS NOT NULL AND EXISTS (SELECT 1 FROM deps WHERE "
                             "dep_id = tasks.id AND done = 0)")
        return lambda: [_Dependency._make(row) for row in rows()]

    def _release(self, con: Any, ended: list[Any], now: float,
                 counts: Optional[dict[tuple[str, ...], list[Any]]] = None,
                 found: Optional[Callable[[], list[Any]]] = None) -> None:
        """Count the ends of these calls (row ids) for the calls that depend on them, in the
        caller's transaction: a call whose last dependency ended is due ('waiting'); one
        whose dependency failed or was cancelled ends with DependencyFailed at once, and so
        do the calls that depend on it in turn. Their ends are added to `counts` (the
        metrics), else counted here. `found`: _depended_on(`ended`), asked already."""
        own = counts is None
        counts = {} if counts is None else counts
        released = False
        if found is None and ended:
            found = self._depended_on(con, ended)
        while found is not None:
            ended = []
            for dep in found():
                waiting = "SELECT task_id FROM deps WHERE dep_id = ? AND done = 0"
                if dep.status == "ready":
                    self._run(con, "UPDATE tasks SET waits = waits - 1, status = CASE WHEN "
                                   "waits <= 1 THEN 'waiting' ELSE status END WHERE status = "
                                   f"'blocked' AND id IN ({waiting})", (dep.id,))
                    released = True
                else:
                    # locked: a dependent that another end failed meanwhile is not read
                    for task_id, name, queue in self._run(
                            con, f"SELECT id, name, coalesce(queue, '{_DEFAULT_QUEUE}') FROM "
                                 f"tasks WHERE status = 'blocked' AND id IN ({waiting}) ORDER "
                                 f"BY id{self._LOCK}", (dep.id,)).fetchall():
                        ended.append(task_id)
                        _add_metric(counts, (name, queue, "ended", "error"), 0.0)
                    failed = _dependency_failed(dep.name, f"{dep.token}-{dep.id}", dep.status,
                                                dep.error)
                    self._run(con, "UPDATE tasks SET status = 'error', finished = ?, error = ? "
                                   f"WHERE status = 'blocked' AND id IN ({waiting})",
                              (now, json.dumps(failed), dep.id))
                self._run(con, "UPDATE deps SET done = 1 WHERE dep_id = ? AND done = 0",
                          (dep.id,))
            found = self._depended_on(con, ended) if ended else None
        if released:
            self._notify(con, 0)
        if own:
            self._count(con, counts)

    # -- withdrawals

    def cancel(self, con: Any, uid: str, now: float) -> Optional[list[Any]]:
        """Withdraw a waiting task: None if it was not waiting, else the cron run it was, if
        any ([_CronEnd]: its job is free again once the caller gives its next due time)."""
        rows = self._run(con, f"SELECT cron, name, coalesce(queue, '{_DEFAULT_QUEUE}') FROM "
                              "tasks WHERE id = ? AND token = ? AND status IN ('waiting', "
                              f"'blocked'){self._LOCK}", _row_key(uid)).fetchall()
        if not rows:
            return None
        self._run(con, "UPDATE tasks SET status = 'cancelled', finished = ?, error = ? WHERE "
                       "id = ?", (now, json.dumps(_failure("cancelled", Cancelled)),
                                  _row_key(uid)[0]))
        counts: dict[tuple[str, ...], list[Any]] = {}
        _add_metric(counts, (rows[0][1], rows[0][2], "ended", "cancelled"), 0.0)
        self._release(con, [_row_key(uid)[0]], now, counts)
        self._count(con, counts)
        job = rows[0][0]
        return self._current_runs(con, [(job, _row_key(uid)[0], now)] if job else [])

    # -- the pool's round

    def mark_started(self, con: Any, started: list[Any]) -> None:
        """Workers started these tasks ([_Started]: id, wall-clock start): an attempt each; a
        withdrawal asked for too late is refused."""
        self._run_many(con, "UPDATE tasks SET status = 'running', started = ?, attempts = "
                            "attempts + 1, cancel = CASE cancel WHEN 1 THEN 0 ELSE cancel END "
                            f"WHERE id = ? AND status = 'queued'{self._FENCE}",
                       [(at, task_id) + self._fence() for task_id, at in started])

    def finish(self, con: Any, outcomes: list[Any]) -> list[Any]:
        """Write outcomes (_Outcome) of tasks that are still live (PostgreSQL: that this pool
        holds under its lease; one that lost it writes nothing): one with `retry_at` waits
        for its next attempt, the others are final. A final outcome of a task whose start is
        not written yet ("queued") counts that start as an attempt: the pool writes a start
        and an outcome that reach one commit together as one statement. Returns the cron
        jobs whose current run this ended ([_CronEnd]), for the caller to give their next
        due times."""
        final, again = [], []
        counts: dict[tuple[str, ...], list[Any]] = {}
        # the reads' answers come with the last one's (PostgreSQL: one round trip)
        endings = self._endings(con, sorted(o.id for o in outcomes))
        # in the order of their ids, as a call stored to depend on some locks them
        for outcome in sorted(outcomes, key=lambda o: o.id):
            self._check_size(outcome.value, "the task's value")
            error = outcome.error and json.dumps(outcome.error)
            if outcome.retry_at is not None:
                earlier = outcome.error or {}
                kept = json.dumps(dict(earlier, started=outcome.started,
                                       finished=outcome.finished, **{
                                           part: _cut_middle(earlier.get(part) or "", 8192)
                                           for part in ("message", "traceback")}))
                again.append((error, _MAX_ATTEMPT_ERRORS, kept, outcome.output,
                              outcome.retry_at, int(outcome.free), outcome.id) + self._fence())
            else:
                final.append((outcome.status, outcome.value, error, outcome.started,
                              outcome.finished, outcome.output, outcome.summary, outcome.id) +
                             self._fence())
        self._run_many(con, "UPDATE tasks SET status = 'waiting', progress = NULL, "
                            "error = ?, errors = CASE "
                            "WHEN length(errors) > ? THEN errors ELSE "
                            "coalesce(errors || ',', '') || ? END, output = ?, due = ?, "
                            "attempts = attempts - CASE status WHEN 'running' THEN ? ELSE 0 "
                            f"END, worker = NULL{self._LET_GO}, cancel = 0 WHERE id = ? "
                            f"AND status IN ('queued', 'running'){self._FENCE}", again)
        self._run_many(con, "UPDATE tasks SET status = ?, value = ?, error = ?, "
                            "started = coalesce(?, started), finished = ?, output = ?, "
                            "summary = ?, cancel = 0, attempts = attempts + CASE status WHEN "
                            "'queued' THEN 1 ELSE 0 END WHERE id = ? AND status IN ('queued', "
                            f"'running'){self._FENCE}", final)
        self._run_many(con, f"UPDATE crons SET paused = {_RETIRED} WHERE name = ?",
                       [(o.cron,) for o in outcomes if o.retire and o.cron])
        ended = [o.id for o in outcomes if o.retry_at is None]
        found = self._depended_on(con, ended) if ended else None
        _metric_deltas(outcomes, endings(), counts)
        if found is not None:
            self._release(con, ended, max(o.finished for o in outcomes), counts, found)
        self._count(con, counts)
        return self._current_runs(con, [(o.cron, o.id, o.finished) for o in outcomes
                                        if o.cron and o.retry_at is None])

    def requeue(self, con: Any, ids: list[Any]) -> None:
        """Tasks handed to a worker that never started them wait again."""
        self._run_many(con, f"UPDATE tasks SET status = 'waiting', worker = NULL{self._LET_GO} "
                            f"WHERE id = ? AND status = 'queued'{self._FENCE}",
                       [(i,) + self._fence() for i in ids])

    def refuse_cancel(self, con: Any, ids: list[Any]) -> None:
        """A withdrawal came too late: the task had started."""
        self._run_many(con, f"UPDATE tasks SET cancel = 0 WHERE id = ?{self._FENCE}",
                       [(i,) + self._fence() for i in ids])


class _SharedLimits(_SharedEnds):
    """The queues' limits, as both stores keep them (the same SQL; see _SharedSql): stored
    limits, the allowances a claim decides by, the starts a rate counts, the next due time
    a limit leaves; and what GET /metrics reads (the calls a limit holds back among it)."""

    def next_due(self, busy: Optional[dict[str, tuple[int, int]]] = None) -> Optional[float]:
        """When the next waiting task or cron job is due, if any. A call of a queue whose
        limit holds it back is not due: its queue's rate window reopens then, or (its
        concurrency) a call of the queue ends, which the pool hears of. Without limits, one
        read that also finds there are none (it needs no lock: a full disk does not stop
        it)."""
        rows = self.read("SELECT (SELECT min(due) FROM tasks WHERE status = 'waiting'), "
                         "(SELECT min(next_due) FROM crons WHERE running IS NULL AND paused = "
                         "0), EXISTS (SELECT 1 FROM limits)")
        if not rows[0][2]:
            times = [t for t in rows[0][:2] if t is not None]
            return min(times) if times else None
        with self.transaction() as con:
            allowed = self._allowed(con, self.now(), busy, lock=False)
            blocked = [name for name, room in (allowed or {}).items() if room < 1]
            rows = self._run(con, "SELECT (SELECT min(due) FROM tasks WHERE status = 'waiting'"
                                  f"{_not_in_queues(len(blocked))}), (SELECT min(next_due) FROM "
                                  "crons WHERE running IS NULL AND paused = 0)",
                             blocked).fetchall()
            times = [t for t in rows[0] if t is not None]
            for limit in self._limits(con).values():     # a rate's window reopens then
                if limit.queue in blocked and limit.rate is not None and limit.per is not None:
                    rows = self._run(con, "SELECT at FROM starts WHERE queue = ? ORDER BY at "
                                          "DESC LIMIT 1 OFFSET ?",
                                     (limit.queue, limit.rate - 1)).fetchall()
                    times += [rows[0][0] + limit.per * _RATE_MARGIN] if rows else []
        return min(times) if times else None

    def metric_values(self, now: float) -> _MetricValues:
        """The counters (none in an older release's file, opened to read) and the gauges'
        counts: of the unfinished calls only, each group through its own index."""
        try:
            counters = self.read("SELECT function, queue, kind, label, sum(n), sum(total) FROM "
                                 "metrics GROUP BY function, queue, kind, label")
        except DatabaseError as error:
            if "metrics" not in str(error):
                raise
            counters = []
        queue = f"coalesce(queue, '{_DEFAULT_QUEUE}')"
        limits = self.limits()
        return _MetricValues(
            counters,
            self.read(f"SELECT name, {queue}, status, count(*), min(due) FROM tasks WHERE "
                      f"{_HELD} GROUP BY 1, 2, 3"),
            self.read(f"SELECT name, {queue}, due <= ?, count(*), min(due) FROM tasks WHERE "
                      "status = 'waiting' GROUP BY 1, 2, 3", (now,)),
            self.read(f"SELECT name, {queue}, count(*) FROM tasks WHERE status = 'blocked' "
                      "GROUP BY 1, 2"),
            limits,
            {limit.queue: self.read("SELECT count(*) FROM starts WHERE queue = ? AND at > ?",
                                    (limit.queue, now - limit.per))[0][0]
             for limit in limits.values() if limit.rate is not None and limit.per})

    def limits(self) -> dict[str, _Limit]:
        """{queue: _Limit} as stored (none in an older release's file, opened to read)."""
        try:
            return {row[0]: _Limit(*row) for row in self.read(
                "SELECT queue, concurrency, rate, per FROM limits ORDER BY queue")}
        except DatabaseError as error:
            if "limits" not in str(error):
                raise
            return {}

    def _limits(self, con: Any, lock: bool = False) -> dict[str, _Limit]:
        """{queue: _Limit}, in the caller's transaction (`lock`: PostgreSQL locks them, so
        that the claims of all machines are decided one after another)."""
        return {row[0]: _Limit(*row) for row in self._run(
            con, "SELECT queue, concurrency, rate, per FROM limits ORDER BY queue"
                 f"{self._LOCK if lock else ''}").fetchall()}

    def set_limit(self, queue: str, given: dict[str, Any]) -> Optional[_Limit]:
        """Change a queue's limits: the keywords `given` (concurrency, rate, per; None lifts
        one), the others kept; what is stored then (None: no limit left)."""
        with self.transaction() as con:
            stored = self._limits(con, lock=True).get(queue) or _Limit(queue, None, None, None)
            changed = stored._replace(**given)
            self._run(con, "DELETE FROM limits WHERE queue = ?", (queue,))
            if changed.concurrency is None and changed.rate is None:
                return None
            self._run(con, "INSERT INTO limits (queue, concurrency, rate, per) VALUES (?, ?, ?, "
                           "?)", changed)
        return changed

    def _allowed(self, con: Any, now: float, busy: Optional[dict[str, tuple[int, int]]],
                 lock: bool = True) -> Optional[dict[str, int]]:
        """{queue: how many more of its calls may be claimed now} of the limited queues, in
        the caller's transaction (PostgreSQL, `lock`: the limits locked until it ends, and
        the held calls of every machine counted then); None: no queue is limited. `busy`:
        the calls held, by queue, as the pool knows them (SQLite: its own are all)."""
        limits = self._limits(con, lock)
        if not limits:
            return None
        if busy is None or not self._STARTS_NOTED:     # PostgreSQL: every machine's
            busy = {row[0]: (row[1], row[2]) for row in self._run(
                con, f"SELECT coalesce(queue, '{_DEFAULT_QUEUE}'), count(*), sum(CASE status "
                     f"WHEN 'queued' THEN 1 ELSE 0 END) FROM tasks WHERE {_HELD} "
                     "GROUP BY 1").fetchall()}
        # a rate counts the starts in its window and the calls claimed and not started yet
        # (each starts now or later)
        counted = dict(self._run(con, "SELECT s.queue, count(*) FROM starts s JOIN limits l ON "
                                      "l.queue = s.queue WHERE s.at > ? - l.per * ? GROUP BY "
                                      "s.queue", (now, _RATE_MARGIN)).fetchall())   # one read
        recent = {name: counted.get(name, 0) + busy.get(name, (0, 0))[1]
                  for name, limit in limits.items() if limit.per is not None}
        return _allowances(limits, {name: held for name, (held, _) in busy.items()}, recent)

    def note_starts(self, con: Any, started: list[Any]) -> None:
        """Workers started these calls ([_Started]): note those of rate-limited queues
        (PostgreSQL: a worker's start_now did)."""
        if self._STARTS_NOTED:
            self._run_many(con, _STARTED, [(at, task_id) for task_id, at in started])

    def _note_starts(self, con: Any, claimed: list[_Claimed], now: float) -> None:
        """Forget the starts of rate-limited queues that their windows have passed (a start
        is noted when a worker starts a call: _STARTED)."""
        rated = {name: limit for name, limit in self._limits(con).items() if limit.per}
        self._run_many(con, "DELETE FROM starts WHERE queue = ? AND at <= ?",
                       [(name, now - limit.per * _RATE_MARGIN) for name, limit in rated.items()
                        if limit.per is not None])

class _SharedCalls(_SharedLimits):
    """How both stores store calls with keys, dependencies and steps, and retry them by
    hand (the same SQL; see _SharedSql)."""

    def add_tasks(self, name: str, calls: Iterable[Any], due: float,
                  options: Optional[_Options] = None,
                  shipped: Optional[_Shipped] = None) -> list[Any]:
        """Store many calls of one function, [_NewCall], in one transaction (committed when
        this returns, with the shipped function's payload); their ids.

        `calls` is read a chunk at a time inside the transaction: map() makes each call as
        it is read, so that a million calls never stand in memory at once. A chunk of plain
        calls goes in with one statement (_insert_plain); a chunk with a call that has
        dependencies or a key, or fails at once, goes through store_calls.
        """
        options = options or _PLAIN
        uids: list[Any] = []
        with self._bulk_transaction() as con:
            if shipped is not None:
                self.keep_function(con, shipped)
            for chunk in _chunks(calls, _MAP_CHUNK):
                if any(call.deps or call.failed or call.key is not None for call in chunk):
                    uids += [uid for uid, _ in self.store_calls(con, name, chunk, due, options,
                                                                shipped, None)]
                else:
                    uids += self._insert_plain(con, name, chunk, due, options, shipped)
            if uids:
                self._notify(con, options.priority)
        return uids

    def _bulk_transaction(self) -> ContextManager[Any]:
        """The transaction add_tasks() stores its calls in."""
        return self.transaction()

    def _insert_plain(self, con: Any, name: str, calls: list[Any], due: float,
                      options: _Options, shipped: Optional[_Shipped]) -> list[str]:
        """Insert plain calls ([_NewCall]: no key, no dependency) in one statement, in the
        caller's transaction, with consecutive ids and one token; their ids."""
        raise NotImplementedError

    def add_calls(self, name: str, calls: list[Any], due: float,
                  options: Optional[_Options] = None, shipped: Optional[_Shipped] = None,
                  parent: Optional[int] = None, connection: Any = None) -> list[Any]:
        """Store calls of one function, [_NewCall], in one transaction with the shipped
        function's payload (committed when this returns; PostgreSQL: in the caller's own
        transaction on `connection`); see store_calls."""
        if connection is not None:
            raise ValueError(f"connection= stores a call in your own PostgreSQL transaction; "
                             f"{self.path} is an SQLite file: call without it")
        with self.transaction() as con:
            return self.store_calls(con, name, calls, due, options, shipped, parent)

    def store_calls(self, con: Any, name: str, calls: list[Any], due: float,
                    options: Optional[_Options], shipped: Optional[_Shipped],
                    parent: Optional[int], caller: bool = False) -> list[Any]:
        """Store calls, [_NewCall], in the caller's transaction; for each, (its id, None),
        or (the id of the unfinished call that holds its key, that call's args text).

        A call with dependencies counts those not finished yet and is 'blocked' until the
        last of them ends (_release); one whose dependency failed already ends at once with
        DependencyFailed. A dependency that is not stored (any more) is a ValueError, and
        nothing is stored. A call made by the task `parent` (its row id) is that task's
        step `step` (durable steps: steps_of). `caller`: the transaction is the caller's own
        (PostgreSQL), which may stay open long: no dependency is locked for it; a
        dependency that ends before it commits is counted by the sweep its commit asks for
        (sweep_dependents)."""
        token, options, now = _token(), options or _PLAIN, self.now()
        if shipped is not None:
            self.keep_function(con, shipped)
        known = self._dependencies(con, {uid for call in calls for uid in call.deps},
                                   lock=not caller)
        starts = [_starting([known[uid] for uid in call.deps], call.failed) for call in calls]
        rows = [(token, name, call.args, start.status, *options.columns(), due, now, call.record,
                 shipped and shipped.hash, call.key, start.waits, now if start.error else None,
                 start.error and json.dumps(start.error)) for call, start in zip(calls, starts)]
        for call in calls:
            self._check_size(call.record, "the call")
        # the calls without a key in one statement, with ids of their own; then each keyed
        # one, stored unless an unfinished call holds its key (one that ends in between
        # leaves the key free again)
        ids = iter(self._new_ids(con, sum(1 for call in calls if call.key is None)))
        made: list[Optional[int]] = [None if call.key else next(ids) for call in calls]
        self._run_many(con, _INSERT_CALL_AT, [(row_id,) + row for row_id, row in zip(made, rows)
                                              if row_id is not None])
        found: list[Any] = [(f"{token}-{row_id}", None) for row_id in made]
        for index, call in enumerate(calls):
            while call.key is not None and made[index] is None:
                made[index] = self._made_id(self._run(con, _INSERT_CALL + self._NEW_ID,
                                                      rows[index]))
                held = self._run(con, _HOLDER, (call.key,)).fetchall() \
                    if made[index] is None else []
                found[index] = (held[0][0], held[0][1]) if held else \
                    (f"{token}-{made[index]}", None)
                if held:
                    break
        self._run_many(con, "INSERT INTO deps (task_id, dep_id, done) VALUES (?, ?, ?)", [
            (row_id, known[uid].id, int(known[uid].status in _FINISHED))
            for call, row_id in zip(calls, made) if row_id is not None for uid in call.deps])
        if parent is not None:
            self._run_many(con, "INSERT INTO steps (parent, step, task_id) VALUES (?, ?, ?) ON "
                                "CONFLICT (parent, step) DO UPDATE SET task_id = "
                                "excluded.task_id", [
                                    (parent, call.step, _row_key(uid)[0])
                                    for call, (uid, _) in zip(calls, found) if call.step])
        if any(row_id is not None and start.status == "waiting"
               for row_id, start in zip(made, starts)):
            self._notify(con, options.priority)
        if caller and any(start.status == "blocked" for start in starts):
            self._notify(con, _SWEEP)     # at the commit: count the ends it did not see
        born: dict[tuple[str, ...], list[Any]] = {}     # ended at once: a dependency failed
        for row_id, start in zip(made, starts):
            if row_id is not None and start.error:
                _add_metric(born, (name, options.queue, "ended", "error"), 0.0)
        self._count(con, born)
        return found

    def _new_ids(self, con: Any, count: int) -> list[int]:
        """Row ids for `count` new tasks, in the caller's transaction: after the largest
        (this transaction holds SQLite's write lock; PostgreSQL: from the sequence)."""
        if not count:
            return []
        first = int(self._run(con, "SELECT coalesce(max(id), 0) + 1 FROM tasks").fetchone()[0])
        return list(range(first, first + count))

    def _dependencies(self, con: Any, uids: set[str], lock: bool = True
                      ) -> dict[str, _Dependency]:
        """{id: _Dependency} of the calls that new calls depend on, each locked (`lock`;
        PostgreSQL: FOR SHARE, in the order of their ids, as finish() takes them) against an
        end that would not count them; the finished ones kept from the cleanup for another
        time-to-live. ValueError for one that is not stored."""
        known: dict[str, _Dependency] = {}
        keys = {uid: _row_key(uid) for uid in uids}
        rows = sorted({row for row, _ in keys.values()})
        for start in range(0, len(rows), _CHUNK):
            part = rows[start:start + _CHUNK]
            for found in self._run(con, "SELECT id, token, status, name, error FROM tasks "
                                        f"WHERE id IN ({', '.join('?' * len(part))}) "
                                        f"ORDER BY id{self._SHARE if lock else ''}",
                                   part).fetchall():
                known[f"{found[1]}-{found[0]}"] = _Dependency(*found)
        for uid in uids:
            if uid not in known:
                raise ValueError(f"a Result given as an argument is a dependency, and the call "
                                 f"{uid} is not in {self.path} (deleted after its time-to-live, "
                                 "or purged): pass its value instead")
        ended = [d.id for d in known.values() if d.status in _FINISHED]
        if ended and lock:
            self._keep(con, ended)
        elif ended:           # not in the caller's transaction: no lock held while it runs
            with self.transaction() as own:
                self._keep(own, ended)
        return known

    def _keep(self, con: Any, ids: list[int]) -> None:
        """Keep these finished calls from the cleanup for another time-to-live, a call
        being stored to depend on them (a cleanup that is deleting one now looks at it
        again, and keeps it); ValueError if one was deleted just now."""
        now = self.now()
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            cursor = self._run(con, f"UPDATE tasks SET settled = ? WHERE id IN "
                                    f"({', '.join('?' * len(part))}) AND finished IS NOT "
                                    f"NULL{self._NEW_ID}", [now] + part)
            if (len(cursor.fetchall()) if self._NEW_ID else cursor.rowcount) != len(part):
                raise ValueError("a Result given as an argument is a dependency, and its call "
                                 "was deleted just now (its time-to-live passed): pass its "
                                 "value instead")

    def retry(self, uid: str, now: float) -> Optional[str]:
        """Store the call of a failed or cancelled task again, as a new task due at `now`
        that names the old one (retry_of) and depends on what it depended on (a step of
        no task: a retry by hand runs anew); its id, None if that task is not failed or
        cancelled (or not there). The pools hear of it (PostgreSQL: at the commit)."""
        token = _token()
        with self.transaction() as con:
            made = self._made_id(self._run(con, _RETRY_TASK + self._NEW_ID,
                                           (token, now, now, *_row_key(uid))))
            if made is None:
                return None
            deps = [_Dependency(*row) for row in self._run(
                con, "SELECT id, token, status, name, error FROM tasks WHERE id IN (SELECT "
                     f"dep_id FROM deps WHERE task_id = ?){self._SHARE}",
                (_row_key(uid)[0],)).fetchall()]
            self._run_many(con, "INSERT INTO deps (task_id, dep_id, done) VALUES (?, ?, ?)",
                           [(made, d.id, int(d.status in _FINISHED)) for d in deps])
            start = _starting(deps)
            if start.status == "waiting":
                self._notify(con, 0)
            else:
                self._run(con, "UPDATE tasks SET status = ?, waits = ?, finished = ?, error = ? "
                               "WHERE id = ?", (start.status, start.waits,
                                                now if start.error else None,
                                                start.error and json.dumps(start.error), made))
            if start.error:
                born: dict[tuple[str, ...], list[Any]] = {}
                for name, queue in self._run(con, "SELECT name, coalesce(queue, "
                                                  f"'{_DEFAULT_QUEUE}') FROM tasks WHERE id = ?",
                                             (made,)).fetchall():
                    _add_metric(born, (name, queue, "ended", "error"), 0.0)
                self._count(con, born)
        return f"{token}-{made}"

    def sweep_dependents(self, con: Any, now: float) -> None:
        """Count the ends of dependencies that their dependents did not see: calls stored in
        a caller's own transaction (which locks nothing) whose dependency ended before it
        committed. In the caller's transaction; told by a notice at that commit, and done
        when a pool starts or listens again (a notice may have been missed)."""
        self._release(con, [row[0] for row in self._run(
            con, "SELECT DISTINCT d.dep_id FROM tasks b JOIN deps d ON d.task_id = b.id JOIN "
                 "tasks t ON t.id = d.dep_id WHERE b.status = 'blocked' AND d.done = 0 AND "
                 "t.finished IS NOT NULL").fetchall()], now)

    def depends_on(self, uid: str, task_id: int) -> bool:
        """Whether the call `uid` depends on the task `task_id` (a row id), directly or
        through others."""
        return bool(self.read(
            "WITH RECURSIVE up(id) AS (SELECT dep_id FROM deps WHERE task_id = ? UNION "
            "SELECT d.dep_id FROM deps d JOIN up ON d.task_id = up.id) "
            "SELECT 1 FROM up WHERE id = ? LIMIT 1", (_row_key(uid)[0], task_id)))

    def steps_of(self, parent: int, steps: list[str]) -> dict[str, str]:
        """{step: call id} of the calls the task `parent` (a row id) made as those steps in
        an earlier attempt that are waiting, running or ready (durable steps)."""
        found: dict[str, str] = {}
        for start in range(0, len(steps), _CHUNK):
            part = steps[start:start + _CHUNK]
            found.update((step, uid) for step, uid in self.read(
                "SELECT s.step, t.token || '-' || t.id FROM steps s JOIN tasks t ON t.id = "
                "s.task_id "
                f"WHERE s.parent = ? AND s.step IN ({', '.join('?' * len(part))}) AND "
                "t.status NOT IN ('error', 'cancelled')", [parent] + part))
        return found

    def unfinished_steps(self, parent: int) -> dict[str, str]:
        """{step: call id} of the calls the task `parent` (a row id) made as its steps (in
        any attempt) that have not finished."""
        return dict(self.read("SELECT s.step, t.token || '-' || t.id FROM steps s JOIN tasks t "
                              "ON t.id = s.task_id WHERE s.parent = ? AND t.finished IS NULL",
                              (parent,)))

    def cleanup(self, now: float, ttl: float) -> int:
        """Delete finished results past their time-to-live (0: kept until purged), and
        payloads nobody needs."""
        if ttl <= 0:
            return 0
        with self.transaction() as con:
            count = self._delete_finished(con, now - ttl)
            self._run(con, "DELETE FROM functions WHERE created < ? AND hash NOT IN (SELECT "
                           "function FROM tasks WHERE function IS NOT NULL UNION SELECT "
                           "function FROM crons WHERE function IS NOT NULL)", (now - ttl,))
        return count

    def purge(self) -> int:
        """Delete every finished result (but those still needed, and those a call was
        stored to depend on in the last minute); how many."""
        with self.transaction() as con:
            return self._delete_finished(con, float("inf"), self.now() - 60)

    def _delete_finished(self, con: Any, before: float, kept: Optional[float] = None) -> int:
        """Delete, in the caller's transaction, the calls that finished before `before` and
        are not needed (_UNNEEDED) nor kept for a call stored since `kept` (default:
        `before`) to depend on them, with their dependencies and steps; how many.

        PostgreSQL: rows a transaction that stores a dependent holds are skipped, and a row
        whose `settled` changed since this statement began is looked at again (the
        locking read re-checks it), so a dependency is never deleted under its new
        dependent."""
        ids = [row[0] for row in self._run(
            con, "SELECT id FROM tasks WHERE finished IS NOT NULL AND finished < ? AND status "
                 "IN ('ready', 'error', 'cancelled') AND (settled IS NULL OR settled < ?)"
                 f"{_UNNEEDED}{self._TAKE}", (before, before if kept is None else kept,
                                              before, before)).fetchall()]
        for start in range(0, len(ids), _CHUNK):
            part = ids[start:start + _CHUNK]
            marks = ", ".join("?" * len(part))
            for table, column in (("tasks", "id"), ("deps", "task_id"), ("deps", "dep_id"),
                                  ("steps", "task_id"), ("steps", "parent")):
                self._run(con, f"DELETE FROM {table} WHERE {column} IN ({marks})", part)
        return len(ids)


class _LoggedStart(NamedTuple):
    """A start a worker noted in its start log (_StartLog)."""
    id: int
    token: str
    attempts: int          # counted before it
    at: float


class _StartLog:
    """The starts of an SQLite pool's workers, noted where no database write is needed: in
    the pool's lock file beside the database, in room the pool set aside for each worker
    before it started it. A worker notes a start there (one pwrite, which a full disk does
    not refuse where the file system writes in place) after it told the pool and just
    before the task runs; the pool writes starts into the database a moment later with
    the outcomes (_Pool._commit), and then forgets the notes of workers that died. If a
    worker and its manager both end before that write (kill -9; a full disk stretches the
    moment to the whole outage), the next pool counts the starts its predecessor left
    unwritten (_SqliteStore.recover), and forgets them: the run is an interrupted attempt,
    never a run nobody counted, which would run again as if it had never started.

    Each worker owns a slot of RING entries; a start takes a free one, which is free again
    once the pool has committed the outcome of that start. A worker starts nothing while
    none is free (RING running calls and outcomes the pool has not committed), so an
    entry is overwritten only once its start is written. An entry names its task by row id, token
    and the attempts counted before it: the next pool counts it only for a row that is
    still "queued" with that many attempts, so an old entry counts nothing. A machine that
    loses power loses these with the page cache, as it does the last commits.
    """

    ENTRY = struct.Struct("=qQid4x")      # id, token, attempts before, start time
    RING = 1024                            # more than a worker's async calls (_MOST_ASYNC)
    START = 4096                           # past the cancel mark (request_cancel)

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    SLOTS = 4096                           # more than any pool has workers (1000)

    def reserve(self, slots: int) -> None:
        """Set room aside for `slots` workers (written, so that a full disk cannot refuse
        a note later, where the file system writes in place); OSError if there is none."""
        size = self.START + slots * self.RING * self.ENTRY.size
        end = os.fstat(self.fd).st_size
        while end < size:
            written = os.pwrite(self.fd, bytes(size - end), end)
            if not written:
                raise OSError(errno.ENOSPC, "no room for the start log", self.path)
            end += written

    def clear(self, slot: Optional[int] = None) -> None:
        """Forget the notes of one slot (its worker's starts are written) or of all (the
        next pool counted them), in place: an old note never meets a new call."""
        size = os.fstat(self.fd).st_size - self.START
        first, length = (0, size) if slot is None else (
            slot * self.RING * self.ENTRY.size, self.RING * self.ENTRY.size)
        length = max(0, min(length, size - first, self.SLOTS * self.RING * self.ENTRY.size))
        if length:
            os.pwrite(self.fd, bytes(length), self.START + first)

    def note(self, slot: int, entry: int, run: "_Run", at: float) -> None:
        """A worker's start of `run`, in its slot's `entry` (one that no running task holds,
        nor one whose outcome is unwritten); OSError if it cannot be noted."""
        token = run.uuid.rpartition("-")[0]
        data = self.ENTRY.pack(run.id, int(token, 16) if len(token) == 16 else 0,
                               run.attempts, at)
        os.pwrite(self.fd, data, self.START + (slot * self.RING + entry % self.RING) *
                  self.ENTRY.size)

    def starts(self) -> list[Any]:
        """[_LoggedStart] of every entry, old ones too."""
        size = min(os.fstat(self.fd).st_size - self.START,
                   self.SLOTS * self.RING * self.ENTRY.size)     # a file grown by others
        data = os.pread(self.fd, max(0, size), self.START)
        return [_LoggedStart(task_id, f"{token:016x}", attempts, at) for task_id, token,
                attempts, at in self.ENTRY.iter_unpack(data[:len(data) - len(data) %
                                                             self.ENTRY.size]) if task_id]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _SqliteFile:
    """The doorway to one database file: its connections (one per thread), transactions,
    errors turned into DatabaseError, and the schema."""

    def __init__(self, path: _Database, existing: bool = False,
                 write: Optional[bool] = None, snapshot: bool = False):
        """Open (and create, unless `existing`) the database.

        `existing` opens it read-only and changes nothing; `snapshot` also leaves no file
        beside it, for one look (the admin tool's reading commands: see _read_only_uri);
        `existing=True, write=True` is for the admin tool's commands that change settings.
        The path is the real one (symbolic links resolved): the pool lock, the wake-up socket
        and start()'s same-database check belong to the file, not to a spelling of its path.
        """
        self.path = os.path.realpath(os.fspath(path))
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise DatabaseError(f"{self.path}: autocron needs SQLite "
                                f"{'.'.join(map(str, _MIN_SQLITE[:2]))} or newer, and this "
                                f"Python uses SQLite {sqlite3.sqlite_version}; upgrade SQLite, "
                                "or use a Python built with a newer one", self.path)
        self._write = not existing if write is None else write
        self._snapshot = snapshot
        self._mark: Optional[int] = None       # the lock file, read by cancel_mark()
        self._start_log: Optional[_StartLog] = None
        # connections are shared per thread by the stores of a file that open it alike
        self._key = (self.path, "rw" if self._write else "snapshot" if snapshot else "ro")
        if existing:
            self._check_existing()
        else:
            self._prepare()

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection = self._link()[0]
        return con

    def _link(self) -> list[Any]:
        """This thread's [connection, synchronous level] for the database."""
        links = getattr(_links, "by_path", None)
        if links is None or _links.pid != os.getpid():   # never a connection made before fork
            links = _links.by_path = {}
            _links.pid = os.getpid()
        link = links.get(self._key)
        if link is None:
            link = links[self._key] = self._open()
        return link

    def _open(self) -> list[Any]:
        """A new connection and the synchronous level it uses: [connection, level]."""
        if not self._write:
            try:
                return [sqlite3.connect(self._read_only_uri(), uri=True, timeout=0,
                                        isolation_level=None), None]
            except sqlite3.Error as error:
                raise self._error(error) from None
        try:
            # timeout=0: SQLite's own busy handler sleeps whole milliseconds, which
            # would cap a producer at a few hundred calls a second while the pool
            # writes; _execute retries in steps of a tenth of a millisecond instead.
            con = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            _execute(con, "PRAGMA journal_mode=WAL")
            # Producers never autocheckpoint (it would cost them a sync now and then); the
            # pool's dispatcher does (see _Pool.run), and checkpoint() empties the log.
            _execute(con, "PRAGMA wal_autocheckpoint=0")
            try:
                rows = _execute(con, "SELECT value FROM settings WHERE key = 'synchronous'")\
                    .fetchall()
            except sqlite3.OperationalError:       # no schema yet
                rows = []
            link = [con, None]
            self._use_synchronous(link, json.loads(rows[0][0]) if rows else None)
        except sqlite3.Error as error:
            raise self._error(error) from None
        return link

    @staticmethod
    def _use_synchronous(link: list[Any], level: Any) -> None:
        """Make a connection sync as the setting says ("normal", or "full": also at every
        commit); a missing or unknown stored value counts as the default."""
        level = level if level in _SYNCHRONOUS else _DEFAULT_SETTINGS["synchronous"]
        if link[1] != level:
            _execute(link[0], f"PRAGMA synchronous={level.upper()}")
            link[1] = level

    def _read_only_uri(self, snapshot: Optional[bool] = None) -> str:
        """A URI that reads the database without writing anything, beside it either.

        mode=ro never writes the file, but on a WAL database that nobody has open it creates
        the -wal and -shm files, which a read-only connection cannot remove again. Without a
        -wal file no connection has the database open, so immutable=1 reads the file alone,
        for a snapshot: such a connection never sees a later change (and a writer that
        starts meanwhile could show it a torn state; the admin tool only displays it).

        The file itself is opened only for a snapshot of a database without a -wal file: its
        SQLite locks belong to the process, and closing any descriptor of the file drops
        them all. This process's connections would then hold the file without a lock, and
        another process's last connection to close, a pool's, would take itself for the
        last user and delete the -wal under them: what they commit later is lost, and a new
        connection here reads "disk I/O error". A -wal file means that the database is open
        somewhere, perhaps in this process, and so no snapshot either way.
        """
        quoted = self.path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        if not (self._snapshot if snapshot is None else snapshot) or \
                os.path.exists(self.path + "-wal"):
            return f"file:{quoted}?mode=ro"
        with contextlib.suppress(OSError), open(self.path, "rb") as file:
            if file.read(20)[18:20] == b"\x02\x02":
                return f"file:{quoted}?mode=ro&immutable=1"
        return f"file:{quoted}?mode=ro"

    def _error(self, error: sqlite3.Error) -> DatabaseError:
        text = str(error)
        # SQLITE_TOOBIG: this value alone. Python 3.10 and older report it as an
        # InterfaceError while binding ("probably unsupported type"); autocron binds only
        # types SQLite takes, so that error is the size too
        if "too big" in text or "too large" in text or (
                isinstance(error, sqlite3.InterfaceError) and "binding parameter" in text):
            return _DataRefused(f"{self.path}: a value is larger than SQLite stores (1 GB); "
                                f"pass or return less (sqlite3: {text})", self.path)
        if "disk is full" in text:
            hint = "the disk is full; free space on it, then call again (nothing was stored)"
        elif "disk I/O error" in text:
            hint = "the disk failed to read or write (an I/O error); check it, then call " \
                   "again (nothing was stored)"
        elif "not a database" in text or "malformed" in text or "corrupt" in text:
            hint = "it is not an SQLite database or it is damaged; move it aside or pass " \
                   "another path to start()"
        elif "readonly" in text or "read-only" in text or "unable to open" in text:
            hint = "it cannot be written; make the file and its folder writable by you " \
                   "(chmod u+w) or pass another path"
        elif "locked" in text or "busy" in text:
            hint = f"another process held it locked for {_BUSY_TIMEOUT:g} s; try again"
        else:
            hint = "see the SQLite message"
        return DatabaseError(f"{self.path}: {hint} (sqlite3: {text})", self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        con = self._connection()
        try:
            _execute(con, "BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            # Never busy in WAL mode (BEGIN IMMEDIATE holds the write lock), but with a
            # rollback journal (no WAL on this file system) it waits for the readers to end.
            _execute(con, "COMMIT")
        except sqlite3.Error as error:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise self._error(error) from None

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return _execute(self._connection(), sql, params).fetchall()
        except sqlite3.Error as error:
            raise self._error(error) from None

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        try:
            return _execute(self._connection(), sql, params).rowcount
        except sqlite3.Error as error:
            raise self._error(error) from None

    def close(self) -> None:
        """Close this thread's connection to the database; the next use opens another."""
        links = getattr(_links, "by_path", None)
        link = links.pop(self._key, None) if links and _links.pid == os.getpid() else None
        if link is not None:
            link[0].close()

    def _prepare(self) -> None:
        _private_folder(os.path.dirname(self.path))
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise DatabaseError(f"cannot create {self.path} ({error.strerror}); check the "
                                "folder's permissions or pass another path", self.path) from None
        _check_private(self.path)
        _check_one_name(self.path)
        version = self.read("PRAGMA user_version")[0][0]
        if version == 0:
            self._create_schema()
        elif version > _SCHEMA_VERSION:
            raise _newer_schema(self.path, version, _SCHEMA_VERSION, " or pass another path")
        with self.transaction() as con:    # fails now, not later, if the file is read-only
            con.execute("UPDATE settings SET value = value WHERE 0")
            self._upgrade(con)

    _wake: Any = False      # the wake-up socket's path, once worked out

    @property
    def wake_path(self) -> Optional[str]:
        """Where its pool listens, if one can."""
        if self._wake is False:
            self._wake = _wake_path(self.path)
        return cast(Optional[str], self._wake)

    @property
    def lock_path(self) -> str:
        """The pool's flock (and the cancel mark)."""
        return self.path + ".lock"

    def _check_existing(self) -> None:
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"no database at {self.path}; pass --db PATH (start() "
                                    "creates one; reading commands never do)")
        _check_folder(os.path.dirname(self.path))
        _check_private(self.path)
        _check_one_name(self.path)
        try:      # read-only even for the writing commands: a foreign file stays untouched
            with contextlib.closing(sqlite3.connect(self._read_only_uri(True), uri=True)) as con:
                version = _execute(con, "PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as error:
            raise self._error(error) from None
        if version == 0:
            raise DatabaseError(f"{self.path} is not an autocron database; pass --db PATH",
                                self.path)
        if version > _SCHEMA_VERSION:
            raise _newer_schema(self.path, version, _SCHEMA_VERSION)
        self.version = version
        if self._write and version < _SCHEMA_VERSION:
            with self.transaction() as con:
                self._upgrade(con)

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Bring an older schema up to this one's, in the caller's transaction (the version
        is read again in it: another process may have upgraded it meanwhile)."""
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version < 2:
            for statement in _UPGRADE_TO_2 + _INDEXES_2:
                con.execute(statement)
        if version < _SCHEMA_VERSION:
            con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        have = {row[1] for row in con.execute("PRAGMA table_info(tasks)")}
        for column, kind in _ADDED_COLUMNS:
            if column not in have:
                con.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
        for statement in (_ADDED_INDEX,) + _ADDED_TABLES:
            con.execute(statement.format(big="INTEGER", real="REAL").replace(
                " INDEX", " INDEX IF NOT EXISTS", 1).replace("TABLE", "TABLE IF NOT EXISTS", 1))
        self.version = _SCHEMA_VERSION

    def _create_schema(self) -> None:
        with self.transaction() as con:
            if con.execute("PRAGMA user_version").fetchone()[0]:
                return      # another process created it while this one waited for the lock
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            if tables:
                raise DatabaseError(f"{self.path} is an SQLite database but not autocron's "
                                    f"(it has the tables {', '.join(sorted(tables))}); pass "
                                    "another path to start()", self.path)
            for statement in _SCHEMA + _INDEXES_2:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _synchronous(self, level: Any) -> None:
        try:
            self._use_synchronous(self._link(), level)
        except sqlite3.Error as error:
            raise self._error(error) from None

    def size_bytes(self) -> int:
        return os.path.getsize(self.path)

    def identity(self) -> tuple[Any, ...]:
        """What tells this database from another, whatever path spells it."""
        info = os.stat(self.path)
        return info.st_dev, info.st_ino

    def schema_version(self) -> int:
        return int(self.read("PRAGMA user_version")[0][0])


class _SqlitePool(_StoreParts):
    """One machine, one pool: the pool's lock file (its flock is the lease), the processes
    it publishes, the time due times go by, and the write-ahead log it keeps small."""

    # One machine, one pool: the flock on lock_path is its lease, and it has no others.
    leased = False
    starts_committed = False  # a worker notes a start in the start log; the pool writes it
    remote = False           # a caller reads a finished row in microseconds itself
    machine: Optional[str] = None
    lease: Optional[int] = None
    wakes_pools = False      # the caller wakes its machine's pool (a datagram) after a call

    _wal_seen = (-1, 0.0)           # (size, since when) of the -wal as checkpoint() saw it
    _checkpoint_after = 0.0         # no checkpoint before this time.monotonic()

    def take_lease(self, con: sqlite3.Connection, owner: int) -> None:
        """Nothing to take: the pool's flock is its lease."""

    def renew_lease(self, lease: Optional[int] = None) -> bool:
        return True

    def now(self, look: bool = True) -> float:
        """The time due times go by: this machine's clock, whose file this is."""
        return _clock()

    def claimed(self) -> list[Any]:
        """No claim's reply can be lost: the database is a file of this machine."""
        return []

    def lost_machines(self, con: sqlite3.Connection) -> list[Any]:
        return []

    def forget_machine(self, con: sqlite3.Connection, pool: "_PoolId") -> None:
        """No other pools to forget."""

    def listener(self, again: bool = False) -> None:
        """No LISTEN: producers on this machine wake the pool with datagrams."""
        return None

    def checkpoint(self, limit: int = _WAL_LIMIT, quiet_too: bool = True) -> bool:
        """Keep the write-ahead log small: empty it when it passes `limit` bytes or (with
        `quiet_too`: the pool) has been quiet for a second. True if it did.

        The pool's passive autocheckpoints copy the log into the database as it goes, but
        SQLite only starts the log over from its beginning when a writer finds every frame
        copied and no reader in the log; while producers and the pool write back to back
        that moment does not come, so the log grows with every call (510 MB for 100,000
        calls), and even then the file keeps its size. A TRUNCATE checkpoint copies the
        rest and empties the file once no reader is in the log. It is tried once per look
        (at most every _CHECKPOINT_LOOK s): one that finds a reader or a writer in its way
        copies what it can and answers busy, and the next look tries again, so that nobody
        waits for it. A producer looks every _WAL_LOOK calls too, with a larger limit: while
        it holds the write lock back to back, the pool's rounds can come late.
        """
        now = time.monotonic()
        if now < self._checkpoint_after:
            return False
        self._checkpoint_after = now + _CHECKPOINT_LOOK
        try:
            size = os.path.getsize(self.path + "-wal")
        except OSError:
            return False
        if size != self._wal_seen[0]:
            self._wal_seen = (size, now)
        quiet = quiet_too and size and now - self._wal_seen[1] >= _WAL_QUIET
        if size < limit and not quiet:
            return False
        # Past _WAL_URGENT the looker waits for its chance a moment (backpressure on a
        # producer that outruns the pool), so that the log stays bounded at any depth.
        end, pause = now + (_CHECKPOINT_WAIT if size >= _WAL_URGENT else 0.0), 0.0005
        while True:
            try:
                if not self._connection().execute(
                        "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                    self._wal_seen = (0, now)
                    return True
            except sqlite3.OperationalError as error:    # locked: the next look, then
                if "locked" not in str(error) and "busy" not in str(error):
                    raise self._error(error) from None
            except sqlite3.Error as error:
                raise self._error(error) from None
            if time.monotonic() >= end:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def set_pool(self, owner: Optional[int], manager: Optional[int] = None,
                 workers: tuple[Any, ...] = ()) -> None:
        """Say which processes run the pool (for the admin tool); None: none does."""
        if owner is None:
            self.write("DELETE FROM pool")
        else:
            self.write("INSERT INTO pool (id, owner, manager, started, workers) "
                       "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                       "owner = excluded.owner, manager = excluded.manager, "
                       "workers = excluded.workers, started = CASE WHEN pool.owner = "
                       "excluded.owner THEN pool.started ELSE excluded.started END",
                       (owner, manager, self.now(), json.dumps(list(workers))))

    def pool_pids(self, pool: Optional[_PoolId] = None) -> _PoolPids:
        """The processes of the pool as it last published them; there is one pool:
        `pool` is ignored."""
        rows = self.read("SELECT owner, manager, workers FROM pool")
        return _PoolPids(rows[0][0], rows[0][1], json.loads(rows[0][2])) if rows else \
            _PoolPids(None, None, [])

    def previous_pool(self) -> Optional[_PoolId]:
        """None: the pool that ended is found by what it left (recover takes it all)."""
        return None

    def remember_pool(self) -> None:
        """Nothing to remember: there is one pool a file."""

    def checkpoint_as_pool(self) -> None:
        """The pool's connection copies the log into the database as it goes (producers'
        never do: it would cost them a sync now and then)."""
        self.read("PRAGMA wal_autocheckpoint=1000")

    def pool_running(self) -> bool:
        """Whether a pool holds this database's lock: the flock is the truth."""
        if not _HAS_FLOCK or not os.path.exists(self.path + ".lock"):
            return False
        with open(self.path + ".lock", "rb") as file:
            try:
                _fcntl.flock(file.fileno(), _fcntl.LOCK_SH | _fcntl.LOCK_NB)
            except OSError:
                return True
        return False

    def pool_row(self) -> Optional[_PoolRow]:
        """The pool as it last published itself, or None."""
        rows = self.read("SELECT owner, manager, started, workers FROM pool")
        if not rows:
            return None
        owner, manager, started, workers = rows[0]
        return _PoolRow(owner, manager, started, json.loads(workers))

    def machine_rows(self) -> list[Any]:
        """No machines table: one machine, whose pool is pool_row()."""
        return []


class _SqliteStore(_SqliteFile, _SqlitePool, _SharedCalls):
    """One autocron database file: its doorway (_SqliteFile), its one pool (_SqlitePool),
    the SQL both stores share (_SharedCalls), and here what SQLite says in words of its own:
    storing calls, withdrawals, the claim and what a pool that ended left behind."""

    def reached_by(self, connection: Any) -> bool:
        return False


    # -- tasks as producers and readers see them

    def add_task(self, name: str, args: str, record: bytes, due: float,
                 options: Optional[_Options] = None,
                 shipped: Optional[_Shipped] = None) -> str:
        """Store a call (committed when this returns); its id.

        A call of a function shipped by value needs its payload in the database for as long
        as the task exists. One statement inserts the task only if the payload is there (so
        the cleanup cannot delete it in between); if it is not (a first call, or the cleanup
        deleted it after its last task), the payload and the task go in together.
        """
        token = _token()
        options = options or _PLAIN
        values = (token, name, args, *options.columns(), due, self.now(), record,
                  shipped and shipped.hash)
        try:
            if shipped is None:
                row = _execute(self._connection(), _INSERT_TASK, values).lastrowid
            else:
                cursor = _execute(self._connection(), _INSERT_SHIPPED_TASK,
                                  values + (shipped.hash,))
                row = cursor.lastrowid if cursor.rowcount == 1 else None
        except sqlite3.Error as error:
            raise self._error(error) from None
        if row is None and shipped is not None:     # its payload was not stored yet
            with self.transaction() as con:
                self.keep_function(con, shipped)
                row = con.execute(_INSERT_TASK, values).lastrowid
        if row is not None and row % _WAL_LOOK == 0:
            self.checkpoint(_WAL_URGENT, quiet_too=False)
        return f"{token}-{row}"

    def add_tasks(self, name: str, calls: Iterable[Any], due: float,
                  options: Optional[_Options] = None,
                  shipped: Optional[_Shipped] = None) -> list[Any]:
        """See _SharedCalls.add_tasks; then a look at the write-ahead log."""
        uids = super().add_tasks(name, calls, due, options, shipped)
        self.checkpoint(_WAL_URGENT, quiet_too=False)
        return uids

    def _insert_plain(self, con: Any, name: str, calls: list[Any], due: float,
                      options: _Options, shipped: Optional[_Shipped]) -> list[str]:
        """The rows get consecutive ids after the largest, given explicitly (this
        transaction holds the write lock), and share one random token: an id is still never
        reused."""
        token = _token()
        fixed = (token, name, *options.columns(), due, self.now())
        digest = shipped and shipped.hash
        ids = self._new_ids(con, len(calls))
        con.executemany(_INSERT_TASK_AT, [(task_id, call.args, call.record, digest) + fixed
                                          for task_id, call in zip(ids, calls)])
        return [f"{token}-{task_id}" for task_id in ids]

    def request_cancel(self, uid: str, force: bool) -> bool:
        """Ask the pool to withdraw a task a worker holds (force: also a running one)."""
        statuses = "('queued', 'running')" if force else "('queued')"
        if self.write(f"UPDATE tasks SET cancel = ? WHERE id = ? AND token = ? AND "
                      f"status IN {statuses}", (2 if force else 1, *_row_key(uid))) != 1:
            return False
        with contextlib.suppress(OSError):   # after the commit: see cancel_mark()
            descriptor = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, os.urandom(8))
            finally:
                os.close(descriptor)
        return True

    def cancel_mark(self) -> Optional[bytes]:
        """What changes whenever a withdrawal is asked for (request_cancel writes 8 random
        bytes into the lock file after its commit), so that a worker reads cancel_requests()
        before starting a task only when it changed: a read of the database per task would
        cost it a tenth of its time. None: no mark here, read every time."""
        if self._mark is None:
            if not _HAS_PREAD:    # pragma: no cover - Windows
                return None
            self._mark = os.open(self.path + ".lock", os.O_RDONLY | os.O_CREAT, 0o600)
        return os.pread(self._mark, 8, 0)

    # -- the pool's side (called from the pool manager only)

    def start_now(self, task_id: int, lease: Optional[int], at: float) -> bool:
        """Nothing to ask first: the pool writes the start (and a worker whose pool ended
        writes it itself: _WorkerState.hand_over); no other machine settles this file."""
        return True

    def start_log(self) -> Optional[_StartLog]:
        """Where this file's workers note their starts (in the lock file); None where the
        file system cannot pwrite (Windows)."""
        if self._start_log is None and _HAS_PREAD:
            self._start_log = _StartLog(self.lock_path)
        return self._start_log

    def recover(self, con: sqlite3.Connection, pool: Optional["_PoolId"] = None) -> list[Any]:
        """After a pool ended without finishing its tasks: the starts its workers noted that
        it never wrote count (_StartLog); what it had handed over but not started waits
        again; the ones it had started are returned, [_Interrupted], for the caller to
        settle (_recover). There is one pool: `pool` is ignored."""
        log = self.start_log()
        if log is not None:
            con.executemany("UPDATE tasks SET status = 'running', started = ?, attempts = "
                            "attempts + 1 WHERE id = ? AND token = ? AND status = 'queued' "
                            "AND attempts = ?", [(entry.at, entry.id, entry.token,
                                                  entry.attempts) for entry in log.starts()])
        con.execute("UPDATE tasks SET status = 'waiting', worker = NULL, cancel = 0 "
                    "WHERE status = 'queued'")
        return [_Interrupted(*row) for row in con.execute(
            "SELECT id, cron FROM tasks WHERE status = 'running'").fetchall()]

    def end_cron_runs(self, con: sqlite3.Connection, jobs: list[Any]) -> None:
        """These jobs run no more and are next due then: [(name, due time)]."""
        con.executemany("UPDATE crons SET running = NULL, next_due = ? WHERE name = ?",
                        [(due, name) for name, due in jobs])

    def claim_alone(self, now: float, pids: list[Any], queues: Optional[tuple[str, ...]],
                    kinds: str) -> None:
        """None: a claim here is a transaction of its own (it costs no round trip)."""
        return None

    def claim_later(self, con: sqlite3.Connection, now: float, pids: list[Any],
                    queues: Optional[tuple[str, ...]], kinds: str) -> None:
        """None: claim(), whose answer costs no round trip here."""
        return None

    def claim(self, con: sqlite3.Connection, now: float, pids: list[Any],
              queues: Optional[tuple[str, ...]] = None,
              busy: Optional[dict[str, tuple[int, int]]] = None,
              kinds: Optional[str] = None) -> list[Any]:
        """Hand the most urgent due tasks to workers: higher priority first, then in order.

        At most a task for each place, a worker pid in `pids` of the kind `kinds` says
        (_assign; None: idle workers); they are "queued" until their worker says it started
        one. Only calls of `queues` (None: any), and of a limited queue only as many as its
        limits allow now (`busy`: the calls the pool holds, by queue: this pool is the
        file's only one). Returns [_Claimed], each with its place.
        """
        kinds = kinds or _IDLE * len(pids)
        allowed = self._allowed(con, now, busy)
        blocked = [name for name, room in (allowed or {}).items() if room < 1]
        served = "" if queues is None else \
            f" AND coalesce(queue, '{_DEFAULT_QUEUE}') IN ({', '.join('?' * len(queues))})"
        window = len(pids) if allowed is None else 4 * len(pids)   # limits skip some
        sql = (f"SELECT id, {_UUID}, record, cron, timeout, priority, attempts, asynchronous "
               f"IS NOT NULL, coalesce(queue, '{_DEFAULT_QUEUE}') FROM tasks WHERE status = "
               f"'waiting' AND due <= ?{served}{_not_in_queues(len(blocked))}{{kind}} ORDER BY "
               "priority DESC, due, id LIMIT ?")
        chosen = self._place_candidates(con, sql, (now, *(queues or ()), *blocked), window,
                                        kinds, allowed)
        con.executemany("UPDATE tasks SET status = 'queued', worker = ? WHERE id = ?",
                        [(pids[place], row[0]) for place, row in chosen])
        claimed = [_Claimed._make((*row[:7], bool(row[7]), row[8], place))
                   for place, row in chosen]
        if allowed is not None:
            self._note_starts(con, claimed, now)
        return claimed

    def retry_terms(self, con: sqlite3.Connection, ids: list[Any]) -> dict[Any, Any]:
        """{task id: _RetryTerms} of these tasks, as stored."""
        return {row[0]: _RetryTerms(*row[1:]) for task_id in ids for row in con.execute(
            "SELECT id, attempts, retries, retry_delay, backoff FROM tasks WHERE id = ?",
            (task_id,))}

    def started_unseen(self, con: sqlite3.Connection, ids: list[Any]) -> list[Any]:
        """None: here the pool alone writes starts (start_now writes nothing)."""
        return []

    def anything_due(self, now: float) -> tuple[Any, ...]:
        """(a task is due, a cron job is due), read without taking the write lock."""
        return tuple(self.read(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'waiting' AND due <= ?), "
            "EXISTS (SELECT 1 FROM crons WHERE running IS NULL AND paused = 0 AND next_due <= ?)",
            (now, now))[0])


# ==============================================================================================
# The PostgreSQL store
# ==============================================================================================
#
# The store protocol (_Store) for a postgresql:// URL: many machines
# share one database, each running its own pool. psycopg 3 is imported only here, when such
# a URL is opened. The tables live in a schema of their own (?schema=, default "autocron").
#
# What differs from SQLite:
# - Claims take rows FOR UPDATE SKIP LOCKED, so pools on several machines never hand out a
#   task twice; cron runs are started the same way (one run per due time, whichever machine).
# - A call NOTIFYs in its own statement; a pool LISTENs on a connection of its own
#   (listener()), besides the wake-up datagrams of its own machine.
# - A pool holds a lease (the machines table): a number taken when it starts, renewed every
#   _lease_ttl / _LEASE_RENEWALS s. The tasks it claims carry the number, and every write of
#   a start or an outcome is fenced by it: a pool whose lease another took over
#   (lost_machines: no renewal for _lease_ttl s, by the server's clock) writes nothing more,
#   and learns so at its next renewal.
# - Whoever can write the schema can make the workers run code, like the SQLite file: a schema
#   that another role owns is refused.

_PG_SCHEMES = ("postgresql://", "postgres://")
_PG_SCHEMA_VERSION = 4
_PG_DEFAULT_SCHEMA = "autocron"
_PG_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_PG_CHANNEL = "autocron."       # + schema: the channel a call wakes the pools on
_PG_CANCEL = ".cancel"          # + this: the one a withdrawal does
_PG_NAME_BYTES = 63             # PostgreSQL cuts longer names (NAMEDATALEN - 1), channels too
_PG_LONGEST_SCHEMA = _PG_NAME_BYTES - len(_PG_CHANNEL) - len(_PG_CANCEL)   # 47: the longest
                                # name derived from a schema's is its cancel channel
_PG_CONNECT_TIMEOUT = 5         # seconds to reach the server, unless the URL says otherwise
_SKEW_LOOK = 60.0               # a machine measures its clock against the server's this often
_SKEW_IGNORED = 0.5             # a machine's clock this close to the server's is taken as it
                                # is: each measure is off by up to half a round trip, and
                                # machines would otherwise disagree by that on every due time
_LEASE_RENEWALS = 6             # a pool renews its lease this many times a lease
# A setting, not a constant (tests shorten it; the pool's processes get it in their start
# configuration): the others settle a pool's tasks once it missed its renewals this long.
_lease_ttl = 30.0
# A setting too (tests shorten it; it travels like _lease_ttl): how long a worker's
# initializer may run before it counts as failed (api.md: 60 s).
_init_timeout = 60.0
# Under a reloading development server (_reloading): workers watch the source files they
# imported and end, between tasks, once one changed (it travels like _lease_ttl).
_watch_sources = False
# In the process a reloader restarts after an edit (_restarted_by_reloader): its stop()
# hands the pool over rather than waiting for the running calls (_PoolHandle.linger).
_lingers = False
_LEASE_MARGIN = 0.25            # a worker starts tasks until this part of the lease is left
_LEASE_LOOK = 0.01              # a worker whose lease is not known valid looks again this often
# SQLSTATEs of a value that PostgreSQL cannot hold: text it cannot encode (22021, 22P05), too
# long (22001), past a size limit (54000). The same write fails again: not weather.
_PG_DATA_REFUSED = ("22021", "22P05", "22001", "54000")
_PG_LARGEST_VALUE = 500_000_000  # bytes in a value or a call: bytea goes out as hex text, twice
                                 # as long, and the server allocates at most 1 GiB for it

_PG_SCHEMA = tuple(t.format(
    id="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION", blob="BYTEA", held_by="""
        machine TEXT,                        -- the machine whose pool holds it
        lease BIGINT,                        -- and that pool's lease: its writes are fenced""",
    big="BIGINT") for t in _TABLES + _ADDED_TABLES) + (
    "CREATE INDEX tasks_held ON tasks (machine) WHERE status IN ('queued', 'running')",
    """CREATE TABLE machines (
        name TEXT NOT NULL,                  -- as shown: AUTOCRON_HOST or the host name
        lease BIGINT PRIMARY KEY,            -- a pool's identity: new at every start
        owner INTEGER NOT NULL,
        manager INTEGER,
        started DOUBLE PRECISION NOT NULL,
        workers TEXT NOT NULL DEFAULT '[]',
        heartbeat DOUBLE PRECISION NOT NULL)""",
    "CREATE SEQUENCE leases",
    "CREATE TABLE meta (version INTEGER NOT NULL)",
)

# Schema 3 over 2 (PostgreSQL): a pool is known by its lease, not by its machine's name, so
# that two pools whose machines have one name (two containers, AUTOCRON_HOST set alike, one
# server reached as 127.0.0.1 and as localhost) work side by side instead of fencing each
# other off.
_PG_UPGRADE_TO_3 = (
    "ALTER TABLE machines DROP CONSTRAINT machines_pkey",
    "ALTER TABLE machines ADD PRIMARY KEY (lease)",
)

_PG_NOW = "extract(epoch FROM clock_timestamp())"   # leases go by the server's clock
# A call wakes the pools in its own statement (the shared INSERTs, with a notice).
_PG_INSERT_TASK = f"WITH t AS ({_INSERT_TASK} RETURNING id) SELECT id, pg_notify(?, ?) FROM t"
_PG_INSERT_SHIPPED_TASK = (f"WITH t AS ({_INSERT_SHIPPED_TASK} RETURNING id) "
                           "SELECT id, pg_notify(?, ?) FROM t")
# map()'s calls, their ids taken from the sequence first: one COPY, not a statement each
# (3,000 calls: see add_tasks)
_PG_COPY_TASKS = ("COPY tasks (id, args, record, function, token, name, status, priority, "
                  "queue, asynchronous, retries, retry_delay, backoff, timeout, due, created) "
                  "FROM STDIN")


def _is_psycopg3(connection: Any) -> bool:
    """Whether an object is a psycopg 3 connection (psycopg2's has other methods)."""
    return type(connection).__module__.partition(".")[0] == "psycopg" and \
        hasattr(connection, "execute")


def _is_postgres(database: Any) -> "TypeGuard[str]":
    return isinstance(database, str) and database[:13].lower().startswith(_PG_SCHEMES)


class _PgTarget(NamedTuple):
    """A postgresql:// URL taken apart: what libpq gets, the schema, and how it is shown."""

    conninfo: str                    # the URL without `schema` (libpq refuses unknown keys)
    schema: str
    shown: str                       # the URL with the password masked: messages, info, repr
    secret: str                      # the password given in it, to mask in libpq's messages


def _pg_target(url: str) -> _PgTarget:
    """Take a postgresql:// URL apart; ValueError (saying what to write) if it is malformed."""
    import urllib.parse
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port                          # raises on a port that is not a number
    except ValueError as error:
        raise ValueError(f"cannot read the database URL ({error}); write it as "
                         "postgresql://user[:password]@host[:port]/database[?schema=name]") \
            from None
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else _PG_DEFAULT_SCHEMA
    if not _PG_SCHEMA_NAME.match(schema):
        raise ValueError(f"schema={schema!r} in the database URL is not a plain SQL name; use "
                         f"lower-case letters, digits and _ (at most {_PG_LONGEST_SCHEMA}), "
                         "such as ?schema=autocron or ?schema=jobs_2")
    if len(schema) > _PG_LONGEST_SCHEMA:      # refused before anything is made on the server
        raise ValueError(f"schema={schema!r} in the database URL is {len(schema)} characters "
                         f"long; PostgreSQL cuts names at {_PG_NAME_BYTES} bytes, and the pools' "
                         f"channel {_PG_CHANNEL}<schema>{_PG_CANCEL} must fit, so use at most "
                         f"{_PG_LONGEST_SCHEMA}, such as ?schema=autocron or ?schema=jobs_2")
    rest = [(key, value) for key, value in query if key != "schema"]
    secret = parts.password or ""
    secret_query = [value for key, value in rest if key == "password" and value]
    secret = secret or (secret_query[-1] if secret_query else "")
    conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest)))
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    shown_query = [(key, "***" if key == "password" else value) for key, value in rest]
    shown_query.append(("schema", schema))
    shown = urllib.parse.urlunsplit(parts._replace(
        netloc=netloc, query=urllib.parse.urlencode(shown_query, safe="*")))
    return _PgTarget(conninfo, schema, shown, secret)


def _psycopg(shown: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise DatabaseError(f"{shown}: a postgresql:// database needs psycopg 3, which is not "
                            'installed: pip install "psycopg[binary]" (the package index\'s '
                            '"autocron" is another project)', shown) from None
    return psycopg


# This thread's connections, {(URL, kind): connection}, like SQLite's _links. A forked child
# never uses or closes its parent's (the pid check), and psycopg says goodbye to the server
# only from the process that connected, so the parent's sessions survive the child.
_pg_links = threading.local()
# {URL as shown: URL as given}: the pool's processes get the password in their environment
# (_spawn), never on their command line, which other users can read.
_pg_urls: dict[Any, Any] = {}
# {server's conninfo: _Skew}: this machine's clock against the server's (see _PgStore.now)
_pg_skews: dict[Any, Any] = {}


class _Skew(NamedTuple):
    """How far the server's clock is ahead of this machine's, as last measured."""

    seconds: float
    measured: float            # time.monotonic() of the measure


def _measure_skew(con: Any, sql: str = "SELECT " + _PG_NOW,
                  params: tuple[Any, ...] = ()) -> Optional[float]:
    """The server's clock minus this machine's (time.time(), never the clock seam: a test's
    fake clock stays the time of every machine), from one statement that returns the
    server's time, taken at the middle of its round trip (0 within _SKEW_IGNORED); None if
    it returned no row."""
    sent = time.time()
    server = con.execute(sql, params).fetchone()
    back = time.time()
    if not server:
        return None
    skew = float(server[0]) - (sent + back) / 2
    return skew if abs(skew) >= _SKEW_IGNORED else 0.0


class _PgListener:
    """A pool's LISTEN connection: readable when a call (on any machine) or a withdrawal was
    stored; drain() says which. Lost notifications are caught by the fallback check."""

    def __init__(self, con: Any, channel: str):
        self._con = con
        self._channel = channel
        con.execute(f'LISTEN "{channel}"')
        con.execute(f'LISTEN "{channel}{_PG_CANCEL}"')
        self.cancels = 0               # withdrawals heard of so far: the pool's cancel mark
        self.sweep = True              # calls whose dependencies' ends may be uncounted
        self.priority: Optional[int] = None   # the highest priority of the calls heard of
        self._socket = con.pgconn.socket   # kept: a lost connection no longer tells it

    def fileno(self) -> int:
        return int(self._socket)

    def drain(self) -> bool:
        """Take what arrived; False if the connection broke (listen again)."""
        pgconn = self._con.pgconn
        try:
            pgconn.consume_input()
            while True:
                notice = pgconn.notifies()
                if notice is None:
                    return True
                if notice.relname.endswith(_PG_CANCEL.encode()):
                    self.cancels += 1
                elif notice.extra == _SWEEP.encode():
                    self.sweep = True
                else:
                    self.priority = _outranking(self.priority, notice.extra)
        except Exception:              # psycopg.OperationalError: the server went away
            self.cancels += 1          # a withdrawal may have been missed meanwhile
            self.sweep = True
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


class _PgSql:
    """The shared SQL's statements on psycopg: its ? placeholders turned into %s, answers
    read later in a pipeline, ids and counts read back, notices in the transaction."""

    _channel: str                    # the schema's LISTEN channel (_PgLink's)

    def _run(self, con: Any, sql: str, params: Any = ()) -> Any:
        return con.execute(sql.replace("?", "%s"), params)

    def _run_many(self, con: Any, sql: str, rows: list[Any]) -> None:
        if rows:
            with con.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)

    def _later(self, cursors: list[Any]) -> Callable[[], list[Any]]:
        return lambda: [row for cursor in cursors for row in cursor.fetchall()]

    def _new_id(self, cursor: Any) -> int:
        return int(cursor.fetchone()[0])

    def _made_id(self, cursor: Any) -> Optional[int]:
        row = cursor.fetchone()
        return None if row is None else int(row[0])

    def _notify(self, con: Any, priority: Union[int, str]) -> None:
        con.execute("SELECT pg_notify(%s, %s)", (self._channel, str(priority)))

    def _deleted(self, con: Any, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Counted by a read: a pipeline has no row count yet."""
        return int(self._run(con, f"WITH gone AS ({sql} RETURNING 1) SELECT count(*) "
                             "FROM gone", params).fetchone()[0])


class _PgLink(_PgSql):
    """The doorway to one autocron schema on a PostgreSQL server: connections (one per
    thread and process), transactions in pipeline mode, errors turned into DatabaseError,
    the schema (its statements: _PgSql)."""

    def __init__(self, url: str, existing: bool = False, write: Optional[bool] = None,
                 snapshot: bool = False):
        """Open (and create, unless `existing`) the schema; `existing` changes nothing and
        fails if it is missing (the admin tool), as with _SqliteStore."""
        url = _pg_urls.get(url, url)
        target = _pg_target(url)
        _pg_urls[target.shown] = url
        self._target = target
        self.path = target.shown          # what start() compares, messages and info show
        self.schema = target.schema
        self.machine = _machine_name()
        self.lease: Optional[int] = None  # the pool's lease, in the pool's processes
        self._psycopg = _psycopg(target.shown)
        self._write = not existing if write is None else write
        self._key = (target.conninfo, target.schema, "rw" if self._write else "ro")
        self._channel = _PG_CHANNEL + target.schema
        self._listener: Optional[_PgListener] = None
        self._crons_read, self._cron_due = -_SETTINGS_LOOK, None   # see anything_due
        self._identity: Optional[tuple[Any, ...]] = None          # see identity()
        if existing:
            self._check_existing()
        else:
            self._prepare()

    def _error(self, error: Exception) -> DatabaseError:
        text = str(error).replace(self._target.secret, "***") if self._target.secret \
            else str(error)
        text = " ".join(text.split())
        lower = text.lower()
        if getattr(error, "sqlstate", None) in _PG_DATA_REFUSED:
            return _DataRefused(f"{self.path}: PostgreSQL cannot store a value of this call "
                                f"or outcome; pass or return other data (psycopg: {text})",
                                self.path)
        if "password authentication failed" in lower or "no password supplied" in lower:
            hint = ("the server refused the user name or password; check them in the URL, "
                    "PGPASSWORD or ~/.pgpass")
        elif "does not exist" in lower and "database" in lower:
            hint = "the database does not exist; create it (createdb) or fix its name in the URL"
        elif any(words in lower for words in ("connection refused", "could not connect",
                                              "timeout expired", "translate host name",
                                              "failed to resolve", "no route to host",
                                              "server closed the connection", "connection to "
                                              "server", "network is unreachable",
                                              "terminating connection", "connection is lost",
                                              "the connection is closed")):
            hint = ("cannot reach the PostgreSQL server; is it running, and are the host and "
                    "port in the URL right?")
        elif "permission denied" in lower:
            hint = (f"this user may not use the schema {self.schema}; grant it, or choose "
                    "another with ?schema=")
        else:
            hint = "see the PostgreSQL message"
        return DatabaseError(f"{self.path}: {hint} (psycopg: {text})", self.path)

    def _open(self) -> list[Any]:
        """A new connection and the synchronous level it uses: [connection, level].

        As with SQLite, "normal" (the default) commits without waiting for the disk
        (synchronous_commit off): a stored call survives a crash of the application and of
        the pools, not one of the server's machine, which may lose the last fraction of a
        second of commits (never more, and nothing half-written). "full" waits for it.
        """
        psycopg = self._psycopg
        try:
            options = {"autocommit": True, "application_name": "autocron",
                       "options": f"-c search_path={self.schema} -c synchronous_commit=off"}
            if "connect_timeout" not in self._target.conninfo:
                options["connect_timeout"] = _PG_CONNECT_TIMEOUT
            link = [psycopg.connect(self._target.conninfo, **options), "normal"]
            _pg_skews[self._target.conninfo] = _Skew(_measure_skew(link[0]) or 0.0,
                                                     time.monotonic())
            if not self._write:
                link[0].execute("SET default_transaction_read_only = on")
                return link
            try:
                rows = link[0].execute("SELECT value FROM settings WHERE key = "
                                       "'synchronous'").fetchall()
            except psycopg.errors.UndefinedTable:        # no schema yet
                rows = []
            self._use_synchronous(link, json.loads(rows[0][0]) if rows else None)
        except psycopg.Error as error:
            raise self._error(error) from None
        return link

    @staticmethod
    def _use_synchronous(link: list[Any], level: Any) -> None:
        level = level if level in _SYNCHRONOUS else _DEFAULT_SETTINGS["synchronous"]
        if link[1] != level:
            link[0].execute(f"SET synchronous_commit TO {'on' if level == 'full' else 'off'}")
            link[1] = level

    def _link(self) -> list[Any]:
        links = getattr(_pg_links, "by_url", None)
        if links is None or _pg_links.pid != os.getpid():
            links = _pg_links.by_url = {}
            _pg_links.pid = os.getpid()
        link = links.get(self._key)
        if link is None or link[0].closed or link[0].broken or self._cut_off(link[0]):
            if link is not None:
                with contextlib.suppress(Exception):
                    link[0].close()
            link = links[self._key] = self._open()
        return link

    @staticmethod
    def _cut_off(con: Any) -> bool:
        """Whether the server ended this idle connection (a restart, a failover, an
        administrator): it then said so and closed its end, which leaves the socket readable,
        while a live idle connection has nothing to read. One poll, instead of a failed
        statement (and an error for the caller) after every restart of the server. What
        else an idle connection may hear (a changed server setting) is rare enough to cost a
        new connection."""
        try:
            return bool(select.select([con.pgconn.socket], [], [], 0)[0])
        except Exception:            # psycopg.OperationalError: it is gone
            return True

    def _connection(self) -> Any:
        return self._link()[0]

    def transaction(self) -> ContextManager[Any]:
        """A write transaction: committed when the block ends, rolled back if it raises
        (see _transaction)."""
        return self._transaction(piped=True)

    @contextlib.contextmanager
    def _transaction(self, piped: bool) -> Iterator[Any]:
        """A write transaction, in pipeline mode (libpq 14 and newer) if `piped` (a COPY
        cannot run in it): statements go out without waiting for their answers until one is
        read, so a round of the pool that writes outcomes and reads nothing costs one round
        trip to the server, not one a statement. Its BEGIN and COMMIT are statements of the
        pipeline: psycopg's transaction() in a pipeline syncs when it starts and when it
        ends, three round trips more. One in another is psycopg's (a savepoint)."""
        con = self._connection()
        if not (piped and self._psycopg.Pipeline.is_supported()) or \
                con.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            try:
                with con.transaction():
                    yield con
            except self._psycopg.Error as error:
                raise self._error(error) from None
            return
        committed = False
        try:
            with con.pipeline():
                con.execute("BEGIN")
                yield con
                con.execute("COMMIT")
            committed = True
        except self._psycopg.Error as error:
            raise self._error(error) from None
        finally:
            if not committed and not con.closed:
                with contextlib.suppress(self._psycopg.Error):    # gone: _link drops it
                    con.execute("ROLLBACK")

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one statement; ? placeholders (_SharedSql's) become psycopg's %s."""
        try:
            rows: list[Any] = self._connection().execute(sql.replace("?", "%s"),
                                                         params).fetchall()
            return rows
        except self._psycopg.Error as error:
            raise self._error(error) from None

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            return int(self._connection().execute(sql.replace("?", "%s"), params).rowcount)
        except self._psycopg.Error as error:
            raise self._error(error) from None

    def close(self) -> None:
        links = getattr(_pg_links, "by_url", None)
        link = links.pop(self._key, None) if links and _pg_links.pid == os.getpid() else None
        if link is not None:
            link[0].close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _owner_problem(self, con: Any) -> Optional[str]:
        rows = con.execute("SELECT pg_get_userbyid(nspowner), current_user FROM pg_namespace "
                           "WHERE nspname = %s", (self.schema,)).fetchall()
        if rows and rows[0][0] != rows[0][1]:
            return (f"the schema {self.schema} belongs to the role {rows[0][0]}, not to "
                    f"{rows[0][1]}; whoever can write it can make the workers run code, so "
                    "use a schema of your own (?schema=name in the URL)")
        return None

    def _version(self, con: Any) -> int:
        if not con.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = "
                           "'meta'", (self.schema,)).fetchall():
            return 0
        rows = con.execute("SELECT max(version) FROM meta").fetchall()
        return rows[0][0] or 0

    def _prepare(self) -> None:
        with self.transaction() as con:
            # one creator at a time: two first starts would both find no schema
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._channel,))
            problem = self._owner_problem(con)
            if problem:
                raise DatabaseError(f"{self.path}: {problem}", self.path)
            version = self._version(con)
            if version > _PG_SCHEMA_VERSION:
                raise _newer_schema(self.path, version, _PG_SCHEMA_VERSION,
                                    " or choose another schema")
            if version == 0:
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                tables = [r[0] for r in con.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))]
                if tables:
                    raise DatabaseError(f"{self.path}: the schema {self.schema} has tables "
                                        f"that are not autocron's ({', '.join(sorted(tables))});"
                                        " choose another with ?schema=name", self.path)
                for statement in _PG_SCHEMA + _INDEXES_2:
                    con.execute(statement)
                con.execute("INSERT INTO meta (version) VALUES (%s)", (_PG_SCHEMA_VERSION,))
                version = _PG_SCHEMA_VERSION
            self.version = self._upgrade(con, version)

    def _upgrade(self, con: Any, version: int) -> int:
        """Bring an older schema up to this one's, in the caller's transaction (which holds
        the creators' lock); the version it is at then."""
        if version < 2:
            for statement in _UPGRADE_TO_2 + _INDEXES_2:
                con.execute(statement)
        if version < 3:
            for statement in _PG_UPGRADE_TO_3:
                con.execute(statement)
        have = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND "
            "table_name = 'tasks'", (self.schema,))}
        for column, kind in _ADDED_COLUMNS:
            if column not in have:
                con.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
        if not con.execute("SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = "
                           "'tasks_key'", (self.schema,)).fetchall():
            con.execute(_ADDED_INDEX)       # (IF NOT EXISTS would lock the table each time)
        there = {row[0] for row in con.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s", (self.schema,))}
        for statement in _ADDED_TABLES:        # each table and index where missing
            if statement.split()[2] not in there:
                con.execute(statement.format(big="BIGINT", real="DOUBLE PRECISION"))
        con.execute("UPDATE meta SET version = %s", (_PG_SCHEMA_VERSION,))
        return _PG_SCHEMA_VERSION

    def _check_existing(self) -> None:
        con = self._connection()
        try:
            version = self._version(con)
            problem = self._owner_problem(con)
        except self._psycopg.Error as error:
            raise self._error(error) from None
        if version == 0:
            raise FileNotFoundError(f"no autocron schema {self.schema} in {self.path}; pass "
                                    "--db URL with the right ?schema= (start() creates one; "
                                    "reading commands never do)")
        if problem:
            raise DatabaseError(f"{self.path}: {problem}", self.path)
        if version > _PG_SCHEMA_VERSION:
            raise _newer_schema(self.path, version, _PG_SCHEMA_VERSION)
        self.version = version
        if self._write and version < _PG_SCHEMA_VERSION:
            with self.transaction() as con:
                con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._channel,))
                self.version = self._upgrade(con, self._version(con))

    def _synchronous(self, level: Any) -> None:
        try:
            self._use_synchronous(self._link(), level)
        except self._psycopg.Error as error:
            raise self._error(error) from None

    def size_bytes(self) -> int:
        """What the schema's tables and indexes take on the server."""
        return int(self.read("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM "
                             "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                             "n.nspname = %s AND c.relkind = 'r'", (self.schema,))[0][0])

    def schema_version(self) -> int:
        return self._version(self._connection())


class _PgMachines(_StoreParts):
    """Many machines, a pool on each: leases that fence every write, the server's clock,
    the pools' LISTEN connection, and the machines table."""

    _counter_rows: Optional[str] = None     # the metrics' rows of this pool (_adder)
    _wake: Any = False      # the wake-up socket's path, once worked out

    @property
    def wake_path(self) -> Optional[str]:
        """Where this machine's pool listens, if it can."""
        if self._wake is False:
            self._wake = _wake_path(f"{self.path}\0{self.machine}")
        return cast(Optional[str], self._wake)

    @property
    def lock_path(self) -> str:
        """This machine's pool's lock: beside its socket, or where the socket's path would
        have been too long."""
        wake = self.wake_path
        folder = os.path.dirname(wake) if wake else \
            _wake_folders(os.geteuid() if _POSIX else 0)[-1]
        return os.path.join(folder, _runtime_name(f"{self.path}\0{self.machine}") + ".lock")

    def _adder(self) -> str:
        """The pool's rows (its lease's), or for any other writer rows of its own: it never
        waits for a lock on a counter, nor holds one that a pool waits for."""
        return self._counter_rows or f"{self.machine}#{os.urandom(8).hex()}"

    machine: str                     # this machine's name (_machine_name)
    _target: _PgTarget
    _psycopg: Any                    # the psycopg module
    _channel: str                    # what a call NOTIFYs the pools on
    _listener: Optional[_PgListener]

    leased = True
    starts_committed = True  # start_now: before the task runs, under a valid lease
    remote = True            # a caller's read of a finished row costs a round trip
    wakes_pools = True       # a call NOTIFYs every machine's pool itself (its own too)

    def take_lease(self, con: Any, owner: int) -> None:
        """Start a lease with a new number, this pool's identity (a pool starting, or one
        whose lease the others took over)."""
        self.lease = con.execute(
            "INSERT INTO machines (name, lease, owner, manager, started, heartbeat) VALUES "
            f"(%s, nextval('leases'), %s, %s, %s, {_PG_NOW}) RETURNING lease",
            (self.machine, owner, os.getpid(), self.now())).fetchone()[0]
        self._counter_rows = f"{self.machine}#{self.lease}"     # the metrics' (_adder)

    def renew_lease(self, lease: Optional[int] = None) -> bool:
        """Renew this pool's lease (`lease`, else its current one); False if another pool
        took it over meanwhile."""
        try:
            skew = _measure_skew(self._connection(), "UPDATE machines SET heartbeat = "
                                 f"{_PG_NOW} WHERE lease = %s RETURNING heartbeat",
                                 (self.lease if lease is None else lease,))
        except self._psycopg.Error as error:
            raise self._error(error) from None
        if skew is None:
            return False
        _pg_skews[self._target.conninfo] = _Skew(skew, time.monotonic())
        return True

    def now(self, look: bool = True) -> float:
        """The server's time (every due time on PostgreSQL goes by it, never a machine's
        clock): this machine's clock and how far the server's is ahead, measured with each
        new connection, each lease renewal, and else when older than _SKEW_LOOK s (unless
        not `look`: then never a statement, as last measured)."""
        def stale() -> bool:
            skew = _pg_skews.get(self._target.conninfo)
            return skew is None or time.monotonic() - skew.measured > _SKEW_LOOK
        if look and stale():
            con = self._connection()                # a new connection measures it
            if stale() and con.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE:
                try:
                    _pg_skews[self._target.conninfo] = _Skew(_measure_skew(con) or 0.0,
                                                             time.monotonic())
                except self._psycopg.Error as error:
                    raise self._error(error) from None
        skew = _pg_skews.get(self._target.conninfo)
        return _clock() + (skew.seconds if skew is not None else 0.0)

    def claimed(self) -> list[Any]:
        """Ids of the calls claimed under this pool's lease and not started (tasks_held)."""
        return [row[0] for row in self.read(
            "SELECT id FROM tasks WHERE status = 'queued' AND machine = %s AND lease = %s",
            (self.machine, self.lease))]

    def lost_machines(self, con: Any) -> list[Any]:
        """[_Pool] of the pools that missed their renewals for _lease_ttl s (taken: no
        other pool settles them at the same time)."""
        return [_PoolId(*row) for row in con.execute(
            f"SELECT name, lease, heartbeat FROM machines WHERE heartbeat < {_PG_NOW} - %s "
            "AND lease <> %s FOR UPDATE SKIP LOCKED", (_lease_ttl, self.lease)).fetchall()]

    def forget_machine(self, con: Any, pool: "_PoolId") -> None:
        con.execute("DELETE FROM machines WHERE lease = %s", (pool.lease,))

    def listener(self, again: bool = False) -> Optional[_PgListener]:
        """The pool's LISTEN connection (made once; `again`: anew, the old one broke)."""
        if again and self._listener is not None:
            cancels = self._listener.cancels
            self._listener.close()
            self._listener = None
        else:
            cancels = 0
        if self._listener is None:
            try:
                self._listener = _PgListener(self._open()[0], self._channel)
            except self._psycopg.Error as error:
                raise self._error(error) from None
            self._listener.cancels = cancels + 1
        return self._listener

    def checkpoint(self, limit: int = 0, quiet_too: bool = True) -> bool:
        """Nothing to do: the server keeps its own log."""
        return False

    def checkpoint_as_pool(self) -> None:
        """Nothing to do (see checkpoint)."""

    def set_pool(self, owner: Optional[int], manager: Optional[int] = None,
                 workers: tuple[Any, ...] = ()) -> None:
        """Say which processes run this machine's pool; None: none does (its lease ends)."""
        if owner is None:
            self.write("DELETE FROM machines WHERE lease = %s", (self.lease,))
        else:
            self.write("UPDATE machines SET owner = %s, manager = %s, workers = %s WHERE "
                       "lease = %s", (owner, manager, json.dumps(list(workers)), self.lease))

    def pool_pids(self, pool: Optional[_PoolId] = None) -> _PoolPids:
        """The processes of a pool as it published them (by default the newest of this
        machine's name)."""
        if pool is None:
            rows = self.read("SELECT owner, manager, workers FROM machines WHERE name = %s "
                             "ORDER BY lease DESC LIMIT 1", (self.machine,))
        else:
            rows = self.read("SELECT owner, manager, workers FROM machines WHERE lease = %s",
                             (pool.lease,))
        return _PoolPids(rows[0][0], rows[0][1], json.loads(rows[0][2])) if rows else \
            _PoolPids(None, None, [])

    def previous_pool(self) -> Optional[_PoolId]:
        """The pool that last ran on this machine, as it wrote in the pool lock's file (whose
        lock the caller's owner holds, so that pool has ended): its tasks are this pool's to
        settle at once. None if unknown (the lost pools' way settles them then)."""
        with contextlib.suppress(OSError), open(self.lock_path, "rb") as file:
            text = file.read(32).decode("ascii", "replace").strip()
            if text.isdigit():
                return _PoolId(self.machine, int(text))
        return None

    def remember_pool(self) -> None:
        """Write this pool's lease into the pool lock's file (see previous_pool)."""
        with contextlib.suppress(OSError), open(self.lock_path, "r+b") as file:
            file.write(f"{self.lease:<31}\n".encode("ascii"))

    def pool_running(self) -> bool:
        """Whether a pool runs on any machine: a lease renewed within _lease_ttl s."""
        return bool(self.read(f"SELECT 1 FROM machines WHERE heartbeat >= {_PG_NOW} - %s",
                              (_lease_ttl,)))

    def pool_row(self) -> Optional[_PoolRow]:
        """This machine's pool, or None."""
        rows = self.read("SELECT owner, manager, started, workers FROM machines WHERE "
                         "name = %s ORDER BY lease DESC LIMIT 1", (self.machine,))
        if not rows:
            return None
        owner, manager, started, workers = rows[0]
        return _PoolRow(owner, manager, started, json.loads(workers))

    def machine_rows(self) -> list[Any]:
        """[_MachineRow] by name."""
        return [_MachineRow(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])
                for row in self.read(
            f"SELECT name, owner, manager, workers, heartbeat, {_PG_NOW} - heartbeat "
            "FROM machines ORDER BY name")]


class _PgClaims(_SharedCalls):
    """How a pool of PostgreSQL claims calls: under a lease that the server holds valid, the
    rows other machines are taking skipped, limits decided under their locks (the SQL both
    stores share comes from _SharedCalls)."""

    _psycopg: Any                    # the psycopg module (_PgLink's)
    lease: Optional[int]
    machine: str                     # this machine's name (_PgLink's)
    _limited_seen = float("-inf")    # when a claim last found a queue limited (monotonic)

    def claim(self, con: Any, now: float, pids: list[Any],
              queues: Optional[tuple[str, ...]] = None,
              busy: Optional[dict[str, tuple[int, int]]] = None,
              kinds: Optional[str] = None) -> list[Any]:
        """Hand the most urgent due tasks to workers (see _SqliteStore.claim); rows another pool is
        taking at the same moment are skipped, never waited for. With limits, the machines'
        claims are decided one at a time (the limits are locked), counting every machine's
        held calls then."""
        kinds = kinds or _IDLE * len(pids)
        later = self.claim_later(con, now, pids, queues, kinds)
        claimed = later() if later is not None else None
        if claimed is not None:
            return claimed
        return self._claim_sorted(con, now, pids, queues, self._allowed(con, now, None), kinds)

    def _unlimited(self, kinds: str) -> bool:
        """Whether a claim for places of `kinds` may try one statement (_claim_plain): they
        take what comes, and no queue was found limited in the last _SETTINGS_LOOK s (a
        try that finds one costs a round trip for nothing)."""
        return _plain_places(kinds) and \
            time.monotonic() >= self._limited_seen + _SETTINGS_LOOK

    def claim_alone(self, now: float, pids: list[Any], queues: Optional[tuple[str, ...]],
                    kinds: str) -> Optional[list[Any]]:
        """claim() as one statement that commits by itself (a round trip, where a transaction
        costs three), if no queue is limited and every place takes what comes (else None,
        and nothing taken)."""
        try:
            later = self.claim_later(self._connection(), now, pids, queues, kinds)
            return later() if later is not None else None
        except self._psycopg.Error as error:
            raise self._error(error) from None

    def claim_later(self, con: Any, now: float, pids: list[Any],
                    queues: Optional[tuple[str, ...]], kinds: str) -> Optional[_Later]:
        kinds = kinds or _IDLE * len(pids)
        return self._claim_plain(con, now, pids, queues, kinds) if self._unlimited(kinds) \
            else None

    def _claim_plain(self, con: Any, now: float, pids: list[Any],
                     queues: Optional[tuple[str, ...]], kinds: str) -> _Later:
        """claim() in one statement, sent now and read when the function returned is called:
        the k-th most urgent call goes to the k-th place, if that takes its kind (an async
        call only an idle worker: _plain_places); None if a queue is limited (nothing
        taken)."""
        # Only under a lease that is valid at the server now (held in key-share mode, so
        # that no other machine settles it until this commits): a machine resumed after its
        # lease ran out claims nothing, and takes a new lease (see _Pool._keep_lease).
        # A last row counts what was seen, and whether a queue is limited (then the limits
        # decide, locked: _claim_sorted).
        cursor = con.execute(
            "WITH valid AS (SELECT lease FROM machines WHERE lease = %s AND heartbeat >= "
            f"{_PG_NOW} - %s FOR KEY SHARE), "
            "unlimited AS (SELECT NOT EXISTS (SELECT 1 FROM limits) AS yes), "
            "picked AS (SELECT id, asynchronous IS NOT NULL AS asy, row_number() OVER (ORDER "
            "BY priority DESC, due, id) AS n FROM (SELECT id, priority, due, asynchronous "
            "FROM tasks WHERE status = 'waiting' AND due <= %s "
            f"AND (%s::text[] IS NULL OR coalesce(queue, '{_DEFAULT_QUEUE}') = ANY(%s)) "
            "AND EXISTS (SELECT 1 FROM valid) AND (SELECT yes FROM unlimited) "
            "ORDER BY priority DESC, due, id LIMIT %s FOR UPDATE SKIP LOCKED) AS due_tasks), "
            "places AS (SELECT pid, kind, n FROM unnest(%s::integer[], %s::text[]) WITH "
            "ORDINALITY AS p(pid, kind, n)), "
            "moved AS (UPDATE tasks SET status = 'queued', worker = places.pid, machine = %s, "
            "lease = %s FROM picked JOIN places USING (n) WHERE tasks.id = picked.id AND "
            f"(places.kind = '{_IDLE}' OR NOT picked.asy) RETURNING picked.n, tasks.id, "
            "tasks.token || '-' || tasks.id AS uid, record, cron, timeout, priority, attempts, "
            f"picked.asy, coalesce(tasks.queue, '{_DEFAULT_QUEUE}') AS queue, picked.n - 1) "
            "SELECT * FROM moved UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, "
            "(SELECT count(*) FROM picked)::integer, NULL, (SELECT coalesce(bool_or(asy), "
            "false) FROM picked WHERE id NOT IN (SELECT id FROM moved)), NULL, (SELECT NOT yes "
            "FROM unlimited)::integer", (
                self.lease, _lease_ttl, now, queues and list(queues), queues and list(queues),
                len(pids), list(pids), list(kinds), self.machine, self.lease))
        return lambda: self._claimed_plain(cursor.fetchall(), len(pids))

    def _claimed_plain(self, rows: list[Any], places: int) -> Optional[list[Any]]:
        """What _claim_plain's statement answered: [_Claimed], or None."""
        seen = next(row for row in rows if row[1] is None)
        if seen[10]:
            self._limited_seen = time.monotonic()
            return None
        rows = [row for row in rows if row[1] is not None]
        self.drained = seen[6] < places and len(rows) == seen[6]
        self.async_left = bool(seen[8])
        return [_Claimed(*row[1:]) for row in sorted(rows)]

    def _claim_sorted(self, con: Any, now: float, pids: list[Any],
                      queues: Optional[tuple[str, ...]], allowed: Optional[dict[str, int]],
                      kinds: str) -> list[Any]:
        """claim() where candidates may not fit their places: queues are limited (as many
        of each as `allowed` says, counted under the limits' locks), or some places are
        room for async calls only; the candidates in order, each to its place (_assign),
        under a valid lease."""
        blocked = [name for name, room in (allowed or {}).items() if room < 1]
        sql = ("WITH valid AS (SELECT lease FROM machines WHERE lease = %s AND heartbeat >= "
               f"{_PG_NOW} - %s FOR KEY SHARE) SELECT id, asynchronous IS NOT NULL, "
               f"coalesce(queue, '{_DEFAULT_QUEUE}') FROM tasks WHERE status = 'waiting' AND "
               f"due <= %s AND (%s::text[] IS NULL OR coalesce(queue, '{_DEFAULT_QUEUE}') = "
               f"ANY(%s)) AND coalesce(queue, '{_DEFAULT_QUEUE}') <> ALL(%s) AND EXISTS "
               "(SELECT 1 FROM valid){kind} ORDER BY priority DESC, due, id LIMIT %s FOR UPDATE "
               "OF tasks SKIP LOCKED")
        given = (self.lease, _lease_ttl, now, queues and list(queues), queues and list(queues),
                 blocked)
        window = len(pids) if allowed is None else 4 * len(pids)   # limits skip some
        taken = self._place_candidates(con, sql, given, window, kinds, allowed)
        if not taken:
            return []
        rows = con.execute(
            "UPDATE tasks SET status = 'queued', worker = p.pid, machine = %s, lease = %s "
            "FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) WITH ORDINALITY AS "
            "p(id, pid, place, n) WHERE tasks.id = p.id RETURNING p.n, tasks.id, tasks.token "
            "|| '-' || tasks.id, record, cron, timeout, priority, attempts, "
            f"tasks.asynchronous IS NOT NULL, coalesce(tasks.queue, '{_DEFAULT_QUEUE}'), "
            "p.place", (self.machine, self.lease, [row[0] for _, row in taken],
                        [pids[place] for place, _ in taken],
                        [place for place, _ in taken])).fetchall()
        claimed = [_Claimed(*row[1:]) for row in sorted(rows)]
        if allowed is not None:
            self._note_starts(con, claimed, now)
        return claimed


class _PgStore(_PgLink, _PgMachines, _PgClaims):
    """One autocron schema in a PostgreSQL database: its doorway (_PgLink), the machines
    and their leases (_PgMachines), the claims (_PgClaims) and the SQL both stores share
    (_SharedCalls, through it), and here what PostgreSQL says in words of its own: storing
    calls and waking the pools in one statement, withdrawals, and the settling of lost
    pools."""

    _FIND = "strpos"
    _RAN_ON = "machine"
    _FENCE = " AND lease = ?"
    _LET_GO = ", machine = NULL, lease = NULL"
    _TAKE = " FOR UPDATE SKIP LOCKED"
    _NEW_ID = " RETURNING id"
    _LOCK = " FOR UPDATE"
    _SHARE = " FOR SHARE"
    _STARTS_NOTED = False
    _DONE_WRITERS = "adder <> '' AND adder NOT IN (SELECT name || '#' || lease FROM machines)"

    def _fence(self) -> tuple[Any, ...]:
        return (self.lease,)


    # -- tasks as producers and readers see them

    def add_task(self, name: str, args: str, record: bytes, due: float,
                 options: Optional[_Options] = None,
                 shipped: Optional[_Shipped] = None) -> str:
        """Store a call and wake the pools, in one statement (one with a shipped function
        whose payload is not there yet: in a transaction with the payload); its id."""
        token = _token()
        options = options or _PLAIN
        self._check_size(record, "the call")
        values = (token, name, args, *options.columns(), due, self.now(), record,
                  shipped and shipped.hash)
        notice = (self._channel, str(options.priority))   # the pools hear its priority
        if shipped is None:
            rows = self.read(_PG_INSERT_TASK, values + notice)
        else:
            rows = self.read(_PG_INSERT_SHIPPED_TASK, values + (shipped.hash,) + notice)
            if not rows:
                with self.transaction() as con:
                    self.keep_function(con, shipped)
                    rows = self._run(con, _PG_INSERT_TASK, values + notice).fetchall()
        return f"{token}-{rows[0][0]}"

    def _bulk_transaction(self) -> ContextManager[Any]:
        return self._transaction(piped=False)      # where COPY can run

    def _insert_plain(self, con: Any, name: str, calls: list[Any], due: float,
                      options: _Options, shipped: Optional[_Shipped]) -> list[str]:
        """One COPY, with ids from the sequence first."""
        token = _token()
        fixed = (token, name, "waiting", *options.columns(), due, self.now())
        digest = shipped and shipped.hash
        for call in calls:
            self._check_size(call.record, "a call")
        ids = self._new_ids(con, len(calls))
        with con.cursor() as cursor, cursor.copy(_PG_COPY_TASKS) as copy:
            for task_id, call in zip(ids, calls):
                copy.write_row((task_id, call.args, call.record, digest) + fixed)
        return [f"{token}-{task_id}" for task_id in ids]

    def _new_ids(self, con: Any, count: int) -> list[int]:
        """Row ids for `count` new tasks, from the sequence, in one array (a row each cost
        map() a microsecond a call)."""
        if not count:
            return []
        ids: list[int] = con.execute(
            "SELECT array_agg(n ORDER BY n) FROM (SELECT nextval(pg_get_serial_sequence("
            "'tasks', 'id')) AS n FROM generate_series(1, %s)) AS s", (count,)).fetchone()[0]
        return ids

    def identity(self) -> tuple[Any, ...]:
        """What tells this database and schema from another, whatever URL spells it: the
        server (its port and start time), the database and the schema."""
        if self._identity is None:
            self._identity = tuple(self.read(
                "SELECT current_database(), current_setting('port'), "
                "pg_postmaster_start_time()")[0]) + (self.schema,)
        return self._identity

    def reached_by(self, connection: Any) -> bool:
        """Whether a psycopg connection (the caller's, Django's) reaches this database (the
        same server, found by its start time and port, and database) with this schema."""
        if not _is_psycopg3(connection):      # psycopg2's (Django's, say): not one to use
            return False
        sql = ("SELECT current_database(), current_setting('port'), "
               "pg_postmaster_start_time(), to_regclass(%s) IS NOT NULL")
        tasks = f'"{self.schema}".tasks'
        try:
            there = connection.execute(sql, (tasks,)).fetchone()
        except self._psycopg.Error as error:
            raise self._error(error) from None
        return tuple(there) == tuple(self.read(sql, (tasks,))[0])

    def add_calls(self, name: str, calls: list[Any], due: float,
                  options: Optional[_Options] = None, shipped: Optional[_Shipped] = None,
                  parent: Optional[int] = None, connection: Any = None) -> list[Any]:
        """See _SharedCalls.add_calls. With `connection` (options(connection=)), in the
        caller's own open psycopg transaction, so that the calls commit or roll back with
        the caller's work; the pools hear of them at the commit (a NOTIFY is sent then).
        ValueError unless the connection reaches this store's database, with its schema."""
        if connection is None:
            return super().add_calls(name, calls, due, options, shipped, parent)
        if not self.reached_by(connection):
            database, port = connection.execute(
                "SELECT current_database(), current_setting('port')").fetchone()
            raise ValueError(f"connection= must be a connection to autocron's database "
                             f"({self.path}); this one reaches the database {database} on the "
                             f"server at port {port}")
        try:
            # this schema first, for these statements only (set back: the caller's own
            # statements later in the transaction find their tables as before)
            with contextlib.ExitStack() as stack:
                if connection.autocommit:        # no transaction to join: one of its own
                    stack.enter_context(connection.transaction())
                path = connection.execute("SELECT current_setting('search_path')").fetchone()[0]
                connection.execute("SELECT set_config('search_path', %s, true)",
                                   (f'"{self.schema}"',))
                stack.callback(connection.execute,
                               "SELECT set_config('search_path', %s, true)", (path,))
                return self.store_calls(connection, name, calls, due, options, shipped, parent,
                                        caller=True)
        except self._psycopg.Error as error:
            raise self._error(error) from None

    def _check_size(self, data: Optional[bytes], what: str) -> None:
        if data is not None and len(data) > _PG_LARGEST_VALUE:
            raise _DataRefused(f"{self.path}: {what} takes {len(data):,} bytes, more than the "
                               f"{_PG_LARGEST_VALUE:,} that PostgreSQL can hand back; pass or "
                               "return less (write it to a file, pass its name)", self.path)

    def request_cancel(self, uid: str, force: bool) -> bool:
        """Ask the pool holding the task to withdraw it (force: also a running one), and wake
        the pools' listeners."""
        statuses = "('queued', 'running')" if force else "('queued')"
        return bool(self.read(
            f"WITH u AS (UPDATE tasks SET cancel = %s WHERE id = %s AND token = %s AND status "
            f"IN {statuses} RETURNING id) SELECT pg_notify(%s, '') FROM u",
            (2 if force else 1, *_row_key(uid), self._channel + _PG_CANCEL)))

    def cancel_mark(self) -> Optional[int]:
        """The withdrawals a pool's listener heard of (see _SqliteStore.cancel_mark); None where
        no listener runs (a worker: it reads the requests before each task)."""
        return None if self._listener is None else self._listener.cancels

    # -- the pool's side: tasks (called from the pool manager only)

    def recover(self, con: Any, pool: Optional["_PoolId"] = None) -> list[Any]:
        """The tasks a pool that ended left behind (the one before this on this machine,
        known from the lock file, or a lost one): what it had handed over but not started
        waits again; the ones it had started become this pool's (under its lease) and are
        returned, [_Interrupted], for the caller to settle."""
        if pool is None:
            return []
        con.execute("UPDATE tasks SET status = 'waiting', worker = NULL, machine = NULL, "
                    "lease = NULL, cancel = 0 WHERE status = 'queued' AND machine = %s AND "
                    "lease = %s", (pool.name, pool.lease))
        return [_Interrupted(*row) for row in con.execute(
            "UPDATE tasks SET machine = %s, lease = %s, worker = NULL WHERE status = "
            "'running' AND machine = %s AND lease = %s RETURNING id, cron",
            (self.machine, self.lease, pool.name, pool.lease)).fetchall()]

    def end_cron_runs(self, con: Any, jobs: list[Any]) -> None:
        self._crons_read = -_SETTINGS_LOOK          # the next anything_due reads them again
        if jobs:
            with con.cursor() as cursor:
                cursor.executemany("UPDATE crons SET running = NULL, next_due = %s "
                                   "WHERE name = %s", [(due, name) for name, due in jobs])

    def start_log(self) -> None:
        """None: a start is committed before its task runs (start_now)."""
        return None

    def start_now(self, task_id: int, lease: Optional[int], at: float) -> bool:
        """A worker starts this task now: its start is committed first, and only under its
        lease while the server holds that lease valid (False: the task is not this pool's
        any more, or its lease may be gone). Another machine that settles this pool's tasks
        then finds it running, never waiting: it cannot run twice unseen, whatever happens
        to this machine between the start and the commit of the outcome.

        The same start tried again (the same `at`: a worker whose connection broke before
        the answer came back cannot know whether the server committed it) is True once, an
        attempt counted once."""
        return bool(self.read(
            "WITH s AS (UPDATE tasks SET status = 'running', started = %s, attempts = attempts "
            "+ CASE status WHEN 'queued' THEN 1 ELSE 0 END, cancel = CASE cancel WHEN 1 THEN 0 "
            "ELSE cancel END WHERE id = %s AND (status = 'queued' OR status = 'running' AND "
            "started = %s) AND lease = %s AND EXISTS (SELECT 1 FROM machines WHERE lease = %s "
            f"AND heartbeat >= {_PG_NOW} - %s) RETURNING id), noted AS ({_STARTED} AND id IN "
            "(SELECT id FROM s)) SELECT count(*) FROM s",
            (at, task_id, at, lease, lease, _lease_ttl, at, task_id))[0][0] == 1)

    def retry_terms(self, con: Any, ids: list[Any]) -> dict[Any, Any]:
        return {row[0]: _RetryTerms(*row[1:]) for row in con.execute(
            "SELECT id, attempts, retries, retry_delay, backoff FROM tasks WHERE id = ANY(%s)",
            (list(ids),))}

    def started_unseen(self, con: Any, ids: list[Any]) -> list[Any]:
        """[_Interrupted] of these tasks that a worker of this pool started (start_now)
        although the pool took them for not started: it died before it could say so."""
        return [_Interrupted(*row) for row in con.execute(
            "SELECT id, cron FROM tasks WHERE id = ANY(%s) AND status = 'running' AND "
            "lease = %s", (list(ids), self.lease)).fetchall()]

    def anything_due(self, now: float) -> tuple[Any, ...]:
        """(maybe a task is due, a cron job is due). Asking whether a task is due costs a
        round trip to the server, as much as the claim that answers it: the answer is
        always "maybe". The cron jobs' next due time is read at most every _SETTINGS_LOOK s
        (the pool's own runs it knows of sooner: they end in its commits)."""
        if time.monotonic() >= self._crons_read + _SETTINGS_LOOK:
            self._crons_read = time.monotonic()
            self._cron_due = self.read("SELECT min(next_due) FROM crons WHERE running IS NULL "
                                      "AND paused = 0")[0][0]
        return True, self._cron_due is not None and self._cron_due <= now


def _open_store(database: _Database, existing: bool = False,
                write: Optional[bool] = None, snapshot: bool = False) -> _Store:
    """The store of a database: PostgreSQL for a postgresql:// URL, else an SQLite file."""
    if _is_postgres(database):
        return _PgStore(database, existing, write, snapshot)
    return _SqliteStore(database, existing, write, snapshot)


def _database_key(database: _Database) -> str:
    """What a store's `path` will be for this database, without opening it."""
    if _is_postgres(database):
        return _pg_target(database).shown
    return os.path.realpath(os.fspath(database))


# ==============================================================================================
# Workers and the pool
# ==============================================================================================
#
#   owner process (start() took the flock on "<database>.lock")
#     _PoolHandle --control pipe--> manager process: _Pool, the dispatcher
#                 <--notices pipe--   claims tasks, writes outcomes, supervises workers
#                                       --task pipe--> worker process, one per worker
#                                       <--result pipe--
#
# One process per database owns the pool; the kernel releases the flock however the owner
# ends. The manager claims tasks and writes starts and outcomes, in one transaction per round;
# a worker keeps each outcome until the manager acknowledges it. A closed pipe is every
# process's signal that the one that started it is gone: the manager exits when the owner's
# control pipe closes, a worker when its task pipe closes (it first writes what the manager
# had not committed: _WorkerState.hand_over). The manager notices a worker's end by its
# process (SIGCHLD, in the manager, which runs no user code), since a task's own child may
# hold the pipe open; a worker dies together with what its tasks started (below it, and its
# process group: see _end_leftovers). No signal handler is ever installed in the user's
# process.

def _write_outcomes(store: _Store, con: Any, outcomes: list[Any], now: float) -> None:
    """Write outcomes in the caller's transaction, deciding first which failures run again
    (_decide_retries) and then when the cron jobs whose run ended are next due."""
    retryable = [o.id for o in outcomes if o.status == "error" and o.retryable]
    terms = store.retry_terms(con, retryable) if retryable else {}
    ended = store.finish(con, _decide_retries(outcomes, terms, now))
    if ended:
        store.end_cron_runs(con, _next_runs(ended, now))


def _recover(store: _Store, con: Any, now: float, previous: Optional[_PoolId] = None) -> None:
    """After a pool ended without finishing its tasks: settle what it left behind.

    A task it had started was interrupted: it runs again while it has retries left, like one
    whose worker died; one it had only handed over waits again (it never started). Its cron
    jobs go on as _resume_due says.
    """
    lost = _failure("interrupted: the pool ended while the task was running", WorkerLost)
    _write_outcomes(store, con, [_Outcome(task.id, "error", error=lost, finished=now,
                                          cron=task.cron)
                                 for task in store.recover(con, previous)], now)
    if previous is not None:
        store.forget_machine(con, previous)
    resumed = [(job.name, _resume_due(job, now)) for job in store.cron_states(con)]
    store.end_cron_runs(con, [(name, due) for name, due in resumed if due is not None])


def _settle_lost(store: _Store, con: Any, now: float) -> None:
    """Settle the tasks of machines that stopped renewing their leases (PostgreSQL): what
    they had started fails, or runs again while it has retries left; the rest waits again."""
    for pool in store.lost_machines(con):
        since = _dt.datetime.fromtimestamp(pool.heartbeat, _UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
        lost = _failure(f"machine {pool.name} lost (no heartbeat since {since})", WorkerLost)
        _log.warning("autocron: machine %s of %s lost (no heartbeat since %s); its tasks are "
                     "settled here", pool.name, store.path, since)
        _write_outcomes(store, con, [
            _Outcome(task.id, "error", error=lost, finished=now, cron=task.cron)
            for task in store.recover(con, pool)], now)
        store.forget_machine(con, pool)


def _withdraw(store: _Store, *uids: str) -> int:
    """Withdraw waiting tasks (cancel(); the dashboard's cancel of a queue's), 500 a
    transaction; how many were waiting. A cron run's job goes on."""
    withdrawn = 0
    for start in range(0, len(uids), 500):
        now = store.now()
        with store.transaction() as con:
            for uid in uids[start:start + 500]:
                ended = store.cancel(con, uid, now)
                if ended is not None:
                    withdrawn += 1
                    store.end_cron_runs(con, _next_runs(ended, now))
    return withdrawn


def _frame_head(size: int) -> bytes:
    """What goes before a message of `size` bytes: its size in 4 bytes, big-endian, or -1
    and then its size in 8 bytes (the framing of multiprocessing's Connection)."""
    if size > 0x7FFFFFFF:
        return (-1).to_bytes(4, "big", signed=True) + size.to_bytes(8, "big")
    return size.to_bytes(4, "big")


def _frame(data: bytes) -> bytes:
    """One message, framed for a _Pipe."""
    return _frame_head(len(data)) + data


def _frames(buffer: bytearray) -> list[Any]:
    """Take the whole messages off the front of `buffer`, as _frame() frames them."""
    messages, start, end = [], 0, len(buffer)
    while end - start >= 4:
        size, head = int.from_bytes(buffer[start:start + 4], "big", signed=True), 4
        if size == -1:
            if end - start < 12:
                break
            size, head = int.from_bytes(buffer[start + 4:start + 12], "big"), 12
        if end - start - head < size:
            break
        messages.append(bytes(buffer[start + head:start + head + size]))
        start += head + size
    del buffer[:start]
    return messages


class _Pipe:
    """One end of a pipe between pool processes, carrying whole messages as _frame() frames
    them (what multiprocessing's Connection does, without the 3 MB its imports cost each
    worker). Its descriptor closes with it."""

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        if self.fd < 0:
            raise OSError(errno.EBADF, "the pipe is closed")
        return self.fd

    def send_bytes(self, data: bytes) -> None:
        """Write one message (it blocks while the pipe is full)."""
        if len(data) < _READ_SIZE:
            self.write(_frame(data))
        else:                         # a large one is not copied to put its head before it
            self.write(_frame_head(len(data)))
            self.write(data)

    def write(self, data: bytes) -> None:
        """Write whole frames (it blocks while the pipe is full)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fileno(), view):]

    def recv_bytes(self) -> bytes:
        """Read one message; EOFError when the other end closed first."""
        size = int.from_bytes(self._exactly(4), "big", signed=True)
        if size == -1:
            size = int.from_bytes(self._exactly(8), "big")
        return self._exactly(size)

    def _exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = os.read(self.fileno(), min(size, 1 << 24))
            if not chunk:
                raise EOFError("the other end of the pipe closed")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()


def _spawn(entry: str, settings: dict[Any, Any]) -> tuple[Any, ...]:
    """A fresh interpreter (never a fork) running `autocron.<entry>(config)`.

    It gets the caller's working directory and sys.path, and a pipe each way whose other
    ends only it holds: (process, connection down to it, connection up from it). When the
    caller ends, however it ends, the child reads end-of-file on the way down. The
    descriptors named "lease_clock" and "lock" in `settings`, if any, are inherited too.

    The child runs isolated (-I: neither the working directory nor PYTHONPATH comes before
    the standard library) and loads autocron from this very file, so that a `calendar.py`
    in the caller's folder cannot replace the standard library in the pool; the caller's
    sys.path follows the interpreter's own (see _boot). A pool process hands the processes
    it starts its own compiled code (_code_copy): a worker compiles nothing.
    """
    python = _python()
    down_read, down_write = os.pipe()
    up_read, up_write = os.pipe()
    config = dict(settings, cwd=os.getcwd(), path=sys.path, down=down_read, up=up_write,
                  clock=_clock_file, lease_ttl=_lease_ttl, init_timeout=_init_timeout,
                  watch=_watch_sources)
    code = _code_copy()
    boot = ("import sys, os, marshal, importlib.util as u; a = sys.argv; "
            "s = u.spec_from_file_location('autocron', a[1]); "
            "m = sys.modules['autocron'] = u.module_from_spec(s); "
            "c = marshal.loads(os.pread(int(a[5]), int(a[6]), 0)) "
            "if a[4] == u.MAGIC_NUMBER.hex() else s.loader.get_code('autocron'); "
            "a[5] == '-' or os.close(int(a[5])); exec(c, m.__dict__); m._boot(a[2], a[3], c)")
    flags = [f for f in getattr(subprocess, "_args_from_interpreter_flags", list)()
             if f not in ("-I", "-E", "-s")]      # -X utf8, -W, -O... (isolation: below)
    secret = _pg_urls.get(settings.get("database"))
    environment = dict(os.environ, _AUTOCRON_URL=secret) if secret else None
    inherited = (down_read, up_write) + tuple(
        fd for fd in [settings.get("lease_clock"), settings.get("lock"),
                      code and code.fd] if fd is not None)
    copy = [code.magic, str(code.fd), str(code.size)] if code else ["-", "-", "-"]
    try:
        process = subprocess.Popen([python, *flags, "-I", "-c", boot, os.path.abspath(__file__),
                                    entry, json.dumps(config), *copy], env=environment,
                                   pass_fds=inherited, stdin=subprocess.DEVNULL,
                                   start_new_session=True)   # a terminal's Ctrl-C: owner only
    finally:
        os.close(down_read)
        os.close(up_write)
    return (process, _Pipe(down_write),
            _Pipe(up_read))


class _CodeCopy(NamedTuple):
    """This module's code, marshalled into a private file that has no name."""
    magic: str          # the interpreter's bytecode version, in hex: a reader checks it
    fd: int             # the file's descriptor, inherited by the processes a pool starts
    size: int           # its length in bytes


_module_code: Any = None        # in a pool process: the code object it ran as (see _boot)
_module_copy: Optional[_CodeCopy] = None


def _code_copy() -> Optional[_CodeCopy]:
    """In a pool process: a copy of the code it runs, for the processes it starts to load
    instead of compiling this file (when no bytecode can be cached, that parse leaves a
    worker 27 MB larger for good). Elsewhere, or when no file can be made: None."""
    global _module_copy
    if _module_copy is None and _module_code is not None:
        data = marshal.dumps(_module_code)
        try:
            if hasattr(os, "memfd_create"):     # Linux: memory, never a disk
                fd = os.memfd_create("autocron-code", os.MFD_CLOEXEC)
            else:  # pragma: no cover - other systems: an unlinked temporary file
                import tempfile
                fd = os.dup(tempfile.TemporaryFile().fileno())
        except OSError:
            return None          # no file to be had: the workers compile
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            os.close(fd)
            return None          # a full disk: the workers compile
        import importlib.util
        _module_copy = _CodeCopy(importlib.util.MAGIC_NUMBER.hex(), fd, len(data))
    return _module_copy


def _boot(entry: str, config_text: str, code: Any = None) -> None:
    """The first call in a new pool process: put the caller's sys.path after this
    interpreter's own (the standard library first), then run `entry`. `code` is the code
    object this module ran as, for the processes this one starts (_code_copy)."""
    global _clock_file, _lease_ttl, _init_timeout, _watch_sources, _IN_POOL, _module_code
    _IN_POOL, _module_code = True, code
    config = json.loads(config_text)
    config["path"] = sys.path + [folder for folder in config["path"] if folder not in sys.path]
    _clock_file, _lease_ttl = config["clock"], config["lease_ttl"]
    _init_timeout = config.get("init_timeout", _init_timeout)
    _watch_sources = config.get("watch", False)
    secret = os.environ.pop("_AUTOCRON_URL", None)    # before any user code can see it
    if secret:
        _pg_urls[config["database"]] = secret
    globals()[entry](json.dumps(config))


def _looks_like_python(path: str) -> bool:
    """python3, python3.12, python3.13t, python3.11-dbg, pypy3.10, python.exe, pythonw.exe"""
    name = os.path.basename(path or "")
    return bool(re.match(r"(python|pypy)[0-9.]*[a-z]*(-dbg)?(\.exe)?\Z", name, re.IGNORECASE)
                and os.path.isfile(path) and os.access(path, os.X_OK))


def _python() -> str:
    """The interpreter for the pool's processes: $AUTOCRON_PYTHON, else this one.

    Under uWSGI or mod_wsgi sys.executable is the server's binary; the interpreter of this
    Python version is then looked for where the installation keeps it, then on PATH.
    """
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    chosen = os.environ.get("AUTOCRON_PYTHON")
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise AutocronError(f"AUTOCRON_PYTHON is {chosen}, which is not an executable "
                                f"file; set it to this Python's interpreter ({version})")
        return chosen
    if _looks_like_python(sys.executable):
        return sys.executable
    folders = list(dict.fromkeys(os.path.join(prefix, "bin")
                                 for prefix in (sys.exec_prefix, sys.base_exec_prefix)))
    path = [folder for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    for candidate in [getattr(sys, "_base_executable", "")] + [
            os.path.join(folder, version) for folder in folders + path]:
        if _looks_like_python(candidate):
            return candidate
    raise AutocronError(f"cannot find the Python interpreter for the pool's processes: "
                        f"sys.executable is {sys.executable} (a server such as uWSGI or "
                        f"mod_wsgi?) and there is no {version} in {', '.join(folders)} or on "
                        f"PATH; set the environment variable AUTOCRON_PYTHON to this Python's "
                        f"interpreter ({version})")


def _runtime_folder(folder: str) -> None:
    """Make the private folder of wake-up sockets (and PostgreSQL pools' locks) if missing."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    problem = _wake_folder_problem(folder, os.geteuid(), missing=False)
    if problem:                        # someone else made it between the check and now
        raise OSError(problem)


def _bind_wake(path: str) -> socket.socket:
    """The pool's wake-up socket at `path`, in a private folder made if missing; wake-up
    sockets that refuse datagrams there were left by pools that were killed: removed."""
    folder = os.path.dirname(path)
    _runtime_folder(folder)
    for name in os.listdir(folder):
        if name.endswith(".wake"):
            with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as probe:
                try:
                    probe.connect(os.path.join(folder, name))
                except ConnectionRefusedError:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))
                except OSError:
                    pass
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)                # left by an owner that died; we hold the pool lock
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(path)
    except OSError:
        listener.close()
        raise
    return listener


_sender_local = threading.local()


def _wake_pool(path: Optional[str], priority: int = 0) -> None:
    """Wake the pool that listens at `path`, telling it the priority of the new call (a
    busy pool gives back calls of a lower one that its workers hold: _Pool._make_room);
    nothing happens if no pool listens."""
    if not path or not _HAS_UNIX_SOCKETS:  # the pool's fallback check sees it
        return
    sender = getattr(_sender_local, "socket", None)
    if sender is None or _sender_local.pid != os.getpid():
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        _sender_local.socket, _sender_local.pid = sender, os.getpid()
    with contextlib.suppress(OSError):   # no pool listening, or its queue is full: it is awake
        sender.sendto(b"!%d" % priority if priority else b"!", path)


class _LeaseClock:
    """Until when this pool's lease is certainly valid at the server (PostgreSQL), as a
    time.monotonic() time that the manager's lease keeper moves on at every renewal and its
    workers read before they start a task (_WorkerState.take): a worker of a machine that was
    paused, cut off or slower than its lease stops starting tasks at once, without asking the
    server, and waits until the keeper renewed the lease or the pool took its tasks back.
    What decides is the start's commit at the server (start_now), under a lease the server
    holds valid; this clock spares that round trip its refusals, and covers a task of an
    older lease (which never starts once the pool took a new one).

    On SQLite, where a pool has no lease, it says whether the pool can write: while it
    cannot (a full disk), no task starts, since neither its start nor its outcome could be
    written (a start is noted outside the database all the same: _StartLog).

    Kept in an unlinked file whose descriptor the workers inherit; each value is written
    twice and read as valid only when both copies agree, so a read never sees half a write.
    """

    def __init__(self, fd: Optional[int] = None):
        if fd is None:
            import tempfile          # in the pool's manager only
            fd, path = tempfile.mkstemp(prefix="autocron-lease-")
            os.unlink(path)
            self.fd = fd
            self.set(0.0, 0)
        self.fd = fd

    def set(self, until: float, lease: Optional[int]) -> None:
        """Tasks handed over under `lease` may start until `until` (monotonic time)."""
        lease = lease or 0                   # SQLite: no leases, the clock alone decides
        os.pwrite(self.fd, struct.pack("=dqdq", until, lease, until, lease), 0)

    def valid(self, lease: Optional[int]) -> bool:
        """Whether a task handed over under `lease` may start now (a task of an older lease
        never does: the other machines settled it when they took that lease over)."""
        while True:
            data = struct.unpack("=dqdq", os.pread(self.fd, 32, 0))
            if data[:2] == data[2:]:
                return bool(data[1] == (lease or 0) and time.monotonic() < data[0])


# What the pool and a worker tell each other over their pipes, one record a message.

class _Run(NamedTuple):
    """Pool to worker: run this task after the ones it holds."""
    id: int
    record: bytes
    cron: Optional[str]
    acknowledged: int      # the worker's outcomes committed so far: it may forget them
    withdrawals: Any = None   # the pool's cancel mark when it handed the task over (for a
                              # worker whose store has none of its own: PostgreSQL)
    lease: Optional[int] = None   # the pool's lease then (PostgreSQL): fences hand_over
    uuid: str = ""         # the task's id and the attempts counted before it: what a
    attempts: int = 0      # worker notes in its start log (SQLite: _StartLog)
    asynchronous: bool = False   # an async def call: it runs beside the worker's others


class _Ack(NamedTuple):
    """Pool to worker: outcomes up to this number are committed."""
    number: int


class _Return(NamedTuple):
    """Pool to worker: give this task back if it has not started it."""
    id: int


class _Exit(NamedTuple):
    """Pool to worker: hand over what is not committed and exit."""


class _CancelRun(NamedTuple):
    """Pool to worker: cancel this running async call (its coroutine only; the attempt
    that started after `attempts` were counted), which then ends with `reason` as a
    TaskTimeout (`timeout`) or as cancelled."""
    id: int
    attempts: int
    reason: str
    timeout: bool


class _Init(NamedTuple):
    """Owner to manager, then pool to each worker, first of all: the initializer's call
    record (_dump_record; None: none), which a worker runs before its first task, after
    django.setup() where DJANGO_SETTINGS_MODULE is set; and the payload of a function
    shipped by value (it travels with the record: the cleanup may delete stored ones)."""
    record: Optional[bytes] = None
    payload: Optional[bytes] = None
    queues: Optional[tuple[str, ...]] = None   # the queues the pool serves (None: all)


class _InitDone(NamedTuple):
    """Worker to pool: its initialization ended; `error` (_error_info) if it failed, and
    then the worker exits without running a task."""
    error: Optional[dict[Any, Any]] = None


class _Started(NamedTuple):
    """Worker to pool: it starts this task now."""
    id: int
    at: float              # wall-clock time


class _Waiting(NamedTuple):
    """Worker to pool: its running task begins (+1) or ends (-1) a wait for another call
    (Result.get, wait()): meanwhile the pool keeps a spare worker, and the tasks this worker
    holds behind the waiting one go to others."""
    change: int


class _Done(NamedTuple):
    """Worker to pool: a task ended (its outcome), and the next one started, if any."""
    outcome: _Outcome
    next: Optional[_Started] = None


class _Blocked(NamedTuple):
    """Worker to pool: this async call has held its event loop for `seconds` (a blocking
    call inside it: the worker's other async calls wait meanwhile)."""
    id: int
    seconds: float


class _Returned(NamedTuple):
    """Worker to pool: the task asked back is back (never started); `skipped`: it never
    started because its withdrawal was asked for; `refused`: because the database refused
    its start (its lease is gone: the other machines have it)."""
    id: int
    skipped: bool = False
    refused: bool = False


class _Reported(NamedTuple):
    """An outcome that the pool holds until it has committed it, and who reported it."""
    outcome: _Outcome
    uid: str                          # the task's id, for the owner's waiting callers
    worker: Optional["_Worker"]       # None: the pool decided it (a worker died, a stop)
    number: int                       # the worker's count of its outcomes (see _Ack)


# What the owner and its pool's manager tell each other over their pipes.

class _Watch(NamedTuple):
    """Owner to manager: a caller waits for this task; say when it has finished."""
    uid: str


class _Stop(NamedTuple):
    """Owner to manager: stop, giving running tasks up to `timeout` s to end."""
    timeout: float


class _Finished(NamedTuple):
    """Manager to owner: these watched tasks have finished; `rows`: [_ResultRow] of some,
    read in the commit that finished them (their callers need not read them again)."""
    uids: list[Any]
    rows: tuple[Any, ...] = ()


class _LogLine(NamedTuple):
    """Manager to owner: a line of autocron's log, for the owner's logging to handle."""
    level: int
    text: str


def _worker_main(config_text: str) -> None:
    """A worker process: run tasks from the pool's pipe until told to stop or orphaned.

    A reader thread moves messages from the pipe into an inbox (_WorkerState.read_pipe); it
    also hands queued tasks back on request and notices the manager's end (its pipe closes,
    however it ends). The manager commits what a worker reports and acknowledges it; what it
    could not commit before it ended, the worker writes itself (_WorkerState.hand_over), so
    nothing that ran is lost or runs again.
    """
    global _IN_WORKER, _worker_store, _worker_reply
    _IN_WORKER = True
    config = json.loads(config_text)
    os.chdir(config["cwd"])
    sys.path[:] = config["path"]
    _become_subreaper()
    _capture_output()
    state = _WorkerState(config["database"], _Pipe(config["up"]),
                         config.get("lease"))
    _worker_store, _worker_reply = state.store, state.reply
    state.slot = config.get("slot")
    if config.get("lease_clock"):
        state.lease_clock = _LeaseClock(config["lease_clock"])
    threading.Thread(target=state.read_pipe, args=(_Pipe(config["down"]),),
                     name="autocron-lifeline", daemon=True).start()
    if _watch_sources:
        threading.Thread(target=_watch_code, args=(state,), name="autocron-sources",
                         daemon=True).start()
    functions: dict[Any, Any] = {}
    django = None
    while True:
        skipped: list[Any] = []
        with state.ready:
            task = state.take(True, skipped)
        if isinstance(task, _Init):
            django = _initialize(task, state)
            continue
        for message in skipped + [state.start_of(task)]:
            state.reply(message)
        while isinstance(task, _Run):
            # One message says that a task ended and (if one waits) that the next started.
            if django is not None:        # as Django's request cycle does around a request
                django.close_old_connections()
            outcome = None
            if task.asynchronous:      # it and the async calls after it, together; each
                _AsyncCalls(state, functions).run(task)     # outcome is sent as it ends
            else:
                state.note(task)
                outcome = _run_task(task, functions, state.payload, state.now)
                _reporter.flush()
            if django is not None:
                django.close_old_connections()
            _end_leftovers()           # before the outcome: when it is known, they are gone
            skipped = []
            with state.ready:
                if outcome is not None:
                    state.finished(task.id, outcome)
                task = state.take(False, skipped)
            started = state.start_of(task)
            if outcome is not None:
                skipped.append(_Done(outcome, started))
            elif started is not None:
                skipped.append(started)
            for message in skipped:
                state.reply(message)


def _watch_code(state: "_WorkerState") -> None:
    """Under a reloading development server: look at the source files of the modules this
    worker imported (not the standard library's, the installed packages' or autocron's)
    every _SOURCE_LOOK s, and mark the worker stale once one changed: it ends between tasks
    (_WorkerState.take) and the pool starts a fresh one on the new code."""
    import sysconfig        # only here: the development server's workers need it
    skipped = tuple({os.path.join(os.path.realpath(path), "") for name, path in
                     sysconfig.get_paths().items() if name in ("stdlib", "platstdlib",
                                                               "purelib", "platlib")})
    own = os.path.realpath(__file__)
    seen: dict[str, Any] = {}
    since = None                   # when the look before began: a module first seen now was
    while not state.stale:         # imported since, and a file changed since may be newer
        began = time.time()        # than what it imported
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or not path.endswith(".py"):
                continue
            path = os.path.realpath(path)
            if path == own or path.startswith(skipped):
                continue
            try:
                info = os.stat(path)
                stamp = (info.st_mtime_ns, info.st_size)
            except OSError:
                stamp = None                  # removed: a change too
            if path not in seen:
                seen[path] = stamp
                if since is None or stamp is None or stamp[0] / 1e9 <= since:
                    continue
            elif seen[path] == stamp:
                continue
            with state.ready:
                state.stale = True
                state.ready.notify_all()
            return
        since = began
        time.sleep(_SOURCE_LOOK)


def _initialize(init: _Init, state: "_WorkerState") -> Any:
    """Set a worker up before its first task: django.setup() where the starting process
    set DJANGO_SETTINGS_MODULE, then the initializer. Tells the pool how it went; a failure,
    or one that runs past _init_timeout s, ends the worker (the pool then starts none for a
    while: _PoolCrew._initialized). Returns django.db where Django was set up, else None."""
    def too_long() -> None:
        state.reply(_InitDone({"type": "TimeoutError", "message": f"the initializer ran past "
                               f"{_init_timeout:g} s", "traceback": ""}))
        os._exit(3)
    watchdog = threading.Timer(_init_timeout, too_long)
    watchdog.daemon = True
    watchdog.start()
    django = None
    try:
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            import django as _django        # only where the application is a Django project
            _django.setup()
            django = importlib.import_module("django.db")   # for close_old_connections()
        if init.record is not None:
            record = _load_record(init.record)
            func = _resolve_function(record["function"], lambda digest: init.payload or b"")
            func(*record["args"], **record["kwargs"])
    except BaseException as error:
        watchdog.cancel()
        state.reply(_InitDone(_error_info(error)))
        os._exit(3)
    watchdog.cancel()
    state.reply(_InitDone())
    return django


class _WorkerState:
    """What a worker knows that its pool may not have committed yet, and its two pipes."""

    def __init__(self, database: str, results: _Pipe, lease: Optional[int] = None):
        self.database = database
        self.lease = lease                # its pool's lease (PostgreSQL): fences hand_over
        self.ready = threading.Condition()   # guards the inbox and what follows
        self.inbox: list[Any] = []             # messages not handled yet, in order
        # {task id: (_Started, its entry in the start log or -1)} of the running tasks
        self.running: dict[int, tuple[_Started, int]] = {}
        self.sent = 0                     # outcomes reported so far
        # (number, _Outcome, its start log entry) not yet committed by the pool
        self.unacknowledged: list[tuple[int, Any, int]] = []
        self.free_entries = list(range(_StartLog.RING))[::-1]   # of its start log slot
        self.cancels: dict[int, _CancelRun] = {}     # cancels of async calls, not yet applied
        self.session: Optional[_AsyncCalls] = None   # the async calls running, if any
        self._results = results           # the pipe up to the pool
        self._sending = threading.Lock()  # one message at a time on it
        self._mark: Any = False           # the store's cancel mark when last looked at
        self._withdrawn: set[Any] = set()      # ids whose withdrawal was asked for by then
        self._store: Optional[_Store] = None
        self.lease_clock: Optional[_LeaseClock] = None   # when it may start: see take()
        self.handed_over = False          # the manager is gone: nothing starts any more
        self.manager = os.getppid()       # the worker's parent, while it lives
        self.pid = os.getpid()            # a child a task forked says nothing to the pool
        self.slot: Optional[int] = None   # its part of the start log (SQLite), if it has one
        self.tried: dict[Any, Any] = {}   # {task id: start time}: starts sent, not answered
        self.stale = False                # a source file it imported changed (_watch_code)

    def reply(self, message: NamedTuple) -> None:
        """Send the pool a message; never while holding `ready` (the pool may be sending)."""
        if os.getpid() != self.pid:      # a child forked by an async call, before it leaves
            return
        data = pickle.dumps(message, _PICKLE_PROTOCOL)
        with self._sending, contextlib.suppress(OSError):   # the manager is gone: the reader
            self._results.send_bytes(data)                  # thread hands over

    def read_pipe(self, tasks: _Pipe) -> None:
        """The reader thread: the pool's messages into the inbox, until the pipe closes."""
        while True:
            try:
                message = pickle.loads(tasks.recv_bytes())
            except (EOFError, OSError):
                with self.ready:           # the main thread cannot change the state now
                    self.hand_over()
                _end_process_group()
            returned = None            # the id of a call given back
            with self.ready:
                if self.session is not None:     # it runs async calls: a look at the inbox
                    self.session.wake_up()
                if type(message) is _Ack:
                    self.acknowledged(message.number)
                    self.ready.notify()        # a start may have waited for room in the log
                elif type(message) is _CancelRun:
                    self.cancels[message.id] = message
                elif type(message) is _Return:        # not started yet? give it back
                    queued = [m for m in self.inbox if type(m) is _Run and m.id == message.id]
                    if queued:
                        self.inbox.remove(queued[0])
                        returned = message.id
                else:
                    if type(message) is _Run:
                        self.acknowledged(message.acknowledged)
                    self.inbox.append(message)
                    self.ready.notify()
            if returned is not None:
                self.reply(_Returned(returned))

    def take(self, wait: bool, skipped: list[Any],
             only_async: bool = False) -> Union[_Run, _Init, None]:
        """The next task to start, marked running; None if there is none and `wait` is
        False (`only_async`: if the next is no async call). Called with `ready` held."""
        if self.stale:                    # its code changed (_watch_code): it ends between
            if not wait:                  # tasks, once the pool heard of the last one; what
                return None               # the pool has not committed it writes itself, as
            self.hand_over()              # when told to exit; what it holds and never
            os._exit(_RELOAD_EXIT)        # started runs in a fresh worker, on the new code
        while self.handed_over:           # what it held is written as not started: it ends
            self.ready.wait()             # before it could start anything (the reader thread
        while True:                       # kills its process group)
            while not self.inbox:
                if not wait:
                    return None
                self.ready.wait()
            while os.getppid() != self.manager:   # it died: the reader thread hands over
                self.ready.wait()    # and ends the worker (one resumed from SIGSTOP may run
                                     # on before it hears of that end)
            if only_async and not (type(self.inbox[0]) is _Run and self.inbox[0].asynchronous):
                return None
            if self.slot is not None and not self.free_entries:
                if not wait:       # its start log holds no more: the pool commits first
                    return None
                self.ready.wait(_LEASE_LOOK)
                continue
            message = self.inbox.pop(0)
            if type(message) is _Exit:
                self.hand_over()
                os._exit(0)
            if type(message) is _Init:
                return message
            if self.lease_clock is not None and not self.lease_clock.valid(message.lease):
                # The lease may be gone (this machine was paused): not started until the
                # keeper renews it, or the pool takes the task back (the others have it).
                # SQLite: the pool cannot write (a full disk): not started until it can.
                self.inbox.insert(0, message)
                if not wait:
                    return None
                self.ready.wait(_LEASE_LOOK)
                continue
            if self.cancel_requested(message):   # cancel() came first: it never starts
                skipped.append(_Returned(message.id, skipped=True))
                continue
            if message.lease is not None and message.lease != self.lease:
                self.lease = message.lease       # the pool took a new lease
                if self._store is not None:
                    self._store.lease = message.lease
            try:
                store = self.store()
                # tried before and not answered: the same start (the server may have it)
                at = self.tried.get(message.id) or store.now()
                self.tried[message.id] = at
                if not store.start_now(message.id, message.lease, at):
                    del self.tried[message.id]
                    skipped.append(_Returned(message.id, refused=True))
                    continue
                del self.tried[message.id]
            except DatabaseError:      # unavailable: not started until it can say so
                self.inbox.insert(0, message)
                if not wait:
                    return None
                self.ready.wait(_OUTAGE_PAUSES[0])
                continue
            entry = self.free_entries.pop() if self.slot is not None else -1
            self.running[message.id] = (_Started(message.id, at), entry)
            task: _Run = message
            return task

    def start_of(self, task: Union[_Run, _Init, None]) -> Optional[_Started]:
        """What tells the pool that `task` (just taken) started."""
        return self.running[task.id][0] if isinstance(task, _Run) else None

    def finished(self, task_id: int, outcome: _Outcome) -> None:
        """A running task ended: its outcome waits for the pool's acknowledgement (with its
        start log entry). Called with `ready` held."""
        _, entry = self.running.pop(task_id)
        self.sent += 1
        self.unacknowledged.append((self.sent, outcome, entry))

    def note(self, task: _Run) -> None:
        """Note the start of `task` in the start log (SQLite: _StartLog) just before it runs,
        after the pool was told: a worker blocked in telling it (a large outcome, a pool
        that does not read) has run nothing, and a start noted is a start made. A note that
        cannot be written costs that one task the cover: the pool has its start."""
        started, entry = self.running.get(task.id, (None, -1))
        if self.slot is None or started is None or entry < 0:
            return
        with contextlib.suppress(OSError, DatabaseError):
            log = self.store().start_log()
            if log is not None:
                log.note(self.slot, entry, task, started.at)

    def now(self) -> float:
        """The time as the store goes by it, without a statement (a task's start and end)."""
        return self._store.now(look=False) if self._store is not None else _clock()

    def store(self) -> "_Store":
        if self._store is None:
            self._store = _open_store(self.database)
            self._store.lease = self.lease
        return self._store

    def payload(self, digest: str) -> bytes:
        """A shipped function's pickle, waiting out an unavailable database (the task has
        started: its timeout, if it has one, still ends the wait)."""
        for pause in _pauses(*_OUTAGE_PAUSES):
            try:
                return self.store().function_payload(digest)
            except DatabaseError as error:
                if not _weather(error):
                    raise
            time.sleep(pause)
        raise AssertionError("_pauses() never ends")

    def cancel_requested(self, task: _Run) -> bool:
        """Whether a withdrawal of this task was asked for before now (as far as the store's
        cancel mark, or else the pool's, tells: then the pool takes back what it hears of
        later, and a task that started meanwhile refuses its withdrawal)."""
        try:
            mark = self.store().cancel_mark()
            if mark is None:
                mark = task.withdrawals
            if mark is None or mark != self._mark:
                self._withdrawn = set(self.store().cancel_requests())
                self._mark = mark
        except DatabaseError:   # unavailable: not known to be withdrawn; the pool's
            return False        # withdrawal then finds it started (refused)
        return task.id in self._withdrawn

    def acknowledged(self, number: int) -> None:
        while self.unacknowledged and self.unacknowledged[0][0] <= number:
            entry = self.unacknowledged.pop(0)[2]
            if entry >= 0:
                self.free_entries.append(entry)

    def hand_over(self) -> None:
        """The manager ended: write the starts and outcomes it may not have committed."""
        self.handed_over = True
        started = [start for start, _ in self.running.values()]
        started += [_Started(o.id, o.started) for _, o, _ in self.unacknowledged]
        if not started:
            return
        # An unavailable database (a full disk, a server restarting) is waited out for as
        # long as the next pool waits for this process (_HANDOVER_WAIT) before it settles
        # what it finds: what ran here is then written, not run again.
        end = time.monotonic() + _HANDOVER_WAIT - 1.0
        for pause in _pauses(*_OUTAGE_PAUSES):
            try:
                store = self.store()
                with store.transaction() as con:
                    store.mark_started(con, started)
                    _write_outcomes(store, con, [o for _, o, _ in self.unacknowledged],
                                    store.now())
                return
            except Exception as error:    # nothing left to tell: the next pool recovers
                if not _weather(error) or time.monotonic() + pause > end:
                    return
            time.sleep(pause)


def _end_process_group() -> NoReturn:
    """End this worker and every process its tasks started (below it, or in its group)."""
    _kill_descendants(os.getpid())
    if _CAN_KILL_GROUPS and os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(0)


# What a task starts ends with it. On Linux the worker and the manager are child subreapers:
# a process whose parent ended is reparented to the nearest of them rather than to init, so
# every process a task started stays below its worker (or, once the worker died, below the
# manager), whatever session or group it made; /proc tells who is below whom. A task that
# ended leaves nothing (_end_leftovers), a killed worker takes everything below it along
# (_kill_group), and the manager ends what dead workers left (_Pool._end_orphans). macOS has
# neither prctl nor /proc: there the worker's process group is all that is killed, so a
# process that a task put into a session of its own survives it.

def _become_subreaper() -> None:
    """Linux: orphans below this process are reparented to it, not to init (see above)."""
    if not _HAS_PROCESS_TREE:
        return
    import ctypes      # only the pool's processes need it, and only here
    with contextlib.suppress(OSError, AttributeError):   # no libc to load: the group only
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _process_tree() -> dict[Any, Any]:
    """{parent pid: [(pid, ended)]} of every process /proc shows (`ended`: a zombie)."""
    tree: dict[Any, Any] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:   # "pid (comm) state ppid"
                    state, parent = stat.read().rsplit(b")", 1)[1].split()[:2]
            except (OSError, ValueError):     # it ended meanwhile
                continue
            tree.setdefault(int(parent), []).append((int(name), state == b"Z"))
    return tree


def _descendants(pid: int, tree: Optional[dict[Any, Any]] = None) -> list[Any]:
    """The living processes below `pid`, parents first ([] without /proc)."""
    if not _HAS_PROCESS_TREE:
        return []
    tree = _process_tree() if tree is None else tree
    found, parents = [], [pid]
    while parents:
        for child, ended in tree.get(parents.pop(), ()):
            parents.append(child)
            if not ended:
                found.append(child)
    return found


def _kill_descendants(pid: int) -> None:
    """SIGKILL every process below `pid`, looking again until none lives (one may have
    forked meanwhile), for _LEFTOVER_WAIT s at most."""
    end = time.monotonic() + _LEFTOVER_WAIT
    living = _descendants(pid)
    while living and time.monotonic() < end:
        for child in living:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        time.sleep(0.001)
        living = _descendants(pid)


def _end_leftovers() -> None:
    """In a worker, after a task: end every process the task started and left running, and
    reap them (they are this worker's children now). A task that left no child costs one
    system call."""
    if not _HAS_PROCESS_TREE:
        return                     # macOS: they end with the worker's group
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:      # no child at all, so nothing below: the common case
        return
    _kill_descendants(os.getpid())
    end = time.monotonic() + _LEFTOVER_WAIT
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:    # some still dying
                if time.monotonic() > end:
                    return         # reaped after the next task
                time.sleep(0.001)
        except ChildProcessError:
            return


class _Output:
    """Where the tasks of a worker print: one unlinked file under fds 1 and 2, for its life.

    sys.stdout and sys.stderr are real text streams over those descriptors, so `.buffer`,
    `fileno()`, `faulthandler` and `subprocess.run(..., stdout=sys.stdout)` work, and what the
    task's own subprocesses print lands in the same file, in order (line buffering). What a
    task prints goes into its result rather than to the worker's terminal, which nobody sees
    from Jupyter (and which ipykernel would otherwise mix into whatever cell runs). A task
    that prints nothing costs two lseek calls, and two fstat calls to see that fds 1 and 2
    are still the file (a task may have closed them or pointed them elsewhere).
    """

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):   # Linux: a file in memory (tempfile costs 1.4 MB)
            self.fd = os.memfd_create("autocron-output")
            # O_APPEND: after a truncation, every writer (children too) starts at 0 again
            _fcntl.fcntl(self.fd, _fcntl.F_SETFL, os.O_RDWR | os.O_APPEND)
        else:  # pragma: no cover - other systems: an unlinked temporary file
            import tempfile
            fd, path = tempfile.mkstemp(prefix="autocron-output-")
            try:
                self.fd = os.open(path, os.O_RDWR | os.O_APPEND)
            finally:
                os.close(fd)
                os.unlink(path)
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        self.identity = os.fstat(self.fd)
        self.stdout: Optional[io.TextIOWrapper] = None
        self.stderr: Optional[io.TextIOWrapper] = None

    def begin(self) -> None:
        """Before a task: the worker's streams (a task may have replaced or closed them) and
        an empty file (a background child of an earlier task may have written since)."""
        self._reattach()
        if self.stdout is None or self.stderr is None or self.stdout.closed or \
                self.stderr.closed:
            self.stdout, self.stderr = self._stream(1), self._stream(2)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        if os.lseek(self.fd, 0, os.SEEK_END):
            os.ftruncate(self.fd, 0)

    def _reattach(self) -> None:
        """Put the file back under fds 1 and 2 where an earlier task closed them (os.close)
        or replaced them (dup2 of /dev/null): else every later task on this worker would
        fail at its first print, or print into nowhere. One fstat each when they are fine."""
        for fd in (1, 2):
            try:
                if os.path.samestat(os.fstat(fd), self.identity):
                    continue
            except OSError:            # closed
                pass
            os.dup2(self.fd, fd)

    @staticmethod
    def _stream(fd: int) -> io.TextIOWrapper:
        # backslashreplace: printing a lone surrogate can never fail, and shows it escaped
        return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                    closefd=False)

    def collect(self) -> str:
        """After a task: the last _MAX_OUTPUT bytes it printed, as text that SQLite takes."""
        for stream in (self.stdout, self.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):    # a full disk, or closed by the task
                pass
        size = os.lseek(self.fd, 0, os.SEEK_END)
        if not size:
            return ""
        start = max(0, size - _MAX_OUTPUT)
        data = os.pread(self.fd, size - start, start)
        os.ftruncate(self.fd, 0)
        skip = 0
        while start and skip < 3 and skip < len(data) and 0x80 <= data[skip] < 0xC0:
            skip += 1           # cut inside a character: begin at the next one
        return _no_nul(data[skip:].decode("utf-8", "replace"))


_output: _Output        # the worker's, made by _capture_output()


def _capture_output() -> _Output:
    """Once per worker: send fds 1 and 2, and sys.stdout and sys.stderr, to an _Output."""
    global _output
    _output = _Output()
    _output.begin()
    return _output


def _leave_forked_child(error: Optional[BaseException]) -> None:
    """End a child that a task forked and that came back here: only the worker runs tasks.

    It ends as its own program would have: with the code of its SystemExit, 1 after showing
    any other exception, else 0; through os._exit, so neither the buffers it shares with the
    worker nor the worker's pipes see it.
    """
    code = 0
    if isinstance(error, SystemExit) and (error.code is None or isinstance(error.code, int)):
        code = error.code or 0
    elif error is not None:
        text = str(error.code) + "\n" if isinstance(error, SystemExit) else \
            _error_info(error)["traceback"]
        with contextlib.suppress(OSError):
            os.write(2, text.encode("utf-8", "backslashreplace"))
        code = 1
    os._exit(code & 0xFF)


_loop: Any = None


def _event_loop() -> Any:
    """The worker's event loop for async def tasks: one, made at the first, kept for the
    next (what one task leaves scheduled on it runs when the next one runs the loop)."""
    global _loop
    if _loop is None or _loop.is_closed():
        import asyncio      # costs milliseconds at import: only a worker with an async task
        import concurrent.futures

        class InContext(concurrent.futures.ThreadPoolExecutor):
            """The loop's default executor: a function that an async call runs in it
            (loop.run_in_executor(None, ...)) runs in that call's context, as with
            asyncio.to_thread: its current(), progress() and delayed calls are the call's."""

            def submit(self, fn: Callable[..., Any], /, *args: Any,
                       **kwargs: Any) -> "concurrent.futures.Future[Any]":
                return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)

        _loop = asyncio.new_event_loop()
        _loop.set_default_executor(InContext(thread_name_prefix="autocron-executor"))
        asyncio.set_event_loop(_loop)
    return _loop


_running: Optional[_Run] = None    # in a worker: the task whose function runs now
_worker_store: Optional[Callable[[], "_Store"]] = None   # and its store (current(), progress())
_worker_reply: Optional[Callable[[Any], None]] = None    # what tells its pool (_Waiting)
# The steps the running task has made, {digest of a call: how many such calls} (_steps).
_steps_made: dict[str, int] = {}
_steps_lock = threading.Lock()


def _tell_unmatched_steps(task: _Run, steps: dict[str, int]) -> None:
    """Log the unfinished calls that an earlier attempt of `task` made and this one did not
    make again (durable steps: `steps` it made, {digest: count}): they keep running."""
    with _steps_lock:
        made = {f"{digest}:{k}" for digest, count in steps.items()
                for k in range(1, count + 1)}
    with contextlib.suppress(DatabaseError):
        left = [uid for step, uid in sorted(_worker_store().unfinished_steps(task.id).items())
                if step not in made] if _worker_store is not None else []
        if left:
            _log.warning("autocron: task %s ran again and did not make %d of the calls its "
                         "earlier attempt made; they keep running: %s", task.uuid, len(left),
                         ", ".join(left[:10]) + (" ..." if len(left) > 10 else ""))


class _DependencyGone(Exception):
    """A call about to run finds a dependency's value gone: it fails, and is not retried."""


def _dependency_value(uid: str) -> Any:
    """In a worker: the value of the call `uid` that the task about to run depends on."""
    row = None if _worker_store is None else _worker_store().result_row(uid)
    if row is None or row.status != "ready":
        raise _DependencyGone(
            f"its dependency {uid} " + ("is no longer in the database" if row is None else
                                        f"ended with the status {row.status!r}") +
            " (a retry by hand of a call whose dependency failed or was deleted since); store "
            "the call again with that dependency's value")
    return pickle.loads(row.value) if row.pickled else row.value

# In a worker: [the waits its running task is in (any thread), the task's number]: a wait
# that outlives its task (a thread left behind) ends with it and counts for no later task.
_waits = [0, 0]
_waits_lock = threading.Lock()


@contextlib.contextmanager
def _task_waits() -> Iterator[None]:
    """In a worker's task: a wait for other calls, told to the pool when the first begins
    and the last ends (_Waiting), so that it keeps a spare worker meanwhile."""
    call = _in_call.get() if _IN_WORKER else None
    if call is not None:          # one of the async calls that run together
        call.session.wait_changes(1)
        try:
            yield
        finally:
            call.session.wait_changes(-1)
        return
    if not _IN_WORKER or _running is None or _worker_reply is None:
        yield
        return
    reply = _worker_reply
    with _waits_lock:
        _waits[0] += 1
        first, task = _waits[0] == 1, _waits[1]
    if first:
        reply(_Waiting(1))
    try:
        yield
    finally:
        with _waits_lock:
            mine = _waits[1] == task
            if mine:
                _waits[0] -= 1
            last = mine and _waits[0] == 0
        if last:
            reply(_Waiting(-1))


def _task_ended() -> None:
    """A task's function returned: the waits its threads are still in end with it."""
    with _waits_lock:
        waited, _waits[0] = _waits[0], 0
        _waits[1] += 1
    if waited and _worker_reply is not None:
        _worker_reply(_Waiting(-1))



class _Reporter:
    """A worker's progress reports (progress()) on their way to the database: a call's last
    report is written at most every _PROGRESS_EVERY s, by a thread of its own (the task never
    waits for the database), and at the latest when the call ends (flush)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()          # guards _pending
        self._writing = threading.Lock()       # one write at a time: the last one lands last
        self._pending: dict[int, str] = {}     # {task id: its last report not written}
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def report(self, task_id: int, progress: str) -> None:
        with self._lock:
            self._pending[task_id] = progress
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="autocron-progress",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()
            time.sleep(_PROGRESS_EVERY)

    def flush(self) -> None:
        """Write the pending reports, if any (after a call: before its outcome is sent)."""
        with self._writing:
            with self._lock:
                pending, self._pending = self._pending, {}
            if _worker_store is not None:
                for task_id, progress in pending.items():
                    with contextlib.suppress(DatabaseError, OSError):   # no outcome
                        _worker_store().set_progress(task_id, progress)


_reporter = _Reporter()


def _task_function(task: _Run, functions: dict[Any, Any],
                   load_payload: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The function of a task about to run (each found once: `functions`) and its record,
    the arguments' dependencies replaced by their values."""
    record = _load_record(task.record, _dependency_value)
    ref = record["function"]
    key = (ref, task.cron)          # a cron run looks for its declaration once
    func = functions.get(key)
    if func is None:
        func = functions[key] = _resolve_function(ref, load_payload, task.cron,
                                                  record.get("declared"))
    return func, record


def _value_outcome(task: _Run, func: Callable[..., Any], value: Any, started: float,
                   finished: float, output: str) -> _Outcome:
    """The outcome of a task whose function returned `value`."""
    try:
        payload = _dumps(value)
    except Exception as error:
        raise TypeError(f"the return value of {_function_name(func)} cannot be pickled "
                        f"({type(value).__name__}: {error}); return plain data") from None
    try:
        summary = _shorten(_safe_text(repr(value)), _MAX_SUMMARY)
    except BaseException:  # a broken __repr__ must not fail the task
        summary = f"<{type(value).__name__}>"
    return _Outcome(task.id, "ready", payload, None, started, finished, output, summary,
                    task.cron)


def _report_failure(task: _Run, func: Optional[Callable[..., Any]], error: BaseException) -> None:
    """Log a task's own failure in its worker, the exception attached, on the `autocron`
    logger: an error reporter that the initializer set up (Sentry's logging integration,
    say) sees it with its traceback; `extra` holds the function, the task's id and the
    attempt. (Without a handler of the application's, the pool's log says it once.)"""
    name = _function_name(func) if func is not None else "?"
    try:        # an exception whose text cannot be made, a handler that fails: the outcome
        _log.error("autocron task %s (%s) failed, attempt %d: %s: %s", task.uuid,  # goes on
                   name, task.attempts + 1, type(error).__name__,
                   _shorten(_error_info(error)["message"], 200), exc_info=error,
                   extra={"function": name, "task_id": task.uuid, "attempt": task.attempts + 1})
    except BaseException:
        pass


def _error_outcome(task: _Run, error: BaseException, retry_on: Optional[tuple[type, ...]],
                   started: float, finished: float, output: str) -> _Outcome:
    """The outcome of a task that raised `error` (the task's own failure, as data)."""
    if isinstance(error, _DependencyGone):
        return _Outcome(task.id, "error", None, _failure(str(error), DependencyFailed), started,
                        finished, output, None, task.cron, retryable=False)
    if isinstance(error, _JobRetired):
        text = (f"cron job {task.cron} retired: {error}; it starts no more runs (registering "
                f"it again revives it; autocron cron remove {task.cron} deletes it)")
        return _Outcome(task.id, "error", None, {"type": "autocron.JobRetired", "message": text,
                                                 "traceback": ""}, started, finished, output,
                        None, task.cron, retryable=False, retire=True)
    return _Outcome(task.id, "error", None, _error_info(error), started, finished, output,
                    None, task.cron, retryable=retry_on is None or isinstance(error, retry_on))


def _run_task(task: _Run, functions: dict[Any, Any], load_payload: Callable[..., Any],
              now: Callable[[], float] = _clock) -> _Outcome:
    """Run one task in a worker; how it ended (`now`: the time, as the store goes by it)."""
    global _running
    started = now()
    worker = os.getpid()
    _output.begin()
    retry_on, found = None, None
    try:
        func, record = found = _task_function(task, functions, load_payload)
        retry_on = record["retry_on"]
        try:
            with _steps_lock:
                _steps_made.clear()
            _running = task     # after the imports: a delayed call made by one is refused
            value = func(*record["args"], **record["kwargs"])
            if isinstance(value, types.CoroutineType):    # an async def task taken for
                value = _event_loop().run_until_complete(value)     # another kind: alone
        except BaseException as error:
            if os.getpid() != worker:
                _leave_forked_child(error)
            raise
        finally:
            _running = None
            _task_ended()
            if task.attempts and _steps_made:
                _tell_unmatched_steps(task, _steps_made)
        if os.getpid() != worker:
            _leave_forked_child(None)
        return _value_outcome(task, func, value, started, now(), _output.collect())
    except BaseException as error:
        if not isinstance(error, (_DependencyGone, _JobRetired)):
            _report_failure(task, found and found[0], error)
        return _error_outcome(task, error, retry_on, started, now(), _output.collect())


class _InCall:
    """In a worker: an async call that runs beside others (the context variable _in_call
    holds it in that call's asyncio task, and in what that task starts): its task, the
    steps it made (durable steps), what it printed."""

    __slots__ = ("run", "session", "steps", "printed", "size", "children")

    def __init__(self, run: _Run, session: "_AsyncCalls"):
        self.run = run
        self.session = session
        self.children: list[subprocess.Popen[Any]] = []   # the processes it started
        self.steps: dict[str, int] = {}
        self.printed: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        """What the call printed, the last _MAX_OUTPUT characters of it kept."""
        self.printed.append(text)
        self.size += len(text)
        if self.size > 2 * _MAX_OUTPUT:
            kept = "".join(self.printed)[-_MAX_OUTPUT:]
            self.printed, self.size = [kept], len(kept)
        return len(text)

    def output(self) -> str:
        return _no_nul("".join(self.printed)[-_MAX_OUTPUT:])


_in_call: "contextvars.ContextVar[Optional[_InCall]]" = contextvars.ContextVar(
    "autocron_call", default=None)


def _task_now() -> Optional[_Run]:
    """In a worker: the task whose code runs here (an async call's, or the one synchronous
    call's); None outside a task."""
    call = _in_call.get()
    if call is not None:
        return call.run
    session = _async_session     # a thread an async call started itself: its call, if it
    if session is not None and len(session.calls) == 1:     # is the only one running
        return next(iter(session.calls.values()))[1]
    return _running


_async_session: Optional["_AsyncCalls"] = None    # in a worker: its async calls, if any run


def _note_children() -> None:
    """In a worker that runs async calls: each subprocess a call starts (subprocess.Popen,
    which asyncio's subprocesses use too) is noted on the call, and ends with it (the
    processes a synchronous call leaves end with it too: _end_leftovers)."""
    begin = subprocess.Popen.__init__
    if getattr(begin, "_autocron", False):
        return

    def noted(self: "subprocess.Popen[Any]", *args: Any, **kwargs: Any) -> None:
        begin(self, *args, **kwargs)
        call = _in_call.get()
        if call is not None:
            call.children.append(self)
    noted._autocron = True      # type: ignore[attr-defined]
    subprocess.Popen.__init__ = noted     # type: ignore[method-assign]


class _CallStream:
    """sys.stdout or sys.stderr while async calls run together: what a call writes to them
    (print(), .buffer, a logging handler made then) goes to its own output; what is written
    outside a call, to the worker's stream. What reaches file descriptors 1 and 2 directly
    (os.write, subprocesses, C code) goes to the output of the call that ends next."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        call = _in_call.get()
        if call is None:
            return int(self._stream.write(text))
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        return call.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    @property
    def buffer(self) -> Any:
        """The bytes under it: a call's go to its own output too."""
        call = _in_call.get()
        return self._stream.buffer if call is None else _CallBytes(call)


class _CallBytes:
    """sys.stdout.buffer (or stderr's) as an async call sees it: into its own output."""

    def __init__(self, call: _InCall):
        self._call = call

    def write(self, data: Any) -> int:
        self._call.write(bytes(data).decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        """Nothing waits: what was written is the call's already."""

    def __getattr__(self, name: str) -> Any:       # flush, fileno, buffer, encoding ...
        return getattr(self._stream, name)


class _AsyncCalls:
    """A worker's async def calls, run together on its event loop, and never beside a
    synchronous call: each starts as it arrives (the pool hands a worker at most
    async_concurrency of them at once) in an asyncio task of its own, with its own output,
    current() and progress(); each outcome goes to the pool as the call ends. A _CancelRun
    (a timeout, cancel(force=True)) cancels one coroutine; a watchdog thread tells the pool
    when one blocks the loop (_Blocked). It ends when no call runs and the next message is
    no async call (a synchronous call waits for that)."""

    def __init__(self, state: _WorkerState, functions: dict[Any, Any]):
        self.state = state
        self.functions = functions
        self.loop = _event_loop()
        self.calls: dict[int, tuple[Any, _Run]] = {}    # task id: its asyncio task, _Run
        self.stops: dict[int, _CancelRun] = {}   # task id: why it was cancelled
        self.ended: list[tuple[int, _Outcome]] = []   # outcomes not sent yet
        self.waits = 0                   # waits for other calls its calls are in
        self.said_waiting = False        # the pool was told that all its calls wait
        self.lock = threading.Lock()     # guards waits (threads of calls wait too)
        self.told_blocked: set[int] = set()   # calls the pool heard block the loop
        self.over = threading.Event()    # the watchdog ends
        self.thread = threading.get_ident()
        self._wake: Any = None           # an asyncio.Event the reader thread sets

    def wake_up(self) -> None:
        """From the reader thread: a message came (a call, a cancel, an acknowledgement)."""
        with contextlib.suppress(RuntimeError):       # the loop is closed: nothing waits
            self.loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def run(self, first: _Run) -> None:
        _note_children()
        streams = sys.stdout, sys.stderr
        _output.begin()
        sys.stdout, sys.stderr = _CallStream(sys.stdout), _CallStream(sys.stderr)
        global _async_session
        with self.state.ready:
            self.state.session = _async_session = self
        watchdog = threading.Thread(target=self._watch, name="autocron-loop-watch",
                                    daemon=True)
        watchdog.start()
        try:
            self.loop.run_until_complete(self._serve(first))
        finally:
            self.over.set()
            with self.state.ready:
                self.state.session = _async_session = None
                self.state.cancels.clear()      # of calls that ended here
            sys.stdout, sys.stderr = streams
            self._tell_waiting(False)

    async def _serve(self, first: _Run) -> None:
        import asyncio      # a worker with an async task has it imported (_event_loop)
        self._wake = asyncio.Event()
        self._begin(first)
        while True:
            skipped: list[Any] = []
            taken = []
            with self.state.ready:
                while True:
                    task = self.state.take(False, skipped, only_async=True)
                    if not isinstance(task, _Run):
                        break
                    taken.append(task)
                cancels, self.state.cancels = self.state.cancels, {}
            for message in skipped:
                self.state.reply(message)
            for task in taken:
                self.state.reply(self.state.running[task.id][0])
                self._begin(task)
            for cancel in cancels.values():
                self._cancel(cancel)
            self._send_ended()
            if not self.calls:
                return
            self._wake.clear()
            with self.state.ready:      # a call it could not start yet (the database did
                held = any(type(m) is _Run and m.asynchronous for m in self.state.inbox[:1])
            if held:                    # not answer, no room in its start log): look again
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _OUTAGE_PAUSES[0])
            else:
                await self._wake.wait()

    def _begin(self, task: _Run) -> None:
        self.state.note(task)
        self.calls[task.id] = (self.loop.create_task(self._call(task)), task)
        self._tell_waiting()

    def _cancel(self, cancel: _CancelRun) -> None:
        call, task = self.calls.get(cancel.id, (None, None))
        if call is not None and task is not None and task.attempts == cancel.attempts and \
                cancel.id not in self.stops:
            self.stops[cancel.id] = cancel
            call.cancel()

    def _send_ended(self) -> None:
        ended, self.ended = self.ended, []
        for task_id, outcome in ended:
            self.calls.pop(task_id, None)
            self.stops.pop(task_id, None)
            with self.state.ready:
                self.state.finished(task_id, outcome)
            self.state.reply(_Done(outcome))
        if ended:
            self._tell_waiting()

    async def _call(self, task: _Run) -> None:
        """One async call, in its own asyncio task (and context)."""
        call = _InCall(task, self)
        _in_call.set(call)
        started, retry_on, func, worker = self.state.now(), None, None, os.getpid()
        try:
            func, record = _task_function(task, self.functions, self.state.payload)
            retry_on = record["retry_on"]
            try:
                value = func(*record["args"], **record["kwargs"])
                if isinstance(value, types.CoroutineType):
                    value = await value
            finally:
                if task.attempts and call.steps:
                    _tell_unmatched_steps(task, call.steps)
            outcome = _value_outcome(task, func, value, started, self.state.now(), "")
        except BaseException as error:      # CancelledError too: a cancel it asked for
            if os.getpid() != worker:
                _leave_forked_child(error)
            if not isinstance(error, (_DependencyGone, _JobRetired)) and \
                    task.id not in self.stops:
                _report_failure(task, func, error)
            outcome = _error_outcome(task, error, retry_on, started, self.state.now(), "")
        if os.getpid() != worker:           # a child it forked, which came back here
            _leave_forked_child(None)
        for child in call.children:         # what it started and left running ends with it
            with contextlib.suppress(OSError):
                if child.poll() is None:
                    _kill_descendants(child.pid)
                    child.kill()
        stop = self.stops.get(task.id)
        if stop is not None:        # ended by its timeout or cancel(force=True), as a
            outcome = outcome._replace(       # synchronous call's (its worker killed) is
                status="error" if stop.timeout else "cancelled", value=None, summary=None,
                error=_failure(stop.reason, TaskTimeout if stop.timeout else Cancelled),
                retryable=stop.timeout)
        _reporter.flush()
        printed = call.output() + _output.collect()
        self.ended.append((task.id, outcome._replace(output=printed[-_MAX_OUTPUT:])))
        self._wake.set()

    def wait_changes(self, change: int) -> None:
        """One of its calls (or a thread of one) begins (+1) or ends (-1) a wait for another
        call: the pool keeps a spare worker while all its calls wait."""
        with self.lock:
            self.waits = max(0, self.waits + change)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._tell_waiting)

    def _tell_waiting(self, running: bool = True) -> None:
        with self.lock:
            waiting = running and bool(self.calls) and self.waits >= len(self.calls)
            told, self.said_waiting = self.said_waiting != waiting, waiting
        if told:
            self.state.reply(_Waiting(1 if waiting else -1))

    def _watch(self) -> None:
        """The watchdog thread: ask the loop for an answer every _LOOP_LOOK s; one that
        does not come within _LOOP_BLOCKED s means a call holds the loop: the pool hears
        which (once a call)."""
        answered = threading.Event()
        while not self.over.wait(_LOOP_LOOK):
            answered.clear()
            asked = time.monotonic()
            try:
                self.loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return
            if answered.wait(_LOOP_BLOCKED) or self.over.is_set():
                continue
            task = self._holding_loop()
            if task is not None and task.id not in self.told_blocked:
                self.told_blocked.add(task.id)
                self.state.reply(_Blocked(task.id, time.monotonic() - asked))
            while not answered.wait(_LOOP_LOOK) and not self.over.is_set():
                pass

    def _holding_loop(self) -> Optional[_Run]:
        """The call whose code the loop's thread runs now (found in its stack), if any."""
        frame = sys._current_frames().get(self.thread)
        while frame is not None:
            if frame.f_code is _AsyncCalls._call.__code__:
                task = frame.f_locals.get("task")
                return task if isinstance(task, _Run) else None
            frame = frame.f_back
        return None


def _exit_text(code: Optional[int]) -> str:
    if code is None:
        return "worker died: it closed its pipe"
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"worker died: killed by signal {-code}{name}"
    return f"worker died: exited with status {code}"


class _Task:
    """A claimed task on its way through the pool."""

    __slots__ = ("id", "uuid", "cron", "record", "timeout", "priority", "attempts", "returning",
                 "started", "cancel", "running", "outranked", "forfeit", "queue", "asynchronous",
                 "stopping", "stop_reason", "stop_ending")

    def __init__(self, claimed: _Claimed):
        self.id, self.uuid, self.record, self.cron = claimed.id, claimed.uuid, claimed.record, \
            claimed.cron
        self.queue = claimed.queue
        self.timeout, self.priority = claimed.timeout, claimed.priority
        self.attempts = claimed.attempts
        self.returning = False      # asked its worker to give it back
        self.outranked = False      # because a call of a higher priority came: it waits again
        self.forfeit = False        # its lease was lost: the other machines settled it
        self.cancel = 0             # 1: withdraw it unless started, 2: stop it in any case
        self.running = False        # its worker said it started it
        self.started = 0.0          # monotonic time the worker said so (timeouts)
        self.asynchronous = claimed.asynchronous   # it runs beside its worker's async calls
        self.stopping = 0.0         # an async call: monotonic time its cancel was sent (a
        self.stop_reason = ""       # timeout, cancel(force=True)), why, and the ending; its
        self.stop_ending: type = TaskError    # worker ends if it runs _ASYNC_GRACE s more


class _Worker:
    """The pool's handle on one worker process and the tasks handed to it, in order."""

    __slots__ = ("proc", "tasks", "results", "queue", "retiring", "born", "kill_reason",
                 "kill_ending", "killed_for", "reported", "acknowledged", "told", "closed",
                 "inbox", "slot", "waiting", "blocked", "blocker",
                 "init_failed", "initialized")

    def __init__(self, database: str, lease: Optional[int] = None,
                 lease_clock: Optional[_LeaseClock] = None, slot: Optional[int] = None):
        self.proc, self.tasks, self.results = _spawn("_worker_main", {
            "database": database, "lease": lease, "slot": slot,
            "lease_clock": lease_clock.fd if lease_clock is not None else None})
        self.slot = slot            # its part of the start log (SQLite: _StartLog)
        self.queue: list[Any] = []          # the first one runs, the rest wait in the worker
        self.retiring = False
        self.born = time.monotonic()
        self.kill_reason = ""       # why the pool killed it: a timeout, a forced cancel ...
        self.kill_ending: type = TaskError     # ... and the TaskError class that ending is
        self.killed_for = -1        # ... of this task (another one may have started since)
        self.reported = 0           # outcomes received from it (it numbers them alike)
        self.acknowledged = 0       # of which this many are committed
        self.told = 0               # and it has been told so about this many
        self.closed = False         # its pipe ended; its process may not have yet
        self.inbox = bytearray()    # what was read from its pipe and is not a whole message yet
        self.init_failed = False    # its initializer failed: it ends without running a task
        self.initialized = False    # it said it is set up (_InitDone)
        self.waiting = 0            # its running task waits for other calls (_Waiting)
        self.blocked = False        # ended for an async call that blocked its loop: its
                                    # other calls run again without using a retry
        self.blocker = -1           # the call it last said blocks its loop (_Blocked)
        os.set_blocking(self.results.fileno(), False)    # see _Pool._drain

    def async_only(self) -> bool:
        """Whether it holds async calls, and nothing else: there is room beside them."""
        return bool(self.queue) and all(task.asynchronous for task in self.queue)

    def stop(self, task: "_Task", reason: str, ending: type, now: float) -> None:
        """Stop a task it runs: an async call is cancelled alone (once; _Pool._end_blocked
        ends the worker if that does not end it), any other call ends with the worker."""
        if not task.asynchronous:
            self.kill(reason, task, ending)
        elif not task.stopping:
            task.stopping, task.stop_reason, task.stop_ending = now, reason, ending
            self.send(_CancelRun(task.id, task.attempts, reason, ending is TaskTimeout))

    def kill(self, reason: str, task: "_Task", ending: type) -> None:
        """End the process and what its task started (it cannot be interrupted otherwise)."""
        if not self.kill_reason:
            self.kill_reason, self.killed_for = reason, task.id
            self.kill_ending = ending
            self.end()

    def end(self) -> None:
        """Kill the process and every process below it (see _kill_group)."""
        _kill_group(self.proc)

    def push(self, tasks: list[Any], withdrawals: Any = None, lease: Optional[int] = None) -> None:
        """Hand tasks over in one write (one system call, not one a task); each message
        also acknowledges the committed outcomes."""
        self.queue.extend(tasks)
        self._write(b"".join(_frame(pickle.dumps(
            _Run(t.id, t.record, t.cron, self.acknowledged, withdrawals, lease, t.uuid,
                 t.attempts, t.asynchronous),
            _PICKLE_PROTOCOL)) for t in tasks))
        self.told = self.acknowledged

    def send(self, message: NamedTuple) -> None:
        self._write(_frame(pickle.dumps(message, _PICKLE_PROTOCOL)))

    def _write(self, data: bytes) -> None:
        """Write whole frames down the pipe (it blocks while the worker's pipe is full)."""
        try:
            self.tasks.write(data)
        except OSError:
            pass  # it died; the pool sees its process end and reports its task

    def close(self) -> None:
        for end in (self.tasks, self.results):
            with contextlib.suppress(OSError):
                end.close()


def _tell_blocked(worker: _Worker, message: _Blocked) -> None:
    """Log a worker's word that an async call blocks its event loop."""
    blocker = next((t.uuid for t in worker.queue if t.id == message.id), message.id)
    worker.blocker = message.id
    _log.warning("autocron task %s has blocked the event loop of worker %d for %.1f s: a "
                 "blocking call (time.sleep, a synchronous request) inside an async def task "
                 "stops the worker's %d other async calls meanwhile; await instead, or run it "
                 "in a thread (asyncio.to_thread)", blocker, worker.proc.pid, message.seconds,
                 max(0, len(worker.queue) - 1))


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """SIGKILL a worker, every process below it and every process in its group (a worker
    leads its own)."""
    _kill_descendants(proc.pid)      # first: killed, the worker would leave them to us
    try:
        if _CAN_KILL_GROUPS:
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows: the worker alone
            proc.kill()
    except OSError:
        pass   # already gone


class _Batch:
    """What the pool has learnt and not yet written, which its next commit writes all at
    once: starts, outcomes, tasks to put back, withdrawals that came too late. take() hands
    the commit everything and leaves the batch empty for what arrives meanwhile; a commit
    that fails gives it back with restore(), in front of that, so that nothing is lost and
    the order holds."""

    __slots__ = ("started", "outcomes", "requeue", "refused", "started_since")

    def __init__(self, started: Optional[list[Any]] = None, outcomes: Optional[list[Any]] = None,
                 requeue: Optional[list[Any]] = None, refused: Optional[list[Any]] = None,
                 started_since: float = 0.0):
        self.started: list[Any] = started or []       # [_Started]: mark them running
        self.outcomes: list[Any] = outcomes or []     # [_Reported]
        self.requeue: list[Any] = requeue or []       # [_Task] claimed, to put back in the queue
        self.refused: list[Any] = refused or []       # ids whose withdrawal came after they started
        self.started_since = started_since       # monotonic time of the oldest start here

    def empty(self) -> bool:
        return not (self.started or self.outcomes or self.requeue or self.refused)

    def due(self, now: float) -> bool:
        """Whether it is worth a commit now: anything but starts at once; starts alone wait
        _START_COMMIT_DELAY for company (a task that ends meanwhile is written once)."""
        return bool(self.outcomes or self.requeue or self.refused or self.started and
                    now - self.started_since >= _START_COMMIT_DELAY)

    def add_start(self, message: _Started, at: float) -> None:
        if not self.started:
            self.started_since = at
        self.started.append(message)

    def ids(self) -> set[Any]:
        """The task ids it holds."""
        return ({r.outcome.id for r in self.outcomes} | {s.id for s in self.started} |
                {t.id for t in self.requeue} | set(self.refused))

    def take(self) -> "_Batch":
        """Everything, for one commit; this batch is empty afterwards."""
        taken = _Batch(self.started, self.outcomes, self.requeue, self.refused,
                       self.started_since)
        self.started, self.outcomes, self.requeue, self.refused = [], [], [], []
        return taken

    def restore(self, taken: "_Batch") -> None:
        """A commit of `taken` failed: it comes back, before what arrived since."""
        if taken.started:
            self.started_since = taken.started_since
        self.started = taken.started + self.started
        self.outcomes = taken.outcomes + self.outcomes
        self.requeue = taken.requeue + self.requeue
        self.refused = taken.refused + self.refused


class _PoolState:
    """The state that the pool's parts share, declared once for the reader and the type
    checker (_Pool.__init__ sets it, with a comment on each), and the parts' methods that
    the others call."""

    store: _Store
    _init: _Init
    _init_failures: int
    _spawn_worker: Callable[..., Any]
    _own_processes: bool
    _clock: Callable[[], float]
    _owner: int
    _notices: _Pipe
    _notices_lock: threading.Lock
    _watched: set[str]
    _workers: list[Any]
    _stopping: bool
    _deadline: float
    _wake_path: str
    _wake: socket.socket
    _pg_listener: Optional[_PgListener]
    _lease_due: float
    _lease_clock: _LeaseClock
    _lease_lost: threading.Event
    _ending: threading.Event
    _start_log: Optional[_StartLog]
    _dirty_slots: set[int]
    _orphaned: bool
    _batch: _Batch
    _returned: list[Any]
    _respawn_at: float
    _respawn_delay: float
    _capped: bool
    _retry_at: float
    _outage: Optional[_Outage]
    _clock_seen: float
    _announced: Optional[int]
    _settings: dict[str, Any]
    _settings_read: float
    _ready: set[Any]
    _cancel_mark: Any
    _requested: dict[int, int]
    _idle: bool
    _dry: bool
    _selector: selectors.BaseSelector
    _listening: bool
    _children: Any
    _child_ended: bool
    _news: bool
    _run_time: float

    if TYPE_CHECKING:       # defined by one part, called by another
        def _publish(self) -> None: ...
        def _take_back(self, worker: _Worker, task: _Task) -> None: ...
        def _end(self, task: _Task, status: str, message: str, retryable: bool = False,
                 ending: Optional[type] = None) -> None: ...
        def _report(self, outcome: _Outcome, task: _Task, worker: Optional[_Worker] = None,
                    number: int = 0) -> None: ...
        def _settle_unstarted(self, task: _Task) -> None: ...
        def _drain(self, worker: _Worker) -> None: ...
        def _listen_anew(self) -> None: ...
        def _unavailable(self, error: DatabaseError) -> None: ...
        def _may_start(self, writable: bool) -> None: ...
        def _available(self) -> None: ...
        def _next_timeout(self) -> Optional[float]: ...
        def tell_owner(self, message: Union[_Finished, _LogLine]) -> None: ...
        def _tell_done(self, uids: list[Any], rows: Optional[list[Any]] = None) -> None: ...
        def _depth(self) -> int: ...
        def _held(self) -> dict[str, tuple[int, int]]: ...
        def _round(self) -> None: ...


class _PoolWakeups(_PoolState):
    """The pool's part that waits: the wake-up channel producers' datagrams arrive on, the
    PostgreSQL listener, and the one wait of a round for whichever comes first of a
    message, a wake-up, a worker's end, a due time or a deadline. (Its state is kept by
    _Pool.__init__, as is every part's.)"""

    def _bind_wake_socket(self) -> socket.socket:
        """The socket that producers' datagrams wake; without a safe place for one, a socket
        that never wakes (producers are then seen by the fallback check) and one warning."""
        if not _HAS_UNIX_SOCKETS:  # pragma: no cover - Windows
            problems = ["this system has no AF_UNIX sockets"]
        elif not self._wake_path:
            problems = _wake_choice(self.store.path)[1]
        else:
            try:
                listener = _bind_wake(self._wake_path)
                listener.setblocking(False)
                return listener
            except OSError as error:
                problems = [f"{self._wake_path}: {error.strerror or error}"]
        self.tell_owner(_LogLine(logging.WARNING,
                         f"autocron: no wake-up socket for the pool of {self.store.path}: "
                         f"{'; '.join(problems)}; new tasks start within {_FALLBACK_WAKE:g} s "
                         "instead of at once. Set XDG_RUNTIME_DIR or TMPDIR to a private "
                         "folder with a short path"))
        self._wake_path = ""           # nothing of ours to wake or to remove when stopping
        listener, self._wake_peer = socket.socketpair()   # the peer stays open and silent
        listener.setblocking(False)
        return listener

    def _release(self) -> None:
        self._ending.set()
        self._selector.close()
        self._wake.close()
        if self._pg_listener is not None:
            self._pg_listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self._wake_path)
        with contextlib.suppress(DatabaseError):
            self.store.set_pool(None)
            self.store.set_setting("pool_ended", self.store.now())   # the dashboard's banner

    def _listen_anew(self) -> None:
        """The LISTEN connection broke: open another (until then, and if that fails until
        the next lease renewal, the fallback check finds new tasks)."""
        if self._pg_listener is not None:
            self._selector.unregister(self._pg_listener)
        self._pg_listener = None
        with contextlib.suppress(DatabaseError):
            self._pg_listener = self.store.listener(again=True)
            if self._pg_listener is not None:
                self._selector.register(self._pg_listener, selectors.EVENT_READ)

    def _sleep(self) -> None:
        """Wait for a message, a wake-up, a worker's end, the next due time or the deadline."""
        timeout = _FALLBACK_WAKE
        depth = self._depth()
        room = any(len(w.queue) < depth and not w.retiring for w in self._workers)
        # While every worker is full, new calls can wait, unless they outrank one that a
        # worker holds (_make_room): the pool hears of them while a worker holds any.
        held = room or any(len(w.queue) > 1 for w in self._workers)
        if held != self._listening:
            if held:
                self._selector.register(self._wake, selectors.EVENT_READ)
            else:
                self._selector.unregister(self._wake)
            self._listening = held
        if room and self._idle and self._clock() >= self._retry_at:
            try:
                due = self.store.next_due(self._held())
            except DatabaseError as error:
                self._unavailable(error)
                due = None
            if due is not None:
                timeout = min(timeout, max(0.0, due - self.store.now()))
        elif room:
            timeout = 0.0              # the last round was busy: look again at once
        if self._stopping:
            timeout = min(timeout, max(0.0, self._deadline - self._clock()))
        now = self._clock()
        waits = [t - now for t in (self._respawn_at, self._retry_at) if t > now]
        timeout_due = self._next_timeout()
        if timeout_due is not None:
            waits.append(timeout_due)
        if self._batch.started:        # starts alone wait a moment for company in a commit
            waits.append(max(0.0, self._batch.started_since + _START_COMMIT_DELAY - now))
        if self._children is None and self._workers:
            waits.append(_FALLBACK_REAP)        # no signal tells of a worker's end: look
        timeout = min([timeout] + waits)
        events = self._selector.select(timeout)
        if not events:
            self._news = True          # a due time, a deadline or the fallback look
            self._dry = False
        for key, _ in events:
            if key.fileobj is self._wake:
                self._news, self._dry = True, False
                with contextlib.suppress(OSError):     # until none is left (EAGAIN)
                    while True:
                        heard = self._wake.recv(64)
                        if not heard:
                            break
                        self._announced = _outranking(self._announced, heard)
            elif self._pg_listener is not None and key.fileobj is self._pg_listener:
                self._news, self._dry = True, False
                if not self._pg_listener.drain():
                    self._listen_anew()
            elif key.fileobj is self._children:
                self._news = self._child_ended = True
                with contextlib.suppress(OSError):
                    while os.read(key.fd, 512):
                        pass
            else:
                self._ready.add(key.fileobj)


class _PoolLease(_PoolState):
    """The pool's part that keeps its right to run: taking over from the last pool, the
    lease and its keeper thread (PostgreSQL), and an unavailable database, which is
    weather: waited out, never an outcome."""

    def _begin(self) -> bool:
        """Take over from the last pool (its lease, what it left behind), waiting out an
        unavailable database; False if stop() came first."""
        while not self._stopping:
            try:
                self.store.checkpoint_as_pool()
                previous = self.store.previous_pool()
                self._await_previous_pool(previous)
                sent, now = time.monotonic(), self.store.now()
                with self.store.transaction() as con:
                    self.store.take_lease(con, self._owner)
                    _recover(self.store, con, now, previous)
                if self._start_log is not None:      # counted now: forgotten
                    with contextlib.suppress(OSError):
                        self._start_log.clear()
                self.store.remember_pool()
                self._available()
                if self.store.leased:
                    self._lease_clock.set(sent + _lease_ttl * (1 - _LEASE_MARGIN),
                                          self.store.lease)
                    threading.Thread(target=self._renew_lease, name="autocron-lease",
                                     daemon=True).start()
                return True
            except DatabaseError as error:
                self._unavailable(error)
                time.sleep(max(0.0, self._retry_at - self._clock()))
        return False

    def _unavailable(self, error: DatabaseError) -> None:
        """The database refused a read or write for a reason of its own (a full disk, an I/O
        error, a server restarting or out of reach): nothing learnt is dropped, and the pool
        tries again after a pause that doubles up to _OUTAGE_PAUSES[1]. Its workers go on
        with the tasks they hold and keep their outcomes until they are committed."""
        now = self._clock()
        outage = self._outage
        if outage is None:
            outage = self._outage = _Outage(now, _OUTAGE_PAUSES[0], now)
            _log.warning("autocron pool for %s cannot write to its database; it keeps what "
                         "its workers report and tries again: %s", self.store.path, error)
        elif now - outage.reported >= _OUTAGE_REPORT:
            outage = self._outage = outage._replace(reported=now)
            _log.warning("autocron pool for %s still cannot write to its database (since "
                         "%.0f s; %d outcomes kept): %s", self.store.path, now - outage.since,
                         len(self._batch.outcomes), error)
        self._retry_at = now + outage.pause
        self._outage = outage._replace(pause=min(outage.pause * 2, _OUTAGE_PAUSES[1]))
        self._may_start(False)                        # no starts until a write works

    def _may_start(self, writable: bool) -> None:
        """SQLite: whether the workers may start tasks, which they may while the pool can
        write and its owner lives (PostgreSQL: the lease keeper decides, by the lease)."""
        if not self.store.leased:
            self._lease_clock.set(math.inf if writable and not self._orphaned else 0.0, None)

    def _available(self) -> None:
        """A write went through: an outage, if there was one, is over."""
        if self._outage is not None:
            _log.warning("autocron pool for %s writes to its database again (after %.1f s)",
                         self.store.path, self._clock() - self._outage.since)
            self._outage, self._retry_at = None, 0.0
            self._may_start(True)
            if self.store.leased and self._pg_listener is None:
                self._listen_anew()

    def _renew_lease(self) -> None:
        """The lease keeper, a thread of the manager (PostgreSQL): renews this pool's lease
        _LEASE_RENEWALS times a lease, whatever the dispatcher is busy with (a long round, a
        slow database), and tells the workers until when they may start tasks. A lease found
        taken over stops every start at once, and the dispatcher takes a new one."""
        while not self._ending.wait(_lease_ttl / _LEASE_RENEWALS):
            lease, sent = self.store.lease, time.monotonic()
            try:
                renewed = self.store.renew_lease(lease)
            except DatabaseError:      # unavailable: the workers stop starting tasks when
                continue               # the lease may have run out, until a renewal works
            if lease != self.store.lease or self._orphaned:
                continue               # a new lease meanwhile; or no more starts at all
            if renewed:
                self._lease_clock.set(sent + _lease_ttl * (1 - _LEASE_MARGIN), lease)
            else:
                self._lease_clock.set(0.0, lease)
                self._lease_lost.set()
                _wake_pool(self._wake_path)

    def _keep_lease(self) -> None:
        """A lease found taken over (this machine was paused or cut off for longer than
        _lease_ttl s) means the others settled its tasks: the ones not started here are given
        up (the workers never start them: _LeaseClock), and the pool goes on under a new
        lease; what still runs here writes nothing (its writes are fenced by the old lease).
        Every _lease_ttl / _LEASE_RENEWALS s: the LISTEN connection, calls claimed under this
        lease that no worker holds (the reply to the claim was lost), and the machines that
        stopped renewing their leases."""
        if self._lease_lost.is_set():
            _log.error("autocron: the pool of machine %s lost its lease on %s (no renewal for "
                       "%g s: paused or cut off); other machines settled its tasks, and what "
                       "still runs here will not be written", self.store.machine,
                       self.store.path, _lease_ttl)
            for worker in self._workers:
                for task in worker.queue:
                    if not task.running:
                        task.forfeit = True
                        self._take_back(worker, task)
            self._returned, self._batch.requeue = [], []
            sent = time.monotonic()
            with self.store.transaction() as con:
                self.store.take_lease(con, self._owner)
            self.store.remember_pool()
            self._lease_clock.set(sent + _lease_ttl * (1 - _LEASE_MARGIN), self.store.lease)
            self._lease_lost.clear()
            self._publish()
        if self._clock() < self._lease_due:
            return
        self._lease_due = self._clock() + _lease_ttl / _LEASE_RENEWALS
        if self._pg_listener is None:
            self._listen_anew()
        self._reclaim_strays()
        now = self.store.now()
        with self.store.transaction() as con:
            _settle_lost(self.store, con, now)
        with self.store.transaction() as con:
            self.store.fold_counts(con)

    def _reclaim_strays(self) -> None:
        """Calls claimed under this pool's lease that it does not hold (the connection broke
        after the server committed a claim, before its reply came): they wait again."""
        known = {t.id for w in self._workers for t in w.queue}
        known.update(t.id for t in self._returned)
        known.update(self._batch.ids())
        strays = [task_id for task_id in self.store.claimed() if task_id not in known]
        if strays:
            _log.warning("autocron: %d calls claimed by the pool of machine %s but never "
                         "handed to a worker (a reply lost on the way) wait again",
                         len(strays), self.store.machine)
            with self.store.transaction() as con:
                self.store.requeue(con, strays)

    def _await_previous_pool(self, previous: Optional[_PoolId]) -> None:
        """Let the processes of a pool that ended abruptly finish handing over its tasks."""
        if self.store.leased and previous is None:
            return           # none known on this machine: the lost pools' way settles it
        pids = self.store.pool_pids(previous)
        left = {p for p in [pids.manager, *pids.workers] if p and p != os.getpid()}
        if not self.store.leased:
            # One pool a file on this machine: every other process of a pool of this file
            # is the last pool's, also a worker it started when it could no longer publish
            # its pids (a full disk): each hands over what it ran before this pool settles.
            left.update(_pool_processes(self.store.path) - {os.getpid()})
        end = time.monotonic() + _HANDOVER_WAIT
        for look in itertools.count(1):
            left = {p for p in left if _pool_process_alive(p, self.store.path)}
            if left and not self.store.leased and look % 10 == 0:
                # a worker that its manager started meanwhile (one paused until now)
                left.update(_pool_processes(self.store.path) - {os.getpid()})
            if not left or time.monotonic() >= end:
                break
            time.sleep(0.01)
        for pid in left:      # stuck: they have had their chance
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL) if _CAN_KILL_GROUPS else os.kill(pid, 9)


class _PoolCrew(_PoolState):
    """The pool's part that keeps its workers: spawning and retiring them (each with its
    slot of the start log), reading what they say, burying the ones that ended with their
    tasks settled, and winding them down."""

    def _collect(self) -> None:
        """Read every message the workers have sent; bury the workers whose process ended."""
        ready, self._ready = self._ready, set()
        for worker in [w for w in self._workers if w.results in ready]:
            self._drain(worker)
        if self._child_ended or self._children is None or any(w.closed for w in self._workers):
            self._child_ended = False
            for worker in [w for w in self._workers if w.proc.poll() is not None]:
                self._drain(worker)          # what it said before it ended
                self._bury(worker)
        if not self._stopping:
            self._adjust_workers()

    def _drain(self, worker: _Worker) -> None:
        """Read the messages waiting in a worker's pipe, without blocking: whole reads into
        a buffer, cut into frames (_frames; a read per message and a select() to see whether
        another follows would cost three system calls a message, the dispatcher's largest)."""
        if worker.closed:
            return
        ended = False
        try:
            while True:
                chunk = os.read(worker.results.fileno(), _READ_SIZE)
                if not chunk:
                    ended = True
                    break
                worker.inbox += chunk
                if len(chunk) < _READ_SIZE:
                    break
        except BlockingIOError:
            pass
        except OSError:
            ended = True
        for message in _frames(worker.inbox):
            self._receive(worker, pickle.loads(message))
        if ended:
            worker.closed = True         # its process ends next (or has): see _collect
            self._selector.unregister(worker.results)
            if worker.proc.poll() is None:
                worker.end()     # a worker never closes its pipe by itself

    def _receive(self, worker: _Worker, message: Union[_InitDone, _Started, _Done,
                                                       _Returned, _Waiting, _Blocked]) -> None:
        """One message of a worker's: _InitDone, _Started, _Done, _Returned, _Waiting or
        _Blocked."""
        if isinstance(message, _InitDone):
            self._initialized(worker, message.error)
            return
        if isinstance(message, _Blocked):
            _tell_blocked(worker, message)
            return
        if isinstance(message, _Waiting):    # a spare worker meanwhile (_adjust_workers)
            worker.waiting = max(0, worker.waiting + message.change)
            for task in worker.queue[1:] if worker.waiting else ():
                self._take_back(worker, task)     # what waits behind it runs elsewhere
            self._news = True
            return
        task_id = message.outcome.id if isinstance(message, _Done) else message.id
        task = next((t for t in worker.queue if t.id == task_id), None)
        if task is None:
            _log.warning("autocron worker %d reported task %r, which it does not hold; "
                         "ignored", worker.proc.pid, task_id)
            return
        if isinstance(message, _Started):
            task.started, task.running = self._clock(), True
            if not self.store.starts_committed:     # else nothing for a commit to write
                self._batch.add_start(message, task.started)
            if task.cancel == 1:          # the withdrawal came too late
                task.cancel = 0
            elif task.cancel == 2:
                worker.stop(task, "cancelled while running", Cancelled, self._clock())
            return
        self._news = True
        worker.queue.remove(task)
        if isinstance(message, _Done):
            worker.reported += 1
            outcome = message.outcome
            if outcome.started is not None and outcome.finished is not None:
                self._run_time += (outcome.finished - outcome.started - self._run_time) / 8
            self._report(outcome, task, worker, worker.reported)
            if outcome.error is not None and outcome.retire:
                _log.warning("autocron: %s", outcome.error["message"])
            elif outcome.error is not None and outcome.status == "error":
                _log.error("autocron task %s failed:\n%s", task.uuid,
                           outcome.error["traceback"] or outcome.error["message"])
            if message.next is not None:    # and the next one started
                self._receive(worker, message.next)
            return
        task.returning = False          # taken back, or never started (withdrawn)
        if task.forfeit or message.refused:     # the others have it
            return
        if task.cancel or message.skipped:
            self._end(task, "cancelled", "cancelled", ending=Cancelled)
        else:
            (self._batch.requeue if self._stopping or task.outranked else
             self._returned).append(task)

    def _initialized(self, worker: _Worker, error: Optional[dict[Any, Any]]) -> None:
        """A worker's initialization ended. Failed: it ends, and no worker starts for a pause
        that doubles (_INIT_PAUSES) while calls wait, the failure in the log and in the
        settings (info, the dashboard); done: the pause and the failure are forgotten."""
        if error is None:
            worker.initialized = True
            if self._init_failures:
                _log.warning("autocron: the initializer works again; workers start")
                self._init_failures = 0
                with contextlib.suppress(Exception):     # only what info shows
                    self.store.set_setting("initializer_error", None)
            return
        worker.init_failed = True
        self._init_failures += 1
        pause = min(_INIT_PAUSES[0] * 2 ** (self._init_failures - 1), _INIT_PAUSES[1])
        self._respawn_at = self._clock() + pause
        text = f"{error['type']}: {error['message']}"
        _log.error("autocron: the initializer failed in worker %d; no worker starts until it "
                   "works (trying again in %g s, calls wait):\n%s", worker.proc.pid, pause,
                   error["traceback"] or text)
        with contextlib.suppress(Exception):
            self.store.set_setting("initializer_error", {
                "machine": _machine_name(), "at": self.store.now(), "message": text})

    def _bury(self, worker: _Worker) -> None:
        """A worker process ended: settle its tasks, end what its tasks left running."""
        self._workers.remove(worker)
        if worker.slot is not None:
            self._dirty_slots.add(worker.slot)
        if not worker.closed:
            self._selector.unregister(worker.results)
        worker.close()
        code = worker.proc.wait()
        worker.end()         # what its tasks started dies with it
        self._end_orphans()
        for task in worker.queue:
            if not task.running:
                self._settle_unstarted(task)
            elif task.id == worker.killed_for and task.cancel == 2:
                self._end(task, "cancelled", "cancelled while running", ending=Cancelled)
            elif worker.blocked and task.stopping and task.id != worker.killed_for:
                self._end(task, "cancelled" if task.stop_ending is Cancelled else "error",
                          task.stop_reason, retryable=task.stop_ending is TaskTimeout,
                          ending=task.stop_ending)
            elif worker.blocked and task.id != worker.killed_for:
                # ended for another call's sake: it runs again, and no retry is used
                blocker = next((t.uuid for t in worker.queue if t.id == worker.killed_for),
                               "")
                text = (f"interrupted: its worker was ended because the async call {blocker} "
                        "blocked its event loop; it runs again without using a retry")
                self._report(_Outcome(task.id, "error", error=_failure(text, WorkerLost),
                                      finished=self.store.now(), cron=task.cron, free=True),
                             task)
            else:
                killed = task.id == worker.killed_for
                text = worker.kill_reason if killed else _exit_text(code)
                _log.error("autocron task %s failed: %s", task.uuid, text)
                self._end(task, "error", text, retryable=True,
                          ending=worker.kill_ending if killed else WorkerLost)
        if self._init.record is not None and not worker.init_failed and \
                not worker.initialized and not worker.retiring and not self._stopping and \
                not any(task.running for task in worker.queue):
            self._initialized(worker, {"type": "SystemExit", "message": "the worker ended "
                                       f"while it was being set up ({_exit_text(code)[13:]})",
                                       "traceback": ""})
        if worker.init_failed:       # its pause is set (_initialized)
            self._publish()
            return
        if code == _RELOAD_EXIT:     # its code changed: a fresh worker takes its place
            _log.info("autocron worker %d ended: its source files changed", worker.proc.pid)
            self._publish()
            return
        if not worker.queue and not worker.retiring and not self._stopping:
            _log.warning("autocron worker %d died: %s", worker.proc.pid, _exit_text(code))
        if self._clock() - worker.born < _YOUNG and not worker.retiring:
            self._respawn_at = self._clock() + self._respawn_delay   # failing at start-up
            self._respawn_delay = min(self._respawn_delay * 2, _RESTART_PAUSE[1])
        else:
            self._respawn_delay = _RESTART_PAUSE[0]
        self._publish()

    def _end_orphans(self) -> None:
        """Kill and reap what a dead worker's tasks left: reparented to the manager (a
        subreaper), these are its children that are no worker of its own."""
        if not _HAS_PROCESS_TREE or not self._own_processes:
            return
        workers = {w.proc.pid for w in self._workers}
        tree = _process_tree()
        orphans = [pid for pid, _ in tree.get(os.getpid(), ()) if pid not in workers]
        for pid in orphans:
            _kill_descendants(pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + _LEFTOVER_WAIT
        for pid in orphans:              # by pid: a wait for any child would take a worker's
            with contextlib.suppress(ChildProcessError):         # status from its Popen
                while os.waitpid(pid, os.WNOHANG)[0] == 0 and time.monotonic() < end:
                    time.sleep(0.001)

    def _adjust_workers(self) -> None:
        """Spawn or retire workers until their number matches the setting, and a spare for
        every worker whose task waits for another call (at most _MAX_SPARES), so that the
        pool always has that many workers that do not wait: nested waits never deadlock."""
        active = [w for w in self._workers if not w.retiring]
        waiting = sum(1 for w in active if w.waiting)
        leaving = sum(1 for w in self._workers if w.retiring and w.waiting)   # spares too
        spares = max(0, min(_MAX_SPARES - leaving, waiting))
        if waiting + leaving > _MAX_SPARES and not self._capped:
            _log.warning("autocron: %d tasks wait for other calls, and the pool keeps at most "
                         "%d spare workers: calls they wait for may wait until one of them "
                         "ends (wait for fewer calls at once, or with a timeout)",
                         waiting + leaving, _MAX_SPARES)
        self._capped = waiting + leaving > _MAX_SPARES
        wanted = max(1, int(self._settings["workers"])) + spares
        if len(active) < wanted and self._clock() >= self._respawn_at:
            for _ in range(wanted - len(active)):
                slot = self._free_slot()
                if slot is False:          # no room for its start log: a full disk
                    self._respawn_at = self._clock() + _OUTAGE_PAUSES[1]
                    break
                worker = self._spawn_worker(self.store.path, self.store.lease, self._lease_clock,
                                            slot)
                worker.send(self._init)      # first of all: its set-up
                worker.born = self._clock()
                self._workers.append(worker)
                self._selector.register(worker.results, selectors.EVENT_READ)
                _log.info("autocron worker %d started", worker.proc.pid)
            self._publish()
        surplus = [w for w in active if not w.waiting][::-1][:max(0, len(active) - wanted)]
        for worker in surplus:          # the newest of those that do not wait
            worker.retiring = True
            for task in worker.queue[1:]:
                self._take_back(worker, task)
            worker.send(_Exit())

    def _free_slot(self) -> Union[int, None, bool]:
        """The start log's slot for a new worker: the first that no worker holds, nor one
        that died since the last commit (its starts may be unwritten: they stay until the
        next pool counts them); None without a start log, False if no room can be set
        aside."""
        if self._start_log is None:
            return None
        taken = {w.slot for w in self._workers} | self._dirty_slots
        slot = next(n for n in itertools.count() if n not in taken)
        try:
            self._start_log.reserve(slot + 1)
        except OSError as error:
            _log.warning("autocron: no room for a worker's start log in %s (%s); its start "
                         "waits", self._start_log.path, error.strerror or error)
            return False
        return slot

    def _publish(self) -> None:
        with contextlib.suppress(DatabaseError):
            self.store.set_pool(self._owner, os.getpid(),
                                tuple(w.proc.pid for w in self._workers))

    def _wind_down(self) -> None:
        """While stopping: take back what has not started; past the deadline, kill the
        workers that still run a task (it fails "stopped") and write that at once."""
        for worker in self._workers:
            for task in worker.queue[1:]:
                self._take_back(worker, task)
        busy = [w for w in self._workers if w.queue]
        if busy and self._clock() >= self._deadline:
            for worker in busy:
                worker.end()
                worker.proc.wait()
                self._drain(worker)
                for task in worker.queue:
                    if task.running:
                        self._end(task, "error",
                                  "stopped: the pool stopped before the task finished",
                                  ending=WorkerLost)
                    else:
                        self._settle_unstarted(task)
                worker.queue = []
            self._round()

    def _drained(self) -> bool:
        """No worker holds a task and everything learnt is written: the pool may end."""
        return not any(w.queue for w in self._workers) and not self._batch.outcomes and \
            not self._batch.requeue and not self._batch.started

    def _shutdown_workers(self) -> None:
        for worker in self._workers:
            worker.send(_Exit())
        end = time.monotonic() + _SHUTDOWN_WAIT
        for worker in self._workers:
            try:
                worker.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.end()     # and what its tasks left running
            worker.proc.wait()
            worker.close()
        self._workers = []
        self._end_orphans()

class _PoolPlaces(_PoolState):
    """The pool's part that decides where calls go: how many a worker holds, the places of
    each kind a claim fills (_assign), calls handed back placed again, and calls taken back
    from busy workers for idle ones."""

    def _depth(self) -> int:
        """How many tasks a worker holds: more while the recent ones were quick."""
        return _PREFETCH_QUICK if self._run_time < _QUICK_TASK else _PREFETCH

    def _held(self) -> dict[str, tuple[int, int]]:
        """{queue: (the calls this pool's workers hold, those not started yet)}: an SQLite
        file's only pool holds them all (its limits count them)."""
        held: dict[str, tuple[int, int]] = {}
        for worker in self._workers:
            for task in worker.queue:
                count, waiting = held.get(task.queue, (0, 0))
                held[task.queue] = (count + 1, waiting + (not task.running))
        return held

    def _places(self) -> list[tuple[_Worker, str]]:
        """A worker for every task the workers can take now, and the kind of place (_assign):
        idle workers first; then room beside workers' async calls, up to async_concurrency
        each, taken in turn; then places behind a running call; last, one behind each
        worker's async calls, for a synchronous call (that worker then takes no more async
        calls until it has run it: a flood of async calls never starves the others), and,
        when the last claim left an async call without a place, one behind each worker's
        synchronous calls for an async call (a flood of synchronous calls starves none)."""
        active = [w for w in self._workers if not w.retiring and not w.closed and not w.waiting]
        places = [(w, _IDLE) for w in active if not w.queue]
        beside = [w for w in active if w.async_only()]
        if beside:
            most = int(self._settings["async_concurrency"])
            rooms = [[(w, _ROOM)] * (most - len(w.queue)) for w in beside]
            places += [p for turn in itertools.zip_longest(*rooms) for p in turn if p is not None]
        others = [w for w in active if w not in beside]
        for depth in range(1, self._depth()):
            places += [(w, _BEHIND) for w in others if max(len(w.queue), 1) <= depth]
        places += [(w, _AFTER_ASYNC) for w in beside]
        if self.store.async_left:
            places += [(w, _AFTER_SYNC) for w in active if w.queue and
                       not any(task.asynchronous for task in w.queue)]
        return places

    def _place_returned(self, places: list[tuple[_Worker, str]]) -> list[Any]:
        """Give the tasks that workers handed back places of their kinds (as _assign
        would); [(worker, task)], and the places used are gone from `places`."""
        placed = []
        for task in list(self._returned):
            order = _ROOM + _IDLE + _AFTER_SYNC if task.asynchronous else \
                _IDLE + _BEHIND + _AFTER_ASYNC
            found = next((i for kind in order for i, place in enumerate(places)
                          if place[1] == kind), None)
            if found is not None:
                self._returned.remove(task)
                placed.append((places.pop(found)[0], task))
        return placed

    def _take_back(self, worker: _Worker, task: "_Task") -> None:
        """Ask a worker for a task it holds; it answers "returned" unless it started it."""
        if not task.returning and not task.running:
            task.returning = True
            worker.send(_Return(task.id))

    def _take_back_queued(self) -> None:
        """An idle worker and nothing due: ask for tasks queued behind running ones."""
        idle = sum(1 for w in self._workers if not w.queue and not w.retiring and not w.closed)
        for worker in self._workers:
            for task in worker.queue[1:]:
                if idle and not task.returning and not task.running:   # not an async call
                    self._take_back(worker, task)                       # running beside
                    idle -= 1


class _PoolWrites(_PoolState):
    """The pool's part that writes: what a round learnt goes to the database in one
    transaction with the next claim (the batch is taken, and given back if the commit
    fails), outcomes the pool decides itself, and the acknowledgements to the workers."""

    def _commit(self, pids: list[Any], crons_due: bool, kinds: str = "") -> list[Any]:
        """Write what the round learnt and claim a task for each worker pid; the claimed rows.

        Nothing learnt is dropped when the write fails: a busy database is tried again a
        moment later, an outcome that cannot be stored fails its own task with the reason.
        """
        batch = self._batch.take()
        started, outcomes, requeue = batch.started, batch.outcomes, batch.requeue
        self._dry = self._dry and not requeue     # tasks put back are due again
        now = self.store.now()
        watched = self._shippable(outcomes)
        shipped: list[Any] = []
        try:
            # A task that started and ended since the last commit is written once, by its
            # outcome (finish); one that may run again needs its start counted first.
            ended = {r.outcome.id for r in outcomes if r.outcome.status == "ready" and
                     r.outcome.started}
            sweep = self._pg_listener is not None and self._pg_listener.sweep
            # a claim alone is one statement, where the store can (PostgreSQL: one round
            # trip instead of a transaction's three)
            claimed = self.store.claim_alone(now, pids, self._init.queues, kinds) \
                if batch.empty() and pids and not crons_due and not sweep else None
            if claimed is None:
                with self.store.transaction() as con:
                    self.store.mark_started(con, [s for s in started if s.id not in ended])
                    self.store.note_starts(con, started)
                    _write_outcomes(self.store, con, [r.outcome for r in outcomes], now)
                    self._requeue_or_settle(con, [t.id for t in requeue], now)
                    self.store.refuse_cancel(con, batch.refused)
                    if crons_due:
                        self.store.due_crons(con, now)
                    if sweep and self._pg_listener is not None:
                        self._pg_listener.sweep = False
                        self.store.sweep_dependents(con, now)
                    rows = self.store.finished_rows(con, watched) if watched else None
                    # read once committed, where it can be: its answer comes with COMMIT's
                    later = self.store.claim_later(con, now, pids, self._init.queues, kinds) \
                        if pids else None
                    claimed = self.store.claim(con, now, pids, self._init.queues,
                                               self._held(), kinds) if pids and not later \
                        else []
                shipped = rows() if rows is not None else []   # answered by now, commit too
                claimed = later() if later is not None else claimed
        except Exception as error:
            self._batch.restore(batch)
            if _weather(error) or not outcomes or not self._store_one_by_one():
                if isinstance(error, DatabaseError):
                    raise
                raise DatabaseError(f"{self.store.path}: {type(error).__name__}: {error}",
                                    self.store.path) from error
            return []
        for slot in self._dirty_slots:    # what their workers started is written now
            with contextlib.suppress(OSError):
                if self._start_log is not None:
                    self._start_log.clear(slot)
        self._dirty_slots.clear()
        if batch.empty() and not claimed and self._outage is not None:
            # An empty commit went through: the workers may start again (their starts will
            # tell), but the outage ends with a write that carried something
            self._may_start(True)
        else:
            self._available()
        self._acknowledge(outcomes, shipped)
        if claimed is None:              # a queue is limited: nothing was taken
            with self.store.transaction() as con:
                claimed = self.store.claim(con, now, pids, self._init.queues, self._held(),
                                           kinds)
        return claimed

    def _shippable(self, outcomes: list[Any]) -> list[Any]:
        """The ids of outcomes that a caller in the owner waits for, small enough to go to
        it with the notice (_Finished.rows), if its read costs a round trip (SQLite: the
        pool's read, on the dispatcher's path, cost more than the caller's own). Of these,
        finished_rows() reads the finished ones: an attempt that runs again is not."""
        if not self.store.remote:
            return []
        with self._notices_lock:
            return [r.outcome.id for r in outcomes if r.uid in self._watched and
                    len(r.outcome.value or b"") + len(r.outcome.output) <= _SHIP_MOST]

    def _requeue_or_settle(self, con: Any, ids: list[Any], now: float) -> None:
        """Put back tasks that no worker runs, in the caller's transaction. One whose start
        a worker committed before it could tell the pool (PostgreSQL: start_now), and that
        worker died, is settled as interrupted instead (run again while it has retries)."""
        unseen = self.store.started_unseen(con, ids) if ids else []
        if unseen:
            died = _failure("worker died: it ended after it started the task", WorkerLost)
            _write_outcomes(self.store, con, [
                _Outcome(task.id, "error", error=died, finished=now, cron=task.cron,
                         retryable=True) for task in unseen], now)
        self.store.requeue(con, ids)

    def _store_one_by_one(self) -> bool:
        """After a commit that the database refused for its data: write each outcome alone,
        failing those that cannot be stored (a value too large); False if the database
        refuses even that, or turns out to be unavailable (then everything waits)."""
        started, self._batch.started = self._batch.started, []
        try:
            with self.store.transaction() as con:
                self.store.mark_started(con, started)
        except Exception:
            self._batch.restore(_Batch(started=started,
                                       started_since=self._batch.started_since))
            return False
        outcomes, self._batch.outcomes = self._batch.outcomes, []
        for position, reported in enumerate(outcomes):
            outcome, now = reported.outcome, self.store.now()
            try:
                with self.store.transaction() as con:
                    _write_outcomes(self.store, con, [outcome], now)
            except Exception as error:
                if _weather(error):
                    self._batch.restore(_Batch(outcomes=outcomes[position:]))
                    return False
                _log.error("autocron task %d: its outcome could not be stored: %s",
                           outcome.id, error)
                failed = outcome._replace(status="error", value=None, output="", summary=None,
                                          retryable=False, error=_failure(
                                              f"the task's outcome could not be stored: {error}"))
                try:
                    with self.store.transaction() as con:
                        _write_outcomes(self.store, con, [failed], now)
                except Exception:
                    self._batch.restore(_Batch(outcomes=outcomes[position:]))
                    return False
            self._acknowledge([reported])
        return True

    def _acknowledge(self, outcomes: list[Any], rows: Optional[list[Any]] = None) -> None:
        """Outcomes are committed: wake the owner's callers (with `rows`, [_ResultRow] of
        some); their workers learn it with their next task (or from _tell_acknowledged)."""
        for reported in outcomes:
            worker = reported.worker
            if worker is not None and reported.number > worker.acknowledged:
                worker.acknowledged = reported.number
        if outcomes and self._watched:
            self._tell_done([reported.uid for reported in outcomes], rows)

    def _tell_acknowledged(self) -> None:
        """A worker that gets no task soon, or holds many outcomes, is told on its own."""
        for worker in self._workers:
            if worker.acknowledged > worker.told and not worker.closed and (
                    not worker.queue or worker.acknowledged - worker.told >= _ACK_BATCH):
                worker.send(_Ack(worker.acknowledged))
                worker.told = worker.acknowledged

    def _report(self, outcome: _Outcome, task: "_Task", worker: Optional[_Worker] = None,
                number: int = 0) -> None:
        """An outcome to write in the next commit (from `worker`, its `number`-th)."""
        self._batch.outcomes.append(_Reported(outcome, task.uuid, worker, number))

    def _end(self, task: "_Task", status: str, message: str, retryable: bool = False,
             ending: Optional[type] = None) -> None:
        """An outcome the pool decides itself: a worker died, a withdrawal, a stop."""
        self._report(_Outcome(task.id, status, error=_failure(message, ending),
                              finished=self.store.now(),
                              cron=task.cron, retryable=retryable), task)

    def _settle_unstarted(self, task: "_Task") -> None:
        """A task its worker never started: withdrawn if that was asked, else it runs later."""
        if task.cancel:
            self._end(task, "cancelled", "cancelled", ending=Cancelled)
        else:
            self._batch.requeue.append(task)


class _PoolDeadlines(_PoolState):
    """The pool's part that keeps time for the tasks: a task past its timeout is ended with
    its worker, and the round's wait ends by the next such deadline."""

    def _enforce_timeouts(self) -> None:
        now = self._clock()
        for worker in self._workers:
            for task in [t for t in worker.queue if t.running]:
                if task.stopping and now - task.stopping >= _ASYNC_GRACE:
                    self._end_blocked(worker, task)
                elif task.timeout and not task.stopping and now - task.started >= task.timeout:
                    self._kill(worker, task, f"timed out after {task.timeout:g} s", TaskTimeout)

    def _kill(self, worker: _Worker, task: "_Task", reason: str, ending: type) -> None:
        """Stop a running task: an async call is cancelled alone (its worker and its other
        calls go on), any other call is ended with its worker (unless its pipe says the task
        has just ended)."""
        self._drain(worker)
        if task in worker.queue and task.running and (task.asynchronous or
                                                      worker.queue[0] is task):
            worker.stop(task, reason, ending, self._clock())

    def _end_blocked(self, worker: _Worker, task: "_Task") -> None:
        """An async call cancelled _ASYNC_GRACE s ago still runs: a call holds the event
        loop (a blocking call inside it; the worker said which: _Blocked), or it caught its
        CancelledError and went on. Nothing but the worker's end stops that. The call that
        holds the loop (else this one) is charged with it; the calls that were being
        stopped end as asked; the others run again without using a retry (_bury)."""
        self._drain(worker)
        if task not in worker.queue or worker.kill_reason:
            return
        blocker = next((t for t in worker.queue if t.id == worker.blocker and t.running), task)
        others = sum(1 for t in worker.queue if t.running and not t.stopping and
                     t is not blocker)
        worker.blocked = True
        if blocker is task:
            _log.error("autocron task %s did not end %g s after it was cancelled (%s): a "
                       "blocking call inside the async def task holds its event loop, or it "
                       "caught the CancelledError and went on; worker %d is ended, and its %d "
                       "other running calls run again without using a retry", task.uuid,
                       _ASYNC_GRACE, task.stop_reason, worker.proc.pid, others)
            worker.kill(f"{task.stop_reason}, and it did not end {_ASYNC_GRACE:g} s after it "
                        "was cancelled (a blocking call inside the async def task holds its "
                        "event loop, or it caught the CancelledError): its worker was ended",
                        task, task.stop_ending)
            return
        _log.error("autocron task %s blocks the event loop of worker %d, so that task %s, "
                   "cancelled %g s ago (%s), cannot end; the worker is ended: %s fails (a "
                   "blocking call inside an async def task), %s ends as asked, and %d other "
                   "running calls run again without using a retry", blocker.uuid,
                   worker.proc.pid, task.uuid, _ASYNC_GRACE, task.stop_reason, blocker.uuid,
                   task.uuid, others)
        worker.kill("it blocked its worker's event loop (a blocking call inside the async def "
                    f"task) while the cancel of task {task.uuid} waited {_ASYNC_GRACE:g} s: its "
                    "worker was ended", blocker, WorkerLost)

    def _next_timeout(self) -> Optional[float]:
        ends = [t.stopping + _ASYNC_GRACE if t.stopping else t.started + t.timeout
                for w in self._workers for t in w.queue
                if t.running and (t.timeout or t.stopping)]
        return max(0.0, min(ends) - self._clock()) if ends else None


class _Pool(_PoolWrites, _PoolPlaces, _PoolCrew, _PoolDeadlines, _PoolLease,
            _PoolWakeups):
    """The worker processes of one database and the dispatcher that feeds them; it runs in
    the pool manager process (see _manager_main).

    Each worker holds up to _PREFETCH tasks (_PREFETCH_QUICK while tasks are quick) so that
    it never waits for the dispatcher between two tasks; a task queued behind a long one is
    taken back when another worker falls idle.
    What a round learns (starts, outcomes, tasks to put back) is kept until it is committed,
    and a worker forgets its outcomes only once the pool acknowledges them.

    Its parts, each a class of one job: _PoolWakeups (waiting), _PoolLease (its right to
    run, and outages), _PoolDeadlines (timeouts), _PoolCrew (the workers), _PoolPlaces
    (where calls go), _PoolWrites (the commit of a round's batch); here: the state they
    share, the run loop and the round.
    """

    def __init__(self, store: _Store, owner: int, notices: _Pipe,
                 spawn: Optional[Callable[..., Any]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 init: Optional[_Init] = None):
        """`spawn` and `clock` are for the tests that drive the round in-process: a factory
        of worker handles in place of _Worker (no process is started: nothing is reaped or
        signalled), and the monotonic clock the round goes by. `init`: what every worker
        runs first (_Init)."""
        self.store = store
        self._init = init or _Init()
        self._init_failures = 0        # initializers failed in a row (_initialized)
        self._spawn_worker = spawn or _Worker
        self._own_processes = spawn is None     # its workers' orphans are its children
        self._clock = clock
        self._owner = owner            # pid of the process that owns the pool (published)
        self._notices = notices        # the pipe up to the owner: finished tasks, log records
        self._notices_lock = threading.Lock()   # the control thread and the dispatcher share
        self._watched: set[Any] = set()     # ids of tasks that callers in the owner wait for
        self._workers: list[Any] = []       # _Worker, in the order they were started
        self._stopping = False         # stop() was asked for
        self._deadline = 0.0           # monotonic time when running tasks are stopped
        self._wake_path = store.wake_path or ""   # where producers' wake-ups arrive
        self._wake = self._bind_wake_socket()    # the socket they arrive on
        self._pg_listener = store.listener()      # and notifications from other machines (or None)
        self._lease_due = 0.0          # monotonic time of the next look at the others' leases
        self._lease_clock = _LeaseClock()     # shared with workers: when they may start tasks
        if not store.leased:
            self._lease_clock.set(math.inf, None)    # SQLite: until the database refuses
        self._lease_lost = threading.Event()   # the lease keeper found it taken over
        self._ending = threading.Event()       # the pool ends: so does the keeper
        self._start_log = store.start_log()    # where workers note starts (SQLite), or None
        self._dirty_slots: set[Any] = set()  # its slots whose worker died since the last commit
        self._orphaned = False         # the owner is gone: write what is known, then exit
        self._batch = _Batch()         # what it learnt and has not written yet
        self._returned: list[Any] = []      # claimed tasks handed back by a worker, to place again
        self._respawn_at = 0.0         # no new worker before this monotonic time
        self._capped = False           # more tasks wait than there may be spares (said once)
        self._respawn_delay = _RESTART_PAUSE[0]   # the pause after the next early death
        self._retry_at = 0.0           # the database is unavailable: tried again from then on
        self._outage: Optional[_Outage] = None   # since when, how long the next pause is
        self._clock_seen = 0.0         # the wall clock at the last round (a step back: below)
        self._announced: Optional[int] = None   # the highest priority of new calls heard of
        self._settings = store.settings()        # workers, result_ttl, ... as last read
        self._settings_read = self._clock()   # when
        self._ready: set[Any] = set()       # workers whose pipe the last wait found readable
        self._cancel_mark: Any = False   # the store's cancel mark when last looked at
        self._requested: dict[Any, Any] = {}     # and the withdrawals asked for by then
        self._idle = True              # the last round left nothing due: look for the next due time
        self._dry = False              # and nothing woke the pool since: no need to ask again
        self._selector = selectors.DefaultSelector()   # worker pipes, wake-ups, child ends
        self._listening = False        # is the wake socket in the selector?
        self._children = _child_signals() if self._own_processes else None
                                       # readable when a worker process ends
        self._child_ended = False      # it was: look which one
        self._news = True              # something since the last round besides starts
        self._run_time = _QUICK_TASK   # how long recent tasks ran, a moving average (s)
        if self._children is not None:
            self._selector.register(self._children, selectors.EVENT_READ)
        if self._pg_listener is not None:
            self._selector.register(self._pg_listener, selectors.EVENT_READ)

    # -- talking to the owner

    def tell_owner(self, message: Union[_Finished, _LogLine]) -> None:
        """Send the owner process a notice."""
        data = pickle.dumps(message, _PICKLE_PROTOCOL)
        with self._notices_lock, contextlib.suppress(OSError):
            self._notices.send_bytes(data)

    def watch(self, uid: str) -> None:
        """From the control thread: a caller in the owner waits for this task."""
        with self._notices_lock:
            self._watched.add(uid)
        try:
            row = self.store.result_row(uid)      # finished before the wish arrived?
        except DatabaseError:     # unavailable: the caller looks again by itself (_poll)
            return
        if row is None or row.status in _FINISHED:
            self._tell_done([uid])

    def _tell_done(self, uids: list[Any], rows: Optional[list[Any]] = None) -> None:
        with self._notices_lock:
            done = [uid for uid in uids if uid in self._watched]
            self._watched.difference_update(done)
        if done:
            self.tell_owner(_Finished(done, tuple(r for r in rows or () if r.uuid in done)))

    def orphaned(self) -> None:
        """From the control thread: the owner ended, however it ended. The dispatcher
        writes what it knows and no worker could write (outcomes of workers that died since
        they reported them) and exits; its workers then hand over what they hold. From now
        on no worker starts a task: the next pool settles what this one held, and a start
        here, which nobody would write, would run that task twice."""
        self._orphaned = True
        self._lease_clock.set(0.0, self.store.lease)
        _wake_pool(self._wake_path)

    def _leave(self) -> None:
        """The owner is gone: commit what was learnt (waiting out an unavailable database
        as long as the next pool waits for this process), then end at once, as the owner's
        end asks (the workers end through their pipes, after their own hand-over)."""
        end = time.monotonic() + _HANDOVER_WAIT - 1.0
        self._stopping = True          # no worker starts or comes back in the meantime
        # every pipe read to its end, whatever the selector last said (this process may
        # have been paused while its workers reported), and the ended workers buried
        self._ready = {w.results for w in self._workers if not w.closed}
        self._child_ended = True
        self._collect()
        while not self._batch.empty():
            try:
                self._commit([], False)
            except DatabaseError:
                if time.monotonic() >= end:
                    break
                time.sleep(min(0.2, max(0.0, self._retry_at - self._clock())))
        os._exit(0)

    def request_stop(self, timeout: float) -> None:
        """From the manager's control thread: finish within `timeout` seconds."""
        self._deadline = self._clock() + max(0.0, timeout)
        self._stopping = True
        _wake_pool(self._wake_path)

    # -- the dispatcher

    def run(self) -> None:
        try:
            if not self._begin():
                return
            self._adjust_workers()
            last_cleanup = 0.0
            while True:
                if self._orphaned:
                    self._leave()
                try:
                    if self._stopping:
                        self._wind_down()
                        if self._drained():
                            break
                    self._round()
                    if self.store.leased and (self._clock() >= self._lease_due or
                                              self._lease_lost.is_set()):
                        self._keep_lease()
                    if self._clock() - last_cleanup > _CLEANUP_INTERVAL and \
                            self._clock() >= self._retry_at:
                        last_cleanup = self._clock()
                        self._settings = self.store.settings()
                        self.store.cleanup(self.store.now(), self._settings["result_ttl"])
                    if self._clock() >= self._retry_at:
                        self.store.checkpoint()
                except DatabaseError as error:     # weather: wait it out, keep everything
                    self._unavailable(error)
                self._sleep()
        except Exception:
            _log.exception("autocron pool for %s failed; its workers stop", self.store.path)
        finally:
            self._shutdown_workers()
            self._release()

    # -- the round

    def _make_room(self) -> None:
        """A call came with a higher priority than some that workers hold and have not
        started: those go back to the database (_receive: requeued), where the next claim
        puts the new call first. A call waiting in the database never loses its place to one
        a worker merely holds."""
        announced, self._announced = self._announced, None
        heard = self._pg_listener                  # and from other machines' calls (PostgreSQL)
        if heard is not None and heard.priority is not None:
            announced = heard.priority if announced is None else max(announced, heard.priority)
            heard.priority = None
        if announced is None:
            return
        for worker in self._workers:
            for task in worker.queue:
                if not task.running and not task.returning and task.priority < announced:
                    task.outranked = True
                    self._take_back(worker, task)

    def _watch_clock(self) -> None:
        """Calls made before the wall clock stepped back become due at once (at the start
        too: the step may have come while no pool ran)."""
        now = _clock()
        if now < self._clock_seen - _CLOCK_STEP or not self._clock_seen:
            stalled = self.store.clock_went_back(now)
            if stalled and self._clock_seen:
                _log.warning("autocron: the clock stepped back by %.0f s; %d calls made before "
                             "are due now", self._clock_seen - now, stalled)
            self._news, self._dry = True, False
        self._clock_seen = now

    def _round(self) -> None:
        """Collect what the workers report; in one transaction write it and claim the next
        tasks; hand them out."""
        reachable = self._clock() >= self._retry_at    # else: an outage, wait it out
        if reachable:
            self._watch_clock()
        self._make_room()
        if reachable and self._clock() - self._settings_read > _SETTINGS_LOOK:
            self._settings_read = self._clock()        # the admin tool's
            self._settings = self.store.settings()
        self._collect()
        self._enforce_timeouts()
        if reachable:
            self._cancel_requested()
        # A start alone changes nothing that a claim needs (the worker's places were
        # counted when it got the task): claiming then would only cut batches smaller.
        news, self._news = self._news, False
        places = [] if self._stopping or not news else self._places()
        placed = self._place_returned(places) if places and self._returned else []
        # In an outage a commit is tried even with nothing to write: the one that works ends
        # it, and lets the workers start tasks again.
        pending = self._batch.due(self._clock()) or self._outage is not None
        due = (False, False)
        if places and not self._dry and self._clock() >= self._retry_at:
            due = self.store.anything_due(self.store.now())
        claimed = []
        if (pending or any(due)) and self._clock() >= self._retry_at:
            pids = [w.proc.pid for w, _ in places] if any(due) else []
            kinds = "".join(kind for _, kind in places)
            claimed = self._commit(pids, due[1], kinds)
            if pids:       # every due call it saw placed, and fewer than places: none left
                self._dry = self.store.drained
            if any(row.asynchronous for row in claimed):
                self._news = True      # room beside them: the next round fills it
        placed += [(places[row.place][0], _Task(row)) for row in claimed]
        handed: dict[Any, Any] = {}
        for worker, task in placed:
            handed.setdefault(worker, []).append(task)
        for worker, tasks in handed.items():
            worker.push(tasks, self._cancel_mark, self.store.lease)
        self._tell_acknowledged()
        if news:                       # it looked for due work: what it found counts (fewer
            self._idle = len(claimed) < max(len(places), 1)     # than asked: none is left)
            if not claimed and not placed:
                self._take_back_queued()

    def _cancel_requested(self) -> None:
        """cancel() from any process: withdraw what has not started; force: stop it."""
        if not (any(w.queue for w in self._workers) or self._returned):
            return
        mark = self.store.cancel_mark()
        if mark is None or mark != self._cancel_mark:
            self._cancel_mark, self._requested = mark, self.store.cancel_requests()
        requested = self._requested
        if not requested:
            return
        for task in [t for t in self._returned if t.id in requested]:
            self._returned.remove(task)
            self._end(task, "cancelled", "cancelled", ending=Cancelled)
        for worker in self._workers:
            for task in list(worker.queue):
                level = requested.get(task.id, 0)
                if level <= task.cancel:
                    continue
                task.cancel = level
                if task.running and level == 2:
                    self._kill(worker, task, "cancelled while running", Cancelled)
                elif task.running:
                    self._batch.refused.append(task.id)
                else:                       # the worker gives it back, or says it started
                    self._take_back(worker, task)


def _weather(error: Exception) -> bool:
    """A database error that goes away by itself: the database is unavailable for a while
    (locked by another process, a full disk, a server restarting), as opposed to one that
    refuses this data (_DataRefused) or an error of autocron's own."""
    return isinstance(error, DatabaseError) and not isinstance(error, _DataRefused)


class _Outage(NamedTuple):
    """The database has been unavailable to the pool since `since` (monotonic time)."""
    since: float
    pause: float           # before the next try
    reported: float        # when the pool last said so


def _child_signals() -> Optional[int]:
    """A descriptor that becomes readable whenever a child process ends (SIGCHLD), so that
    the dispatcher notices a worker's end by its process, not by its pipe (a task's own
    child may hold the pipe open). The manager is autocron's own process: a handler here
    touches no user code. None where signals cannot be used this way (then: polling)."""
    if not _HAS_SIGCHLD or threading.current_thread() is not \
            threading.main_thread():
        return None
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    return read_end


def _pool_processes(database: str) -> set[Any]:
    """The pids of the pool processes of `database` on this machine (by their command
    lines; an empty set without /proc)."""
    found = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit() and _pool_process_alive(int(name), database):
                found.add(int(name))
    return found


def _pool_process_alive(pid: int, database: str) -> bool:
    """Whether `pid` is still a process of a pool of `database` (and not a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
        with open(f"/proc/{pid}/stat", "rb") as file:
            zombie = file.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc (macOS): whether the pid exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True
    return not zombie and json.dumps(database).encode() in command and b"autocron" in command


class _NoticeHandler(logging.Handler):
    """In the manager: hand autocron's log records to the owner, whose logging decides."""

    def __init__(self, pool: "_Pool"):
        super().__init__()
        self._pool = pool

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._pool.tell_owner(_LogLine(record.levelno, self.format(record)))


def _manager_main(config_text: str) -> None:
    """The pool manager process: the dispatcher of one database's pool.

    It runs apart from the application so that dispatching costs the application neither
    its GIL nor its CPU. It ends when told to stop, or at once when the owner process ends
    however it ends (its control pipe closes); its workers follow through their own pipes.
    """
    config = json.loads(config_text)
    os.chdir(config["cwd"])
    sys.path[:] = config["path"]
    control = _Pipe(config["down"])
    _become_subreaper()                # before any worker: what their tasks leave comes here
    try:
        init = pickle.loads(control.recv_bytes())      # the owner's first word: _Init
    except (EOFError, OSError):
        os._exit(0)                    # the owner is gone already
    pool = _Pool(_open_store(config["database"]), config["owner"],
                 _Pipe(config["up"]), init=init)
    _log.addHandler(_NoticeHandler(pool))
    _log.setLevel(logging.DEBUG)
    _log.propagate = False

    def obey_owner() -> None:
        reloader = config.get("reloader")
        while True:
            try:
                message = pickle.loads(control.recv_bytes())
            except (EOFError, OSError):
                if reloader:          # a reload: this pool goes on (_PoolHandle.linger)
                    _outlive(reloader, pool)
                    return
                pool.orphaned()       # the owner is gone
                time.sleep(_HANDOVER_WAIT)
                os._exit(0)           # the dispatcher did not get it done: the workers do
            if type(message) is _Watch:
                pool.watch(message.uid)
            elif type(message) is _Stop:
                reloader = None
                pool.request_stop(message.timeout)

    threading.Thread(target=obey_owner, name="autocron-control", daemon=True).start()
    pool.run()
    sys.exit(0)


def _outlive(reloader: list[Any], pool: "_Pool") -> None:
    """In a manager whose owner handed the pool over and ended: the pool goes on (its
    workers run what the owner's successor stores, on the new code: _watch_code) until the
    reloader ([pid, start time]) ends (the development server was stopped); then it stops
    as stop() would. A process that got the pid since is not the reloader."""
    while True:
        time.sleep(_LINGER_LOOK)
        if _started_at(reloader[0]) != reloader[1]:
            pool.request_stop(_LINGER_STOP)
            return


def _started_at(pid: int) -> Optional[int]:
    """When a process started, in clock ticks since boot (Linux: /proc); None if there is
    no such process (or a zombie: it has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])


class _PoolHandle:
    """The owner's side of a pool: its lock, its manager process, the callers' events.

    The manager reports finished tasks (to wake callers waiting in this process) and its log
    records over a pipe; if it dies unexpectedly, a new one takes its place.
    """

    def __init__(self, store: _Store, lock: Any, init: Optional[_Init] = None):
        self.store, self._lock, self._init = store, lock, init or _Init()
        self._waiters: dict[Any, Any] = {}
        self._shipped: dict[str, _ResultRow] = {}     # uid: its row, come with its notice
        self._waiters_lock = threading.Lock()
        self._sending = threading.Lock()      # one message at a time on the control pipe
        self._stopping = False
        self._lifecycle = threading.Lock()     # stop() and a manager's restart never overlap
        parent = os.getppid()                  # see linger(): the reloader, [pid, start]
        self._reloader = [parent, _started_at(parent)]
        self._lingering = _lingers and _HAS_FLOCK and self._reloader[1] is not None
        self._start_manager()
        self._follower = threading.Thread(target=self._follow_manager,
                                          name="autocron-notices", daemon=True)
        self._follower.start()

    def _start_manager(self) -> None:
        settings = {"database": self.store.path, "owner": os.getpid()}
        if self._lingering:                   # see linger()
            settings.update(lock=self._lock.fileno(), reloader=self._reloader)
        self.manager, self._control, self._notices = _spawn("_manager_main", settings)
        self._tell_manager(self._init)     # through the pipe: no command line shows it

    def _follow_manager(self) -> None:
        """Read the manager's notices; start another manager when it dies."""
        pause = _RESTART_PAUSE[0]
        while True:
            born = time.monotonic()
            with contextlib.suppress(EOFError, OSError):
                while True:
                    self._on_notice(pickle.loads(self._notices.recv_bytes()))
            if self._stopping:
                return
            code = self.manager.wait()
            _log.error("autocron pool manager %d died (%s); starting another",
                       self.manager.pid, _exit_text(code).replace("worker died: ", ""))
            pause = _RESTART_PAUSE[0] if time.monotonic() - born > _YOUNG_MANAGER \
                else min(pause * 2, _RESTART_PAUSE[1])
            time.sleep(pause)
            with self._lifecycle:
                if self._stopping:
                    return
                self._close_pipes()
                self._start_manager()

    def _on_notice(self, message: Union[_Finished, _LogLine]) -> None:
        if isinstance(message, _LogLine):
            _log.log(message.level, message.text)
            return
        rows = {row.uuid: row for row in message.rows}
        with self._waiters_lock:
            for uid in message.uids:
                event = self._waiters.pop(uid, None)
                if event is not None:
                    if uid in rows:
                        self._shipped[uid] = rows[uid]
                    event.set()

    def shipped(self, uid: str) -> Optional[_ResultRow]:
        """The finished row that came with the notice for `uid`, if one did (once)."""
        with self._waiters_lock:
            return self._shipped.pop(uid, None)

    def waiter(self, uid: str) -> threading.Event:
        """An event set when the task finishes; the manager is asked to say so."""
        with self._waiters_lock:
            new = uid not in self._waiters
            if new:
                self._waiters[uid] = threading.Event()
            event: threading.Event = self._waiters[uid]
        if new:   # not under the lock: the thread that sets events needs it to go on
            self._tell_manager(_Watch(uid))
        return event

    def forget(self, uid: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(uid, None)
            self._shipped.pop(uid, None)

    def _tell_manager(self, message: Union[_Init, _Watch, _Stop]) -> None:
        data = pickle.dumps(message, _PICKLE_PROTOCOL)
        with self._sending, contextlib.suppress(OSError):
            self._control.send_bytes(data)

    def wake(self) -> None:
        _wake_pool(self.store.wake_path)

    def stop(self, timeout: float) -> None:
        """Let running tasks finish within `timeout` s, end the manager, release the lock."""
        if self._lingering:
            self.linger()
            return
        with self._lifecycle:
            self._stopping = True
            self._tell_manager(_Stop(timeout))
        try:
            self.manager.wait(timeout + _MANAGER_GRACE)
        except subprocess.TimeoutExpired:
            self.manager.kill()
            self.manager.wait()
        self._follower.join(5)
        self._close_pipes()
        if self._lock is not None:
            if self.manager.returncode == 0:
                self._remove_lock_file()
            self._lock.close()
        with self._waiters_lock:
            for event in self._waiters.values():
                event.set()

    def linger(self) -> None:
        """stop() in a process that a reloader restarts (_lingers): leave the pool to its
        manager and return at once. The manager holds the pool lock too (it was handed it
        at its start: _start_manager), so the pool goes on when this process ends, by a
        stop() or not at all (uvicorn ends its server process without the atexit handlers):
        the running calls finish, and the workers, replaced as the code changes
        (_watch_code), run what the process the reloader starts next stores (that process
        stands by: start() found the pool running). A reload thus never waits for a running
        call and fails none. Once the reloader ends, the manager stops as stop() would
        (_outlive)."""
        with self._lifecycle:
            self._stopping = True
        self._close_pipes()
        self._lock.close()
        with self._waiters_lock:
            for event in self._waiters.values():
                event.set()

    def _remove_lock_file(self) -> None:
        """After a clean stop, still holding the flock: remove an SQLite database's lock
        file, if the database holds no task that its start log could still speak for (one
        handed to a worker or running: see _SqliteStore.recover). A process that opened the
        file before and locks it after finds it gone (_try_lock). A server's lock
        (PostgreSQL) stays: it names the pool to settle after a crash."""
        if self.store.leased or not _HAS_FLOCK:
            return
        with contextlib.suppress(Exception):    # unreadable: the next pool reads the log
            counts, _ = self.store.counts(self.store.now(), finished=False)
            if not counts.get("queued") and not counts.get("running"):
                os.unlink(self.store.lock_path)

    def _close_pipes(self) -> None:
        for end in (self._control, self._notices):
            with contextlib.suppress(OSError):
                end.close()

    def forget_in_child(self) -> None:
        """After fork: close the owner's descriptors in the child; the pool is untouched."""
        self._close_pipes()
        if self._lock is not None:
            self._lock.close()


def _try_lock(store: _Store) -> Any:
    """The pool lock of a database: an open file holding an flock, or None if taken."""
    if not _HAS_FLOCK:  # pragma: no cover - without flock every process runs its own pool
        return io.BytesIO()            # something to close()
    if store.leased:     # a server's database: this machine's lock is in its private folder
        try:
            _runtime_folder(os.path.dirname(store.lock_path))
        except OSError as error:
            raise DatabaseError(f"{store.path}: no private folder for this machine's pool "
                                f"lock ({error}); set XDG_RUNTIME_DIR or TMPDIR to a private "
                                "folder with a short path", store.path) from None
    for _ in range(10):
        fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        file = os.fdopen(fd, "r+b")
        try:
            _fcntl.flock(file.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError:
            file.close()
            return None
        # The owner's clean stop removes the file (_remove_lock_file): a lock taken on a
        # file opened before that is no lock; the file there now is the one to lock.
        held = os.fstat(file.fileno())
        with contextlib.suppress(OSError):
            there = os.stat(store.lock_path)
            if (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
                return file
        file.close()
    return None


# ==============================================================================================
# Public API
# ==============================================================================================


class _Job(NamedTuple):
    """A cron job as this process declared it (cron())."""
    schedule: CronExpression
    func: Callable[..., Any]
    catch_up: bool
    declared: Optional[str]          # the module whose code called cron()
    queue: str = _DEFAULT_QUEUE      # its runs' queue


class _State:
    """What autocron knows in this process: the active store and, if it owns it, the pool."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.store: Optional[_Store] = None        # set while active (start() .. stop())
        self.last_store: Optional[_Store] = None   # for get_results() after stop()
        self.pool: Optional[_PoolHandle] = None     # set while this process owns the pool
        self.standby: Optional[threading.Event] = None
        self.crons: dict[Any, Any] = {}                      # name -> _Job
        self.readers: dict[Any, Any] = {}                    # database key -> _Store (database=)
        self.init: Optional[_Init] = None          # start()'s initializer (_Init)


_state = _State()


def start(database: Optional[_Database] = None, workers: Optional[int] = None,
          synchronous: Optional[str] = None, initializer: Optional[Callable[..., Any]] = None,
          initargs: Iterable[Any] = (), async_concurrency: Optional[int] = None,
          queues: Optional[Iterable[str]] = None) -> bool:
    """Make autocron active in this process and start the worker pool of `database`.

    `database` is an SQLite file (created if missing) or a postgresql:// URL (psycopg 3:
    pip install "psycopg[binary]"; every machine then runs its own pool); None takes
    $AUTOCRON_DATABASE, else "autocron.db". Returns True when this process started the pool,
    False when a pool for the database already runs on this machine (in this or another
    process; this process then only enqueues, and takes the pool over if its owner ends).
    `workers` is stored in the database for later starts; None keeps the stored number
    (default 1); 0 makes this process one that only enqueues: it never runs or takes over a
    pool, and stores nothing. `synchronous` is stored likewise: "normal" (the default: a
    committed call survives a crash of the application) or "full" (it also survives power
    loss or an OS crash, at a cost per call). Starting twice is harmless.

    `initializer(*initargs)` runs in every worker before its first task, as in
    ProcessPoolExecutor (after django.setup() where DJANGO_SETTINGS_MODULE is set); it
    travels like a task's function and never counts against a task's timeout. If it raises
    or runs past 60 s, no worker starts for a pause (1 s, doubling up to 5 minutes) while
    calls wait; the log, `autocron info` and the dashboard say why.

    `async_concurrency`: how many async def calls one worker runs at once on its event loop
    (default 100; stored like `workers`). A worker runs either one synchronous call or up
    to that many async ones, never both at once.

    `queues`: the names of the queues this process's pool serves (None: all); a machine with
    a GPU may serve ["gpu"] alone.
    """
    if _IN_WORKER:      # a module that calls start() when imported, imported by a worker:
        return False    # its delayed calls run directly there, it needs no store or pool
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise ValueError(f"workers must be an int, 1 or more (or 0: this process only "
                         f"enqueues), got {workers!r}")
    if async_concurrency is not None and (
            isinstance(async_concurrency, bool) or not isinstance(async_concurrency, int) or
            not 1 <= async_concurrency <= _MOST_ASYNC):
        raise ValueError(f"async_concurrency must be an int from 1 to {_MOST_ASYNC} (how many "
                         f"async def calls one worker runs at once; None keeps the stored "
                         f"number, default 100), got {_shorten(repr(async_concurrency), 40)}")
    if database is None:
        database = os.environ.get("AUTOCRON_DATABASE") or "autocron.db"
    producer = workers == 0
    stored = {"workers": None if producer else workers, "synchronous": synchronous,
              "async_concurrency": async_concurrency}
    init = _initializer_call(initializer, initargs)
    if queues is not None:
        if isinstance(queues, str) or not isinstance(queues, Iterable):
            raise ValueError(f"queues takes a list of queue names (None: all), got "
                             f"{queues!r}")
        served = tuple(dict.fromkeys(_check_queue(name) for name in queues))
        if not served:
            raise ValueError("queues takes a list of queue names (None: all), got an empty "
                             "one: a pool that serves no queue runs nothing")
        init = (init or _Init())._replace(queues=served)
    global _watch_sources, _lingers
    _watch_sources = _reloading(sys.argv, os.environ)
    _lingers = _restarted_by_reloader(sys.argv, os.environ, _command_line(os.getppid()))
    if synchronous is not None and synchronous not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be 'normal' (a call survives a crash of the "
                         f"application) or 'full' (also power loss), got {synchronous!r}")
    with _state.lock:
        if _state.store is not None:
            if _state.store.path != _database_key(database):
                raise AutocronError(f"autocron already runs on {_state.store.path}; call "
                                    "autocron.stop() before starting on another database")
            _store_settings(_state.store, stored)
            if _state.pool is None and _state.standby is None and not producer:
                _begin_standby(_state.store)             # a forked child's start()
            return False
        store, last_store = _open_store(database), _state.last_store
        try:
            _store_settings(store, stored)
            if store.settings()["disabled"]:
                _log.info("autocron is disabled in %s; calls run synchronously", store.path)
                return False
            _state.store = _state.last_store = store
            _state.init = init
            for name, job in _state.crons.items():
                store.register_cron(name, job.schedule, job.func, job.catch_up,
                                    _next_due(job.schedule, store.now()), job.declared,
                                    job.queue)
            if producer:
                return False
            if _become_owner(store):
                return True
            _begin_standby(store)
            return False
        except BaseException:          # all or nothing: the next start() begins afresh
            if _state.standby is not None:
                _state.standby.set()
            _state.store = _state.standby = None
            _state.last_store = last_store
            store.close()
            raise


def _store_settings(store: _Store, given: dict[str, Any]) -> None:
    """Store the settings that start() was given (None: keep the stored one); a running
    pool reads them when woken."""
    changed = {name: value for name, value in given.items() if value is not None}
    for name, value in changed.items():
        store.set_setting(name, value)
    if changed:
        _wake_pool(store.wake_path)


def _reloading(argv: list[Any], environ: Any) -> bool:
    """Whether this process runs a reloading development server or runs under one: Django's
    runserver (its reloader or its served child), uvicorn --reload, flask --debug or
    --reload (werkzeug's reloader), or AUTOCRON_RELOAD=1. Its pool's workers then watch
    their source files (_watch_code)."""
    if environ.get("AUTOCRON_RELOAD") == "1" or environ.get("RUN_MAIN") == "true" or \
            environ.get("WERKZEUG_RUN_MAIN") == "true":
        return True
    program = argv[0] if argv else ""      # a console script, or python -m's __main__.py
    if len(argv) > 1 and argv[1] == "runserver":
        return "--noreload" not in argv
    if "uvicorn" in program or "flask" in program:
        return "--reload" in argv or "--debug" in argv and "--no-reload" not in argv
    return False


def _restarted_by_reloader(argv: list[Any], environ: Any,
                           parent: Optional[list[str]]) -> bool:
    """Whether this process is the one a reloader starts again after an edit, as its parent
    (whose command line is `parent`; None: unknown): Django's and werkzeug's served child,
    whose parent runs the same command (a program that such a child starts inherits the
    variable, not the parent), or uvicorn --reload's server process (a multiprocessing
    child with the reloader's command line). Its pool then outlives it until that parent
    ends (_PoolHandle.linger). AUTOCRON_RELOAD=1 alone does not say that the parent is a
    reloader: such a pool stops with its process, as any other."""
    if parent is None or not argv:
        return False
    if environ.get("RUN_MAIN") == "true" or environ.get("WERKZEUG_RUN_MAIN") == "true":
        own = [os.path.basename(argv[0])] + list(argv[1:])
        tail = parent[len(parent) - len(own):]
        return len(parent) > len(own) and [os.path.basename(tail[0])] + tail[1:] == own
    import multiprocessing
    born_of = multiprocessing.parent_process()
    return _reloading(argv, environ) and born_of is not None and born_of.pid == os.getppid()


def _command_line(pid: int) -> Optional[list[str]]:
    """The command line of a process (Linux: /proc); None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return [os.fsdecode(part) for part in file.read().split(b"\0")[:-1]]
    except OSError:
        return None


def _initializer_call(initializer: Optional[Callable[..., Any]],
                      initargs: Iterable[Any]) -> Optional[_Init]:
    """start()'s initializer as what a worker runs first (_Init); None without one."""
    if initializer is None:
        return None
    if not callable(initializer):
        raise TypeError(f"initializer must be a function, called in every worker before its "
                        f"first task, got {initializer!r}")
    if isinstance(initargs, (str, bytes)) or not isinstance(initargs, Iterable):
        raise TypeError(f"initargs must be a tuple of the initializer's arguments, got "
                        f"{initargs!r}")
    ref, shipped = _reference(initializer)
    record = _dump_record(initializer, ref, tuple(initargs), {})
    return _Init(record, shipped.payload if shipped is not None else None)


def _become_owner(store: _Store) -> bool:
    lock = _try_lock(store)
    if lock is None:
        return False
    try:
        _state.pool = _PoolHandle(store, lock, _state.init)
    except BaseException:
        lock.close()                   # or this process could never take the pool again
        raise
    return True


def _begin_standby(store: _Store) -> None:
    _state.standby = threading.Event()
    threading.Thread(target=_stand_by, args=(store, _state.standby),
                     name="autocron-standby", daemon=True).start()


def _stand_by(store: _Store, stopped: threading.Event) -> None:
    """In a process whose start() found a pool running: take it over when its owner ends."""
    while not stopped.wait(1.0):
        with _state.lock:
            if stopped.is_set() or _state.store is not store:
                return
            try:
                if _become_owner(store):
                    _log.warning("autocron: this process (pid %d) took over the pool of %s",
                                 os.getpid(), store.path)
                    return
            except Exception:     # the lock is released again; try at the next look
                _log.exception("autocron: this process (pid %d) could not take over the "
                               "pool of %s", os.getpid(), store.path)


def stop(timeout: float = 10.0) -> None:
    """Stop this process's pool and make autocron inactive here.

    Running tasks get `timeout` seconds to finish; then their workers are terminated and the
    tasks recorded as failed ("stopped"). Waiting tasks stay in the database for the next
    start(). Harmless without start().
    """
    with _state.lock:
        pool, standby = _state.pool, _state.standby
        _state.store = _state.pool = _state.standby = None
    if standby is not None:
        standby.set()
    if pool is not None:
        pool.stop(timeout)
        with contextlib.suppress(Exception):    # a database gone: nothing more to say
            counts, _ = pool.store.counts(pool.store.now(), finished=False)
            left = counts.get("waiting", 0) + counts.get("queued", 0)
            if left:
                _tell(f"{left} call{' is' if left == 1 else 's are'} still waiting in "
                      f"{pool.store.path}; they run when a pool runs for it (the next start())")


def _after_fork_in_child() -> None:
    """A forked child is not the owner: it drops the parent's pool descriptors. If the parent
    was active, so is the child: its calls go to the same database (a web server that
    imported the application before forking its workers); it stands by to take the pool
    over only once it calls start() itself (no thread is started in a fork handler)."""
    global _state
    parent = _state
    if parent.pool is not None:
        parent.pool.forget_in_child()
    _state = _State()
    _state.crons, _state.store, _state.last_store = parent.crons, parent.store, parent.last_store


if _HAS_FORK_HOOKS:
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop)


def _current_store() -> Optional[_Store]:
    """The database of this process: the active one, the last one, or ./autocron.db."""
    default = os.environ.get("AUTOCRON_DATABASE") or "autocron.db"
    if _state.store is None and _state.last_store is None and (
            _is_postgres(default) or os.path.exists(default)):
        _state.last_store = _open_store(default)     # a notebook after a kernel restart
    return _state.store or _state.last_store


def _reading_store(database: Optional[_Database]) -> Optional[_Store]:
    """The store of `database` for get_result(s): this process's (None: see _current_store),
    one opened before, or the database opened now; None if there is no such database."""
    if database is None:
        return _current_store()
    key = _database_key(database)
    for store in (_state.store, _state.last_store, _state.readers.get(key)):
        if store is not None and store.path == key:
            return store
    try:
        store = _state.readers[key] = _open_store(database, existing=True)
    except FileNotFoundError:
        return None
    return store


_KEEP: Any = object()       # limit()'s keyword left out: the stored value stays


def limit(queue: str, *, concurrency: Optional[int] = _KEEP, rate: Optional[str] = _KEEP,
          database: Optional[_Database] = None) -> dict[str, Any]:
    """Limit a queue, for every process and machine of the database, across restarts:
    `concurrency` (at most that many of its calls running at once), `rate` ("N/second",
    "N/minute" or "N/hour", or N/s, N/m, N/h: at most N starts in any window of that
    length). A keyword left out keeps the stored value; None lifts that limit. `database`:
    given, else this process's, else the default. Returns the queue's limits now,
    {"concurrency": ..., "rate": ...}."""
    store = _open_store(database) if database is not None else \
        _current_store() or _open_store(os.environ.get("AUTOCRON_DATABASE") or "autocron.db")
    return _set_limits(store, queue, concurrency, rate)


def _queues_shown(store: _Store) -> dict[str, Any]:
    """{queue: its waiting and running calls, the calls started in the last minute (their
    last attempt), its concurrency and rate limits}, of the queues with unfinished calls,
    starts in the last minute or limits."""
    since = store.now() - 60
    shown, limits = store.queue_counts(since), store.limits()
    for name, started in store.queue_starts(since).items():
        shown.setdefault(name, {"waiting": 0, "running": 0, "started": 0})["started"] += started
    for name in limits:
        shown.setdefault(name, {"waiting": 0, "running": 0, "started": 0})
    for name, counts in shown.items():
        counts["started_last_minute"] = counts.pop("started")
        found = limits.get(name)
        counts["concurrency"] = found and found.concurrency
        counts["rate"] = found and _rate_text(found.rate, found.per)
    return dict(sorted(shown.items()))


def _set_limits(store: _Store, queue: str, concurrency: Any, rate: Any) -> dict[str, Any]:
    """limit() on `store`."""
    _check_queue(queue)
    given: dict[str, Any] = {}
    if concurrency is not _KEEP:
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(
                concurrency, int) or not 1 <= concurrency <= _LARGEST_INT):
            raise ValueError(f"concurrency must be a whole number, 1 or more, or None (no "
                             f"limit); got {_shorten(repr(concurrency), 60)}")
        given["concurrency"] = concurrency
    if rate is not _KEEP:
        given["rate"], given["per"] = (None, None) if rate is None else _parse_rate(rate)
    stored = store.set_limit(queue, given) if given else store.limits().get(queue)
    if not store.wakes_pools:       # a lifted or raised limit may let calls run now
        _wake_pool(store.wake_path)
    return {"concurrency": stored and stored.concurrency,
            "rate": stored and _rate_text(stored.rate, stored.per)}


def get_results(limit: Optional[int] = None, status: Optional[str] = None,
                database: Optional[_Database] = None) -> "_ResultList":
    """The results stored in the database, newest first (also of earlier runs): at most
    `limit` of them (None: all), only those with `status` (None: any): "waiting",
    "running", "ready", "error" or "cancelled". `database`: another than this process's
    (None: the one of start(), else $AUTOCRON_DATABASE or ./autocron.db).

    The list renders as a table in Jupyter and in a terminal (the first 50 rows).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or
                              limit < 0):
        raise ValueError(f"limit must be a whole number, 0 or more (None: all results), got "
                         f"{limit!r}")
    if status is not None and (not isinstance(status, str) or status not in _STATUSES):
        raise ValueError(f"status must be one of {', '.join(map(repr, _STATUSES))} (None: "
                         f"any), got {status!r}")
    store = _reading_store(database)
    if store is None:
        return _ResultList()
    return _ResultList(Result(row.uuid, store, row) for row in store.result_rows(limit, status))


def get_result(uuid: str,
               database: Optional[_Database] = None) -> "Optional[Result[Any]]":
    """The result with this id, or None (deleted after its time-to-live, or never stored;
    which database was read is then said). `uuid` may be the start of an id, or the short
    id that tables show, if it names one task (else ValueError). `database` as for
    get_results()."""
    store = _reading_store(database)
    if store is None:
        shown = os.fspath(database) if database is not None else (
            os.environ.get("AUTOCRON_DATABASE") or "autocron.db")
        _tell(f"no task {uuid} in {shown}: there is no such database here (pass database= "
              "to read another)")
        return None
    uuid = str(uuid).strip().lower()    # as it was copied: ids are lower-case hex
    row = store.result_row(uuid)
    if row is None:
        named = store.ids_named(uuid, 3)
        if len(named) > 1:
            many = f"{len(named)} or more" if len(named) == 3 else str(len(named))
            raise ValueError(f"{uuid!r} is the start of the ids of {many} tasks; give more of "
                             f"it (as shown: {_short_id(named[0])})")
        if named:
            uuid, row = named[0], store.result_row(named[0])
    if row is None:
        ttl = store.settings()["result_ttl"]
        _tell(f"no task {uuid} in {store.path} (" + (
            f"finished results are deleted after the result time-to-live, {ttl:g} s)" if ttl
            else "finished results are kept until purged)"))
        return None
    return Result(uuid, store, row)


def progress(done: float, total: Optional[float] = None, text: str = "") -> None:
    """Inside a task: report how far it got (`done` of `total`, and a line of `text`), shown
    by Result.progress, wait(), the notebook and the dashboard. Reports reach the database a
    few times a second at most, the last one when the task ends. Outside a task (and where
    autocron is inactive) it does nothing."""
    for name, value in (("done", done), ("total", total)):
        if value is not None and (isinstance(value, bool) or
                                  not isinstance(value, (int, float)) or value != value):
            raise TypeError(f"progress() takes numbers for done and total (total may be None), "
                            f"got {name}={value!r}")
    if done is None:
        raise TypeError("progress() takes numbers for done and total (total may be None), "
                        "got done=None")
    for name, value in (("done", done), ("total", total)):
        try:
            finite = value is None or math.isfinite(value)
        except OverflowError:      # an int past what a float holds
            finite = False
        if not finite:
            raise ValueError(f"progress() takes finite numbers, got {name}="
                             f"{_shorten(repr(value), 40)}")
    if not isinstance(text, str):
        raise TypeError(f"progress() takes a str for text, got {type(text).__name__}")
    task = _task_now()
    if task is not None and _IN_WORKER:
        _reporter.report(task.id, json.dumps([done, total, _shorten(text,
                                                                    _MAX_PROGRESS_TEXT)]))


def current() -> "Optional[Result[Any]]":
    """The call that this code runs in (in a task, its threads too); None outside one."""
    task = _task_now()
    if task is None or not _IN_WORKER or _worker_store is None:
        return None
    return Result(task.uuid, _worker_store())


def wait(results: "Iterable[Result[Any]]", timeout: Optional[float] = None) -> list[Any]:
    """Wait for several results and return their values in order.

    Shows a live progress line: an updating display in Jupyter, a line on stderr in a
    terminal, nothing when output goes elsewhere. Raises TaskError for the first failed task
    (in order) and TimeoutError after `timeout` seconds.
    """
    results = list(results)
    end = None if timeout is None else time.monotonic() + timeout
    progress = _Progress(len(results))
    pending = list(results)
    failed = 0
    with _task_waits(), contextlib.closing(progress):   # in a task: one wait for the pool
        while True:
            # the finished ones at the front (a read each); the first unfinished is waited for
            while pending and not pending[0]._unfinished():
                failed += pending.pop(0).has_error
            progress.show(len(results) - len(pending), failed)
            if not pending:
                break
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"{len(pending)} of {len(results)} tasks did not finish "
                                   f"within {timeout} s")
            pending[0]._wait(_WAITER_LOOK if left is None else min(_WAITER_LOOK, left))
    return [r._value() for r in results]


class _Progress:
    """A progress line for wait(): a Jupyter display, a terminal line, or nothing."""

    def __init__(self, total: int):
        self.total, self.started = total, time.monotonic()
        self._handle = self._stream = None
        self._last = ""
        shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
        display = sys.modules.get("IPython.display")
        if getattr(shell, "kernel", None) is not None and display is not None:
            self._display = display
            self._handle = display.display(display.HTML(self._html(0, 0)), display_id=True)
        elif getattr(sys.stderr, "isatty", lambda: False)():
            self._stream = sys.stderr

    def _text(self, done: int, failed: int) -> str:
        width = 30
        filled = width * done // self.total if self.total else width
        failures = f", {failed} failed" if failed else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} done"
                f"{failures}, {time.monotonic() - self.started:.1f} s")

    def _html(self, done: int, failed: int) -> str:
        return (f'<progress value="{done}" max="{max(self.total, 1)}" style="width: 20em">'
                f"</progress> <code>{_h(self._text(done, failed)[33:])}</code>")

    def show(self, done: int, failed: int) -> None:
        text = self._text(done, failed)
        if text == self._last:
            return
        self._last = text
        if self._handle is not None:
            self._handle.update(self._display.HTML(self._html(done, failed)))
        elif self._stream is not None:
            self._stream.write("\r" + text)
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()


def _complete(value: Any) -> Any:
    """The value of a call run here: a coroutine (an async def function) is run to its end,
    in a thread of its own if this one runs an event loop already (a notebook's)."""
    if not isinstance(value, types.CoroutineType):
        return value
    import asyncio          # costs milliseconds at import: only an async call pays
    import concurrent.futures
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(value)
    with concurrent.futures.ThreadPoolExecutor(1, "autocron-async") as thread:
        return thread.submit(asyncio.run, value).result()


_said = threading.local()      # what a thread has said in the log already (once is enough)


class _ReadAhead:
    """The ids of the calls this process stored lately on one database, in order, and rows
    of finished calls among them read ahead: a caller that waits for many calls in turn
    ([r.get() for r in results]) reads the next _AHEAD with each Result's first read, instead
    of a read each, where a read costs a round trip (PostgreSQL; SQLite's own read cost less
    than the bookkeeping: 3,000 calls a round ran 5% slower with it)."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Know nothing (a forked child: a lock another thread held stays held there)."""
        self._lock = threading.Lock()
        self._store: Optional[_Store] = None   # whose calls (another's forgets them all)
        self._batches: collections.deque[list[str]] = collections.deque()   # stored since
                                                # the last read, in order
        self._batched = 0                       # ... how many ids they hold
        self._ids: list[str] = []               # the last _AHEAD_KEPT to 2 * _AHEAD_KEPT
        self._place: dict[str, int] = {}        # id -> its place in _ids + _dropped
        self._dropped = 0
        self._rows: dict[str, _ResultRow] = {}  # read ahead, not taken yet (the last
                                                # 10 * _AHEAD)

    def stored(self, store: _Store, uids: list[str]) -> None:
        """Calls stored, in order: kept as they are (the Results' own ids) until a read."""
        if not store.remote:
            return
        with self._lock:
            if store is not self._store:
                self._store, self._ids, self._place, self._dropped, self._rows = \
                    store, [], {}, 0, {}
                self._batches.clear()
                self._batched = 0
            self._batches.append(uids)
            self._batched += len(uids)
            while self._batched - len(self._batches[0]) >= _AHEAD_KEPT:   # newer ones enough
                self._batched -= len(self._batches.popleft())

    def _index(self) -> None:
        """Place the ids of the calls stored since the last read (holding the lock)."""
        for uids in self._batches:
            for uid in uids[-_AHEAD_KEPT:]:
                if uid not in self._place:      # a call with a key already held: its id
                    self._place[uid] = self._dropped + len(self._ids)
                    self._ids.append(uid)
            if len(self._ids) > 2 * _AHEAD_KEPT:
                cut = len(self._ids) - _AHEAD_KEPT
                for uid in self._ids[:cut]:
                    del self._place[uid]
                self._ids, self._dropped = self._ids[cut:], self._dropped + cut
        self._batches.clear()
        self._batched = 0

    def read(self, store: _Store, uid: str) -> Optional[_ResultRow]:
        """The row of `uid` (result_row), with the finished rows of the calls stored after
        it read ahead, if it is one of them; a row read ahead before is taken, unread."""
        if store is not self._store:
            return store.result_row(uid)
        with self._lock:
            self._index()
            row = self._rows.pop(uid, None)
            place = self._place.get(uid) if row is None else None
            start = 0 if place is None else place - self._dropped + 1
            ahead = [] if place is None else [other for other in self._ids[start:start + _AHEAD]
                                              if other not in self._rows]
        if row is not None or not ahead:
            return row or store.result_row(uid)
        row, rows = store.result_row_ahead(uid, ahead)
        with self._lock:
            self._rows.update((other.uuid, other) for other in rows)
            extra = len(self._rows) - 10 * _AHEAD           # the oldest go
            for other in list(itertools.islice(self._rows, max(0, extra))):
                del self._rows[other]
        return row


_read_ahead = _ReadAhead()
if _HAS_FORK_HOOKS:
    os.register_at_fork(after_in_child=_read_ahead.forget)


class Result(Generic[_T]):
    """The handle of one delayed call: poll it, block on it or await it. `waiting` reads the
    database; `get(timeout)` blocks and returns the value or raises `TaskError`; `await
    result` does the same without blocking an event loop."""

    __slots__ = ("uuid", "_store", "_row", "_transaction")

    def __init__(self, uuid: str, store: Optional[_Store] = None,
                 row: Optional[_ResultRow] = None, transaction: Any = None):
        self.uuid = uuid
        self._store = store
        self._row = row
        self._transaction = transaction  # the caller's connection it was stored in, if any

    def __copy__(self) -> "Result[_T]":
        return Result(self.uuid, self._store, self._row, self._transaction)

    def __deepcopy__(self, memo: dict[Any, Any]) -> "Result[_T]":
        return self.__copy__()      # a handle: its store and the caller's connection shared

    def __reduce__(self) -> tuple[Any, ...]:
        """A Result pickles as its id (a task's return value): unpickled, it reads the
        database of the process that unpickles it. In a call's arguments it is a dependency
        (_CallPickler), unless an object around it pickles itself by other means."""
        if getattr(_pickling, "depth", 0):
            raise TypeError(f"the Result {self.uuid} is inside an object that pickles itself "
                            "(its own __reduce__ or __getstate__ returning bytes), where it "
                            "cannot be a dependency: pass it in the arguments themselves (a "
                            "list, a dict, a dataclass) or pass its id (result.uuid)")
        return (_result_handle, (self.uuid,))

    @classmethod
    def _run_here(cls, func: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[Any, Any]) -> "Result[Any]":
        """Inactive autocron: run the call synchronously, as a finished Result."""
        started = _clock()
        try:
            value, status, error = _complete(func(*args, **kwargs)), "ready", None
        except Exception as exc:
            value, status, error = None, "error", json.dumps(_error_info(exc))
        row = _ResultRow(_new_uuid(), _function_name(func), _call_text(args, kwargs),
                         status, started, started, _clock(), value, error, pickled=False)
        return cls(row.uuid, None, row)

    def _fetch(self) -> _ResultRow:
        """The row, read again while the task is not finished. A row that is gone (deleted
        after its time-to-live) reads as an error that says so: the outcome is unknown."""
        row = self._row
        if row is not None and (row.status in _FINISHED or self._store is None):
            return row
        fresh = None if self._store is None else self._store.result_row(self.uuid) \
            if row is not None else _read_ahead.read(self._store, self.uuid)   # a first read
        if fresh is None and self._transaction is not None:    # options(connection=...)
            if _in_transaction(self._transaction):
                return row or _ResultRow(self.uuid, "?", "", "waiting", None, None, None,
                                         None, None)          # not committed yet
            fresh = _ResultRow(self.uuid, row.name if row else "?", row.args if row else "",
                               "cancelled", None, None, None, None, json.dumps(_failure(
                                   "its transaction rolled back", Cancelled)))
        if fresh is None:
            fresh = _ResultRow(self.uuid, "?", "", "error", None, None, None, None,
                               json.dumps(_failure("the result is no longer in the database "
                                                   "(deleted after its time-to-live)")))
        self._row = fresh
        return fresh

    # -- status

    @property
    def status(self) -> str:
        """"waiting", "running", "ready", "error" or "cancelled"."""
        status = self._fetch().status
        # handed over and not started, or waiting for its dependencies
        return "waiting" if status in ("queued", "blocked") else status

    @property
    def waiting(self) -> bool:
        """True while the task has not finished (reads the database)."""
        return self.status in ("waiting", "running")

    is_waiting = waiting

    def is_ready(self) -> bool:
        """True once the task finished, with a value or an error."""
        return not self.waiting

    @property
    def has_error(self) -> bool:
        return self.status in ("error", "cancelled")

    @property
    def function_result(self) -> Optional[_T]:
        """The returned value, or None while waiting or after an error."""
        row = self._fetch()
        if row.status != "ready" or row.value is None:
            return None
        value: _T = pickle.loads(row.value) if row.pickled else row.value
        return value

    result = function_result

    def _error(self) -> dict[Any, Any]:
        text = self._fetch().error
        return json.loads(text) if text else {}

    @property
    def error_message(self) -> str:
        """The exception as "Type: message" followed by the remote traceback; "" if none."""
        error = self._error()
        if not error:
            return ""
        head = f"{error['type']}: {error['message']}" if error["type"] else error["message"]
        return f"{head}\n\n{error['traceback']}" if error["traceback"] else head

    @property
    def output(self) -> str:
        """What the task printed (stdout and stderr), the last 64 KiB."""
        return self._fetch().output or ""

    @property
    def progress(self) -> Optional[tuple[Any, Any, str]]:
        """(done, total, text) as the task last reported it (autocron.progress()), or None."""
        state = self._store.call_state(self.uuid) if self._store is not None else None
        if state is None or state[1] is None:
            return None
        done, total, text = json.loads(state[1])
        return done, total, text

    @property
    def key(self) -> Optional[str]:
        """The call's unique key (options(key=...)), or None."""
        state = self._store.call_state(self.uuid) if self._store is not None else None
        return None if state is None else state[0]

    @property
    def queue(self) -> str:
        """The call's queue ("default" unless delay(), cron() or options() named one)."""
        state = self._store.call_state(self.uuid) if self._store is not None else None
        return _DEFAULT_QUEUE if state is None else str(state[2])

    # -- waiting

    def get(self, timeout: Optional[float] = None) -> _T:
        """Block until finished; return the value or raise TaskError (or TimeoutError)."""
        if self._wait(timeout):
            return self._value()
        name = self._row.name if self._row is not None else "?"   # read by the wait
        text = f"task {self.uuid} ({name}) did not finish within {timeout} s"
        with contextlib.suppress(Exception):    # the database may be what is down
            if self._store is not None and self.status == "waiting" and \
                    not self._store.pool_running():
                text += (f", and no pool is running for {self._store.path}: call "
                         "autocron.start() in a process that runs the workers (workers=0 "
                         "only stores calls)")
        raise TimeoutError(text)

    def _value(self) -> _T:
        if self.status == "ready":
            return cast(_T, self.function_result)
        error = self._error()
        kind = error.get("type", "")
        # an ending autocron states has no traceback; one with a traceback is the task's own
        # exception, though it be a TaskTimeout that an inner get() raised
        ending = Cancelled if self.status == "cancelled" else TaskError \
            if error.get("traceback") else _ENDINGS.get(kind, TaskError)
        raise ending(error.get("message", self.status), kind, error.get("traceback", ""),
                     self.uuid)

    def _wait(self, timeout: Optional[float]) -> bool:
        if self._transaction is not None and _in_transaction(self._transaction) and \
                self.status == "waiting" and self._store is not None and \
                self._store.result_row(self.uuid) is None:
            raise RuntimeError(f"the call {self.uuid} is stored in your open transaction, and "
                               "no worker can see it before that commits: commit, then wait")
        if _IN_WORKER:
            _check_wait_in_task(self)
            with _task_waits():             # its pool keeps a spare worker meanwhile
                return self._poll(timeout)
        pool = _state.pool
        if pool is None or self._store is None or pool.store.path != self._store.path:
            return self._poll(timeout)
        if not self._unfinished():
            return True
        try:      # the manager looks once more when it hears of the wait (_Pool.watch)
            return self._poll(timeout, pool.waiter(self.uuid), looked=True, pool=pool)
        finally:
            pool.forget(self.uuid)

    def _poll(self, timeout: Optional[float], event: Optional[threading.Event] = None,
              looked: bool = False, pool: Optional[_PoolHandle] = None) -> bool:
        """Wait until finished: on the event the pool in this process sets when the task
        is done (looking again every _WAITER_LOOK s: a restarted pool settles old tasks without
        events), or by reading the database, backing off, when another process runs it.
        `looked`: the caller just found it unfinished. `pool`: the event's; its notice may
        bring the finished row (_Finished.rows). A set event stays set: then a new watch (an
        attempt that runs again) or, once its pool stops, reads backing off."""
        end = None if timeout is None else time.monotonic() + timeout
        pauses = _pauses()
        while looked or self._unfinished():
            if event is not None and event.is_set() and pool is not None:
                row = pool.shipped(self.uuid)      # told before this look: the row came
                self._row = row or self._row       # with the notice, or is read now
                if row is not None or looked:
                    looked = False
                    continue
                event = pool.waiter(self.uuid)     # told, and not finished
                event = None if event.is_set() else event
            looked = False
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            if event is not None:
                event.wait(_WAITER_LOOK if left is None else min(left, _WAITER_LOOK))
                row = pool.shipped(self.uuid) if pool is not None else None
                if row is not None:
                    self._row = row
            else:
                time.sleep(next(pauses) if left is None else min(next(pauses), left))
        return True

    def __await__(self) -> Generator[Any, None, _T]:
        import asyncio      # costs milliseconds at import: only an awaiting caller pays
        pauses = _pauses()
        if _IN_WORKER:
            _check_wait_in_task(self, blocking=False)
        with _task_waits():         # in a task: its pool keeps a spare worker meanwhile
            while self._unfinished():
                yield from asyncio.sleep(next(pauses)).__await__()
        return self._value()

    def _unfinished(self) -> bool:
        """`waiting` for a caller that waits: a database that cannot be read for a while (a
        full disk, a server restarting) is waited out, and said once in the log."""
        try:
            waiting = self.waiting
        except DatabaseError as error:
            if not getattr(_said, "outage", False):
                _said.outage = True
                _log.warning("autocron: waiting for task %s, whose database cannot be read "
                             "now; waiting on: %s", self.uuid, error)
            return True
        _said.outage = False
        return waiting

    @property
    def attempts(self) -> int:
        """How many times the task has been started (more than 1 after retries)."""
        return self._fetch().attempts

    def cancel(self, force: bool = False) -> bool:
        """Withdraw a waiting task; with `force`, also stop a running one (a synchronous
        call's worker is terminated and replaced; an async call's coroutine is cancelled, its
        worker goes on). True if it took effect: the status is then "cancelled".
        """
        if self._store is None:
            return False
        if _withdraw(self._store, self.uuid):
            return True
        if not self._store.request_cancel(self.uuid, force):   # a worker holds it
            return False
        _wake_pool(self._store.wake_path)
        end, pauses = time.monotonic() + _CANCEL_WAIT, _pauses(most=0.005)
        while self._store.cancel_pending(self.uuid) and self.waiting and \
                time.monotonic() < end:
            time.sleep(next(pauses))
        return self.status == "cancelled"

    def __repr__(self) -> str:
        if getattr(_texting, "on", False):      # in a call's text: its id
            return f"<Result {self.uuid}>"
        info = _summary(self)
        text = (f"<Result {_short_id(info['id'])} {info['function']}({info['args']}) "
                f"{info['status']}")
        if info["status"] == "running":
            text += _progress_text(self.progress)
        if info["value"]:
            text += f": {info['value']}"
        if info["output"]:
            text += f" | output: {_shorten(info['output'].rstrip(), 60, tail=True)!r}"
        return text + ">"

    def _repr_html_(self) -> str:
        info = _summary(self)
        row = (f"<b>{_h(info['function'], False)}</b>({_h(info['args'], False)}) "
               f"{_status_badge(info['status'])} <code>{_h(info['value'], False)}</code>")
        if info["took"]:
            row += f" <small>in {info['took']}</small>"
        reported = self.progress if info["status"] == "running" else None
        if reported is not None:
            done, total, text = reported
            bar = f"<progress value='{done}' max='{total}'></progress>" \
                if total is not None and total > 0 else ""
            row += f" {bar} <small>{_h(_progress_text(reported).strip(), False)}</small>"
        error = self.error_message if self.status == "error" else ""
        details = ""
        if error or info["output"]:
            body = _h((error + "\n" if error else "") + info["output"], False)
            details = (f"<details><summary>{'traceback and ' if error else ''}output</summary>"
                       f"<pre>{body}</pre></details>")
        return f'<div title="{_h(self.uuid)}">{row}{details}</div>'


def _summary(result: "Result[Any]") -> dict[Any, Any]:
    """What a Result's repr, its HTML view and the result tables show."""
    row = result._fetch()
    status = result.status
    if status == "ready":
        shown = _shorten(row.summary if row.summary is not None
                         else repr(result.function_result), 80)
    elif status in ("error", "cancelled"):
        shown = result.error_message.splitlines()[0]
    else:
        shown = ""
    took = f"{row.finished - row.started:.3f} s" \
        if row.started is not None and row.finished is not None else ""
    return {"id": result.uuid, "function": row.name.rsplit(".", 1)[-1], "args": row.args,
            "status": status, "value": shown, "output": row.output or "", "took": took,
            "created": row.created}


def _check_wait_in_task(result: "Result[Any]", blocking: bool = True) -> None:
    """RuntimeError for a wait in a task that could never end, or (`blocking`: get(),
    wait()) would block its event loop."""
    running = _task_now()
    if running is None:
        return
    if result.uuid == running.uuid:
        raise RuntimeError("a task cannot wait for its own call")
    if blocking and "asyncio" in sys.modules and \
            sys.modules["asyncio"]._get_running_loop() is not None:
        raise RuntimeError("get() and wait() would block the event loop that runs this task "
                           "and its neighbours: inside an async def task, await the Result "
                           "instead of calling get()")
    if result._store is not None and result._unfinished() and \
            result._store.depends_on(result.uuid, running.id):
        raise RuntimeError(f"the call {result.uuid} depends on this task, which would wait "
                           "for it forever: return its Result instead of waiting")


def _progress_text(progress: Optional[tuple[Any, Any, str]]) -> str:
    """A progress report as a Result's repr shows it: " 3/10 pages" (or " 3 pages")."""
    if progress is None:
        return ""
    done, total, text = progress
    shown = _number_text(done) + (f"/{_number_text(total)}" if total is not None else "")
    return f" {shown}" + (f" {text}" if text else "")


def _number_text(number: Any) -> str:
    """A reported number as shown: a whole number whole, a fraction as %g does."""
    return str(number) if isinstance(number, int) else f"{number:g}"


def _result_handle(uuid: str) -> "Result[Any]":
    """A pickled Result, made again where it is unpickled (Result.__reduce__)."""
    return Result(uuid, _worker_store() if _worker_store is not None else _current_store())


_STATUS_COLOURS = {"waiting": "#888", "running": "#1f6feb", "ready": "#1a7f37",
                   "error": "#cf222e", "cancelled": "#bc4c00"}


def _h(value: Any, quote: bool = True) -> str:
    """Text for HTML, the one escaper of the results' views and the dashboard: escaped,
    quotes too unless it only stands between tags (None: nothing)."""
    import html     # where a page is made: never in a worker
    return html.escape("" if value is None else str(value), quote=quote)


def _status_badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#888")
    return (f'<span style="color: white; background: {colour}; padding: 0 0.4em; '
            f'border-radius: 0.3em">{_h(status)}</span>')


class _ResultList(list):  # type: ignore[type-arg]  # of Result, and list[...] is 3.9+ only
    """The list get_results() returns: a table in Jupyter and in a terminal, of the first
    _SHOWN results (a notebook cell must not render 200,000 rows)."""

    _COLUMNS = (("id", 16), ("function", 20), ("args", 24), ("status", 9), ("value", 36),
                ("took", 9))
    _SHOWN = 50

    def _more(self) -> str:
        """The line under a cut table, or ""."""
        more = len(self) - self._SHOWN
        if more <= 0:
            return ""
        return (f"... and {more} more result{'s' if more != 1 else ''} (the list holds them "
                f"all; get_results(limit=..., status=...) narrows it)")

    def __repr__(self) -> str:
        if not self:
            return "(no results)"
        lines = ["  ".join(name.ljust(width) for name, width in self._COLUMNS).rstrip()]
        for result in self[:self._SHOWN]:
            info = _summary(result)
            info["id"] = _short_id(info["id"])
            lines.append("  ".join(_shorten(str(info[name]), width).ljust(width)
                                   for name, width in self._COLUMNS).rstrip())
        return "\n".join(lines + ([self._more()] if self._more() else []))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{name}</th>" for name, _ in self._COLUMNS)
        rows = []
        for result in self[:self._SHOWN]:
            info = _summary(result)
            cells = [_h(_short_id(info["id"]), False), _h(info["function"], False),
                     _h(_shorten(info["args"], 60), False), _status_badge(info["status"]),
                     _h(info["value"], False), _h(info["took"], False)]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if self._more():
            rows.append(f'<tr><td colspan="{len(self._COLUMNS)}">{_h(self._more(), False)}'
                        "</td></tr>")
        return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _due_time(weeks: float, days: float, hours: float, minutes: float, seconds: float,
              schedule: Optional[_dt.datetime]) -> Callable[[Any], float]:
    """When a call made now into a store is due (by the store's time), checked at
    decoration time."""
    offset = _dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes,
                           seconds=seconds).total_seconds()
    if offset < 0:
        raise ValueError(f"the delay must not be negative, got {offset:g} s")
    if schedule is not None:
        if offset:
            raise ValueError("give either a delay (weeks, days, hours, minutes, seconds) or a "
                             "schedule datetime, not both")
        if not isinstance(schedule, _dt.datetime):
            raise TypeError(f"schedule must be a datetime, not {type(schedule).__name__}")
        at = schedule.timestamp()        # naive: local time; aware: honoured
        return lambda store: at
    return lambda store: store.now() + offset


if TYPE_CHECKING:
    class _Delayed(Protocol[_P, _T]):
        """What @delay makes of a function returning _T (or awaiting to it): a call with its
        parameters returns a Result[_T]."""

        def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Result[_T]: ...
        def map(self, *iterables: Iterable[Any]) -> list[Result[_T]]: ...
        def options(self, *, weeks: float = ..., days: float = ..., hours: float = ...,
                    minutes: float = ..., seconds: float = ...,
                    schedule: Optional[_dt.datetime] = ..., retries: int = ...,
                    retry_delay: float = ..., backoff: float = ...,
                    retry_on: Union[type, tuple[type, ...], None] = ...,
                    timeout: Optional[float] = ..., priority: int = ..., queue: str = ...,
                    key: Union[str, Callable[..., str], None] = ...,
                    connection: Any = ...) -> "_Delayed[_P, _T]": ...

    class _DelayDecorator(Protocol):
        """@delay(...) with options: what it makes of the function it decorates."""

        @overload
        def __call__(self, func: Callable[_P, Coroutine[Any, Any, _T]]) -> _Delayed[_P, _T]: ...
        @overload
        def __call__(self, func: Callable[_P, _T]) -> _Delayed[_P, _T]: ...


@overload
def delay(func: Callable[_P, Coroutine[Any, Any, _T]]) -> _Delayed[_P, _T]: ...
@overload
def delay(func: Callable[_P, _T]) -> _Delayed[_P, _T]: ...
@overload
def delay(func: None = None, *, weeks: float = 0, days: float = 0, hours: float = 0,
          minutes: float = 0, seconds: float = 0, schedule: Optional[_dt.datetime] = None,
          retries: int = 0, retry_delay: float = 0, backoff: float = 1.0,
          retry_on: Union[type, tuple[type, ...], None] = None,
          timeout: Optional[float] = None, priority: int = 0,
          queue: str = _DEFAULT_QUEUE) -> _DelayDecorator: ...


def delay(func: Optional[Callable[..., Any]] = None, *, weeks: float = 0, days: float = 0,
          hours: float = 0, minutes: float = 0, seconds: float = 0,
          schedule: Optional[_dt.datetime] = None, retries: int = 0, retry_delay: float = 0,
          backoff: float = 1.0, retry_on: Union[type, tuple[type, ...], None] = None,
          timeout: Optional[float] = None, priority: int = 0,
          queue: str = _DEFAULT_QUEUE) -> Any:
    """Make calls of `func` run in a worker: each call is stored and returns a Result.

    Usable as `@delay` or with options: a later start (`minutes=5`, or
    `schedule=datetime(...)`), `retries` (a failed attempt, or one whose worker died, runs
    again after `retry_delay` seconds, multiplied by `backoff` each time, and lengthened by
    up to a quarter at random), `retry_on` (an exception class or a tuple of them: only
    those are retried), `timeout` (seconds; the pool then terminates the worker and the
    attempt fails "timed out after N s"), `priority` (higher runs first among due tasks)
    and `queue` (its name: pools may serve some queues only, limits hold per queue).
    A call's arguments are checked against the function's signature (TypeError, nothing
    stored). Inactive autocron (before start(), after stop()) runs the call here and
    returns a finished Result. A task's calls are stored like any other (tasks start
    tasks); while a task waits for one, its pool keeps a spare worker.

    `func.map(*iterables)` makes many calls at once, in one transaction;
    `func.options(...)` takes the same keywords for the calls made through it. An
    `async def` function runs to its end on the worker's event loop; `await result` waits
    for any.
    """
    settings = {"weeks": weeks, "days": days, "hours": hours, "minutes": minutes,
                "seconds": seconds, "schedule": schedule, "retries": retries,
                "retry_delay": retry_delay, "backoff": backoff, "retry_on": retry_on,
                "timeout": timeout, "priority": priority, "queue": queue}
    if func is None:
        _Call(settings)                   # bad values are refused here, not at decoration
        return functools.partial(delay, **settings)
    if not callable(func):
        raise TypeError(f"delay decorates a function, not {type(func).__name__}")
    return _delayed(func, settings)


# How a delayed function's calls are made: the keywords of delay() and options().
_TIMING = ("weeks", "days", "hours", "minutes", "seconds", "schedule")
_DELAY_DEFAULTS: dict[str, Any] = {"weeks": 0, "days": 0, "hours": 0, "minutes": 0,
                                   "seconds": 0, "schedule": None, "retries": 0,
                                   "retry_delay": 0, "backoff": 1.0, "retry_on": None,
                                   "timeout": None, "priority": 0, "queue": _DEFAULT_QUEUE}


def _store_in_worker() -> _Store:
    """In a worker: the store that a task's delayed calls go to (tasks start tasks);
    RuntimeError while no task's function runs (the worker imports modules, runs its
    initializer, or a thread of an ended task calls)."""
    if _async_session is not None and _task_now() is None:
        raise RuntimeError("a delayed function was called in a thread that belongs to none of "
                           "the async calls running in this worker; start the thread with "
                           "asyncio.to_thread(), loop.run_in_executor() or "
                           "contextvars.copy_context().run, so that it belongs to its call")
    if _task_now() is None or _worker_store is None:
        raise RuntimeError("a delayed function was called in a worker while no task runs "
                           "there (while it imports a module or runs the initializer); call "
                           "it from a task, or call its __wrapped__ to run it here")
    return _worker_store()


def _in_transaction(connection: Any) -> bool:
    """Whether a psycopg connection is inside a transaction it has not ended."""
    return connection.info.transaction_status.name in ("INTRANS", "ACTIVE")


class _Call:
    """The settings of a delayed function's calls (delay()'s keywords, as options() left
    them, and options()'s key and connection), checked and made ready: when a call is due,
    its _Options, its retry_on, its key, the caller's connection to store it through."""

    __slots__ = ("settings", "due", "options", "retry_on", "key", "connection")

    def __init__(self, settings: dict[str, Any], asynchronous: bool = False):
        self.settings = settings
        self.due = _due_time(*(settings[name] for name in _TIMING))
        self.options = _Options(settings["retries"], settings["retry_delay"],
                                settings["backoff"], settings["timeout"], settings["priority"],
                                settings["queue"], asynchronous)
        self.retry_on = _retry_classes(settings["retry_on"])
        self.key = settings.get("key")
        if self.key is not None and not callable(self.key):
            _check_key(self.key)
        self.connection = settings.get("connection")
        if self.connection is not None and not _is_psycopg3(self.connection):
            raise TypeError(f"connection must be an open psycopg 3 connection to autocron's "
                            f"PostgreSQL database, got {type(self.connection).__name__}")


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (at most {_MAX_KEY} characters), got "
                        f"{type(key).__name__}")
    if not 0 < len(key) <= _MAX_KEY:
        raise ValueError(f"key must be 1 to {_MAX_KEY} characters long, got {len(key)}")
    try:
        key.encode()
    except UnicodeEncodeError:
        raise ValueError(f"key must be text that UTF-8 can encode, got {key!r} (a lone "
                         "surrogate)") from None
    return key


def _retry_classes(retry_on: Any) -> Optional[tuple[type, ...]]:
    """retry_on as a tuple of exception classes (None: every failure is retried)."""
    if retry_on is None:
        return None
    classes = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not classes or not all(isinstance(c, type) and issubclass(c, BaseException)
                              for c in classes):
        raise TypeError(f"retry_on must be an exception class or a tuple of them, got "
                        f"{retry_on!r}")
    return classes


def _delayed(func: Callable[..., Any], settings: dict[str, Any]) -> Any:
    """What delay() and options() return: `func` made to store its calls as `settings` say,
    with .map, .options and __wrapped__ (its attributes copied as functools.wraps does)."""
    call = _Call(settings, _is_async(func))
    name = _function_name(func)
    bind = _binder(func)

    @functools.wraps(func)
    def delayed(*args: Any, **kwargs: Any) -> Any:
        bind(args, kwargs)
        store = _store_in_worker() if _IN_WORKER else _state.store
        if store is None:
            return _run_here(func, args, kwargs)
        if callable(call.key):
            raise ValueError("a key that is a function is for .map(); give a call its "
                             "key as a str")
        return _store_calls(func, name, call, store, [(args, kwargs)], single=True)[0]

    wrapper: Any = delayed
    wrapper.map = functools.partial(_map, func, name, call, bind)
    wrapper.options = functools.partial(_with_options, func, settings)
    wrapper._autocron_function = func
    # a shipped wrapper is made again with it
    wrapper._autocron_decorator = functools.partial(_delayed, settings=settings)
    return wrapper


def _tell_held(name: str, key: str, uid: str, held: Optional[str], text: str) -> None:
    """Log a call that stored nothing because the call `uid` holds its key, if their
    arguments differ."""
    if held is not None and held != text:
        _log.warning("autocron: %s(%s) stored nothing: the unfinished call %s holds the key "
                     "%r, with other arguments (%s)", name, text, uid, key, held)


def _with_options(func: Callable[..., Any], settings: dict[str, Any], **given: Any) -> Any:
    """`f.options(...)`: `f` with other settings for the calls made through it. A delay or a
    schedule replaces the timing as a whole; each other keyword replaces its own."""
    unknown = sorted(set(given) - set(_DELAY_DEFAULTS) - {"key", "connection"})
    if unknown:
        raise TypeError(f"options() got {', '.join(map(repr, unknown))}; it takes "
                        f"{', '.join(_DELAY_DEFAULTS)}, key, connection")
    merged = dict(settings)
    if any(name in given for name in _TIMING):
        merged.update((name, _DELAY_DEFAULTS[name]) for name in _TIMING)
    merged.update(given)
    return _delayed(func, merged)


def _binder(func: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
    """A check of a call's arguments against `func`'s signature, as a plain call meets it
    (TypeError; nothing is stored). The signature is read at the first call: inspect is
    imported only where calls are made. A callable without one is not checked."""
    known: list[Any] = []

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not known:
            import inspect
            try:
                known.append(inspect.signature(func, follow_wrapped=False).bind)
            except (TypeError, ValueError):      # a builtin without one
                known.append(None)
        if known[0] is not None:
            try:
                known[0](*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{_function_name(func)}(): {error}; nothing was "
                                "stored") from None
    return bind


def _map(func: Callable[..., Any], name: str, call: _Call,
         bind: Callable[[tuple[Any, ...], dict[str, Any]], None],
         *iterables: Iterable[Any]) -> list[Any]:
    """`func.map(*iterables)` of a delayed function: a call for each set of arguments, as
    the builtin map() and Executor.map() make them (up to the shortest iterable), stored in
    one transaction; if one cannot be pickled (TypeError) none is. A list of Results.

    The iterables are read first, before any transaction (a generator may wait for other
    calls' results, which the pool must write meanwhile); plain calls are then made as the
    store reads them (_stream_calls), and only the Results stay."""
    calls = list(zip(*iterables))
    if calls:
        bind(calls[0], {})       # zip makes them all alike: one check stands for all
    store = _store_in_worker() if _IN_WORKER else _state.store
    if store is None:
        return [_run_here(func, args, {}) for args in calls]
    if call.key is not None and not callable(call.key):
        raise ValueError(".map() takes a key that is a function of each call's "
                         "arguments returning its key, not a str")
    if not calls:
        return []
    if call.key is not None or call.connection is not None or \
            (_IN_WORKER and _task_now() is not None):
        return _store_calls(func, name, call, store, [(args, {}) for args in calls])
    return _stream_calls(func, name, call, store, calls)


def _taken(items: list[_T]) -> Iterator[_T]:
    """The items of a list in order, each dropped from it as it is taken."""
    items.reverse()
    while items:
        yield items.pop()


def _stream_calls(func: Callable[..., Any], name: str, call: _Call, store: _Store,
                  arguments: list[tuple[Any, ...]]) -> list[Any]:
    """map()'s calls without keys, outside a task and the caller's transaction: each made
    (pickled) as the store reads it into its transaction (add_tasks), its arguments let go
    then; their Results."""
    ref, shipped = _reference(func)
    options = call.options
    uids = store.add_tasks(name, (_new_call(func, ref, args, {}, call, store)
                                  for args in _taken(arguments)), call.due(store), options,
                           shipped)
    if not store.wakes_pools:
        _wake_pool(store.wake_path, options.priority)
    _read_ahead.stored(store, uids)
    return [Result(uid, store) for uid in uids]


_pickling = threading.local()        # depth: a call's arguments are being pickled here


class _CallPickler(_Pickler):
    """Pickles a call's arguments for the database at `path`: a Result met anywhere in them
    is a dependency, pickled as its id (a persistent id) and loaded as its value where the
    call runs; a Result of a synchronous run (inactive autocron) is its value at once."""

    def __init__(self, file: io.BytesIO, store: Optional[_Store], connection: Any = None):
        super().__init__(file, _PICKLE_PROTOCOL)
        self.store = store                # None: any database's (a run here, inactive)
        self.connection = connection      # the caller's transaction the call goes into
        self.deps: dict[str, Result[Any]] = {}   # by id, in the order met, each once
        self.failed: Optional[dict[Any, Any]] = None   # a synchronous run that failed
        self.values = False               # a synchronous run's Result became its value

    def persistent_id(self, obj: Any) -> Optional[str]:
        if not isinstance(obj, Result) or obj._store is None:
            return None
        store = self.store
        if store is not None and obj._store.path != store.path and \
                obj._store.identity() != store.identity():
            raise _Refused(ValueError(
                f"a Result as an argument makes the call depend on it, and {obj.uuid} is a "
                f"call of another database ({obj._store.path}, not {store.path}): pass its "
                "value (result.get()) or its id (result.uuid)"))
        if obj._transaction is not None and obj._transaction is not self.connection and \
                obj._store.result_row(obj.uuid) is None:
            raise _Refused(ValueError(
                f"the call {obj.uuid} is stored in your open transaction: commit it first, or "
                "store this call in that transaction too (options(connection=...))"
                if _in_transaction(obj._transaction) else
                f"the call {obj.uuid} is not in the database: its transaction rolled back"))
        self.deps[obj.uuid] = obj
        return obj.uuid

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Result):      # a synchronous run's (a stored one is an id)
            if obj.has_error and self.failed is None:
                row = obj._fetch()
                self.failed = _dependency_failed(row.name, obj.uuid, obj.status, row.error)
            self.values = True
            return (_given, (obj.function_result,))
        if type(obj) in (set, frozenset):     # in order: a call pickles alike in any process
            with contextlib.suppress(TypeError):
                return (type(obj), (sorted(obj),))
        return super().reducer_override(obj)

    def dump(self, obj: Any) -> None:
        _pickling.depth = getattr(_pickling, "depth", 0) + 1
        try:
            super().dump(obj)
        finally:
            _pickling.depth -= 1


def _given(value: Any) -> Any:
    """What a Result of a synchronous run unpickles as: its value."""
    return value


def _run_here(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> "Result[Any]":
    """A call where autocron is inactive: run now, with each Result in its arguments
    replaced by its value (a stored call's is waited for); one that failed fails the call
    with DependencyFailed, and it does not run."""
    if _ATOMS.issuperset(map(type, args)) and _ATOMS.issuperset(map(type, kwargs.values())):
        return Result._run_here(func, args, kwargs)
    buffer = io.BytesIO()
    pickler = _CallPickler(buffer, None)
    try:
        pickler.dump((args, kwargs))
    except Exception:            # arguments that cannot travel may still be used here
        return Result._run_here(func, args, kwargs)
    if not pickler.deps and not pickler.values:
        return Result._run_here(func, args, kwargs)
    failed = pickler.failed
    for uid, result in pickler.deps.items():
        result._wait(None)
        if failed is None and result.has_error:
            row = result._fetch()
            failed = _dependency_failed(row.name, uid, result.status, row.error)
    if failed is not None:
        now = _clock()
        row = _ResultRow(_new_uuid(), _function_name(func), _call_text(args, kwargs),
                         "error", now, None, now, None, json.dumps(failed), pickled=False)
        return Result(row.uuid, None, row)
    args, kwargs = _ValuesUnpickler(buffer.getvalue(),
                                    lambda uid: pickler.deps[uid].get()).load()
    return Result._run_here(func, args, kwargs)


def _new_call(func: Callable[..., Any], ref: tuple[Any, ...], args: tuple[Any, ...],
              kwargs: dict[str, Any], call: _Call, store: _Store) -> _NewCall:
    """A call made ready for the database: its record, key and dependencies."""
    found: list[_CallPickler] = []

    def pickler(buffer: io.BytesIO) -> _CallPickler:
        found.append(_CallPickler(buffer, store, call.connection))
        return found[-1]
    record = _dump_record(func, ref, args, kwargs, call.retry_on, pickler)
    deps = list(found[0].deps) if found else []
    if deps:
        record = _dependent_record(record, ref, deps)
    key = None if call.key is None else call.key if isinstance(call.key, str) else \
        _check_key(call.key(*args, **kwargs))
    return _NewCall(_call_text(args, kwargs), record, key, tuple(deps),
                    found[0].failed if found else None)


def _store_calls(func: Callable[..., Any], name: str, call: _Call, store: _Store,
                 calls: list[tuple[tuple[Any, ...], dict[str, Any]]],
                 single: bool = False) -> list[Any]:
    """Store calls of `func` as `call` says; their Results. Plain calls take the fastest
    way (one statement for a single one); calls with keys, dependencies or the caller's
    transaction, and a task's calls (its steps: one that an earlier attempt made comes
    back), go through add_calls."""
    ref, shipped = _reference(func)
    new = [_new_call(func, ref, args, kwargs, call, store) for args, kwargs in calls]
    task = _task_now() if _IN_WORKER else None
    due, options = call.due(store), call.options
    if task is None and call.connection is None and not any(
            c.key is not None or c.deps or c.failed for c in new):
        uids = [store.add_task(name, new[0].args, new[0].record, due, options, shipped)] \
            if single else store.add_tasks(name, new, due, options, shipped)
        found: list[Any] = [(uid, None) for uid in uids]
    else:
        earlier: dict[str, str] = {}
        if task is not None:
            new = _steps(new, calls, func)
            if task.attempts:      # it ran before: the steps it made come back
                earlier = store.steps_of(task.id, [c.step for c in new if c.step])
        made = iter(store.add_calls(name, [c for c in new if c.step not in earlier], due,
                                    options, shipped, task and task.id, call.connection))
        found = [(earlier[c.step], None) if c.step in earlier else next(made) for c in new]
        for (uid, held), c in zip(found, new):
            if held is not None and c.key is not None:
                _tell_held(name, c.key, uid, held, c.args)
    if not store.wakes_pools:
        _wake_pool(store.wake_path, options.priority)
    if call.connection is not None:
        return [Result(uid, store, _ResultRow(uid, name, c.args, "waiting", None, None, None,
                                              None, None), call.connection)
                for (uid, _), c in zip(found, new)]
    _read_ahead.stored(store, [uid for uid, _ in found])
    return [Result(uid, store) for uid, _ in found]


class _StepPickler(pickle._Pickler):
    """Python's own pickler, whose sets are pickled in order (the C pickler takes them in
    hash order, which differs between processes): a call's step is the same in every
    attempt's worker. Results are their ids."""

    dispatch: ClassVar[dict[Any, Any]] = dict(pickle._Pickler.dispatch)

    def _save_in_order(self, obj: Any) -> None:
        try:
            ordered = sorted(obj)
        except TypeError:         # no order among them: as they come
            ordered = list(obj)
        cast(Any, self).save_reduce(type(obj), (ordered,), obj=obj)

    dispatch[set] = dispatch[frozenset] = _save_in_order

    def persistent_id(self, obj: Any) -> Optional[str]:
        return obj.uuid if isinstance(obj, Result) else None

    def reducer_override(self, obj: Any) -> Any:
        return _Pickler.reducer_override(cast(_Pickler, self), obj)


def _steps(calls: list[_NewCall], made: list[tuple[tuple[Any, ...], dict[str, Any]]],
           func: Callable[..., Any]) -> list[_NewCall]:
    """A running task's calls as its steps: the k-th call it makes of a function with the
    same arguments is step "<digest of the function and the arguments>:<k>" (threads
    too); the digest is the same in any process."""
    named = []
    for each, (args, kwargs) in zip(calls, made):
        buffer = io.BytesIO()
        try:
            _StepPickler(buffer, _PICKLE_PROTOCOL).dump((_function_name(func), args, kwargs))
            text = buffer.getvalue()
        except Exception:          # what only the C pickler takes: its pickle
            text = each.record
        digest = _sha256(text)[:32]
        call = _in_call.get()        # an async call's own steps, else the one running's
        counts = call.steps if call is not None else _steps_made
        with _steps_lock:
            counts[digest] = number = counts.get(digest, 0) + 1
        named.append(each._replace(step=f"{digest}:{number}"))
    return named


def cron(expression: Optional[str] = None, *, tz: Union[str, _dt.tzinfo, None] = None,
         catch_up: bool = False, queue: str = _DEFAULT_QUEUE,
         **fields: Any) -> Callable[..., Any]:
    """Run the decorated function periodically, per standard cron semantics.

    `@cron("30 9 * * 1,3")` or `@cron(minutes=[30], hours=[9], dow=[0, 2])` (dow as
    `datetime.weekday()`); `tz` an IANA name or tzinfo (None: local time). A bad expression
    raises CronError here, a function that requires arguments TypeError. The function is
    returned unchanged and registered as the job `module.qualname`; decorating again under
    that name replaces the schedule. A job runs while code declares it: a worker that
    imports the function's module and finds it gone, or no longer decorated there, retires
    the job (registering it again revives it).
    """
    caller = sys._getframe(1)
    # A declaration made while its module is imported (at its top level) is what a worker
    # that imports the module looks for; one made when the program runs (in main(), a
    # startup hook) is not there to be found, and only a function gone retires its job.
    declared = caller.f_globals.get("__name__") if caller.f_code.co_name == "<module>" \
        else None
    if callable(expression):     # used bare: @cron
        return _cron_register(_firing_schedule(None, tz, fields), catch_up,
                              _check_queue(queue), declared)(expression)
    return _cron_register(_firing_schedule(expression, tz, fields), catch_up,
                          _check_queue(queue), declared)


def _firing_schedule(expression: Optional[str], tz: Any, fields: dict[Any, Any]) -> CronExpression:
    """The schedule of cron(); CronError also for one that fires only in a daylight-saving
    gap of its zone."""
    schedule = CronExpression(expression, tz=tz, **fields)
    zone = schedule.tz or _local_zone()
    if zone is not None:           # a rule can parse and yet fire only in a daylight-saving gap
        try:
            schedule.next(_dt.datetime.fromtimestamp(_clock(), zone))
        except CronError:
            where = str(zone) if schedule.tz is not None else "the local time zone" + (
                f" ({zone})" if str(zone) != "localtime" else "")
            raise CronError(f"{str(schedule)!r} never fires in {where}: every time it matches "
                            "falls into the gap when the clocks skip ahead for daylight "
                            "saving time; give a fixed minute and hour (a job due in the gap "
                            "runs right after it) or choose another time") from None
    return schedule


def _check_no_arguments(func: Callable[..., Any], name: str) -> None:
    """Refuse a function that a cron run could not call: one that requires arguments."""
    import inspect          # only here: a worker never needs it
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):     # no signature to read (a builtin): its run will say
        return
    required = [p.name for p in parameters if p.default is p.empty and p.kind not in (
        p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        them = "it a default" if len(required) == 1 else "them defaults"
        raise TypeError(f"a cron job takes no arguments, and {name}() requires "
                        f"{', '.join(required)}; give {them}, or schedule a function that "
                        f"calls it (@cron(...) def job(): {getattr(func, '__name__', 'f')}(...))")


def _cron_register(schedule: CronExpression, catch_up: bool, queue: str,
                   declared: Optional[str]) -> Callable[..., Any]:
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        name = _function_name(func)
        _check_no_arguments(func, name)
        _function_ref(func)    # cannot be sent to the workers? say so now
        with contextlib.suppress(AttributeError, TypeError):
            setattr(func, "_autocron_cron", name)      # declared: what a worker looks for
        with _state.lock:
            _state.crons[name] = _Job(schedule, func, catch_up, declared, queue)
            if _state.store is not None:
                _state.store.register_cron(name, schedule, func, catch_up,
                                           _next_due(schedule, _state.store.now()), declared,
                                           queue)
                _wake_pool(_state.store.wake_path)
        return func

    return register


# ---- Django's tasks framework -----------------------------------------------------------------
#
# settings.TASKS = {"default": {"BACKEND": "autocron.DjangoBackend", "OPTIONS": {...}}}: Django's
# own @task functions (django.tasks, Django 6) stored and run by autocron. Django is imported
# only when Django asks for the class (the module's __getattr__ makes it then).

_DJANGO_STATUS = {"waiting": "READY", "queued": "READY", "running": "RUNNING",
                  "ready": "SUCCESSFUL", "error": "FAILED", "cancelled": "FAILED"}


def _django_starts(argv: list[Any], environ: Any) -> bool:
    """Whether DjangoBackend starts the pool in this process: in server processes (WSGI and
    ASGI servers, runserver's serving child) and `manage.py shell`; other management
    commands and the test runner only store calls."""
    program = os.path.basename(argv[0]) if argv else ""
    if program in ("manage.py", "django-admin") or program.startswith("django-admin"):
        command = argv[1] if len(argv) > 1 else ""
        if command == "runserver":     # its serving process, not the reloader's
            return environ.get("RUN_MAIN") == "true" or "--noreload" in argv
        return command == "shell"
    return True


def _django_time(epoch: Optional[float]) -> Optional[_dt.datetime]:
    return None if epoch is None else _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)


def _class_path(kind: str) -> str:
    """The importable path of an exception's class, from the type name a task's error
    carries (a builtin's bare name; none: autocron's TaskError)."""
    if not kind:
        return "autocron.TaskError"
    return kind if "." in kind else f"builtins.{kind}"


def _run_django_task(path: str, takes_context: bool, args: list[Any],
                     kwargs: dict[Any, Any]) -> Any:
    """In a worker: run a Django task that DjangoBackend stored, with Django's task_started
    and task_finished signals; its return value as Django's JSON."""
    from django.tasks.base import TaskContext, TaskResultStatus
    from django.tasks.base import TaskError as DjangoTaskError
    from django.tasks.signals import task_finished, task_started
    from django.utils.json import normalize_json
    from django.utils.module_loading import import_string
    task = import_string(path)
    backend = task.get_backend()
    current = _task_now()
    uid = current.uuid if current is not None else ""
    result = backend._result(task, uid, "running", args, kwargs, created=None,
                             started=_clock(), attempts=(current.attempts if current else 0) + 1)
    sender = type(backend)
    task_started.send(sender=sender, task_result=result)
    try:
        value = task.call(*([TaskContext(task_result=result)] if takes_context else []), *args,
                          **kwargs)
        value = normalize_json(value)
    except BaseException as error:
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        info = _error_info(error)
        result.errors.append(DjangoTaskError(exception_class_path=_class_path(info["type"]),
                                             traceback=info["traceback"]))
        task_finished.send(sender=sender, task_result=result)
        raise
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=sender, task_result=result)
    return value


def _django_transaction(store: _Store) -> Any:
    """Django's own psycopg connection, where DjangoBackend stores a call inside atomic():
    when that connection is in an atomic block and reaches autocron's PostgreSQL database
    (the call then commits or rolls back with it); else None."""
    from django.db import connection
    if not connection.in_atomic_block or connection.vendor != "postgresql" or \
            connection.connection is None or not store.reached_by(connection.connection):
        return None
    return connection.connection


def _django_backend() -> type:
    """The class DjangoBackend, made when Django first asks for it."""
    import django
    if django.VERSION[0] < 6:
        raise ImportError(f"autocron.DjangoBackend needs Django 6 or later (its tasks "
                          f"framework, django.tasks); this is Django {django.__version__}. "
                          "Call autocron's @delay functions directly instead")
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
    from django.utils.json import normalize_json
    from django.utils.module_loading import import_string

    class DjangoBackend(BaseTaskBackend):  # type: ignore[misc, unused-ignore]  # (untyped)
        """Django's tasks framework on autocron. OPTIONS: "database" (a path or a
        postgresql:// URL; default $AUTOCRON_DATABASE, else autocron.db), "workers", and
        "start" (True or False: whether this process starts the pool; by default server
        processes and `manage.py shell` do, other management commands only store calls).
        A TaskResult's id is the autocron id: autocron.get_result(id) finds it too."""

        supports_defer = True
        supports_async_task = True
        supports_get_result = True
        supports_priority = True

        def __init__(self, alias: str, params: dict[Any, Any]):
            super().__init__(alias, params)
            self.database = self.options.get("database")
            self.workers = self.options.get("workers")
            self.starts = self.options.get("start")

        def _store(self) -> _Store:
            if _state.store is None:
                starts = self.starts if self.starts is not None else \
                    _django_starts(sys.argv, os.environ)
                start(self.database, workers=self.workers if starts else 0)
            if _state.store is None:
                raise AutocronError("autocron is disabled for this database (autocron "
                                    "enable turns it on again); Django's tasks cannot be "
                                    "stored")
            return _state.store

        def _result(self, task: Any, uid: str, status: str, args: list[Any],
                    kwargs: dict[Any, Any], created: Optional[float] = None,
                    started: Optional[float] = None, finished: Optional[float] = None,
                    attempts: int = 0, failures: Iterable[dict[Any, Any]] = ()) -> Any:
            errors = [TaskError(exception_class_path=_class_path(error.get("type", "")),
                                traceback=error.get("traceback") or error.get("message", ""))
                      for error in failures]
            return TaskResult(task=task, id=uid, status=TaskResultStatus(_DJANGO_STATUS[status]),
                              enqueued_at=_django_time(created),
                              started_at=_django_time(started),
                              finished_at=_django_time(finished),
                              last_attempted_at=_django_time(started), args=args,
                              kwargs=kwargs, backend=self.alias, errors=errors,
                              worker_ids=[_machine_name()] * attempts)

        def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
            self.validate_task(task)
            store = self._store()
            args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
            record, shipped = _dump_call(_run_django_task, (task.module_path,
                                         task.takes_context, args, kwargs), {})
            now = store.now()
            due = now if task.run_after is None else task.run_after.timestamp()
            options = _Options(priority=task.priority)
            text = _call_text(tuple(args), kwargs)
            inside = _django_transaction(store)
            if inside is not None:       # inside atomic(): commits or rolls back with it
                [(uid, _)] = store.add_calls(task.module_path, [_NewCall(text, record)], due,
                                             options, shipped, connection=inside)
            else:
                uid = store.add_task(task.module_path, text, record, due, options, shipped)
            if not store.wakes_pools:
                _wake_pool(store.wake_path, options.priority)
            result = self._result(task, uid, "waiting", args, kwargs, created=now)
            task_enqueued.send(type(self), task_result=result)
            return result

        def get_result(self, result_id: str) -> Any:
            store = self._store()
            row = store.result_row(str(result_id))
            record = store.call_record(str(result_id)) if row is not None else None
            if row is None or record is None:
                raise TaskResultDoesNotExist(result_id)
            path, _, args, kwargs = _load_record(record)["args"]
            result = self._result(import_string(path), row.uuid, row.status, args, kwargs,
                                  row.created, row.started, row.finished, row.attempts,
                                  store.attempt_errors(row.uuid))
            if row.status == "ready":
                object.__setattr__(result, "_return_value",
                                   Result(row.uuid, store, row).function_result)
            return result

    DjangoBackend.__module__ = __name__
    return DjangoBackend


def __getattr__(name: str) -> Any:
    """autocron.DjangoBackend, made on first use: Django is imported only then."""
    if name == "DjangoBackend":
        backend = globals()["DjangoBackend"] = _django_backend()
        return backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ==============================================================================================
# Dashboard
# ==============================================================================================
#
# `autocron dashboard` and `autocron.dashboard()`: pages served by the standard library's
# threaded HTTP server, for either store, whether or not a pool runs in the process. Pages are
# built from escaped values only (html.escape of everything the database holds), the CSS and
# the script are the constants below, and nothing is fetched from elsewhere.
#
# Safe by default: bound to 127.0.0.1 unless told otherwise, and every request needs the
# token, on the loopback too (every user of the machine reaches that): the printed address
# carries it once, then an HttpOnly cookie, else 401. On the loopback only its own address and
# localhost are answered as Host (421: a page that rebinds its name to 127.0.0.1), and a POST
# from another origin is refused (403). Reading never changes anything; every action is a
# POST that carries the page's per-server secret (a script or another site cannot read it),
# else 403. Actions run no user code here: a cancel or a retry is written to the database,
# and the pool does the rest. No page may be framed but the notebook's view (/notebook), and
# that only by a page of the loopback (where Jupyter serves).
#
# Slow and broken clients hold no thread: one thread (_Intake) reads every connection's whole
# request, in 10 s at most, before a worker thread answers it; at most 64 connections are
# open; every malformed request gets a 4xx status line.

_DASH_CSS = """
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#234;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#cde;text-decoration:none}header b{margin-right:16px}
main{padding:16px}table{border-collapse:collapse;background:#fff;width:100%}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #ddd;padding:8px 16px;min-width:90px}
.card b{display:block;font-size:22px}
.waiting,.queued{color:#865}.running{color:#27c}.ready{color:#282}.error{color:#c22}
.cancelled{color:#888}pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;
white-space:pre-wrap}form{display:inline}button{cursor:pointer}
a.card{text-decoration:none}.card small{color:#666}.banner{background:#fee;border:1px solid
#c22;padding:8px 12px}.zone,.legend{color:#666;font-size:12px}
"""

# Live: two seconds after its last answer came (or failed), the page fetches itself and swaps
# its <main>, unless a form has the focus; a slow server never has two of its fetches at once.
# Nothing else runs.
_DASH_JS = """
function refresh() {
  if (document.activeElement && document.activeElement.form) {
    setTimeout(refresh, 2000);
    return;
  }
  fetch(location.href, {credentials: "same-origin"}).then(function (r) {
    return r.ok ? r.text() : null;
  }).then(function (text) {
    if (!text) return;
    var page = new DOMParser().parseFromString(text, "text/html");
    var fresh = page.querySelector("main");
    if (fresh) document.querySelector("main").replaceWith(fresh);
  }).catch(function () {}).then(function () { setTimeout(refresh, 2000); });
}
setTimeout(refresh, 2000);
"""

# Where the notebook's view (/notebook, what autocron.dashboard() shows in a cell) may be
# framed: the notebook servers of the machine, at any port (Jupyter prints localhost and
# 127.0.0.1). Every other page may be framed by none (clickjacking of its buttons). CSP has no
# way to name [::1].
_DASH_NOTEBOOKS = ("'self' http://127.0.0.1:* http://localhost:* https://127.0.0.1:* "
                   "https://localhost:*")
_DASH_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                "connect-src 'self'; form-action 'self'; img-src 'self' data:")
# The icon, inside every page: an icon the browser fetches races the next navigation, and
# Chromium then checks it against the next page's policy (another dashboard, another port).
_DASH_ICON = ("data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 "
              "16 16%22%3E%3Ccircle cx=%228%22 cy=%228%22 r=%227%22 fill=%22%23357%22/%3E%3Cpath "
              "d=%22M8 4v4l3 2%22 stroke=%22white%22 stroke-width=%221.6%22 fill=%22none%22/%3E"
              "%3C/svg%3E")

_DASH_PAGE = 50                  # rows a list shows at once
_DASH_STATS = 5000               # finished tasks the statistics read at most
_DASH_SCAN = 20000               # rows a filtered list looks at, at most, for one page
_DASH_THREADS = 8                # requests answered at once (each thread keeps a connection)
_DASH_READ = 10.0                # seconds a client has to send its whole request (or to take
                                 # in a write of the answer)
_DASH_CONNECTIONS = 64           # client connections open at once, at most
_DASH_HEAD = 65536               # bytes of a request's head read, at most
_DASH_FORM = 65536               # bytes a form (a POST's body) may have
_DASH_RETRY = 2                 # seconds: a page the database could not answer asks again
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"     # GET /metrics


def _same(given: str, secret: Optional[str]) -> bool:
    """Is `given` the secret (never when there is none)? Compared in constant time, as
    bytes: text from a request may be anything (hmac refuses str that is not ASCII)."""
    if secret is None:
        return False
    import hmac         # the dashboard's only
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode())


def _row_number(text: str) -> Optional[int]:
    """A row id from a request, None for text that cannot be one (neither "²", which Python
    counts a digit, nor beyond what SQLite and PostgreSQL store: 2**63)."""
    if text.isascii() and text.isdigit() and int(text) < 2 ** 63:
        return int(text)
    return None


def _task_id(text: str) -> bool:
    """Can `text` be a task's id ("<token>-<row id>")? What cannot gets "no such task"
    without a question to the store."""
    token, _, row = text.rpartition("-")
    return bool(re.fullmatch(r"[0-9A-Za-z]+", token)) and _row_number(row) is not None


def _local_time(epoch: Optional[float]) -> str:
    """An epoch time as local wall-clock text (the dashboard and the admin tool)."""
    if epoch is None:
        return ""
    try:
        return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):     # a retry's due time beyond year 9999
        return "after 9999-12-31" if epoch > 0 else "before 0001-01-01"


def _duration(seconds: float) -> str:
    """"3m 12s", "2h 5m", "1d 4h": the two largest units."""
    seconds = max(0, int(seconds))
    parts = [(seconds // 86400, "d"), (seconds // 3600 % 24, "h"), (seconds // 60 % 60, "m"),
             (seconds % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:2]) or "0s"


def _took(row: _ResultRow) -> str:
    """How long a finished task ran, in seconds ("" if it did not run to an end)."""
    if row.started is None or row.finished is None:
        return ""
    return f"{row.finished - row.started:.3f}"


def _percentile(values: list[float], share: float) -> float:
    """Of a list that is not empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _stamp(epoch: Optional[float]) -> str:
    """An epoch time as the dashboard shows it: local wall-clock text and its zone."""
    if epoch is None:
        return ""
    try:
        zone = _dt.datetime.fromtimestamp(epoch).astimezone().tzname()
    except (ValueError, OverflowError, OSError):
        return _local_time(epoch)
    return f"{_local_time(epoch)} {zone}"


def _zone_note(now: float) -> str:
    """Which zone the page's times are in."""
    local = _dt.datetime.fromtimestamp(now).astimezone()
    offset = local.strftime("%z")
    return (f"<p class='zone' data-zone>Times are in {_h(local.tzname() or '')} (UTC"
            f"{offset[:3]}:{offset[3:]}).</p>")


# The charts: inline SVG in a frame of _CHART_W x _CHART_H, the plot right of the y axis's
# labels and above the x axis's, whose ticks are every 10 minutes of the last hour (local).
_CHART_W, _CHART_H, _CHART_LEFT, _CHART_BOTTOM = 680, 150, 56, 22
_CHART_COLOURS = ("#27c", "#c52", "#393", "#a3c", "#c93", "#3aa")


def _chart(name: str, label: str, top: float, unit: str, now: float, marks: str) -> str:
    """A chart of the last hour: its frame, axes and labels (y from 0 to `top` `unit`), and
    `marks`, drawn in plot coordinates (x: 0-600 over the hour, y: 0-120 down from the top)."""
    width, height = _CHART_W - _CHART_LEFT, _CHART_H - _CHART_BOTTOM
    ticks = []
    for minutes in range(60, -1, -10):
        x = _CHART_LEFT + 600 * (60 - minutes) / 60
        ticks.append(f'<line x1="{x:.0f}" y1="{height}" x2="{x:.0f}" y2="{height + 4}" '
                     f'stroke="#888"/><text x="{x:.0f}" y="{_CHART_H - 6}" font-size="10" '
                     f'text-anchor="middle" data-tick>{_h(_local_time(now - 60 * minutes)[11:16])}'
                     "</text>")
    for share in (0.0, 0.5, 1.0):
        y = height - 120 * share
        ticks.append(f'<line x1="{_CHART_LEFT}" y1="{y:.0f}" x2="{_CHART_LEFT + width}" '
                     f'y2="{y:.0f}" stroke="#eee"/><text x="{_CHART_LEFT - 4}" y="{y + 4:.0f}" '
                     f'font-size="10" text-anchor="end" data-y-label>{top * share:.3g}'
                     f"{_h(unit)}</text>")
    return (f'<svg width="{_CHART_W}" height="{_CHART_H}" viewBox="0 0 {_CHART_W} {_CHART_H}" '
            f'role="img" data-chart="{_h(name)}" aria-label="{_h(label)}">{"".join(ticks)}'
            f'<line x1="{_CHART_LEFT}" y1="{height}" x2="{_CHART_LEFT + width}" y2="{height}" '
            f'stroke="#888"/><g transform="translate({_CHART_LEFT} {height - 120})">{marks}'
            "</g></svg>")


def _minute_chart(finished: list[Any], now: float) -> str:
    """Finished tasks per minute over the last hour, as bars with their axes."""
    counts = [0] * 60
    for row in finished:
        minute = int((now - row.finished) // 60)
        if 0 <= minute < 60:
            counts[59 - minute] += 1
    top = max(counts) or 1
    bars = "".join(f'<rect x="{i * 10}" y="{120 - 120 * c / top:.1f}" width="8" '
                   f'height="{120 * c / top:.1f}" fill="#27c"><title>{c} ending '
                   f'{_h(_local_time(now - 60 * (59 - i))[11:16])}</title></rect>'
                   for i, c in enumerate(counts))
    return _chart("minutes", f"finished tasks per minute, the last hour; most {top}", top, "",
                  now, bars)


def _run_time_chart(finished: list[Any], now: float) -> str:
    """The median run time per minute of the last hour of each function (the six that ran
    most), as lines with their axes and a legend."""
    minutes: dict[str, dict[int, list[float]]] = {}
    for row in finished:
        minute = int((now - row.finished) // 60)
        if row.started is not None and 0 <= minute < 60:
            minutes.setdefault(row.name, {}).setdefault(59 - minute, []).append(
                row.finished - row.started)
    shown = sorted(minutes, key=lambda name: -sum(map(len, minutes[name].values())))[:6]
    medians = {name: {m: _percentile(t, .5) for m, t in minutes[name].items()}
               for name in shown}
    top = max((v for points in medians.values() for v in points.values()), default=0.0) or 1.0
    marks, legend = [], []
    for colour, name in zip(_CHART_COLOURS, shown):
        points = " ".join(f"{m * 10 + 4},{120 - 120 * v / top:.1f}"
                          for m, v in sorted(medians[name].items()))
        marks.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5" data-function="{_h(name)}"/>' + "".join(
                         f'<circle cx="{m * 10 + 4}" cy="{120 - 120 * v / top:.1f}" r="2" '
                         f'fill="{colour}"><title>{_h(name)}: {v:.3f} s</title></circle>'
                         for m, v in sorted(medians[name].items())))
        legend.append(f"<span style='color:{colour}'>&#9632;</span> {_h(name)}")
    return _chart("run-times", "median run time per minute of each function, the last hour",
                  top, " s", now, "".join(marks)) + \
        f"<p class='legend'>{' &nbsp; '.join(legend)}</p>"


def _resume_cron(store: Any, name: str) -> Optional[float]:
    """Resume a paused cron job (the store's resume_cron) and wake this machine's pool, which
    counts its new due time in; the job's next due time, None if there is no such job."""
    due: Optional[float] = store.resume_cron(name, store.now())
    _wake_pool(store.wake_path)
    return due


def _run_time_bar(p50: float, p95: float, top: float) -> str:
    """A function's p50 (dark) and p95 (light) run times as bars of an inline SVG, to the
    scale of the slowest p95 shown (`top`)."""
    scale = 300 / top if top > 0 else 0.0
    return (f'<svg width="300" height="12" viewBox="0 0 300 12" role="img" data-chart='
            f'"run-time" aria-label="p50 {p50:.3f} s, p95 {p95:.3f} s"><rect x="0" y="0" '
            f'width="{p95 * scale:.1f}" height="12" fill="#9bd"/><rect x="0" y="0" '
            f'width="{p50 * scale:.1f}" height="12" fill="#27c"/></svg>')


def _day_timeline(schedule: "CronExpression", after: _dt.datetime) -> str:
    """The due times of the next 24 hours as ticks on an inline SVG (at most 1,440)."""
    end = after + _dt.timedelta(hours=24)
    ticks = []
    for due in itertools.islice(schedule.iter(after), 1440):
        if due > end:
            break
        ticks.append(f'<rect x="{(due - after).total_seconds() / 144:.1f}" y="0" width="1" '
                     f'height="14" fill="#27c"><title>{due:%a %H:%M}</title></rect>')
    return (f'<svg width="600" height="14" viewBox="0 0 600 14" role="img" data-timeline '
            f'aria-label="due times, the next 24 hours: {len(ticks)}">{"".join(ticks)}'
            f'<rect x="0" y="13" width="600" height="1" fill="#ccc"/></svg>')


def _limit_from_form(store: _Store, form: dict[Any, Any]) -> tuple[Any, ...]:
    """The dashboard's change of a queue's limits: (303, the queues page), or (400, why).
    A field left empty keeps the stored value; "none" lifts it."""
    given = {name: _KEEP if form.get(name, "") == "" else None if form[name] == "none"
             else form[name] for name in ("concurrency", "rate")}
    concurrency = given["concurrency"]
    if isinstance(concurrency, str):
        if not (concurrency.isascii() and concurrency.isdigit()):
            return 400, (f"concurrency must be a whole number, 1 or more, or none; got "
                         f"{concurrency!r}")
        concurrency = int(concurrency)
    try:
        _set_limits(store, form.get("queue", ""), concurrency, given["rate"])
    except ValueError as error:
        return 400, str(error)
    _wake_pool(store.wake_path)
    return 303, "/queues"


def _call_links_html(links: _CallLinks) -> str:
    """A task page's links to the calls linked to its call (both ways), each with its
    function and status."""
    parts = []
    for label, attribute, calls in (
            ("Depends on", "deps", links.deps), ("Calls that depend on it",
                                                 "dependents", links.dependents),
            ("Made by the task", "parent", links.parents), ("Calls it made",
                                                            "steps", links.steps)):
        if calls:
            more = f" (the first {_LINKS_SHOWN})" if len(calls) == _LINKS_SHOWN else ""
            parts.append(f"<p data-links='{attribute}'>{label}{more}: " + ", ".join(
                f"<a href='/task/{_h(uid)}'>{_h(_short_id(uid))}</a> {_h(name)} "
                f"<span class='{_h(status)}'>{_h(status)}</span>"
                for uid, name, status in calls) + ".</p>")
    return "".join(parts)


# GET /metrics, in Prometheus's text format (0.0.4): each family's help, type and samples.
# The counters and histograms are what the ends added in the database (_metric_deltas); the
# gauges are counted when scraped, from the unfinished calls only.
_METRIC_FAMILIES = (
    ("autocron_calls_ended_total", "counter", "Calls that ended, by status (ready, error, "
     "cancelled)."),
    ("autocron_retries_total", "counter", "Attempts that failed and were set to run again."),
    ("autocron_calls_running", "gauge", "Calls running now."),
    ("autocron_calls_waiting", "gauge", "Calls waiting, by why: due (for a worker), "
     "scheduled (not due yet), dependency (on calls they depend on), limit (held back by "
     "their queue's limit)."),
    ("autocron_oldest_due_age_seconds", "gauge", "How long the oldest due call of a queue "
     "has been due (0: none is)."),
    ("autocron_run_seconds", "histogram", "Run time of attempts, started to finished."),
    ("autocron_wait_seconds", "histogram", "Wait of attempts, due to started."),
    ("autocron_machine_workers", "gauge", "Worker processes of a machine's pool."),
    ("autocron_machine_lease_age_seconds", "gauge", "Seconds since a machine's pool last "
     "renewed its lease (SQLite: 0 while the pool holds the file's lock)."),
    ("autocron_pool_running", "gauge", "1 if a pool runs for this database, else 0."),
)


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    """One sample line; label values escaped as the format wants (backslash, quote, line
    end)."""
    inner = ",".join('{}="{}"'.format(key, text.replace("\\", "\\\\").replace('"', '\\"')
                                       .replace("\n", "\\n")) for key, text in labels.items())
    return f"{name}{{{inner}}} {value!r}" if inner else f"{name} {value!r}"


def _waiting_reasons(values: _MetricValues) -> dict[tuple[str, str, str], int]:
    """{(function, queue, why): calls} of the waiting calls: a due one of a queue whose
    limit is reached (its concurrency held, or its rate's starts in the window) is held back
    by the limit; one handed to a worker is due."""
    held: dict[str, int] = {}
    for _, queue, _, n, _ in values.held:
        held[queue] = held.get(queue, 0) + n
    full = {queue for queue, limit in values.limits.items()
            if limit.concurrency is not None and held.get(queue, 0) >= limit.concurrency or
            limit.rate is not None and values.starts.get(queue, 0) >= limit.rate}
    reasons: dict[tuple[str, str, str], int] = {}
    rows = [(f, q, "due", n) for f, q, status, n, _ in values.held if status == "queued"]
    rows += [(f, q, ("limit" if q in full else "due") if due else "scheduled", n)
             for f, q, due, n, _ in values.waiting]
    rows += [(f, q, "dependency", n) for f, q, n in values.blocked]
    for function, queue, why, n in rows:
        reasons[(function, queue, why)] = reasons.get((function, queue, why), 0) + n
    return reasons


def _metrics_text(values: _MetricValues, machines: list[Any], running: bool,
                  now: float) -> str:
    """The page of GET /metrics. `machines`: [(name, workers, lease age)]."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _METRIC_FAMILIES}
    histograms: dict[tuple[str, str, str], dict[str, list[Any]]] = {}
    for function, queue, kind, label, n, total in sorted(values.counters):
        who = {"function": function, "queue": queue}
        if kind == "ended":
            samples["autocron_calls_ended_total"].append(
                _sample("autocron_calls_ended_total", dict(who, status=label), float(n)))
        elif kind == "retried":
            samples["autocron_retries_total"].append(
                _sample("autocron_retries_total", who, float(n)))
        elif kind in ("run", "wait"):
            histograms.setdefault((kind, function, queue), {})[label] = [n, total]
    for (kind, function, queue), buckets in sorted(histograms.items()):
        name, who = f"autocron_{kind}_seconds", {"function": function, "queue": queue}
        count, total = 0, 0.0
        for bound in [repr(b) for b in _METRIC_BUCKETS] + ["+Inf"]:
            n, part = buckets.get(bound, (0, 0.0))
            count, total = count + n, total + part
            samples[name].append(_sample(f"{name}_bucket", dict(who, le=bound), float(count)))
        samples[name] += [_sample(f"{name}_sum", who, float(total)),
                          _sample(f"{name}_count", who, float(count))]
    for function, queue, status, n, _ in sorted(values.held):
        if status == "running":
            samples["autocron_calls_running"].append(_sample(
                "autocron_calls_running", {"function": function, "queue": queue}, float(n)))
    for (function, queue, why), n in sorted(_waiting_reasons(values).items()):
        samples["autocron_calls_waiting"].append(_sample(
            "autocron_calls_waiting", {"function": function, "queue": queue, "reason": why},
            float(n)))
    oldest: dict[str, float] = {queue: now for queue in values.limits}
    due_now = [(queue, first if due else now) for _, queue, due, _, first in values.waiting]
    due_now += [(queue, first) for _, queue, status, _, first in values.held
                if status == "queued"]                  # due, behind a worker's running call
    for queue, first in due_now:
        oldest[queue] = min(oldest.get(queue, now), first)
    samples["autocron_oldest_due_age_seconds"] = [
        _sample("autocron_oldest_due_age_seconds", {"queue": queue}, max(0.0, now - first))
        for queue, first in sorted(oldest.items())]
    for name, workers, age in machines:
        samples["autocron_machine_workers"].append(
            _sample("autocron_machine_workers", {"machine": name}, float(workers)))
        samples["autocron_machine_lease_age_seconds"].append(
            _sample("autocron_machine_lease_age_seconds", {"machine": name}, float(age)))
    samples["autocron_pool_running"].append(
        _sample("autocron_pool_running", {}, 1.0 if running else 0.0))
    lines = []
    for name, kind, text in _METRIC_FAMILIES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"] + samples[name]
    return "\n".join(lines) + "\n"


def _metrics_page(store: _Store) -> str:
    """GET /metrics of `store`: its values, and its machines' pools (SQLite: this one's)."""
    now = store.now()
    running = store.pool_running()
    pools: dict[str, tuple[int, float]] = {}     # pools of one name (two containers): one
    for m in store.machine_rows():              # series, their workers and the stalest lease
        workers, age = pools.get(m.name, (0, 0.0))
        pools[m.name] = (workers + len(m.workers), max(age, m.since))
    machines = [(name, workers, age) for name, (workers, age) in sorted(pools.items())]
    row = store.pool_row() if running and not store.leased else None
    if row is not None:
        machines.append((_machine_name(), len(row.workers), 0.0))
    return _metrics_text(store.metric_values(now), machines, running, now)


def _machine_state(machine: _MachineRow) -> str:
    """A machine's pool as its lease shows it: running, late, or lost (settled by the next
    pool that looks)."""
    if machine.since < _lease_ttl / 2:
        return "running"
    if machine.since < _lease_ttl:
        return f"late: no heartbeat for {machine.since:.0f} s"
    return f"lost: no heartbeat for {_duration(machine.since)}"


def _url_part(text: str) -> str:
    """Text for a URL's query."""
    import urllib.parse
    return urllib.parse.quote(text, safe="")


def _error_line(error: Optional[str]) -> str:
    """A stored error (JSON) as one line: its type and its message's first line."""
    if not error:
        return ""
    found = json.loads(error)
    first = (found.get("message") or "").strip().split("\n", 1)[0]
    return _shorten(f"{found.get('type', '')}: {first}" if first else found.get("type", ""),
                    120)


def _until_field(now: float) -> str:
    """A bulk action's bound: it acts on the calls its question counted, none made since."""
    return f"<input type='hidden' name='until' value='{now!r}'>"


def _until_value(text: str) -> float:
    """A bulk action's bound from its form (_until_field); one that is not a time acts on
    nothing."""
    try:
        until = float(text)
    except ValueError:
        return 0.0
    return until if math.isfinite(until) else 0.0


def _status_html(status: str) -> str:
    """A stored status in the API's words (Result.status): a call handed to a worker or
    waiting on others is waiting, and says which."""
    public, detail = {"queued": ("waiting", "in a worker"),
                      "blocked": ("waiting", "on other calls")}.get(status, (status, ""))
    more = f" <small>({detail})</small>" if detail else ""
    return f"<span class='{_h(public)}' data-status='{_h(public)}'>{_h(public)}</span>{more}"


def _task_filter(query: dict[Any, Any]) -> Union[_TaskFilter, str]:
    """The task list's filter from its query (_TaskFilter), or why it is refused."""
    status = query.get("status") or None
    if status is not None and status not in _STATUSES:
        return f"status must be one of {', '.join(_STATUSES)}, got {status!r}"
    function = query.get("function") or None
    if function is not None and not function.isprintable():   # PostgreSQL refuses a NUL
        return f"function must be (a part of) a function's name, got {function!r}"
    named = (query.get("id") or "").lower() or None
    if named is not None and not re.fullmatch(r"[0-9a-f]{1,16}(-[0-9]{1,19})?", named):
        return (f"id must be the start of a task's id (hex digits) or a whole or short id, "
                f"got {named!r}")
    times: list[Optional[float]] = []
    for name in ("since", "until"):
        text = query.get(name) or ""
        try:
            moment = _dt.datetime.fromisoformat(text) if text else None
        except ValueError:
            return f"{name} must be a local time as YYYY-MM-DDTHH:MM, got {text!r}"
        try:
            times.append(moment.timestamp() if moment is not None else None)
        except (ValueError, OverflowError, OSError):
            return f"{name} is out of the range of times this machine can count: {text!r}"
    prefix = named if named is not None and "-" not in named else None
    return _TaskFilter(status, function, prefix, times[0], times[1])


def _task_filter_form(query: dict[Any, Any]) -> str:
    """The task list's filter, as its query has it."""
    status = query.get("status") or ""
    choices = "".join(f"<option{' selected' if s == status else ''}>{s}</option>"
                      for s in _STATUSES)
    fields = "".join(
        f" <input name='{name}' placeholder='{hint}' value='{_h(query.get(name, ''))}'"
        f"{kind}>" for name, hint, kind in (
            ("function", "function (a part of its name)", " size='28'"),
            ("id", "id (its start)", " size='18'"),
            ("since", "since", " type='datetime-local'"),
            ("until", "until", " type='datetime-local'")))
    return (f"<form method='get' action='/tasks' data-filter><select name='status'><option "
            f"value=''>any status</option>{choices}</select>{fields} <button>show</button>"
            "</form>")


def _fold_traceback(text: str) -> str:
    """A traceback from the user's code on: autocron's own frames (the worker that called
    it) folded away, with a line that says how many."""
    lines, kept, folded, ours = text.splitlines(), [], 0, False
    module = os.path.basename(__file__)
    for line in lines:
        if line.startswith('  File "'):
            ours = os.path.basename(line[8:].split('"', 1)[0]) == module
            folded += ours
        elif not line.startswith("    "):
            ours = False
        if not ours:
            kept.append(line)
    if folded:
        at = 1 if kept and kept[0].startswith("Traceback") else 0
        kept.insert(at, f"  [{folded} frame{'s' if folded > 1 else ''} of autocron folded "
                        "away]")
    return "\n".join(kept)


def _ran_on(details: Optional[_CallDetails], status: str) -> str:
    """The worker (and machine) that ran a call's last attempt, or runs it."""
    if details is None or details.worker is None or status in ("waiting", "blocked"):
        return ""
    machine = f" on {details.machine}" if details.machine else ""
    return f"worker pid {details.worker}{machine}"


def _retry_policy(details: _CallDetails, row: _ResultRow) -> str:
    """A call's retries and timeout as its page says them, with its next attempt's time
    when one is due to run again."""
    policy = (f"{details.retries} retries, {details.retry_delay:g} s before the first, times "
              f"{details.backoff:g} at each next" if details.retries else "no retries")
    if details.timeout:
        policy += f"; timeout {details.timeout:g} s"
    if row.status == "waiting" and row.attempts:
        policy += f"; next attempt {_stamp(details.due)}"
    return policy


def _html_table(headings: Iterable[str], rows: str) -> str:
    """A table of the dashboard: a row of headings (escaped here), then `rows`, the <tr>
    elements a page made (each escaping what it shows)."""
    head = "".join(f"<th>{_h(heading)}</th>" for heading in headings)
    return f"<table><tr>{head}</tr>{rows}</table>"


class _DashboardPages:
    """The pages of one database's dashboard, each HTML from escaped values; _Dashboard
    routes the requests to them."""

    def __init__(self, store: Any, token: Optional[str]):
        self.store = store
        self.token = token             # required on every request, if set
        self.secret = _url_secret(24)   # carried by every action's form
        self._made = threading.local()     # what the page being made read (_counts)

    def begin_page(self) -> None:
        """A page is being made: what the last one read is stale."""
        self._made.counts = None

    def _counts(self, finished: bool = True) -> tuple[Any, ...]:
        """The store's counts (see counts), read once for the page being made: on SQLite
        each read walks the table for the held calls (they have no index)."""
        read = getattr(self._made, "counts", None)
        if read is None or (finished and not read[0]):
            read = self._made.counts = (finished, self.store.counts(self.store.now(), finished))
        return cast(tuple[Any, ...], read[1])

    def _form(self, action: str, label: str, fields: str = "", ask: str = "") -> str:
        """A button that POSTs `action` with the page's secret (and `fields`), after the
        question `ask` if one is given."""
        confirm = f" onsubmit='return confirm({_h(json.dumps(ask))})'" if ask else ""
        return (f"<form method='post' action='{_h(action)}'{confirm}><input type='hidden' "
                f"name='secret' value='{_h(self.secret)}'>{fields}<button data-action="
                f"'{_h(label)}'>{_h(label)}</button></form>")

    # -- the pages

    def _layout(self, title: str, body: str, notebook: bool = False) -> str:
        # In a notebook's frame the links and buttons open the dashboard in a tab: no other
        # page may be framed.
        base = "<base target='_blank'>" if notebook else ""
        return (f"<!doctype html><html><head><meta charset='utf-8'>{base}<title>autocron: "
                f"{_h(title)}</title><link rel='icon' href='{_DASH_ICON}'><style>{_DASH_CSS}"
                f"</style></head><body><header><b>"
                f"autocron</b><a href='/'>Overview</a><a href='/tasks'>Tasks</a>"
                f"<a href='/crons'>Cron jobs</a><a href='/queues'>Queues</a>"
                f"<a href='/pool'>Pool</a><span>"
                f"{_h(self.store.path)}</span></header>"
                f"<main>{self._banner()}<h1>{_h(title)}</h1>{body}</main><script>{_DASH_JS}"
                "</script></body></html>")

    def _banner(self) -> str:
        """Every page's warning when no pool runs for the database: since when, as far as
        is known, and what waits for one."""
        if self.store.pool_running():
            return ""
        stopped = self.store.settings().get("pool_ended")
        lost = [m for m in self.store.machine_rows()]       # leases that ran out, unsettled
        since = max([m.heartbeat for m in lost] + ([stopped] if stopped else []), default=None)
        row = None if self.store.leased else self.store.pool_row()
        if row is not None:                  # its owner ended without stopping it
            when = f": the last one, started {_stamp(row.started)}, ended without stopping"
        else:
            when = f" since {_stamp(since)}" if since is not None else ""
        waiting = sum(n for status, n in self._counts(False)[0].items() if status in _WAITING)
        return (f"<p class='banner error' data-banner='no-pool'>No pool is running for this "
                f"database{_h(when)}. {waiting} calls wait; they run when an application "
                "calls autocron.start() on it.</p>")

    def _overview(self) -> str:
        now = self.store.now()
        counts, due = self._counts()
        # the API's statuses, each a link to its list; "waiting" split by why
        shown = (("waiting", sum(counts.get(s, 0) for s in _WAITING), "waiting"),
                 ("due now", due, "waiting"), ("on other calls", counts.get("blocked", 0),
                                               "waiting"),
                 ("in a worker", counts.get("queued", 0), "waiting"),
                 ("running", counts.get("running", 0), "running"),
                 ("ready", counts.get("ready", 0), "ready"),
                 ("error", counts.get("error", 0), "error"),
                 ("cancelled", counts.get("cancelled", 0), "cancelled"))
        cards = "".join(f"<a class='card {_h(status)}' data-count='{_h(k)}' href='/tasks?"
                        f"status={_h(status)}'><b>{v}</b>{_h(k)}</a>"
                        for k, v, status in shown)
        finished = self.store.finished_since(now - 3600, _DASH_STATS)
        errors = sum(1 for row in finished if row.status == "error")
        rate = f"{errors / len(finished) * 100:.1f}%" if finished else "-"
        failing: dict[str, int] = {}
        for row in finished:
            if row.status == "error":
                failing[row.name] = failing.get(row.name, 0) + 1
        failures = "".join(
            f"<tr data-failing='{_h(name)}'><td><a href='/tasks?status=error&function="
            f"{_h(_url_part(name))}'>{_h(name)}</a></td><td>{n}</td></tr>"
            for name, n in sorted(failing.items(), key=lambda item: (-item[1], item[0])))
        times: dict[str, list[float]] = {}
        for row in finished:
            if row.started is not None and row.finished is not None:
                times.setdefault(row.name, []).append(row.finished - row.started)
        spans = {name: (_percentile(t, .5), _percentile(t, .95)) for name, t in times.items()}
        top = max((p95 for _, p95 in spans.values()), default=0.0)
        rows = "".join(f"<tr><td>{_h(name)}</td><td>{len(times[name])}</td><td>{p50:.3f}</td>"
                       f"<td>{p95:.3f}</td><td>{_run_time_bar(p50, p95, top)}</td></tr>"
                       for name, (p50, p95) in sorted(spans.items()))
        sample = "" if len(finished) < _DASH_STATS else (
            f"<p data-sample>Counted over the newest {_DASH_STATS:,} tasks that finished in "
            "the last hour.</p>")
        return (f"<div class='cards'>{cards}</div>{_zone_note(now)}{self._running(now)}"
                f"<h2>Finished per minute, "
                f"the last hour</h2>{_minute_chart(finished, now)}{sample}<p>Error rate in "
                f"the last hour: <b data-error-rate>{rate}</b></p><h2>Failures per function, "
                "the last hour</h2>" + (_html_table(("function", "errors"), failures)
                                        if failures else "<p data-failing-none>None.</p>") +
                f"<h2>Run time per function (s), the last hour</h2>"
                f"{_run_time_chart(finished, now)}" +
                _html_table(("function", "runs", "p50", "p95", ""), rows))

    def _running(self, now: float) -> str:
        """The overview's calls running now (the first ten), with their progress."""
        rows = []
        for task in self.store.task_rows(("running",), 10, True):
            state = self.store.call_state(task.uid)
            reported = state[1] if state else None
            progress = _progress_text(tuple(json.loads(reported))) if reported else ""
            rows.append(f"<tr data-running='{_h(task.uid)}'><td><a href='/task/{_h(task.uid)}'>"
                        f"{_h(_short_id(task.uid))}</a></td><td>{_h(task.name)}</td><td>"
                        f"{_h(_shorten(task.args, 40))}</td><td>"
                        f"{_h(_duration(now - (task.started or now)))}</td><td "
                        f"data-progress>{_h(progress.strip())}</td></tr>")
        return ("<h2>Running now</h2>" + _html_table(
            ("id", "function", "arguments", "for", "progress"), "".join(rows))) if rows else ""

    def _queues(self) -> str:
        rows = "".join(
            f"<tr data-queue='{_h(name)}'><td>{_h(name)}</td><td>{n['waiting']}</td><td>"
            f"{n['running']}</td><td>{n['started_last_minute']}</td><td>"
            f"{n['concurrency'] or '-'}</td><td>{_h(n['rate'] or '-')}</td><td>"
            f"{self._cancel_all(name, n['waiting']) if n['waiting'] else ''}</td></tr>"
            for name, n in _queues_shown(self.store).items())
        change = self._form("/queue/limit", "limit", (
            "<input name='queue' placeholder='queue' required> <input name='concurrency' "
            "placeholder='concurrency: N or none'> <input name='rate' placeholder='rate: "
            "N/minute or none'> "))
        return (_html_table(("queue", "waiting", "running", "started in the last minute",
                             "concurrency", "rate", ""), rows) +
                f"<p>A field left empty keeps the queue's stored limit; none lifts it.</p>"
                f"{change}")

    def _cancel_all(self, queue: str, waiting: int) -> str:
        """A queue's button that cancels its waiting calls (those made by now: the page's
        count, less those a worker holds already), after a question that counts them."""
        return self._form("/queue/cancel", f"cancel {waiting} waiting", (
            f"<input type='hidden' name='queue' value='{_h(queue)}'>"
            f"{_until_field(self.store.now())}"), ask=(
                f"Cancel the {waiting} waiting calls of the queue {queue}? Those not handed to "
                "a worker yet will not run; the calls that depend on them fail."))

    def _pool(self) -> str:
        now = self.store.now()
        settings = self.store.settings()
        row = self.store.pool_row() if self.store.pool_running() else None
        if row is None:
            head = "<p data-pool='stopped'>No pool runs.</p>"
        else:
            head = (f"<p data-pool='running'>Owner pid {row.owner}, manager pid "
                    f"{row.manager}, up {_h(_duration(now - row.started))}; worker pids "
                    f"{_h(' '.join(map(str, row.workers)) or '-')}.</p>")
        failed = settings["initializer_error"]
        if failed:
            head += (f"<p class='error' data-problem='initializer'>The initializer failed on "
                     f"{_h(failed['machine'])} at {_local_time(failed['at'])}: "
                     f"{_h(failed['message'])}. No worker starts until it works; calls wait."
                     "</p>")
        machines = "".join(
            f"<tr data-machine='{_h(m.name)}' data-state='{_h(_machine_state(m))}'><td>"
            f"{_h(m.name)}</td><td>{_h(_machine_state(m))}</td><td>{m.owner}</td><td>"
            f"{len(m.workers)}</td><td>{_stamp(m.heartbeat)} ({m.since:.0f} s ago)"
            "</td></tr>" for m in self.store.machine_rows())
        if machines:
            head += "<h2>Machines</h2>" + _html_table(
                ("machine", "state", "owner pid", "workers", "last heartbeat"), machines)
        running = "".join(
            f"<tr data-task-id='{_h(task.uid)}'><td>{task.worker}</td><td><a href='/task/"
            f"{_h(task.uid)}'>{_h(task.name)}</a></td><td>"
            f"{_h(_duration(now - task.started))}</td></tr>"
            for task in self.store.task_rows(("running",), _DASH_PAGE, True)
            if task.started is not None)
        resize = self._form("/pool/workers", "set workers",
                            f"<input name='workers' size='4' value='{settings['workers']}'> ")
        return (f"{head}<h2>Running now</h2>" +
                _html_table(("worker pid", "task", "running for"), running) +
                f"<h2>Workers</h2><p>{settings['workers']} per machine. {resize}</p>")

    def _crons(self) -> str:
        now = self.store.now()
        rows, last = [], self.store.last_runs()
        for job in self.store.cron_rows():
            after = _dt.datetime.fromtimestamp(now, job.schedule.tz or _local_zone())
            status = "running" if job.running else last.get(job.name, ("", None))[0]
            field = f"<input type='hidden' name='name' value='{_h(job.name)}'>"
            remove = (f"Remove the cron job {job.name}? Its runs stay; code that still "
                      "declares it registers it again at its next start().")
            if job.retired:
                upcoming, day = "retired: its code no longer declares it", ""
                switch = self._form("/cron/resume", "resume", field)
            elif job.paused:
                upcoming, day = "paused: no runs until it is resumed", ""
                switch = self._form("/cron/resume", "resume", field)
            else:
                upcoming = ", ".join(t.strftime("%a %Y-%m-%d %H:%M")
                                     for t in itertools.islice(job.schedule.iter(after), 5))
                day = _day_timeline(job.schedule, after)
                switch = self._form("/cron/pause", "pause", field)
            rows.append(f"<tr id='cron-{_h(job.name)}' data-cron='{_h(job.name)}' "
                        f"data-paused='{int(job.paused)}'><td>"
                        f"{_h(job.name)}</td><td>{_h(job.expression)}</td><td>"
                        f"{_h(job.schedule.describe())}</td><td>{_h(upcoming)}</td><td>"
                        f"{_local_time(job.last_run) or 'never'} <span class='{_h(status)}' "
                        f"data-last-status>{_h(status)}</span></td><td>{switch}"
                        f"{self._form('/cron/remove', 'remove', field, ask=remove)}</td></tr>"
                        f"<tr><td colspan='6'>{day}</td></tr>")
        return _html_table(("job", "expression", "when", "next five runs", "last run", ""),
                           "".join(rows))


class _TaskPages(_DashboardPages):
    """The dashboard's list of tasks and the page of one task."""

    def _tasks(self, wanted: _TaskFilter, query: dict[Any, Any]) -> str:
        before = _row_number(query.get("before", ""))        # page() refused a bad one
        named = query.get("id", "")
        if "-" in named:                # a whole id or a short one: the calls it names
            found = [self.store.result_row(uid) for uid in self.store.ids_named(named, 50)]
            page = _TaskPage([row for row in found if row is not None], None)
        else:
            page = self.store.task_page(wanted, before, _DASH_PAGE, _DASH_SCAN)
        rows = page.rows
        lines = "".join(
            f"<tr data-task-id='{_h(row.uuid)}'><td><a href='/task/{_h(row.uuid)}'>"
            f"{_h(_short_id(row.uuid))}</a></td><td>{_h(row.name)}</td><td>"
            f"{_h(_shorten(row.args, 60))}</td><td>{_status_html(row.status)}</td><td "
            f"data-error-line>{_h(_error_line(row.error))}</td><td>{row.attempts}</td><td>"
            f"{_stamp(row.created)}</td><td>{_stamp(row.finished)}</td><td>{_took(row)}</td>"
            "</tr>" for row in rows)
        kept = [(k, query[k]) for k in ("status", "function", "id", "since", "until")
                if query.get(k)]
        link = "<a data-page='next' href='/tasks?" + _h("&".join(
            f"{k}={_url_part(v)}" for k, v in kept + [("before", "")]))
        more = ""
        if len(rows) == _DASH_PAGE:
            more = f"<p>{link}{_row_key(rows[-1].uuid)[0]}'>older</a></p>"
        elif page.lowest is not None:
            more = (f"<p>{'No more matches' if rows else 'No match'} among the "
                    f"{_DASH_SCAN:,} rows above id {page.lowest}: {link}{page.lowest}'>look "
                    "further</a></p>")
        return (f"<p>{self._purge_form()}</p>{_task_filter_form(query)}"
                f"{self._retry_all(wanted)}{_zone_note(self.store.now())}" +
                _html_table(("id", "function", "arguments", "status", "error", "attempts",
                             "created", "finished", "took (s)"), lines) + more)

    def _purge_form(self) -> str:
        """The purge button, whose question names what goes."""
        counts = self._counts()[0]
        gone = ", ".join(f"{counts.get(status, 0)} {status}" for status in _FINISHED)
        return self._form("/purge", "purge", ask=(
            f"Purge every finished result ({gone})? Their values, errors and output go for "
            "good; waiting and running calls stay.")) + " deletes every finished result."

    def _retry_all(self, wanted: _TaskFilter) -> str:
        """On the list of a function's failed calls: retry them all, after a question that
        counts them."""
        if wanted.status != "error" or not wanted.function:
            return ""
        names = {row.name for row in self.store.task_page(_TaskFilter(
            "error", wanted.function), None, _DASH_PAGE, _DASH_SCAN).rows}
        forms = []
        now = self.store.now()
        for name in sorted(names):
            count = len(self.store.failed_unretried(name, now))
            if count:
                forms.append(self._form("/tasks/retry", f"retry all {count} failed calls of "
                                        f"{name}", f"<input type='hidden' name='function' "
                                        f"value='{_h(name)}'>{_until_field(now)}", ask=(
                                            f"Retry the {count} failed calls of {name}? Each is "
                                            "stored again as a new task.")))
        return f"<p data-retry-all>{' '.join(forms)}</p>" if forms else ""

    def _task(self, uid: str) -> Optional[str]:
        row = self.store.result_row(uid)
        if row is None:
            return None
        error = json.loads(row.error) if row.error else None
        value = _h(row.summary) if row.status == "ready" else ""
        key, reported, queue, due, waits = self.store.call_state(row.uuid) or (
            None, None, _DEFAULT_QUEUE, None, None)
        progress = _progress_text(tuple(json.loads(reported))) if reported else ""
        limited = self.store.limits().get(queue)
        why = "" if row.status not in ("waiting", "blocked") else \
            f"{waits} of the calls it depends on" if row.status == "blocked" else \
            f"its time, {_local_time(due)}" if due is not None and due > self.store.now() \
            else "its queue's limit (" + ", ".join(
                f"{name} {value}" for name, value in (
                    ("concurrency", limited.concurrency),
                    ("rate", _rate_text(limited.rate, limited.per))) if value) + ")" \
            if limited is not None else "a free worker"
        more = self.store.call_details(row.uuid)
        details = "".join(f"<tr data-field='{_h(k)}'><th>{_h(k)}</th><td>{v}</td></tr>"
                          for k, v in (
            ("id", _h(row.uuid)), ("function", _h(row.name)), ("arguments", _h(row.args)),
            ("status", _status_html(row.status)),
            ("attempts", row.attempts), ("created", _stamp(row.created)),
            ("started", _stamp(row.started)), ("finished", _stamp(row.finished)),
            ("ran for", _h(_took(row) and _took(row) + " s")),
            ("waited", _h(f"{max(0.0, row.started - more.due):.3f} s" if more and row.started
                          and more.due <= row.started else "")),
            ("ran on", _h(_ran_on(more, row.status))), ("value", value),
            ("key", _h(key or "")), ("queue", _h(queue)), ("waits for", _h(why)),
            ("progress", _h(progress.strip())),
            ("retries", _h(_retry_policy(more, row) if more else "")),
            ("cron job", f"<a href='/crons#cron-{_h(more.cron)}'>{_h(more.cron)}</a>"
             if more and more.cron else "")))
        attempts = self.store.attempt_errors(row.uuid)
        failure = "" if not error else (
            f"<h2>Error</h2><pre data-error>{_h(error.get('type'))}: {_h(error.get('message'))}"
            f"\n\n{_h(_fold_traceback(error.get('traceback') or ''))}</pre>")
        if len(attempts) > 1 or attempts and row.status not in ("error", "cancelled"):
            failure += "<h2>Attempts that failed</h2>" + _html_table(
                ("attempt", "started", "finished", "error", ""), "".join(
                    f"<tr data-attempt='{n}'><td>{n}</td><td>{_stamp(a.get('started'))}</td>"
                    f"<td>{_stamp(a.get('finished'))}</td><td>{_h(_error_line(json.dumps(a)))}"
                    f"</td><td><details><summary>traceback</summary><pre>"
                    f"{_h(_fold_traceback(a.get('traceback') or ''))}</pre></details></td></tr>"
                    for n, a in enumerate(attempts, 1)))
        output = f"<h2>Output</h2><pre data-output>{_h(row.output)}</pre>" if row.output else ""
        actions = ""
        if row.status == "running":
            actions = self._form(f"/task/{row.uuid}/cancel", "cancel", "<input type='hidden' "
                                 "name='force' value='1'>", ask=(
                                     "Stop this running task? A synchronous task's worker is "
                                     "terminated and replaced; an async task's coroutine is "
                                     "cancelled."))
        elif row.status in _WAITING:
            actions = self._form(f"/task/{row.uuid}/cancel", "cancel", ask=(
                f"Cancel this waiting call of {row.name}? It will not run; the calls that "
                "depend on it fail."))
        elif row.status in ("error", "cancelled"):
            actions = self._form(f"/task/{row.uuid}/retry", "retry") + \
                " stores the same call again, as a new task."
        earlier, later = self.store.retry_links(row.uuid)
        links = _call_links_html(self.store.call_links(row.uuid))
        if earlier:
            links += (f"<p data-retry-of>A retry of <a href='/task/{_h(earlier)}'>"
                      f"{_h(earlier)}</a>.</p>")
        if later:
            links += "<p data-retried-as>Retried as " + ", ".join(
                f"<a href='/task/{_h(uid)}'>{_h(uid)}</a>" for uid in later) + ".</p>"
        return (f"<table data-task-id='{_h(row.uuid)}'>{details}</table>{links}{actions}"
                f"{failure}{output}")


class _Dashboard(_TaskPages):
    """The pages and actions of one database; the HTTP handler calls page() and act()."""

    def page(self, path: str, query: dict[Any, Any]) -> tuple[Any, ...]:
        """(status, body) of a GET."""
        self.begin_page()
        if path == "/":
            return 200, self._layout("Overview", self._overview())
        if path == "/notebook":                  # the overview, in a notebook's frame
            return 200, self._layout("Overview", self._overview(), notebook=True)
        if path == "/favicon.ico":               # the browser asks; there is none
            return 204, ""
        if path == "/tasks":
            before = query.get("before", "")
            if before and _row_number(before) is None:
                return 400, f"before must be a row number from the page's own links, got " \
                            f"{before!r}"
            wanted = _task_filter(query)
            if isinstance(wanted, str):
                return 400, wanted
            return 200, self._layout("Tasks", self._tasks(wanted, query))
        if path.startswith("/task/"):
            uid = path[len("/task/"):]
            body = self._task(uid) if _task_id(uid) else None
            return (200, self._layout("Task", body)) if body else (404, "no such task")
        if path == "/crons":
            return 200, self._layout("Cron jobs", self._crons())
        if path == "/pool":
            return 200, self._layout("Pool", self._pool())
        if path == "/queues":
            return 200, self._layout("Queues", self._queues())
        return 404, "no such page"

    def act(self, path: str, form: dict[Any, Any]) -> tuple[Any, ...]:
        """(status, where to go next) of a POST: 403 without the page's secret."""
        if not _same(form.get("secret", ""), self.secret):
            return 403, "this action did not come from the dashboard's page"
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "task" and not _task_id(parts[1]):
            return 404, "no such task"
        if len(parts) == 3 and parts[0] == "task" and parts[2] == "cancel":
            Result(parts[1], self.store).cancel(force=form.get("force") == "1")
            return 303, f"/task/{parts[1]}"
        if len(parts) == 3 and parts[0] == "task" and parts[2] == "retry":
            row = self.store.result_row(parts[1])
            if row is None:
                return 404, "no such task"
            fresh = self.store.retry(parts[1], self.store.now())
            if fresh is None:
                return 409, ("only a failed or cancelled task can be retried; this one is "
                             f"{row.status}")
            _wake_pool(self.store.wake_path)
            return 303, f"/task/{fresh}"
        if path in ("/cron/pause", "/cron/resume"):
            name = form.get("name", "")
            found = self.store.pause_cron(name) if path == "/cron/pause" else \
                _resume_cron(self.store, name) is not None
            return (303, "/crons") if found else (404, f"no cron job named {name!r}")
        if path == "/cron/remove":
            name = form.get("name", "")
            return (303, "/crons") if self.store.remove_cron(name) else \
                (404, f"no cron job named {name!r}")
        if path == "/purge":
            self.store.purge()
            return 303, "/tasks"
        until = _until_value(form.get("until", ""))     # what the question counted
        if path == "/tasks/retry":         # every failed call of a function, not retried yet
            function, now = form.get("function", ""), self.store.now()
            fresh = [self.store.retry(uid, now)
                     for uid in self.store.failed_unretried(function, until)]
            _wake_pool(self.store.wake_path)
            return 303, f"/tasks?status=waiting&function={_url_part(function)}" if fresh else \
                f"/tasks?status=error&function={_url_part(function)}"
        if path == "/queue/cancel":        # every waiting call of a queue
            _withdraw(self.store, *self.store.waiting_in(form.get("queue", ""), until))
            return 303, "/queues"
        if path == "/queue/limit":
            return _limit_from_form(self.store, form)
        if path == "/pool/workers":
            workers = form.get("workers", "")
            if not workers.isdigit() or not 1 <= int(workers) <= 1000:
                return 400, f"workers must be a whole number from 1 to 1000, got {workers!r}"
            self.store.set_setting("workers", int(workers))
            _wake_pool(self.store.wake_path)         # a pool on this machine reads it at once
            return 303, "/pool"
        return 404, "no such action"


class _DashboardRequest:
    """One request to the dashboard, answered by its _Dashboard (`board`): the token, the
    page's own site only, the form read from memory. http.server's request handler, imported
    only when a dashboard is served, completes it (_dashboard_handler)."""

    board: "_Dashboard"
    server_version = "autocron"
    if TYPE_CHECKING:       # http.server.BaseHTTPRequestHandler's, which completes it
        server: Any
        request: Any
        path: str
        headers: Any
        def send_response(self, code: int, message: Optional[str] = None) -> None: ...
        def send_header(self, keyword: str, value: str) -> None: ...
        def end_headers(self) -> None: ...
    # What a request line that cannot be parsed is answered in: the stdlib's default,
    # HTTP/0.9, has no status line, and a client cannot tell the error.
    default_request_version = "HTTP/1.0"

    def setup(self) -> None:
        # The intake (_Intake) has read the whole request already: the handler reads it
        # from memory, and only a write can wait on the client, _DASH_READ s at most.
        self.connection, request = self.request
        self.connection.settimeout(_DASH_READ)
        self.rfile = io.BytesIO(request)
        self.wfile = self.connection.makefile("wb")

    def finish(self) -> None:
        with contextlib.suppress(OSError):       # a client that went away or reads not
            self.wfile.close()

    def log_message(self, *args: Any) -> None:       # quiet: the page polls every 2 s
        pass

    def _cookie(self) -> str:
        """The name of the token's cookie. A browser sends a host's cookies to each of
        its ports: with the port in the name, two dashboards of one host neither read
        nor overwrite each other's."""
        return f"autocron_token_{self.server.server_address[1]}"

    def _signed_in(self) -> bool:
        cookies = dict(part.strip().partition("=")[::2] for part in
                       self.headers.get("Cookie", "").split(";") if "=" in part)
        return _same(cookies.get(self._cookie(), ""), self.board.token)

    def _sign_in(self, url: Any, query: list[Any]) -> None:
        """The printed address was opened: keep its token in a cookie that no script
        reads and no other site's request carries, and go on to the address without it
        (out of the address bar, the history and the next page's Referer)."""
        import urllib.parse
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "token"])
        self._send(303, "", (("Location", url.path + ("?" + rest if rest else "")),) +
                   self._keep(True))

    def _keep(self, token: bool) -> tuple[Any, ...]:
        """The header that keeps the token in the cookie, if the request carried it."""
        return (("Set-Cookie", f"{self._cookie()}={self.board.token}; HttpOnly; "
                               "SameSite=Strict; Path=/"),) if token else ()

    def _send(self, status: int, body: str, headers: tuple[Any, ...] = (),
              framed: bool = False, kind: Optional[str] = None) -> None:
        """Answer; `framed`: the notebook's view, which a notebook page may frame; `kind`:
        the Content-Type, if not a page's or an error's."""
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind or ("text/html; charset=utf-8" if status < 300 or
                                                  status == 404 else "text/plain; charset=utf-8"))
        self.send_header("Content-Length", str(len(data)))
        ancestors = _DASH_NOTEBOOKS if framed else "'none'"
        self.send_header("Content-Security-Policy",
                         f"{_DASH_POLICY}; frame-ancestors {ancestors}")
        if not framed:
            self.send_header("X-Frame-Options", "DENY")    # browsers without CSP 2
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _foreign(self, post: bool) -> Optional[tuple[Any, ...]]:
        """(status, text) for a request another site's page made, else None. On the
        loopback a page of any site can rebind its own name to 127.0.0.1 and reach the
        dashboard with it: its requests carry that name as Host. A form another site
        posts carries that site as Origin (scripts send none: the token and the page's
        secret still hold)."""
        host = self.headers.get("Host", "")
        names = self.server.names
        if names is not None and host.lower() not in names:
            return 421, (f"this dashboard answers to {' and '.join(names.shown)} only: "
                         f"open {self.server.home} (the request was for {host!r})")
        origin = self.headers.get("Origin")
        if post and origin is not None and origin.lower() != f"http://{host.lower()}":
            return 403, (f"this action came from another site ({origin}): use the "
                         "dashboard's own page")
        return None

    def _scrape(self) -> None:
        """GET /metrics, for Prometheus: the token as "Authorization: Bearer T" (or the
        dashboard's cookie)."""
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and _same(given.strip(), self.board.token) or
                self._signed_in()):
            return self._send(401, "a token is needed: send it as the header "
                                   "'Authorization: Bearer TOKEN' (Prometheus: "
                                   "authorization: {credentials: TOKEN} in the scrape job)",
                              (("WWW-Authenticate", 'Bearer realm="autocron"'),))
        try:
            self._send(200, _metrics_page(self.board.store), kind=_METRICS_TYPE)
        except DatabaseError as error:
            self._send(503, f"the database cannot be read now: {error}",
                       (("Retry-After", str(_DASH_RETRY)),))

    def _answer(self, post: bool) -> None:
        import urllib.parse
        refused = self._foreign(post)
        if refused:
            return self._send(*refused)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/metrics" and not post:
            return self._scrape()
        pairs = urllib.parse.parse_qsl(url.query)
        query = dict(pairs)
        given = query.get("token")
        token = given is not None and _same(given, self.board.token)
        # The notebook's view keeps the token in its address: under a notebook of
        # another site (localhost, for a dashboard on 127.0.0.1) its frame can neither
        # set the cookie nor send it, and its live updates fetch that address.
        framed = url.path == "/notebook" and not post
        if token and not post and not framed:
            return self._sign_in(url, pairs)
        if not (token and framed or self._signed_in()):
            return self._send(401, "a token is needed: open the address that `autocron "
                                   "dashboard` printed, with its ?token=... (in a "
                                   "notebook, the link under autocron.dashboard())",
                              framed=framed)
        try:
            if post:
                form, refused = self._form()
                if refused:
                    return self._send(*refused)
                status, where = self.board.act(url.path, form)
                if status == 303:
                    return self._send(303, "", (("Location", where),))
                return self._send(status, where)
            status, body = self.board.page(url.path, query)
            self._send(status, body, self._keep(token), framed)
        except DatabaseError as error:     # weather (a server restarting): wait it out
            self._send(503, f"the database cannot be read now; this page tries again "
                            f"every {_DASH_RETRY} s: {error}",
                       (("Refresh", str(_DASH_RETRY)), ("Retry-After", str(_DASH_RETRY))))

    def _form(self) -> tuple[Any, ...]:
        """(the POST's form, None), or (None, (status, text)) for a body it does not
        read: one without a length, of a length that is no whole number or too large
        (the intake read no more of it than the head)."""
        import urllib.parse
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths or "Transfer-Encoding" in self.headers:
            return None, (411, "a POST needs a Content-Length header (and no "
                               "Transfer-Encoding)")
        given = ", ".join(lengths)
        if len(lengths) > 1 or not (given.isascii() and given.strip().isdigit()):
            return None, (400, f"Content-Length must be a whole number of bytes, got "
                               f"{given!r}")
        if int(given) > _DASH_FORM:
            return None, (413, f"a form may have {_DASH_FORM} bytes at most, got "
                               f"{int(given)}")
        body = self.rfile.read(int(given))
        if len(body) < int(given):
            return None, (400, f"the request ended after {len(body)} of its "
                               f"{int(given)} bytes: send the whole form")
        return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))), None

    def do_GET(self) -> None:
        self._answer(post=False)

    def do_POST(self) -> None:
        self._answer(post=True)


def _dashboard_handler(board: _Dashboard) -> type:
    """The request handler class of a dashboard server answered by `board`."""
    import http.server
    return type("Handler", (_DashboardRequest, http.server.BaseHTTPRequestHandler),
                {"board": board})


def _request_end(data: bytes) -> Optional[int]:
    """Where the request that `data` begins with ends: after its head and the body its
    Content-Length announces; None while more is to come. A length that is no whole number
    or more than a form may have ends it after the head: the handler refuses it, and
    nothing reads on (`Content-Length: -1` would read to the end of the stream)."""
    blank = re.search(rb"\r?\n\r?\n", data)
    if blank is None:
        return len(data) if len(data) > _DASH_HEAD else None   # the handler says what is wrong
    lengths = re.findall(rb"(?im)^content-length:[ \t]*([^\r\n]*)", data[:blank.end()])
    if len(lengths) != 1 or not lengths[0].strip().isdigit() or int(lengths[0]) > _DASH_FORM:
        return blank.end()
    end = blank.end() + int(lengths[0])
    return end if len(data) >= end else None


class _Intake:
    """Reads the requests of the connections a dashboard accepts, in one thread, and hands
    each whole one to `answer(connection, address, request bytes)`. A client that sends half
    a request and waits costs a socket, not a thread that the owner's page needs, and
    only until its deadline (_DASH_READ s for the whole request: a byte now and then does
    not extend it). At most _DASH_CONNECTIONS connections are open: beyond, the one that
    has been sending its request longest is closed (a flood of idle connections can delay
    a page, not refuse it), or, if every one is being answered, the new one."""

    def __init__(self, answer: Callable[..., Any]):
        self.answer = answer
        self.selector = selectors.DefaultSelector()
        self.waker, self.wake = socket.socketpair()     # add() and close() wake the thread
        self.waker.setblocking(False)
        self.wake.setblocking(False)
        self.selector.register(self.waker, selectors.EVENT_READ)
        self.lock = threading.Lock()
        self.arrived: list[Any] = []            # (connection, address) accepted, not read yet
        self.answering = 0                 # connections handed over, not closed yet
        self.reading: dict[Any, Any] = {}   # {connection: [address, deadline, bytes so far]}
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="autocron-dashboard-intake",
                                       daemon=True)
        self.thread.start()

    def add(self, connection: socket.socket, address: Any) -> None:
        with self.lock:
            self.arrived.append((connection, address))
        self._wake()

    def done(self) -> None:
        """A connection handed over is closed."""
        with self.lock:
            self.answering -= 1

    def close(self) -> None:
        """Close every connection not handed over yet, and end the thread."""
        self.closed = True
        self._wake()
        self.thread.join(5)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):          # a full pipe wakes the thread all the same
            self.wake.send(b"\0")

    def _run(self) -> None:
        try:
            while not self.closed:
                now = time.monotonic()
                first = min((entry[1] for entry in self.reading.values()), default=now + 1)
                for key, _ in self.selector.select(min(max(first - now, 0), 1)):
                    if key.fileobj is self.waker:
                        with contextlib.suppress(OSError):
                            self.waker.recv(4096)
                        self._admit()
                    elif key.fileobj in self.reading:
                        self._read(cast(socket.socket, key.fileobj))
                self._expire(time.monotonic())
        finally:
            for connection in list(self.reading):
                self._drop(connection)
            with self.lock:
                for connection, _ in self.arrived:
                    connection.close()
            self.selector.close()
            self.waker.close()
            self.wake.close()

    def _admit(self) -> None:
        with self.lock:
            arrived, self.arrived = self.arrived, []
        for connection, address in arrived:
            if len(self.reading) + self.answering >= _DASH_CONNECTIONS:
                if not self.reading:
                    connection.close()
                    continue
                self._drop(min(self.reading, key=lambda c: self.reading[c][1]))
            connection.setblocking(False)
            self.reading[connection] = [address, time.monotonic() + _DASH_READ, b""]
            self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket) -> None:
        entry = self.reading[connection]
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        entry[2] += chunk
        end = _request_end(entry[2]) if chunk else len(entry[2])
        if end is None:
            return
        if not entry[2]:                      # closed without a word: nothing to answer
            return self._drop(connection)
        self.selector.unregister(connection)
        del self.reading[connection]
        with self.lock:
            self.answering += 1
        connection.setblocking(True)
        self.answer(connection, entry[0], entry[2])

    def _expire(self, now: float) -> None:
        for connection in [c for c, entry in self.reading.items() if entry[1] <= now]:
            text = (f"the request took more than {_DASH_READ:.0f} s to arrive: send it at "
                    "once").encode()
            with contextlib.suppress(OSError):      # a best effort: the client may be gone
                connection.send(b"HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain; "
                                b"charset=utf-8\r\nContent-Length: %d\r\nConnection: close"
                                b"\r\n\r\n%s" % (len(text), text))
            self._drop(connection)

    def _drop(self, connection: socket.socket) -> None:
        self.selector.unregister(connection)
        del self.reading[connection]
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()


def _url_host(host: str) -> str:
    """An address as a URL writes it: an IPv6 one in brackets."""
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    """Is `host` (an address or a name to bind) one of the machine's loopback addresses?"""
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _HostNames(frozenset[str]):
    """The Host headers a dashboard on the loopback answers: its address and localhost,
    with its port or without; `shown` names them for a refusal."""

    shown: list[str]

    def __new__(cls, host: str, port: int) -> "_HostNames":
        names = list(dict.fromkeys((_url_host(host).lower(), "localhost")))
        made = super().__new__(cls, names + [f"{name}:{port}" for name in names])
        made.shown = [f"{name}:{port}" for name in names]
        return made


def _check_token(token: Optional[str]) -> None:
    """Refuse a token that can be guessed (or that a URL or a cookie would mangle): it is
    all that keeps other users, and anyone on the network, from the pages and actions."""
    if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{22,}", token):
        raise ValueError('the token must be 22 or more letters, digits, "-" or "_"; make one '
                         'with: python -c "import secrets; print(secrets.token_urlsafe(32))"')


if TYPE_CHECKING:       # what completes it at run time (_dashboard_server)
    from http.server import HTTPServer as _ServerBase
else:
    _ServerBase = object


class _DashboardServing(_ServerBase):
    """The dashboard's server, completed by http.server's (imported only when a dashboard is
    served: _dashboard_server). Requests are answered by a few long-lived threads: each
    keeps its connection to the database (a thread per request would connect to PostgreSQL
    anew every time, without a bound on how many at once). The intake reads the requests
    before, so that slow clients hold no thread; one request per connection (HTTP/1.0), so
    that no idle connection waits for a second one."""

    request_queue_size = _DASH_CONNECTIONS   # a burst of clients is accepted, not dropped
    home: str                     # the address it prints
    names: Optional[_HostNames]   # the Host headers it answers (None: any)

    def server_activate(self) -> None:
        import concurrent.futures
        super().server_activate()
        self.threads = concurrent.futures.ThreadPoolExecutor(
            _DASH_THREADS, "autocron-dashboard")
        self.intake = _Intake(lambda *request: self.threads.submit(self.answer, *request))

    def process_request(self, request: Any, client_address: Any) -> None:
        self.intake.add(request, client_address)

    def answer(self, connection: socket.socket, client_address: Any, request: bytes) -> None:
        try:
            # the request travels whole, read by the intake: _DashboardRequest.setup
            self.finish_request(cast(Any, (connection, request)), client_address)
        except OSError:
            pass                          # the client went away: nothing to answer
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            self.shutdown_request(connection)
            self.intake.done()

    def server_close(self) -> None:
        super().server_close()
        if hasattr(self, "threads"):
            self.intake.close()
            self.threads.shutdown(wait=False)


def _dashboard_server(store: Any, host: str, port: int, token: Optional[str]) -> tuple[Any, ...]:
    """(a threaded HTTP server of the dashboard, bound but not serving yet, the address to
    open: the token in it). Every request needs the token (`token`, or one it makes), on the
    loopback too: every user of the machine can reach that."""
    _check_token(token)
    import http.server
    family = socket.AF_INET6 if ":" in host else socket.AF_INET     # ::1 too
    server_class = type("Server", (_DashboardServing, http.server.HTTPServer),
                        {"address_family": family})
    if token is None:
        token = _url_secret(32)
    server = server_class((host, port), _dashboard_handler(_Dashboard(store, token)))
    port = server.server_address[1]
    server.home = f"http://{_url_host(host)}:{port}/"
    # Elsewhere than the loopback a machine has names that no list here knows; the token
    # keeps out a page that rebinds one of them.
    server.names = _HostNames(host, port) if _is_loopback(host) else None
    return server, f"{server.home}?token={token}"


# In a notebook the view is a frame of /notebook, which the browser loads from the kernel's
# address. A remote kernel's (JupyterHub, VS Code remote, a notebook over https) is out of the
# browser's reach: a probe in the cell finds so, hides the frame and shows instead the view
# that the kernel renders into the cell and sends anew every _CELL_REFRESH s (a display the
# kernel updates: the browser reaches the kernel through the notebook server), with a note
# that says why and how to reach the whole dashboard. The cell view's CSS is the pages',
# each rule under the view's own element.
_CELL_REFRESH = 2.0
_CELL_CSS = "".join(
    ",".join(f".autocron-cell {part.strip()}".replace(" body", "") for part in head.split(","))
    + "{" + rule + "}" for head, _, rule in (
        part.partition("{") for part in _DASH_CSS.replace("\n", "").split("}") if "{" in part))
_CELL_PROBE = """
(function () {
  var id = %s, seen = window.autocronReach = window.autocronReach || {};
  function show(reached) {
    seen[id] = reached;
    document.querySelectorAll("[data-autocron-frame='" + id + "']").forEach(function (e) {
      e.style.display = reached ? "" : "none"; });
    document.querySelectorAll("[data-autocron-cell='" + id + "']").forEach(function (e) {
      e.style.display = reached ? "none" : ""; });
  }
  fetch(%s, {mode: "no-cors", credentials: "omit", cache: "no-store"}).then(
    function () { show(true); }, function () { show(false); });
})();
"""
# The cell view's own script, run at each update: shown while the probe found no way through.
_CELL_SHOW = """
(function () {
  var seen = window.autocronReach || {}, id = %s;
  if (seen[id] === false) document.querySelectorAll("[data-autocron-cell='" + id +
    "']").forEach(function (e) { e.style.display = ""; });
})();
"""


class _DashboardHandle:
    """What dashboard() returns: the address in its repr, the page in a notebook (a frame of
    the server, or where the browser cannot reach it, a view the kernel keeps fresh)."""

    def __init__(self, server: Any, url: str):
        self.server, self.url = server, url
        self._id = os.urandom(6).hex()
        self._views: list[Any] = []            # the cell views shown (IPython's displays)
        self._ending = threading.Event()

    def __repr__(self) -> str:
        return f"<autocron dashboard at {self.url}>"

    def _repr_html_(self) -> str:
        """The notebook's view (/notebook, the only page a notebook may frame, with the
        token in its address), the probe that finds whether the browser reaches it, and the
        address to open the whole dashboard in a tab."""
        view = self.url.replace("/?", "/notebook?", 1)
        return (f"<iframe src='{_h(view)}' width='100%' height='600' style='border:1px "
                f"solid #ddd' data-autocron-frame='{self._id}'></iframe><p><a href="
                f"'{_h(self.url)}' target='_blank'>{_h(self.url)}</a></p><script>"
                f"{_CELL_PROBE % (json.dumps(self._id), json.dumps(view))}</script>")

    def _cell_html(self) -> str:
        """The view the kernel renders into the cell: the overview, its links to the
        dashboard's address, hidden unless the probe found that address out of reach."""
        board = self.server.RequestHandlerClass.board
        board.begin_page()
        overview = board._overview().replace("href='/", f"target='_blank' href="
                                                        f"'{self.server.home}")
        return (f"<div class='autocron-cell' data-autocron-cell='{self._id}' style='display:"
                f"none'><style>{_CELL_CSS}</style><p class='banner' data-autocron-remote>This "
                f"browser cannot reach the kernel's address {_h(self.server.home)} (a remote "
                "kernel: JupyterHub, VS Code remote, a notebook served over https). The view "
                f"below is rendered by the kernel and refreshes every {_CELL_REFRESH:g} s "
                "while the kernel runs; to open the whole dashboard, forward its port to this "
                f"machine (ssh -L {self.server.server_address[1]}:127.0.0.1:"
                f"{self.server.server_address[1]} ...).</p>{board._banner()}{overview}</div>"
                f"<script>{_CELL_SHOW % json.dumps(self._id)}</script>")

    def _ipython_display_(self) -> None:
        """Shown by IPython: the frame and its probe, and beside it the cell view, all its
        displays under one id, which a thread of a kernel (not a terminal's IPython: it has
        no page) updates while the dashboard serves, with one message."""
        display: Callable[..., Any] = importlib.import_module("IPython.display").display
        display({"text/plain": repr(self), "text/html": self._repr_html_()}, raw=True)
        view = display({"text/html": self._cell_html()}, raw=True,
                       display_id=f"autocron-{self._id}")
        shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
        if not self._views and getattr(shell, "kernel", None) is not None:
            self._views.append(view)
            threading.Thread(target=self._refresh, name="autocron-cell-view",
                             daemon=True).start()

    def _refresh(self) -> None:
        shown = ""
        while not self._ending.wait(_CELL_REFRESH):
            try:
                fresh = self._cell_html()
                if fresh != shown:
                    shown = fresh
                    self._views[0].update({"text/html": fresh}, raw=True)
            except Exception:             # the database's weather, say: the next round
                _log.warning("autocron: the dashboard's view in the cell could not be "
                             "refreshed", exc_info=True)

    def stop(self) -> None:
        self._ending.set()
        self.server.shutdown()
        self.server.server_close()
        for path, handle in list(_dashboards.items()):     # dashboard() makes a new one
            if handle is self:
                del _dashboards[path]


_dashboards: "dict[str, _DashboardHandle]" = {}     # {database path: its dashboard} here


def dashboard(port: int = 0, host: str = "127.0.0.1",
              token: Optional[str] = None) -> "_DashboardHandle":
    """Serve the dashboard of the current database in the background and return a handle
    whose repr is its address, with the token every request needs (in a notebook it shows
    the page). Calling it again returns the running one. `port` 0 picks a free one; `token`
    None makes one (ValueError for one shorter than 22 letters, digits, "-" and "_")."""
    _check_token(token)
    store = _current_store()
    if store is None:
        raise AutocronError("no database: call autocron.start() first (or run it where "
                            "./autocron.db is)")
    running = _dashboards.get(store.path)
    if running is not None:
        return running
    server, url = _dashboard_server(store, host, port, token)
    threading.Thread(target=server.serve_forever, name="autocron-dashboard",
                     daemon=True).start()
    _dashboards[store.path] = _DashboardHandle(server, url)
    return _dashboards[store.path]


# ==============================================================================================
# Admin command line
# ==============================================================================================


def _demo_square(n: int) -> int:
    time.sleep(0.2)
    return n * n


def _demo_fail(text: str) -> None:
    raise ValueError(text)


def _demo_report() -> str:
    return "report sent"


def _demo(args: Any) -> int:
    """The whole flow on a temporary database, in a few seconds."""
    square, fail = delay(_demo_square), delay(_demo_fail)
    import tempfile
    folder = tempfile.mkdtemp(prefix="autocron-demo-")
    database = os.path.join(folder, "demo.db")
    try:
        print(f"Starting a pool of 2 workers on {database}")
        start(database, workers=2)
        results = [square(n) for n in range(1, 6)] + [fail("this task fails on purpose")]
        print(f"Stored {len(results)} calls; each returned a Result at once:")
        for result in results:
            print(f"  {result!r}")
        print("Results as they arrive:")
        pending = list(results)
        end = time.monotonic() + 30
        while pending and time.monotonic() < end:
            for result in [r for r in pending if r.is_ready()]:
                pending.remove(result)
                shown = result.function_result if not result.has_error else \
                    result.error_message.splitlines()[0]
                print(f"  {_short_id(result.uuid)}  {result.status:<6} {shown}")
            time.sleep(0.02)
        job = cron("*/15 9-17 * * mon-fri")(_demo_report)
        schedule = _state.crons[_function_name(job)].schedule
        print(f'A cron job "{schedule}" runs {schedule.describe()}; its next runs:')
        for moment in itertools.islice(schedule.iter(), 3):
            print(f"  {moment:%a %Y-%m-%d %H:%M}")
        print("Stopping the pool.")
        stop()
        return 0 if not pending else 1
    finally:
        stop()
        with _state.lock:
            _state.crons.pop(_function_name(_demo_report), None)
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


class _UsageError(Exception):
    """Bad input on the command line: one line on stderr, exit status 2."""


def _iso(epoch: Optional[float]) -> Optional[str]:
    return None if epoch is None else _dt.datetime.fromtimestamp(epoch).astimezone().isoformat()


def _table(rows: list[Any], columns: list[Any]) -> str:
    """Aligned columns; values longer than their column's limit end in '...'."""
    cells = [[_shorten(str(row.get(key, "") if row.get(key) is not None else ""), limit)
              for key, limit in columns] for row in rows]
    widths = [max([len(key)] + [len(c[i]) for c in cells]) for i, (key, _) in enumerate(columns)]
    lines = ["  ".join(key.ljust(w) for (key, _), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _open_existing(args: Any) -> _Store:
    """The database of --db; read-only for the reading commands, which change nothing."""
    try:
        reading = args.command in ("info", "tasks", "results")
        return _open_store(args.db, existing=True, write=not reading, snapshot=reading)
    except FileNotFoundError as error:
        raise _UsageError(str(error)) from None


def _pool_state(store: _Store) -> dict[Any, Any]:
    """Whether a pool runs: the flock is the truth, the pool row the details."""
    row = store.pool_row() if store.pool_running() else None
    if row is None:
        return {"running": False}
    return {"running": True, "owner": row.owner, "manager": row.manager,
            "workers": row.workers, "started": _iso(row.started),
            "up_seconds": round(store.now() - row.started, 1)}


def _cron_jobs(store: _Store, count: int = 3) -> list[Any]:
    jobs = []
    for job in store.cron_rows():
        after = _dt.datetime.fromtimestamp(store.now(), job.schedule.tz or _local_zone())
        stopped = job.paused or job.retired
        upcoming = [] if stopped else itertools.islice(job.schedule.iter(after), count)
        zone = job.schedule.tz
        jobs.append({"name": job.name, "expression": str(job.schedule),
                     "tz": None if zone is None else str(zone),
                     "description": job.schedule.describe(),
                     "next": [t.isoformat() for t in upcoming],
                     "due": None if stopped else _iso(job.next_due),
                     "last_run": _iso(job.last_run), "running": bool(job.running),
                     "paused": job.paused, "retired": job.retired})
    return jobs


def _info(store: _Store) -> dict[Any, Any]:
    counts, due = store.counts(store.now())
    settings = store.settings()
    return {
        "database": store.path, "schema": store.schema_version(),
        "size_bytes": store.size_bytes(),
        "settings": {"workers": settings["workers"], "result_ttl": settings["result_ttl"],
                     "disabled": bool(settings["disabled"]),
                     "async_concurrency": settings["async_concurrency"]},
        "initializer_error": settings["initializer_error"],
        "pool": _pool_state(store),
        "machines": [{"name": m.name, "owner": m.owner, "manager": m.manager,
                      "workers": m.workers, "heartbeat": _iso(m.heartbeat),
                      "seconds_since": round(m.since, 1), "lost": m.since > _lease_ttl}
                     for m in store.machine_rows()],
        "queue": {"waiting": counts.get("waiting", 0), "due_now": due,
                  "waiting_on_calls": counts.get("blocked", 0),
                  "queued": counts.get("queued", 0), "running": counts.get("running", 0)},
        "results": {s: counts.get(s, 0) for s in _FINISHED},
        "queues": _queues_shown(store),
        "cron_jobs": _cron_jobs(store),
    }


def _print_info(info: dict[Any, Any]) -> None:
    settings, pool, queue = info["settings"], info["pool"], info["queue"]
    print(f"database   {info['database']} (schema {info['schema']}, "
          f"{info['size_bytes'] / 1024:.0f} KiB)")
    state = "disabled" if settings["disabled"] else "enabled"
    print(f"settings   workers {settings['workers']}, result-ttl {settings['result_ttl']} s, "
          f"async-concurrency {settings['async_concurrency']}, {state}")
    if pool["running"]:
        print(f"pool       running: owner pid {pool['owner']}, manager pid {pool['manager']}, "
              f"worker pids "
              f"{' '.join(map(str, pool['workers'])) or '-'}, up "
              f"{_duration(pool['up_seconds'])}")
    else:
        print("pool       not running")
    failed = info["initializer_error"]
    if failed:
        print(f"problem    the initializer failed on {failed['machine']} at "
              f"{_local_time(failed['at'])}: {failed['message']}; no worker starts until it "
              "works (calls wait)")
    for machine in info["machines"]:
        state = "LOST" if machine["lost"] else "alive"
        print(f"machine    {machine['name']}: {state}, owner pid {machine['owner']}, "
              f"{len(machine['workers'])} workers, last heartbeat "
              f"{_local_time(_dt.datetime.fromisoformat(machine['heartbeat']).timestamp())} "
              f"({machine['seconds_since']:g} s ago)")
    print(f"queue      {queue['waiting']} waiting ({queue['due_now']} due now), "
          f"{queue['waiting_on_calls']} waiting on other calls, {queue['queued']} queued in "
          f"workers, {queue['running']} running")
    if set(info["queues"]) - {_DEFAULT_QUEUE} or any(
            n["concurrency"] or n["rate"] for n in info["queues"].values()):
        print("queues     " + "; ".join(
            f"{name}: {n['waiting']} waiting, {n['running']} running, "
            f"{n['started_last_minute']} started in the last minute" + (
                " (" + ", ".join(f"{k} {n[k]}" for k in ("concurrency", "rate") if n[k]) + ")"
                if n["concurrency"] or n["rate"] else "") for name, n in info["queues"].items()))
    print("results    " + ", ".join(f"{n} {s}" for s, n in info["results"].items()))
    print(f"cron jobs  {len(info['cron_jobs'])}")
    for job in info["cron_jobs"]:
        times = ", ".join(_dt.datetime.fromisoformat(t).strftime("%a %Y-%m-%d %H:%M")
                          for t in job["next"])
        last = _local_time(_dt.datetime.fromisoformat(job["last_run"]).timestamp()) \
            if job["last_run"] else "never"
        zone = f" ({job['tz']})" if job["tz"] else ""
        print(f"  {job['name']}  {job['expression']}{zone}  {job['description']}")
        if job["retired"]:
            times = (f"retired: its code no longer declares it (autocron cron remove "
                     f"{job['name']})")
        elif job["paused"]:
            times = f"paused (autocron resume {job['name']})"
        print(f"    next: {times}; last run: {last}{' (running)' if job['running'] else ''}")


def _command_info(args: Any) -> int:
    info = _info(_open_existing(args))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(info)
    return 0


def _task_rows(store: _Store, statuses: tuple[Any, ...], limit: int,
               newest_first: bool) -> list[Any]:
    out = []
    for task in store.task_rows(statuses, limit, newest_first):
        summary = task.summary
        if task.error:
            error = json.loads(task.error)
            summary = f"{error['type']}: {error['message']}" if error["type"] \
                else error["message"]
        started, finished = task.started, task.finished
        out.append({"id": task.uid, "function": task.name, "args": task.args,
                    "status": task.status, "priority": task.priority, "due": task.due,
                    "created": task.created, "started": started, "finished": finished,
                    "worker": task.worker, "value": _json_value(task.value),
                    "value_repr": task.summary, "error": summary if task.error else None,
                    "took": None if started is None or finished is None
                    else round(finished - started, 3)})
    return out


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only: a pickle that names any class or function is refused, so that
    reading a value runs no code (the admin tool imports none of the application's)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _is_json(value: Any, most: int = 100_000, deepest: int = 100) -> bool:
    """Whether a value is JSON's kind of data, looked at without recursion: at most `most`
    parts, `deepest` levels, and no list or dict twice (a pickle can share one part
    2**60 times in 184 bytes)."""
    seen: set[int] = set()
    todo = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if item is None or isinstance(item, (bool, int, str)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
            continue
        if not isinstance(item, (list, tuple, dict)) or depth >= deepest or id(item) in seen:
            return False
        seen.add(id(item))
        if len(seen) + len(item) > most:
            return False
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            todo.extend((part, depth + 1) for part in item.values())
        else:
            todo.extend((part, depth + 1) for part in item)
    return True


def _json_value(data: Optional[bytes]) -> Any:
    """A stored value as JSON data where it is JSON's kind of data (None, true and false,
    numbers, text, lists, objects with text keys), else None (its repr says what it is)."""
    if data is None:
        return None
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
        return value if _is_json(value) else None
    except Exception:       # a pickle of classes, or one too deep to load
        return None


def _print_rows(rows: list[Any], columns: list[Any], as_json: bool, times: tuple[Any, ...]) -> None:
    if as_json:
        print(json.dumps([{k: _iso(v) if k in times else v for k, v in row.items()}
                          for row in rows], indent=2))
        return
    if not rows:
        print("(none)")
        return
    shown = [{k: _local_time(v) if k in times else v for k, v in row.items()} for row in rows]
    for row in shown:       # the table shows the value's repr, or the error
        row["value"] = row["error"] or row["value_repr"]
    print(_table(shown, columns))


def _command_tasks(args: Any) -> int:
    rows = _task_rows(_open_existing(args), _WAITING + ("running",), args.limit,
                      False)
    _print_rows(rows, [("id", 24), ("function", 32), ("args", 30), ("status", 7), ("due", 19),
                       ("worker", 7)], args.json, ("due", "created", "started", "finished"))
    return 0


def _command_results(args: Any) -> int:
    statuses = (args.status,) if args.status else _FINISHED
    rows = _task_rows(_open_existing(args), statuses, args.limit, True)
    _print_rows(rows, [("id", 24), ("function", 32), ("args", 30), ("status", 9),
                       ("value", 40), ("finished", 19), ("took", 8)], args.json,
                ("due", "created", "started", "finished"))
    return 0


def _command_set(args: Any) -> int:
    store = _open_existing(args)
    key = args.setting.replace("-", "_")
    store.set_setting(key, args.value)
    cpus = os.cpu_count() or 1
    if key == "workers" and args.value > 4 * cpus:
        print(f"autocron: warning: {args.value} workers on a machine with {cpus} CPUs: each "
              f"worker is a process of its own, and more than {4 * cpus} rarely helps unless "
              "the tasks mostly wait (then consider async def tasks)", file=sys.stderr)
    pool = _pool_state(store)
    if key == "result_ttl" and args.value == 0:
        print("result-ttl set to 0 (results are kept until purged)" + (
            "" if not pool["running"] else f"; the running pool (owner pid {pool['owner']}) "
            "applies it at its next cleanup, within a minute"))
    elif not pool["running"]:
        print(f"{args.setting} set to {args.value}; used from the next start()")
    elif key == "synchronous":
        print(f"synchronous set to {args.value}; the running pool (owner pid {pool['owner']}) "
              "applies it within a second, other running processes at their next start()")
    elif key == "workers":
        _wake_pool(store.wake_path)
        print(f"workers set to {args.value}; the running pool (owner pid {pool['owner']}) "
              "adjusts within a few seconds")
    elif key == "async_concurrency":
        _wake_pool(store.wake_path)
        print(f"async-concurrency set to {args.value}; the running pool (owner pid "
              f"{pool['owner']}) hands out async calls by it within a few seconds (calls "
              "running past it end as they do)")
    else:
        print(f"result-ttl set to {args.value} s; the running pool (owner pid {pool['owner']}) "
              "applies it at its next cleanup, within a minute")
    return 0


def _command_enable(args: Any, disabled: bool) -> int:
    store = _open_existing(args)
    store.set_setting("disabled", int(disabled))
    pool = _pool_state(store)
    if disabled:
        running = (f"; the pool that runs now (owner pid {pool['owner']}) keeps running until "
                   "it stops") if pool["running"] else ""
        print(f"autocron disabled for {store.path}: start() starts nothing and calls run "
              f"synchronously{running}")
    else:
        print(f"autocron enabled for {store.path}: the next start() starts a pool")
    return 0


def _command_limit(args: Any) -> int:
    """autocron limit QUEUE [--concurrency N|none] [--rate R|none]"""
    given: dict[str, Any] = {name: None if value == "none" else value for name, value in (
        ("concurrency", args.concurrency), ("rate", args.rate)) if value is not None}
    number = given.get("concurrency")
    if number is not None:
        if not (number.isascii() and number.isdigit()) or int(number) < 1:
            raise _UsageError(f"--concurrency takes a whole number, 1 or more, or none; got "
                              f"{number!r}")
        given["concurrency"] = int(number)
    try:
        shown = _set_limits(_open_existing(args), args.queue, given.get("concurrency", _KEEP),
                            given.get("rate", _KEEP))
    except ValueError as error:
        raise _UsageError(str(error)) from None
    text = ", ".join(f"{name} {value}" for name, value in shown.items() if value is not None)
    print(f"queue {args.queue}: {text or 'no limit'}")
    return 0


def _command_purge(args: Any) -> int:
    count = _open_existing(args).purge()
    print(f"deleted {count} finished result{'s' if count != 1 else ''}")
    return 0


def _no_such_job(store: _Store, name: str) -> _UsageError:
    known = ", ".join(job.name for job in store.cron_rows()) or "none"
    return _UsageError(f"no cron job named {name!r} in {store.path} (its jobs: {known})")


def _command_pause(args: Any, paused: bool) -> int:
    store = _open_existing(args)
    was = {job.name: job.paused or job.retired for job in store.cron_rows()}.get(args.name)
    due: Optional[float] = None
    if paused:
        found = store.pause_cron(args.name)
    else:
        due = _resume_cron(store, args.name)
        found = due is not None
    if not found:
        raise _no_such_job(store, args.name)
    if paused:
        print(f"paused {args.name}: no runs start until `autocron resume {args.name}` (a run "
              "that is running goes on)")
    elif was is False:
        print(f"{args.name} is not paused: next run {_local_time(due)}")
    else:
        print(f"resumed {args.name}: next run {_local_time(due)}")
    return 0


def _command_cron_remove(args: Any) -> int:
    store = _open_existing(args)
    if not store.remove_cron(args.name):
        raise _no_such_job(store, args.name)
    print(f"removed the cron job {args.name}; code that still declares it (@cron) registers it "
          "again at its next start()")
    return 0


def _command_next(args: Any) -> int:
    schedule = CronExpression(args.expression, tz=args.tz)
    zone = schedule.tz or _local_zone()
    after = _dt.datetime.fromtimestamp(_clock(), zone)
    times = list(itertools.islice(schedule.iter(after), args.n))
    if args.json:
        print(json.dumps({"expression": str(schedule), "description": schedule.describe(),
                          "next": [t.isoformat() for t in times]}, indent=2))
    else:
        print(f"{schedule}: {schedule.describe()}")
        for moment in times:
            zone_text = f" {moment.strftime('%Z')}" if args.tz else ""
            print(f"  {moment:%a %Y-%m-%d %H:%M}{zone_text}")
    return 0


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        import argparse     # only the admin command line needs it
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _parser() -> Any:
    import argparse         # only the admin command line needs it

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:       # one line, not the usage block
            self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def command(group: Any, name: str, text: str, run: Any, reads: bool = False) -> Any:
        """A command, described in its own --help too, that takes --db after its name."""
        sub = group.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
        sub.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH|URL",
                         help="the database (also accepted before the command)")
        if reads:
            sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        sub.set_defaults(run=run)
        return sub

    parser = Parser(prog="autocron", description="See and steer an autocron database, or run "
                    "the demo. Reading commands never create or change a database.")
    parser.add_argument("--db", default=os.environ.get("AUTOCRON_DATABASE") or "autocron.db",
                        metavar="PATH|URL", help="the database: an SQLite file or a "
                        "postgresql:// URL (default: $AUTOCRON_DATABASE, else autocron.db)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show autocron's log (-vv: debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=Parser)
    command(commands, "demo", "run the whole flow on a temporary database", _demo)
    command(commands, "info", "settings, pool, queue, results and cron jobs at a glance",
            _command_info, reads=True)
    limit = {"type": _positive_int, "default": 50, "metavar": "N",
             "help": "at most N rows (default: %(default)s)"}
    command(commands, "tasks", "waiting and running tasks", _command_tasks, reads=True) \
        .add_argument("--limit", **limit)
    results = command(commands, "results", "finished results, newest first", _command_results,
                      reads=True)
    results.add_argument("--status", choices=_STATUSES, help="only results with this status")
    results.add_argument("--limit", **limit)

    class SettingValue(argparse.Action):    # its type depends on the setting before it
        def __call__(self, parser: Any, namespace: Any, value: Any,
                     option_string: Optional[str] = None) -> None:
            if namespace.setting == "synchronous":
                if value not in _SYNCHRONOUS:
                    parser.error(f"argument value: {value!r} is not normal or full")
            elif namespace.setting == "result-ttl" and value == "0":
                value = 0
            else:
                try:
                    value = _positive_int(value)
                except argparse.ArgumentTypeError as error:
                    parser.error(f"argument value: {error}")
                if namespace.setting == "async-concurrency" and value > _MOST_ASYNC:
                    parser.error(f"argument value: async-concurrency is at most {_MOST_ASYNC}, "
                                 f"got {value}")
            setattr(namespace, self.dest, value)

    setting = command(commands, "set", "change a setting (workers, result-ttl, synchronous, "
                      "async-concurrency)", _command_set)
    setting.add_argument("setting", choices=("workers", "result-ttl", "synchronous",
                                             "async-concurrency"))
    setting.add_argument("value", action=SettingValue,
                         help="a positive whole number (result-ttl: seconds, 0 keeps results "
                              "until purged; async-concurrency: async def calls a worker runs "
                              f"at once, at most {_MOST_ASYNC}); for synchronous: normal (a "
                              "call survives a crash of the application) or full (also power "
                              "loss)")
    command(commands, "disable", "make start() start nothing; calls run synchronously",
            lambda args: _command_enable(args, True))
    command(commands, "enable", "undo disable", lambda args: _command_enable(args, False))
    command(commands, "purge", "remove all finished results", _command_purge)
    limits = command(commands, "limit", "limit a queue, across every pool and machine (an "
                     "option left out keeps the stored value; none lifts it)", _command_limit)
    limits.add_argument("queue", help="the queue's name")
    limits.add_argument("--concurrency", metavar="N|none", help="at most N of its calls "
                        "running at once")
    limits.add_argument("--rate", metavar="R|none", help='at most so many starts: "N/second", '
                        '"N/minute" or "N/hour" (or N/s, N/m, N/h)')
    for verb, paused, what in (("pause", True, "start no more runs of a cron job"),
                               ("resume", False, "let a paused cron job run again, from its "
                                                 "next due time")):
        command(commands, verb, what, lambda args, paused=paused: _command_pause(args, paused)) \
            .add_argument("name", help="the job, as `autocron info` names it")
    jobs = command(commands, "cron", "manage cron jobs: remove one that code no longer "
                   "declares", None)
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True,
                                  parser_class=Parser)
    command(actions, "remove", "remove a cron job (its runs stay; code that still declares it "
            "registers it again at its next start())", _command_cron_remove) \
        .add_argument("name", help="the job, as `autocron info` names it")
    board = command(commands, "dashboard", "serve the dashboard: overview, tasks, cron jobs, "
                    "pool; cancel, retry, pause from the page", _command_dashboard)
    board.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    board.add_argument("--host", default="127.0.0.1", help="the address to bind (default: "
                       "%(default)s)")
    board.add_argument("--token", help="the token every request must carry (without one, a "
                       "new one is made; the printed address carries it)")
    upcoming = command(commands, "next", "when a cron expression fires next, and what it means",
                       _command_next, reads=True)
    upcoming.add_argument("expression", help='a cron expression, e.g. "30 9 * * 1,3"')
    upcoming.add_argument("-n", type=_positive_int, default=5, metavar="N",
                          help="how many fire times (default: %(default)s)")
    upcoming.add_argument("--tz", metavar="ZONE", help="an IANA time zone, e.g. Europe/Berlin")
    return parser


def _command_dashboard(args: Any) -> int:
    try:
        _check_token(args.token)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    store = _open_existing(args)
    try:
        server, url = _dashboard_server(store, args.host, args.port, args.token)
    except OSError as error:
        raise AutocronError(f"cannot serve the dashboard on {_url_host(args.host)}:"
                            f"{args.port} ({error.strerror}); choose another --port") from None
    print(f"autocron dashboard of {store.path} at {url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _token_joined(argv: list[Any]) -> list[Any]:
    """`--token VALUE` as `--token=VALUE`: a token may start with "-" (secrets.token_urlsafe
    makes one in 64 so), which argparse would take for an option of its own."""
    joined: list[Any] = []
    for arg in argv:
        if joined and joined[-1] == "--token":
            joined[-1] = f"--token={arg}"
        else:
            joined.append(arg)
    return joined


def _main(argv: Optional[list[Any]] = None) -> int:
    """The admin tool: `python autocron.py`, `python -m autocron` and `autocron`."""
    parser = _parser()
    args = parser.parse_args(_token_joined(sys.argv[1:] if argv is None else list(argv)))
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        code: int = args.run(args)
        sys.stdout.flush()          # a reader gone shows here, not in the flush at exit
        return code
    except BrokenPipeError:         # `autocron info | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)   # and Python's flush at exit fails not
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (_UsageError, CronError) as error:
        print(f"autocron: {error}", file=sys.stderr)
        return 2
    except (AutocronError, OSError) as error:
        print(f"autocron: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run as the module `autocron`, not as `__main__`, so that what workers import and what
    # pickles name is one and the same module.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import autocron
    sys.exit(autocron._main())
