"""Async concurrency: many ``async def`` calls at once in a worker, and the calls beside them.

What is measured
----------------
A worker runs up to ``async_concurrency`` ``async def`` calls at once on its event loop
(``start(..., async_concurrency=M)``, default 100), or one synchronous call, never both.
Every measurement of every round runs in a fresh database (``limits_bench.fresh_database``:
on SQLite a fresh temporary folder, ``<folder>/autocron.db``; with ``--postgres URL`` also
on that server, in a fresh schema, ``<URL>?schema=<fresh>``, dropped afterwards) with a
pool of 2 workers of its own, warmed up before anything is timed: a few calls of
``_tasks_autocron.add`` and then of ``_tasks_autocron.async_add`` through it (so that every
worker is up and has made its event loop), and a check that the workers run the same
``autocron.py`` as the process that owns the pool (``tasks_bench.check_worker_autocron``).
The tasks, all in this module (the workers import it as ``async_bench``)::

    @autocron.delay
    async def nap(i): await asyncio.sleep(1); return i        # section 1

    @autocron.delay
    async def today(i): await asyncio.sleep(0.3); return i    # section 2

    @autocron.delay
    async def flood(i): await asyncio.sleep(0.1); return i    # section 3

    @autocron.delay
    def ping(i): return i                                     # section 3, synchronous

(each takes a number, so that ``map()`` has something to map over and every value can be
checked).  Every value is read with ``result.get(timeout=...)`` and checked.

1. The issue's figure: ``nap.map(range(N))``, N = 200 (``--quick``: 100), on
   ``start(db, workers=2, async_concurrency=100)``; the seconds from the ``map()`` call to
   the last value, read in order with ``get()``.  On SQLite and, with ``--postgres``, on
   PostgreSQL.  The floor: ``asyncio.run(asyncio.gather(*(asyncio.sleep(1, i) for i in
   range(N))))`` in this process, a fresh event loop each round: no pool, no database,
   nothing durable.  Goal: under 3 s (the median of the rounds, on each store).

2. The issue's "today": ``today.map(range(20))`` (also with ``--quick``), 2 workers
   (``start(db, workers=2)``, the same call for both, so the new one runs with its default
   ``async_concurrency`` of 100), the seconds from the ``map()`` call to the last value, on
   SQLite, for autocron now (the working ``autocron.py``) and autocron before async
   concurrency (``git show f30b60d:autocron.py``, whose worker runs one async call at a time
   on its event loop: 20 x 0.3 s / 2 workers = 3 s at least; the issue measured 3.08 s).
   Two modules named ``autocron`` cannot share a process, so each measurement runs in a
   subprocess of its own, with the copies that ``tasks_bench.autocron_copies`` takes when
   the run starts (the working file and the old one, each alone in a temporary folder, so
   that a concurrent edit of the working file does not change what is measured; the header
   warns if it changed): the script runs itself with the hidden option ``--measure-today N``
   and the environment variable ``ASYNC_BENCH_AUTOCRON`` = the copy's folder, which this
   module puts first on ``sys.path`` before it imports autocron (the workers inherit the
   variable, and import this module the same way); the subprocess checks that
   ``import autocron`` found the copy (``tasks_bench.import_autocron_from``), measures in a
   fresh pool as above and prints its result as one JSON line (``MEASURE_PREFIX``).  The
   two run side by side in every round, alternating which goes first
   (``tasks_bench.round_order``); old / now is taken per round.  A subprocess is stopped
   with SIGTERM, then SIGKILL of its process group, and the workers of its copy that
   outlive it (found by the copy's ``autocron.py`` in their command line) are killed by
   pid.  Goal: now <= 0.5 s (the median of the rounds).

3. Starvation: ``start(db, workers=2, async_concurrency=100)``; ``flood.map(range(N))``,
   N = 2,000 (``--quick``: 500), then 20 calls ``ping(i)``, stored one by one right after
   the map returns; then every value is read (the pings first).  From the calls' end times
   as autocron records them (``result._fetch().finished``, read after ``get()``: the pool's
   clock, on PostgreSQL its estimate of the server's), against the store's clock
   (``autocron._state.store.now()``, the same clock) just before the map and before each
   ping: the seconds from the map to the end of the first ping and of the last; the median
   latency of the pings (each from just before it was stored to its end, ms); the seconds
   from the map to the end of the last flood call (its floor: N x 0.1 s / (2 x 100) = 1 s
   at N = 2,000); and the share of the flood that had ended when the last ping ended.  On
   SQLite and, with ``--postgres``, on PostgreSQL.  Goal: the pings are not starved: the
   last ping ends before the flood in every round, and (the median of the rounds) while
   less than half of the flood has ended.

Rounds: 3 (``--quick``: 1); within a round sections 1, 2, 3, each on SQLite then PostgreSQL
(section 1's floor after them).  Each table shows the median and every round.  A
measurement that fails or times out gets the error in its cells and the run goes on; the
exit code is 0 whatever the outcome: this is a report, not a test.  Every pool and
subprocess is stopped before the next starts, also on an error or SIGTERM, and a child
process left behind is reported on stderr and killed.  Sections 1 and 3 run the working
``autocron.py`` in this process (as the other benchmarks do).

How to run (from the repository root)::

    .venv/bin/pip install -e ".[postgres]"
    .venv/bin/python benchmarks/async_bench.py [--quick] [--postgres URL]

The PostgreSQL user needs the right to create schemas in the URL's database; section 2
needs git and the commit f30b60d in this repository.  Every worker imports this file as the
module ``async_bench`` (this folder is on the path that autocron gives its workers); so
that every task has one importable name, the script itself runs as that module too (see
the end of the file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
COPY_ENV = "ASYNC_BENCH_AUTOCRON"     # a --measure-today subprocess: its autocron's folder
for _folder in (BENCH_DIR, ROOT, os.environ.get(COPY_ENV)):   # the last ends up first: the
    if _folder and str(_folder) not in sys.path:                # copy, else the working file
        sys.path.insert(0, str(_folder))

import autocron  # noqa: E402
import _tasks_autocron  # noqa: E402
import limits_bench as limits  # noqa: E402
import postgres_bench as pg_bench  # noqa: E402
import tasks_bench as bench  # noqa: E402
from tasks_bench import markdown_table  # noqa: E402

WORKERS = bench.WORKERS                 # 2
ASYNC_CONCURRENCY = 100                 # sections 1 and 3
RUN_TIMEOUT = 120.0                     # seconds for one call's value
NAP, TODAY_NAP, FLOOD_NAP = 1.0, 0.3, 0.1   # seconds each call of nap, today, flood sleeps
PINGS = 20                              # section 3's synchronous calls
BASE_COMMIT = "f30b60d"                 # autocron before async concurrency
GOAL_NAP = 3.0                          # section 1: seconds
GOAL_TODAY = 0.5                        # section 2: seconds, autocron now
GOAL_SHARE = 50.0                       # section 3: % of the flood ended at the last ping
STORES = limits.STORES                  # {None: "SQLite", "pg": "PostgreSQL"}
VERSIONS = {"autocron": "autocron now (the working autocron.py)",
            "baseline": f"autocron before ({BASE_COMMIT})"}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    naps: int        # section 1's calls
    today: int       # section 2's calls
    flood: int       # section 3's async calls


FULL = Sizes(rounds=3, naps=200, today=20, flood=2000)
QUICK = Sizes(rounds=1, naps=100, today=20, flood=500)


@dataclass
class Run:
    """One measurement in one round; what it did not reach stays None."""

    seconds: Optional[float] = None     # map() to the last value (1, 2); to the flood's end (3)
    ratio: Optional[float] = None       # before / now, this round (2)
    first: Optional[float] = None       # seconds from the flood's map() to the first ping's end
    pings: Optional[float] = None       # seconds from the flood's map() to the last ping's end
    latency: Optional[float] = None     # ms, the pings' median from stored to ended (3)
    share: Optional[float] = None       # % of the flood ended when the last ping ended (3)
    error: Optional[str] = None


# --- the tasks -------------------------------------------------------------------

@autocron.delay
async def nap(i):
    await asyncio.sleep(NAP)
    return i


@autocron.delay
async def today(i):
    await asyncio.sleep(TODAY_NAP)
    return i


@autocron.delay
async def flood(i):
    await asyncio.sleep(FLOOD_NAP)
    return i


@autocron.delay
def ping(i):
    return i


# --- the pools ---------------------------------------------------------------------

@contextlib.contextmanager
def pool(postgres: Optional[str], what: str, **options) -> Iterator[None]:
    """A pool of WORKERS workers on a fresh database (``start(db, workers=2, **options)``),
    warmed up with sync and async calls; stopped, and its database removed, afterwards."""
    with limits.fresh_database(postgres, f"async_{what}") as database:
        autocron.start(database, workers=WORKERS, **options)
        for task in (_tasks_autocron.add, _tasks_autocron.async_add):
            bench.warm_up(bench.Client(task, bench._autocron_wait))
        bench.check_worker_autocron(autocron, _tasks_autocron)
        yield


def values_of(results: list, what: str) -> None:
    """Read every value in order with get(); each must be its call's number."""
    values = [result.get(timeout=RUN_TIMEOUT) for result in results]
    limits.check(values, list(range(len(results))), what)


