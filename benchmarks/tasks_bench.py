"""Background-task speed: autocron vs huey vs ProcessPoolExecutor (and a baseline autocron).

What is measured
----------------
Every library runs the trivial task ``add(a, b)`` on two worker processes:

* autocron: ``autocron.start(database=<fresh folder>/autocron.db, workers=2)``;
  the task is ``@autocron.delay``-decorated, calling it stores the task and
  returns a ``Result``; ``result.get(timeout=...)`` waits; ``autocron.stop()``.
* huey: ``SqliteHuey`` with a fresh file per round and ``@huey.task()``; its
  consumer runs as a subprocess, ``python -m huey.bin.huey_consumer
  _tasks_huey.huey -w 2 -k process``, with huey's default polling (see
  ``HUEY_POLLING``) and default logging (to a file); results are fetched with
  ``result.get(blocking=True, timeout=...)``.
* ProcessPoolExecutor (``ppe``): ``ProcessPoolExecutor(max_workers=2)``,
  ``submit(add, a, b)`` and ``future.result(timeout=...)``.  It keeps nothing
  on disk, so it is the ceiling rather than a peer.
* With ``--baseline PATH``: a second autocron, the ``autocron.py`` at PATH
  (e.g. an older version), exactly like the first, in steps 1-3 only.

Each pool is started fresh for every round and warmed up (a few tasks through
it, which also proves huey's consumer is up) before anything is timed:

1. Throughput: enqueue ``N`` tasks (3,000), then wait for every result in
   order; ``tasks/s = N / elapsed`` over both steps.
2. Enqueue rate: the enqueue loop of step 1 is also timed on its own, while
   the pool is already running and competing for the CPU and the database;
   ``calls/s = N / loop time``.
3. Idle latency: 60 sequential calls, each ``call, then block for the
   result``, with a 20 ms sleep before each so that the pool is idle again;
   p50 and p99 in milliseconds.

The libraries are interleaved: round 1 runs autocron, huey, ppe; round 2
runs them again; three rounds in all (``--quick``: one round, 500 tasks, 20
latency calls).  The tables show the median of the rounds and every round's
value.  Every autocron pool also checks, after its warm-up, that its workers
imported the same ``autocron.py`` as the process that owns it
(``_tasks_autocron.autocron_file``).

A baseline (``--baseline PATH``).  Two modules named ``autocron`` cannot
share a process, so when a baseline is given each autocron round runs in a
subprocess of its own: the script runs itself with the hidden options
``--measure-one autocron --autocron-path DIR``, puts DIR first on
``sys.path``, checks that ``import autocron`` found DIR's file, runs the
round (fresh pool, steps 1-3) and prints the ``Measurement`` as one JSON line
(``MEASURE_PREFIX``); the workers import autocron from the folder of the
file that started them, and ``_tasks_autocron`` binds to the same module.
Both autocrons are measured this way, from copies taken when the run starts
(each alone in a temporary folder, so a concurrent edit of the working file
does not change what is measured; the header warns if it changed), side by
side in every round, alternating which goes first: round 1 runs autocron,
baseline, huey, ppe; round 2 baseline, autocron, huey, ppe.  Sections 1-3
add ``autocron/baseline`` per round and the median of those paired ratios;
the goal "plain path within 5% of the baseline" uses that median of
throughput ratios (>= 0.95).  Sections 4 and 5 measure only the current
autocron, in this process, which then imports the copy too.

Two more measurements concern autocron alone:

4. A function shipped by value: autocron sends a function its workers cannot
   import (defined in ``__main__``, as in a notebook) as its code and
   globals, stored once per content hash.  The script defines ``add`` again
   in a ``__main__`` namespace of its own (``exec`` into
   ``{"__name__": "__main__"}``) and wraps it with ``autocron.delay``.  Each
   round starts a fresh pool, warms up both functions (which stores the
   payload once), checks that the ``__main__`` function runs in one of the
   pool's workers, then runs 100 pairs (``--quick``: 50) of blocks, each
   block like steps 1 and 2 on 50 calls (enqueue 50 calls, timed: calls/s;
   then wait for their results: tasks/s over both steps), alternating the
   module function ``_tasks_autocron.add`` and the ``__main__`` one: module,
   main, main, module, module, main, ... (even rounds start with main), so
   that both members of a pair see the same machine and slow drifts cancel.
   A pair's ``overhead = (module rate / __main__ rate - 1) * 100`` percent;
   the verdict is the median over all pairs of all rounds (per round: over
   that round's pairs), with the spread of the pairs and the median extra
   time per call (``1/main rate - 1/module rate``) under the table.  Blocks
   are short on purpose: a 50-call loop (~2.5 ms) ends before the workers get
   going, while loops of 200-500 calls overlap with them by a varying amount,
   and their per-round overheads swung by tens of percent on a loaded 2-core
   machine.  The block tasks/s are for batches of 50, so they are lower than
   step 1's.  Then the same alternating blocks of calls due in an hour time
   the caller's cost per call alone (the pool stays idle, so it cannot
   disturb the timing); the goal "within 20%" uses this median overhead.
5. Idle cost: a fresh pool is warmed up, left alone for 1 s to settle, then
   idle for 5 s (``--quick``: 3 s); the CPU time spent in that window by this
   process (which owns the pool: ``os.times()`` user + system, all threads)
   and by the pool's manager and two workers (``/proc/<pid>/stat`` utime +
   stime) is reported as
   percent of one core (CPU seconds / wall seconds * 100); the goal uses
   these.  Both clocks count in ticks, usually 10 ms: over 5 s one tick is
   0.2 % of a core, so the table also shows the same from the threads'
   ``/proc/<pid>/task/*/schedstat`` (nanoseconds) as a cross-check.
6. Durability: the cost of ``start(..., synchronous="full")`` (every commit
   waits for the disk) against the default ``"normal"``.  Each round starts a
   fresh pool with each setting (alternating which goes first), checks that
   its connection really uses it (``PRAGMA synchronous``), and runs steps 1
   and 2 on 1,000 calls (``--quick``: 200): enqueue calls/s and tasks/s.
   ``full/normal`` of the medians is the price of surviving power loss on
   this machine's disk.

Results are checked (``add(i, i) == 2 * i``); a batch gets 120 s for
all its results, a single call 60 s.  A library that raises or times out gets
the error in its cells and the run goes on.  The report ends with a
"goals" section (PASS/FAIL).  The exit code is 0 whatever the outcome: this
is a report, not a test.  Every process the benchmark starts is stopped
before it exits, also when a library fails or the run gets SIGTERM; a child
process that a library leaves behind after being stopped is reported on
stderr and killed.

A ``--measure-one`` subprocess is stopped like huey's consumer (SIGTERM,
then SIGKILL of its process group) and the workers of its copy, found by the
copy's folder in their command line, are killed by pid if they outlive it.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/tasks_bench.py [--quick] [--baseline PATH]

    # e.g. against the previous commit:
    mkdir -p /tmp/base && git show HEAD~1:autocron.py > /tmp/base/autocron.py
    .venv/bin/python benchmarks/tasks_bench.py --baseline /tmp/base/autocron.py

This folder and the repository root are put first on ``sys.path`` (and on
``PYTHONPATH`` for huey's consumer), so the working copy of ``autocron.py``
is the one measured (with ``--baseline``: the copy of it) and the worker
processes find the task modules ``_tasks_autocron``, ``_tasks_huey`` and
``_tasks_plain`` by name.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first
    sys.path.insert(0, str(_folder))

import _tasks_plain  # noqa: E402

WORKERS = 2
IDLE_GAP = 0.020  # seconds of sleep before each latency call
BATCH_TIMEOUT = 120.0  # seconds for all results of one throughput batch
CALL_TIMEOUT = 60.0  # seconds for one result (latency, warm-up)
CONSUMER_STOP_TIMEOUT = 15.0
MEASURE_TIMEOUT = 600.0  # seconds for one --measure-one subprocess (a round of one library)
MEASURE_PREFIX = "tasks-bench-measurement: "  # the JSON line a --measure-one subprocess prints
HUEY_DB_ENV = "AUTOCRON_BENCH_HUEY_DB"  # the same name as _tasks_huey.DB_ENV
HUEY_CONSUMER_ARGS = ("-w", str(WORKERS), "-k", "process")
HUEY_POLLING = (
    "consumer workers poll the queue every 0.1 s after a task, backing off x1.15 per empty "
    "poll up to 10 s (`-d 0.1 -b 1.15 -m 10`, the defaults); `result.get(blocking=True)` "
    "polls every 0.05 s, backing off x1.15 up to 1 s"
)

GOAL_THROUGHPUT = 2.5  # x huey
GOAL_LATENCY = 0.1  # x huey's p50
GOAL_ENQUEUE = 20_000  # calls/s
GOAL_BY_VALUE_OVERHEAD = 20.0  # percent, enqueue rate of the module function / __main__'s
GOAL_IDLE_CPU = 1.0  # percent of one core, owner and workers together
GOAL_BASELINE = 0.95  # x the baseline autocron's throughput (--baseline)

LIBS = ("autocron", "huey", "ppe")
LABELS = {"autocron": "autocron", "baseline": "autocron baseline", "huey": "huey",
          "ppe": "ProcessPoolExecutor"}
PEERS = ("huey", "ppe")

KINDS = ("module", "main")  # where the shipped-by-value benchmark's `add` is defined
KIND_LABELS = {"module": "module function `_tasks_autocron.add`",
               "main": "`__main__` function `add`, shipped by value"}
MAIN_SOURCE = """\
def add(a, b):
    return a + b


