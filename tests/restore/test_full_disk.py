"""A really full disk with the disk check off (spacesaving=-1): a clear error, then a re-run completes.

The output folder is a small tmpfs (a real filesystem that fills up); CASA
aborts the process writing into a full disk, so with the check off the EBs
run in worker processes and the abort becomes the EB's error.
"""
from __future__ import annotations

import subprocess

import pytest

import almaqa_casa  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_names_step_and_folder_and_a_rerun_completes(pipeline_delivery, small_disk):
    from almaqa_casa import qa_restore
    member = pipeline_delivery["member_dir"]
    out = small_disk / "calibrated"
    r = qa_restore(deliverydir=member, outdir=str(out), spacesaving=-1, dosplit=True, nprocs=1)
    assert r["status"] == "failed"
    assert r["disk"]["checked"] is False
    err = r["error"]
    assert str(out) in err and " step uid___" in err and "free some space" in err, err
    # more room on the same filesystem, and the same command completes the job
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    r = qa_restore(deliverydir=member, outdir=str(out), spacesaving=-1, dosplit=True, nprocs=1)
    assert r["status"] == "ok", r.get("error")
    for uid in pipeline_delivery["truth"]["ebs"]:
        assert (out / f"{uid}.ms.split.cal" / "table.dat").is_file()
