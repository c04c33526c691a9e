"""PostgreSQL: autocron vs PgQueuer, procrastinate, huey's PostgresHuey and
ProcessPoolExecutor; two machines vs one.

What is measured
----------------
The same mix as ``tasks_bench.py`` sections 1-3 (its functions do the measuring), against a
PostgreSQL server given by ``--url``:

* autocron: ``autocron.start("<url>?schema=<fresh>", workers=2)``; the schema is dropped
  after the round.
* PgQueuer (1.6): 2 consumer processes ``python -m _tasks_pgqueuer 10``, each running
  ``_tasks_pgqueuer.factory`` as ``pgq run _tasks_pgqueuer:factory --batch-size 10`` does
  (``pgqueuer.run``, the supervisor behind ``pgq run``, on uvloop as shipped; the command
  itself fails with the typer it installs, see ``_tasks_pgqueuer``): a ``QueueManager`` over
  one asyncpg connection, ``AsyncpgDriver``; batch_size 10 is its documented default, every
  other knob is left at its default: dequeue_timeout 30 s, no max_concurrent_tasks,
  LISTEN/NOTIFY wake-ups, no retries. The producer enqueues one job a call with
  ``SyncQueries.enqueue`` over a psycopg connection (autocommit). PgQueuer keeps no results:
  a job's completion is observed with PgQueuer's own ``CompletionWatcher`` (LISTEN on the
  queue's channel, then one status query per burst) on an asyncpg connection of its own, in
  a thread of the producer with an asyncio event loop, its ``debounce`` set to 1 ms (its
  default, 50 ms, would add 50 ms to every idle completion). Waits are batched: ``submit``
  only enqueues and keeps the job id; the first ``wait`` hands every id not yet watched to
  the watcher in one step (so 3,000 waits do not take 3,000 debounced queries). The watcher
  also runs a status query 1 ms after every NOTIFY burst on the channel (each enqueue sends
  one), in the producer process: that cost is in PgQueuer's enqueue rate. PgQueuer
  acknowledges jobs in batches (its ``JobStatusLogBuffer`` flushes at batch_size jobs or
  every 0.1 s +-20%), so an idle job's completion becomes visible up to ~0.12 s after it
  ran: that is in its latency; a row labelled "sensitivity" runs the consumers with
  batch_size 1 (each acknowledgement flushed at once, each dequeue claiming one job), not
  used by the goals. Schema: ``PGQUEUER_SCHEMA=<fresh>`` in the environment (set before the
  consumers start; ``db_settings.cache_clear()`` in this process), installed with
  ``Queries.install()``, dropped after the round.
* procrastinate (3.10): 2 worker processes ``python -m procrastinate
  --app=_tasks_procrastinate.app worker --concurrency 1`` (its defaults: LISTEN/NOTIFY,
  polling every 5 s as a fallback, INFO logging, here to a file), task ``async def add``.
  The producer calls ``add.defer(a=i, b=i)`` through the app's synchronous psycopg pool
  (a connection check, the insert, a commit). procrastinate sends no notification when a
  job ends and keeps no results, so completion is observed by reading the jobs' status:
  one query for every job not yet seen finished, backing off as autocron itself does when
  it waits for a task another process runs (0.5 ms doubling to 50 ms, starting again at
  0.5 ms for each wait), on a psycopg connection of its own. Schema: procrastinate has no
  table prefix, so every connection (producer, workers, their LISTEN connections, the
  status reader) carries ``options=-c search_path=<fresh>``; dropped after the round.
* huey: ``PostgresHuey`` on the same server (tables with a fresh prefix, dropped after the
  round), its consumer ``python -m huey.bin.huey_consumer _tasks_huey.huey -w 2 -k process``
  with its default polling and LISTEN/NOTIFY wake-ups.
* ProcessPoolExecutor: the non-durable ceiling, as in ``tasks_bench.py``.

Fairness: every library has this producer process and 2 consumer processes (autocron's
``workers=2``, huey's ``-w 2 -k process``, 2 PgQueuer consumers, 2 procrastinate workers),
started and warmed up before any clock runs; nothing is pinned in sections 1-4. autocron
and huey store every return value, which PgQueuer and procrastinate do not: their jobs are
checked by final status (``successful``, ``succeeded``) instead of by value.

Durability. autocron runs with its default ``synchronous="normal"`` (commits do not wait
for the server's disk: ``synchronous_commit`` off, as SQLite's ``NORMAL``) and, in a row
of its own, with ``"full"`` (they do: ``on``). PgQueuer and procrastinate never set
``synchronous_commit``, so on a stock server they commit with ``on``; their main rows set
``on`` on every connection they use (producer, consumers, watcher or status reader), to be
compared with autocron's ``"full"`` row, and their ``-off`` rows set ``off`` on every
connection, to be compared with autocron's default. (huey uses whatever the server's
default is; the header shows it.) All tables are logged (PgQueuer's ``durable``).

1. Throughput: enqueue 3,000 ``add(i, i)``, then wait for every result (tasks/s).
2. Enqueue rate: that loop alone (calls/s), with the pool running.
3. Idle latency: 60 calls, each after 20 ms of idleness, call then block (p50, p99 ms).
4. Batch enqueue: ``map()`` of 3,000 calls on a fresh schema with no pool (``workers=0``:
   the enqueue alone, nothing competes), 5 batches a round (calls/s each); beside it the
   peers' batch enqueue of 3,000 jobs on a fresh schema with no consumer running, after a
   warm-up batch of 100 (PgQueuer: one ``SyncQueries.enqueue`` of lists; procrastinate:
   ``add.batch_defer``, whose triggers send 2 NOTIFYs a job), with ``synchronous_commit``
   on and off; and raw psycopg storing rows of the same kinds as autocron's (ids from a
   sequence, the arguments' text, a pickle of the call, the token, the name, the status,
   two times) into a table with a primary key and autocron's index of waiting calls, with
   ``COPY`` in one transaction, and ``synchronous_commit`` off as autocron's default: the
   floor of any Python producer.
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

    .venv/bin/pip install -e ".[bench,postgres]"    # PgQueuer, procrastinate: Python 3.10+
    .venv/bin/python benchmarks/postgres_bench.py --url postgresql://user:password@host/db

The user needs the right to create schemas and tables in that database.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import tasks_bench as bench
from tasks_bench import Client, Measurement, markdown_table, median_of, ratio

GOAL_VS_HUEY = 3.0      # x PostgresHuey's end-to-end throughput
GOAL_P50_MS = 3.0       # idle latency p50 (issue 26)
GOAL_ENQUEUE = 2_000    # single-call enqueue, calls/s, at either durability (issue 26)
GOAL_MACHINES = 1.0     # two machines' throughput / one machine's
GOAL_MAP = 100_000      # map() calls/s, a batch of BATCH (issue 26)
GOAL_VS_PGQUEUER = 2.0  # x PgQueuer at equal durability, in every round
BATCH, BATCHES = 3000, 5        # section 4: calls a map() stores, batches a round
PGQUEUER_BATCH_SIZE = 10        # `pgq run --batch-size`: its documented default
PGQUEUER_DEBOUNCE = 0.001       # s, CompletionWatcher's debounce (its default: 0.05)
PROCRASTINATE_CONCURRENCY = 1   # `procrastinate worker --concurrency`: its default
STATUS_PAUSES = (0.0005, 0.05)  # s, first and longest pause between status reads (autocron's)
PGQUEUER_ENV = {"dsn": "AUTOCRON_BENCH_PGQUEUER_DSN",       # the same names as in
                "settings": "AUTOCRON_BENCH_PGQUEUER_SETTINGS"}  # _tasks_pgqueuer
PROCRASTINATE_ENV = {"dsn": "AUTOCRON_BENCH_PROCRASTINATE_DSN",  # and _tasks_procrastinate
                     "options": "AUTOCRON_BENCH_PROCRASTINATE_OPTIONS"}
PGQUEUER_COMMAND = ("-m", "_tasks_pgqueuer")    # + the batch size: as `pgq run` does
PROCRASTINATE_COMMAND = ("-m", "procrastinate", "--app=_tasks_procrastinate.app", "worker",
                         "--concurrency", str(PROCRASTINATE_CONCURRENCY))
PROCRASTINATE_STATUS = ("SELECT id, status::text FROM procrastinate_jobs WHERE id = "
                        "ANY(%s::bigint[]) AND status NOT IN ('todo', 'doing')")
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


# --- PgQueuer and procrastinate ---------------------------------------------------

def plain_url(url: str) -> str:
    """`url` without autocron's ``?schema=`` (asyncpg would send it as a server setting)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "schema"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@contextlib.contextmanager
