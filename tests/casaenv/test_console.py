"""CASA's console output (C++ logger echoes, prints, child processes) goes to
the log file during a capture; the terminal stays reachable for progress bars."""
import os
import subprocess
import sys
from pathlib import Path

from almaqa_casa.casaenv.console import is_casalog_line
from tests.cli.ptyrun import run_in_pty

SCRIPT = """\
import os, subprocess, sys
import almaqa_casa
from casatasks import casalog
from almaqa_casa.casaenv.console import capture_console
from almaqa_casa.log import terminal
log = sys.argv[1]
casalog.setlogfile(log)
print('BEFORE', flush=True)
with capture_console(log, echo=sys.argv[2] == 'echo'):
    casalog.post('warn-from-casa', 'WARN')          # the C++ logger echoes it on fd 2
    print('python-print')
    os.write(1, b'raw-on-fd1\\n')
    subprocess.run([sys.executable, '-c',
                    'import sys; from almaqa_casa.log import terminal; t = terminal(); '
                    'print("child-print"); '
                    't is not None and t.write("CHILD-ON-TERMINAL\\\\n")'], check=True)
    t = terminal()
    if t is not None:
        t.write('PARENT-ON-TERMINAL\\n'); t.flush()
    print('TERMINAL', t is not None, file=sys.stderr)
print('AFTER', flush=True)
"""


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "capture.py"
    path.write_text(SCRIPT)
    return path


def _console_lines(log: str) -> list[str]:
    return [ln.split("\t", 3)[3] for ln in log.splitlines() if "\tconsole\t" in ln]


def test_capture_sends_console_output_to_the_log(tmp_path):
    log = tmp_path / "run.log"
    r = subprocess.run([sys.executable, str(_script(tmp_path)), str(log), "quiet"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["BEFORE", "AFTER"]
    assert r.stderr == ""
    text = log.read_text()
    # the logged message once (its console echo dropped), the rest as console lines
    assert sum("warn-from-casa" in ln for ln in text.splitlines()) == 1
    assert _console_lines(text) == ["python-print", "raw-on-fd1", "child-print", "TERMINAL False"]


def test_echo_copies_the_console_to_the_terminal(tmp_path):
    log = tmp_path / "run.log"
    r = subprocess.run([sys.executable, str(_script(tmp_path)), str(log), "echo"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for word in ("warn-from-casa", "python-print", "raw-on-fd1", "child-print"):
        assert word in r.stderr
    assert "python-print" in _console_lines(log.read_text())


def test_terminal_reaches_the_tty_from_parent_and_children(tmp_path):
    log = tmp_path / "run.log"
    rc, shown = run_in_pty([sys.executable, str(_script(tmp_path)), str(log), "quiet"],
                           str(tmp_path), timeout=300)
    assert rc == 0, shown
    lines = [ln for ln in shown.splitlines() if ln.strip()]
    assert lines == ["BEFORE", "CHILD-ON-TERMINAL", "PARENT-ON-TERMINAL", "AFTER"]
    assert "TERMINAL True" in _console_lines(log.read_text())
    assert "ALMAQA_TERMINAL" not in os.environ


def test_casalog_line_recognised():
    assert is_casalog_line(b"2026-12-05 00:40:37\tWARN\t::casa\tx\n")
    assert is_casalog_line(b"2026-12-05 00:40:37\tSEVERE\tCalibrater::\tCaltable x is missing\n")
    assert not is_casalog_line(b"WARN something printed\n")
    assert not is_casalog_line(b"2026-12-05 a\tWARN\tx\n")


def test_quiet_for_python_callers(tmp_path):
    code = ("import almaqa_casa.log\nfrom casatasks import casalog\n"
            f"casalog.setlogfile({str(tmp_path / 'q.log')!r})\n"
            "with almaqa_casa.log.quiet() as path:\n"
            "    casalog.post('quiet-warning', 'WARN')\n"
            "    print('quiet-print')\n"
            "casalog.post('loud-warning', 'WARN')\nprint('PATH', path)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "quiet-warning" not in r.stderr and "loud-warning" in r.stderr
    assert r.stdout.split() == ["PATH", str(tmp_path / "q.log")]
    text = (tmp_path / "q.log").read_text()
    assert "quiet-warning" in text and "quiet-print" in _console_lines(text)
