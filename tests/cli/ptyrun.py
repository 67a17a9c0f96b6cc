"""Run a command on a pseudo-terminal, as a person at a terminal would, and
return its exit status and everything the terminal showed."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def run_in_pty(argv: list[str], cwd: str, env: dict | None = None,
               timeout: float = 900) -> tuple[int, str]:
    """``(exit status, terminal text)``; stdin, stdout and stderr are all the terminal."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True)
    finally:
        os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{argv} did not end in {timeout} s:\n{out.decode(errors='replace')}")
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None and not select.select([master], [], [], 0)[0]:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return proc.returncode, out.decode(errors="replace").replace("\r\n", "\n")
