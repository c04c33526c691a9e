"""Queue limits: does a concurrency limit hold, does a rate limit hold, what do limits cost?

What is measured
----------------
Every measurement of every round runs in a fresh database: on SQLite a fresh temporary
folder (``<folder>/autocron.db``), and with ``--postgres URL`` also on that server, in a
fresh schema (``<URL>?schema=<fresh>``, dropped afterwards).  The limits are stored with
``autocron.limit(..., database=<that database>)`` before any pool of it starts (as the
README's example does), and every pool is warmed up (a few ``add`` calls of the default
queue through each of its processes) before anything is timed.  The tasks, all in this
module (the workers import it as ``limits_bench``)::

    @autocron.delay(queue="slow")
    def slow(i): start = time.time(); time.sleep(0.01); return i, start, time.time(), host

    @autocron.delay(queue="api")
    def api(i): return i

    @autocron.delay
    def add(a, b): return a + b

(``host``: the ``AUTOCRON_HOST`` of the worker's machine, "" if unset.)

1. Concurrency: ``autocron.limit("slow", concurrency=2)``, then ``slow.map(range(N))``,
   N = 500 (``--quick``: 200), and every result read with ``get()``.

   * SQLite: one pool of 4 workers, in this process (``start(db, workers=4)``), so that
     two workers more than the limit are idle and could take a call.
   * PostgreSQL: two "machines", each a process of its own with its own ``AUTOCRON_HOST``
     ("a", "b") and ``TMPDIR`` (so that they share no wake-up socket or lock, only the
     database) that runs ``start(url, workers=2)``; this process is a producer only
     (``start(url, workers=0)``).  The machines start, and warm up, before the clock.

   Reported: the most calls running at once, from the stamps the calls returned (a sweep
   over the intervals [start, end), an end before a start at the same instant; all
   processes of one machine, so one clock); it must be <= 2 in every round.  And the
   seconds from the ``map()`` call to the last value; the floor is N x 10 ms / 2 (2.5 s at
   N = 500).  On PostgreSQL also how many calls each machine ran.

2. Rate: ``autocron.limit("api", rate="50/second")``, then ``api.map(range(N))``,
   N = 1,000 (``--quick``: 300), a pool of 2 workers in this process (both stores).
   Reported: the most starts in any 1-second window [t, t + 1 s), from the calls' start
   times as autocron records them (``result._fetch().started``, read after ``get()``: the
   pool's clock, on PostgreSQL its estimate of the server's), which must be <= 50 in every
   round; and the seconds from the ``map()`` call to the last value.  The goal for the
   time is < 1.1 x N / 50 s (22 s at N = 1,000; 50 starts a second need at least
   (N - 50) / 50 s: 19 s).

3. Throughput with limits elsewhere: 3,000 calls of ``add(i, i)`` (default queue, never
   limited; ``--quick``: 1,000), enqueued one by one, then each result read with ``get()``
   in order (``tasks_bench.run_batch``: tasks/s = N / the whole; enqueue calls/s = N / the
   loop), on a pool of 2 workers in this process, in two databases:

   * no limits: no ``limit()`` at all;
   * ten limited queues: ``autocron.limit(f"q{i}", concurrency=2, rate="100/second")`` for
     i in range(10), queues that get no calls: what the claims pay for looking at limits.

   The two alternate which goes first from round to round; the ratio limited / unlimited
   is taken per round (the same round's pair) and its median is the goal's number
   (>= 0.9).

Rounds: 3 (``--quick``: 1); within a round sections 1, 2, 3, each on SQLite then
PostgreSQL.  Each table shows the median and every round.  A measurement that fails or
times out gets the error in its cells and the run goes on; the exit code is 0 whatever
the outcome: this is a report, not a test.  Every pool and machine is stopped before the
next starts, also on an error or SIGTERM, and a child process left behind is reported on
stderr and killed.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench,postgres]"
    .venv/bin/python benchmarks/limits_bench.py [--quick] [--postgres URL]

The PostgreSQL user needs the right to create schemas in the URL's database.  The machines
and every worker import this file as the module ``limits_bench`` (this folder is put on
their ``PYTHONPATH``); so that every task has one importable name, the script itself runs
as that module too (see the end of the file).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first: the working copy of autocron.py
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import autocron  # noqa: E402
import postgres_bench as pg_bench  # noqa: E402
import tasks_bench as bench  # noqa: E402
from tasks_bench import markdown_table  # noqa: E402

CALL_TIMEOUT = bench.CALL_TIMEOUT       # seconds for one call (warm-up, start-up)
RUN_TIMEOUT = 120.0                     # seconds for one measurement's calls, beyond its floor
NAP = 0.01                              # seconds a `slow` call sleeps
CONCURRENCY = 2                         # section 1's limit
RATE, RATE_TEXT = 50, "50/second"       # section 2's limit
OTHER_QUEUES = 10                       # section 3: queues limited, with no calls
OTHER_LIMIT = dict(concurrency=2, rate="100/second")
GOAL_RATE_SLACK = 1.1                   # section 2: seconds < this x N / RATE
GOAL_RATIO = 0.9                        # section 3: limited / unlimited tasks/s
STORES = {None: "SQLite", "pg": "PostgreSQL"}
HOSTS = ("a", "b")                      # the PostgreSQL machines' AUTOCRON_HOST
MACHINE = """
    import sys, autocron
    autocron.start(sys.argv[1], workers=2)
    import limits_bench
    for i in range(8):
        assert limits_bench.add(i, i).get(timeout=60) == 2 * i
    print("ready", flush=True)
    sys.stdin.read()
    autocron.stop()
