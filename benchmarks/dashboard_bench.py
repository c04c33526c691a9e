"""The dashboard at size: autocron's pages and GET /metrics against rq-dashboard and Flower.

What is measured
----------------
At each size N (``--sizes``, default 20,000, 100,000 and 200,000 results; ``--quick``:
20,000 only), for each system in turn: fill it with N results of the trivial task
``add(i, i)``, of which one call in 50 fails (``i % 50 == 7`` raises ValueError: the
failure tables have rows), then start its dashboard afresh and time its pages.  The task
is written into the run's temporary folder, in one module per system, the same body each.

1. autocron: the N calls stored by ``add.map()`` in pieces of 100 (the calls of one
   ``map()`` share the token their ids start with; pieces give the ids a few thousand
   tokens, as calls stored apart have), run for real by a pool of 2 workers, and one cron
   job.  The dashboard is ``python autocron.py --db DB dashboard``, a process of its own,
   as a user runs it (the pool has stopped: the pages read what is stored, nothing
   competes).  On SQLite, and on PostgreSQL too with ``--url`` (a schema of
   its own per size, dropped afterwards); there the table is analysed first, as
   autovacuum does within a minute of such a burst.  The ``autocron.py`` measured is a copy
   of the working file taken when the run starts (the fills and the dashboards import the
   copy): an edit of the working file during the run does not change what is measured, and
   the report says whether the file changed.
2. rq-dashboard: N jobs of the same ``add`` run for real by 2 RQ ``SimpleWorker`` processes
   (burst mode) on a private ``redis-server``, their results kept (the failures in rq's
   failed registry); the dashboard is the ``rq-dashboard`` command.  The fill ends when
   rq's registries hold every job; the workers are stopped then (a burst worker of rq 3.0
   lingers 60 s after its last job).
3. Flower: N calls of the same ``add`` sent with ``delay()`` to a Celery worker
   (``--concurrency 2``, prefork, task events on) through a private ``redis-server`` (the
   broker and the result backend: the worker stores the N results there too; the process
   that sends the calls has its backend off, so that it does not subscribe to each
   call's result).  Flower lists only
   the tasks whose events it received (its pages never read the result backend), so it
   runs during the fill (``--max_tasks`` N + 1,000, so that it forgets none;
   ``--persistent``), until it has seen every task end; then it is stopped, which saves
   what it saw, and a fresh Flower process loads that and is the one measured.

rq-dashboard and Flower are left out, with the reason printed, when ``redis-server`` or
their package is not installed (``--no-peer``: always).  A system that fails at a size is
left out of that size's table with its error printed; the run goes on.

The views, fetched over HTTP with urllib, the way a browser asks for them (autocron's page;
rq-dashboard's; Flower's; "-": the dashboard has no such view):

* overview: ``/``; ``/`` and its queues' and workers' JSON; ``/`` and its workers' JSON.
* tasks, newest 50: ``/tasks``; finished jobs, 50 (the HTML and its JSON); ``/tasks`` and
  its datatable's JSON, 50 rows, the newest received first.
* tasks, failed, function 'add': ``/tasks?status=error&function=add`` (a part of the
  function's name); failed jobs, 50 (it has no filter by function); its table searched
  for ``state:FAILURE name:add``.
* tasks, id prefix: ``/tasks?id=`` and the first 4 hex digits of the middle task's id (see
  below); -; its table searched for those 4 characters (a substring anywhere in a task).
* tasks, since 10 min: ``/tasks?since=`` and the local time 10 minutes before the views are
  timed (YYYY-MM-DDTHH:MM); -; ``/api/tasks?received_start=...&limit=50`` (its API: its
  pages have no such filter).
* one task: ``/task/<the middle task's id>``; the newest finished job (the HTML and its
  JSON); ``/task/<the middle task's id>``.
* cron jobs: ``/crons``; -; -.
* pool: ``/pool``; its workers (the HTML and its JSON); - (its overview is its workers).
* queues: ``/queues``; - (its overview is its queues); ``/broker``.
* GET /metrics: ``/metrics`` with the dashboard's token as Prometheus sends it (the header
  ``Authorization: Bearer <token>``, the token of the address the dashboard prints, no
  cookie); - (it has none); ``/metrics``.

The middle task is the call ``add(N // 2, N // 2)``.  A filtered list of autocron looks at
the 20,000 newest rows at most (``_DASH_SCAN``) and then offers to look further; with
20,000 results the id search finds the middle task's piece, with 100,000 and more that
piece is below the window and the page says "No match among the 20,000 rows above ...":
the walk of the whole window, the id search's worst case.

(The peers build a page from an HTML shell and the JSON its script fetches next; their view
is the sum of both.  Their static CSS and JavaScript, which a browser caches, are not
counted; autocron's pages have none.  Flower's task list shows 15 rows by default; it is
asked for 50, as autocron and rq-dashboard show.)  The first fetch of every view is checked
(a filter must find what it looks for, /metrics must show the ended calls, Flower must
hold the N tasks), so that a view that answers quickly because it found nothing is caught.

"first" is the first request a fresh dashboard process answers (its overview: nothing
cached, no connection open).  Then 20 rounds: each round fetches every view of that
dashboard once (the round's order rotated by one view each round, so that no view always
follows the same one), and the table shows each view's median and slowest of its 20.
Each system is filled and measured alone, one after the other (no two fills or
dashboards at once); a fill's burst is over before its dashboard starts.  Other load skews
the timings on a small machine: before the first request and after each round (outside the
timed requests) the script looks for pytest processes (``pgrep``), and a warning under a
size's table names the systems whose views ran beside one.

Each size's table also shows the fill's rate (tasks/s: N over the time from the first call
stored to the last one ended; Flower's: to the last end Flower has seen) and the seconds
the fill and the views took together.

Goals (issue 13, issue 25): the first view well under a second; a scrape of GET /metrics
under 50 ms with 100,000 results stored.  Views over 100 ms are listed after the tables.

How to run (from the repository root; ``apt-get install redis-server`` and ``pip install
flower`` for the peers)::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/dashboard_bench.py [--quick] [--sizes 20000,200000]
        [--url postgresql://...] [--no-peer]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _folder in (BENCH_DIR, ROOT):  # ROOT ends up first
    sys.path.insert(0, str(_folder))

WORKERS = 2
REPEATS = 20            # rounds after the first request: each view fetched once a round
SIZES = (20_000, 100_000, 200_000)
QUICK_SIZES = (20_000,)
FAIL_EVERY, FAIL_AT = 50, 7     # add(i, i) raises when i % 50 == 7
GOAL_FIRST_S = 1.0      # the first view, with N results stored
GOAL_METRICS_S = 0.050  # GET /metrics, with 100,000 results stored (issue 25)
GOAL_METRICS_AT = 100_000
SLOW_S = 0.100          # views slower than this (median) are listed
READY_TIMEOUT = 60.0    # seconds for a server to answer
FILL_TIMEOUT = 3600.0   # seconds for N tasks to run
SINCE_MINUTES = 10
TEST_PROCESSES = r"(-m pytest|bin/pytest|bin/py\.test)( |$)"    # pgrep -f: a test run
META = ("first", "busy")        # a run's figures that are not views
CHUNK = 100             # autocron's calls stored by one map() (they share a token)
AUTOCRON = "autocron"   # the labels of the systems, in the tables' order
SQLITE, POSTGRES = "autocron (SQLite)", "autocron (PostgreSQL)"
RQ, FLOWER = "rq-dashboard", "Flower"
CRON_JOB = """
import autocron


