"""Machines and faults the tests of autocron use: a small disk that fills up, for now.

Everything here is real: a tmpfs mounted for the test (root only, as in CI) and unmounted
after it, whatever the test left in it.
"""

import contextlib
import errno
import os
import subprocess

import pytest


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