def end_times(results: list) -> list:
    """The calls' end times as autocron records them (the pool's clock)."""
    ends = [result._fetch().finished for result in results]
    if None in ends:
        raise AssertionError(f"{ends.count(None)} calls have no end time")
    return ends


def timed_map(task, n: int, what: str) -> float:
    """Seconds from ``task.map(range(n))`` to the last value read."""
    started = time.perf_counter()
    values_of(task.map(range(n)), what)
    return time.perf_counter() - started


# --- the measurements --------------------------------------------------------------

def nap_round(postgres: Optional[str], n: int) -> Run:
    m = Run()
    try:
        with pool(postgres, "nap", async_concurrency=ASYNC_CONCURRENCY):
            m.seconds = timed_map(nap, n, "the naps")
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def gather_round(n: int) -> Run:
    """The floor: the same sleeps gathered in this process."""
    async def naps():
        return await asyncio.gather(*(asyncio.sleep(NAP, i) for i in range(n)))

    m = Run()
    try:
        started = time.perf_counter()
        values = asyncio.run(naps())
        m.seconds = time.perf_counter() - started
        limits.check(values, list(range(n)), "asyncio.gather")
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


def measure_today(n: int) -> int:
    """The hidden ``--measure-today N`` mode: section 2 with the autocron.py in the folder
    $ASYNC_BENCH_AUTOCRON; prints MEASURE_PREFIX + JSON {"run": ..., "autocron": ...}."""
    m, info = Run(), {}
    try:
        info = bench.import_autocron_from(Path(os.environ[COPY_ENV]))
        with pool(None, "today"):   # no async_concurrency: the old start() does not take it
            m.seconds = timed_map(today, n, "today's calls")
    except Exception as exc:
        m.error = bench.note_error(exc)
    print(bench.MEASURE_PREFIX + json.dumps({"run": asdict(m), "autocron": info}), flush=True)
    return 0