@autocron.cron("*/5 * * * *")
def report():
    return "report"
"""
ADD_BODY = f"""
    if a % {FAIL_EVERY} == {FAIL_AT}:
        raise ValueError(f"add({{a}}, {{b}}): one call in {FAIL_EVERY} fails")
    return a + b
"""
AUTOCRON_TASKS = "import autocron\n\n\n@autocron.delay\ndef add(a, b):" + ADD_BODY
PLAIN_TASKS = "def add(a, b):" + ADD_BODY
CELERY_TASKS = f"""
import os
from celery import Celery

app = Celery("dash_celery_tasks", broker=os.environ["DASH_BENCH_REDIS"],
             backend=os.environ["DASH_BENCH_REDIS"])
app.conf.update(worker_send_task_events=True, task_send_sent_event=True,
                worker_hijack_root_logger=False)


@app.task
def add(a, b):{ADD_BODY}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Keeps the cookie that autocron's dashboard sets for the token of the address it prints;
# GET /metrics goes without it (PLAIN), with the token as Prometheus sends it.
OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
PLAIN = urllib.request.build_opener()


class Page:
    """One URL of a view: its headers, and whether it goes without the cookie."""

    def __init__(self, url: str, headers: Optional[dict] = None):
        self.url, self.headers = url, headers or {}

    def get(self) -> tuple:
        """(seconds, body) of one GET; the page must answer 200."""
        request = urllib.request.Request(self.url, headers=self.headers)
        opener = PLAIN if self.headers else OPENER
        began = time.perf_counter()
        with opener.open(request, timeout=120) as answer:
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{self.url} answered {answer.status}")
        return time.perf_counter() - began, body