def worker_pid():
    import os
    return os.getpid()
"""
IDLE_SETTLE = 1.0  # seconds between the warm-up and the idle window


@dataclass(frozen=True)
class Sizes:
    rounds: int
    tasks: int
    latency_calls: int
    idle_seconds: float
    block: int  # enqueue calls per block of the by-value measurement
    pairs: int  # pairs of blocks (module, __main__) per by-value round
    durable: int  # calls per batch of the durability measurement


FULL = Sizes(rounds=3, tasks=3000, latency_calls=60, idle_seconds=5.0, block=50, pairs=100,
             durable=1000)
QUICK = Sizes(rounds=1, tasks=500, latency_calls=20, idle_seconds=3.0, block=50, pairs=50,
              durable=200)
SYNCHRONOUS = ("normal", "full")  # autocron's durability settings (section 6)
SYNCHRONOUS_PRAGMA = {"normal": 1, "full": 2}


class Client(NamedTuple):
    """How to use one running pool: ``wait(submit(a, b), timeout) == a + b``."""

    submit: Callable
    wait: Callable


@dataclass
class Measurement:
    """One library in one round; a phase that did not complete stays None."""

    throughput: Optional[float] = None  # tasks/s
    enqueue: Optional[float] = None  # calls/s
    p50: Optional[float] = None  # ms
    p99: Optional[float] = None  # ms
    error: Optional[str] = None


@dataclass
class ByValueRound:
    """One fresh autocron pool: blocks of the module and the ``__main__`` function."""

    blocks: list = field(default_factory=list)  # [(kind, Measurement)], in the order run
    caller: list = field(default_factory=list)  # [(kind, µs per call)] of calls due later
    worker: Optional[int] = None  # the pid the `__main__` function ran in
    error: Optional[str] = None

    def measurements(self, kind: str) -> list:
        return [m for k, m in self.blocks if k == kind]

    def pairs(self) -> list:
        """[{kind: Measurement}] of blocks 1+2, 3+4, ...: one of each kind in every pair."""
        return [dict(self.blocks[i:i + 2]) for i in range(0, len(self.blocks) - 1, 2)]


@dataclass
class IdleCost:
    """CPU seconds of an idle autocron pool over ``seconds`` of wall time."""

    seconds: Optional[float] = None
    owner: Optional[float] = None  # from clock ticks
    workers: Optional[float] = None
    owner_ns: Optional[float] = None  # the same from schedstat's nanoseconds, in seconds
    workers_ns: Optional[float] = None
    worker_pids: tuple = ()
    error: Optional[str] = None

    @property
    def total(self) -> Optional[float]:
        return None if self.owner is None or self.workers is None else self.owner + self.workers

    @property
    def total_ns(self) -> Optional[float]:
        return (None if self.owner_ns is None or self.workers_ns is None
                else self.owner_ns + self.workers_ns)

    def percent(self, field: str) -> Optional[float]:
        cpu = getattr(self, field)
        return None if cpu is None or not self.seconds else cpu / self.seconds * 100


# --- the pools -------------------------------------------------------------------

def warm_up(client: Client) -> None:
    """Run a few tasks through the pool so that every worker is up."""
    handles = [client.submit(i, i) for i in range(2 * WORKERS)]
    for i, handle in enumerate(handles):
        check(client.wait(handle, CALL_TIMEOUT), i)


def _autocron_wait(result, timeout):
    return result.get(timeout=timeout)


@contextlib.contextmanager
def autocron_pool(folder: Path, synchronous: Optional[str] = None) -> Iterator[Client]:
    import autocron
    import _tasks_autocron  # raises while autocron has no `delay`

    options = {} if synchronous is None else {"synchronous": synchronous}  # a baseline may
    try:                                                                   # not know it
        if not autocron.start(database=str(folder / "autocron.db"), workers=WORKERS, **options):
            print("note: autocron.start() returned False", file=sys.stderr)
        client = Client(_tasks_autocron.add, _autocron_wait)
        warm_up(client)
        check_worker_autocron(autocron, _tasks_autocron)
        yield client
    finally:
        stop = getattr(autocron, "stop", None)
        if stop is not None:
            stop()


def check_worker_autocron(autocron, tasks) -> None:
    """The pool's workers must run the same ``autocron.py`` as this process."""
    theirs = tasks.autocron_file().get(timeout=CALL_TIMEOUT)
    if os.path.realpath(theirs) != os.path.realpath(autocron.__file__):
        raise AssertionError(f"the workers imported autocron from {theirs}, "
                             f"this process from {autocron.__file__}")


