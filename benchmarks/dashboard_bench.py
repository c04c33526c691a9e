"""The dashboard at size: autocron's pages against rq-dashboard's, 100,000 results stored.

What is measured
----------------
1. autocron: N results (100,000; ``--quick``: 20,000) of the trivial task ``add(a, b)``,
   run for real by a pool of 2 workers from one ``add.map()``, and one cron job.  The
   dashboard is ``python autocron.py --db DB dashboard``, a process of its own, as a user
   runs it (the pool has stopped: the pages read what is stored, nothing competes).  On
   SQLite, and on PostgreSQL too with ``--url``; there the tables are analysed first, as
   autovacuum does within a minute of such a burst (before that, the planner has no
   statistics of the new rows and the overview takes about 3x as long).
2. rq-dashboard: N jobs of the same ``add`` run for real by 2 RQ ``SimpleWorker``
   processes (burst mode) on a private ``redis-server``, their results kept; the dashboard
   is the ``rq-dashboard`` command.  Left out, with the reason printed, when
   ``redis-server`` or rq-dashboard is not installed.

Every page is fetched over HTTP with urllib, the way a browser asks for it.  "first" is the
first request a fresh dashboard process answers (its overview: nothing cached, no
connection open); then each page is fetched 20 times and the table shows the median and
the slowest.  rq-dashboard builds a page from an HTML shell and the JSON its script fetches
next, so a view of it is the sum of both (its static CSS and JavaScript, 600 kB that a
browser caches, are not counted; autocron's pages have none).

The views: the overview; the newest tasks (finished jobs in rq-dashboard, its largest
list); a filter that matches nothing (status "cancelled" and an unknown function, the
worst case of autocron's newest-first walk: it reads every row); one task; the cron jobs
and the pool (autocron only).  Goal (issue 13): the first view well under a second with
100,000 results stored.

How to run (from the repository root; ``apt-get install redis-server`` for the peer)::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/dashboard_bench.py [--quick] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first
    sys.path.insert(0, str(_folder))

WORKERS = 2
REPEATS = 20            # requests of each page after the first
GOAL_FIRST_S = 1.0      # the first view, with N results stored
READY_TIMEOUT = 60.0    # seconds for a server to answer
FILL_TIMEOUT = 1800.0   # seconds for N tasks to run
CRON_JOB = """
import autocron


@autocron.cron("*/5 * * * *")
def report():
    return "report"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Keeps the cookie that autocron's dashboard sets for the token of the address it prints.
OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())


def fetch(url: str) -> tuple:
    """(seconds, bytes) of one GET; the page must answer 200."""
    began = time.perf_counter()
    with OPENER.open(url, timeout=60) as answer:
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{url} answered {answer.status}")
    return time.perf_counter() - began, len(body)


def wait_for(url: str, process: subprocess.Popen) -> None:
    """Until the server answers at all (a connection, whatever the page says)."""
    parts = urllib.parse.urlsplit(url)
    end = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server ended: {process.stderr.read()}")
        try:
            with socket.create_connection((parts.hostname, parts.port), 1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} in {READY_TIMEOUT:g} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


class View:
    """One view of a dashboard: the URLs a browser fetches for it, timed together."""

    def __init__(self, name: str, *urls: str):
        self.name, self.urls = name, urls

    def time(self) -> tuple:
        """(seconds, bytes) of the view."""
        results = [fetch(url) for url in self.urls]
        return sum(s for s, _ in results), sum(b for _, b in results)

    def measure(self) -> dict:
        times, size = [], 0
        for _ in range(REPEATS):
            seconds, size = self.time()
            times.append(seconds)
        return {"median": statistics.median(times), "max": max(times), "bytes": size}


# ---- autocron -------------------------------------------------------------------------------


