"""What every test of autocron gets (its module state restored afterwards), and the machines,
servers and faults the tests use: a small disk that fills up, a TCP proxy that delays, drops
and swallows connections, a seeded injector of such faults, the dispatcher driven in-process
(fake workers, a fake clock), a private PostgreSQL server, the dashboard and a browser on it,
a WSGI server (gunicorn), machines that share one PostgreSQL database, the chaos test's
storm, and the small helpers all of them use (wait_until, query, http_get, ...).
test_autocron.py holds the tests and the task functions the workers import from it.

Everything here is real: a tmpfs mounted for the test (root only, as in CI) and unmounted
after it, whatever the test left in it; sockets on 127.0.0.1, closed with their threads.
"""

import asyncio
import collections
import contextlib
import errno
import fcntl
import glob
import importlib.util
import itertools
import json
import os
import pickle
import pwd
import random
import re
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote, urlencode

import pytest

import autocron


@pytest.fixture(autouse=True)
def autocron_state():
    """autocron's module state as each test found it, restored after it: no pool of the
    test left running in this process, no cron job it registered, nothing its calls left
    to read ahead (nor a hold on its store), and the settings tests shorten (the clock file,
    the lease time) as they were."""
    crons = dict(autocron._state.crons)
    settings = {name: getattr(autocron, name) for name in ("_clock_file", "_lease_ttl")}
    yield
    if autocron._state.store is not None or autocron._state.pool is not None:
        autocron.stop(timeout=5)
    autocron._state.crons.clear()
    autocron._state.crons.update(crons)
    autocron._read_ahead.forget()
    for name, value in settings.items():
        setattr(autocron, name, value)