def autocron_worker_pids() -> tuple:
    """The pids of the workers of this process's running autocron pool."""
    import autocron

    return tuple(autocron._state.pool.store.pool_pids()[2])


def autocron_pool_pids() -> tuple:
    """The pids of the pool's manager process and of its workers."""
    import autocron

    _, manager, workers = autocron._state.pool.store.pool_pids()
    return (manager, *workers)


def main_namespace() -> dict:
    """A fresh ``__main__``-like namespace holding ``add`` and ``worker_pid``."""
    namespace = {"__name__": "__main__"}
    exec(MAIN_SOURCE, namespace)
    return namespace


def _huey_wait(result, timeout):
    return result.get(blocking=True, timeout=timeout)


def load_huey_tasks(db_path: Path):
    """Import (or re-import) ``_tasks_huey`` bound to the SQLite file ``db_path``."""
    os.environ[HUEY_DB_ENV] = str(db_path)
    module = sys.modules.get("_tasks_huey")
    return importlib.import_module("_tasks_huey") if module is None else importlib.reload(module)


def start_consumer(log_path: Path) -> subprocess.Popen:
    """Start huey's consumer in its own process group, logging to ``log_path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(BENCH_DIR), str(ROOT), env.get("PYTHONPATH")])
    )
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "_tasks_huey.huey",
               *HUEY_CONSUMER_ARGS]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_consumer(proc: subprocess.Popen) -> None:
    """SIGINT (huey's graceful signal), then SIGKILL the whole process group."""
    stop_process_group(proc, signal.SIGINT, "huey consumer")


def stop_process_group(proc: subprocess.Popen, signum: int, what: str) -> None:
    """``signum`` to a child started with ``start_new_session``, then SIGKILL its group."""
    try:
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                proc.wait(CONSUMER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"note: {what} ignored {signal.Signals(signum).name}; killing it",
                      file=sys.stderr)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group is ours: start_new_session
        proc.wait()


def log_tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


def wait_until_up(ready, procs: list, logs: list, what: str, pause: float = 0.05) -> None:
    """Block until ``ready()``; fail if one of ``procs`` exited (with the tail of its log,
    ``logs[n]``) or after CALL_TIMEOUT s."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while not ready():
        for n, proc in enumerate(procs):
            if proc.poll() is not None:
                name = what if len(procs) == 1 else f"{what} {n}"
                raise RuntimeError(f"the {name} exited ({proc.returncode}): "
                                   f"{log_tail(logs[n])}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {what} was not up within {CALL_TIMEOUT:g} s")
        time.sleep(pause)


def wait_for_consumer(proc: subprocess.Popen, tasks, log_path: Path) -> None:
    """Block until one task went through the consumer, or fail if it died."""
    from huey.exceptions import ResultTimeout

    result = tasks.add(0, 0)
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"huey consumer exited ({proc.returncode}): {log_tail(log_path)}")
        try:
            check(result.get(blocking=True, timeout=0.5), 0)
            return
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise


@contextlib.contextmanager
def huey_pool(folder: Path) -> Iterator[Client]:
    log_path = folder / "consumer.log"
    tasks = load_huey_tasks(folder / "huey.db")
    proc = start_consumer(log_path)
    try:
        wait_for_consumer(proc, tasks, log_path)
        client = Client(tasks.add, _huey_wait)
        warm_up(client)
        yield client
    finally:
        stop_consumer(proc)
        tasks.huey.storage.close()


def _future_wait(future, timeout):
    return future.result(timeout=timeout)


@contextlib.contextmanager
def ppe_pool(folder: Path) -> Iterator[Client]:
    executor = ProcessPoolExecutor(max_workers=WORKERS)
    try:
        client = Client(functools.partial(executor.submit, _tasks_plain.add), _future_wait)
        warm_up(client)
        yield client
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


POOLS = {"autocron": autocron_pool, "huey": huey_pool, "ppe": ppe_pool}


# --- the measurements ----------------------------------------------------------

def check(value, i: int) -> None:
    if value != 2 * i:
        raise AssertionError(f"add({i}, {i}) returned {value!r}")


def run_batch(client: Client, n: int, m: Measurement) -> None:
    """Throughput and enqueue rate of ``n`` tasks, into ``m``."""
    submit, wait = client
    t0 = time.perf_counter()
    handles = [submit(i, i) for i in range(n)]
    t1 = time.perf_counter()
    deadline = t0 + BATCH_TIMEOUT
    for i, handle in enumerate(handles):
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"only {i} of {n} results within {BATCH_TIMEOUT:.0f} s")
        check(wait(handle, left), i)
    t2 = time.perf_counter()
    m.enqueue = n / (t1 - t0)
    m.throughput = n / (t2 - t0)


def percentile(samples: list, pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def run_latency(client: Client, calls: int, m: Measurement) -> None:
    """p50 and p99 (ms) of call-then-wait on an idle pool, into ``m``."""
    submit, wait = client
    samples = []
    for i in range(calls):
        time.sleep(IDLE_GAP)
        t0 = time.perf_counter()
        check(wait(submit(i, i), CALL_TIMEOUT), i)
        samples.append((time.perf_counter() - t0) * 1000)
    m.p50 = statistics.median(samples)
    m.p99 = percentile(samples, 99)


def describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def check_main_in_worker(namespace: dict) -> int:
    """Run the ``__main__`` ``worker_pid`` through the pool; it must be one of the workers."""
    import autocron

    pid = autocron.delay(namespace["worker_pid"])().get(timeout=CALL_TIMEOUT)
    workers = autocron_worker_pids()
    if pid not in workers:
        raise AssertionError(f"the __main__ function ran in pid {pid!r}, not in a worker "
                             f"{list(workers)}")
    return pid


def block_order(r: int, pairs: int) -> list:
    """module, main, main, module, module, main, ... (even rounds: main first)."""
    order = []
    for i in range(pairs):
        order += KINDS if (i + r) % 2 else KINDS[::-1]
    return order


def run_by_value(module_client: Client, r: int, sizes: Sizes, round_: ByValueRound) -> None:
    """Alternating blocks of the module ``add`` and of a ``__main__`` one, into ``round_``."""
    import autocron

    namespace = main_namespace()
    clients = {"module": module_client, "main": Client(autocron.delay(namespace["add"]),
                                                       _autocron_wait)}
    warm_up(clients["main"])  # stores the payload once
    round_.worker = check_main_in_worker(namespace)
    for kind in block_order(r, sizes.pairs):
        m = Measurement()
        run_batch(clients[kind], sizes.block, m)
        round_.blocks.append((kind, m))
    measure_caller_cost(namespace, r, sizes, round_)


def measure_caller_cost(namespace: dict, r: int, sizes: Sizes, round_: ByValueRound) -> None:
    """The caller's cost per call alone: calls due in an hour, so the pool stays idle
    while they are stored and cannot disturb the timing."""
    import autocron
    import _tasks_autocron

    later = autocron.delay(hours=1)
    deferred = {"module": later(_tasks_autocron.add.__wrapped__), "main": later(namespace["add"])}
    for kind in ("module", "main"):
        deferred[kind](0, 0)  # the payload is stored once
    for kind in block_order(r, sizes.pairs):
        call = deferred[kind]
        start = time.perf_counter()
        for i in range(sizes.block):
            call(i, 1)
        round_.caller.append((kind, (time.perf_counter() - start) / sizes.block * 1e6))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """user + system time of this process, every thread included."""
    times = os.times()
    return times.user + times.system


def cpu_seconds_ns(pid: int) -> float:
    """Time on a CPU of a process's live threads, from their schedstat (nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def cpu_sample(pids: tuple) -> tuple:
    """(wall, owner ticks, workers ticks, owner ns, workers ns), all in seconds."""
    return (time.perf_counter(), own_cpu_seconds(), sum(map(cpu_seconds, pids)),
            cpu_seconds_ns(os.getpid()), sum(map(cpu_seconds_ns, pids)))


def measure_idle(seconds: float, idle: IdleCost) -> None:
    """CPU time of this process and of the pool's workers over ``seconds`` of idling."""
    time.sleep(IDLE_SETTLE)  # let anything that follows the warm-up finish
    pids = autocron_pool_pids()
    before = cpu_sample(pids)
    time.sleep(seconds)
    after = cpu_sample(pids)
    if autocron_pool_pids() != pids:
        raise RuntimeError(f"the pool's processes changed during the idle window: {list(pids)}"
                           f" -> {list(autocron_pool_pids())}")
    idle.worker_pids = pids
    (idle.seconds, idle.owner, idle.workers,
     idle.owner_ns, idle.workers_ns) = (b - a for a, b in zip(before, after))


_SEEN_ERRORS: set = set()


def note_error(exc: BaseException) -> str:
    """The one-line description of ``exc``; its traceback goes to stderr the first time."""
    error = describe(exc)
    if error not in _SEEN_ERRORS:  # one traceback per distinct error
        _SEEN_ERRORS.add(error)
        traceback.print_exc(file=sys.stderr)
    return error


@contextlib.contextmanager
def fresh_pool(lib: str, **options) -> Iterator[Client]:
    """A pool of ``lib`` in a fresh folder; stopped, its strays reaped, the folder removed."""
    folder = Path(tempfile.mkdtemp(prefix=f"tasks-bench-{lib}-"))
    try:
        with POOLS[lib](folder, **options) as client:
            yield client
    finally:
        reap_strays(lib)
        shutil.rmtree(folder, ignore_errors=True)


def run_round(lib: str, sizes: Sizes) -> Measurement:
    """Start a fresh pool of ``lib`` in a fresh folder, measure, stop, clean up."""
    m = Measurement()
    try:
        with fresh_pool(lib) as client:
            run_batch(client, sizes.tasks, m)
            run_latency(client, sizes.latency_calls, m)
    except Exception as exc:
        m.error = note_error(exc)
    return m


def run_by_value_round(r: int, sizes: Sizes) -> ByValueRound:
    """The by-value blocks of one fresh pool; an error ends the round's blocks."""
    round_ = ByValueRound()
    try:
        with fresh_pool("autocron") as client:
            run_by_value(client, r, sizes, round_)
    except Exception as exc:
        round_.error = note_error(exc)
    return round_


def run_durability_round(level: str, sizes: Sizes) -> Measurement:
    """Steps 1 and 2 on a fresh autocron pool with ``synchronous=level``."""
    import autocron

    m = Measurement()
    try:
        with fresh_pool("autocron", synchronous=level) as client:
            used = autocron._state.store.read("PRAGMA synchronous")[0][0]
            if used != SYNCHRONOUS_PRAGMA[level]:
                raise AssertionError(f"synchronous={level!r} gave PRAGMA synchronous {used}")
            run_batch(client, sizes.durable, m)
    except Exception as exc:
        m.error = note_error(exc)
    return m


def run_idle(sizes: Sizes) -> IdleCost:
    idle = IdleCost()
    try:
        with fresh_pool("autocron"):
            measure_idle(sizes.idle_seconds, idle)
    except Exception as exc:
        idle.error = note_error(exc)
    return idle


def child_pids() -> list:
    """Pids of this process's children that are still around (Linux; else [])."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.append(int(stat.parent.name))
    return pids


def kill_strays(strays: list, warning: str, reap: bool) -> None:
    """Warn about processes left behind and kill them (and reap them, if our children)."""
    if strays:
        print(f"WARNING: {warning} {strays}; killing them", file=sys.stderr)
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if reap:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def reap_strays(lib: str) -> None:
    """Kill and reap any child process ``lib`` left behind after it was stopped."""
    kill_strays(child_pids(), f"{lib} left child processes after stopping:", reap=True)


# --- autocron in a subprocess (--baseline) -------------------------------------------

class AutocronCopy(NamedTuple):
    """A copy of an ``autocron.py``, alone in ``folder``, taken when the run starts."""

    origin: Path
    folder: Path
    sha256: str


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def autocron_copies(baseline: Optional[Path]) -> Iterator[dict]:
    """{"autocron": copy of the working file, "baseline": copy of ``baseline``}; {} if None."""
    copies = {}
    try:
        if baseline is not None:
            for lib, origin in (("autocron", ROOT / "autocron.py"), ("baseline", baseline)):
                folder = Path(tempfile.mkdtemp(prefix=f"tasks-bench-{lib}-copy-"))
                shutil.copyfile(origin, folder / "autocron.py")
                copies[lib] = AutocronCopy(origin, folder, file_sha256(folder / "autocron.py"))
        yield copies
    finally:
        for copy in copies.values():
            shutil.rmtree(copy.folder, ignore_errors=True)


def import_autocron_from(folder: Path) -> dict:
    """``import autocron``, which must be ``folder``'s; {"file": ..., "version": ...}."""
    import autocron

    if Path(autocron.__file__).resolve().parent != folder.resolve():
        raise ImportError(f"`import autocron` found {autocron.__file__}, not the one in {folder}")
    return {"file": autocron.__file__, "version": getattr(autocron, "__version__", "?")}


def measure_one(lib: str, folder: Path, sizes: Sizes) -> int:
    """The hidden ``--measure-one`` mode: one round of ``lib`` with ``folder``'s autocron.

    Prints one line, ``MEASURE_PREFIX`` + JSON {"measurement": ..., "autocron": ...}.
    """
    sys.path.insert(0, str(folder))  # before anything imports autocron
    m, info = Measurement(), {}
    try:
        info = import_autocron_from(folder)
    except Exception as exc:
        m.error = note_error(exc)
    else:
        m = run_round(lib, sizes)
    print(MEASURE_PREFIX + json.dumps({"measurement": asdict(m), "autocron": info}), flush=True)
    return 0


def parse_measurement(out: str) -> tuple:
    """(Measurement, autocron info) from a ``--measure-one`` subprocess's stdout."""
    for line in reversed(out.splitlines()):
        if line.startswith(MEASURE_PREFIX):
            data = json.loads(line[len(MEASURE_PREFIX):])
            return Measurement(**data["measurement"]), data["autocron"]
    raise RuntimeError("the measurement subprocess printed no measurement")


def processes_given(folder: Path) -> list:
    """Pids of the processes that have ``folder`` as an argument (autocron's workers do)."""
    pids, argument = [], str(folder).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            if argument in cmdline.read_bytes().split(b"\0"):
                pids.append(int(cmdline.parent.name))
    return pids


def kill_copy_strays(lib: str, folder: Path, grace: float = 2.0) -> None:
    """Kill the workers of ``folder``'s autocron that outlived their subprocess (by pid)."""
    deadline = time.monotonic() + grace  # orphaned workers exit when their pipe closes
    while processes_given(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_strays(processes_given(folder), f"{LABELS[lib]}'s subprocess left processes",
                reap=False)


def measure_in_subprocess(lib: str, copy: AutocronCopy, sizes: Sizes) -> tuple:
    """(Measurement, autocron info) of one round of ``copy``'s autocron, in a subprocess."""
    command = [sys.executable, str(Path(__file__).resolve()), "--measure-one", "autocron",
               "--autocron-path", str(copy.folder), *(["--quick"] if sizes == QUICK else [])]
    m, info = Measurement(), {}
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # stderr: ours
    try:
        out = proc.communicate(timeout=MEASURE_TIMEOUT)[0]
        if proc.returncode != 0:
            raise RuntimeError(f"the measurement subprocess exited with {proc.returncode}")
        m, info = parse_measurement(out)
    except subprocess.TimeoutExpired:
        m.error = f"TimeoutError: no measurement within {MEASURE_TIMEOUT:.0f} s"
    except Exception as exc:
        m.error = note_error(exc)
    finally:
        stop_process_group(proc, signal.SIGTERM, "measurement subprocess")
        kill_copy_strays(lib, copy.folder)
    return m, info


class Results(NamedTuple):
    libs: dict  # {lib: [Measurement per round]}
    by_value: list  # [ByValueRound per round]
    idle: IdleCost
    versions: dict  # {lib: autocron.__version__} of the autocrons measured in a subprocess
    durability: dict  # {synchronous setting: [Measurement per round]}


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def round_order(r: int, libs: tuple) -> list:
    """``libs``, with autocron and its baseline next to each other, alternating which is first."""
    if "baseline" not in libs:
        return list(libs)
    pair = ["autocron", "baseline"] if r % 2 else ["baseline", "autocron"]
    return pair + [lib for lib in libs if lib not in pair]


def measure(lib: str, sizes: Sizes, copies: dict, versions: dict) -> Measurement:
    """One round of ``lib``: in a subprocess if it is one of ``copies``, else here."""
    if lib not in copies:
        return run_round(lib, sizes)
    m, info = measure_in_subprocess(lib, copies[lib], sizes)
    if info:
        versions.setdefault(lib, info["version"])
    return m


def run_all(sizes: Sizes, copies: dict) -> Results:
    """Every measurement; the libraries interleaved round by round."""
    libs = {lib: [] for lib in (LIBS[:1] + ("baseline",) + LIBS[1:] if copies else LIBS)}
    versions = {}
    for r in range(1, sizes.rounds + 1):
        for lib in round_order(r, tuple(libs)):
            where = " (subprocess)" if lib in copies else ""
            progress(f"round {r}/{sizes.rounds}: {LABELS[lib]}{where} ...")
            libs[lib].append(measure(lib, sizes, copies, versions))
            progress(f"  {libs[lib][-1]}")
    by_value = []
    for r in range(1, sizes.rounds + 1):
        progress(f"round {r}/{sizes.rounds}: autocron, module vs __main__ function ...")
        by_value.append(run_by_value_round(r, sizes))
        progress(f"  {by_value_summary(by_value[-1])}")
    progress(f"autocron idle for {sizes.idle_seconds:g} s ...")
    idle = run_idle(sizes)
    progress(f"  {idle}")
    durability = {level: [] for level in SYNCHRONOUS}
    for r in range(1, sizes.rounds + 1):
        for level in SYNCHRONOUS if r % 2 else SYNCHRONOUS[::-1]:
            progress(f"round {r}/{sizes.rounds}: autocron, synchronous={level} ...")
            durability[level].append(run_durability_round(level, sizes))
            progress(f"  {durability[level][-1]}")
    return Results(libs, by_value, idle, versions, durability)


# --- report --------------------------------------------------------------------

def median_of(rounds: list, field: str) -> Optional[float]:
    values = [getattr(m, field) for m in rounds if getattr(m, field) is not None]
    return statistics.median(values) if values else None


def ratio(a, b) -> Optional[float]:
    return None if a is None or b is None or b == 0 else a / b


def fmt_rate(value) -> str:
    return f"{value:,.0f}"


def fmt_ms(value) -> str:
    return f"{value:.2f}"


def fmt_ratio(value) -> str:
    return "n/a" if value is None else f"{value:.3g}x"


def cell(m: Measurement, field: str, fmt: Callable) -> str:
    value = getattr(m, field)
    if value is not None:
        return fmt(value)
    return "error: " + (m.error or "not reached").replace("|", "\\|")[:70]


def median_cell(rounds: list, field: str, fmt: Callable) -> str:
    value = median_of(rounds, field)
    if value is None:
        return cell(rounds[0], field, fmt)
    done = sum(getattr(m, field) is not None for m in rounds)
    return fmt(value) + ("" if done == len(rounds) else f" ({done} of {len(rounds)} rounds)")


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rate_table(results: dict, field: str, unit: str) -> str:
    rounds = len(results[LIBS[0]])
    headers = ["library", f"median {unit}", *(f"round {r + 1}" for r in range(rounds))]
    rows = [
        [LABELS[lib], median_cell(ms, field, fmt_rate), *(cell(m, field, fmt_rate) for m in ms)]
        for lib, ms in results.items()
    ]
    return markdown_table(headers, rows)


def ratio_line(results: dict, field: str) -> str:
    ours = median_of(results["autocron"], field)
    parts = [f"autocron/{LABELS[peer]} {fmt_ratio(ratio(ours, median_of(results[peer], field)))}"
             for peer in ("baseline", *PEERS) if peer in results]
    line = "Ratios of the medians: " + ", ".join(parts)
    if "baseline" in results:
        line += f"\n\nautocron/baseline {baseline_per_round(results, field)}"
    return line


def baseline_ratios(results: dict, field: str) -> list:
    """current/baseline of ``field`` in each round (None where either is missing)."""
    return [ratio(getattr(ours, field), getattr(theirs, field))
            for ours, theirs in zip(results["autocron"], results["baseline"])]


def baseline_ratio(results: dict, field: str) -> Optional[float]:
    """The median of the per-round current/baseline ratios: the two ran side by side."""
    return median_or_none([v for v in baseline_ratios(results, field) if v is not None])


def baseline_per_round(results: dict, field: str) -> str:
    rounds = ", ".join(map(fmt_ratio, baseline_ratios(results, field)))
    return f"per round: {rounds}; median {fmt_ratio(baseline_ratio(results, field))}"


def latency_table(results: dict) -> str:
    rounds = len(results[LIBS[0]])
    headers = ["library", "p50 ms (median)", "p99 ms (median)",
               *(f"round {r + 1} p50 / p99" for r in range(rounds))]
    rows = [
        [LABELS[lib], median_cell(ms, "p50", fmt_ms), median_cell(ms, "p99", fmt_ms),
         *(f"{cell(m, 'p50', fmt_ms)} / {cell(m, 'p99', fmt_ms)}" if m.p50 is not None
           else cell(m, "p50", fmt_ms) for m in ms)]
        for lib, ms in results.items()
    ]
    return markdown_table(headers, rows)


def overhead(module_rate, main_rate) -> Optional[float]:
    """How much faster the module function is, in percent of the ``__main__`` one's rate."""
    r = ratio(module_rate, main_rate)
    return None if r is None else (r - 1) * 100


def fmt_pct(value) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def pair_overheads(rounds: list, field: str) -> list:
    """The overhead of ``field`` in every complete pair of blocks of ``rounds``."""
    values = (overhead(*(getattr(pair[kind], field) for kind in KINDS))
              for round_ in rounds for pair in round_.pairs())
    return [v for v in values if v is not None]


def median_or_none(values: list) -> Optional[float]:
    return statistics.median(values) if values else None


def caller_costs(rounds: list) -> tuple:
    """(module µs, `__main__` µs, overhead % as the median over the pairs) of the caller."""
    pairs = [dict(round_.caller[i:i + 2]) for round_ in rounds
             for i in range(0, len(round_.caller) - 1, 2)]
    if not pairs:
        return None, None, None
    return (statistics.median(p["module"] for p in pairs),
            statistics.median(p["main"] for p in pairs),
            statistics.median((p["main"] / p["module"] - 1) * 100 for p in pairs))


def by_value_overhead(rounds: list, field: str) -> Optional[float]:
    """The median over every pair of blocks of every round: the verdict."""
    return median_or_none(pair_overheads(rounds, field))


def by_value_summary(round_: ByValueRound) -> str:
    done = f"{len(round_.pairs())} pairs, median overhead enqueue " \
           f"{fmt_pct(by_value_overhead([round_], 'enqueue'))}, " \
           f"tasks {fmt_pct(by_value_overhead([round_], 'throughput'))}"
    return done + (f"; error: {round_.error}" if round_.error else "")


def by_value_cell(round_: ByValueRound, kind: str) -> str:
    """The medians of one round's blocks of ``kind``: calls/s / tasks/s."""
    ms = round_.measurements(kind)
    if not ms:
        return cell(Measurement(error=round_.error), "enqueue", fmt_rate)
    return " / ".join(fmt_rate(median_of(ms, f)) for f in ("enqueue", "throughput"))


def by_value_table(rounds: list) -> str:
    headers = ["function", "enqueue calls/s (median)", "tasks/s (median)",
               *(f"round {r + 1} calls/s / tasks/s" for r in range(len(rounds)))]
    rows = []
    for kind in KINDS:
        ms = [m for round_ in rounds for m in round_.measurements(kind)]
        median_cells = ([median_cell(ms, f, fmt_rate) for f in ("enqueue", "throughput")] if ms
                        else [by_value_cell(rounds[0], kind)] * 2)
        rows.append([KIND_LABELS[kind], *median_cells,
                     *(by_value_cell(round_, kind) for round_ in rounds)])
    rows.append(["overhead of shipping by value (median of the pairs)",
                 *(fmt_pct(by_value_overhead(rounds, f)) for f in ("enqueue", "throughput")),
                 *(" / ".join(fmt_pct(by_value_overhead([round_], f))
                              for f in ("enqueue", "throughput")) for round_ in rounds)])
    return markdown_table(headers, rows)


def spread_line(values: list) -> str:
    """min, quartiles and max of overheads in percent."""
    if len(values) < 2:
        return "n/a"
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (f"min {fmt_pct(min(values))}, quartiles {fmt_pct(q1)} / {fmt_pct(q2)} / "
            f"{fmt_pct(q3)}, max {fmt_pct(max(values))}")


def extra_microseconds(rounds: list) -> Optional[float]:
    """The median over the pairs of (1 / __main__ rate - 1 / module rate), in µs per call."""
    values = [1e6 / pair["main"].enqueue - 1e6 / pair["module"].enqueue
              for round_ in rounds for pair in round_.pairs()]
    return median_or_none(values)


def fmt_cpu(value) -> str:
    return f"{value * 1000:.1f}"


def fmt_core(value) -> str:
    return f"{value:.2f}"


def idle_table(idle: IdleCost) -> str:
    pids = ", ".join(map(str, idle.worker_pids)) or "?"
    labels = {"owner": f"owner (this process, pid {os.getpid()})",
              "workers": f"manager and {WORKERS} workers (pids {pids})", "total": "total"}
    rows = [[label, *(cell(idle, f, fmt_cpu) for f in (field, field + "_ns")),
             *(fmt_core(idle.percent(f)) if idle.percent(f) is not None
               else cell(idle, f, fmt_core) for f in (field, field + "_ns"))]
            for field, label in labels.items()]
    return markdown_table(["process", "CPU ms", "CPU ms (ns clock)", "% of one core",
                           "% of one core (ns clock)"], rows)


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def autocron_version() -> str:
    try:
        import autocron
    except Exception as exc:
        return f"(import failed: {describe(exc)})"
    return f"{getattr(autocron, '__version__', '?')} from {autocron.__file__}"


def changed_since(copy: AutocronCopy) -> bool:
    try:
        return file_sha256(copy.origin) != copy.sha256
    except OSError:
        return True


def autocron_lines(copies: dict, versions: dict) -> list:
    """The header's lines about the autocron(s) measured."""
    if not copies:
        return [f"- autocron {autocron_version()}"]
    current, base = copies["autocron"], copies["baseline"]
    warning = (" **WARNING: the working file has changed since; the copy was measured**"
               if changed_since(current) else "")
    return [
        f"- autocron {versions.get('autocron', '?')}: a copy of `{current.origin}` taken at the "
        f"start (sha256 {current.sha256[:12]}), measured in every section{warning}",
        f"- autocron baseline {versions.get('baseline', '?')}: a copy of `{base.origin}` "
        f"(sha256 {base.sha256[:12]}), sections 1-3",
        "- sections 1-3 measure each autocron round in a subprocess of its own "
        "(`--measure-one autocron --autocron-path <copy's folder>`, that folder first on "
        "`sys.path`; the workers' `autocron.__file__` is checked), the two side by side, "
        "alternating which goes first; sections 4-5 run in this process",
    ]


def print_header(sizes: Sizes, copies: dict, versions: dict) -> None:
    baseline = " (and a baseline autocron)" if copies else ""
    print(f"# Background tasks: autocron vs huey vs ProcessPoolExecutor{baseline}\n")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()}) "
          f"on {platform.platform()}, {os.cpu_count()} CPUs")
    print("\n".join(autocron_lines(copies, versions)))
    print(f"- huey {version_of('huey')}: SqliteHuey (WAL, default synchronous), consumer "
          f"`python -m huey.bin.huey_consumer _tasks_huey.huey {' '.join(HUEY_CONSUMER_ARGS)}`, "
          f"default logging to a file; {HUEY_POLLING}")
    print(f"- ProcessPoolExecutor(max_workers={WORKERS}), start method "
          f"{multiprocessing.get_start_method()}; not durable: the ceiling")
    print(f"- task `add(a, b)`, {WORKERS} workers; {sizes.rounds} interleaved round(s), "
          f"{sizes.tasks:,} tasks per throughput batch, {sizes.latency_calls} latency calls "
          f"with {IDLE_GAP * 1000:.0f} ms idle before each\n")