def environment(values: dict) -> Iterator[None]:
    """`values` in ``os.environ`` (for this process and the consumers it starts), then
    the environment as it was."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def status_checks(success: str) -> Iterator[None]:
    """tasks_bench's warm_up, run_batch and run_latency check ``add(i, i) == 2 * i``; a
    library that keeps no results is checked by each job's final status instead: its
    ``wait`` returns the status, which must be `success`."""
    def check(status, i: int) -> None:
        if status != success:
            raise AssertionError(f"the job of add({i}, {i}) ended {status!r}, not {success!r}")
    with mock.patch.object(bench, "check", check):
        yield


def start_consumers(command: tuple, folder: Path, procs: list) -> None:
    """bench.WORKERS processes `python *command`, each in a session of its own and logging
    to `folder`/consumer-<n>.log; appended to `procs` as they start."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(bench.BENCH_DIR), str(bench.ROOT), env.get("PYTHONPATH")]))
    for n in range(bench.WORKERS):
        with open(folder / f"consumer-{n}.log", "wb") as log:
            procs.append(subprocess.Popen([sys.executable, *command], cwd=bench.BENCH_DIR,
                                          env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))


def stop_consumers(procs: list, what: str) -> None:
    """SIGTERM (graceful for both PgQueuer and procrastinate) to every consumer at once,
    then SIGKILL to each one's process group once it exited or the time is up."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + bench.CONSUMER_STOP_TIMEOUT
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"note: a {what} ignored SIGTERM; killing it", file=sys.stderr)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)     # the group is ours: new session
            proc.wait()


def wait_ready(ready: Callable[[], bool], procs: list, folder: Path, what: str) -> None:
    """Block until ready() (the consumers are connected), or fail if one of them died."""
    bench.wait_until_up(ready, procs, [folder / f"consumer-{n}.log" for n in range(len(procs))],
                        what)


def count_rows(dsn: str, sql: str, *params) -> int:
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(sql, params).fetchone()[0]


def _relay(target: concurrent.futures.Future, source: asyncio.Future) -> None:
    """The outcome of an asyncio future (in the watcher's loop) into a thread's future."""
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


class PgQueuerClient:
    """PgQueuer from a synchronous producer: ``submit`` enqueues one job (one statement on
    a psycopg connection in autocommit) and keeps its id; ``wait`` returns the job's final
    status, from PgQueuer's CompletionWatcher on an asyncpg connection of its own, in a
    thread running an asyncio event loop. The first ``wait`` for an id not yet watched
    hands every id kept since to the watcher in one step (one status query for all)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pgqueuer-watcher",
                                       daemon=True)
        self.thread.start()
        self.connection = self.queries = self.listener = self.watcher = None
        self.unwatched: list = []
        self.futures: dict = {}

    def open(self, dsn: str, synchronous_commit: str) -> None:
        import psycopg
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries
        self.connection = psycopg.connect(dsn, autocommit=True,
                                          options=f"-c synchronous_commit={synchronous_commit}")
        self.queries = SyncQueries(SyncPsycopgDriver(self.connection))
        self.call(self._watch(dsn, synchronous_commit))

    def call(self, coroutine, timeout: float = bench.CALL_TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _watch(self, dsn: str, synchronous_commit: str) -> None:
        import asyncpg
        from pgqueuer.core.completion import CompletionWatcher
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries
        self.listener = await asyncpg.connect(
            dsn, server_settings={"synchronous_commit": synchronous_commit})
        driver = AsyncpgDriver(self.listener)
        watcher = CompletionWatcher(driver, queries=Queries(driver),
                                    debounce=timedelta(seconds=PGQUEUER_DEBOUNCE))
        await watcher.__aenter__()
        self.watcher = watcher

    async def _register(self, jobs: list) -> dict:
        futures = {}
        for job in jobs:
            futures[job] = concurrent.futures.Future()
            self.watcher.wait_for(job).add_done_callback(functools.partial(_relay, futures[job]))
        return futures

    def submit(self, a: int, b: int):
        job = self.queries.enqueue("add", f"{a},{b}".encode())[0]
        self.unwatched.append(job)
        return job

    def wait(self, job, timeout: float) -> str:
        if job not in self.futures:
            jobs, self.unwatched = self.unwatched, []
            self.futures.update(self.call(self._register(jobs)))
        return self.futures.pop(job).result(timeout)

    def close(self) -> None:
        """The watcher (cancelling its waiters), its connection, the loop and its thread,
        the producer's connection; whatever was opened, also after a failure."""
        try:
            if self.watcher is not None:
                with contextlib.suppress(Exception):
                    self.call(self.watcher.__aexit__(asyncio.CancelledError, None, None),
                              bench.CONSUMER_STOP_TIMEOUT)
            if self.listener is not None:
                with contextlib.suppress(Exception):
                    self.call(self.listener.close(timeout=5), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()
            if self.connection is not None:
                self.connection.close()


class StatusReader:
    """Waits for jobs by reading their status, for a library that sends no notification
    when a job ends: one query (`sql`, given the ids) for every job not yet seen finished,
    pausing between reads as autocron does when it waits for a task that another process
    runs (0.5 ms doubling up to 50 ms, from 0.5 ms again at each wait)."""

    def __init__(self, dsn: str, options: str, sql: str) -> None:
        import psycopg
        self.connection = psycopg.connect(dsn, autocommit=True, options=options)
        self.sql = sql
        self.pending: set = set()
        self.finished: dict = {}

    def add(self, job) -> None:
        self.pending.add(job)

    def read(self) -> None:
        for job, status in self.connection.execute(self.sql, (list(self.pending),)):
            self.pending.discard(job)
            self.finished[job] = status

    def wait(self, job, timeout: float) -> str:
        end, pause = time.monotonic() + timeout, STATUS_PAUSES[0]
        while job not in self.finished:
            self.read()
            if job in self.finished:
                break
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job} did not finish within {timeout:.0f} s")
            time.sleep(min(pause, left))
            pause = min(pause * 2, STATUS_PAUSES[1])
        return self.finished.pop(job)

    def close(self) -> None:
        self.connection.close()


async def pgqueuer_install(dsn: str) -> None:
    """PgQueuer's schema, in the schema PGQUEUER_SCHEMA names (db_settings, read now)."""
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries
    connection = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(connection)).install()
    finally:
        await connection.close()


