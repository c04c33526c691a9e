"""Workflows: a 10,000-wide fan-out and fan-in, and 10,000 calls that one call's end releases.

What is measured
----------------
Every pool has two worker processes and is started fresh, in a fresh temporary folder (or,
on PostgreSQL, a fresh schema), for every measurement of every round, then warmed up (a few
``add`` calls through it) before anything is timed.  autocron runs on SQLite
(``autocron.start("<folder>/autocron.db", workers=2)``) and, with ``--postgres URL``, also on
that server (``<URL>?schema=<fresh>``, dropped afterwards).  The tasks::

    @autocron.delay
    def add(a, b): return a + b

    @autocron.delay
    def total(values): return sum(values)

    @autocron.delay
    def slow(gate): <wait until the file gate exists>; return 1

1. Fan-out and fan-in, end to end: the seconds from before the fan-out to the fan-in's
   value in the caller, for N = 10,000 (``--quick``: 2,000); the value is checked.

   * autocron: ``total(add.map(range(N), range(N))).get()``: a list of Results as an
     argument makes ``total`` wait for them in the database and run with their values.
   * Celery: ``chord(add.s(i, i) for i in range(N))(total.s()).get()``, with no broker
     service: kombu's ``filesystem://`` transport (a folder of message files) and the
     SQLAlchemy result backend ``db+sqlite:///<folder>/results.db``; the worker is
     ``celery -A workflow_bench:celery_app worker --pool prefork --concurrency 2`` in a
     subprocess.  Everything else is Celery's default: the chord is joined by its
     ``chord_unlock`` task, which looks at the header's results every second (the
     SQLAlchemy backend has no native join); an idle worker looks at the folder every second
     (the transport's ``polling_interval``); ``get()`` looks every 0.5 s.  Caveat: the
     filesystem transport lists and sorts the whole folder for every message it takes, so
     its cost per message grows with the queue, and a 10,000-wide chord spends most of its
     time there (in a py-spy look at a 5,000-wide chord, kombu's ``Channel._get``, that is
     ``os.listdir`` and ``sorted``, took four fifths of the worker's consumer thread).
     Celery with its usual brokers (Redis, RabbitMQ) would do better, but those are
     services this benchmark does not start.
   * huey (``SqliteHuey``, a fresh file; its consumer ``python -m huey.bin.huey_consumer
     workflow_bench.huey -w 2 -k process`` in a subprocess, default polling: 0.1 s after a
     task, backing off to 10 s when idle): huey has no chord, so the fairest fan-in is the
     caller's: ``add.map((i, i) for i in range(N)).get(blocking=True)`` (each result polled
     from 0.05 s, backing off x1.15 to 1 s), then ``total(values).get(blocking=True)``.
   * ProcessPoolExecutor(2): submit N ``operator.add``, gather, submit ``sum`` of the
     values.  It keeps nothing on disk, so it is the ceiling rather than a peer.

2. Release (autocron only): ``first = slow(gate)``, then ``deps = add.map([first] * N,
   range(N))``, N calls that depend on ``first``, stored in one transaction while ``first``
   runs; the benchmark checks that all N are blocked, then makes the file ``gate``, and
   ``first`` ends within a millisecond (it looks for the file every 1 ms).  ``first`` is
   held by a file rather than a fixed sleep (``slow(0.5)``) because the map can take longer
   than that: at N = 10,000 it takes about 0.4-0.8 s on SQLite and seconds on PostgreSQL, and
   a ``first`` that ends before the map returns leaves nothing to measure.  A connection of
   the benchmark's own reads the database (SQLite: the file, read only; PostgreSQL: psycopg
   in the schema), every statement its own snapshot:

   a. due: from ``first``'s end (its ``finished`` column, seconds since the epoch) until a
      poll of ``SELECT count(*) FROM tasks WHERE status = 'blocked'`` (internal status:
      waiting for dependencies), one every 1 ms, finds none, timed when that poll returns
      (so up to one poll late);
   b. first start: from ``first``'s end to the earliest ``started`` of the N calls;
   c. last end: from ``first``'s end to the latest ``finished`` of the N calls.

   The caller then waits with ``deps[-1].get()``, checks that all N calls are ready, and
   checks their values with ``autocron.wait(deps)`` (untimed).  ``started`` and
   ``finished`` are the pool's clock: this machine's on SQLite, the server's on PostgreSQL
   (the pool's estimate of it, this machine's clock plus the measured offset, about 0 on a
   local server), and "none blocked" is this machine's ``time.time()``.

3. Enqueue cost of dependencies (autocron only): the seconds of the map in 2 (N calls, each
   with one dependency), against ``add.map(range(N), range(N))`` (N calls without any) in a
   pool of its own, both with the pool running and idle (in 2, one worker runs ``first``;
   the calls are stored in one transaction, so no worker sees them before it commits);
   calls/s = N / seconds.  The pools
   of 2 and 3 alternate which goes first from round to round.

Rounds: 3 (``--quick``: 1), the libraries interleaved within each round: section 1's
libraries in the order above, then the pools of sections 2 and 3.  Each table shows the
median and every round.  A library that fails or times out gets the error in its cells and
the run goes on; the exit code is 0 whatever the outcome: this is a report, not a test.
Every pool, consumer and subprocess is stopped before the next starts, also on an error or
SIGTERM, and a child process left behind is reported on stderr and killed.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench,postgres]"
    .venv/bin/python benchmarks/workflow_bench.py [--quick] [--postgres URL]

The PostgreSQL user needs the right to create schemas in the URL's database.  huey's
consumer and Celery's worker import this file as the module ``workflow_bench`` (this folder
is put on their ``PYTHONPATH``) and find their app in it, bound to the round's files by an
environment variable that only their process has; so that every task has one importable
name, the script itself runs as that module too (see the end of the file).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first: the working copy of autocron.py
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import autocron  # noqa: E402
import postgres_bench as pg_bench  # noqa: E402
import tasks_bench as bench  # noqa: E402
from tasks_bench import markdown_table  # noqa: E402

WORKERS = bench.WORKERS
POLL = 0.001                # seconds between two polls (for blocked calls; `first`'s gate)
FAN_IN_TIMEOUT = 900.0      # seconds for one fan-in (Celery's takes minutes at 10,000)
RELEASE_TIMEOUT = 300.0     # seconds for the dependents of `first` to be done
CALL_TIMEOUT = bench.CALL_TIMEOUT       # seconds for one call (warm-up, start-up)
HUEY_DB_ENV = "WORKFLOW_BENCH_HUEY_DB"          # huey's consumer: the round's SQLite file
CELERY_FOLDER_ENV = "WORKFLOW_BENCH_CELERY"     # Celery's worker: the round's folder
LABELS = {"autocron": "autocron (SQLite)", "autocron-pg": "autocron (PostgreSQL)",
          "celery": "Celery chord (filesystem broker, SQLite results)",
          "huey": "huey (SqliteHuey), fan-in in the caller",
          "ppe": "ProcessPoolExecutor (not durable)"}
STORES = {None: "SQLite", "pg": "PostgreSQL"}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    width: int  # N: the calls of a fan-out, the dependents of `first`


FULL = Sizes(rounds=3, width=10_000)
QUICK = Sizes(rounds=1, width=2_000)


@dataclass
class FanIn:
    """One library's fan-out and fan-in in one round."""

    seconds: Optional[float] = None
    error: Optional[str] = None