def wait_for(url: str, process: subprocess.Popen, log: Optional[Path] = None) -> None:
    """Until the server answers at all (a connection, whatever the page says); `log`: the
    file of its stderr, if not a pipe."""
    parts = urllib.parse.urlsplit(url)
    end = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < end:
        if process.poll() is not None:
            errors = log.read_text()[-3000:] if log else process.communicate()[1]
            raise RuntimeError(f"the server ended: {errors}")
        try:
            with socket.create_connection((parts.hostname, parts.port), 1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} in {READY_TIMEOUT:g} s")


def stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; a process started in a session of its
    own takes its group with it (a Celery worker's children)."""
    group = process.pid if getattr(process, "own_group", False) else None
    if process.poll() is None:
        process.terminate()
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    if group is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


@contextlib.contextmanager
def running(command: list, timeout: float = 60, **options) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(command, **options)
    process.own_group = options.get("start_new_session", False)
    try:
        yield process
    finally:
        stop(process, timeout)


class View:
    """One view of a dashboard: the pages a browser fetches for it, timed together.
    `expect`: text its first answer must hold (a check that it shows what was asked), or
    a tuple of texts, one of which it must hold."""

    def __init__(self, name: str, *pages, expect=None):
        self.name = name
        self.pages = [page if isinstance(page, Page) else Page(page) for page in pages]
        self.expect, self.times, self.size = expect, [], 0

    def time(self) -> float:
        """Seconds of the view; checked the first time."""
        answers = [page.get() for page in self.pages]
        self.size = sum(len(body) for _, body in answers)
        if self.expect is not None and not self.times:
            wanted = (self.expect,) if isinstance(self.expect, str) else self.expect
            if not any(text.encode() in body for text in wanted for _, body in answers):
                raise RuntimeError(f"{self.name}: {self.expect!r} is not in "
                                   f"{[page.url for page in self.pages]}")
        seconds = sum(s for s, _ in answers)
        self.times.append(seconds)
        return seconds

    def figure(self) -> dict:
        return {"median": statistics.median(self.times), "max": max(self.times),
                "bytes": self.size, "n": len(self.times)}


def measure(first: View, views: list) -> dict:
    """{"first": seconds, "busy": test processes seen, view: figure}: the first request of
    a fresh server, then REPEATS rounds of every view, the order rotated by one each round.
    Before the first request and after every round (not timed) it looks for test processes
    running beside it, whose load skews the timings."""
    print(f"[{time.strftime('%H:%M:%S')}]   the views ...", file=sys.stderr, flush=True)
    busy = busy_count()
    figures = {"first": first.time()}
    for round_ in range(REPEATS):
        shift = round_ % len(views)
        for view in views[shift:] + views[:shift]:
            view.time()
        busy = max(busy, busy_count())
    figures["busy"] = busy
    figures.update((view.name, view.figure()) for view in views)
    return figures


def busy_count() -> int:
    """How many pytest processes run (0 where pgrep is missing)."""
    if shutil.which("pgrep") is None:
        return 0
    return len(subprocess.run(["pgrep", "-f", TEST_PROCESSES], capture_output=True,
                              text=True).stdout.split())


def since_text() -> str:
    """Local time SINCE_MINUTES ago, as the dashboard's filter takes it."""
    return time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 60 * SINCE_MINUTES))


def failures(count: int) -> int:
    return len(range(FAIL_AT, count, FAIL_EVERY))


def run_python(code: str, args: list, folder: Path, env: Optional[dict] = None) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=FILL_TIMEOUT + 60, cwd=folder, env=env)
    if done.returncode:
        raise RuntimeError(f"a fill failed: {done.stderr[-3000:]}")
    return done.stdout


# ---- autocron -------------------------------------------------------------------------------


