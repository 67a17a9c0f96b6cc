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


# ---- members resolved through the links already extracted ---------------------------

def _tar2(path, members):
    """``members``: (name, kind, payload) with kinds file/dir/sym/hard/chr/blk/fifo."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if kind == "file":
                ti.size = len(payload)
                tar.addfile(ti, io.BytesIO(payload))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                       "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                       "fifo": tarfile.FIFOTYPE}[kind]
            ti.linkname = payload or ""
            tar.addfile(ti)
    return path


@pytest.mark.parametrize("members, why", [
    # a link inside, then a member written through it to outside
    ([("d", "dir", None), ("d/up", "sym", ".."), ("d/up/up2", "sym", "d/up/.."),
      ("d/up/up2/evil", "file", b"e")], "outside"),
    # a chain of links each inside, whose composition is outside
    ([("a", "sym", "."), ("b", "sym", "a/a/a/.."), ], "outside"),
    # a link loop
    ([("x", "sym", "y"), ("y", "sym", "x")], "loop"),
    # a later link makes an earlier one lead outside (checked on the final tree)
    ([("p/q", "dir", None), ("p/l", "sym", "q/../.."), ("p/q", "sym", "."), ], "folder"),
    ([("l", "sym", "x/../.."), ("x", "sym", "s/t")], "outside"),
    ([("k", "sym", "x/y/../../.."), ], "outside"),
    # hard links must name a regular file extracted before
    ([("h", "hard", "../etc/passwd")], "outside"),
    ([("h", "hard", "nothing")], "not a regular file"),
    ([("d", "dir", None), ("h", "hard", "d")], "not a regular file"),
    ([("l", "sym", "f"), ("f", "file", b"x"), ("h", "hard", "l")], "not a regular file"),
    # type changes
    ([("d/f", "file", b"x"), ("d", "file", b"y")], "folder into a file"),
    ([("f", "file", b"x"), ("f", "dir", None)], "into a folder"),
    ([("f", "file", b"x"), ("f/g", "file", b"y")], "needs 'f' to be a folder"),
    ([("f", "file", b"x"), ("l", "sym", "f/.."), ("l2", "sym", "l/x")], "through a file"),
    # special files and empty names (the empty-name symlink chain, python/cpython#149486)
    ([("c", "chr", None)], "special"),
    ([("b", "blk", None)], "special"),
    ([("", "sym", "..")], "empty"),
    ([("./", "sym", "x")], "empty"),
    ([("ok/l", "sym", "")], "empty"),
    ([("/".join(["d"] * 200), "dir", None)], "deeper"),
])
def test_resolution_refusals(tmp_path, members, why):
    a = _tar2(tmp_path / "bad.tar", [("ok/fine.txt", "file", b"f")] + members)
    with pytest.raises(ArchiveError, match=why) as ei:
        extract(a, tmp_path / "out")
    assert str(ei.value).startswith(str(a))
    assert list((tmp_path / "out").iterdir()) == []
    assert sorted(os.listdir(tmp_path)) == ["bad.tar", "out"]


def test_member_names():
    from almaqa_casa.delivery.tarsafe import member_parts
    assert member_parts("./a//b/./c/") == ("a", "b", "c")
    assert member_parts(".") == () == member_parts("./")
    for bad in ("n\0ul", "/abs", "a\\b", "C:x", "a/../b", "x" * 5000):
        with pytest.raises(ArchiveError):
            member_parts(bad, "t.tar")


def test_links_inside_are_kept_and_followed(tmp_path):
    a = _tar2(tmp_path / "good.tar", [
        ("./", "dir", None),                       # the root entry of 'tar -C x .'
        ("p/real/x.txt", "file", b"x"),
        ("p/alias", "sym", "real"),
        ("p/alias/y.txt", "file", b"y"),           # written through an inside link
        ("p/up", "sym", "../p/real/../real"),
        ("p/hl", "hard", "p/real/x.txt"),
        ("p/real/x.txt", "file", b"x2"),           # a later member replaces a file...
        ("p/alias", "sym", "real/."),              # ... or a link
        ("p/loopish", "sym", "."),
    ])
    out = tmp_path / "out"
    assert [p.name for p in extract(a, out)] == ["p"]
    assert (out / "p/real/y.txt").read_bytes() == b"y"
    assert (out / "p/real/x.txt").read_bytes() == b"x2"
    assert (out / "p/hl").read_bytes() == b"x"     # the hard link kept the first content
    assert os.readlink(out / "p/alias") == "real/."
    assert os.readlink(out / "p/up") == "../p/real/../real"
    assert (out / "p/real/x.txt").stat().st_mtime == 1_600_000_000


def test_modes_are_data_like(tmp_path):
    a = tmp_path / "m.tar"
    with tarfile.open(a, "w") as tar:
        for name, mode, kind in (("d", 0o7777, tarfile.DIRTYPE), ("d/x", 0o4777, tarfile.REGTYPE),
                                 ("d/ro", 0o400, tarfile.REGTYPE), ("r", 0o500, tarfile.DIRTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = kind, mode
            tar.addfile(ti, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    out = tmp_path / "o"
    extract(a, out)
    mode = lambda p: (out / p).stat().st_mode & 0o7777
    assert mode("d") == 0o755 and mode("d/x") == 0o755     # no setuid, no group/other write
    assert mode("d/ro") == 0o600 and mode("r") == 0o700    # the owner can always write


def test_select_leaves_out_and_does_not_resolve_through_unselected(tmp_path):
    a = _tar2(tmp_path / "s.tgz", [("t1.tbl/table.dat", "file", b"1"),
                                   ("t2.tbl/table.dat", "file", b"2"),
                                   ("t2.tbl/l", "sym", "../../../etc")])
    got = extract(a, tmp_path / "o", select=lambda n: n.split("/")[0] == "t1.tbl")
    assert [p.name for p in got] == ["t1.tbl"]
    assert sorted(os.listdir(tmp_path / "o")) == ["t1.tbl"]


@pytest.mark.timeout(60)
def test_fifo_named_like_a_tarball_is_refused_without_blocking(tmp_path):
    f = tmp_path / "uid___A002_X1_X2.ms.flagversions.tgz"
    os.mkfifo(f)
    with pytest.raises(ArchiveError, match=r"flagversions\.tgz: is a FIFO"):
        extract(f, tmp_path / "o")
    with pytest.raises(ArchiveError, match="FIFO"):
        list_members(f)
    with pytest.raises(ArchiveError, match="file not found"):
        extract(tmp_path / "missing.tgz", tmp_path / "o")


def test_archive_kinds_and_limits():
    from almaqa_casa.delivery.archive import LIMITS, archive_kind, limits_for
    assert archive_kind("uid___A002_X1_X2.ms.flagversions.tgz") == "flagversions"
    assert archive_kind("uid___A001_X1_X2.session_3.caltables.tgz") == "caltables"
    assert archive_kind("uid___A001_X1_X2.s3.caltables.tgz") == "caltables"
    assert archive_kind("uid___A001_X1_X2.hifa_calimage.auxproducts.tgz") == "auxproducts"
    assert archive_kind("2025.1.00001.S_uid___A001_X1_X2_001_of_001.tar") == "archive"
    assert limits_for("flagversions", env={}) == LIMITS["flagversions"]
    assert limits_for("flagversions", ms_bytes=1 << 40, env={}).max_bytes == 1 << 38
    assert limits_for("caltables", env={"ALMAQA_EXTRACT_MAX_BYTES": "1e6"}).max_bytes == 10 ** 6


def test_destination_reached_through_a_link(tmp_path):
    """The caller's destination may be a link (a working folder on another disk);
    only what the archive holds is never followed."""
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "dest")
    a = _tar2(tmp_path / "a.tgz", [("t.tbl/table.dat", "file", b"1"), ("t.tbl/l", "sym", "table.dat")])
    assert [p.name for p in extract(a, tmp_path / "dest")] == ["t.tbl"]
    assert (real / "t.tbl/table.dat").read_bytes() == b"1"
    from almaqa_casa.delivery.archive import extract_archives
    assert extract_archives([a], tmp_path / "dest").tops == ["t.tbl"]