@dataclass
class Release:
    """One round of section 2 (and the dependencies' half of section 3)."""

    due: Optional[float] = None          # ms from first's end until none is blocked
    first_start: Optional[float] = None  # ms from first's end to the first dependent's start
    last_end: Optional[float] = None     # ms from first's end to the last dependent's end
    enqueue: Optional[float] = None      # calls/s of add.map([first] * N, range(N))
    error: Optional[str] = None


@dataclass
class Enqueue:
    """The other half of section 3: N calls without dependencies."""

    enqueue: Optional[float] = None      # calls/s of add.map(range(N), range(N))
    error: Optional[str] = None


# --- the tasks -------------------------------------------------------------------

@autocron.delay
def add(a, b):
    return a + b


@autocron.delay
def total(values):
    return sum(values)


@autocron.delay
def slow(gate):
    """Return 1 once the file `gate` exists (the benchmark makes it when the calls that
    depend on this one are stored)."""
    while not os.path.exists(gate):
        time.sleep(POLL)
    return 1


class Peer(NamedTuple):
    """Another library's app and its two tasks."""

    app: Any
    add: Any
    total: Any


def celery_tasks(folder: Path) -> Peer:
    """A Celery app whose broker is the folder ``folder/broker`` (its exchanges in
    ``folder/control``) and whose results are in ``folder/results.db``; the worker and the
    caller each make one."""
    from celery import Celery

    broker = folder / "broker"
    broker.mkdir(exist_ok=True)
    app = Celery("workflow_bench", broker="filesystem://",
                 backend=f"db+sqlite:///{folder / 'results.db'}")
    app.conf.update(broker_transport_options={"data_folder_in": str(broker),
                                              "data_folder_out": str(broker),
                                              "control_folder": str(folder / "control")},
                    broker_connection_retry_on_startup=True)

    @app.task(name="workflow_bench.add", shared=False)   # not in the next round's app
    def add(a, b):
        return a + b

    @app.task(name="workflow_bench.total", shared=False)
    def total(values):
        return sum(values)

    return Peer(app, add, total)


