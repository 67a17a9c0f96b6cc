"""Tar bombs are refused early, with a message naming the archive, the member and the limit."""
from __future__ import annotations

import os

import pytest

from almaqa_casa.delivery.archive import (
    ArchiveError,
    Limits,
    extract,
    extract_archives,
    limits_for,
)
from tests.hostile.tarmakers import many_files_tgz, zero_bomb_tgz

GiB = 1 << 30
MiB = 1 << 20


def _empty(folder):
    return not folder.exists() or list(folder.iterdir()) == []


def test_small_tgz_of_gigabytes_of_zeros_as_caltables(tmp_path):
    tgz = tmp_path / "uid___A001_X1_X2.session_1.caltables.tgz"
    size = zero_bomb_tgz(tgz, [3 * GiB])
    assert size < 4 * MiB                       # a 3 MB .tar.gz of 3 GiB of zeros
    with pytest.raises(ArchiveError) as ei:
        extract(tgz, tmp_path / "out")
    msg = str(ei.value)
    assert msg.startswith(str(tgz)) and "'bomb0.bin'" in msg
    assert "200 times" in msg and "caltables tarball" in msg
    assert _empty(tmp_path / "out")


def test_refused_on_the_header_before_reading_the_data(tmp_path):
    """The same bomb with garbage after its first 64 MiB of data: refusing on the
    declared size never reads the data, so the limit (not corruption) is reported."""
    tgz = tmp_path / "uid___A001_X1_X2.session_1.caltables.tgz"
    zero_bomb_tgz(tgz, [3 * GiB], poison_after=1)
    with pytest.raises(ArchiveError, match="200 times"):
        extract(tgz, tmp_path / "out")
    # control: a reader that does read the data finds the garbage
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        extract(tgz, tmp_path / "out2", limits=Limits(None, None))
    assert _empty(tmp_path / "out") and _empty(tmp_path / "out2")


def test_flagversions_bounded_by_the_ms_size(tmp_path):
    tgz = tmp_path / "uid___A002_X1_X2.ms.flagversions.tgz"
    zero_bomb_tgz(tgz, [3 * GiB])
    lim = limits_for("flagversions", ms_bytes=400 * MiB)       # flags of a 400 MiB MS
    assert lim.max_bytes == 100 * MiB
    with pytest.raises(ArchiveError) as ei:
        extract(tgz, tmp_path / "out", limits=lim)
    assert str(ei.value).startswith(str(tgz))
    assert "'bomb0.bin'" in str(ei.value) and "limit of 100.0 MiB for a flagversions" in str(ei.value)
    assert _empty(tmp_path / "out")


def test_many_members_each_small_refused_on_the_total(tmp_path):
    tgz = tmp_path / "x.auxproducts.tgz"
    zero_bomb_tgz(tgz, [8 * MiB] * 40)
    with pytest.raises(ArchiveError, match=r"member 'bomb6\.bin' brings the extracted size to "
                                           r"56\.0 MiB: over the limit of 50\.0 MiB"):
        extract(tgz, tmp_path / "out", limits=Limits(50 * MiB, None, kind="test"))
    assert _empty(tmp_path / "out")


def test_200000_tiny_files_refused_on_count(tmp_path):
    """As a flagversions tarball (a few flag tables: at most 5,000 members): refused at
    member 5,001, long before the 200,000th; nothing kept."""
    tgz = many_files_tgz(tmp_path / "uid___A002_X1_X2.ms.flagversions.tgz", 200_000)
    assert limits_for("flagversions").max_members == 5_000
    assert limits_for("caltables").max_members == 100_000
    with pytest.raises(ArchiveError) as ei:
        extract(tgz, tmp_path / "out")
    msg = str(ei.value)
    assert msg.startswith(tgz) and "'t/f005000' is member number 5001" in msg
    assert "over the limit of 5000 members for a flagversions tarball" in msg
    assert _empty(tmp_path / "out")


def test_count_limit_among_archive_tars(tmp_path):
    tars = [many_files_tgz(tmp_path / f"p_00{i}_of_002.tar.gz", n, prefix=f"p{i}")
            for i, n in ((1, 1500), (2, 3000))]
    with pytest.raises(ArchiveError, match=r"p_002_of_002\.tar\.gz: member 'p2/f002000'.*"
                                           r"over the limit of 2000 members"):
        extract_archives(tars, tmp_path / "out", limits=Limits(None, 2000))
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == [".almaqa-extract", "p1"]   # the first is complete
    assert len(os.listdir(out / "p1")) == 1500


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("ALMAQA_EXTRACT_MAX_MEMBERS", "10")
    assert limits_for("archive").max_members == 10
    tgz = many_files_tgz(tmp_path / "a.tgz", 20)
    with pytest.raises(ArchiveError, match="member number 11"):
        extract(tgz, tmp_path / "out")
    monkeypatch.setenv("ALMAQA_EXTRACT_MAX_MEMBERS", "0")          # 0: unbounded
    assert len(list((extract(tgz, tmp_path / "out"))[0].iterdir())) == 20
    monkeypatch.setenv("ALMAQA_EXTRACT_MAX_BYTES", "lots")
    with pytest.raises(ArchiveError, match="ALMAQA_EXTRACT_MAX_BYTES='lots' is not a number"):
        limits_for("caltables")


def test_does_not_fit_on_the_disk(tmp_path):
    """Free space is checked before a member is written (statvfs of the destination)."""
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    tgz = tmp_path / "big.tar.gz"
    zero_bomb_tgz(tgz, [free + GiB], chunk=256 * MiB)
    with pytest.raises(ArchiveError, match=r"member 'bomb0\.bin' .* does not fit on the disk"):
        extract(tgz, tmp_path / "out", limits=Limits(None, None))
    assert _empty(tmp_path / "out")
