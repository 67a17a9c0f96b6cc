"""One run at a time per output folder: a lock file with the holder's identity.

POSIX record locks (``fcntl.lockf``) are released by the kernel when the
holding process dies, so a lock left by a killed run is simply free again
(the stale file is taken over), and they work on NFS, where restores of
large programs run.  The file says who holds it, so a second run can name
the running process instead of failing obscurely.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import AlmaqaError

__all__ = ["Busy", "FolderLock"]


class Busy(AlmaqaError, RuntimeError):
    """Another run holds the lock; the message names it."""


class FolderLock:
    """``with FolderLock(folder, what='qa_restore'):`` holds ``<folder>/.almaqa.lock``."""

    def __init__(self, folder: str | os.PathLike, what: str = "almaqa_casa",
                 name: str = ".almaqa.lock"):
        self.path = Path(folder) / name
        self.what = what
        self._fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            h = self.holder()
            who = (f"process {h.get('pid', '?')} on {h.get('host', '?')} (started "
                   f"{h.get('started', '?')}: {h.get('command', '?')})" if h else "another process")
            raise Busy(f"{self.path.parent}: {self.what} is already running there: {who}. "
                       "Wait for it to finish (or stop it), then run again; a re-run "
                       "completes what is left.") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
