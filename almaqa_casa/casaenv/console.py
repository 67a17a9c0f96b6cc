"""Send CASA's console output to the run's log file, not the terminal.

CASA writes to the process's file descriptors 1 and 2 directly: the C++
logger echoes every WARN and SEVERE message there (``casalog.showconsole``
does not stop it), casatasks and the tools print, and worker processes
inherit both descriptors.  :func:`capture_console` points descriptors 1 and 2
at a pipe for the duration of a run; a thread reads it and

* drops the logger's echoes (lines in the CASA log format: the message is
  already in the log file),
* appends every other line to the log file as an INFO line of origin
  ``console`` (so the file keeps CASA's tab-separated format),
* with ``echo=True`` (``almaqa -v``) also copies everything to the terminal.

Meanwhile :func:`almaqa_casa.log.terminal` gives the original terminal for
progress bars, also in worker processes (through ``$ALMAQA_TERMINAL``).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator

from .. import log as _log

__all__ = ["capture_console", "is_casalog_line"]

_CASALOG_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\t(SEVERE|ERROR|WARN|INFO\d?|DEBUG\d?|DEBUGGING)\t")


def is_casalog_line(line: bytes) -> bool:
    """A console line that is the CASA logger's echo of a logged message (pure)."""
    return bool(_CASALOG_LINE.match(line))


def _format(line: bytes) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S").encode()
    return stamp + b"\tINFO\tconsole\t" + line.rstrip(b"\r\n") + b"\n"


class _Pump(threading.Thread):
    """Reads the pipe until every writer has closed it."""

    def __init__(self, read_fd: int, logfile: str, echo_fd: int | None):
        """``echo_fd`` (owned and closed by the pump): where ``echo`` copies lines."""
        super().__init__(name="almaqa-console", daemon=True)
        self.read_fd = read_fd
        self.logfile = logfile
        self.echo_fd = echo_fd

    def _line(self, line: bytes, sink) -> None:
        if self.echo_fd is not None:
            try:
                os.write(self.echo_fd, line)
            except OSError:
                pass
        if sink is not None and line.strip() and not is_casalog_line(line):
            sink.write(_format(line))
            sink.flush()

    def run(self) -> None:
        try:
            sink = open(self.logfile, "ab")
        except OSError:
            sink = None
        pending = b""
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._line(line + b"\n", sink)
            if pending:
                self._line(pending + b"\n", sink)
        finally:
            os.close(self.read_fd)
            if self.echo_fd is not None:
                os.close(self.echo_fd)
            if sink is not None:
                sink.close()


@contextlib.contextmanager
def capture_console(logfile: str, echo: bool = False) -> Iterator[None]:
    """Descriptors 1 and 2 (this process and the children it starts) go to
    ``logfile`` until the block ends; see the module docstring."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    term_stream = None
    old_term = None
    old_env = os.environ.get(_log.TERMINAL_ENV)
    if os.isatty(saved_err):
        term_stream = os.fdopen(os.dup(saved_err), "w", buffering=1, errors="replace")
        old_term = _log.set_terminal(term_stream)
        with contextlib.suppress(OSError):
            os.environ[_log.TERMINAL_ENV] = os.ttyname(saved_err)
    read_fd, write_fd = os.pipe()
    pump = _Pump(read_fd, logfile, os.dup(saved_err) if echo else None)
    pump.start()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        pump.join(timeout=30)   # EOF once children holding the pipe are gone
        if term_stream is not None:
            _log.set_terminal(old_term)
            term_stream.close()
        if old_env is None:
            os.environ.pop(_log.TERMINAL_ENV, None)
        else:
            os.environ[_log.TERMINAL_ENV] = old_env
