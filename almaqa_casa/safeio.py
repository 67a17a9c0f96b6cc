"""Open delivered files as data without ever blocking on, or reading, a special file.

A delivery is untrusted input: a FIFO named like a product hangs ``open()``
forever, a device file can have side effects when opened, and a huge
"text" file exhausts memory.  These helpers decide with ``stat`` before
opening, open with ``O_NONBLOCK`` (so a FIFO swapped in between cannot
block) and check the opened descriptor with ``fstat`` (so what was checked
is what is read).  Pure Python, no CASA.

>>> from almaqa_casa.safeio import open_regular, read_text, require_regular
>>> require_regular("member/calibration/flux.csv")          # doctest: +SKIP
>>> with open_regular("product/x.pbcor.fits", "rb") as fh:  # doctest: +SKIP
...     header = fh.read(2880)
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import IO

from .errors import InputError

__all__ = ["SpecialFileError", "TooLargeError", "decode_text", "kind_of", "open_regular",
           "read_bytes", "read_text", "require_regular"]


class SpecialFileError(InputError):
    """A path that should hold data is a FIFO, device, socket or folder."""


class TooLargeError(InputError):
    """A file is larger than its reader accepts."""


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str | None:
    """``None`` for a regular file, else what ``mode`` (``st_mode``) is, in words (pure)."""
    if stat.S_ISREG(mode):
        return None
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a special file"


def require_regular(path: str | os.PathLike, *, follow_symlinks: bool = True) -> os.stat_result:
    """Return ``stat(path)`` if ``path`` is a regular file; never opens it.

    Raises
    ------
    SpecialFileError
        ``path`` is a FIFO, device, socket or folder (or, with
        ``follow_symlinks=False``, a symbolic link); the message names it.
    FileNotFoundError
        ``path`` does not exist.
    """
    st = os.stat(path, follow_symlinks=follow_symlinks)
    what = kind_of(st.st_mode)
    if what is not None:
        raise SpecialFileError(f"{os.fspath(path)}: is {what}, not a regular file; "
                               "it is not read as data")
    return st


def _open_fd(path: str | os.PathLike, follow_symlinks: bool) -> int:
    require_regular(path, follow_symlinks=follow_symlinks)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise SpecialFileError(f"{os.fspath(path)}: is a symbolic link; it is not "
                                   "followed") from None
        raise
    try:
        what = kind_of(os.fstat(fd).st_mode)     # what was opened, not what was checked
        if what is not None:
            raise SpecialFileError(f"{os.fspath(path)}: is {what}, not a regular file; "
                                   "it is not read as data")
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | os.PathLike, mode: str = "r", *, encoding: str | None = "utf-8",
                 errors: str | None = "strict", follow_symlinks: bool = True) -> IO:
    """Open a regular file for reading (``mode`` ``'r'`` or ``'rb'``); never blocks.

    The path is checked with ``stat`` first (a device is never opened), then
    opened with ``O_NONBLOCK`` (``O_NOFOLLOW`` too with
    ``follow_symlinks=False``) and checked again with ``fstat``.  Raises
    :class:`SpecialFileError` naming the path for anything but a regular file.
    """
    if mode not in ("r", "rb", "rt"):
        raise ValueError(f"open_regular reads only ('r' or 'rb'), not {mode!r}")
    fd = _open_fd(path, follow_symlinks)
    if mode == "rb":
        return os.fdopen(fd, "rb")
    return os.fdopen(fd, "r", encoding=encoding, errors=errors)


def read_bytes(path: str | os.PathLike, max_bytes: int, *, what: str = "file",
               follow_symlinks: bool = True) -> bytes:
    """The content of a regular file of at most ``max_bytes`` bytes.

    Raises :class:`TooLargeError` (naming the path, its size and the limit)
    before reading when the file is larger, and :class:`SpecialFileError`
    for a FIFO, device, socket or folder.
    """
    with open_regular(path, "rb", follow_symlinks=follow_symlinks) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise TooLargeError(f"{os.fspath(path)}: {size} bytes, larger than a {what} can be "
                                f"({max_bytes} bytes); not read")
        data = fh.read(max_bytes + 1)       # the file may grow while read
    if len(data) > max_bytes:
        raise TooLargeError(f"{os.fspath(path)}: larger than a {what} can be "
                            f"({max_bytes} bytes); not read")
    return data


def decode_text(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """``data`` decoded; an undecodable byte is an :class:`InputError` naming file and line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{name}, line {line}: not {encoding} text "
                         f"(byte {data[exc.start:exc.start + 1]!r})") from None


def read_text(path: str | os.PathLike, max_bytes: int, *, what: str = "file",
              encoding: str = "utf-8", follow_symlinks: bool = True) -> str:
    """A regular text file of at most ``max_bytes`` bytes, decoded strictly.

    Errors (all :class:`~almaqa_casa.errors.InputError`) name the path, and
    for bad bytes the line.
    """
    return decode_text(read_bytes(path, max_bytes, what=what, follow_symlinks=follow_symlinks),
                       os.fspath(path), encoding)

