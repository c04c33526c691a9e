"""The autocron task of tasks_bench.py.

autocron's worker processes import this module by name, with the caller's
working directory and ``sys.path``; the benchmark puts this folder on the path.
"""

import autocron


@autocron.delay
def add(a, b):
    return a + b