def autocron_copy(folder: Path) -> tuple:
    """(the copy's folder, its sha256) of the working autocron.py."""
    copy = folder / "autocron-copy"
    copy.mkdir()
    shutil.copyfile(ROOT / "autocron.py", copy / "autocron.py")
    return copy, hashlib.sha256((copy / "autocron.py").read_bytes()).hexdigest()


def fill_autocron(database: str, count: int, folder: Path, copy: Path) -> tuple:
    """Run `count` add() calls and register a cron job; (tasks/s, the middle task's id)."""
    code = f"""
import sys, time
sys.path[:0] = [{str(folder)!r}, {str(copy)!r}]
import autocron
assert autocron.__file__ == {str(copy / "autocron.py")!r}, autocron.__file__
import dash_autocron_tasks, bench_cron_job
autocron.start(sys.argv[1], workers={WORKERS})
began = time.perf_counter()
results = []
for start in range(0, {count}, {CHUNK}):
    part = range(start, min({count}, start + {CHUNK}))
    results += dash_autocron_tasks.add.map(part, part)
while autocron.get_results(limit=1, status="waiting") or \\
        autocron.get_results(limit=1, status="running"):
    time.sleep(0.2)
rate = {count} / (time.perf_counter() - began)
failed = len(autocron.get_results(status="error"))
assert failed == {failures(count)}, failed
print(rate, results[{count // 2}].uuid)
autocron.stop()
"""
    rate, middle = run_python(code, [database], folder).split()[-2:]
    return float(rate), middle


@contextlib.contextmanager
def autocron_dashboard(database: str, copy: Path) -> Iterator[tuple]:
    """(the dashboard's address, its token), signed in: the token of the address it prints
    (once it listens) kept as a cookie, through a page that reads nothing (the first view
    stays the first)."""
    with running([sys.executable, str(copy / "autocron.py"), "--db", database, "dashboard",
                  "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True) as process:
        printed = re.search(r" at (http://\S+) ", process.stdout.readline())
        if printed is None:
            raise RuntimeError(f"the dashboard did not start: {process.stderr.read()}")
        base, _, query = printed.group(1).partition("?")
        token = urllib.parse.parse_qs(query)["token"][0]
        OPENER.open(f"{base}favicon.ico?{query}", timeout=60).close()
        yield base, token


def autocron_views(base: str, token: str, middle: str) -> list:
    return [
        View("overview", base),
        View("tasks, newest 50", base + "tasks", expect="data-task-id="),
        View("tasks, failed, function 'add'", base + "tasks?status=error&function=add",
             expect="data-status='error'"),
        View("tasks, id prefix (4 hex)", base + f"tasks?id={middle[:4]}",
             expect=(f"data-task-id='{middle[:4]}", "No match among")),
        View(f"tasks, since {SINCE_MINUTES} min", base + f"tasks?since={since_text()}",
             expect="data-task-id="),
        View("one task", base + f"task/{middle}", expect=f"data-task-id='{middle}'"),
        View("cron jobs", base + "crons", expect="bench_cron_job.report"),
        View("pool", base + "pool"),
        View("queues", base + "queues"),
        View("GET /metrics", Page(base + "metrics", {"Authorization": f"Bearer {token}"}),
             expect='autocron_calls_ended_total{function="dash_autocron_tasks.add"'),
    ]


def run_autocron(database: str, count: int, folder: Path, copy: Path,
                 settle: Optional[Callable] = None) -> tuple:
    """(fill tasks/s, figures) of one autocron database; `settle` runs between the two."""
    rate, middle = fill_autocron(database, count, folder, copy)
    if settle is not None:
        settle()
    with autocron_dashboard(database, copy) as (base, token):
        figures = measure(View("first", base), autocron_views(base, token, middle))
    return rate, figures


# ---- rq-dashboard ---------------------------------------------------------------------------


def missing_modules(*pairs) -> Optional[str]:
    if shutil.which("redis-server") is None:
        return "no redis-server (apt-get install redis-server)"
    bin_folder = Path(sys.executable).parent
    for module, command, install in pairs:
        try:
            __import__(module)
        except ImportError as error:
            return f"{module} cannot be imported ({error}): {install}"
        if not (bin_folder / command).exists():
            return f"no {bin_folder / command}: {install}"
    return None


def rq_missing() -> Optional[str]:
    bench = "pip install -e '.[bench]'"
    return missing_modules(("rq", "rq", bench), ("rq_dashboard", "rq-dashboard", bench))


def flower_missing() -> Optional[str]:
    return missing_modules(("celery", "celery", "pip install -e '.[bench]'"),
                           ("flower", "celery", "pip install flower"))


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    port = free_port()
    with running(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE, text=True) as process:
        wait_for(f"http://127.0.0.1:{port}/", process)
        yield f"redis://127.0.0.1:{port}/0"


def peer_env(folder: Path, **more: str) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(BENCH_DIR)]), **more)


