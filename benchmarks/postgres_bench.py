"""PostgreSQL: autocron vs huey's PostgresHuey vs ProcessPoolExecutor; two machines vs one.

What is measured
----------------
The same mix as ``tasks_bench.py`` sections 1-3 (its functions do the measuring), against a
PostgreSQL server given by ``--url``:

* autocron: ``autocron.start("<url>?schema=<fresh>", workers=2)``; the schema is dropped
  after the round.
* huey: ``PostgresHuey`` on the same server (tables with a fresh prefix, dropped after the
  round), its consumer ``python -m huey.bin.huey_consumer _tasks_huey.huey -w 2 -k process``
  with its default polling and LISTEN/NOTIFY wake-ups.
* ProcessPoolExecutor: the non-durable ceiling, as in ``tasks_bench.py``.

autocron runs with its default ``synchronous="normal"`` (commits do not wait for the
server's disk: ``synchronous_commit`` off, as SQLite's ``NORMAL``) and, in a row of its own,
with ``"full"`` (they do: ``on``, the server's default, which huey uses).

1. Throughput: enqueue 3,000 ``add(i, i)``, then wait for every result (tasks/s).
2. Enqueue rate: that loop alone (calls/s), with the pool running.
3. Idle latency: 60 calls, each after 20 ms of idleness, call then block (p50, p99 ms).
4. Batch enqueue: ``map()`` of 3,000 calls on a fresh schema with no pool (``workers=0``:
   the enqueue alone, nothing competes), 5 batches a round (calls/s each); beside it, raw
   psycopg storing rows of the same kinds (ids from a sequence, the arguments' text, a pickle
   of the call, the token, the name, the status, two times) into a table with a primary key
   and autocron's index of waiting calls, with ``COPY`` in one transaction, and
   ``synchronous_commit`` off as autocron's default: the floor of any Python producer.
5. Two machines: one process with ``start(url, workers=0)`` stores 3,000 calls with one
   ``map()`` and waits for them, while one machine, then two, run them (then the same with
   300 calls of a task that waits 20 ms, as I/O does); a "machine" is a
   process with its own ``AUTOCRON_HOST`` and ``TMPDIR`` that starts a pool of 2 workers (so
   they share no wake-up socket or lock: only the database), and, where the system can pin
   processes, one CPU of its own (machine n on CPU n; the server and the producer are not
   pinned). The clock runs from the ``map()`` call to the last result; the machines start
   (and warm up) before it.

Three interleaved rounds (``--quick``: one, 500 tasks, 20 latency calls). The exit code is 0
whatever the outcome: this is a report, not a test.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench,postgres]"
    .venv/bin/python benchmarks/postgres_bench.py --url postgresql://user:password@host/db

The user needs the right to create schemas and tables in that database.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

import tasks_bench as bench
from tasks_bench import Client, Measurement, markdown_table, median_of, ratio

GOAL_VS_HUEY = 3.0      # x PostgresHuey's end-to-end throughput
GOAL_P50_MS = 5.0       # idle latency p50
GOAL_MACHINES = 1.0     # two machines' throughput / one machine's
GOAL_MAP = 100_000      # map() calls/s, a batch of BATCH (issue 26)
BATCH, BATCHES = 3000, 5        # section 4: calls a map() stores, batches a round
NAPS = (0.0, 0.02)      # the machines' tasks: add(), and a task that waits 20 ms
HUEY_DSN_ENV = "AUTOCRON_BENCH_HUEY_DSN"      # the same names as in _tasks_huey
HUEY_PREFIX_ENV = "AUTOCRON_BENCH_HUEY_PREFIX"
MACHINE = """
    import os, sys, autocron
    if sys.argv[2] != "-":                  # a machine of its own: one CPU of its own
        os.sched_setaffinity(0, {int(sys.argv[2])})
    autocron.start(sys.argv[1], workers=2)
    import _tasks_autocron
    for i in range(8):
        assert _tasks_autocron.add(i, i).get(timeout=60) == 2 * i
    print("ready", flush=True)
    sys.stdin.read()
    autocron.stop()