@contextlib.contextmanager
def pgqueuer_schema(url: str, what: str) -> Iterator[tuple]:
    """A fresh schema with PgQueuer installed in it, named in PGQUEUER_SCHEMA for this
    process (its settings re-read) and the consumers it starts: (schema, dsn); dropped, and
    the environment restored, afterwards."""
    from pgqueuer.domain.settings import db_settings
    schema, dsn = fresh_name(what), plain_url(url)
    with contextlib.ExitStack() as stack:
        stack.callback(db_settings.cache_clear)                 # after the environment
        stack.enter_context(environment({"PGQUEUER_SCHEMA": schema}))
        db_settings.cache_clear()
        stack.callback(run_sql, url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        asyncio.run(pgqueuer_install(dsn))
        yield schema, dsn


@contextlib.contextmanager
def pgqueuer_pool(url: str, synchronous_commit: str = "on",
                  batch_size: int = PGQUEUER_BATCH_SIZE) -> Iterator[Client]:
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="postgres-bench-pgqueuer-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        schema, dsn = stack.enter_context(pgqueuer_schema(url, "pgqueuer"))
        marker = f"{schema}_consumer"       # the consumers' application_name
        stack.enter_context(environment({
            PGQUEUER_ENV["dsn"]: dsn, PGQUEUER_ENV["settings"]:
                f"synchronous_commit={synchronous_commit} application_name={marker}"}))
        procs: list = []
        stack.callback(stop_consumers, procs, "PgQueuer consumer")
        start_consumers((*PGQUEUER_COMMAND, str(batch_size)), folder, procs)
        wait_ready(lambda: count_rows(dsn, "SELECT count(*) FROM pg_stat_activity WHERE "
                                           "application_name = %s", marker) >= len(procs),
                   procs, folder, "PgQueuer consumer")
        client = PgQueuerClient()
        stack.callback(client.close)
        client.open(dsn, synchronous_commit)
        stack.enter_context(status_checks("successful"))
        client_ = Client(client.submit, client.wait)
        bench.warm_up(client_)
        yield client_


@contextlib.contextmanager
def procrastinate_app(url: str, what: str, synchronous_commit: str) -> Iterator[tuple]:
    """_tasks_procrastinate (re)loaded for a fresh schema with procrastinate's applied, its
    app open (synchronous): (module, schema, dsn, options); closed, the schema dropped and
    the environment restored afterwards."""
    schema, dsn = fresh_name(what), plain_url(url)
    options = f"-c search_path={schema} -c synchronous_commit={synchronous_commit}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(environment({PROCRASTINATE_ENV["dsn"]: dsn,
                                         PROCRASTINATE_ENV["options"]: options}))
        stack.callback(run_sql, url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        run_sql(url, f"CREATE SCHEMA {schema}")
        module = sys.modules.get("_tasks_procrastinate")
        tasks = (importlib.import_module("_tasks_procrastinate") if module is None
                 else importlib.reload(module))
        tasks.app.open()
        stack.callback(tasks.app.close)
        tasks.app.schema_manager.apply_schema()
        yield tasks, schema, dsn, options


@contextlib.contextmanager
def procrastinate_pool(url: str, synchronous_commit: str = "on") -> Iterator[Client]:
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="postgres-bench-procrastinate-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        tasks, schema, dsn, options = stack.enter_context(
            procrastinate_app(url, "procrastinate", synchronous_commit))
        procs: list = []
        stack.callback(stop_consumers, procs, "procrastinate worker")
        start_consumers(PROCRASTINATE_COMMAND, folder, procs)
        reader = StatusReader(dsn, options, PROCRASTINATE_STATUS)
        stack.callback(reader.close)
        wait_ready(lambda: count_rows(dsn, f"SELECT count(*) FROM {schema}."
                                           "procrastinate_workers") >= len(procs),
                   procs, folder, "procrastinate worker")

        def submit(a: int, b: int):
            job = tasks.add.defer(a=a, b=b)
            reader.add(job)
            return job

        stack.enter_context(status_checks("succeeded"))
        client = Client(submit, reader.wait)
        bench.warm_up(client)
        yield client


