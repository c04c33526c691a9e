"""What every test of autocron gets (its module state restored afterwards), and the machines
and faults the tests use: a small disk that fills up, a TCP proxy that delays, drops and
swallows connections, and a seeded injector of such faults.

Everything here is real: a tmpfs mounted for the test (root only, as in CI) and unmounted
after it, whatever the test left in it; sockets on 127.0.0.1, closed with their threads.
"""

import collections
import contextlib
import errno
import fcntl
import os
import pickle
import random
import selectors
import socket
import subprocess
import threading
import time

import pytest

import autocron


@pytest.fixture(autouse=True)
def autocron_state():
    """autocron's module state as each test found it, restored after it: no pool of the
    test left running in this process, no cron job it registered, and the settings tests
    shorten (the clock file, the lease time) as they were."""
    crons = dict(autocron._state.crons)
    settings = {name: getattr(autocron, name) for name in ("_clock_file", "_lease_ttl")}
    yield
    if autocron._state.store is not None or autocron._state.pool is not None:
        autocron.stop(timeout=5)
    autocron._state.crons.clear()
    autocron._state.crons.update(crons)
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
                    if self.latency:
                        time.sleep(self.latency)
                    try:
                        other[key.fileobj].sendall(data)
                    except OSError:
                        return


class _Link:
    __slots__ = ("client", "upstream", "dropped")

    def __init__(self, client):
        self.client, self.upstream, self.dropped = client, None, False


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
        self.tasks = autocron._Connection(down_write, readable=False)
        self.results = autocron._Connection(up_read, writable=False)
        self.down, self.up = down_read, up_write       # the worker's ends
        os.set_blocking(down_read, False)
        os.set_blocking(up_read, False)
        with contextlib.suppress(OSError):      # room for a large outcome said at once
            fcntl.fcntl(up_write, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        self.queue, self.retiring, self.born, self.slot = [], False, 0.0, slot
        self.kill_reason, self.killed_for = "", -1
        self.reported = self.acknowledged = self.told = 0
        self.closed, self.inbox = False, bytearray()
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
        self.pool = autocron._Pool(self.store, os.getpid(), autocron._Connection(
            write_end, readable=False), spawn=self.spawn, clock=lambda: self.now)
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
        self.pool._lease_clock and os.close(self.pool._lease_clock.fd)
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
