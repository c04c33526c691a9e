"""Cron next-fire and parse throughput: autocron vs cronsim vs croniter.

What is measured
----------------
* Next-fire throughput.  For each expression of a fixed mix, build the
  iterator from 2024-01-01 00:00 (this includes parsing the expression) and
  take 300 successive fire times.  One warm-up run, then the median of 7
  timed runs (3 with ``--quick``); the libraries are interleaved within each
  repetition so machine drift affects them alike.  ``next/s = 300 / median``.
  This is done with a naive start and with an aware Europe/Berlin start.
  The aggregate per library and mode is ``2100 / sum of the 7 medians``.
* Parse throughput.  Time to construct each expression (2000 constructions
  per timing, median of 7 timings), reported as parses/s.  cronsim and
  croniter need a start time to construct, so they get the naive start.
* Correctness.  Before timing, the first 300 fire times of autocron are
  compared with cronsim's for every expression and mode; a mismatch prints a
  WARNING line but does not stop the run.

The library calls are:

* autocron: ``it = CronExpression(expr).iter(start)``, then ``next(it)``
* cronsim:  ``it = CronSim(expr, start)``, then ``next(it)``
* croniter: ``it = croniter(expr, start)``, then ``it.get_next(datetime)``

The output is a markdown report ending with a "goals" section (PASS/FAIL).
The exit code is 0 whatever the outcome: this is a report, not a test.

How to run (from the repository root)::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/cron_speed.py [--quick]

The repository root is put first on ``sys.path``, so the working copy of
``autocron.py`` is the one measured, wherever the script is run from.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from datetime import datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import autocron  # noqa: E402

try:
    from croniter import croniter
    from cronsim import CronSim
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f'{exc}; install the benchmark extra: pip install -e ".[bench]"')


MIX = (
    "* * * * *",
    "*/5 * * * *",
    "30 9 * * 1,3",
    "0 0 1 * *",
    "15,45 8-17 * * 1-5",
    "0 12 13 * 5",
    "0 0 29 2 *",
)
STARTS = {
    "naive": datetime(2024, 1, 1),
    "Europe/Berlin": datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")),
}
N_NEXT = 300
PARSE_COUNT = 2000
LIBS = ("autocron", "cronsim", "croniter")
PEERS = ("cronsim", "croniter")
GOAL_AGGREGATE = 30.0


# --- the code under measurement ---------------------------------------------

def autocron_times(expr, start, n):
    it = autocron.CronExpression(expr).iter(start)
    return [next(it) for _ in range(n)]


def cronsim_times(expr, start, n):
    it = CronSim(expr, start)
    return [next(it) for _ in range(n)]


def croniter_times(expr, start, n):
    it = croniter(expr, start)
    return [it.get_next(datetime) for _ in range(n)]


def autocron_parse(expr, start):
    return autocron.CronExpression(expr)


def cronsim_parse(expr, start):
    return CronSim(expr, start)


def croniter_parse(expr, start):
    return croniter(expr, start)


NEXT_RUNNERS = {
    "autocron": autocron_times,
    "cronsim": cronsim_times,
    "croniter": croniter_times,
}
PARSERS = {
    "autocron": autocron_parse,
    "cronsim": cronsim_parse,
    "croniter": croniter_parse,
}


def parse_many(parse, expr, start, count):
    for _ in range(count):
        parse(expr, start)


# --- timing ------------------------------------------------------------------

def timed(job):
    """Seconds taken by one call of ``job()``, with the GC off (like timeit)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        job()
        return time.perf_counter() - t0
    finally:
        if gc_was_enabled:
            gc.enable()


def median_times(jobs, reps, label):
    """Median seconds per job over ``reps`` interleaved rounds, after a warm-up.

    ``jobs`` maps a library name to a zero-argument callable.  A job that
    raises is reported and gets ``None``.
    """
    live = {}
    for name, job in jobs.items():
        try:
            job()
        except Exception as exc:
            print(f"WARNING: {name} failed on {label}: {exc!r}")
        else:
            live[name] = job
    samples = {name: [] for name in live}
    for _ in range(reps):
        for name, job in live.items():
            samples[name].append(timed(job))
    return {
        name: statistics.median(samples[name]) if name in samples else None
        for name in jobs
    }


def bench_next(start, mode, reps):
    """{expr: {lib: median seconds for N_NEXT fire times}} for one mode."""
    return {
        expr: median_times(
            {lib: partial(run, expr, start, N_NEXT) for lib, run in NEXT_RUNNERS.items()},
            reps,
            f"{expr!r} ({mode})",
        )
        for expr in MIX
    }


