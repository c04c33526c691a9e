"""The plain task function of tasks_bench.py, for the ProcessPoolExecutor runs.

It lives in an importable module (not in the script, which runs as ``__main__``)
so that worker processes can find it by name.
"""


def add(a, b):
    return a + b