def pgqueuer_batch_rates(url: str, synchronous_commit: str) -> list:
    """calls/s of BATCHES enqueues of BATCH jobs each (one SyncQueries.enqueue of lists),
    on a fresh schema, no consumer."""
    import psycopg
    from pgqueuer.db import SyncPsycopgDriver
    from pgqueuer.queries import SyncQueries

    def enqueue(n: int) -> list:
        return queries.enqueue(["add"] * n, [f"{i},{i}".encode() for i in range(n)], [0] * n)

    with pgqueuer_schema(url, "pgqbatch") as (schema, dsn), psycopg.connect(
            dsn, autocommit=True, options=f"-c synchronous_commit={synchronous_commit}") as con:
        queries = SyncQueries(SyncPsycopgDriver(con))
        enqueue(100)                                    # the connection, the statement
        rates = []
        for _ in range(BATCHES):
            began = time.perf_counter()
            jobs = enqueue(BATCH)
            rates.append(BATCH / (time.perf_counter() - began))
            assert len(jobs) == BATCH
        return rates


def procrastinate_batch_rates(url: str, synchronous_commit: str) -> list:
    """calls/s of BATCHES ``add.batch_defer`` of BATCH jobs each, on a fresh schema, no
    worker."""
    with procrastinate_app(url, "procbatch", synchronous_commit) as (tasks, *_):
        tasks.add.batch_defer(*({"a": i, "b": i} for i in range(100)))
        rates = []
        for _ in range(BATCHES):
            began = time.perf_counter()
            jobs = tasks.add.batch_defer(*({"a": i, "b": i} for i in range(BATCH)))
            rates.append(BATCH / (time.perf_counter() - began))
            assert len(jobs) == BATCH
        return rates