def fill_autocron(database: str, count: int, folder: Path) -> float:
    """Run `count` add() tasks and register a cron job; tasks/s of the run."""
    (folder / "bench_cron_job.py").write_text(CRON_JOB)
    code = f"""
import sys, time
sys.path[:0] = [{str(folder)!r}, {str(BENCH_DIR)!r}, {str(ROOT)!r}]
import autocron, _tasks_autocron, bench_cron_job
autocron.start(sys.argv[1], workers={WORKERS})
began = time.perf_counter()
results = _tasks_autocron.add.map(range({count}), range({count}))
assert results[-1].get(timeout={FILL_TIMEOUT}) == 2 * ({count} - 1)
while autocron.get_results(limit=1, status="waiting"):
    time.sleep(0.05)
print({count} / (time.perf_counter() - began))
autocron.stop()
"""
    done = subprocess.run([sys.executable, "-c", code, database], capture_output=True,
                          text=True, timeout=FILL_TIMEOUT + 60, cwd=folder)
    if done.returncode:
        raise RuntimeError(f"filling the database failed: {done.stderr}")
    return float(done.stdout.split()[-1])


@contextlib.contextmanager
def autocron_dashboard(database: str) -> Iterator[str]:
    """The dashboard's address, signed in: the token of the address it prints (once it
    listens) kept as a cookie, through a page that reads nothing (the first view stays
    the first)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "autocron.py"), "--db", database,
                                "dashboard", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        printed = re.search(r" at (http://\S+) ", process.stdout.readline())
        if printed is None:
            raise RuntimeError(f"the dashboard did not start: {process.stderr.read()}")
        base, _, query = printed.group(1).partition("?")
        OPENER.open(f"{base}favicon.ico?{query}", timeout=60).close()
        yield base
    finally:
        stop(process)


def autocron_views(base: str) -> list:
    with OPENER.open(base + "tasks", timeout=60) as answer:
        newest = re.search(r"data-task-id='([^']+)'", answer.read().decode()).group(1)
    views = [View("overview", base), View("tasks, newest 50", base + "tasks"),
             View("tasks, a status none has", base + "tasks?status=cancelled"),
             View("tasks, a function none has", base + "tasks?function=nothing.here"),
             View("one task", base + f"task/{newest}"), View("cron jobs", base + "crons"),
             View("pool", base + "pool")]
    return views


def run_autocron(database: str, count: int, folder: Path, settle=None) -> tuple:
    """(fill tasks/s, figures) of one autocron database; `settle` runs between the two."""
    rate = fill_autocron(database, count, folder)
    if settle is not None:
        settle()
    with autocron_dashboard(database) as base:
        first = View("first", base)
        figures = {"first": first.time()[0]}   # before anything else is asked
        for view in autocron_views(base):
            figures[view.name] = view.measure()
    return rate, figures


# ---- rq-dashboard ---------------------------------------------------------------------------


def rq_missing() -> Optional[str]:
    if shutil.which("redis-server") is None:
        return "no redis-server (apt-get install redis-server)"
    bin_folder = Path(sys.executable).parent
    for module, command in (("rq", "rq"), ("rq_dashboard", "rq-dashboard")):
        try:
            __import__(module)
        except ImportError as error:
            return f"{module} cannot be imported ({error}): pip install -e '.[bench]'"
        if not (bin_folder / command).exists():
            return f"no {bin_folder / command}"
    return None


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(f"http://127.0.0.1:{port}/", process)
        yield url
    finally:
        stop(process)


def fill_rq(url: str, count: int) -> float:
    """Enqueue `count` add() jobs (results kept for a day) and run them with WORKERS burst
    SimpleWorkers; tasks/s from the first enqueue to the last result."""
    from redis import Redis
    from rq import Queue
    import _tasks_plain
    connection = Redis.from_url(url)
    queue = Queue("default", connection=connection)
    began = time.perf_counter()
    for start in range(0, count, 1000):
        queue.enqueue_many([Queue.prepare_data(_tasks_plain.add, (i, i), result_ttl=86400)
                            for i in range(start, min(count, start + 1000))])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(ROOT)]))
    workers = [subprocess.Popen([str(Path(sys.executable).parent / "rq"), "worker", "--burst",
                                 "--quiet", "--worker-class", "rq.worker.SimpleWorker",
                                 "--url", url, "default"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(WORKERS)]
    for worker in workers:
        _, errors = worker.communicate(timeout=FILL_TIMEOUT)
        if worker.returncode:
            raise RuntimeError(f"an rq worker failed: {errors}")
    finished = queue.finished_job_registry.count
    if finished != count:
        raise RuntimeError(f"{finished} of {count} rq jobs finished")
    return count / (time.perf_counter() - began)


def run_rq(count: int, folder: Path) -> tuple:
    """(fill tasks/s, figures) of rq-dashboard."""
    with redis_server(folder) as url:
        rate = fill_rq(url, count)
        from redis import Redis
        from rq import Queue
        newest = Queue("default", connection=Redis.from_url(url)) \
            .finished_job_registry.get_job_ids(0, 0)[0]
        port = free_port()
        process = subprocess.Popen([str(Path(sys.executable).parent / "rq-dashboard"),
                                    "--redis-url", url, "--port", str(port), "--bind",
                                    "127.0.0.1"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}/"
            wait_for(base, process)
            overview = View("overview", base, base + "0/data/queues.json",
                            base + "0/data/workers.json")
            figures = {"first": overview.time()[0]}
            listing = "0/view/jobs/default/finished/50/desc/1"
            views = [overview,
                     View("tasks, newest 50", base + listing,
                          base + "0/data/jobs/default/finished/50/desc/1.json"),
                     View("one task", base + f"0/view/job/{newest}",
                          base + f"0/data/job/{newest}.json")]
            for view in views:
                figures[view.name] = view.measure()
        finally:
            stop(process)
    return rate, figures


# ---- the report -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(count: int, runs: dict) -> None:
    names = []
    for _, figures in runs.values():
        names += [name for name in figures if name != "first" and name not in names]
    print(f"\n## The dashboard with {count:,} results stored (ms: median / slowest of "
          f"{REPEATS}; kB of the answer)\n")
    print("| view | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    print("| first view (a fresh server) | " + " | ".join(
        ms(figures["first"]) for _, figures in runs.values()) + " |")
    for name in names:
        cells = []
        for _, figures in runs.values():
            figure = figures.get(name)
            cells.append("-" if figure is None else
                         f"{ms(figure['median'])} / {ms(figure['max'])} "
                         f"({figure['bytes'] / 1024:.0f} kB)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| filling: tasks/s | " + " | ".join(f"{rate:,.0f}" for rate, _ in runs.values())
          + " |")
    peer = runs.get("rq-dashboard")
    for label, (_, figures) in runs.items():
        if label == "rq-dashboard":
            continue
        verdict = "PASS" if figures["first"] < GOAL_FIRST_S else "FAIL"
        print(f"\n{label}: first view {ms(figures['first'])} ms, goal < "
              f"{GOAL_FIRST_S * 1000:.0f} ms: {verdict}")
        if peer:
            for name in ("overview", "tasks, newest 50", "one task"):
                print(f"  {name}: rq-dashboard's median / autocron's = "
                      f"{peer[1][name]['median'] / figures[name]['median']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 results, not 100,000")
    parser.add_argument("--count", type=int, help="this many results")
    parser.add_argument("--no-peer", action="store_true", help="leave rq-dashboard out (for "
                        "a size it would take long to fill)")
    parser.add_argument("--url", help="also measure autocron on this PostgreSQL database "
                        "(a schema of its own, dropped afterwards)")
    args = parser.parse_args()
    count = args.count or (20_000 if args.quick else 100_000)
    folder = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    runs = {}
    try:
        runs["autocron (SQLite)"] = run_autocron(str(folder / "bench.db"), count, folder)
        if args.url:
            from postgres_bench import fresh_name, run_sql, with_schema
            schema = fresh_name("dashboard")
            try:
                runs["autocron (PostgreSQL)"] = run_autocron(
                    with_schema(args.url, schema), count, folder,
                    lambda: run_sql(args.url, f"VACUUM ANALYZE {schema}.tasks"))
            finally:
                run_sql(args.url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        missing = "--no-peer" if args.no_peer else rq_missing()
        if missing:
            print(f"rq-dashboard left out: {missing}")
        else:
            runs["rq-dashboard"] = run_rq(count, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(count, runs)


if __name__ == "__main__":
    main()
