"""A delivery as a flat list of entries, from an unpacked folder or from archive tars.

The checks only need names, sizes and a way to read a file, so both an
unpacked tree and the archive tar files (``<project>_<MOUS>_001_of_001.tar``,
``..._auxiliary.tar``, ``member_<MOUS>_README.txt.tar``) become the same
:class:`Tree`: tar members are listed and read in place, without extraction.
Walking never raises: unreadable folders, symlink loops and broken links
become entries of kind ``unreadable`` / ``loop`` / ``broken-link``; FIFOs,
devices and sockets become ``special`` entries and are never opened:
:meth:`Tree.open` and :meth:`Tree.materialize` read regular files only,
checked on the open descriptor (``delivery.layout.open_regular``).
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..delivery.layout import open_regular

__all__ = ["Entry", "MemberView", "Tree", "load_tree", "read_tars", "walk_folder"]

_MEMBER_DIR = re.compile(r"member\.uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+\Z")
_MAX_DEPTH = 12


@dataclass(slots=True)
class Entry:
    """One file or folder of the delivery.

    ``rel`` is the POSIX path relative to the tree root; ``kind`` is one of
    ``file``, ``dir``, ``loop``, ``unreadable``, ``broken-link``, ``special``;
    ``display`` is what findings show (disk path, or ``archive.tar:member``);
    ``size`` is -1 when not known without a ``stat`` (folder listings).
    """

    rel: str
    kind: str
    size: int = 0
    display: str = ""
    disk_path: str | None = None
    tar: str | None = None
    problem: str | None = None
    tar_member: str | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.rel)


@dataclass
class Tree:
    """All entries of a delivery plus problems met while listing it."""

    root: str
    mode: str                      #: 'folder' or 'tar'
    entries: list[Entry] = field(default_factory=list)
    archive_problems: list[tuple[str, str]] = field(default_factory=list)
    _tars: dict = field(default_factory=dict, repr=False)
    _infos: dict = field(default_factory=dict, repr=False)  #: (tar, member) -> TarInfo

    def members(self) -> dict[str, MemberView]:
        """Group entries by the ``member.uid___*`` folder they lie in."""
        views: dict[str, MemberView] = {}
        for e in self.entries:
            if "member.uid___" not in e.rel:
                continue
            parts = e.rel.split("/")
            for i, p in enumerate(parts):
                if p.startswith("member.uid___") and _MEMBER_DIR.match(p):
                    key = "/".join(parts[: i + 1])
                    v = views.get(key)
                    if v is None:
                        v = views[key] = MemberView(rel=key, mous=p[len("member."):],
                                                    parents=tuple(reversed(parts[:i]))[:3])
                    inner = "/".join(parts[i + 1:])
                    if inner:
                        v.entries[inner] = e
                    break
        return views

    @contextlib.contextmanager
    def open(self, entry: Entry) -> Iterator[IO[bytes]]:
        """A binary, seekable file object for a file entry (tar members read in place)."""
        if entry.kind != "file":
            raise OSError(f"{entry.display}: not a regular file ({entry.kind}); not opened")
        if entry.tar is None:
            with os.fdopen(open_regular(entry.disk_path), "rb") as fh:
                yield fh
            return
        tf = self._tars.get(entry.tar)
        if tf is None:
            tf = self._tars[entry.tar] = tarfile.open(entry.tar, mode="r:")
        ti = self._infos.get((entry.tar, entry.tar_member))
        fh = tf.extractfile(ti if ti is not None else tf.getmember(entry.tar_member or entry.rel))
        if fh is None:
            raise OSError(f"{entry.display}: not a regular file in the archive")
        try:
            yield fh
        finally:
            fh.close()

    def materialize(self, entry: Entry, folder: str | os.PathLike) -> str:
        """A path on disk with the entry's content (copied out of the tar when needed).

        A folder entry (a CASA image such as ``x.mask``) is always copied, regular
        files only, so that CASA's lock files never land in the delivery.
        """
        if entry.kind == "dir":
            return self._copy_dir(entry, Path(folder) / entry.name)
        if entry.tar is None:
            with self.open(entry):  # refuses special files
                pass
            return str(entry.disk_path)
        out = Path(folder) / entry.name
        with self.open(entry) as fin, open(out, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
        return str(out)

    def _copy_dir(self, entry: Entry, out: Path) -> str:
        out.mkdir(parents=True)
        if entry.tar is None:
            for root, _dirs, files in os.walk(entry.disk_path):
                dest = out / os.path.relpath(root, entry.disk_path)
                dest.mkdir(parents=True, exist_ok=True)
                for f in files:
                    try:
                        fd = open_regular(os.path.join(root, f))
                    except OSError:
                        continue  # links to nowhere, FIFOs: not part of an image
                    with os.fdopen(fd, "rb") as fin, open(dest / f, "wb") as fout:
                        shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
            return str(out)
        pre = entry.rel + "/"
        for e in self.entries:
            if e.kind == "file" and e.rel.startswith(pre):
                dest = out / e.rel[len(pre):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with self.open(e) as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
        return str(out)

    def close(self) -> None:
        for tf in self._tars.values():
            tf.close()
        self._tars.clear()


@dataclass
class MemberView:
    """Entries of one member folder, keyed by path relative to the member."""

    rel: str
    mous: str
    parents: tuple[str, ...] = ()
    entries: dict[str, Entry] = field(default_factory=dict)

    def folder(self, sub: str) -> list[Entry]:
        """Entries directly inside subfolder ``sub``."""
        pre = sub + "/"
        return [e for k, e in self.entries.items() if k.startswith(pre) and "/" not in k[len(pre):]]

    def top(self) -> list[Entry]:
        return [e for k, e in self.entries.items() if "/" not in k]


# ---- folder walking -------------------------------------------------------------
#: Member subfolders a restore creates (scriptForPI.py and qa_restore): not part of the delivery.
RESTORE_OUTPUTS = frozenset({"calibrated"})


def walk_folder(root: str | os.PathLike) -> Tree:
    """List every file and folder below ``root`` (following symlinks once, cutting loops).

    Paths are relative to the folder above ``root`` (so a project folder's
    name is part of every path); when ``root`` lies inside a member, the
    member folder is walked instead.  CASA tables (folders with ``table.dat``) are
    listed as single entries.
    """
    root = Path(root)
    base = root.parent  # keep the given folder's own name in the paths (project level)
    for cand in (root, *root.parents):
        if _MEMBER_DIR.match(cand.name):
            # keep group / science goal / project names in the paths for the level check
            up = cand.absolute().parents
            base = up[3] if len(up) > 3 else up[len(up) - 1]
            root = cand
            break
    tree = Tree(root=str(root), mode="folder")
    seen: set[tuple[int, int]] = set()
    prefix = os.path.relpath(root, base).replace(os.sep, "/")
    prefix = "" if prefix == "." else prefix
    _walk(root, prefix, 0, seen, tree.entries)
    return tree


def _walk(folder: Path, rel: str, depth: int, seen: set, out: list[Entry]) -> None:
    try:
        st = os.stat(folder)
    except OSError as exc:
        out.append(Entry(rel or ".", "unreadable", display=str(folder), disk_path=str(folder),
                         problem=exc.strerror or str(exc)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        out.append(Entry(rel or ".", "loop", display=str(folder), disk_path=str(folder),
                         problem="folder already visited (symbolic-link loop)"))
        return
    seen.add(key)
    try:
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        out.append(Entry(rel or ".", "unreadable", display=str(folder), disk_path=str(folder),
                         problem=exc.strerror or str(exc)))
        return
    in_member = _MEMBER_DIR.match(folder.name) is not None
    for e in items:
        r = f"{rel}/{e.name}" if rel else e.name
        if in_member and e.name in RESTORE_OUTPUTS and e.is_dir():
            # made by scriptForPI.py / qa_restore, not delivered: listed, not walked (its
            # links back into calibration/ and raw/ would shadow the real folders)
            out.append(Entry(r, "dir", display=e.path, disk_path=e.path))
            continue
        try:
            is_link = e.is_symlink()
            if e.is_dir(follow_symlinks=True):
                if os.path.exists(os.path.join(e.path, "table.dat")):
                    out.append(Entry(r, "dir", display=e.path, disk_path=e.path))
                    continue
                out.append(Entry(r, "dir", display=e.path, disk_path=e.path))
                if depth + 1 < _MAX_DEPTH:
                    _walk(Path(e.path), r, depth + 1, seen, out)
            elif e.is_file(follow_symlinks=True):
                # size -1: unknown (a stat per file would halve the listing speed)
                out.append(Entry(r, "file", size=-1, display=e.path, disk_path=e.path))
            elif is_link:
                try:
                    os.stat(e.path)
                    kind, prob = "special", "not a regular file or folder"
                except OSError as exc:
                    if exc.errno == 40:  # ELOOP
                        kind, prob = "loop", "symbolic link resolves to itself (loop)"
                    else:
                        kind, prob = "broken-link", f"symbolic link target missing ({os.readlink(e.path)})"
                out.append(Entry(r, kind, display=e.path, disk_path=e.path, problem=prob))
            else:
                out.append(Entry(r, "special", display=e.path, disk_path=e.path,
                                 problem="not a regular file or folder"))
        except OSError as exc:
            out.append(Entry(r, "unreadable", display=e.path, disk_path=e.path,
                             problem=exc.strerror or str(exc)))


# ---- archive tars ----------------------------------------------------------------
def read_tars(paths: list[str | os.PathLike], root: str) -> Tree:
    """List the members of archive tar files without extracting them."""
    tree = Tree(root=str(root), mode="tar")
    seen: set[str] = set()
    for p in sorted(str(x) for x in paths):
        try:
            tf = tarfile.open(p, mode="r:")
        except (tarfile.TarError, OSError, EOFError) as exc:
            tree.archive_problems.append((p, f"not a readable tar archive ({exc})"))
            continue
        infos = []
        try:  # keep what can be listed before a truncation / corruption
            while True:
                ti = tf.next()
                if ti is None:
                    break
                infos.append(ti)
        except (tarfile.TarError, OSError, EOFError) as exc:
            tree.archive_problems.append((p, f"tar archive damaged after {len(infos)} "
                                             f"member(s) ({exc})"))
        tree._tars[p] = tf
        for ti in infos:
            norm = posixpath.normpath(ti.name)
            if ti.name.startswith("/") or norm.startswith(".."):
                tree.archive_problems.append((p, f"unsafe member name {ti.name!r}"))
                continue
            if norm in seen or norm == ".":
                continue
            seen.add(norm)
            disp = f"{p}:{ti.name}"
            if ti.isdir():
                tree.entries.append(Entry(norm, "dir", display=disp, tar=p))
            elif ti.isfile():
                tree.entries.append(Entry(norm, "file", size=ti.size, display=disp, tar=p,
                                          tar_member=ti.name))
                tree._infos[(p, ti.name)] = ti
            elif ti.issym() or ti.islnk():
                tree.entries.append(Entry(norm, "broken-link", display=disp, tar=p,
                                          problem=f"link in archive to {ti.linkname!r}"))
            else:
                tree.entries.append(Entry(norm, "special", display=disp, tar=p,
                                          problem="special file in archive"))
    # implied folders (tars often omit directory members)
    have = {e.rel for e in tree.entries}
    for e in list(tree.entries):
        parts = e.rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in have:
                have.add(d)
                tree.entries.append(Entry(d, "dir", display=f"{e.tar}:{d}", tar=e.tar))
    tree.entries.sort(key=lambda e: e.rel)
    return tree


def load_tree(path: str | os.PathLike) -> Tree:
    """A :class:`Tree` for a delivery folder, a folder of archive tars, or one tar file."""
    p = Path(path)
    if p.is_file():
        return read_tars([p], root=str(p.parent))
    tars: list[Path] = []
    has_member = False
    try:
        with os.scandir(p) as it:
            for e in it:
                if e.name.endswith(".tar") and e.is_file():
                    tars.append(Path(e.path))
    except OSError:
        pass
    if tars:
        # an unpacked tree next to the tars wins only if it holds a member folder
        from ..delivery.layout import find_members
        has_member = bool(find_members(p))
    if tars and not has_member:
        return read_tars(tars, root=str(p))
    return walk_folder(p)
