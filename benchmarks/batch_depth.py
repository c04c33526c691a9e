"""Batches and depth: map() and a deep queue, autocron vs huey vs ProcessPoolExecutor.

What is measured (2 workers, the trivial task ``add(a, b)``, as in tasks_bench.py)
-----------------------------------------------------------------------------------
1. map rate (calls/s): ``add.map(range(N), range(N))`` with N = 20,000 (``--quick``:
   5,000), the pool running and competing for the CPU and the database, timed until the
   call returns; autocron stores the N calls in one transaction.  huey: its
   ``add.map(zip(...))`` (one enqueue per call); ProcessPoolExecutor: ``executor.map``,
   which submits every call before it returns (nothing on disk: the ceiling).  autocron
   and ProcessPoolExecutor: the median of three batches a round, each waited for before
   the next; huey: one batch.
2. depth (tasks/s): N = 20,000 and N = 200,000 calls (``--quick``: 5,000 and 50,000)
   queued at once with map(), then every one waited for; tasks/s = N / the time from the
   map() call to the last result.  The ratio deep/shallow says whether claiming, indexing
   and cleanup grow with the queue (goal: >= 0.85).  huey is left out of the deep queue:
   at about 1,000 tasks/s it would take minutes a round.
3. the async def task ``async_add`` (autocron only): the same as 2 at the shallow depth,
   next to the plain one: the price of running a coroutine on the worker's event loop.

Rounds are interleaved (autocron, huey, ProcessPoolExecutor; three rounds, ``--quick``
one) and the tables show the median and every round.  Results are checked (a sample of
the values, and that none is left unfinished).  Every process started is stopped.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/batch_depth.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first
    sys.path.insert(0, str(_folder))

import _tasks_plain  # noqa: E402

WORKERS = 2
DONE_TIMEOUT = 600.0       # seconds for every result of one batch
GOAL_MAP = 150_000         # calls/s
MAP_BATCHES = 3            # map rate: the median of this many batches a round
GOAL_DEPTH = 0.85          # deep rate / shallow rate


def _wait_autocron(autocron, results) -> None:
    """The last result, then until nothing is left unfinished; a sample of the values."""
    results[-1].get(timeout=DONE_TIMEOUT)
    end = time.monotonic() + DONE_TIMEOUT
    while autocron.get_results(limit=1, status="waiting") or \
            autocron.get_results(limit=1, status="running"):
        if time.monotonic() > end:
            raise TimeoutError("tasks left unfinished")
        time.sleep(0.005)
    for i in range(0, len(results), max(1, len(results) // 50)):
        assert results[i].get(timeout=10) == 2 * i, i


def measure_autocron(sizes, map_size) -> dict:
    autocron = importlib.import_module("autocron")
    tasks = importlib.import_module("_tasks_autocron")
    folder = tempfile.mkdtemp(prefix="bench-autocron-")
    out = {}
    try:
        autocron.start(os.path.join(folder, "autocron.db"), workers=WORKERS)
        for i in range(20):
            tasks.add(i, i).get(timeout=60)
        rates = []
        for _ in range(MAP_BATCHES):
            started = time.perf_counter()
            results = tasks.add.map(range(map_size), range(map_size))
            rates.append(map_size / (time.perf_counter() - started))
            _wait_autocron(autocron, results)
        out["map"] = statistics.median(rates)
        for size in sizes:
            autocron.stop()                       # every depth starts with an empty file
            autocron.start(os.path.join(folder, f"depth-{size}.db"), workers=WORKERS)
            tasks.add(0, 0).get(timeout=60)
            started = time.perf_counter()
            results = tasks.add.map(range(size), range(size))
            _wait_autocron(autocron, results)
            out[f"depth {size}"] = size / (time.perf_counter() - started)
        started = time.perf_counter()
        results = tasks.async_add.map(range(sizes[0]), range(sizes[0]))
        _wait_autocron(autocron, results)
        out["async"] = sizes[0] / (time.perf_counter() - started)
    finally:
        autocron.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def measure_ppe(sizes, map_size) -> dict:
    out = {}
    with ProcessPoolExecutor(max_workers=WORKERS) as executor:
        list(executor.map(_tasks_plain.add, range(20), range(20)))
        rates = []
        for _ in range(MAP_BATCHES):
            started = time.perf_counter()
            values = executor.map(_tasks_plain.add, range(map_size), range(map_size))
            rates.append(map_size / (time.perf_counter() - started))
            assert list(values) == [2 * i for i in range(map_size)]
        out["map"] = statistics.median(rates)
        for size in sizes:
            started = time.perf_counter()
            values = list(executor.map(_tasks_plain.add, range(size), range(size)))
            out[f"depth {size}"] = size / (time.perf_counter() - started)
            assert values[-1] == 2 * (size - 1)
    return out


def measure_huey(map_size) -> dict:
    folder = tempfile.mkdtemp(prefix="bench-huey-")
    os.environ["AUTOCRON_BENCH_HUEY_DB"] = os.path.join(folder, "huey.db")
    module = importlib.reload(importlib.import_module("_tasks_huey")) \
        if "_tasks_huey" in sys.modules else importlib.import_module("_tasks_huey")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(ROOT)]))
    consumer = subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "_tasks_huey.huey", "-w",
         str(WORKERS), "-k", "process", "-l", os.path.join(folder, "huey.log")],
        env=env, cwd=folder, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        module.add(1, 1).get(blocking=True, timeout=60)
        started = time.perf_counter()
        group = module.add.map(zip(range(map_size), range(map_size)))
        rate = map_size / (time.perf_counter() - started)
        assert group.get(blocking=True, timeout=DONE_TIMEOUT)[-1] == 2 * (map_size - 1)
        return {"map": rate}
    finally:
        os.killpg(consumer.pid, 15)
        try:
            consumer.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(consumer.pid, 9)
            consumer.wait()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one round, smaller batches")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    sizes = (5_000, 50_000) if args.quick else (20_000, 200_000)
    map_size = 5_000 if args.quick else 20_000
    measured = {"autocron": [], "huey": [], "ppe": []}
    for number in range(1, rounds + 1):
        for name, run in (("autocron", lambda: measure_autocron(sizes, map_size)),
                          ("huey", lambda: measure_huey(map_size)),
                          ("ppe", lambda: measure_ppe(sizes, map_size))):
            print(f"round {number}/{rounds}: {name} ...", file=sys.stderr, flush=True)
            measured[name].append(run())
            print(f"  {measured[name][-1]}", file=sys.stderr, flush=True)
    labels = {"autocron": "autocron", "huey": "huey", "ppe": "ProcessPoolExecutor"}
    keys = ["map"] + [f"depth {size}" for size in sizes] + ["async"]

    def median(name, key):
        values = [m[key] for m in measured[name] if key in m]
        return statistics.median(values) if values else None

    print(f"# Batches and depth ({rounds} round(s), {WORKERS} workers, Python "
          f"{sys.version.split()[0]})\n")
    print("| library | " + " | ".join(f"{k} (/s)" for k in keys) + " | deep/shallow |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name in measured:
        cells = [f"{median(name, k):,.0f}" if median(name, k) else "-" for k in keys]
        deep, shallow = median(name, keys[2]), median(name, keys[1])
        ratio = f"{deep / shallow:.2f}x" if deep and shallow else "-"
        print(f"| {labels[name]} | " + " | ".join(cells) + f" | {ratio} |")
    print("\nEvery round (autocron):", "; ".join(
        ", ".join(f"{k} {v:,.0f}" for k, v in m.items()) for m in measured["autocron"]))
    per_round = [m[keys[2]] / m[keys[1]] for m in measured["autocron"]]
    print("autocron deep/shallow per round:", ", ".join(f"{r:.2f}x" for r in per_round))
    print("\n## Goals\n")
    rate = median("autocron", "map")
    print(f"- {'PASS' if rate >= GOAL_MAP else 'FAIL'}: map() at least {GOAL_MAP:,} calls/s "
          f"(got {rate:,.0f})")
    ratio = statistics.median(per_round)
    print(f"- {'PASS' if ratio >= GOAL_DEPTH else 'FAIL'}: {sizes[1]:,} queued at least "
          f"{GOAL_DEPTH}x the rate at {sizes[0]:,} (median of the rounds: {ratio:.2f}x)")


if __name__ == "__main__":
    main()
