"""The PgQueuer consumer of postgres_bench.py: ``python -m _tasks_pgqueuer BATCH_SIZE``.

That runs ``factory`` the way ``pgq run _tasks_pgqueuer:factory --batch-size BATCH_SIZE``
does (``main`` below): PgQueuer's logger set up at INFO, then ``pgqueuer.run`` (the
supervisor behind ``pgq run``: SIGINT/SIGTERM stop it gracefully) with every other
argument at its default, on uvloop. The CLI itself cannot be used here: with the typer it
resolves to (0.29.2), ``pgq run`` fails before it starts, because its ``--log-level``
parser hands a ``str`` to ``setup_fancy_logger``, which expects a ``LogLevel``
(``AttributeError: 'str' object has no attribute 'name'``).

The benchmark sets, before it starts the consumers (they inherit the environment):

* ``PGQUEUER_SCHEMA``: the fresh schema of the round (read by PgQueuer's own settings);
* ``AUTOCRON_BENCH_PGQUEUER_DSN``: the server's URL, without autocron's ``?schema=``;
* ``AUTOCRON_BENCH_PGQUEUER_SETTINGS``: server settings for the connection, as
  ``name=value`` pairs separated by spaces (``synchronous_commit=on`` or ``off``, and an
  ``application_name`` by which the benchmark sees that the consumer has connected).

Each consumer is one process with one asyncpg connection (``AsyncpgDriver``), as PgQueuer's
documentation recommends for a QueueManager; ``pgq run`` runs it on uvloop. The job is
``add``: its payload is ``b"a,b"``; the sum is computed and dropped, as PgQueuer keeps no
results (the benchmark watches the job's status instead).
"""

import contextlib
import os
import sys

DSN_ENV = "AUTOCRON_BENCH_PGQUEUER_DSN"
SETTINGS_ENV = "AUTOCRON_BENCH_PGQUEUER_SETTINGS"


def server_settings(text: str) -> dict:
    """``"a=1 b=2"`` -> ``{"a": "1", "b": "2"}``."""
    return dict(pair.split("=", 1) for pair in text.split())


@contextlib.asynccontextmanager
async def factory():
    """A QueueManager over one asyncpg connection, with the entrypoint ``add``."""
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(
        os.environ[DSN_ENV], server_settings=server_settings(os.environ.get(SETTINGS_ENV, "")))
    try:
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("add")
        async def add(job) -> None:
            a, b = (int(x) for x in job.payload.split(b","))
            a + b

        yield manager
    finally:
        await connection.close()


def main() -> None:
    import uvloop
    import pgqueuer
    from pgqueuer.core.logconfig import LogLevel, setup_fancy_logger

    setup_fancy_logger(LogLevel.INFO)
    uvloop.run(pgqueuer.run(factory, batch_size=int(sys.argv[1])))


if __name__ == "__main__":
    main()
