"""What a person at a terminal sees (issue 19): a restore on a pseudo-terminal
shows our lines only (the log's name, progress, the summary), never CASA's
SEVERE/WARN chatter, which goes to the run's log file; qa_validate prints a
short summary."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.cli.ptyrun import run_in_pty

ALMAQA = os.path.join(os.path.dirname(sys.executable), "almaqa")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^\[[#-]+\]\s+\d+/\d+ ")


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("ALMAQA_CASALOG", "ALMAQA_RUNLOG")}


def _shadow(member: str, where: Path) -> Path:
    """A member folder whose delivered folders link to the shared (read-only) delivery."""
    member = Path(member)
    shadow = where / member.name
    shadow.mkdir(parents=True)
    for entry in member.iterdir():
        if entry.name != "calibrated":
            os.symlink(entry, shadow / entry.name)
    return shadow


def _screen_lines(text: str) -> list[str]:
    """What stays readable on the terminal: lines split at newlines and carriage returns."""
    return [ln.strip() for ln in re.split(r"[\r\n]", ANSI.sub("", text)) if ln.strip()]


@pytest.mark.slow
def test_restore_on_a_terminal_shows_only_our_lines(pipeline_delivery, tmp_path):
    shadow = _shadow(pipeline_delivery["member_dir"], tmp_path / "d")
    rc, shown = run_in_pty([ALMAQA, "qa_restore", "--deliverydir", str(shadow), "--SPACESAVING", "2",
                            "--DOSPLIT", "true", "--DOCONTSUB", "true"], str(tmp_path), _env())
    assert rc == 0, shown
    lines = _screen_lines(shown)
    assert not [ln for ln in lines if "SEVERE" in ln or "WARN" in ln or "\t" in ln], shown
    m = re.match(r"^almaqa qa_restore: CASA log: (\S+)$", lines[0])
    assert m, lines[0]
    logfile = Path(m.group(1))
    start = next(i for i, ln in enumerate(lines) if ln.startswith("qa_restore: ok"))
    assert all(PROGRESS.match(ln) for ln in lines[1:start]), lines[1:start]
    summary = lines[start:]
    assert summary[-1] == f"log: {logfile}"
    assert len(summary) < 40
    for eb in pipeline_delivery["truth"]["ebs"]:
        assert any(eb in ln and "_targets_line.ms" in ln for ln in summary), summary
    # CASA's chatter is in the run's log, and our lines there carry our origin
    log = logfile.read_text()
    assert "SEVERE" in log and "WARN" in log
    rows = [ln.split("\t", 3) for ln in log.splitlines() if ln.count("\t") >= 3]
    ours = [r for r in rows if "qa_restore completed in" in r[3] or "Begin Task: qa_restore" in r[3]]
    assert ours and all(r[2].startswith("qa_restore::") for r in ours)
    assert not [r for r in rows if re.match(r"^(?!qa_restore::)\w+::qa_restore::", r[2])]


@pytest.mark.slow
def test_validate_summary_is_short(pipeline_delivery, tmp_path):
    rc, shown = run_in_pty([ALMAQA, "qa_validate", "--deliverydir", pipeline_delivery["project_dir"],
                            "--outdir", str(tmp_path / "report")], str(tmp_path), _env())
    lines = _screen_lines(shown)
    assert rc == 0, shown
    assert len(lines) < 40, shown
    assert not [ln for ln in lines if "SEVERE" in ln or "WARN" in ln]
    summary = json.loads((tmp_path / "report" / "validation.json").read_text())["summary"]
    assert lines[1].startswith("qa_validate: ok")
    assert (f"{summary['error']} errors, {summary['warning']} warnings, {summary['info']} info"
            in lines[1])
    assert f"report: {tmp_path / 'report' / 'validation.html'}" in lines
    assert lines[-1].startswith("log: ")


def _skeleton(root: Path, n: int) -> Path:
    """A text-only member with ``n`` unreadable pbcor products: many findings of a few kinds."""
    member = root / "2025.1.00001.S" / "science_goal.uid___A001_X1_X1" / "group.uid___A001_X1_X2" \
        / "member.uid___A001_X1_X3"
    (member / "product").mkdir(parents=True)
    for i in range(n):
        (member / "product" / f"member.uid___A001_X1_X3.T_sci.spw{i}.cube.I.pbcor.fits").write_text("x")
    return root


def test_validate_summary_of_a_broken_delivery(tmp_path):
    from tests.cli.test_cli import almaqa
    root = _skeleton(tmp_path / "d", 30)
    r = almaqa(["qa_validate", "--deliverydir", str(root), "--outdir", "report",
                "--thumbnails", "false"], tmp_path)
    assert r.returncode == 1                       # an invalid delivery
    lines = r.stdout.splitlines()
    assert len(lines) < 40
    data = json.loads((tmp_path / "report" / "validation.json").read_text())
    s = data["summary"]
    assert f"NOT valid; findings: {s['error']} errors, {s['warning']} warnings" in lines[0]
    codes = {f["code"] for f in data["findings"] if f["severity"] == "error"}
    shown = [ln for ln in lines if ln.startswith("  [")]
    for code in codes:   # every kind of error is named, with its count
        n = sum(1 for f in data["findings"] if f["code"] == code)
        assert any(ln.startswith(f"  [{code}] x{n}, e.g. ") or (n == 1 and ln.startswith(f"  [{code}] "))
                   for ln in shown), (code, shown)
    verbose = almaqa(["qa_validate", "--deliverydir", str(root), "--outdir", "report2",
                      "--thumbnails", "false", "-v"], tmp_path)
    listed = [ln for ln in verbose.stdout.splitlines() if ln.startswith("  [")]
    assert len(listed) == len(data["findings"])   # -v lists every finding


@pytest.mark.slow
def test_restore_dry_run_summary(pipeline_delivery, tmp_path):
    from tests.cli.test_cli import almaqa
    shadow = _shadow(pipeline_delivery["member_dir"], tmp_path / "d")
    r = almaqa(["qa_restore", "--deliverydir", str(shadow), "--dryrun", "--SPACESAVING", "2",
                "--DOSPLIT"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("qa_restore: dry run (pipeline calibration), nothing changed: 2 EB(s)")
    plan = json.loads(almaqa(["qa_restore", "--deliverydir", str(shadow), "--dryrun", "--SPACESAVING",
                              "2", "--DOSPLIT", "--json"], tmp_path).stdout)
    for eb in pipeline_delivery["truth"]["ebs"]:
        kinds = [s["kind"] for s in plan["members"][0]["plan"]["steps"] if s["eb"] == eb]
        assert f"      {eb}: {', '.join(kinds)}" in lines
    assert f"    output: {shadow / 'calibrated'}   route: callib" in lines
    assert not (shadow / "calibrated").exists()