def today_round(lib: str, copy: bench.AutocronCopy, n: int, versions: dict) -> Run:
    """Section 2 with ``copy``'s autocron, in a subprocess (``--measure-today``)."""
    m = Run()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--measure-today",
                             str(n)], cwd=ROOT, env={**os.environ, COPY_ENV: str(copy.folder)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)     # stderr: ours
    try:
        out = proc.communicate(timeout=bench.MEASURE_TIMEOUT)[0]
        line = next((line for line in reversed(out.splitlines())
                     if line.startswith(bench.MEASURE_PREFIX)), None)
        if line is None:
            raise RuntimeError(f"the subprocess printed no measurement (exit {proc.returncode})")
        data = json.loads(line[len(bench.MEASURE_PREFIX):])
        m = Run(**data["run"])
        versions.setdefault(lib, data["autocron"].get("version", "?"))
    except subprocess.TimeoutExpired:
        m.error = f"TimeoutError: no measurement within {bench.MEASURE_TIMEOUT:.0f} s"
    except Exception as exc:
        m.error = bench.note_error(exc)
    finally:
        bench.stop_process_group(proc, signal.SIGTERM, "measurement subprocess")
        # the workers have the copy's file (not its folder) as an argument
        bench.kill_copy_strays(lib, copy.folder / "autocron.py")
    return m


def starvation_round(postgres: Optional[str], n: int) -> Run:
    m = Run()
    try:
        with pool(postgres, "flood", async_concurrency=ASYNC_CONCURRENCY):
            store = autocron._state.store
            if store is None:
                raise RuntimeError("autocron.start() left no store")
            now = store.now                         # the clock of the calls' end times
            started = now()
            floods = flood.map(range(n))
            stored, pings = [], []
            for i in range(PINGS):
                stored.append(now())
                pings.append(ping(i))
            values_of(pings, "the pings")
            values_of(floods, "the flood")
            ping_ends, flood_ends = end_times(pings), end_times(floods)
        last_ping = max(ping_ends)
        m.first, m.pings = min(ping_ends) - started, last_ping - started
        m.seconds = max(flood_ends) - started
        m.latency = statistics.median(e - s for e, s in zip(ping_ends, stored)) * 1000
        m.share = sum(end <= last_ping for end in flood_ends) / n * 100
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


# --- the rounds and the report -----------------------------------------------------