def goal_line(ok: bool, text: str) -> str:
    return f"- {'PASS' if ok else 'FAIL'}: {text}"


def print_goals(all_results: Results) -> None:
    results = all_results.libs
    ours = {f: median_of(results["autocron"], f) for f in ("throughput", "p50", "enqueue")}
    huey = {f: median_of(results["huey"], f) for f in ("throughput", "p50")}
    tput = ratio(ours["throughput"], huey["throughput"])
    lat = ratio(ours["p50"], huey["p50"])
    enq = ours["enqueue"]
    by_value = caller_costs(all_results.by_value)[2]
    idle = all_results.idle.percent("total")

    print("\n## Goals\n")
    print(goal_line(tput is not None and tput >= GOAL_THROUGHPUT,
                    f"throughput >= {GOAL_THROUGHPUT}x huey (got {fmt_ratio(tput)})"))
    print(goal_line(lat is not None and lat <= GOAL_LATENCY,
                    f"idle latency p50 <= {GOAL_LATENCY}x huey's p50 (got {fmt_ratio(lat)})"))
    print(goal_line(enq is not None and enq >= GOAL_ENQUEUE,
                    f"enqueue >= {GOAL_ENQUEUE:,} calls/s "
                    f"(got {'n/a' if enq is None else fmt_rate(enq)})"))
    print(goal_line(by_value is not None and by_value <= GOAL_BY_VALUE_OVERHEAD,
                    f"per-call cost of a `__main__` function shipped by value within "
                    f"{GOAL_BY_VALUE_OVERHEAD:g}% of the module function's, for the caller "
                    f"(got {fmt_pct(by_value)})"))
    print(goal_line(idle is not None and idle < GOAL_IDLE_CPU,
                    f"idle pool (owner + {WORKERS} workers) under {GOAL_IDLE_CPU:g}% of one core "
                    f"(got {'n/a' if idle is None else fmt_core(idle) + '%'})"))
    if "baseline" in results:
        base = baseline_ratio(results, "throughput")
        print(goal_line(base is not None and base >= GOAL_BASELINE,
                        f"plain path within {(1 - GOAL_BASELINE) * 100:g}% of the baseline "
                        f"(throughput, median of the per-round autocron/baseline ratios "
                        f">= {GOAL_BASELINE:g}; got {fmt_ratio(base)})"))