POOLS = {"autocron": autocron_pool,
         "autocron-full": functools.partial(autocron_pool, synchronous="full"),
         "pgqueuer": pgqueuer_pool,
         "pgqueuer-off": functools.partial(pgqueuer_pool, synchronous_commit="off"),
         "pgqueuer-1-off": functools.partial(pgqueuer_pool, synchronous_commit="off",
                                             batch_size=1),
         "procrastinate": procrastinate_pool,
         "procrastinate-off": functools.partial(procrastinate_pool, synchronous_commit="off"),
         "huey": huey_pool, "ppe": ppe_pool}
LABELS = {"autocron": "autocron (PostgreSQL)",
          "autocron-full": "autocron, synchronous=\"full\"",
          "pgqueuer": "PgQueuer (synchronous_commit on)",
          "pgqueuer-off": "PgQueuer, synchronous_commit off",
          "pgqueuer-1-off": "PgQueuer batch_size=1, synchronous_commit off (sensitivity)",
          "procrastinate": "procrastinate (synchronous_commit on)",
          "procrastinate-off": "procrastinate, synchronous_commit off",
          "huey": "huey (PostgresHuey)", "ppe": "ProcessPoolExecutor"}
# (autocron at a durability, a peer at the same): the ratios of the report and the goals
EQUAL = (("autocron", "pgqueuer-off"), ("autocron-full", "pgqueuer"),
         ("autocron", "procrastinate-off"), ("autocron-full", "procrastinate"),
         ("autocron", "pgqueuer-1-off"))


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


