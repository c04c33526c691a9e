"""The huey instance and task of tasks_bench.py and postgres_bench.py.

The SQLite file comes from the environment variable below, so that the
benchmark and the consumer subprocess it starts
(``python -m huey.bin.huey_consumer _tasks_huey.huey ...``) use the same file.
With ``AUTOCRON_BENCH_HUEY_DSN`` set (postgres_bench.py) it is a PostgresHuey on
that server instead, with the table prefix in ``AUTOCRON_BENCH_HUEY_PREFIX``.
The benchmark sets the variables and (re)loads this module once per round.
"""

import os

from huey import PostgresHuey, SqliteHuey

DB_ENV = "AUTOCRON_BENCH_HUEY_DB"

if os.environ.get("AUTOCRON_BENCH_HUEY_DSN"):
    huey = PostgresHuey(name="bench", dsn=os.environ["AUTOCRON_BENCH_HUEY_DSN"],
                        table_prefix=os.environ["AUTOCRON_BENCH_HUEY_PREFIX"])
else:
    huey = SqliteHuey(name="bench", filename=os.environ[DB_ENV])


@huey.task()
def add(a, b):
    return a + b