def print_report(all_results: Results, sizes: Sizes) -> None:
    results = all_results.libs
    print(f"## 1. Throughput (tasks/s): enqueue {sizes.tasks:,}, then wait for all\n")
    print(rate_table(results, "throughput", "tasks/s"))
    print("\n" + ratio_line(results, "throughput"))
    print(f"\n## 2. Enqueue rate (calls/s): the enqueue loop of {sizes.tasks:,} calls, "
          "pool running\n")
    print(rate_table(results, "enqueue", "calls/s"))
    print("\n" + ratio_line(results, "enqueue"))
    print(f"\n## 3. Idle latency (ms): call, then block for the result; "
          f"{sizes.latency_calls} calls\n")
    print(latency_table(results))
    lat = ratio(median_of(results["autocron"], "p50"), median_of(results["huey"], "p50"))
    print(f"\nautocron/huey p50: {fmt_ratio(lat)} (lower is better)")
    if "baseline" in results:
        lat = ratio(median_of(results["autocron"], "p50"), median_of(results["baseline"], "p50"))
        print(f"\nautocron/baseline p50: ratio of the medians {fmt_ratio(lat)}; "
              f"{baseline_per_round(results, 'p50')} (lower is better)")
    print_by_value(all_results.by_value, sizes)
    print_idle(all_results.idle, sizes)
    print_durability(all_results.durability, sizes)
    print_goals(all_results)


