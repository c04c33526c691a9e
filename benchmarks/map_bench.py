"""map() on SQLite: how fast it stores calls, and what it costs the caller's memory.

What is measured
----------------
1. Rate: ``add.options(hours=1).map(range(N), range(N))`` with a pool of 2 workers running
   (the calls are due in an hour, so the pool stays idle), N = 3,000 and 100,000; calls/s is
   N over the time map() takes, Results made. Beside it, in the same rounds: raw ``sqlite3``
   ``executemany`` of rows alike (the same columns, a pickled record of the same size per
   row, consecutive ids) into a fresh file with the same settings (WAL, synchronous NORMAL),
   rows built inside the timing, one transaction: the ceiling of a durable batch insert in
   this Python.
2. Memory: in a fresh interpreter, ``map()`` of 1,000,000 calls (due in an hour) under
   ``tracemalloc``: the peak of memory allocated during the call, and what stays allocated
   after it (the Results), each divided by N.

Rounds are interleaved (autocron, raw; 5 rounds; ``--rounds``); the table shows the median
and the smallest and largest of the rounds.
"""

import argparse
import json
import os
import pickle
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import autocron                     # noqa: E402  (the module of this repository)
from _tasks_autocron import add     # noqa: E402

MEMORY = r'''
import json, os, sys, tempfile, tracemalloc
sys.path[:0] = sys.argv[1:3]
import autocron
from _tasks_autocron import add
count = int(sys.argv[3])
autocron.start(os.path.join(tempfile.mkdtemp(), "memory.db"), workers=1)
later = add.options(hours=1)
later.map(range(10), range(10))          # the first call's imports and caches, untraced
tracemalloc.start()
results = later.map(range(count), range(count))
current, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
assert len(results) == count
print(json.dumps({"peak": peak / count, "kept": current / count}))
autocron.stop()
'''


def autocron_rate(count: int) -> float:
    later = add.options(hours=1)
    began = time.perf_counter()
    results = later.map(range(count), range(count))
    elapsed = time.perf_counter() - began
    assert len(results) == count
    return count / elapsed


def raw_rate(folder: Path, count: int) -> float:
    """executemany of rows like autocron's into a fresh file with the same settings."""
    path = folder / f"raw-{time.monotonic_ns()}.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, args TEXT, record BLOB, "
                "token TEXT, name TEXT, status TEXT, priority INTEGER, queue TEXT, due REAL, "
                "created REAL)")
    record = pickle.dumps(("_tasks_autocron", "add", (1, 1), {}), 5)
    began = time.perf_counter()
    now = time.time()
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(i + 1, f"{i}, {i}", record, "0123456789abcdef", "add", "waiting", 0,
                      None, now + 3600, now) for i in range(count)])
    con.execute("COMMIT")
    elapsed = time.perf_counter() - began
    con.close()
    return count / elapsed


def memory(count: int) -> dict:
    done = subprocess.run([sys.executable, "-c", MEMORY, str(HERE.parent), str(HERE),
                           str(count)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the memory run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell(values: list, unit: str = "") -> str:
    return (f"{statistics.median(values):,.0f}{unit} "
            f"({min(values):,.0f} - {max(values):,.0f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1_000_000,
                        help="calls of the memory run (1,000,000)")
    args = parser.parse_args()
    sizes = (3_000, 100_000)
    rates: dict = {(who, n): [] for who in ("autocron", "raw") for n in sizes}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        autocron.start(folder / "map.db", workers=2)
        try:
            add.options(hours=1).map(range(100), range(100))      # warm
            for number in range(args.rounds):
                for n in sizes:
                    rates["autocron", n].append(autocron_rate(n))
                    rates["raw", n].append(raw_rate(folder, n))
                print(f"round {number + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            autocron.stop()
    kept = [memory(args.calls) for _ in range(min(args.rounds, 3))]
    print(f"map() on SQLite, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"SQLite {sqlite3.sqlite_version}; median (smallest - largest) of {args.rounds} "
          "interleaved rounds\n")
    print("| calls | autocron map(), calls/s | raw executemany, calls/s | ratio |")
    print("|---|---|---|---|")
    for n in sizes:
        ratios = [a / r for a, r in zip(rates["autocron", n], rates["raw", n])]
        print(f"| {n:,} | {cell(rates['autocron', n])} | {cell(rates['raw', n])} | "
              f"{statistics.median(ratios):.2f}x |")
    print(f"\nThe caller's memory while map() stores {args.calls:,} calls "
          f"({len(kept)} runs): peak {cell([k['peak'] for k in kept], ' B')} a call; "
          f"kept after (the Results) {cell([k['kept'] for k in kept], ' B')} a call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