def fill_rq(url: str, count: int, folder: Path) -> float:
    """Enqueue `count` add() jobs (results kept for a day) and run them with WORKERS burst
    SimpleWorkers; tasks/s from the first enqueue to the last result."""
    from redis import Redis
    from rq import Queue
    sys.path.insert(0, str(folder))
    import dash_plain_tasks
    connection = Redis.from_url(url)
    queue = Queue("default", connection=connection)
    began = time.perf_counter()
    for start in range(0, count, 1000):
        queue.enqueue_many([Queue.prepare_data(dash_plain_tasks.add, (i, i), result_ttl=86400)
                            for i in range(start, min(count, start + 1000))])
    workers = [subprocess.Popen([str(Path(sys.executable).parent / "rq"), "worker", "--burst",
                                 "--quiet", "--worker-class", "rq.worker.SimpleWorker",
                                 "--url", url, "default"], env=peer_env(folder),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(WORKERS)]
    try:
        end = time.monotonic() + FILL_TIMEOUT
        while True:
            done = (queue.finished_job_registry.count, queue.failed_job_registry.count)
            if sum(done) >= count:
                break
            if any(worker.poll() for worker in workers) or time.monotonic() > end:
                raise RuntimeError(f"an rq worker failed: {done[0]} of {count} jobs "
                                   f"finished, {done[1]} failed")
            time.sleep(0.2)
        rate = count / (time.perf_counter() - began)
    finally:
        for worker in workers:      # a burst worker of rq 3.0 waits 60 s after its last job
            stop(worker)            # (in its pubsub's unsubscribe): SIGTERM ends it at once
    if done != (count - failures(count), failures(count)):
        raise RuntimeError(f"of {count} rq jobs, {done[0]} finished and {done[1]} failed")
    return rate


def run_rq(count: int, folder: Path, place: Path) -> tuple:
    """(fill tasks/s, figures) of rq-dashboard; the tasks' module in `folder`, Redis's in
    `place`."""
    with redis_server(place) as url:
        rate = fill_rq(url, count, folder)
        from redis import Redis
        from rq import Queue
        newest = Queue("default", connection=Redis.from_url(url)) \
            .finished_job_registry.get_job_ids(0, 0)[0]
        port = free_port()
        log = place / "rq-dashboard.log"    # it logs every request
        with open(log, "w") as errors, \
                running([str(Path(sys.executable).parent / "rq-dashboard"), "--redis-url", url,
                         "--port", str(port), "--bind", "127.0.0.1"],
                        stdout=subprocess.DEVNULL, stderr=errors) as process:
            base = f"http://127.0.0.1:{port}/"
            wait_for(base, process, log)

            def jobs(name: str, registry: str, expect: str) -> View:
                path = f"default/{registry}/50/desc/1"
                return View(name, base + f"0/view/jobs/{path}", base + f"0/data/jobs/{path}.json",
                            expect=expect)

            overview = View("overview", base, base + "0/data/queues.json",
                            base + "0/data/workers.json")
            views = [overview,
                     jobs("tasks, newest 50", "finished", '"id"'),
                     jobs("tasks, failed, function 'add'", "failed", "ValueError"),
                     View("one task", base + f"0/view/job/{newest}",
                          base + f"0/data/job/{newest}.json", expect=newest),
                     View("pool", base + "0/view/workers", base + "0/data/workers.json")]
            figures = measure(View("first", *overview.pages), views)
    return rate, figures


# ---- Flower -----------------------------------------------------------------------------


def flower_table(base: str, search: str, length: int = 50) -> Page:
    """The JSON of Flower's task table as its script asks for it: the default columns,
    newest received first, `length` rows of the tasks that match `search`."""
    columns = ("name", "uuid", "state", "received", "runtime", "worker")
    query = [("draw", "1"), ("start", "0"), ("length", str(length)),
             ("search[value]", search), ("order[0][column]", "3"), ("order[0][dir]", "desc")]
    query += [(f"columns[{i}][data]", name) for i, name in enumerate(columns)]
    return Page(f"{base}tasks/datatable?{urllib.parse.urlencode(query)}")


def flower_count(base: str, search: str) -> int:
    import json
    return json.loads(flower_table(base, search, 0).get()[1])["recordsFiltered"]


@contextlib.contextmanager
def flower(url: str, count: int, folder: Path, place: Path) -> Iterator[str]:
    """A Flower process of the Celery app (in `folder`), persistent in `place`; its
    address."""
    port, log = free_port(), place / "flower.log"
    with open(log, "a") as errors, \
            running([str(Path(sys.executable).parent / "celery"), "-A", "dash_celery_tasks",
                     "flower", f"--port={port}", "--address=127.0.0.1", "--persistent=True",
                     f"--db={place / 'flower.db'}", f"--max_tasks={count + 1000}",
                     "--logging=warning"], timeout=FILL_TIMEOUT, cwd=folder,
                    stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
                    env=peer_env(folder, DASH_BENCH_REDIS=url,
                                 FLOWER_UNAUTHENTICATED_API="true")) as process:
        base = f"http://127.0.0.1:{port}/"
        wait_for(base, process, log)
        yield base


def fill_flower(url: str, count: int, folder: Path, place: Path) -> tuple:
    """Send `count` add() calls to a Celery worker while Flower watches; (tasks/s from the
    first call sent until Flower has seen every one end, the middle task's id)."""
    env = peer_env(folder, DASH_BENCH_REDIS=url)
    with flower(url, count, folder, place) as base, \
            running([str(Path(sys.executable).parent / "celery"), "-A", "dash_celery_tasks",
                     "worker", "-E", "--pool", "prefork", "--concurrency", str(WORKERS),
                     "--loglevel", "ERROR", "-n", "dashbench@%h"], cwd=folder, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True) as worker:
        time.sleep(3)           # the worker's hello reaches Flower before the first call
        began = time.perf_counter()
        middle = run_python(f"""
import dash_celery_tasks
dash_celery_tasks.app.conf.result_backend = "disabled"  # no result subscription per call
ids = [dash_celery_tasks.add.delay(i, i).id for i in range({count})]
print(ids[{count // 2}])
""", [], folder, env).split()[-1]
        end = time.monotonic() + FILL_TIMEOUT
        while flower_count(base, "state:SUCCESS") + flower_count(base, "state:FAILURE") \
                < count:
            if worker.poll() is not None:
                raise RuntimeError("the Celery worker ended")
            if time.monotonic() > end:
                raise RuntimeError(f"Flower saw fewer than {count} tasks end")
            time.sleep(1)
        rate = count / (time.perf_counter() - began)
        seen = flower_count(base, "state:FAILURE")
        if seen != failures(count):
            raise RuntimeError(f"Flower saw {seen} of {failures(count)} failures")
    return rate, middle


def run_flower(count: int, folder: Path, place: Path) -> tuple:
    """(fill tasks/s, figures) of Flower; the tasks' module in `folder`, Redis's and
    Flower's files in `place`."""
    with redis_server(place) as url:
        rate, middle = fill_flower(url, count, folder, place)
        with flower(url, count, folder, place) as base:
            since = since_text().replace("T", " ")

            def table(name: str, shell: str, search: str, expect: str) -> View:
                return View(name, base + shell, flower_table(base, search), expect=expect)

            overview = View("overview", base, base + "workers?json=1")
            views = [
                overview,
                table("tasks, newest 50", "tasks", "", f'"recordsTotal": {count}'),
                table("tasks, failed, function 'add'", "tasks?state=FAILURE&name=add",
                      "state:FAILURE name:add", "ValueError"),
                table("tasks, id prefix (4 hex)", "tasks", middle[:4], middle[:4]),
                View(f"tasks, since {SINCE_MINUTES} min", base + "api/tasks?" +
                     urllib.parse.urlencode({"received_start": since, "limit": "50",
                                             "sort_by": "-received"}), expect='"uuid"'),
                View("one task", base + f"task/{middle}", expect=middle),
                View("queues", base + "broker"),
                View("GET /metrics", base + "metrics", expect="flower_events_total"),
            ]
            figures = measure(View("first", *overview.pages), views)
    return rate, figures


# ---- the report -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def cell(figure: Optional[dict]) -> str:
    if figure is None:
        return "-"
    return f"{ms(figure['median'])} / {ms(figure['max'])} ({figure['bytes'] / 1024:.0f} kB)"


def view_names(runs: dict) -> list:
    names = []
    for _, figures in runs.values():
        names += [name for name in figures if name not in META and name not in names]
    return names


def report(count: int, runs: dict, fill_seconds: dict) -> None:
    if not runs:
        print(f"\n## {count:,} results stored: nothing was measured")
        return
    print(f"\n## The dashboards with {count:,} results stored ({failures(count):,} of them "
          f"failures; ms: median / slowest of {REPEATS}; kB of the answer)\n")
    print("| view | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    print("| first view (a fresh server) | " + " | ".join(
        ms(figures["first"]) for _, figures in runs.values()) + " |")
    for name in view_names(runs):
        print(f"| {name} | " + " | ".join(cell(figures.get(name))
                                          for _, figures in runs.values()) + " |")
    print("| filling: tasks/s | " + " | ".join(f"{rate:,.0f}" for rate, _ in runs.values())
          + " |")
    print("| filling and timing: s | " + " | ".join(f"{fill_seconds[label]:,.0f}"
                                                      for label in runs) + " |")
    busy = [label for label, (_, figures) in runs.items() if figures["busy"]]
    if busy:
        print(f"\nWarning: pytest processes ran during the views of {', '.join(busy)} (up "
              f"to {max(runs[label][1]['busy'] for label in busy)} at once): their timings "
              "are skewed by that load.")
    ours = [label for label in runs if label.startswith(AUTOCRON)]
    peers = [label for label in runs if not label.startswith(AUTOCRON)]
    if ours and peers:
        pairs = [(a, p) for a in ours for p in peers]
        print(f"\nRatios of the medians, autocron / peer (below 1: autocron is faster), "
              f"{count:,} results:\n")
        print("| view | " + " | ".join(f"{a[len(AUTOCRON) + 2:-1]} / {p}" for a, p in pairs)
              + " |")
        print("|---|" + "---|" * len(pairs))
        for name in ["first"] + view_names(runs):
            cells = []
            for a, p in pairs:
                mine, theirs = runs[a][1].get(name), runs[p][1].get(name)
                if mine is None or theirs is None:
                    cells.append("-")
                elif name == "first":
                    cells.append(f"{mine / theirs:.2f}")
                else:
                    cells.append(f"{mine['median'] / theirs['median']:.2f}")
            if any(c != "-" for c in cells):
                print(f"| {'first view' if name == 'first' else name} | " + " | ".join(cells)
                      + " |")
    for label in ours:
        figures = runs[label][1]
        verdict = "PASS" if figures["first"] < GOAL_FIRST_S else "FAIL"
        print(f"\n{label}: first view {ms(figures['first'])} ms, goal < "
              f"{GOAL_FIRST_S * 1000:.0f} ms: {verdict}")
    slow = [(label, name, figure["median"]) for label, (_, figures) in runs.items()
            for name, figure in figures.items()
            if name not in META and figure["median"] > SLOW_S]
    print(f"\nViews over {SLOW_S * 1000:.0f} ms (median) with {count:,} results: " +
          ("; ".join(f"{label}: {name} {ms(s)} ms" for label, name, s in slow) or "none"))