def print_by_value(rounds: list, sizes: Sizes) -> None:
    print(f"\n## 4. autocron: a `__main__` function shipped by value vs a module function; "
          f"{sizes.pairs} pairs of blocks of {sizes.block:,} calls per round, {WORKERS} workers\n")
    print(by_value_table(rounds))
    pids = [str(r.worker) for r in rounds if r.worker is not None]
    checked = (f"ran in one of the pool's workers in every round (pid {', '.join(pids)}), "
               f"and its results were checked" if len(pids) == len(rounds)
               else f"was NOT seen running in a worker in {len(rounds) - len(pids)} round(s)")
    extra = extra_microseconds(rounds)
    print(f"\nEach block enqueues {sizes.block:,} calls (calls/s), then waits for their results "
          f"(tasks/s: both steps).  Blocks alternate module, `__main__`, `__main__`, module, ... "
          f"(even rounds start with `__main__`); overhead of a pair = (module rate / `__main__` "
          f"rate - 1) * 100, positive: shipping by value is slower; the medians are over the "
          f"blocks and the pairs.  Enqueue overhead of the "
          f"{len(pair_overheads(rounds, 'enqueue'))} pairs: "
          f"{spread_line(pair_overheads(rounds, 'enqueue'))}; median extra time per call "
          f"{'n/a' if extra is None else f'{extra:+.1f} µs'}.  The `__main__` function {checked}.")
    module_us, main_us, overhead = caller_costs(rounds)
    if overhead is not None:
        print(f"\nThe caller's cost per call alone (the same blocks, of calls due in an hour, so "
              f"the pool stays idle while they are stored): module function {module_us:.1f} µs, "
              f"`__main__` function {main_us:.1f} µs, overhead {fmt_pct(overhead)} (median of "
              f"the pairs).  Above, the pool runs the calls of each block while it is stored, "
              f"which makes those figures swing with the scheduling of 2 CPUs.")