# section 4: {name: (label, function of the URL giving a round's rates)}
BATCHERS = {
    "map": ("autocron map()", map_rates),
    "pgqueuer": ("PgQueuer enqueue(lists), synchronous_commit on",
                 functools.partial(pgqueuer_batch_rates, synchronous_commit="on")),
    "pgqueuer-off": ("PgQueuer enqueue(lists), synchronous_commit off",
                     functools.partial(pgqueuer_batch_rates, synchronous_commit="off")),
    "procrastinate": ("procrastinate batch_defer(), synchronous_commit on",
                      functools.partial(procrastinate_batch_rates, synchronous_commit="on")),
    "procrastinate-off": ("procrastinate batch_defer(), synchronous_commit off",
                          functools.partial(procrastinate_batch_rates,
                                            synchronous_commit="off")),
    "copy": ("psycopg COPY", copy_rates),
}


def batch_round(name: str, url: str) -> tuple:
    """(rates, error) of one round of `name`'s batch enqueue; (None, error) if it failed."""
    try:
        return BATCHERS[name][1](url), None
    except Exception as exc:
        return None, bench.note_error(exc)


def run_all(url: str, sizes: bench.Sizes) -> tuple:
    libs = {lib: [] for lib in POOLS}
    spread = {(count, nap): [] for nap in NAPS for count in (1, 2)}
    batches: dict = {name: [] for name in BATCHERS}
    for r in range(1, sizes.rounds + 1):
        for lib in POOLS:
            bench.progress(f"round {r}/{sizes.rounds}: {LABELS[lib]} ...")
            libs[lib].append(run_round(lib, url, sizes))
            bench.progress(f"  {libs[lib][-1]}")
        for name in list(BATCHERS) if r % 2 else list(BATCHERS)[::-1]:
            bench.progress(f"round {r}/{sizes.rounds}: batch enqueue, {BATCHERS[name][0]} ...")
            batches[name].append(batch_round(name, url))
            bench.progress(f"  calls/s: {batch_cell(*batches[name][-1])}")
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


def server_settings(url: str) -> dict:
    """The server's version and the settings that decide what a commit waits for."""
    import psycopg
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes")
    with psycopg.connect(plain_url(url)) as con:
        return {name: con.execute(f"SHOW {name}").fetchone()[0] for name in names}


def server_version(url: str) -> str:
    """The server's version (the other benchmarks' reports name it)."""
    return server_settings(url)["server_version"]


def round_ratios(libs: dict, ours: str, theirs: str, field: str, lower: bool = False) -> list:
    """ours/theirs of `field` in every round (theirs/ours if `lower` is better); None
    where either is missing: how many times autocron does better."""
    pairs = zip(libs[ours], libs[theirs])
    return [ratio(getattr(t, field), getattr(o, field)) if lower else
            ratio(getattr(o, field), getattr(t, field)) for o, t in pairs]


def ratios_text(values: list) -> str:
    done = [v for v in values if v is not None]
    median = statistics.median(done) if done else None
    return (f"per round {', '.join(map(bench.fmt_ratio, values))}; median "
            f"{bench.fmt_ratio(median)}")


def equal_lines(libs: dict, field: str, lower: bool = False) -> str:
    """The per-round ratios of autocron to each peer at the same durability."""
    lines = []
    for ours, theirs in EQUAL:
        what = (f"{LABELS[theirs]} / {LABELS[ours]}" if lower
                else f"{LABELS[ours]} / {LABELS[theirs]}")
        lines.append(f"- {what}: {ratios_text(round_ratios(libs, ours, theirs, field, lower))}")
    return "\n".join(lines)


def all_rates(rounds: list) -> list:
    return [rate for rates, _ in rounds if rates for rate in rates]


def batch_cell(rates, error) -> str:
    if rates is None:
        return "error: " + (error or "not reached").replace("|", "\\|")[:70]
    return " ".join(f"{rate:,.0f}" for rate in rates)