def huey_tasks(path: str) -> Peer:
    """A SqliteHuey on the file ``path``; the consumer and the caller each make one."""
    from huey import SqliteHuey

    app = SqliteHuey(name="workflow", filename=path)

    @app.task()
    def add(a, b):
        return a + b

    @app.task()
    def total(values):
        return sum(values)

    return Peer(app, add, total)


# huey's consumer and Celery's worker import this module and find their app here
if os.environ.get(HUEY_DB_ENV):
    huey = huey_tasks(os.environ[HUEY_DB_ENV]).app
if os.environ.get(CELERY_FOLDER_ENV):
    celery_app = celery_tasks(Path(os.environ[CELERY_FOLDER_ENV])).app


# --- the pools ---------------------------------------------------------------------

def fan_in_value(n: int) -> int:
    """sum(add(i, i) for i in range(n))."""
    return n * (n - 1)


def check(value, expected, what: str) -> None:
    if value != expected:
        raise AssertionError(f"{what} returned {value!r}, not {expected!r}")


def warm_up(call: Callable, get: Callable) -> None:
    """A few ``add`` calls through the pool, so that every worker is up."""
    handles = [call(i, i) for i in range(2 * WORKERS)]
    for i, handle in enumerate(handles):
        check(get(handle), 2 * i, f"add({i}, {i})")


class Reader:
    """A connection of the benchmark's own to autocron's database; every statement is its
    own snapshot (autocommit)."""

    def __init__(self, database: str, postgres: bool):
        if postgres:
            import psycopg
            parts = urllib.parse.urlsplit(database)
            query = urllib.parse.parse_qsl(parts.query)
            conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(
                [(k, v) for k, v in query if k != "schema"])))     # libpq refuses `schema`
            self.con = psycopg.connect(conninfo, autocommit=True)
            self.con.execute(f"SET search_path TO {dict(query)['schema']}")
        else:
            self.con = sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                       isolation_level=None)
        self.mark = "%s" if postgres else "?"

    def one(self, sql: str, *params) -> tuple:
        return self.con.execute(sql.replace("?", self.mark), params).fetchone()

    def close(self) -> None:
        self.con.close()


