"""Deterministic tar/gzip writers (fixed mtimes, owners and order)."""
from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from collections.abc import Iterable

#: Timestamp written into every archive member (2025-11-01T00:00:00Z).
FIXED_MTIME = 1761955200


def _filter(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime = FIXED_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    if ti.isdir():
        ti.mode = 0o755
    elif ti.isfile():
        ti.mode = 0o755 if ti.mode & 0o100 else 0o644
    return ti


def _add_sorted(tf: tarfile.TarFile, path: str, arcname: str) -> None:
    tf.add(path, arcname=arcname, recursive=False, filter=_filter)
    if os.path.isdir(path) and not os.path.islink(path):
        for name in sorted(os.listdir(path)):
            if name == "table.lock":  # CASA lock files are not data
                continue
            _add_sorted(tf, os.path.join(path, name), arcname + "/" + name)


def write_tgz(out: str, members: Iterable[tuple[str, str]]) -> str:
    """Gzipped tar of (path, arcname) pairs, byte-identical for equal input."""
    tmp = out + ".part"
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
                for path, arc in members:
                    _add_sorted(tf, path, arc)
    os.replace(tmp, out)
    return out


def write_tar(out: str, members: Iterable[tuple[str, str]]) -> str:
    tmp = out + ".part"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, arc in members:
            _add_sorted(tf, path, arc)
    os.replace(tmp, out)
    return out


def gzip_file(src: str, dst: str) -> str:
    with open(src, "rb") as fi, open(dst + ".part", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            shutil.copyfileobj(fi, gz)
    os.replace(dst + ".part", dst)
    return dst


def tgz_bytes_members(path: str):
    with tarfile.open(path, "r:gz") as tf:
        return sorted(tf.getnames())


__all__ = ["FIXED_MTIME", "gzip_file", "io", "tgz_bytes_members", "write_tar", "write_tgz"]