"""


@dataclass(frozen=True)
class Sizes:
    rounds: int
    slow: int        # section 1's calls
    rated: int       # section 2's calls
    batch: int       # section 3's calls


FULL = Sizes(rounds=3, slow=500, rated=1000, batch=3000)
QUICK = Sizes(rounds=1, slow=200, rated=300, batch=1000)


@dataclass
class Run:
    """One measurement in one round; what it did not reach stays None."""

    peak: Optional[float] = None        # most running at once (1) / starts in 1 s (2)
    seconds: Optional[float] = None     # map() to the last value (1, 2)
    hosts: Optional[str] = None         # calls per machine (1, PostgreSQL)
    throughput: Optional[float] = None  # tasks/s (3)
    enqueue: Optional[float] = None     # calls/s (3)
    ratio: Optional[float] = None       # limited / unlimited, this round (3)
    error: Optional[str] = None


# --- the tasks -------------------------------------------------------------------

@autocron.delay(queue="slow")
def slow(i):
    start = time.time()
    time.sleep(NAP)
    return i, start, time.time(), os.environ.get("AUTOCRON_HOST", "")


@autocron.delay(queue="api")
def api(i):
    return i


@autocron.delay
def add(a, b):
    return a + b


# --- the pools ---------------------------------------------------------------------

def check(value, expected, what: str) -> None:
    if value != expected:
        raise AssertionError(f"{what} returned {value!r}, not {expected!r}")


def warm_up() -> None:
    """A few ``add`` calls through the pool, so that every worker is up."""
    handles = [add(i, i) for i in range(8)]
    for i, handle in enumerate(handles):
        check(handle.get(timeout=CALL_TIMEOUT), 2 * i, f"add({i}, {i})")


@contextlib.contextmanager
def fresh_database(postgres: Optional[str], what: str) -> Iterator[str]:
    """A fresh database: a file in a fresh folder, or a fresh schema of ``postgres``;
    removed afterwards (after this process's pool has stopped)."""
    with contextlib.ExitStack() as stack:
        if postgres is None:
            folder = Path(tempfile.mkdtemp(prefix=f"limits-bench-{what}-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            database = str(folder / "autocron.db")
        else:
            schema = pg_bench.fresh_name(f"limits_{what}")
            database = pg_bench.with_schema(postgres, schema)
            stack.callback(pg_bench.run_sql, postgres,
                           f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            stack.callback(autocron._pg_links.__dict__.clear)   # its connections, first
        stack.callback(bench.reap_strays, "autocron")
        stack.callback(autocron.stop)
        yield database


@contextlib.contextmanager
def machines(database: str) -> Iterator[list]:
    """A machine per name in HOSTS on ``database``: a process with its own AUTOCRON_HOST and
    temporary folder and a pool of 2 workers, warmed up; stopped (their process groups
    killed) afterwards."""
    started = []
    try:
        for host in HOSTS:
            folder = tempfile.mkdtemp(prefix=f"limits-bench-machine-{host}-")
            env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
            env.update(AUTOCRON_HOST=host, TMPDIR=folder, PYTHONPATH=os.pathsep.join(
                filter(None, [str(BENCH_DIR), str(ROOT), os.environ.get("PYTHONPATH")])))
            proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(MACHINE), database],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env=env, cwd=ROOT, start_new_session=True)
            started.append((proc, folder))
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"machine {host} did not start (exit {proc.poll()})")
        yield started
    finally:
        for proc, folder in started:
            with contextlib.suppress(OSError):
                proc.stdin.close()              # the machine stops its pool and ends
        for proc, folder in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            bench.stop_process_group(proc, signal.SIGTERM, "machine")
            shutil.rmtree(folder, ignore_errors=True)


# --- the measurements --------------------------------------------------------------

def most_at_once(spans: list) -> int:
    """The most intervals [start, end) that overlap at one instant."""
    events = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    running = peak = 0
    for _, step in events:          # at the same instant an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    return peak


def most_in_window(times: list, width: float = 1.0) -> int:
    """The most of ``times`` in any window [t, t + width)."""
    times, peak, first = sorted(times), 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def concurrency_round(postgres: Optional[str], n: int) -> Run:
    m = Run()
    try:
        with fresh_database(postgres, "concurrency") as database, contextlib.ExitStack() as \
                stack:
            autocron.limit("slow", concurrency=CONCURRENCY, database=database)
            if postgres is None:
                autocron.start(database, workers=4)
                warm_up()
            else:
                stack.enter_context(machines(database))
                autocron.start(database, workers=0)
            started = time.perf_counter()
            results = slow.map(range(n))
            values = [r.get(timeout=RUN_TIMEOUT + n * NAP) for r in results]
            m.seconds = time.perf_counter() - started
            check([v[0] for v in values], list(range(n)), "the calls' numbers")
            m.peak = most_at_once([(v[1], v[2]) for v in values])
            if postgres is not None:
                m.hosts = ", ".join(f"{host}: {sum(v[3] == host for v in values)}"
                                    for host in sorted({v[3] for v in values}))
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def rate_round(postgres: Optional[str], n: int) -> Run:
    m = Run()
    try:
        with fresh_database(postgres, "rate") as database:
            autocron.limit("api", rate=RATE_TEXT, database=database)
            autocron.start(database, workers=bench.WORKERS)
            warm_up()
            started = time.perf_counter()
            results = api.map(range(n))
            values = [r.get(timeout=RUN_TIMEOUT + n / RATE) for r in results]
            m.seconds = time.perf_counter() - started
            check(values, list(range(n)), "the calls")
            starts = [r._fetch().started for r in results]
            if None in starts:
                raise AssertionError(f"{starts.count(None)} calls have no start time")
            m.peak = most_in_window(starts)
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def throughput_round(postgres: Optional[str], n: int, limited: bool) -> Run:
    m = Run()
    try:
        with fresh_database(postgres, "limited" if limited else "unlimited") as database:
            if limited:
                for i in range(OTHER_QUEUES):
                    autocron.limit(f"q{i}", **OTHER_LIMIT, database=database)
            autocron.start(database, workers=bench.WORKERS)
            warm_up()
            check(len(autocron._state.store.limits()), OTHER_QUEUES if limited else 0,
                  "the count of limited queues")      # the limits are there, or none is
            measured = bench.Measurement()
            bench.run_batch(bench.Client(add, lambda result, timeout: result.get(
                timeout=timeout)), n, measured)
            m.throughput, m.enqueue = measured.throughput, measured.enqueue
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


# --- the rounds and the report -----------------------------------------------------

def run_all(sizes: Sizes, postgres: Optional[str]) -> dict:
    stores = {None: None, "pg": postgres} if postgres else {None: None}
    results = {(what, store): [] for what in ("concurrency", "rate", "unlimited", "limited",
                                                "ratio") for store in stores}
    for r in range(1, sizes.rounds + 1):
        for store, url in stores.items():
            bench.progress(f"round {r}/{sizes.rounds}: concurrency, {STORES[store]} ...")
            results["concurrency", store].append(concurrency_round(url, sizes.slow))
            bench.progress(f"  {results['concurrency', store][-1]}")
        for store, url in stores.items():
            bench.progress(f"round {r}/{sizes.rounds}: rate, {STORES[store]} ...")
            results["rate", store].append(rate_round(url, sizes.rated))
            bench.progress(f"  {results['rate', store][-1]}")
        for store, url in stores.items():
            for what in ("unlimited", "limited") if r % 2 else ("limited", "unlimited"):
                bench.progress(f"round {r}/{sizes.rounds}: throughput, {what}, "
                               f"{STORES[store]} ...")
                results[what, store].append(throughput_round(url, sizes.batch,
                                                             what == "limited"))
                bench.progress(f"  {results[what, store][-1]}")
            pair = (results["limited", store][-1].throughput,
                    results["unlimited", store][-1].throughput)
            results["ratio", store].append(Run(ratio=bench.ratio(*pair), error=None if None
                                               not in pair else "a throughput is missing"))
    return results


def fmt_count(value) -> str:
    return f"{value:g}"


def fmt_seconds(value) -> str:
    return f"{value:,.2f}"


def fmt_ratio(value) -> str:
    return f"{value:.3f}"


def row(label: str, rounds: list, field: str, fmt: Callable) -> list:
    """A table row: the label, the median of the rounds and every round."""
    return [label, bench.median_cell(rounds, field, fmt),
            *(bench.cell(m, field, fmt) for m in rounds)]


def worst(rounds: list, field: str) -> Optional[float]:
    """The largest value of the rounds; None if a round has none."""
    values = [getattr(m, field) for m in rounds]
    return None if not values or None in values else max(values)


def print_report(results: dict, sizes: Sizes, postgres: Optional[str]) -> None:
    import platform

    stores = [None, "pg"] if postgres else [None]
    rounds = [f"round {r}" for r in range(1, sizes.rounds + 1)]
    print("# Queue limits: concurrency, rate, and the cost of limits elsewhere\n")
    print(f"- Python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs" + (f"; PostgreSQL {pg_bench.server_version(postgres)} at "
                                      f"{pg_bench.shown(postgres)}" if postgres else ""))
    print(f"- autocron {bench.autocron_version()}; {sizes.rounds} round(s); a fresh database "
          f"for every measurement\n")

    floor = sizes.slow * NAP / CONCURRENCY
    print(f"## 1. `concurrency={CONCURRENCY}`: {sizes.slow:,} calls of a task that sleeps "
          f"{NAP * 1000:g} ms\n")
    pools = {None: "SQLite, one pool of 4 workers",
             "pg": f"PostgreSQL, {len(HOSTS)} machines of 2 workers"}
    rows = []
    for store in stores:
        ms = results["concurrency", store]
        rows.append(row(f"{pools[store]}: most running at once", ms, "peak", fmt_count))
        rows.append(row(f"{pools[store]}: seconds, map() to last value", ms, "seconds",
                        fmt_seconds))
    print(markdown_table(["autocron", "median", *rounds], rows))
    print(f"\nFloor: {sizes.slow:,} x {NAP * 1000:g} ms / {CONCURRENCY} = {floor:.2f} s.")
    if postgres:
        print("Calls per machine: " + "; ".join(
            f"round {r}: {m.hosts or 'n/a'}"
            for r, m in enumerate(results["concurrency", "pg"], 1)) + ".")

    print(f"\n## 2. `rate=\"{RATE_TEXT}\"`: {sizes.rated:,} calls of a trivial task, "
          f"{bench.WORKERS} workers\n")
    rows = []
    for store in stores:
        ms = results["rate", store]
        rows.append(row(f"{STORES[store]}: most starts in any 1 s window", ms, "peak",
                        fmt_count))
        rows.append(row(f"{STORES[store]}: seconds, map() to last value", ms, "seconds",
                        fmt_seconds))
    print(markdown_table(["autocron", "median", *rounds], rows))
    print(f"\nLeast possible: (N - {RATE}) / {RATE} = {(sizes.rated - RATE) / RATE:.2f} s "
          f"of starts.")

    print(f"\n## 3. Throughput of {sizes.batch:,} unlimited `add()` calls, {bench.WORKERS} "
          f"workers, with and without {OTHER_QUEUES} other queues limited "
          f"(concurrency=2, rate=\"100/second\")\n")
    rows = []
    for store in stores:
        for what, label in (("unlimited", "no limits"),
                            ("limited", f"{OTHER_QUEUES} other queues limited")):
            rows.append(row(f"{STORES[store]}: {label}, tasks/s", results[what, store],
                            "throughput", bench.fmt_rate))
        rows.append(row(f"{STORES[store]}: limited / no limits (this round's pair)",
                        results["ratio", store], "ratio", fmt_ratio))
        for what, label in (("unlimited", "no limits"),
                            ("limited", f"{OTHER_QUEUES} other queues limited")):
            rows.append(row(f"{STORES[store]}: {label}, enqueue calls/s", results[what, store],
                            "enqueue", bench.fmt_rate))
    print(markdown_table(["autocron", "median", *rounds], rows))

    print("\n## Goals\n")
    for store in stores:
        name = STORES[store]
        peak = worst(results["concurrency", store], "peak")
        print(bench.goal_line(peak is not None and peak <= CONCURRENCY,
                              f"{name}: at most {CONCURRENCY} `slow` calls at once in every "
                              f"round (got {'n/a' if peak is None else fmt_count(peak)})"))
        peak = worst(results["rate", store], "peak")
        print(bench.goal_line(peak is not None and peak <= RATE,
                              f"{name}: at most {RATE} starts in any 1 s window in every round "
                              f"(got {'n/a' if peak is None else fmt_count(peak)})"))
        limit = GOAL_RATE_SLACK * sizes.rated / RATE
        slowest = worst(results["rate", store], "seconds")
        print(bench.goal_line(slowest is not None and slowest < limit,
                              f"{name}: {sizes.rated:,} rate-limited calls in < {limit:g} s in "
                              f"every round (slowest "
                              f"{'n/a' if slowest is None else fmt_seconds(slowest)} s)"))
        ratio = bench.median_of(results["ratio", store], "ratio")
        print(bench.goal_line(ratio is not None and ratio >= GOAL_RATIO,
                              f"{name}: throughput with {OTHER_QUEUES} other queues limited >= "
                              f"{GOAL_RATIO:g} x without (median of the rounds' ratios: "
                              f"{'n/a' if ratio is None else fmt_ratio(ratio)})"))


def main(argv=None) -> int:
    return bench.run_rounds(__doc__, f"{QUICK.rounds} round, N = {QUICK.slow:,} / "
                            f"{QUICK.rated:,} / {QUICK.batch:,}",
                            QUICK, FULL, run_all, print_report, argv)


if __name__ == "__main__":
    # Run as the module limits_bench, the name its tasks have in the workers (autocron
    # would ship a function of __main__ by value).
    import limits_bench
    sys.exit(limits_bench.main())