def print_idle(idle: IdleCost, sizes: Sizes) -> None:
    window = f"{idle.seconds:.2f}" if idle.seconds else f"{sizes.idle_seconds:g}"
    print(f"\n## 5. autocron idle cost: CPU over {window} s of an idle pool, {WORKERS} workers\n")
    print(idle_table(idle))
    print(f"\nAfter the warm-up and {IDLE_SETTLE:g} s to settle.  CPU ms: utime + stime "
          f"(`os.times()` for the owner, `/proc/<pid>/stat` for the workers), counted in ticks "
          f"of {1000 / os.sysconf('SC_CLK_TCK'):g} ms; the goal uses these.  ns clock: the "
          f"sum of `/proc/<pid>/task/*/schedstat` over the live threads, a cross-check at "
          f"nanosecond resolution.")


def print_durability(durability: dict, sizes: Sizes) -> None:
    print(f"\n## 6. autocron durability: synchronous=\"normal\" (default) vs \"full\"; "
          f"{sizes.durable:,} calls per round, {WORKERS} workers\n")
    rounds = len(durability[SYNCHRONOUS[0]])
    headers = ["synchronous", "enqueue calls/s (median)", "tasks/s (median)",
               *(f"round {r + 1} calls/s / tasks/s" for r in range(rounds))]
    rows = [[f"`{level}`", *(median_cell(ms, f, fmt_rate) for f in ("enqueue", "throughput")),
             *(f"{cell(m, 'enqueue', fmt_rate)} / {cell(m, 'throughput', fmt_rate)}"
               for m in ms)] for level, ms in durability.items()]
    print(markdown_table(headers, rows))
    costs = [fmt_ratio(ratio(*(median_of(durability[level], f) for level in ("full", "normal"))))
             for f in ("enqueue", "throughput")]
    print(f"\nfull/normal of the medians: enqueue {costs[0]}, tasks {costs[1]}.  `normal` "
          f"survives a crash of the application; `full` also power loss or an OS crash: "
          f"every commit (each call, each round of the pool) waits for the disk.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_rounds(doc, quick_help, quick, full, run_all, print_report, argv=None) -> int:
    """The command line of a benchmark that takes --quick and --postgres URL: measure
    (run_all(sizes, url)), print the report, stop every pool on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--postgres", metavar="URL",
                        help="also autocron on this server: postgresql://user:password@host"
                             "[:port]/database")
    args = parser.parse_args(argv)
    sizes = quick if args.quick else full
    signal.signal(signal.SIGTERM, _interrupt)     # so that the cleanup runs on SIGTERM too
    try:
        print_report(run_all(sizes, args.postgres), sizes, args.postgres)
    except KeyboardInterrupt:
        print("interrupted; every pool was stopped", file=sys.stderr)
        return 130
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.rounds} round, {QUICK.tasks} tasks, "
                             f"{QUICK.latency_calls} latency calls, {QUICK.pairs} by-value pairs")
    parser.add_argument("--baseline", type=Path, metavar="PATH",
                        help="another autocron.py to measure side by side in sections 1-3 "
                             "(each autocron then runs in a subprocess)")
    parser.add_argument("--measure-one", choices=["autocron"], help=argparse.SUPPRESS)
    parser.add_argument("--autocron-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.baseline is not None and not args.baseline.is_file():
        parser.error(f"--baseline {args.baseline}: no such file")
    if args.measure_one and args.autocron_path is None:
        parser.error("--measure-one needs --autocron-path")
    signal.signal(signal.SIGTERM, _interrupt)  # so that the cleanup runs on SIGTERM too

    try:
        if args.measure_one:
            return measure_one(args.measure_one, args.autocron_path, sizes)
        with autocron_copies(args.baseline) as copies:
            if copies:  # this process, for sections 4 and 5, imports the copy too
                sys.path.insert(0, str(copies["autocron"].folder))
            results = run_all(sizes, copies)
            print_header(sizes, copies, results.versions)
            print_report(results, sizes)
    except KeyboardInterrupt:
        print("interrupted; every pool was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
