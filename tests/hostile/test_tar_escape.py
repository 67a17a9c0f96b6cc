"""The PATH_MAX symlink chain (CVE-2025-4517) writes nothing outside, wherever it is delivered."""
from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pytest

from almaqa_casa.delivery.archive import ArchiveError, extract, extract_archives
from tests.hostile.tarmakers import files_tar, pathmax_chain_tar

UID = "uid___A002_Xc1_X2"


def _outside_state(outer: Path, dest_name: str) -> dict:
    """Everything in ``outer`` except the destination folder: names, kinds, contents."""
    out = {}
    for p in sorted(outer.iterdir()):
        if p.name == dest_name:
            continue
        out[p.name] = ("link", os.readlink(p)) if p.is_symlink() else (
            ("file", p.read_bytes()) if p.is_file() else ("dir", sorted(os.listdir(p))))
    return out


@pytest.fixture
def outer(tmp_path):
    outer = tmp_path / "outer"
    (outer / "dest").mkdir(parents=True)
    (outer / "flag").write_bytes(b"original")
    return outer


def _fixed_python() -> bool:
    """CPython releases with the fix of CVE-2025-4517 (python/cpython#135034)."""
    fixed = {(3, 10): 18, (3, 11): 13, (3, 12): 11, (3, 13): 4}
    v = sys.version_info
    return v[:2] >= (3, 14) or v[2] >= fixed.get(v[:2], 99)


def test_the_chain_is_a_real_exploit_of_this_python(outer):
    """Proof that the generated tar is the attack: stock ``filter='data'`` is fooled
    on a Python without the fix (writes outside), or refuses it on a fixed one."""
    tgz = pathmax_chain_tar(outer.parent / "poc.tgz", str(outer / "dest"))
    with tarfile.open(tgz) as tf:
        if _fixed_python():
            with pytest.raises((OSError, tarfile.TarError, KeyError)):
                tf.extractall(outer / "dest", filter="data")
            assert (outer / "flag").read_bytes() == b"original"
        else:
            tf.extractall(outer / "dest", filter="data")
            assert (outer / "flag").read_bytes() == b"overwrite"
            assert (outer / "newfile").read_bytes() == b"new"


@pytest.mark.parametrize("up", [1, 2, 3])
def test_chain_as_flagversions_tarball(outer, up):
    before = _outside_state(outer, "dest")
    tgz = pathmax_chain_tar(outer.parent / f"{UID}.ms.flagversions.tgz", str(outer / "dest"),
                            up=up)
    with pytest.raises(ArchiveError) as ei:
        extract(tgz, outer / "dest")
    msg = str(ei.value)
    assert msg.startswith(str(tgz)) and "'escape'" in msg and "outside" in msg
    assert _outside_state(outer, "dest") == before          # flag intact, no newfile
    assert list((outer / "dest").iterdir()) == []          # nothing kept, no temporary folder
    assert not (outer.parent / "newfile").exists()


def test_chain_through_the_restore_flag_step(outer):
    """casasteps.restore_flags (the restore's own call) refuses it naming the tarball."""
    from almaqa_casa.restore.casasteps import restore_flags
    before = _outside_state(outer, "dest")
    tgz = pathmax_chain_tar(outer.parent / f"{UID}.ms.flagversions.tgz", str(outer / "dest"))
    vis = outer / "dest" / f"{UID}.ms"
    with pytest.raises(ArchiveError, match=rf"{UID}\.ms\.flagversions\.tgz.*'escape'.*outside"):
        restore_flags(str(vis), tgz)
    assert _outside_state(outer, "dest") == before
    assert list((outer / "dest").iterdir()) == []


def test_chain_among_archive_tars(outer, tmp_path):
    tars = tmp_path / "tars"
    tars.mkdir()
    a = files_tar(tars / "2025.1.00001.S_uid___A001_X1_X1_001_of_003.tar",
                   {"2025.1.00001.S/README": b"r"})
    poc = pathmax_chain_tar(tars / "2025.1.00001.S_uid___A001_X1_X1_002_of_003.tar",
                            str(outer / "dest"), gz=False)
    c = files_tar(tars / "2025.1.00001.S_uid___A001_X1_X1_003_of_003.tar",
                   {"2025.1.00001.S/product/x.fits": b"x"})
    before = _outside_state(outer, "dest")
    with pytest.raises(ArchiveError) as ei:
        extract_archives([a, poc, c], outer / "dest")
    assert str(ei.value).startswith(poc) and "outside" in str(ei.value)
    assert _outside_state(outer, "dest") == before
    # the first tar is complete and recorded; nothing of the chain is kept
    dest = outer / "dest"
    assert sorted(p.name for p in dest.iterdir()) == [".almaqa-extract", "2025.1.00001.S"]
    assert sorted(os.listdir(dest / "2025.1.00001.S")) == ["README"]
    state = sorted(os.listdir(dest / ".almaqa-extract"))
    assert state == ["2025.1.00001.S_uid___A001_X1_X1_001_of_003.tar.done.json", "lock"]


def test_link_of_one_archive_redirected_by_the_next_is_refused(tmp_path):
    """Two archives, each safe alone: A links d/l -> ../e/../.. through its link e -> d/s;
    B makes e a folder, so d/l now leads outside.  The merge refuses (and removes) it."""
    import io
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    with tarfile.open(a, "w") as tar:
        for name, kind, target in [("p/d/s", "dir", ""), ("p/e", "sym", "d/s"),
                                   ("p/d/l", "sym", "../e/../../..")]:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE if kind == "dir" else tarfile.SYMTYPE
            ti.linkname = target
            tar.addfile(ti)
    with tarfile.open(b, "w") as tar:
        ti = tarfile.TarInfo("p/e")
        ti.type = tarfile.DIRTYPE
        tar.addfile(ti)
        ti = tarfile.TarInfo("p/e/x")
        ti.size = 1
        tar.addfile(ti, io.BytesIO(b"x"))
    dest = tmp_path / "dest"
    extract_archives([a], dest)                  # alone, A is fine: d/l resolves to p/..= root
    assert os.readlink(dest / "p/d/l") == "../e/../../.."
    with pytest.raises(ArchiveError, match=r"b\.tar: link 'p/d/l'.*outside"):
        extract_archives([a, b], dest)
    assert not os.path.lexists(dest / "p/d/l")


def test_chain_among_archive_tars_through_the_restore_engine(tmp_path):
    """qa_restore's own unpacking of a folder of archive tars (restore.engine)."""
    from almaqa_casa.restore.engine import find_or_unpack
    outer = tmp_path / "outer"
    folder = outer / "dest"
    folder.mkdir(parents=True)
    (outer / "flag").write_bytes(b"original")
    files_tar(folder / "2025.1.00001.S_uid___A001_X1_X1_001_of_002.tar",
               {"2025.1.00001.S/README": b"r"})
    poc = pathmax_chain_tar(folder / "2025.1.00001.S_uid___A001_X1_X1_002_of_002.tar",
                            str(folder), gz=False)
    with pytest.raises(ArchiveError, match=rf"{poc}: member 'escape' .*outside"):
        find_or_unpack(str(folder), dryrun=False)
    assert (outer / "flag").read_bytes() == b"original"
    assert sorted(os.listdir(outer)) == ["dest", "flag"]
    assert not list(tmp_path.rglob("newfile"))
