"""The manual path through the task (``qa_restore``) and the CLI, on the tiny delivery."""
import json
import os
import subprocess
import sys

import pytest

import almaqa_casa  # noqa: F401
from tests.restore.test_manual_support import (
    EB1,
    check_tree,
    inputs_checksum,
    make_tiny_delivery,
    simulate_template,
)


@pytest.fixture(scope="module")
def template_ms(tmp_path_factory):
    return simulate_template(tmp_path_factory.mktemp("tpl"))


def _call(member, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), **kw)


def test_task_restores_manual_member(tmp_path, template_ms, restore_checksum):
    member = make_tiny_delivery(tmp_path / "d", template_ms)
    before = inputs_checksum(restore_checksum, member)
    res = _call(member, spacesaving=2)
    assert res["status"] == "ok", res
    json.dumps(res)
    check_tree(member / "calibrated", 2)
    assert inputs_checksum(restore_checksum, member) == before


def test_task_reports_version_pin_and_cli_exit(tmp_path, template_ms):
    member = make_tiny_delivery(tmp_path / "d", template_ms, version="5.1.1", post=False)
    res = _call(member)
    assert res["status"] == "failed"
    assert "5.1.1" in res["error"] and "ignoreversion" in res["error"]
    cli = subprocess.run([sys.executable, "-m", "almaqa_casa.cli", "qa_restore", "--deliverydir",
                          str(member), "--json"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=600)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "5.1.1" in cli.stdout + cli.stderr
    assert not os.path.exists(member / "calibrated" / f"{EB1}.ms.split.cal")


def test_task_dryrun_changes_nothing(tmp_path, template_ms, restore_checksum):
    member = make_tiny_delivery(tmp_path / "d", template_ms)
    before = inputs_checksum(restore_checksum, member)
    res = _call(member, dryrun=True, spacesaving=1)
    assert res["status"] == "ok"
    assert not (member / "calibrated").exists()
    assert EB1 in json.dumps(res)
    assert inputs_checksum(restore_checksum, member) == before