def batch_ratios(batches: dict, ours: str, theirs: str) -> list:
    """The median of a round's batches of `ours` / that of `theirs`, every round."""
    return [ratio(statistics.median(a) if a else None, statistics.median(b) if b else None)
            for (a, _), (b, _) in zip(batches[ours], batches[theirs])]


def goal_every_round(values: list, text: str) -> str:
    ok = bool(values) and all(v is not None and v >= GOAL_VS_PGQUEUER for v in values)
    return bench.goal_line(ok, f"{text} >= {GOAL_VS_PGQUEUER:g}x in every round "
                               f"({ratios_text(values)})")


def print_header(url: str, sizes: bench.Sizes) -> None:
    import platform
    server = server_settings(url)
    print("# Background tasks on PostgreSQL: autocron vs PgQueuer, procrastinate, "
          "PostgresHuey, ProcessPoolExecutor\n")
    print(f"- Python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs; PostgreSQL {server['server_version']} at {shown(url)}, "
          f"server settings fsync={server['fsync']}, synchronous_commit="
          f"{server['synchronous_commit']} (for connections that set none: huey's), "
          f"full_page_writes={server['full_page_writes']}")
    print(f"- autocron {bench.autocron_version()}, huey {bench.version_of('huey')}, psycopg "
          f"{bench.version_of('psycopg')}; {sizes.rounds} interleaved round(s), "
          f"{sizes.tasks:,} tasks, {sizes.latency_calls} latency calls")
    print(f"- every library: this producer process and {bench.WORKERS} consumer processes "
          f"(autocron workers=2, huey -w 2 -k process, {bench.WORKERS} PgQueuer consumers, "
          f"{bench.WORKERS} procrastinate workers), started and warmed up before the clocks; "
          f"nothing pinned (sections 1-4)")
    print(f"- PgQueuer {bench.version_of('pgqueuer')} (asyncpg {bench.version_of('asyncpg')}, "
          f"uvloop {bench.version_of('uvloop')}): `python {' '.join(PGQUEUER_COMMAND)} "
          f"{PGQUEUER_BATCH_SIZE}` x "
          f"{bench.WORKERS}, which runs `_tasks_pgqueuer:factory` as `pgq run "
          f"--batch-size {PGQUEUER_BATCH_SIZE}` does "
          f"(`pgqueuer.run`; `pgq run` itself fails with typer "
          f"{bench.version_of('typer')}), a QueueManager over one asyncpg connection each, "
          f"on uvloop; "
          f"batch_size {PGQUEUER_BATCH_SIZE} (its default), other knobs at their defaults. "
          f"Producer: `SyncQueries.enqueue` over psycopg (autocommit), one statement a call. "
          f"Completion: PgQueuer's CompletionWatcher (LISTEN, then one status query for every "
          f"waiter) on an asyncpg connection of its own in a thread of the producer (asyncio "
          f"loop), debounce {PGQUEUER_DEBOUNCE * 1000:g} ms (its default: 50 ms), the ids "
          f"handed over in one step at the first wait; the watcher queries after every "
          f"NOTIFY burst (each enqueue sends one), in the producer process, so that is in "
          f"the enqueue rate. Its acknowledgements are batched "
          f"(flushed at batch_size jobs or every 0.1 s +-20%), so an idle job's completion "
          f"shows up to ~0.12 s after it ran. The row \"batch_size=1 (sensitivity)\" "
          f"runs its consumers with `_tasks_pgqueuer 1`: every acknowledgement flushed at "
          f"once, one job a dequeue; the goals do not use it")
    print(f"- procrastinate {bench.version_of('procrastinate')} (psycopg_pool "
          f"{bench.version_of('psycopg-pool')}): `python {' '.join(PROCRASTINATE_COMMAND)}` x "
          f"{bench.WORKERS}, defaults otherwise (LISTEN/NOTIFY, 5 s polling fallback, INFO "
          f"logging to a file); task `async def add`. Producer: `add.defer()` through the "
          f"app's synchronous psycopg pool (a connection check, the insert, a commit). "
          f"Completion: it sends no notification when a job ends, so one status query for "
          f"every job not yet seen finished, pausing {STATUS_PAUSES[0] * 1000:g} ms doubling "
          f"to {STATUS_PAUSES[1] * 1000:g} ms as autocron does (reset at each wait), on a "
          f"psycopg connection of its own; schema by `search_path` on every connection")
    print(f"- durability: PgQueuer and procrastinate never set synchronous_commit (on, on a "
          f"stock server); their main rows set `on` on every connection they use (producer, "
          f"consumers, watcher or status reader): compare them with autocron "
          f"synchronous=\"full\"; their `off` rows set `off` on every connection: compare "
          f"them with autocron's default (\"normal\" = off). All tables logged. This server "
          f"runs fsync={server['fsync']}: with fsync off a commit at `on` waits for the WAL "
          f"write but not for a disk flush, so `on` costs less here than on a real server")
    print("- PgQueuer and procrastinate keep no return values (checked by the job's final "
          "status); autocron and huey store and fetch every result (checked by value)")
    print(f"- noise: the server, the producer and the consumers share {os.cpu_count()} CPUs, "
          f"and other work on this machine (test suites) may have run at the same time\n")