@contextlib.contextmanager
def both_autocrons() -> Iterator[dict]:
    """``tasks_bench.autocron_copies`` of the working autocron.py and of BASE_COMMIT's."""
    with tempfile.TemporaryDirectory(prefix="async-bench-base-") as folder:
        base = Path(folder) / "autocron.py"
        base.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show",
                                         f"{BASE_COMMIT}:autocron.py"], check=True,
                                        capture_output=True).stdout)
        with bench.autocron_copies(base) as copies:
            yield copies


class Results(NamedTuple):
    runs: dict      # {(section, store or autocron): [Run per round]}
    copies: dict    # {"autocron": AutocronCopy, "baseline": AutocronCopy} (section 2)
    versions: dict  # {"autocron"/"baseline": __version__}, as the subprocesses imported it


def run_all(sizes: Sizes, postgres: Optional[str]) -> Results:
    stores = {None: None, "pg": postgres} if postgres else {None: None}
    runs: dict = {key: [] for key in [("nap", s) for s in stores] + [("gather", None)] +
                  [("today", lib) for lib in VERSIONS] + [("ratio", None)] +
                  [("flood", s) for s in stores]}
    results, missing = Results(runs, {}, {}), None   # missing: why there are no copies
    with contextlib.ExitStack() as stack:
        try:
            results.copies.update(stack.enter_context(both_autocrons()))
        except Exception as exc:
            missing = bench.note_error(exc)
        for r in range(1, sizes.rounds + 1):
            for store, url in stores.items():
                bench.progress(f"round {r}/{sizes.rounds}: naps, {STORES[store]} ...")
                runs["nap", store].append(nap_round(url, sizes.naps))
                bench.progress(f"  {runs['nap', store][-1]}")
            bench.progress(f"round {r}/{sizes.rounds}: asyncio.gather ...")
            runs["gather", None].append(gather_round(sizes.naps))
            bench.progress(f"  {runs['gather', None][-1]}")
            for lib in bench.round_order(r, tuple(VERSIONS)):
                bench.progress(f"round {r}/{sizes.rounds}: today, {VERSIONS[lib]} "
                               f"(subprocess) ...")
                copy = results.copies.get(lib)
                runs["today", lib].append(Run(error=missing) if copy is None else today_round(
                    lib, copy, sizes.today, results.versions))
                bench.progress(f"  {runs['today', lib][-1]}")
            pair = (runs["today", "baseline"][-1].seconds,
                    runs["today", "autocron"][-1].seconds)
            runs["ratio", None].append(Run(ratio=bench.ratio(*pair), error=None if None
                                              not in pair else "a time is missing"))
            for store, url in stores.items():
                bench.progress(f"round {r}/{sizes.rounds}: flood, {STORES[store]} ...")
                runs["flood", store].append(starvation_round(url, sizes.flood))
                bench.progress(f"  {runs['flood', store][-1]}")
    return results


def fmt_share(value) -> str:
    return f"{value:.1f}%"


def server_version(url: str) -> str:
    """postgres_bench.server_version, or why it is unknown (the report goes on)."""
    try:
        return pg_bench.server_version(url)
    except Exception as exc:
        return f"(version unknown: {bench.describe(exc)})"


