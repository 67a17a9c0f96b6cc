"""safeio: a FIFO, device, socket or folder is never opened (or read) as data."""
from __future__ import annotations

import os
import socket

import pytest

from almaqa_casa.errors import InputError
from almaqa_casa.safeio import (
    SpecialFileError,
    TooLargeError,
    kind_of,
    open_regular,
    read_bytes,
    read_text,
    require_regular,
)


@pytest.fixture
def specials(tmp_path):
    fifo = tmp_path / "x.pbcor.fits"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.fits"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (tmp_path / "folder.fits").mkdir()
    os.symlink(fifo, tmp_path / "link-to-fifo.fits")
    yield {"fifo": fifo, "socket": sock_path, "folder": tmp_path / "folder.fits",
           "link": tmp_path / "link-to-fifo.fits", "device": "/dev/null"}
    sock.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("which, kind", [("fifo", "FIFO"), ("socket", "socket"),
                                         ("folder", "folder"), ("link", "FIFO"),
                                         ("device", "character device")])
def test_specials_are_refused_without_blocking(specials, which, kind):
    path = specials[which]
    for call in (lambda: require_regular(path), lambda: open_regular(path, "rb"),
                 lambda: open_regular(path), lambda: read_bytes(path, 10),
                 lambda: read_text(path, 10)):
        with pytest.raises(SpecialFileError, match=rf"{os.fspath(path)}: is a.* {kind}"):
            call()
    assert issubclass(SpecialFileError, InputError) and issubclass(SpecialFileError, ValueError)


def test_regular_files(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("héllo\nworld\n")
    assert require_regular(f).st_size == len("héllo\nworld\n".encode())
    with open_regular(f) as fh:
        assert fh.read() == "héllo\nworld\n"
    with open_regular(f, "rb") as fh:
        assert fh.read(2) == b"h\xc3" and os.get_blocking(fh.fileno())   # O_NONBLOCK cleared
    assert read_text(f, 100) == "héllo\nworld\n"
    os.symlink(f, tmp_path / "l.txt")
    assert read_text(tmp_path / "l.txt", 100) == "héllo\nworld\n"
    with pytest.raises(SpecialFileError, match="symbolic link"):
        read_text(tmp_path / "l.txt", 100, follow_symlinks=False)
    with pytest.raises(TooLargeError, match=r"a\.txt: 13 bytes, larger than a report can be \(12"):
        read_bytes(f, 12, what="report")
    with pytest.raises(FileNotFoundError):
        require_regular(tmp_path / "missing")
    with pytest.raises(ValueError, match="reads only"):
        open_regular(f, "w")
    (tmp_path / "b.txt").write_bytes(b"ok\nok\n\x80\n")
    with pytest.raises(InputError, match=r"b\.txt, line 3: not utf-8 text"):
        read_text(tmp_path / "b.txt", 100)


def test_kind_of():
    import stat
    assert kind_of(stat.S_IFREG | 0o644) is None
    assert kind_of(stat.S_IFIFO) == "a FIFO (named pipe)"
    assert kind_of(stat.S_IFBLK) == "a block device"