def print_report(url: str, libs: dict, spread: dict, sizes: bench.Sizes,
                 batches: dict) -> None:
    print_header(url, sizes)
    bench.LABELS.update(LABELS)
    print(f"## 1. Throughput (tasks/s): enqueue {sizes.tasks:,}, then wait for all\n")
    print(bench.rate_table(libs, "throughput", "tasks/s"))
    print("\nAt equal durability (how many times autocron's rate):\n")
    print(equal_lines(libs, "throughput"))
    print("\n## 2. Enqueue rate (calls/s), pool running\n")
    print(bench.rate_table(libs, "enqueue", "calls/s"))
    print("\nAt equal durability (how many times autocron's rate):\n")
    print(equal_lines(libs, "enqueue"))
    print(f"\n## 3. Idle latency (ms); {sizes.latency_calls} calls\n")
    print(bench.latency_table(libs))
    print("\nAt equal durability, the peer's p50 / autocron's p50 (how many times lower "
          "autocron's is):\n")
    print(equal_lines(libs, "p50", lower=True))
    print(f"\n## 4. Batch enqueue (calls/s): {BATCH:,} calls a batch, no pool running; "
          f"autocron map(), the peers' batch enqueue, raw COPY of autocron's rows\n")
    rounds = len(batches["map"])
    rows = [[label, f"{statistics.median(all_rates(batches[name])):,.0f}"
             if all_rates(batches[name]) else batch_cell(*batches[name][0]),
             *(batch_cell(*round_) for round_ in batches[name])]
            for name, (label, _) in BATCHERS.items()]
    print(markdown_table(["producer", "median calls/s",
                          *(f"round {r + 1} ({BATCHES} batches)" for r in range(rounds))],
                         rows))
    mapped = statistics.median(all_rates(batches["map"])) if all_rates(batches["map"]) else 0
    print("\nmap() / the others (median of each round's batches, per round):\n")
    for name in BATCHERS:
        if name != "map":
            print(f"- map() / {BATCHERS[name][0]}: "
                  f"{ratios_text(batch_ratios(batches, 'map', name))}")
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
    for ours, theirs in EQUAL[:2]:
        pair = f"{LABELS[ours]} / {LABELS[theirs]}"
        print(goal_every_round(round_ratios(libs, ours, theirs, "throughput"),
                               f"throughput, {pair}"))
        print(goal_every_round(round_ratios(libs, ours, theirs, "enqueue"),
                               f"enqueue rate, {pair}"))
        print(goal_every_round(round_ratios(libs, ours, theirs, "p50", lower=True),
                               f"idle latency p50, {LABELS[theirs]} / {LABELS[ours]}"))
    print(goal_every_round(batch_ratios(batches, "map", "pgqueuer-off"),
                           f"batch enqueue, map() / {BATCHERS['pgqueuer-off'][0]}"))
    print(bench.goal_line(p50 is not None and p50 <= GOAL_P50_MS,
                          f"idle latency p50 <= {GOAL_P50_MS:g} ms (got "
                          f"{'n/a' if p50 is None else bench.fmt_ms(p50)} ms)"))
    for lib in ("autocron", "autocron-full"):
        rate = median_of(libs[lib], "enqueue")
        print(bench.goal_line(rate is not None and rate >= GOAL_ENQUEUE,
                              f"single-call enqueue, {LABELS[lib]} >= {GOAL_ENQUEUE:,}/s (got "
                              f"{'n/a' if rate is None else f'{rate:,.0f}'}/s)"))
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