def bench_parse(reps):
    """{expr: {lib: median seconds for PARSE_COUNT constructions}}."""
    start = STARTS["naive"]
    return {
        expr: median_times(
            {lib: partial(parse_many, p, expr, start, PARSE_COUNT) for lib, p in PARSERS.items()},
            reps,
            f"parsing {expr!r}",
        )
        for expr in MIX
    }


def rates(medians, count):
    """Turn {expr: {lib: seconds}} into per-expression and aggregate rates/s."""
    per_expr = {
        expr: {lib: None if t is None else count / t for lib, t in libs.items()}
        for expr, libs in medians.items()
    }
    aggregate = {}
    for lib in LIBS:
        times = [medians[expr][lib] for expr in medians]
        aggregate[lib] = None if None in times else count * len(times) / sum(times)
    return per_expr, aggregate


# --- correctness ---------------------------------------------------------------

def check_agreement(expr, start, mode):
    """Warn when autocron's first N_NEXT fire times differ from cronsim's."""
    try:
        ours = autocron_times(expr, start, N_NEXT)
    except Exception as exc:
        print(f"WARNING: autocron raised on {expr!r} ({mode}): {exc!r}")
        return
    theirs = cronsim_times(expr, start, N_NEXT)
    if ours != theirs:
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        print(
            f"WARNING: autocron differs from cronsim on {expr!r} ({mode}) "
            f"at fire #{i + 1}: {ours[i]!s} != {theirs[i]!s}"
        )


# --- report --------------------------------------------------------------------

def ratio(a, b):
    return None if a is None or b is None else a / b


def fmt_rate(value):
    return "error" if value is None else f"{value:,.0f}"


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rate_row(label, libs):
    return [label, *(fmt_rate(libs[lib]) for lib in LIBS)] + [
        fmt_ratio(ratio(libs["autocron"], libs[peer])) for peer in PEERS
    ]


def rate_table(unit, per_expr, aggregate):
    headers = ["expression", *(f"{lib} {unit}" for lib in LIBS)]
    headers += [f"autocron/{peer}" for peer in PEERS]
    rows = [rate_row(f"`{expr}`", libs) for expr, libs in per_expr.items()]
    rows.append(rate_row("**aggregate**", aggregate))
    return markdown_table(headers, rows)


def version_of(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def print_header(reps):
    print("# Cron speed: autocron vs cronsim vs croniter\n")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}")
    print(f"- autocron from {autocron.__file__}")
    print(f"- cronsim {version_of('cronsim')}, croniter {version_of('croniter')}")
    print(f"- {N_NEXT} next times per run, median of {reps} runs after one warm-up; "
          f"parse: {PARSE_COUNT} constructions per timing, median of {reps} timings\n")


def goal_line(ok, text):
    return f"- {'PASS' if ok else 'FAIL'}: {text}"


def print_goals(naive_per_expr, naive_agg, parse_agg):
    agg = ratio(naive_agg["autocron"], naive_agg["cronsim"])
    per_expr = {e: ratio(libs["autocron"], libs["cronsim"]) for e, libs in naive_per_expr.items()}
    slow = [e for e, r in per_expr.items() if r is None or r < 1.0]
    known = [r for r in per_expr.values() if r is not None]
    worst = min(known) if known else None
    parse = ratio(parse_agg["autocron"], parse_agg["cronsim"])

    print("\n## Goals\n")
    print(goal_line(agg is not None and agg >= GOAL_AGGREGATE,
                    f"naive aggregate >= {GOAL_AGGREGATE:.0f}x cronsim (got {fmt_ratio(agg)})"))
    detail = f"worst {fmt_ratio(worst)}" + (f"; slower: {', '.join(map(repr, slow))}" if slow else "")
    print(goal_line(not slow, f"no naive expression slower than cronsim ({detail})"))
    print(goal_line(parse is not None and parse >= 1.0,
                    f"parse no slower than cronsim (aggregate {fmt_ratio(parse)})"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    reps = 3 if parser.parse_args(argv).quick else 7

    print_header(reps)
    for mode, start in STARTS.items():
        for expr in MIX:
            check_agreement(expr, start, mode)

    results = {}
    for mode, start in STARTS.items():
        results[mode] = rates(bench_next(start, mode, reps), N_NEXT)
        print(f"\n## Next-fire throughput, {mode} start (next/s)\n")
        print(rate_table("next/s", *results[mode]))

    parse_per_expr, parse_agg = rates(bench_parse(reps), PARSE_COUNT)
    print("\n## Parse throughput (parses/s)\n")
    print(rate_table("parses/s", parse_per_expr, parse_agg))

    print_goals(*results["naive"], parse_agg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