"""


def with_schema(url: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "schema"]
    return urllib.parse.urlunsplit(parts._replace(
        query=urllib.parse.urlencode(query + [("schema", schema)])))


def run_sql(url: str, sql: str) -> None:
    import psycopg
    with psycopg.connect(with_schema(url, "public").replace("schema=public", ""),
                         autocommit=True) as con:
        con.execute(sql)


def fresh_name(what: str) -> str:
    return f"bench_{what}_{os.getpid()}_{time.monotonic_ns() % 10 ** 9}"


@contextlib.contextmanager
def autocron_pool(url: str, synchronous: str = "normal") -> Iterator[Client]:
    import autocron
    import _tasks_autocron
    schema = fresh_name("autocron")
    try:
        autocron.start(with_schema(url, schema), workers=bench.WORKERS, synchronous=synchronous)
        client = Client(_tasks_autocron.add, bench._autocron_wait)
        bench.warm_up(client)
        bench.check_worker_autocron(autocron, _tasks_autocron)
        yield client
    finally:
        autocron.stop()
        autocron._pg_links.__dict__.clear()
        run_sql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.contextmanager
def huey_pool(url: str) -> Iterator[Client]:
    folder = Path(tempfile.mkdtemp(prefix="postgres-bench-huey-"))
    prefix = fresh_name("huey")
    os.environ[HUEY_DSN_ENV], os.environ[HUEY_PREFIX_ENV] = url, prefix
    tasks = bench.load_huey_tasks(folder / "unused.db")
    proc = bench.start_consumer(folder / "consumer.log")
    try:
        bench.wait_for_consumer(proc, tasks, folder / "consumer.log")
        client = Client(tasks.add, bench._huey_wait)
        bench.warm_up(client)
        yield client
    finally:
        bench.stop_consumer(proc)
        tasks.huey.storage.close()
        for table in ("kv", "schedule", "task", "counter"):
            run_sql(url, f"DROP TABLE IF EXISTS {prefix}_{table}")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def ppe_pool(url: str) -> Iterator[Client]:
    with bench.ppe_pool(Path(".")) as client:
        yield client


POOLS = {"autocron": autocron_pool,
         "autocron-full": functools.partial(autocron_pool, synchronous="full"),
         "huey": huey_pool, "ppe": ppe_pool}
LABELS = {"autocron": "autocron (PostgreSQL)",
          "autocron-full": "autocron, synchronous=\"full\"",
          "huey": "huey (PostgresHuey)", "ppe": "ProcessPoolExecutor"}


def run_round(lib: str, url: str, sizes: bench.Sizes) -> Measurement:
    m = Measurement()
    try:
        with POOLS[lib](url) as client:
            bench.run_batch(client, sizes.tasks, m)
            bench.run_latency(client, sizes.latency_calls, m)
    except Exception as exc:
        m.error = bench.note_error(exc)
    return m


@contextlib.contextmanager
def machines(url: str, count: int) -> Iterator[list]:
    """`count` machines running pools on `url`, each a process with its own host name and
    temporary folder; stopped (and their process groups killed) afterwards."""
    started = []
    try:
        for n in range(count):
            folder = tempfile.mkdtemp(prefix=f"postgres-bench-machine-{n}-")
            env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
            env.update(AUTOCRON_HOST=f"bench-machine-{n}", TMPDIR=folder, PYTHONPATH=os.pathsep
                       .join([str(bench.BENCH_DIR), str(bench.ROOT)]))
            cpu = str(n % os.cpu_count()) if hasattr(os, "sched_setaffinity") else "-"
            proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(MACHINE), url, cpu],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env=env, cwd=bench.ROOT, start_new_session=True)
            started.append((proc, folder))
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"machine {n} did not start (exit {proc.poll()})")
        yield started
    finally:
        for proc, folder in started:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            bench.stop_process_group(proc, signal.SIGTERM, "machine")
            shutil.rmtree(folder, ignore_errors=True)


def run_machines(url: str, count: int, sizes: bench.Sizes, nap: float) -> Measurement:
    """Throughput of `count` machines draining one producer's calls: `add` (nap 0), else
    `nap` calls that wait that long (a tenth as many)."""
    import autocron
    import _tasks_autocron
    m, schema = Measurement(), fresh_name(f"machines{count}")
    calls = sizes.tasks if not nap else sizes.tasks // 10
    try:
        with machines(with_schema(url, schema), count):
            autocron.start(with_schema(url, schema), workers=0)
            started = time.perf_counter()
            results = _tasks_autocron.add.map(range(calls), range(calls)) if not nap else \
                _tasks_autocron.nap.map(range(calls), [nap] * calls)
            for i, result in enumerate(results):
                bench.check(result.get(timeout=bench.BATCH_TIMEOUT), i)
            m.throughput = calls / (time.perf_counter() - started)
    except Exception as exc:
        m.error = bench.note_error(exc)
    finally:
        autocron.stop()
        autocron._pg_links.__dict__.clear()
        run_sql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return m


def map_rates(url: str) -> list:
    """calls/s of BATCHES map() calls of BATCH calls each, on a fresh schema, no pool."""
    import autocron
    import _tasks_autocron
    schema = fresh_name("map")
    try:
        autocron.start(with_schema(url, schema), workers=0)
        _tasks_autocron.add.map(range(100), range(100))         # the schema, the connection
        rates = []
        for _ in range(BATCHES):
            began = time.perf_counter()
            results = _tasks_autocron.add.map(range(BATCH), range(BATCH))
            rates.append(BATCH / (time.perf_counter() - began))
            assert len(results) == BATCH and results[-1].status == "waiting"
        return rates
    finally:
        autocron.stop()
        autocron._pg_links.__dict__.clear()
        run_sql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def copy_rates(url: str) -> list:
    """calls/s of raw psycopg COPY of BATCH rows like autocron's, BATCHES times."""
    import pickle
    import psycopg
    schema = fresh_name("copy")
    record = pickle.dumps({"v": 1, "function": ("_tasks_autocron", "add"), "args": (1, 1),
                           "kwargs": {}}, 5)
    with psycopg.connect(url.split("?")[0], autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(f"CREATE TABLE {schema}.t (id bigserial PRIMARY KEY, args text, record "
                    "bytea, token text, name text, status text, due double precision, "
                    "created double precision)")
        con.execute(f"CREATE INDEX ON {schema}.t (due, id) WHERE status = 'waiting'")
        con.execute("SET synchronous_commit = off")
        rates = []
        try:
            for _ in range(BATCHES):
                began = time.perf_counter()
                now = time.time()
                with con.transaction():
                    ids = [row[0] for row in con.execute(
                        f"SELECT nextval('{schema}.t_id_seq') FROM generate_series(1, %s)",
                        (BATCH,))]
                    with con.cursor() as cursor, cursor.copy(
                            f"COPY {schema}.t (id, args, record, token, name, status, due, "
                            "created) FROM STDIN") as copy:
                        for i in ids:
                            copy.write_row((i, f"({i}, {i})", record, "0123456789abcdef",
                                            "_tasks_autocron.add", "waiting", now, now))
                rates.append(BATCH / (time.perf_counter() - began))
        finally:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
    return rates


def run_all(url: str, sizes: bench.Sizes) -> tuple:
    libs = {lib: [] for lib in POOLS}
    spread = {(count, nap): [] for nap in NAPS for count in (1, 2)}
    batches: dict = {"map": [], "copy": []}
    for r in range(1, sizes.rounds + 1):
        for lib in POOLS:
            bench.progress(f"round {r}/{sizes.rounds}: {LABELS[lib]} ...")
            libs[lib].append(run_round(lib, url, sizes))
            bench.progress(f"  {libs[lib][-1]}")
        for name in ("map", "copy") if r % 2 else ("copy", "map"):
            bench.progress(f"round {r}/{sizes.rounds}: batch enqueue, {name} ...")
            batches[name].append((map_rates if name == "map" else copy_rates)(url))
        for nap in NAPS:
            for count in (1, 2) if r % 2 else (2, 1):
                bench.progress(f"round {r}/{sizes.rounds}: {count} machine(s), nap {nap} ...")
                spread[count, nap].append(run_machines(url, count, sizes, nap))
                bench.progress(f"  {spread[count, nap][-1]}")
    return libs, spread, batches


def shown(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(
        netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def server_version(url: str) -> str:
    import psycopg
    with psycopg.connect(url.split("?")[0]) as con:
        return con.execute("SHOW server_version").fetchone()[0]


def print_report(url: str, libs: dict, spread: dict, sizes: bench.Sizes,
                 batches: dict) -> None:
    import platform
    print("# Background tasks on PostgreSQL: autocron vs PostgresHuey vs ProcessPoolExecutor\n")
    print(f"- Python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs; PostgreSQL {server_version(url)} at {shown(url)}")
    print(f"- autocron {bench.autocron_version()}, huey {bench.version_of('huey')}, psycopg "
          f"{bench.version_of('psycopg')}; {bench.WORKERS} workers; {sizes.rounds} "
          f"interleaved round(s), {sizes.tasks:,} tasks, {sizes.latency_calls} latency calls\n")
    bench.LABELS.update(LABELS)
    print(f"## 1. Throughput (tasks/s): enqueue {sizes.tasks:,}, then wait for all\n")
    print(bench.rate_table(libs, "throughput", "tasks/s"))
    print(f"\n## 2. Enqueue rate (calls/s), pool running\n")
    print(bench.rate_table(libs, "enqueue", "calls/s"))
    print(f"\n## 3. Idle latency (ms); {sizes.latency_calls} calls\n")
    print(bench.latency_table(libs))
    print(f"\n## 4. Batch enqueue (calls/s): map() of {BATCH:,} calls, no pool; raw COPY of "
          f"the same rows\n")
    rows = [[label, f"{statistics.median(sum(batches[name], [])):,.0f}",
             *(" ".join(f"{rate:,.0f}" for rate in rates) for rates in batches[name])]
            for name, label in (("map", "autocron map()"), ("copy", "psycopg COPY"))]
    print(markdown_table(["producer", "median calls/s",
                          *(f"round {r + 1} ({BATCHES} batches)"
                            for r in range(len(batches["map"])))], rows))
    mapped = statistics.median(sum(batches["map"], []))
    print(f"\nmap() / COPY: {mapped / statistics.median(sum(batches['copy'], [])):.2f}x")
    print(f"\n## 5. One machine vs two (tasks/s; {sizes.tasks:,} calls in one map() from a "
          f"process with workers=0, {bench.WORKERS} workers a machine, a CPU each)\n")
    rows = [[f"{count} machine{'s' if count > 1 else ''}",
             f"{sizes.tasks:,} add()" if not nap else
             f"{sizes.tasks // 10:,} tasks that wait {nap * 1000:g} ms",
             bench.median_cell(ms, "throughput", bench.fmt_rate),
             *(bench.cell(m, "throughput", bench.fmt_rate) for m in ms)]
            for (count, nap), ms in spread.items()]
    print(markdown_table(["pools", "tasks", "median tasks/s",
                          *(f"round {r + 1}" for r in range(sizes.rounds))], rows))
    waits = ratio(median_of(spread[2, NAPS[1]], "throughput"),
                  median_of(spread[1, NAPS[1]], "throughput"))
    print(f"\nTwo machines / one: {bench.fmt_ratio(waits)} with tasks that wait (the workers "
          f"are what limits). With add() the CPUs limit: here the machines, the server and the "
          f"producer share {os.cpu_count()} CPUs, so a second machine adds workers but no CPU.")
    vs_huey = ratio(median_of(libs["autocron"], "throughput"),
                    median_of(libs["huey"], "throughput"))
    p50 = median_of(libs["autocron"], "p50")
    two = ratio(median_of(spread[2, 0.0], "throughput"), median_of(spread[1, 0.0], "throughput"))
    print("\n## Goals\n")
    print(bench.goal_line(vs_huey is not None and vs_huey >= GOAL_VS_HUEY,
                          f"throughput >= {GOAL_VS_HUEY:g}x PostgresHuey (got "
                          f"{bench.fmt_ratio(vs_huey)})"))
    print(bench.goal_line(p50 is not None and p50 <= GOAL_P50_MS,
                          f"idle latency p50 <= {GOAL_P50_MS:g} ms (got "
                          f"{'n/a' if p50 is None else bench.fmt_ms(p50)} ms)"))
    print(bench.goal_line(mapped >= GOAL_MAP, f"map() of {BATCH:,} calls >= {GOAL_MAP:,}/s "
                                              f"(got {mapped:,.0f}/s)"))
    print(bench.goal_line(two is not None and two >= GOAL_MACHINES,
                          f"two machines >= {GOAL_MACHINES:g}x one, add() (got "
                          f"{bench.fmt_ratio(two)})"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True,
                        help="postgresql://user:password@host[:port]/database")
    parser.add_argument("--quick", action="store_true", help="one round, 500 tasks")
    args = parser.parse_args(argv)
    sizes = bench.QUICK if args.quick else bench.FULL
    signal.signal(signal.SIGTERM, bench._interrupt)
    try:
        libs, spread, batches = run_all(args.url, sizes)
        print_report(args.url, libs, spread, sizes, batches)
    except KeyboardInterrupt:
        print("interrupted; every pool was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
