"""How large the write-ahead log (``<database>-wal``) grows under a deep queue.

A fresh two-worker pool on a fresh database; this process (the pool's owner)
enqueues N calls of ``_tasks_autocron.add`` as fast as it can, then waits until
every one has finished, then leaves the pool idle for a few seconds. A thread
samples the size of the ``-wal`` file every 5 ms (by ``stat`` only: opening and closing
a database's files in a process that has it open drops SQLite's POSIX locks,
which corrupts it). Prints one line per N::

    .venv/bin/python benchmarks/wal_size.py [N ...] [--autocron DIR]

``--autocron DIR`` measures the ``autocron.py`` in DIR (e.g. a copy of an
older version) instead of the working copy. This is a report, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORKERS = 2
IDLE = 5.0          # seconds the pool stays idle after the last result


class Sampler(threading.Thread):
    def __init__(self, database: str):
        super().__init__(daemon=True)
        self.database, self.stop = database, threading.Event()
        self.max_size = 0
        self.files = set()             # (name, inode) of the -wal and -shm files seen

    def run(self) -> None:
        while not self.stop.wait(0.005):
            try:
                size = os.path.getsize(self.database + "-wal")
            except OSError:
                size = 0
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):
                    self.files.add((suffix, os.stat(self.database + suffix).st_ino))
            self.max_size = max(self.max_size, size)


def measure(autocron, tasks, n: int) -> str:
    folder = tempfile.mkdtemp(prefix="autocron-wal-")
    database = os.path.join(folder, "autocron.db")
    autocron.start(database, workers=WORKERS)
    sampler = Sampler(database)
    try:
        tasks.add(0, 0).get(timeout=60)
        sampler.start()
        began = time.monotonic()
        results = [tasks.add(i, i) for i in range(n)]
        enqueued = time.monotonic() - began
        results[-1].get(timeout=600)
        store = autocron._state.store
        while store.read("SELECT count(*) FROM tasks WHERE finished IS NULL")[0][0]:
            time.sleep(0.1)
        done = time.monotonic() - began
        busy_max = sampler.max_size
        time.sleep(IDLE)
        idle_size = os.path.getsize(database + "-wal") if os.path.exists(database + "-wal") \
            else 0
        db_size = os.path.getsize(database)
        check = store.read("PRAGMA quick_check")[0][0]
    finally:
        sampler.stop.set()
        autocron.stop()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)
    mb = 1024 * 1024
    return (f"{n:>7} calls: enqueued in {enqueued:5.1f} s, all done in {done:5.1f} s; "
            f"-wal max {busy_max / mb:6.1f} MB; "
            f"-wal {idle_size / mb:5.1f} MB after {IDLE:g} s idle; database {db_size / mb:5.1f} MB"
            f"; quick_check {check}; -wal/-shm files {len(sampler.files)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[100_000, 200_000])
    parser.add_argument("--autocron", metavar="DIR", help="the folder of the autocron.py to "
                        "measure (default: the repository's)")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    sys.path.insert(0, os.path.abspath(args.autocron) if args.autocron else str(ROOT))
    import autocron
    import _tasks_autocron
    print(f"autocron from {autocron.__file__}", flush=True)
    for n in args.counts:
        print(measure(autocron, _tasks_autocron, n), flush=True)


if __name__ == "__main__":
    main()