def print_report(results: Results, sizes: Sizes, postgres: Optional[str]) -> None:
    stores = [None, "pg"] if postgres else [None]
    rounds = [f"round {r}" for r in range(1, sizes.rounds + 1)]
    row, seconds = limits.row, limits.fmt_seconds
    server = f"; PostgreSQL {server_version(postgres)} at {pg_bench.shown(postgres)}" \
        if postgres else ""
    print("# Async concurrency: async def calls at once, and the calls beside them\n")
    print(f"- Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} "
          f"CPUs{server}")
    print(f"- sections 1 and 3: autocron {bench.autocron_version()}; {WORKERS} workers, "
          f"async_concurrency={ASYNC_CONCURRENCY}; {sizes.rounds} interleaved round(s), a "
          f"fresh database for every measurement")
    runs, copies, versions = results
    for lib, copy in copies.items():
        origin = f"`git show {BASE_COMMIT}:autocron.py`" if lib == "baseline" else \
            f"`{copy.origin}`" + (" **WARNING: the working file has changed since; the copy "
                                  "was measured**" if bench.changed_since(copy) else "")
        print(f"- section 2, {VERSIONS[lib]}: {versions.get(lib, '?')}, a copy (sha256 "
              f"{copy.sha256[:12]}) of {origin}, in a subprocess")

    floor = f"asyncio.gather of the {sizes.naps} sleeps in one process (not durable)"
    print(f"\n## 1. {sizes.naps} calls of `async def nap(i): await asyncio.sleep({NAP:g}); "
          f"return i`, {WORKERS} workers: seconds from map() to the last get()\n")
    rows = [row(f"autocron, {STORES[store]}", runs["nap", store], "seconds", seconds)
            for store in stores] + [row(floor, runs["gather", None], "seconds", seconds)]
    print(markdown_table(["", "median s", *rounds], rows))

    print(f"\n## 2. The issue's \"today\": {sizes.today} calls that await "
          f"asyncio.sleep({TODAY_NAP:g}), {WORKERS} workers, SQLite: seconds from map() to the "
          f"last get()\n")
    rows = [row(VERSIONS[lib], runs["today", lib], "seconds", seconds) for lib in VERSIONS]
    rows.append(row("before / now (this round's pair)", runs["ratio", None], "ratio",
                    bench.fmt_ratio))
    print(markdown_table(["", "median s", *rounds], rows))
    print(f"\nFloors: one call at a time per worker {sizes.today} x {TODAY_NAP:g} s / "
          f"{WORKERS} = {sizes.today * TODAY_NAP / WORKERS:.2f} s; all at once {TODAY_NAP:g} s.")

    print(f"\n## 3. Starvation: {sizes.flood:,} async calls that await asyncio.sleep("
          f"{FLOOD_NAP:g}), then {PINGS} synchronous calls, {WORKERS} workers\n")
    measures = (("first", "s from the flood's map() to the first sync call's end", seconds),
                ("pings", f"s from the flood's map() to the last of the {PINGS} sync calls' "
                          f"ends", seconds),
                ("latency", "ms, median sync call, stored to ended", bench.fmt_ms),
                ("seconds", "s from the flood's map() to its last call's end", seconds),
                ("share", "% of the flood ended when the last sync call ended", fmt_share))
    rows = [row(f"{STORES[store]}: {label}", runs["flood", store], field, fmt)
            for store in stores for field, label, fmt in measures]
    print(markdown_table(["autocron", "median", *rounds], rows))
    print(f"\nFloor of the flood: {sizes.flood:,} x {FLOOD_NAP:g} s / ({WORKERS} x "
          f"{ASYNC_CONCURRENCY}) = {sizes.flood * FLOOD_NAP / WORKERS / ASYNC_CONCURRENCY:.2f} s.")

    print("\n## Goals\n")
    for store in stores:
        median = bench.median_of(runs["nap", store], "seconds")
        slowest = limits.worst(runs["nap", store], "seconds")
        print(bench.goal_line(median is not None and median < GOAL_NAP,
                              f"{STORES[store]}: {sizes.naps} naps in < {GOAL_NAP:g} s (median "
                              f"{'n/a' if median is None else seconds(median)} s, slowest "
                              f"{'n/a' if slowest is None else seconds(slowest)} s)"))
    median = bench.median_of(runs["today", "autocron"], "seconds")
    print(bench.goal_line(median is not None and median <= GOAL_TODAY,
                          f"today's {sizes.today} calls in <= {GOAL_TODAY:g} s with autocron "
                          f"now (median {'n/a' if median is None else seconds(median)} s)"))
    for store in stores:
        share = bench.median_of(runs["flood", store], "share")
        most = limits.worst(runs["flood", store], "share")
        print(bench.goal_line(share is not None and most is not None and share < GOAL_SHARE
                              and most < 100.0,
                              f"{STORES[store]}: the {PINGS} sync calls end before the flood "
                              f"in every round (most: {'n/a' if most is None else fmt_share(most)}"
                              f"), and while less than {GOAL_SHARE:g}% of it has ended (median:"
                              f" {'n/a' if share is None else fmt_share(share)})"))


def main(argv=None) -> int:
    hidden = argparse.ArgumentParser(add_help=False)
    hidden.add_argument("--measure-today", type=int)
    known, rest = hidden.parse_known_args(argv)
    if known.measure_today is not None:
        signal.signal(signal.SIGTERM, bench._interrupt)     # the pool stops on SIGTERM too
        return measure_today(known.measure_today)
    return bench.run_rounds(__doc__, f"{QUICK.rounds} round, N = {QUICK.naps:,} / "
                            f"{QUICK.today:,} / {QUICK.flood:,}", QUICK, FULL, run_all,
                            print_report, rest)


if __name__ == "__main__":
    # Run as the module async_bench, the name its tasks have in the workers (autocron
    # would ship a function of __main__ by value).
    import async_bench
    sys.exit(async_bench.main())
