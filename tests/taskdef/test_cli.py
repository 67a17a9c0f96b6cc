"""The command line built from the XML: parsing, exit codes, --json, --help."""
import json
import os
import subprocess
import sys

import pytest

from almaqa_casa.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_task


def test_json_result_and_typed_values(toytask, infile, capsys):
    rc = run_task(toytask, ["--infile", infile, "--niter", "7", "--verbose",
                            "--chans", "3,4", "--options", '{"a": 1}', "--MODE=slow", "--json"])
    out = capsys.readouterr().out
    assert rc == EXIT_OK
    result = json.loads(out)
    assert result["niter"] == 7 and result["verbose"] is True and result["chans"] == [3, 4]
    assert result["options"] == {"a": 1}
    assert result["mode"] == "slow" and result["factor"] == 2.5


def test_variant_reads_string_or_list(toytask, infile, capsys):
    run_task(toytask, ["--infile", infile, "--spw", "0,1", "--json"])
    assert json.loads(capsys.readouterr().out)["spw"] == "0,1"  # a CASA selection string
    run_task(toytask, ["--infile", infile, "--spw", '["0", "1"]', "--json"])
    assert json.loads(capsys.readouterr().out)["spw"] == ["0", "1"]


@pytest.mark.parametrize("argv, word", [
    (["--niter", "ten"], "niter"),
    (["--niter", "-4"], "niter"),
    (["--verbose", "maybe"], "verbose"),
    (["--mode", "medium"], "mode"),
    (["--options", "[1]"], "options"),
    (["--bogus", "1"], "unknown option --bogus"),
])
def test_bad_arguments_exit_2(toytask, infile, capsys, argv, word):
    rc = run_task(toytask, ["--infile", infile, *argv])
    assert rc == EXIT_USAGE
    assert word in capsys.readouterr().err


def test_missing_input_exit_2(toytask, tmp_path, capsys):
    assert run_task(toytask, ["--infile", str(tmp_path / "missing")]) == EXIT_USAGE
    assert "infile" in capsys.readouterr().err


def test_task_failure_exit_1(toytask, infile, capsys):
    assert run_task(toytask, ["--infile", infile, "--fail"]) == EXIT_FAILED
    assert "toy failure requested" in capsys.readouterr().err


def test_help_from_xml(toytask, capsys):
    assert run_task(toytask, ["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "A test-only task exercising every parameter kind" in out
    assert "--niter" in out and "Iterations" in out and "[default: 10]" in out


def _run(args, cwd):
    env = dict(os.environ)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_console_script_and_module(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "almaqa")
    r = _run([exe, "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("qa_restore", "qa_validate", "qa_polmaps", "qa_renormplots", "synth"):
        assert name in r.stdout
    r = _run([sys.executable, "-m", "almaqa_casa", "qa_validate", "--help"], tmp_path)
    assert r.returncode == 0 and "--deliverydir" in r.stdout and "--req_sensitivity" in r.stdout
    r = _run([exe, "qa_restore", "--deliverydir", str(tmp_path / "none")], tmp_path)
    assert r.returncode == 2 and "deliverydir" in r.stderr
    r = _run([exe, "no_such_task"], tmp_path)
    assert r.returncode == 2 and "unknown task" in r.stderr
    assert not list(tmp_path.glob("casa-*.log"))
