"""The huey instance and task of tasks_bench.py.

The SQLite file comes from the environment variable below, so that the
benchmark and the consumer subprocess it starts
(``python -m huey.bin.huey_consumer _tasks_huey.huey ...``) use the same file.
The benchmark sets the variable and (re)loads this module once per round.
"""

import os

from huey import SqliteHuey

DB_ENV = "AUTOCRON_BENCH_HUEY_DB"

huey = SqliteHuey(name="bench", filename=os.environ[DB_ENV])


@huey.task()
def add(a, b):
    return a + b
