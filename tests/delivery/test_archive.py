"""Safe tar extraction: traversal, absolute names, links, truncation."""
import io
import os
import tarfile

import pytest

from almaqa_casa.delivery.archive import ArchiveError, extract, extract_into, list_members


def _tar(path, members, gz=False):
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
                tar.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                tar.addfile(ti)


def test_good_extract_and_merge(tmp_path):
    a = tmp_path / "a.tgz"
    b = tmp_path / "b.tar"
    _tar(a, [("proj/raw/x.txt", "file", b"x"), ("proj/link", "sym", "raw/x.txt")], gz=True)
    _tar(b, [("proj/product/y.txt", "file", b"y")])
    dest = tmp_path / "out"
    extract_into([a, b], dest)
    assert (dest / "proj/raw/x.txt").read_bytes() == b"x"
    assert (dest / "proj/product/y.txt").read_bytes() == b"y"   # merged, not replaced
    assert os.readlink(dest / "proj/link") == "raw/x.txt"
    assert list_members(a) == ["proj/raw/x.txt", "proj/link"]
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("members, why", [
    ([("../evil.txt", "file", b"e")], "outside"),
    ([("a/../../evil.txt", "file", b"e")], "outside"),
    ([("/etc/evil", "file", b"e")], "absolute"),
    ([("ok/l", "sym", "/etc/passwd")], "absolute"),
    ([("ok/l", "sym", "../../outside")], "outside"),
    ([("ok/f", "fifo", None)], "special"),
])
def test_unsafe_members_refused(tmp_path, members, why):
    a = tmp_path / "bad.tar"
    _tar(a, [("ok/fine.txt", "file", b"f")] + members)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=why) as ei:
        extract(a, dest)
    assert "bad.tar" in str(ei.value)
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []     # nothing extracted, no leftovers


@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path, gz):
    a = tmp_path / ("t.tgz" if gz else "t.tar")
    _tar(a, [("d/big.bin", "file", os.urandom(200_000)), ("d/after.txt", "file", b"z")], gz=gz)
    data = a.read_bytes()
    a.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="truncated|corrupt|readable") as ei:
        extract(a, dest)
    assert str(a) in str(ei.value)
    assert list(dest.iterdir()) == []


def test_not_a_tar(tmp_path):
    a = tmp_path / "x.tgz"
    a.write_text("hello")
    with pytest.raises(ArchiveError, match="x.tgz"):
        extract(a, tmp_path / "o")
