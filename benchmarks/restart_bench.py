"""PostgreSQL: the same pool before and after a restart of the server.

What is measured
----------------
One autocron pool (2 workers, ``synchronous="normal"``) on a fresh schema of the server given
by ``--url`` runs the mix of ``tasks_bench.py`` sections 1-3 (its functions do the measuring):

1. Throughput: enqueue 3,000 ``add(i, i)``, then wait for every result (tasks/s).
2. Enqueue rate: that loop alone (calls/s).
3. Idle latency: 60 calls, each after 20 ms of idleness, call then block (p50, p99 ms).

Three rounds, then ``--restart`` (a shell command that restarts the server: ``pg_ctl -D DATA
-m fast restart``, ``systemctl restart postgresql``) runs while the pool keeps running, then
three more rounds with the same pool: nothing is started again by hand. Between the two, the
recovery time: from the end of the restart command to the first call that completes (the
pool's connections, its LISTEN connection and its lease come back by themselves). The tables
show the medians before and after and their ratio (after / before; 1.00: the same).

``--quick``: one round each side, 500 tasks, 20 latency calls. The exit code is 0 whatever
the outcome: this is a report, not a test.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench,postgres]"
    .venv/bin/python benchmarks/restart_bench.py --url postgresql://user:password@host/db \\
        --restart "pg_ctl -D /path/to/data -m fast -w restart"
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import postgres_bench
import tasks_bench as bench
from tasks_bench import Measurement


def measure(client: bench.Client, sizes: bench.Sizes) -> list:
    rounds = []
    for _ in range(sizes.rounds):
        m = Measurement()
        bench.run_batch(client, sizes.tasks, m)
        bench.run_latency(client, sizes.latency_calls, m)
        rounds.append(m)
    return rounds


def recovery(client: bench.Client) -> float:
    """Seconds until a call completes again (a call made while the pool reconnects may
    raise DatabaseError: made again, as an application would)."""
    import autocron
    start = time.perf_counter()
    while True:
        try:
            bench.check(client.wait(client.submit(1, 1), bench.CALL_TIMEOUT), 1)
            return time.perf_counter() - start
        except autocron.DatabaseError:
            time.sleep(0.05)


def median(rounds: list, name: str) -> float:
    return statistics.median(getattr(m, name) for m in rounds)


def report(before: list, after: list, seconds: float, restart: str) -> None:
    print(f"restart command: {restart}")
    print(f"recovery: the first call completed {seconds:.2f} s after the restart command "
          "ended\n")
    print("| measure | before | after | after / before |")
    print("|---|---|---|---|")
    for name, label, digits in (("throughput", "end to end, tasks/s", 0),
                                ("enqueue", "enqueue, calls/s", 0),
                                ("p50", "idle latency p50, ms", 2),
                                ("p99", "idle latency p99, ms", 2)):
        b, a = median(before, name), median(after, name)
        print(f"| {label} | {b:,.{digits}f} | {a:,.{digits}f} | {a / b:.2f} |")
    print()
    for side, rounds in (("before", before), ("after", after)):
        print(f"{side}: " + "; ".join(
            f"{m.throughput:,.0f} tasks/s, {m.enqueue:,.0f} calls/s, p50 {m.p50:.2f} ms"
            for m in rounds))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True,
                        help="postgresql://user:password@host[:port]/database")
    parser.add_argument("--restart", required=True, help="a shell command that restarts "
                        "the server and returns once it accepts connections")
    parser.add_argument("--quick", action="store_true", help="one round each side")
    args = parser.parse_args(argv)
    sizes = bench.QUICK if args.quick else bench.FULL
    with postgres_bench.autocron_pool(args.url) as client:
        before = measure(client, sizes)
        subprocess.run(args.restart, shell=True, check=True)
        seconds = recovery(client)
        after = measure(client, sizes)
    report(before, after, seconds, args.restart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