def metrics_report(all_runs: dict) -> None:
    labels = []
    for runs in all_runs.values():
        labels += [label for label, (_, figures) in runs.items()
                   if "GET /metrics" in figures and label not in labels]
    if not labels:
        return
    print(f"\n## GET /metrics (ms: median / slowest of {REPEATS}; kB of the answer)\n")
    print("| results stored | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for count, runs in all_runs.items():
        print(f"| {count:,} | " + " | ".join(
            cell(runs[label][1].get("GET /metrics")) if label in runs else "-"
            for label in labels) + " |")
    for label in labels:
        if not label.startswith(AUTOCRON):
            continue
        at = all_runs.get(GOAL_METRICS_AT, {}).get(label)
        if at is None:
            print(f"\n{label}: GET /metrics not measured at {GOAL_METRICS_AT:,} results "
                  f"(the goal's size)")
            continue
        median = at[1]["GET /metrics"]["median"]
        verdict = "PASS" if median < GOAL_METRICS_S else "FAIL"
        print(f"\n{label}: GET /metrics with {GOAL_METRICS_AT:,} results {ms(median)} ms "
              f"(median), goal < {GOAL_METRICS_S * 1000:.0f} ms: {verdict}")


def busy_note() -> str:
    """A warning if test processes run (their load skews the timings)."""
    count = busy_count()
    return f"Warning: {count} pytest processes are running: the timings may be skewed." \
        if count else ""


def sizes_arg(text: str) -> tuple:
    sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 2 * FAIL_EVERY:
        raise argparse.ArgumentTypeError(f"sizes must be numbers of {2 * FAIL_EVERY} or more, "
                                         f"comma-separated, got {text!r}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=sizes_arg, help="results stored, comma-separated "
                        "(default: " + ",".join(map(str, SIZES)) + ")")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SIZES[0]:,} results only")
    parser.add_argument("--no-peer", action="store_true", help="leave rq-dashboard and "
                        "Flower out (for a size they would take long to fill)")
    parser.add_argument("--url", help="also measure autocron on this PostgreSQL database "
                        "(a schema of its own per size, dropped afterwards)")
    args = parser.parse_args()
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    began = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    all_runs: dict = {}
    try:
        copy, digest = autocron_copy(folder)
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--",
                                "autocron.py"]).returncode
        print(f"# dashboard_bench: sizes {', '.join(f'{n:,}' for n in sizes)}; autocron.py "
              f"of {head}{' with uncommitted changes' if dirty else ''} (sha256 "
              f"{digest[:12]}, copied at the start); Python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs", flush=True)
        busy = busy_note()
        if busy:
            print(busy, flush=True)
        for name, text in (("bench_cron_job.py", CRON_JOB),
                           ("dash_autocron_tasks.py", AUTOCRON_TASKS),
                           ("dash_plain_tasks.py", PLAIN_TASKS),
                           ("dash_celery_tasks.py", CELERY_TASKS)):
            (folder / name).write_text(text)
        peers = {RQ: rq_missing, FLOWER: flower_missing}
        left_out = {label: "--no-peer" if args.no_peer else check()
                    for label, check in peers.items()}
        for label, why in left_out.items():
            if why:
                print(f"{label} left out: {why}", flush=True)
        for count in sizes:
            runs, seconds = {}, {}
            place = folder / str(count)
            place.mkdir()

            def attempt(label: str, run: Callable) -> None:
                started = time.monotonic()
                print(f"[{time.strftime('%H:%M:%S')}] {label}, {count:,} results ...",
                      file=sys.stderr, flush=True)
                try:
                    runs[label] = run()
                except Exception as error:     # noqa: BLE001 (a report, not a test)
                    print(f"{label} left out at {count:,} results: "
                          f"{type(error).__name__}: {error}", flush=True)
                seconds[label] = time.monotonic() - started

            attempt(SQLITE, lambda: run_autocron(str(place / "bench.db"), count, folder,
                                                 copy))
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.remove(place / f"bench.db{suffix}")
            if args.url:
                from postgres_bench import fresh_name, run_sql, with_schema
                schema = fresh_name("dashboard")
                try:
                    attempt(POSTGRES, lambda: run_autocron(
                        with_schema(args.url, schema), count, folder, copy,
                        lambda: run_sql(args.url, f"VACUUM ANALYZE {schema}.tasks")))
                finally:
                    run_sql(args.url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            if not left_out[RQ]:
                attempt(RQ, lambda: run_rq(count, folder, place))
            if not left_out[FLOWER]:
                attempt(FLOWER, lambda: run_flower(count, folder, place))
            shutil.rmtree(place, ignore_errors=True)
            all_runs[count] = runs
            report(count, runs, seconds)
            sys.stdout.flush()
        metrics_report(all_runs)
        changed = hashlib.sha256((ROOT / "autocron.py").read_bytes()).hexdigest() != digest
        busy = busy_note()
        if busy:
            print(f"\n{busy} (at the end)")
        print(f"\nThe run took {(time.monotonic() - began) / 60:.1f} minutes." +
              (" The working autocron.py changed during the run; the copy taken at the "
               "start was measured." if changed else ""))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
