"""The autocron tasks of tasks_bench.py.

autocron's worker processes import this module by name, with the caller's
working directory and ``sys.path``; the benchmark puts this folder on the path.
``import autocron`` binds to the first ``autocron.py`` on the path, and the
workers import the one their pool's owner runs (``autocron_file`` tells which).
"""

import autocron


@autocron.delay
def add(a, b):
    return a + b


@autocron.delay
def autocron_file():
    return autocron.__file__


@autocron.delay
async def async_add(a, b):
    return a + b


@autocron.delay
def nap(i, seconds):
    """A task that waits, as one that does I/O would (postgres_bench.py's machines)."""
    import time
    time.sleep(seconds)
    return 2 * i
