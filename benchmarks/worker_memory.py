"""Memory of one worker process: autocron's against ProcessPoolExecutor's.

What is measured
----------------
Each subject runs in a fresh interpreter (the one running this script) that starts a pool of
2 workers, sends 40 trivial calls ``add(i, i)`` through it and waits for every result; then
the resident set size (VmRSS in /proc) of each worker process is read, and the pool stopped.
A cell is the median of the workers' sizes over the rounds, with the smallest and largest.

* autocron, bytecode cached: ``autocron.py`` copied alone into a fresh folder and compiled
  there first (``py_compile``), so that a process loading it finds its ``.pyc``.
* autocron, no bytecode: the same copy without its ``.pyc``, with ``PYTHONDONTWRITEBYTECODE``
  set, as in a container image that sets it or a read-only install: a process that loads the
  file compiles it.
* ProcessPoolExecutor, spawn and fork: ``concurrent.futures.ProcessPoolExecutor(2)`` with
  that start method. A forked worker's size counts the pages it shares with its parent.
* With ``--baseline PATH``: the ``autocron.py`` at PATH (an older version, say) as well, in
  both ways.

The subjects are interleaved, round after round (3 rounds; ``--rounds N``). The calls' module
is a file beside the copy, so that every worker imports the same small module.
"""

import argparse
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = '''
import autocron


@autocron.delay
def add(a, b):
    return a + b


def plain_add(a, b):
    return a + b
'''

# What runs in the fresh interpreter: argv[1] is the subject, argv[2] the folder of the copy.
CHILD = r'''
import json, os, sys, tempfile
kind, folder = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def processes():
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as file:
                    command = file.read().split(b"\0")
                with open(f"/proc/{name}/stat", "rb") as file:
                    parent = int(file.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                continue
            yield int(name), parent, command


if kind == "autocron":
    import autocron
    import _memory_tasks
    autocron.start(os.path.join(tempfile.mkdtemp(), "memory.db"), workers=2)
    results = [_memory_tasks.add(i, i) for i in range(40)]
    assert [r.get(120) for r in results][-1] == 78
    mine = os.path.join(folder, "autocron.py").encode()
    sizes = [rss(pid) for pid, _, command in processes()
             if b"_worker_main" in command and mine in command]
    autocron.stop()
else:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    import _memory_tasks
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(kind)) as pool:
        futures = [pool.submit(_memory_tasks.plain_add, i, i) for i in range(80)]
        assert [f.result(120) for f in futures][-1] == 158
        sizes = [rss(process.pid) for process in pool._processes.values()]
print(json.dumps(sizes))
'''


def measure(kind: str, folder: Path, cached: bool) -> list:
    """The workers' sizes in MB, of one subject started fresh."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    for stale in folder.glob("__pycache__"):
        shutil.rmtree(stale)
    if cached:
        py_compile.compile(str(folder / "autocron.py"), doraise=True)
        py_compile.compile(str(folder / "_memory_tasks.py"), doraise=True)
    else:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(folder)], env=environment,
                          capture_output=True, text=True, timeout=300, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"{kind} in {folder} failed:\n{done.stderr}")
    sizes = json.loads(done.stdout.strip().splitlines()[-1])
    if len(sizes) != 2:
        raise SystemExit(f"{kind}: found {len(sizes)} worker processes, not 2")
    return sizes


def copy(source: Path, into: Path) -> Path:
    into.mkdir()
    shutil.copy(source, into / "autocron.py")
    (into / "_memory_tasks.py").write_text(TASKS)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, metavar="PATH",
                        help="an older autocron.py to measure beside this one")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent / "autocron.py"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        subjects = {}
        for label, source in [("autocron", here), ("baseline", args.baseline)]:
            if source is not None:
                folder = copy(source, root / label)
                subjects[f"{label}, bytecode cached"] = ("autocron", folder, True)
                subjects[f"{label}, no bytecode"] = ("autocron", folder, False)
        plain = copy(here, root / "plain")
        for method in ("spawn", "fork"):
            subjects[f"ProcessPoolExecutor, {method}"] = (method, plain, True)
        sizes: dict = {label: [] for label in subjects}
        for number in range(args.rounds):
            for label, (kind, folder, cached) in subjects.items():
                sizes[label] += measure(kind, folder, cached)
            print(f"round {number + 1} of {args.rounds} done", file=sys.stderr)
    print(f"Worker RSS in MB, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{args.rounds} rounds of 2 workers: median (smallest - largest)\n")
    print("| worker | RSS |\n|---|---|")
    for label, values in sizes.items():
        print(f"| {label} | {statistics.median(values):.1f} "
              f"({min(values):.1f} - {max(values):.1f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
