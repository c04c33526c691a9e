"""The procrastinate app and task of postgres_bench.py.

Its workers run as ``python -m procrastinate --app=_tasks_procrastinate.app worker
--concurrency 1``. The benchmark sets, before it starts them (they inherit the environment)
and before it (re)loads this module itself, once per round:

* ``AUTOCRON_BENCH_PROCRASTINATE_DSN``: the server's URL, without autocron's ``?schema=``;
* ``AUTOCRON_BENCH_PROCRASTINATE_OPTIONS``: libpq ``options`` for every connection of the
  app: ``-c search_path=<fresh schema> -c synchronous_commit=on|off`` (procrastinate has
  no table prefix, so a schema of its own is chosen by ``search_path``, which every
  connection must carry: the producer's pool, the workers' pools and their LISTEN
  connections alike).

The task is ``async def add(a, b)``, like PgQueuer's; procrastinate stores no result.
"""

import os

import procrastinate

DSN_ENV = "AUTOCRON_BENCH_PROCRASTINATE_DSN"
OPTIONS_ENV = "AUTOCRON_BENCH_PROCRASTINATE_OPTIONS"

app = procrastinate.App(connector=procrastinate.PsycopgConnector(
    conninfo=os.environ.get(DSN_ENV, ""),
    kwargs={"options": os.environ.get(OPTIONS_ENV, "")}))


@app.task(name="add")
async def add(a, b):
    return a + b