class SmallDisk:
    """A tmpfs of `size` bytes at `folder` that a test fills and frees at will."""

    def __init__(self, folder: str, size: int):
        self.folder, self.size = folder, size
        os.makedirs(folder, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                               "tmpfs", folder], capture_output=True, text=True)
        if done.returncode:
            raise OSError(f"cannot mount a tmpfs at {folder}: {done.stderr.strip()}")
        self._filler = os.path.join(folder, "filler")

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def fill(self) -> None:
        """Write until the file system says it is full (every byte of it taken)."""
        block = b"\0" * 65536
        with open(self._filler, "ab", buffering=0) as file:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        file.write(block[:size])
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._filler)

    def close(self) -> None:
        subprocess.run(["umount", "-l", self.folder], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB disk of the test's own (a tmpfs, which needs root: CI runs as root)."""
    try:
        disk = SmallDisk(str(tmp_path / "disk"), 8 << 20)
    except OSError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error), pytrace=False)
        pytest.skip(f"{error} (not root?)")
    try:
        yield disk
    finally:
        import autocron
        autocron.stop(timeout=5)
        disk.close()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of `target` (host, port), whose faults a test
    switches at run time:

    - pass_through(): forward every byte as it comes;
    - delay(seconds): forward each chunk `seconds` late (both ways);
    - drop(): close every open connection at once, both sides (new ones are served);
    - blackhole(): accept new connections but connect them nowhere, and stop forwarding on
      the open ones (their bytes wait in the kernel's buffers); pass_through() or delay() delivers
      everything that waited, as a healed network would.

    `turns` counts the round trips clients made: the times a client sent after its server had
    last spoken (or first), on any connection.

    One thread accepts, one thread serves each connection (both of its sockets, with a
    selector); close() ends every socket and thread it started.
    """

    def __init__(self, target):
        self.target = target
        self.mode, self.latency = "pass", 0.0
        self._links = set()                 # the open connections: [client, upstream|None]
        self._threads = []
        self._lock = threading.Lock()
        self._closed = False
        self.served = 0                     # connections accepted, for the failure message
        self.turns = 0                      # round trips (see above)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._start(self._accept, "proxy-accept")

    def pass_through(self) -> None:
        self.mode, self.latency = "pass", 0.0

    def delay(self, seconds: float) -> None:
        self.mode, self.latency = "pass", seconds

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def drop(self) -> int:
        """Close every open connection, both sides; how many there were."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.dropped = True
            for sock in (link.client, link.upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
        return len(links)

    def close(self) -> None:
        self._closed = True
        self.drop()
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()
        left = [t.name for t in self._threads if t.is_alive()]
        if left:
            raise AssertionError(f"proxy threads still running after close(): {left}")

    def _start(self, target, name, *args):
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)
                continue
            self.served += 1
            link = _Link(client)
            with self._lock:
                self._links.add(link)
            self._start(self._serve, f"proxy-link-{self.served}", link)

    def _serve(self, link):
        try:
            while self.mode == "blackhole" and not (self._closed or link.dropped):
                time.sleep(0.02)             # accepted, and held: connected nowhere
            if self._closed or link.dropped:
                return
            try:
                link.upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                return                       # the server is down: the client sees a close
            link.client.setblocking(True)
            link.upstream.settimeout(None)
            if link.dropped:
                return
            self._forward(link)
        finally:
            with self._lock:
                self._links.discard(link)
            for sock in (link.client, link.upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _forward(self, link):
        other = {link.client: link.upstream, link.upstream: link.client}
        with selectors.DefaultSelector() as selector:
            selector.register(link.client, selectors.EVENT_READ)
            selector.register(link.upstream, selectors.EVENT_READ)
            while not (self._closed or link.dropped):
                if self.mode == "blackhole":
                    time.sleep(0.02)         # nothing read, nothing forwarded
                    continue
                for key, _ in selector.select(0.1):
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return               # one side closed: close the other too
                    asking = key.fileobj is link.client
                    if asking and not link.asking:
                        with self._lock:
                            self.turns += 1
                    link.asking = asking
                    if self.latency:
                        time.sleep(self.latency)
                    try:
                        other[key.fileobj].sendall(data)
                    except OSError:
                        return


class _Link:
    __slots__ = ("client", "upstream", "dropped", "asking")

    def __init__(self, client):
        self.client, self.upstream, self.dropped = client, None, False
        self.asking = False                 # the client spoke last


Fault = collections.namedtuple("Fault", "weight inject hold resource", defaults=((0, 0), None))
Fault.__doc__ = """A kind of fault for ChaosRunner: `inject(rng)` does it and returns (what it
did, undo or None); undo() ends it after `hold` = (shortest, longest) seconds and returns what
it did. Two faults of one `resource` never overlap (a second one is skipped)."""


class ChaosRunner:
    """Faults at random moments, all drawn from one seed: the plan (when, which kind) comes
    from the seed alone; what each fault hits (a worker of the moment ...) from the same
    random stream as it is injected. `events` lists (seconds from the start, what was done),
    and report() prints it with the seed, for the failure message."""

    def __init__(self, seed, faults, duration, gap=(0.8, 2.5)):
        self.seed, self.faults, self.duration = seed, faults, duration
        self.rng = random.Random(seed)
        names = sorted(faults)
        self.plan, moment = [], self.rng.uniform(*gap)
        while moment < duration:
            name = self.rng.choices(names, [faults[n].weight for n in names])[0]
            self.plan.append((moment, name))
            moment += self.rng.uniform(*gap)
        self.events = []
        self._pending = []                  # [(undo at, resource, undo)]
        self._began = None

    def note(self, text):
        began = self._began if self._began is not None else time.monotonic()
        self.events.append((round(time.monotonic() - began, 2), text))

    def run(self, tick, tick_every=0.05):
        """Inject the plan over `duration` s, calling tick() between faults (to keep the
        processes of the test going); every fault is undone at the end."""
        self._began = time.monotonic()
        for moment, name in self.plan + [(self.duration, None)]:
            while time.monotonic() - self._began < moment:
                self._undo(due_only=True)
                tick()
                time.sleep(tick_every)
            if name is None:
                break
            fault = self.faults[name]
            if fault.resource is not None and any(r == fault.resource
                                                  for _, r, _ in self._pending):
                self.note(f"{name}: skipped ({fault.resource} is already faulty)")
                continue
            try:
                text, undo = fault.inject(self.rng)
            except Exception as error:         # a harness flaw: shown, not hidden
                self.note(f"{name}: FAILED to inject: {error!r}")
                raise
            self.note(text)
            if undo is not None:
                self._pending.append((time.monotonic() + self.rng.uniform(*fault.hold),
                                      fault.resource, undo))
        self.heal()

    def heal(self):
        """Undo every fault still in force (safe to repeat, and to call after a failure)."""
        self._undo(due_only=False)

    def _undo(self, due_only):
        now, failed = time.monotonic(), None
        for entry in list(self._pending):
            if due_only and entry[0] > now:
                continue
            self._pending.remove(entry)
            try:
                self.note(entry[2]())
            except Exception as error:      # the others are undone all the same
                self.note(f"FAILED to undo: {error!r}")
                failed = failed or error
        if failed is not None:
            raise failed

    def report(self):
        return (f"seed {self.seed} (AUTOCRON_CHAOS_SEED={self.seed} repeats it); faults:\n"
                + "\n".join(f"  {moment:6.2f} s  {text}" for moment, text in self.events))


@pytest.fixture
def tcp_proxy():
    """TcpProxy(target) of the test's own, closed afterwards (every socket and thread)."""
    proxies = []

    def start(target):
        proxies.append(TcpProxy(target))
        return proxies[-1]
    yield start
    for proxy in proxies:
        proxy.close()


# -- the dispatcher in-process: fake workers, a fake clock


class FakeProcess:
    """A worker process as the dispatcher sees one, with no process behind it: a pid no
    process has (beyond the kernel's largest), and whether it ended and how."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            raise subprocess.TimeoutExpired("fake worker", timeout)
        return self.returncode


class FakeWorker(autocron._Worker):
    """A worker handle whose process is the test: the pool writes its messages into a real
    pipe, which runs() reads; the test says what a worker would (say(), exit()), framed
    as a worker frames it, into the pipe the pool reads."""

    def __init__(self, pid: int, slot=None):
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        self.proc = FakeProcess(pid)
        self.tasks = autocron._Pipe(down_write)
        self.results = autocron._Pipe(up_read)
        self.down, self.up = down_read, up_write       # the worker's ends
        os.set_blocking(down_read, False)
        os.set_blocking(up_read, False)
        with contextlib.suppress(OSError):      # room for a large outcome said at once
            fcntl.fcntl(up_write, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        self.queue, self.retiring, self.born, self.slot = [], False, 0.0, slot
        self.kill_reason, self.killed_for, self.blocked, self.blocker = "", -1, False, -1
        self.reported = self.acknowledged = self.told = self.waiting = 0
        self.closed, self.inbox, self.init_failed = False, bytearray(), False
        self.initialized = True         # as if it had said so: the tests say what they test
        self.heard = bytearray()

    def say(self, *messages) -> None:
        for message in messages:
            os.write(self.up, autocron._frame(pickle.dumps(message)))

    def runs(self) -> list:
        """What the pool sent since the last look: [_Run, _Ack, _Return, _Exit]."""
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                chunk = os.read(self.down, 65536)
                if not chunk:
                    break
                self.heard += chunk
        return [pickle.loads(m) for m in autocron._frames(self.heard)]

    def exit(self, code: int) -> None:
        """The process ends (a negative code: killed by that signal); its pipe closes."""
        if self.proc.returncode is None:
            self.proc.returncode = code
            with contextlib.suppress(OSError):
                os.close(self.up)

    def end(self) -> None:
        self.exit(-9)

    def close(self) -> None:
        super().close()
        self.exit(self.proc.returncode if self.proc.returncode is not None else -9)
        with contextlib.suppress(OSError):
            os.close(self.down)


class Dispatcher:
    """A _Pool of an SQLite file, driven round by round in this process: fake workers, a
    clock the test moves (`now`, monotonic seconds), the owner's notices in a pipe."""

    def __init__(self, database: str, workers: int = 2):
        self.store = autocron._SqliteStore(database)
        self.store.set_setting("workers", workers)
        self.now = 1000.0
        self.workers = []
        self.notice_end, write_end = os.pipe()
        self.pool = autocron._Pool(self.store, os.getpid(), autocron._Pipe(
            write_end), spawn=self.spawn, clock=lambda: self.now)
        assert self.pool._begin()
        self.pool._adjust_workers()

    def spawn(self, database, lease, lease_clock, slot):
        worker = FakeWorker(2 ** 30 + len(self.workers), slot)
        self.workers.append(worker)
        return worker

    def round(self):
        """One round, as the run loop makes it after a wait that ended without an event (a
        due time: the pool looks for work) or with messages from every worker; an
        unavailable database is weather."""
        self.pool._ready = {w.results for w in self.pool._workers if not w.closed}
        self.pool._news, self.pool._dry = True, False
        try:
            self.pool._round()
        except autocron.DatabaseError as error:
            self.pool._unavailable(error)

    def later(self, seconds: float):
        self.now += seconds
        self.round()

    def close(self):
        self.pool._shutdown_workers()
        self.pool._release()
        os.close(self.pool._lease_clock.fd)
        if self.store._start_log is not None:
            self.store._start_log.close()
        os.close(self.notice_end)
        self.store.close()


@pytest.fixture
def dispatcher(tmp_path):
    """A Dispatcher of two fake workers on a fresh database (see Dispatcher)."""
    made = []

    def make(database=None, workers=2):
        made.append(Dispatcher(database or str(tmp_path / "autocron.db"), workers))
        return made[-1]
    yield make
    for each in made:
        each.close()


def run_async(coroutine):
    """asyncio.run(coroutine) in a thread of its own: a test before it in this process may
    have left this thread an event loop that counts as running (nbclient's, through
    jupyter_core, did on Python 3.13), and asyncio.run refuses to start under one."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as runner:
        return runner.submit(asyncio.run, coroutine).result()


# -- helpers, servers and machines the tests share (moved from test_autocron.py)


HERE = os.path.dirname(os.path.abspath(__file__))


def wait_until(condition, timeout=30.0, what="the condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid):
    """True if a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def query(database, sql, params=()):
    """Rows of one statement on either backend (written with SQLite's ? placeholders)."""
    store = autocron._open_store(database, existing=True)
    if isinstance(store, autocron._PgStore):
        sql = sql.replace("?", "%s")
    return store.read(sql, params)


PG_USER = "autocron"


PG_HOST = "127.0.0.1"


PG_LIB_GLOB = "/usr/lib/postgresql/*/bin"


PG_START_ATTEMPTS = 3


PG_LOG_TAIL_LINES = 30


def pg_binaries() -> Tuple[str, str]:
    """Return paths of ``initdb`` and ``pg_ctl``, PATH first, else the newest install."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return on_path  # type: ignore[return-value]
    for folder in sorted(glob.glob(PG_LIB_GLOB), key=pg_version_key, reverse=True):
        initdb, pg_ctl = os.path.join(folder, "initdb"), os.path.join(folder, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
        f"{PG_LIB_GLOB}; install them with: apt-get install postgresql"
    )


def pg_version_key(folder: str) -> Tuple[int, ...]:
    # "/usr/lib/postgresql/9.6/bin" must sort below ".../15/bin".
    version = os.path.basename(os.path.dirname(folder))
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (-1,)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((PG_HOST, 0))
        return sock.getsockname()[1]


def pg_running(pid: int) -> bool:
    # The postmaster is not our child, so if nobody reaps it, it lingers as a
    # zombie that still answers kill(pid, 0); count that as gone.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pg_wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pg_env() -> Dict[str, str]:
    # Stray PGDATA/PGPORT/PGPG_HOST... from the caller must not redirect our tools.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    """One throwaway PostgreSQL cluster in a fresh temporary folder."""

    host = PG_HOST
    user = PG_USER

    def __init__(self, base_dir: Optional[str] = None, durable: bool = False) -> None:
        # /tmp by default: the postgres user must be able to reach the folder,
        # which pytest's tmp_path (under a 0700 root) would not allow.
        self.base_dir = base_dir or "/tmp"
        self.durable = durable       # the server's own defaults: fsync, full pages (benchmarks)
        self.password = secrets.token_urlsafe(24)
        self.port: Optional[int] = None
        self.root_dir: Optional[str] = None
        self._os_user: Optional[str] = None
        self._uid: Optional[int] = None
        self._gid: Optional[int] = None
        self._pg_ctl: Optional[str] = None
        self.env: dict = {}          # more environment for the server (libfaketime's)

    # -- public API ---------------------------------------------------------

    @property
    def data_dir(self) -> str:
        return os.path.join(self._root(), "data")

    @property
    def log_file(self) -> str:
        return os.path.join(self._root(), "postgres.log")

    def start(self) -> None:
        if self.port is not None:
            return
        try:
            initdb, self._pg_ctl = pg_binaries()
            self.root_dir = tempfile.mkdtemp(prefix="autocron-pg-", dir=self.base_dir)
            if os.geteuid() == 0:
                self._drop_privileges()
            self._initdb(initdb)
            self._start_server()
            self._check_connection()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server and remove everything start() made; safe to repeat."""
        try:
            self._stop_server()
        finally:
            self.port = None
            if self.root_dir is not None:
                shutil.rmtree(self.root_dir, ignore_errors=True)
                self.root_dir = None
            self._remove_os_user()

    def halt(self) -> None:
        """Stop the server as a restart does: every connection cut, every commit kept (an
        immediate stop would lose those not yet flushed, as autocron's default allows)."""
        self._stop_server(mode="fast")

    def resume(self) -> None:
        """Start a halted server again on its port."""
        proc = self._run(self._start_command(self.port), check=False)
        if proc.returncode:
            raise RuntimeError(f"PostgreSQL did not start again\n{self._log_tail()}")

    def url(self, dbname: str = "postgres", **query: str) -> str:
        url = (
            f"postgresql://{quote(self.user)}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname)}"
        )
        return f"{url}?{urlencode(query)}" if query else url

    def connect(self, dbname: str = "postgres", **kwargs):
        import psycopg

        params = dict(
            host=self.host, port=self.port, user=self.user,
            password=self.password, dbname=dbname, connect_timeout=5,
        )
        params.update(kwargs)
        return psycopg.connect(**params)

    def create_database(self, name: Optional[str] = None) -> str:
        from psycopg import sql

        name = name or f"test_{secrets.token_hex(6)}"
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            # FORCE (PG 13+) kicks out sessions a test forgot to close.
            force = " WITH (FORCE)" if conn.info.server_version >= 130000 else ""
            query = sql.SQL("DROP DATABASE IF EXISTS {}" + force)
            conn.execute(query.format(sql.Identifier(name)))

    # -- setup --------------------------------------------------------------

    def _root(self) -> str:
        if self.root_dir is None:
            raise RuntimeError("PostgresServer is not started")
        return self.root_dir

    def _drop_privileges(self) -> None:
        # PostgreSQL refuses to run as root, so run it as a user made just for it.
        self._check_reachable(self.base_dir)
        self._os_user = self._create_os_user()
        entry = pwd.getpwnam(self._os_user)
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        os.chown(self._root(), self._uid, self._gid)

    @staticmethod
    def _check_reachable(folder: str) -> None:
        path = os.path.realpath(folder)
        while True:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"{path} is not searchable by other users, so the unprivileged "
                    "postgres user cannot reach the cluster; use a base folder such as /tmp"
                )
            if path == os.path.dirname(path):
                return
            path = os.path.dirname(path)

    @staticmethod
    def _create_os_user() -> str:
        base = f"acronpg{os.getpid()}"
        for n in range(100):
            name = base if n == 0 else f"{base}x{n}"
            cmd = ["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                return name
            if proc.returncode != 9:  # 9: user or group name already in use
                raise RuntimeError(f"useradd failed: {proc.stderr.strip()}")
        raise RuntimeError(f"no free user name like {base}")

    def _initdb(self, initdb: str) -> None:
        pwfile = os.path.join(self._root(), "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        try:
            if self._uid is not None:
                os.chown(pwfile, self._uid, self._gid)
            self._run([
                initdb, "-D", self.data_dir, "-U", self.user,
                "--auth=scram-sha-256", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ])
        finally:
            os.unlink(pwfile)

    def _start_server(self) -> None:
        for _ in range(PG_START_ATTEMPTS):
            port = free_tcp_port()
            log_start = self._log_size()
            proc = self._run(self._start_command(port), check=False)
            if proc.returncode == 0:
                self.port = port
                return
            # Another process may grab the port between probing and binding.
            if "could not bind" not in self._read_log(log_start):
                break
        output = " ".join((proc.stdout + proc.stderr).split())
        raise RuntimeError(f"PostgreSQL did not start ({output})\n{self._log_tail()}")

    def _start_command(self, port: int) -> List[str]:
        options = " ".join(shlex.quote(o) for o in self._server_options(port))
        return [
            self._pg_ctl, "-D", self.data_dir, "-l", self.log_file,
            "-w", "-t", "60", "-o", options, "start",
        ]

    def _server_options(self, port: int) -> List[str]:
        # Durability is pointless for a throwaway server of tests; speed is not. A benchmark's
        # (durable) keeps PostgreSQL's defaults, as a production server does.
        settings = [
            f"listen_addresses={PG_HOST}",
            f"unix_socket_directories={self.data_dir}",
            "max_connections=200",
        ]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        options = ["-p", str(port)]
        for setting in settings:
            options += ["-c", setting]
        return options

    def _check_connection(self) -> None:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1").fetchone()
        except Exception as exc:
            raise RuntimeError(
                f"PostgreSQL started but does not answer: {exc}\n{self._log_tail()}"
            ) from exc

    # -- teardown -----------------------------------------------------------

    def _stop_server(self, mode: str = "immediate") -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        self._run([self._pg_ctl, "-D", self.data_dir, "-m", mode, "-w", "stop"], check=False)
        if not pg_wait(lambda: not pg_running(pid), timeout=10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            pg_wait(lambda: not pg_running(pid), timeout=5)

    def _postmaster_pid(self) -> Optional[int]:
        if self.root_dir is None or self._pg_ctl is None:
            return None
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def _remove_os_user(self) -> None:
        if self._os_user is None:
            return
        # userdel refuses while the user still owns processes (the backends
        # exit a moment after the postmaster).
        pg_wait(lambda: not self._os_user_busy(), timeout=10)
        subprocess.run(["userdel", self._os_user], capture_output=True)
        # PG_USERGROUPS_ENAB usually drops the group with the user; make sure.
        subprocess.run(["groupdel", self._os_user], capture_output=True)
        self._os_user = self._uid = self._gid = None

    def _os_user_busy(self) -> bool:
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                with open(status) as f:
                    text = f.read()
            except OSError:
                continue
            uid_line = re.search(r"^Uid:\s+(\d+)", text, re.M)
            zombie = re.search(r"^State:\s+Z", text, re.M)
            if uid_line and int(uid_line.group(1)) == self._uid and not zombie:
                return True
        return False

    # -- helpers ------------------------------------------------------------

    def _run(self, cmd: List[str], check: bool = True) -> "subprocess.CompletedProcess[str]":
        kwargs = {}
        if self._uid is not None:
            kwargs = dict(user=self._uid, group=self._gid, extra_groups=[])
        # cwd: the unprivileged user may not be able to enter the caller's cwd.
        proc = subprocess.run(
            cmd, cwd=self._root(), env={**pg_env(), **self.env}, capture_output=True,
            text=True, stdin=subprocess.DEVNULL, **kwargs,
        )
        if check and proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise RuntimeError(f"{os.path.basename(cmd[0])} failed:\n{output}")
        return proc

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self.log_file)
        except OSError:
            return 0

    def _read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_file, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return ""

    def _log_tail(self) -> str:
        lines = self._read_log().splitlines()[-PG_LOG_TAIL_LINES:]
        return "server log tail:\n" + "\n".join(lines) if lines else "(server log is empty)"


def unavailable(reason):
    """Skip for want of a part of the test setup, but never in CI: there it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def started_postgres(database=None, durable=False):
    """A started PostgresServer (with `database` made in it, if named; `durable`: with the
    server's own durability settings), or the reason why not through unavailable()."""
    import importlib.util
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed: pip install -e '.[test]'")
    server = PostgresServer(durable=durable)
    try:
        server.start()
        if database:
            server.database = server.create_database(database)
    except (RuntimeError, OSError) as exc:
        server.stop()
        unavailable(f"cannot start a PostgreSQL test server: {exc}")
    return server


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgresServer shared by the whole session, with a database for the tests."""
    server = started_postgres("autocron_tests")
    try:
        yield server
    finally:
        server.stop()


def libfaketime(seconds):
    """The environment that sets a program's wall clock `seconds` off the real one (Debian's
    libfaketime; PostgreSQL's server takes it well, Python's sleep does not)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") +
                   glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not found:
        unavailable("no libfaketime: apt-get install faketime")
    return {"LD_PRELOAD": found[0], "FAKETIME": f"{seconds:+g}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


_schemas = itertools.count(1)


def close_postgres_connections():
    """This thread's connections to PostgreSQL, closed (each test's schema has its own; other
    threads' close when their thread ends)."""
    for con, _ in list(getattr(autocron._pg_links, "by_url", {}).values()):
        with contextlib.suppress(Exception):
            con.close()
    autocron._pg_links.__dict__.clear()


@pytest.fixture
def database(request, tmp_path):
    """The database of a runtime test, on each backend: an SQLite file in the test's folder,
    or a schema of its own in the session's PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "autocron.db")
        autocron.stop(timeout=5)
        return
    server = request.getfixturevalue("postgres_server")
    schema = f"test_{os.getpid()}_{next(_schemas)}"
    yield server.url(server.database, schema=schema)
    autocron.stop(timeout=5)
    close_postgres_connections()
    with server.connect(server.database, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None                     # the 3xx comes back as an HTTPError


def http_get(url, headers=None, redirect=True):
    """(status, body, headers) of a GET, an error status included; a redirect followed
    unless `redirect` is false."""
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(*(() if redirect else (_NoRedirect,)))
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def post_form(url, fields, headers=None):
    """(status, body) of a form's POST (a redirect followed), an error status included."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(),
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def signed_in(url):
    """{"Cookie": ...}: what the dashboard's printed URL (with its ?token=) sets, as a
    browser keeps it; {} for a URL without a token."""
    if "token=" not in url:
        return {}
    status, _, headers = http_get(url, redirect=False)
    assert status == 303, status
    return {"Cookie": headers["Set-Cookie"].split(";")[0]}


class DashboardServer:
    """`autocron --db DB dashboard` for real, on a free port; stopped by stop(). `settings`
    ({"_DASH_READ": 4.0}) are set on the module in the server's process before it starts:
    the ones tests shorten."""

    def __init__(self, database, *options, settings=None):
        program = [AUTOCRON]
        if settings:        # as autocron.py runs as a program: the module autocron's _main
            program = ["-c", "import sys, autocron; " + "".join(
                f"autocron.{name} = {value!r}; " for name, value in settings.items())
                + "sys.exit(autocron._main())"]
        self.process = subprocess.Popen(
            [sys.executable, *program, "--db", str(database), "dashboard", "--port", "0",
             *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
        line = self.process.stdout.readline()
        match = re.search(r" at (http://\S+) ", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"no dashboard: {line} {self.process.stderr.read()}")
        self.url, self.database = match.group(1), str(database)
        self.base = re.sub(r"/\?.*", "/", self.url).replace("0.0.0.0", "127.0.0.1")
        self.port = urllib.parse.urlsplit(self.url).port
        try:
            self.cookie = signed_in(self.url.replace("0.0.0.0", "127.0.0.1"))
        except BaseException:
            self.stop()
            raise

    def get(self, path, headers=None):
        """(status, body, headers) of a GET with the owner's cookie (unless `headers` say
        otherwise)."""
        return http_get(self.base.rstrip("/") + path, {**self.cookie, **(headers or {})})

    def post(self, path, fields, headers=None):
        return post_form(self.base.rstrip("/") + path, fields,
                         {**self.cookie, **(headers or {})})

    def stop(self):
        """End the server; what it wrote to stderr."""
        self.process.terminate()
        return self.process.communicate(timeout=30)[1]


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium from the system (/usr/bin/chromium), driven by Playwright."""
    if importlib.util.find_spec("playwright") is None:
        unavailable("playwright is not installed: pip install -e '.[test]'")
    if not os.path.exists("/usr/bin/chromium"):
        unavailable("no /usr/bin/chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def browser_wait(tab, condition, timeout, what):
    """wait_until for a condition on a page's events: Playwright's sync API delivers them
    only while it is called, so the pauses between looks are the page's own."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        tab.wait_for_timeout(20)


@contextlib.contextmanager
def browsing(chromium, base):
    """A browser page for the dashboard at `base`; afterwards no request may have left it
    and no script error may have happened."""
    context = chromium.new_context()
    tab = context.new_page()
    requests, errors = [], []
    tab.on("request", lambda request: requests.append(request.url))
    tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.accepted = None        # a test that expects questions sets a list: they are accepted

    def on_dialog(dialog):
        if tab.accepted is None:
            errors.append(f"dialog: {dialog.message}")
            dialog.dismiss()
        else:
            tab.accepted.append(dialog.message)
            dialog.accept()
    tab.on("dialog", on_dialog)
    yield tab
    context.close()
    assert errors == []
    assert requests and all(url.startswith(base) for url in requests), requests


AUTOCRON = os.path.join(HERE, "autocron.py")


def cmdline(pid):
    """A process's command line as text, "" once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def belongs(pid, folder, text):
    """Is pid a live process that works in `folder` or whose command line has `text`? A
    test's pool processes work in the folder of the process that started them; a pid the
    pool table names may be gone, or reused by a stranger."""
    try:
        here = os.readlink(f"/proc/{pid}/cwd") == str(folder)
    except OSError:
        here = False
    return bool(pid) and (here or text in cmdline(pid)) and alive(pid)


def processes_of(folder, text):
    """{pid: command line} of the live processes (not this one) that belong to a test."""
    return {int(name): cmdline(name) for name in os.listdir("/proc")
            if name.isdigit() and int(name) != os.getpid() and belongs(name, folder, text)}


def task_table(database):
    """{key: (uuid, status, attempts, retries, error message, value)} of a database whose tasks
    take one string argument, the key, read from the tasks table; keys stored twice get
    a list of such rows."""
    rows = autocron._open_store(database, existing=True).read(
        "SELECT token || '-' || id, args, status, attempts, retries, error, value FROM tasks")
    table = collections.defaultdict(list)
    for uid, args, status, attempts, retries, error, value in rows:
        message = json.loads(error)["message"] if error else ""
        value = pickle.loads(value) if value is not None else None
        table[args.strip("'")].append((uid, status, attempts, retries, message, value))
    return table


def runs_in(log):
    """{key: [pid, ...]}: the finished runs that tasks appended to a log as "<key> <pid>"."""
    runs = collections.defaultdict(list)
    if os.path.exists(log):
        with open(log) as file:
            for line in file:
                key, pid = line.split()
                runs[key].append(int(pid))
    return runs


# The tasks of the WSGI app, in a module of their own: a worker that imports it to find
# `record` must not run the app's start().
WSGI_TASKS = """
    import os, time, autocron

    LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log")


    def append(text):
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{text} {os.getpid()}\\n".encode())
        finally:
            os.close(fd)


    @autocron.delay
    def record(key):
        append(key)
        return key


    def tick():
        append(time.strftime("cron-%H:%M", time.localtime(autocron._clock())))
"""


# The app: every process that imports it calls start(); /call?KEY enqueues record(KEY) and
# answers the task id, / answers the pid of the process that served the request.
WSGI_APP = """
    import os, autocron, wsgi_tasks

    autocron._clock_file = os.environ.get("TEST_CLOCK_FILE")   # the test's clock, if any
    DATABASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.db")
    autocron.cron("* * * * *")(wsgi_tasks.tick)
    autocron.start(DATABASE, workers=2)


    def application(environ, start_response):
        if environ["PATH_INFO"] == "/call":
            body = wsgi_tasks.record(environ["QUERY_STRING"]).uuid
        else:
            body = str(os.getpid())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]
"""


# gunicorn's configuration for --preload: the master imports the app (and owns the pool);
# each worker it forks calls start() again, as gunicorn's post_fork hook is there for.
WSGI_PRELOAD_CONFIG = """
    import os, autocron


    def post_fork(server, worker):
        autocron.start(os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.db"))
"""


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return int(file.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class WSGIServer:
    """A real gunicorn with four sync workers serving WSGI_APP from a folder, on a free port."""

    def __init__(self, folder, preload=False, hook=True):
        self.folder = folder
        self.database = str(folder / "app.db")
        self.log = str(folder / "runs.log")
        for name, text in [("wsgi_tasks.py", WSGI_TASKS), ("wsgi_app.py", WSGI_APP),
                           ("gunicorn_preload.py", WSGI_PRELOAD_CONFIG)]:
            (folder / name).write_text(textwrap.dedent(text))
        autocron._SqliteStore(self.database).close()
        self.store = autocron._SqliteStore(self.database, existing=True)
        command = [sys.executable, "-m", "gunicorn", "--workers", "4", "--worker-class",
                   "sync", "--bind", "127.0.0.1:0", "--chdir", str(folder)]
        help_text = subprocess.run(command[:3] + ["--help"], capture_output=True,
                                   text=True, timeout=60).stdout
        if "--no-control-socket" in help_text:   # gunicorn 25+: else one socket in ~ for all
            command.append("--no-control-socket")
        if preload:
            command += ["--preload"]
        if preload and hook:
            command += ["--config", str(folder / "gunicorn_preload.py")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), HERE] + sys.path))
        self.output = folder / "gunicorn.out"
        with open(self.output, "wb") as out:
            self.master = subprocess.Popen(command + ["wsgi_app:application"], cwd=folder,
                                           env=env, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        self.seen = set()                   # every pid the pool table named
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.port = int(wait_until(lambda: re.search(
            r"Listening at: http://127\.0\.0\.1:(\d+)", self.output.read_text()), 60,
            "gunicorn to listen").group(1))

    def workers(self):
        """The live gunicorn workers (the master's children that are gunicorn)."""
        return sorted(pid for pid in processes_of(self.folder, self.database)
                      if parent_of(pid) == self.master.pid and "gunicorn" in cmdline(pid))

    def pool(self):
        """(owner, manager, workers) from the pool table; remembers the pids."""
        owner, manager, workers = self.store.pool_pids()
        self.seen.update(p for p in [owner, manager] + workers if p)
        return owner, manager, workers

    def managers(self):
        """The live pool managers of this server's database: {pid: its parent}."""
        return {pid: parent_of(pid) for pid, line in processes_of(
            self.folder, self.database).items() if "_manager_main" in line}

    def get(self, path):
        url = f"http://127.0.0.1:{self.port}{path}"
        with self._opener.open(url, timeout=30) as response:
            return response.read().decode()

    def settled(self, owner_ok):
        """One pool: its owner passes owner_ok, its manager and two workers live, and no
        other manager exists; then (owner, manager, workers)."""
        owner, manager, workers = self.pool()
        if len(self.workers()) == 4 and owner_ok(owner) and self.managers() == {
                manager: owner} and len(workers) == 2 and all(map(alive, workers)):
            return owner, manager, workers
        return None

    def call(self, keys):
        """Enqueue record(key) through the server for each key; {key: task id}."""
        return {key: self.get(f"/call?{key}") for key in keys}

    def runs(self, ids):
        """Wait until every task finished; {key: (status, value, [pids that ran it])}."""
        def finished():
            table = task_table(self.database)
            rows = {key: table.get(key, [None])[0] for key in ids}
            return all(row and row[1] in ("ready", "error", "cancelled") for row in
                       rows.values()) and rows
        rows = wait_until(finished, 60, "the tasks to finish")
        log = runs_in(self.log)
        return {key: (row[1], row[5], log.get(key, [])) for key, row in rows.items()}

    def cron_runs(self):
        return {key: pids for key, pids in runs_in(self.log).items() if key.startswith("cron-")}

    def cron_idle(self):
        """No run of the cron job is under way (its outcome is written: the clock may move,
        for the next due time counts from the end of the run)."""
        return self.store.read("SELECT count(*) FROM crons WHERE running IS NOT NULL") == [(0,)]

    def kill(self):
        """kill -9 the master and its workers (their process group); the rest must follow."""
        with contextlib.suppress(OSError):
            os.killpg(self.master.pid, signal.SIGKILL)
        self.master.wait(timeout=30)

    def kill_everything(self):
        self.kill()
        for pid in processes_of(self.folder, self.database):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(autocron._wake_path(self.database))

    def tail(self):
        return "\n".join(self.output.read_text().splitlines()[-30:])


class Machine:
    """A machine of its own for the tests of many machines on one PostgreSQL database: a
    process with its own TMPDIR and AUTOCRON_HOST that starts a pool (leases of `lease` s,
    the fake clock in `clock` if given, the cron job if `cron`) and waits for its stdin."""

    CODE = """
        import logging, sys, autocron, test_autocron
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        url, lease, workers, clock, cron = sys.argv[1:]
        autocron._lease_ttl = float(lease)
        autocron._clock_file = clock or None
        if cron:
            autocron.cron(cron)(test_autocron.cron_job)
        assert autocron.start(url, workers=int(workers)) is True
        test_autocron.wait_until(lambda: len(test_autocron.worker_pids()) == int(workers))
        print("ready", flush=True)
        sys.stdin.read()
        autocron.stop()
    """

    def __init__(self, name, url, folder, workers=2, lease=3.0, clock="", cron=""):
        self.name, self.url, self.seen = name, url, set()
        own = tempfile.mkdtemp(prefix=f"machine-{name}-")   # short: a socket's path fits
        self.folder = own
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        env.update(TMPDIR=own, AUTOCRON_HOST=name,
                   PYTHONPATH=os.pathsep.join([HERE] + sys.path))
        self.process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(self.CODE), url, str(lease), str(workers),
             clock, cron], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, cwd=HERE, start_new_session=True)
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise AssertionError(f"machine {name} did not start: {self.process.stderr.read()}")

    def pids(self):
        """Every process of its pool: owner, manager and workers, as it published them, and
        those seen before (a lost machine's row is gone)."""
        rows = query(self.url, "SELECT owner, manager, workers FROM machines WHERE name = ?",
                     (self.name,))
        if rows:
            self.seen.update([rows[0][0], rows[0][1]] + json.loads(rows[0][2]))
        return sorted(self.seen)

    def signal(self, number):
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def stop(self):
        """Its log (stderr) once it ended: stopped if alive, reaped if killed."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.process.stderr.read()


@pytest.fixture
def machines(postgres_server, tmp_path):
    """Start Machine(name, ...) on a schema of the test's own; all are ended afterwards."""
    schema = f"machines_{os.getpid()}_{next(_schemas)}"
    url = postgres_server.url(postgres_server.database, schema=schema)
    started = []

    def start(name, **options):
        started.append(Machine(name, url, tmp_path, **options))
        return started[-1]
    start.url = url
    yield start
    for machine in started:
        machine.signal(signal.SIGCONT)
        machine.stop()
    autocron.stop(timeout=5)
    close_postgres_connections()
    with postgres_server.connect(postgres_server.database, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# The tasks of the chaos test, imported by the producers and the workers: a run appends
# "start <key> <pid> <host>" when it begins and "end <key> <pid> <host>" when its work is done,
# to a log outside the database, and returns its key (its own value).
STORM_TASKS = """
    import os, random, time, autocron

    LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.log")


    def note(what, key):
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{what} {key} {os.getpid()} "
                         f"{os.environ.get('AUTOCRON_HOST', '-')} {time.time():.3f}\\n"
                     .encode())
        finally:
            os.close(fd)


    def work(key):
        note("start", key)
        time.sleep(random.Random(key).random() * 0.1)
        note("end", key)
        return key


    @autocron.delay(retries=3)
    def again(key):
        return work(key)


    @autocron.delay
    def once(key):
        return work(key)
"""


# An owner: calls start() (it owns the pool, or stands by) and lives until its stdin closes.
STORM_OWNER = """
    import logging, sys, autocron
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pid %(process)d %(message)s")
    database, lease = sys.argv[1:3]
    if float(lease):
        autocron._lease_ttl = float(lease)
    autocron.start(database, workers=2)
    sys.stdin.read()
    autocron.stop(timeout=5)
"""


# A producer: makes calls for `seconds`, each with a key of its own; it writes "try <key>"
# before a call, "ack <key> <uuid>" once it returned (acknowledged), "fail <key> <error>" if
# it raised DatabaseError (not acknowledged), and "done" at the end.
STORM_PRODUCER = """
    import logging, os, sys, time, autocron, storm_tasks
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s pid %(process)d %(message)s")
    database, log, prefix, seconds, pause = sys.argv[1:6]
    end, i = time.monotonic() + float(seconds), 0
    while True:         # the faults may start with it: an application tries again, as this
        try:
            autocron.start(database, workers=0)
            break
        except autocron.DatabaseError:
            time.sleep(0.2)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while time.monotonic() < end:
        key = f"{prefix}-{i}"
        os.write(fd, f"try {key}\\n".encode())
        try:
            result = (storm_tasks.once if i % 4 == 0 else storm_tasks.again)(key)
        except autocron.DatabaseError as error:
            os.write(fd, f"fail {key} {str(error)[:300]!r}\\n".encode())
        else:
            os.write(fd, f"ack {key} {result.uuid}\\n".encode())
        i += 1
        time.sleep(float(pause))
    os.write(fd, b"done\\n")
"""


INTERRUPTED = re.compile(r"worker died|interrupted: the pool ended|machine \S+ lost")


def children_of():
    """{pid: [child pid, ...]} of every process now."""
    tree = collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = parent_of(name)
            if parent:
                tree[parent].append(int(name))
    return tree


class Storm:
    """The processes of a chaos run in `folder`: owners in named slots (an SQLite database's
    two candidates, or PostgreSQL's machines), each started again when it ends, and
    producers; what they did, and every check of the end."""

    PAUSE = 0.12                  # seconds between a producer's calls
    RESTART = 1.5                 # seconds from an owner's end to its replacement's start

    def __init__(self, folder, database, direct=None, lease=0.0):
        self.folder, self.database = folder, database     # the one its processes use
        self.direct = direct or database                  # the one the test reads at the end
        self.lease = lease
        self.log = str(folder / "runs.log")
        (folder / "storm_tasks.py").write_text(textwrap.dedent(STORM_TASKS))
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("TEST_CLOCK_FILE", "AUTOCRON_DATABASE", "XDG_RUNTIME_DIR",
                                 "AUTOCRON_HOST")}
        self.env["PYTHONPATH"] = os.pathsep.join([str(folder), HERE] + sys.path)
        self.slots = {}               # name: [Popen or None, its extra environment]
        self.procs = []               # every process started, in order
        self.producers = []
        self.seen = set()             # every pid of an owner, manager or worker seen
        self.stopped = set()          # pids SIGSTOPped now
        self.folders = []             # the machines' private folders
        self.notes = []               # (monotonic time, text): restarts, for the report
        self.count = itertools.count()
        self.t0 = time.time()         # when the faults began (run() sets it)
        self.before_stop = ""         # summary() before the owners stopped

    # -- processes ---------------------------------------------------------------------

    def spawn(self, code, *args, name, env=None):
        with open(self.folder / f"{name}.out", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code),
                                     *map(str, args)], stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=self.folder,
                                    env=dict(self.env, **(env or {})), start_new_session=True)
        self.procs.append(proc)
        return proc

    def slot(self, name, machine=False):
        """An owner slot; a machine (PostgreSQL) has its own host name and private folder."""
        env = {}
        if machine:
            own = tempfile.mkdtemp(prefix=f"chaos-{name}-")     # short: a socket's path fits
            self.folders.append(own)
            env = {"AUTOCRON_HOST": name, "TMPDIR": own}
        self.slots[name] = [None, env]

    def produce(self, n, seconds):
        self.producers.append(self.spawn(STORM_PRODUCER, self.database,
                                         self.folder / f"calls{n}.txt", f"p{n}", seconds,
                                         self.PAUSE, name=f"producer{n}"))

    def supervise(self):
        """Start an owner again in every slot whose owner ended; note the pools' pids."""
        tree, now = children_of(), time.monotonic()
        for name, entry in self.slots.items():
            proc, env = entry[:2]
            if proc is not None and proc.poll() is not None and len(entry) == 2:
                entry.append(now + self.RESTART)
                self.notes.append((now, f"owner {proc.pid} of {name} ended "
                                   f"({proc.returncode}); another starts in {self.RESTART} s"))
            if proc is None or len(entry) == 3 and entry[2] <= now:
                entry[:] = [self.spawn(STORM_OWNER, self.database, self.lease, env=env,
                                       name=f"{name}.{next(self.count)}"), env]
            if entry[0].poll() is None:
                self.seen.update(self.tree(entry[0].pid, tree))

    def tree(self, pid, tree=None):
        tree = tree if tree is not None else children_of()
        found, todo = [], [pid]
        while todo:
            found.append(todo.pop())
            todo += tree.get(found[-1], [])
        return found

    def pool(self, name, tree=None):
        """(owner, manager, workers) of a slot, from the process tree: the owner's child
        is its manager, the manager's children are its workers; (None, None, []) for a
        stand-by or a gone owner."""
        tree = tree if tree is not None else children_of()
        proc = self.slots[name][0]
        if proc is None or proc.poll() is not None:
            return None, None, []
        managers = [pid for pid in tree.get(proc.pid, []) if alive(pid)]
        if not managers:
            return proc.pid, None, []
        return proc.pid, managers[0], [pid for pid in tree.get(managers[0], []) if alive(pid)]

    def active(self):
        """The slot names whose owner runs a pool now."""
        tree = children_of()
        return [name for name in self.slots if self.pool(name, tree)[1]]

    def ready(self, pools):
        tree = children_of()
        return sum(len(self.pool(name, tree)[2]) == 2 for name in self.slots) >= pools

    def signal(self, pids, number):
        done = []
        for pid in pids:
            if pid and alive(pid) and belongs(pid, self.folder, str(self.folder)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
                    done.append(pid)
        return done

    def leftovers(self):
        """{pid: command line} of the run's processes still alive."""
        left = processes_of(self.folder, str(self.folder))
        left.update({pid: cmdline(pid) for pid in self.seen if alive(pid) and
                     belongs(pid, self.folder, str(self.folder))})
        return left

    def shut_down(self, timeout=30):
        """Close every owner's stdin: it stops its pool and exits; wait for every process."""
        self.signal(list(self.stopped), signal.SIGCONT)
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        end = time.monotonic() + timeout
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, end - time.monotonic()))
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not self.leftovers(), max(1.0, end - time.monotonic()))

    def kill_everything(self):
        for pid in list(self.leftovers()) + [p.pid for p in self.procs]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        if not autocron._is_postgres(self.database):
            with contextlib.suppress(FileNotFoundError, TypeError):
                os.unlink(autocron._wake_path(self.database))

    # -- what happened -------------------------------------------------------------------

    def calls(self):
        """{key: ("ack", uuid) | ("fail", message) | ("try", "")}: what producers saw."""
        seen = {}
        for path in sorted(self.folder.glob("calls*.txt")):
            for line in path.read_text().splitlines():
                what, _, rest = line.partition(" ")
                if what in ("try", "ack", "fail"):
                    key, _, detail = rest.partition(" ")
                    seen[key] = (what, detail)
        return seen

    def runs(self):
        """{key: [("start" | "end", pid, host, seconds since the faults began), ...]} from
        the tasks' log."""
        runs = collections.defaultdict(list)
        if os.path.exists(self.log):
            with open(self.log) as file:
                for line in file:
                    what, key, pid, host, moment = line.split()
                    runs[key].append((what, int(pid), host, round(float(moment) - self.t0, 2)))
        return runs

    def unfinished(self):
        return query(self.direct, "SELECT count(*) FROM tasks WHERE status NOT IN "
                                  "('ready', 'error', 'cancelled')")[0][0]

    def wait(self, condition, timeout):
        """Keep the owners running (supervise() replaces killed ones) until condition()
        holds; False after timeout s."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.supervise()
            if condition():
                return True
            time.sleep(0.1)
        return False

    def producers_done(self):
        return all(p.poll() is not None for p in self.producers)

    def problems(self):
        """Every broken promise, one line each, with its evidence (see Chaos)."""
        table, runs, calls = task_table(self.direct), self.runs(), self.calls()
        problems = []
        for n, proc in enumerate(self.producers):
            if proc.returncode != 0 or not (self.folder / f"calls{n}.txt").read_text() \
                    .endswith("done\n"):
                problems.append(f"producer {n} ended with {proc.returncode} before its end: "
                                + (self.folder / f"producer{n}.out").read_text()[-1500:])
        for key, (what, detail) in sorted(calls.items()):
            rows, ran = table.get(key, []), runs.get(key, [])
            if what == "ack" and (len(rows) != 1 or rows[0][0] != detail):
                problems.append(f"acknowledged call {key} ({detail}) has {len(rows)} rows: "
                                f"{rows}; runs {ran}")
            elif what == "fail" and len(rows) > 1:
                problems.append(f"failed call {key} stored {len(rows)} times: {rows}")
            elif what == "fail" and not rows and ran:
                problems.append(f"failed call {key} ({detail}) ran though not stored: {ran}")
            elif what == "try" and len(rows) > 1:
                problems.append(f"call {key} (its producer died in it) has rows {rows}")
        for key, rows in sorted(table.items()):
            if key not in calls:
                problems.append(f"a row no producer made: {key} {rows}")
            ran = runs.get(key, [])
            starts = [(pid, host, at) for what, pid, host, at in ran if what == "start"]
            ends = [(pid, host, at) for what, pid, host, at in ran if what == "end"]
            for uid, status, attempts, retries, message, value in rows:
                what = (f"{key} ({uid}, {calls.get(key, ('?',))[0]}, retries {retries}): "
                        f"{status} after {attempts} attempts"
                        + (f" ({message!r})" if message else "")
                        + f"; started {len(starts)} times {starts}, ended {len(ends)} {ends}"
                        + (f"; row {self.row(uid)}" if status not in ("ready", "error") or
                           len(starts) > attempts else ""))
                if status not in ("ready", "error"):
                    problems.append(f"stuck: {what}")
                    continue
                if len(starts) > attempts:
                    problems.append(f"ran more often than the attempts it was given: {what}")
                if attempts > retries + 1:
                    problems.append(f"more attempts than its retries allow: {what}")
                if status == "ready" and value != key:
                    problems.append(f"ready with the wrong value {value!r}: {what}")
                if status == "ready" and not ends:
                    problems.append(f"ready but no run of it ended: {what}")
                if status == "error" and not INTERRUPTED.match(message):
                    problems.append(f"failed, though its work cannot fail: {what}")
                elif status == "error" and attempts <= retries:
                    problems.append(f"failed with retries left: {what}")
        problems += [f"{key} ran but is not in the database: {ran}"
                     for key, ran in sorted(runs.items()) if key not in table
                     and calls.get(key, ("?",))[0] != "fail"]
        return problems

    def row(self, uid):
        """The columns of a task's row that tell who holds it."""
        columns = "status, worker, machine, lease" if autocron._is_postgres(self.direct) \
            else "status, worker"
        rows = query(self.direct, f"SELECT {columns} FROM tasks WHERE id = ?",
                     (int(uid.rsplit("-", 1)[1]),))
        return dict(zip(columns.split(", "), rows[0])) if rows else None

    def summary(self):
        table, calls = task_table(self.direct), self.calls()
        outcome = collections.Counter((row[1], row[2], INTERRUPTED.match(row[4]) and
                                       INTERRUPTED.match(row[4]).group(0) or row[4])
                                      for rows in table.values() for row in rows)
        said = collections.Counter(what for what, _ in calls.values())
        machines = query(self.direct, "SELECT name, lease, owner, manager, workers FROM "
                         "machines") if autocron._is_postgres(self.direct) else "-"
        return (f"calls: {dict(said)}; outcomes (status, attempts, error): "
                + ", ".join(f"{n}x {k}" for k, n in outcome.most_common())
                + f"\nmachines (name, lease, owner, manager, workers): {machines}")

    def report(self, runner, problems):
        notes = [(round(t - runner._began, 2) if runner._began else 0, text)
                 for t, text in self.notes]
        events = sorted(runner.events + notes, key=lambda e: e[0])
        runner.events, saved = events, runner.events
        try:
            text = runner.report()
        finally:
            runner.events = saved
        logs = []
        for path in sorted(self.folder.glob("*.out")):
            lines = [line for line in path.read_text(errors="replace").splitlines()
                     if "autocron" in line or "Error" in line or "Traceback" in line]
            if lines:
                logs.append(f"--- {path.name}\n" + "\n".join(lines[-15:]))
        with contextlib.suppress(Exception):    # the database may be what failed
            self.before_stop = self.before_stop or self.summary()
        return (f"{text}\n{len(problems)} broken promises:\n" + "\n".join(problems[:40])
                + f"\n{self.before_stop}\nlogs (autocron's lines):\n" + "\n".join(logs)[-12000:])


def chaos_seed():
    return int(os.environ.get("AUTOCRON_CHAOS_SEED") or random.randrange(1, 10 ** 6))