@contextlib.contextmanager
def autocron_pool(postgres: Optional[str]) -> Iterator[Reader]:
    """A fresh, warmed-up autocron pool of 2 workers: on SQLite in a fresh folder, else in a
    fresh schema of the server ``postgres``; yields a Reader of its database."""
    with contextlib.ExitStack() as stack:
        if postgres is None:
            folder = Path(tempfile.mkdtemp(prefix="workflow-bench-autocron-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            database = str(folder / "autocron.db")
        else:
            schema = pg_bench.fresh_name("workflow")
            database = pg_bench.with_schema(postgres, schema)
            stack.callback(pg_bench.run_sql, postgres,
                           f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            stack.callback(autocron._pg_links.__dict__.clear)   # its connections, first
        stack.callback(bench.reap_strays, "autocron")
        stack.callback(autocron.stop)
        autocron.start(database, workers=WORKERS)
        warm_up(add, lambda result: result.get(timeout=CALL_TIMEOUT))
        reader = Reader(database, postgres is not None)
        stack.callback(reader.close)
        yield reader


def start_process(command: list, env: dict, log_path: Path) -> subprocess.Popen:
    """``command`` in its own process group, with ``env`` added to the environment and this
    folder on its path, logging to ``log_path``."""
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(BENCH_DIR), str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(proc: subprocess.Popen, done: Callable[[], bool], log_path: Path,
                  what: str) -> None:
    """Block until ``done()`` (one task went through), or fail if ``proc`` died."""
    bench.wait_until_up(done, [proc], [log_path], what, pause=0.1)


@contextlib.contextmanager
def celery_peer() -> Iterator[Peer]:
    """A Celery worker (prefork, 2 processes) on a fresh folder, warmed up."""
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="workflow-bench-celery-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        tasks = celery_tasks(folder)
        stack.callback(tasks.app.close)
        stack.callback(bench.reap_strays, "celery")
        proc = start_process(
            [sys.executable, "-m", "celery", "-A", "workflow_bench:celery_app", "worker",
             "--pool", "prefork", "--concurrency", str(WORKERS), "--loglevel", "WARNING"],
            {CELERY_FOLDER_ENV: str(folder)}, folder / "worker.log")
        stack.callback(bench.stop_process_group, proc, signal.SIGTERM, "Celery worker")
        wait_until_up(proc, tasks.add.delay(1, 1).ready, folder / "worker.log",
                      "Celery worker")
        warm_up(tasks.add.delay, lambda result: result.get(timeout=CALL_TIMEOUT))
        yield tasks


@contextlib.contextmanager
def huey_peer() -> Iterator[Peer]:
    """huey's consumer (2 worker processes) on a fresh SQLite file, warmed up."""
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="workflow-bench-huey-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        tasks = huey_tasks(str(folder / "huey.db"))
        stack.callback(tasks.app.storage.close)
        stack.callback(bench.reap_strays, "huey")
        proc = start_process(
            [sys.executable, "-m", "huey.bin.huey_consumer", "workflow_bench.huey",
             *bench.HUEY_CONSUMER_ARGS], {HUEY_DB_ENV: str(folder / "huey.db")},
            folder / "consumer.log")
        stack.callback(bench.stop_consumer, proc)
        probe = tasks.add(1, 1)
        wait_until_up(proc, lambda: probe.get() is not None, folder / "consumer.log",
                      "huey consumer")
        warm_up(tasks.add, lambda result: result.get(blocking=True, timeout=CALL_TIMEOUT))
        yield tasks


# --- the measurements --------------------------------------------------------------

def fan_in_autocron(postgres: Optional[str], n: int) -> float:
    with autocron_pool(postgres):
        started = time.perf_counter()
        result = total(add.map(range(n), range(n)))
        value = result.get(timeout=FAN_IN_TIMEOUT)
        seconds = time.perf_counter() - started
    check(value, fan_in_value(n), "the fan-in")
    return seconds


def fan_in_celery(n: int) -> float:
    from celery import chord

    with celery_peer() as tasks:
        started = time.perf_counter()
        result = chord(tasks.add.s(i, i) for i in range(n))(tasks.total.s())
        value = result.get(timeout=FAN_IN_TIMEOUT)
        seconds = time.perf_counter() - started
    check(value, fan_in_value(n), "the chord")
    return seconds


def fan_in_huey(n: int) -> float:
    with huey_peer() as tasks:
        started = time.perf_counter()
        values = tasks.add.map((i, i) for i in range(n)).get(blocking=True,
                                                             timeout=FAN_IN_TIMEOUT)
        value = tasks.total(values).get(blocking=True, timeout=FAN_IN_TIMEOUT)
        seconds = time.perf_counter() - started
    check(value, fan_in_value(n), "the fan-in")
    return seconds


def fan_in_ppe(n: int) -> float:
    with ProcessPoolExecutor(max_workers=WORKERS) as executor:
        warm_up(lambda a, b: executor.submit(operator.add, a, b),
                lambda future: future.result(timeout=CALL_TIMEOUT))
        started = time.perf_counter()
        futures = [executor.submit(operator.add, i, i) for i in range(n)]
        values = [future.result(timeout=FAN_IN_TIMEOUT) for future in futures]
        value = executor.submit(sum, values).result(timeout=FAN_IN_TIMEOUT)
        seconds = time.perf_counter() - started
    bench.reap_strays("ProcessPoolExecutor")
    check(value, fan_in_value(n), "the fan-in")
    return seconds


def run_fan_in(fan_in: Callable[[int], float], n: int) -> FanIn:
    m = FanIn()
    try:
        m.seconds = fan_in(n)
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def row_id(result) -> int:
    """The tasks table's id of an autocron Result ("<token>-<id>")."""
    return int(result.uuid.rpartition("-")[2])


def none_blocked(reader: Reader) -> float:
    """``time.time()`` when a poll (one every POLL s) first finds no call blocked."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        (blocked,) = reader.one("SELECT count(*) FROM tasks WHERE status = 'blocked'")
        seen = time.time()
        if not blocked:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"{blocked} calls still blocked after {RELEASE_TIMEOUT:g} s")
        time.sleep(POLL)


def release_round(postgres: Optional[str], n: int) -> Release:
    m = Release()
    try:
        with tempfile.TemporaryDirectory(prefix="workflow-bench-gate-") as folder, \
                autocron_pool(postgres) as reader:
            gate = Path(folder) / "gate"
            first = slow(str(gate))
            started = time.perf_counter()
            deps = add.map([first] * n, range(n))
            seconds = time.perf_counter() - started
            (blocked,) = reader.one("SELECT count(*) FROM tasks WHERE status = 'blocked'")
            check(blocked, n, "the count of blocked dependents")
            gate.touch()
            gone = none_blocked(reader)
            deps[-1].get(timeout=RELEASE_TIMEOUT)
            lowest, highest = row_id(deps[0]), row_id(deps[-1])
            unfinished = "SELECT count(*) FROM tasks WHERE id BETWEEN ? AND ? AND " \
                         "finished IS NULL"
            while reader.one(unfinished, lowest, highest)[0]:   # the other worker's last
                time.sleep(0.01)
            (ended,) = reader.one("SELECT finished FROM tasks WHERE id = ?", row_id(first))
            ready, first_start, last_end = reader.one(
                "SELECT count(*), min(started), max(finished) FROM tasks WHERE id BETWEEN ? "
                "AND ? AND status = 'ready'", lowest, highest)
            check(ready, n, "the count of ready dependents")
            check(autocron.wait(deps, timeout=RELEASE_TIMEOUT), [1 + i for i in range(n)],
                  "the dependents")
        m.enqueue = n / seconds
        m.due, m.first_start, m.last_end = ((t - ended) * 1000
                                            for t in (gone, first_start, last_end))
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def enqueue_round(postgres: Optional[str], n: int) -> Enqueue:
    m = Enqueue()
    try:
        with autocron_pool(postgres):
            started = time.perf_counter()
            results = add.map(range(n), range(n))
            seconds = time.perf_counter() - started
            check(autocron.wait(results, timeout=RELEASE_TIMEOUT), [2 * i for i in range(n)],
                  "the calls")
        m.enqueue = n / seconds
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


# --- the rounds and the report -----------------------------------------------------

class Results(NamedTuple):
    fan_in: dict    # {lib: [FanIn per round]}
    release: dict   # {store: [Release per round]}
    enqueue: dict   # {store: [Enqueue per round]}


def run_all(sizes: Sizes, postgres: Optional[str]) -> Results:
    fan_ins = {"autocron": functools.partial(fan_in_autocron, None)}
    if postgres:
        fan_ins["autocron-pg"] = functools.partial(fan_in_autocron, postgres)
    fan_ins.update(celery=fan_in_celery, huey=fan_in_huey, ppe=fan_in_ppe)
    stores = {None: None, "pg": postgres} if postgres else {None: None}
    results = Results({lib: [] for lib in fan_ins}, {s: [] for s in stores},
                      {s: [] for s in stores})
    for r in range(1, sizes.rounds + 1):
        for lib, fan_in in fan_ins.items():
            bench.progress(f"round {r}/{sizes.rounds}: fan-in, {LABELS[lib]} ...")
            results.fan_in[lib].append(run_fan_in(fan_in, sizes.width))
            bench.progress(f"  {results.fan_in[lib][-1]}")
        for store, url in stores.items():
            for what in ("release", "enqueue") if r % 2 else ("enqueue", "release"):
                bench.progress(f"round {r}/{sizes.rounds}: {what}, autocron "
                               f"({STORES[store]}) ...")
                run = release_round if what == "release" else enqueue_round
                getattr(results, what)[store].append(run(url, sizes.width))
                bench.progress(f"  {getattr(results, what)[store][-1]}")
    return results


def fmt_seconds(value) -> str:
    return f"{value:,.2f}"


def fmt_ms(value) -> str:
    return f"{value:,.1f}"


def row(label: str, rounds: list, field: str, fmt: Callable) -> list:
    """A table row: the label, the median of the rounds and every round."""
    return [label, bench.median_cell(rounds, field, fmt),
            *(bench.cell(m, field, fmt) for m in rounds)]


def print_report(results: Results, sizes: Sizes, postgres: Optional[str]) -> None:
    import platform

    n, rounds = sizes.width, [f"round {r}" for r in range(1, sizes.rounds + 1)]
    print("# Workflows: fan-out and fan-in, and calls released by another's end\n")
    print(f"- Python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs" + (f"; PostgreSQL {pg_bench.server_version(postgres)} at "
                                      f"{pg_bench.shown(postgres)}" if postgres else ""))
    print(f"- autocron {bench.autocron_version()}, Celery {bench.version_of('celery')} (kombu "
          f"{bench.version_of('kombu')}, SQLAlchemy {bench.version_of('sqlalchemy')}), huey "
          f"{bench.version_of('huey')}; {WORKERS} workers; {sizes.rounds} interleaved "
          f"round(s), N = {n:,}\n")

    print(f"## 1. Fan-out of {n:,} add() and a fan-in of their values, end to end (s)\n")
    rows = [row(LABELS[lib], ms, "seconds", fmt_seconds) for lib, ms in results.fan_in.items()]
    print(markdown_table(["library", "median s", *rounds], rows))
    median = bench.median_of(results.fan_in["autocron"], "seconds")
    print(f"\nautocron on SQLite: {bench.fmt_rate((n + 1) / median) if median else 'n/a'} "
          f"calls/s end to end at the median.")

    print(f"\n## 2. {n:,} calls that depend on one call: from its end (ms)\n")
    measures = {"due": "none blocked (all due)", "first_start": "first dependent starts",
                "last_end": "last dependent ends"}
    rows = [row(f"{STORES[store]}: {label}", ms, field, fmt_ms)
            for store, ms in results.release.items() for field, label in measures.items()]
    print(markdown_table(["autocron", "median ms", *rounds], rows))

    print(f"\n## 3. Enqueue of {n:,} calls in one map(), pool running (calls/s)\n")
    rows = []
    for store in results.release:
        rows.append(row(f"{STORES[store]}: `add.map([first] * N, range(N))`, one dependency "
                        f"each", results.release[store], "enqueue", bench.fmt_rate))
        rows.append(row(f"{STORES[store]}: `add.map(range(N), range(N))`, none",
                        results.enqueue[store], "enqueue", bench.fmt_rate))
    print(markdown_table(["autocron", "median calls/s", *rounds], rows))
    for store in results.release:
        cost = bench.ratio(*(bench.median_of(ms, "enqueue")
                             for ms in (results.enqueue[store], results.release[store])))
        print(f"\n{STORES[store]}: a call with a dependency takes {bench.fmt_ratio(cost)} the "
              f"time of one without (medians).")


def main(argv=None) -> int:
    return bench.run_rounds(__doc__, f"{QUICK.rounds} round, N = {QUICK.width:,}",
                            QUICK, FULL, run_all, print_report, argv)


if __name__ == "__main__":
    # Run as the module workflow_bench, the name its tasks have in the workers (autocron
    # would ship a function of __main__ by value; huey names tasks by their module).
    import workflow_bench
    sys.exit(workflow_bench.main())
