"""Decide, member by member, where a tar member may be written (pure; no I/O).

A delivered tarball is untrusted.  Python's own guard (``filter="data"``)
resolves paths with ``os.path.realpath`` on the real disk and can be
bypassed (CVE-2025-4517: a symlink chain whose expansion exceeds PATH_MAX
is left unresolved).  Here nothing is asked of the disk: every member is
placed in a *virtual tree* of what the archive has created so far (the
extraction goes into a fresh private folder, so that tree is exactly what
is on disk), its path is resolved component by component through the
links already planned, and:

* only regular files, folders, and links proven to stay inside are accepted;
* a member whose resolved path, or a link whose resolved target, leaves the
  root is refused; so are absolute names, ``..`` in names, absolute link
  targets, link loops, and a member that changes a folder into a file;
* the member count and the total size (and, for compressed kinds, the
  expansion ratio) are bounded by :class:`Limits` before a member is written.

:class:`Planner` gives each accepted member an :class:`Action` on a
*physical* path (every component a real folder), which the writer in
:mod:`almaqa_casa.delivery.archive` carries out with ``O_NOFOLLOW``.
"""
from __future__ import annotations

import dataclasses
import os
import tarfile
from collections.abc import Callable, Iterator
from typing import Literal

from ..errors import AlmaqaError

__all__ = ["LIMITS", "Action", "ArchiveError", "Limits", "Planner", "archive_kind",
           "limits_for", "member_parts", "resolve"]

GiB = 1 << 30
MiB = 1 << 20

MAX_NAME_CHARS = 4096      #: longest member name or link target accepted
MAX_DEPTH = 128            #: most components in a member name
MAX_PHYSICAL_DEPTH = 256   #: most components of a resolved path
MAX_HOPS = 40              #: links followed while resolving one path (Linux's limit)


class ArchiveError(AlmaqaError, ValueError):
    """An archive is unsafe, too large, truncated or unreadable; the message names it."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one archive may expand to; ``None`` means unbounded.

    ``max_ratio`` bounds the extracted bytes per byte of archive once more
    than ``ratio_floor`` bytes are extracted (a gzip bomb expands ~1000x;
    tables and data compress far less).  ``kind`` names the use in messages.
    """

    max_bytes: int | None
    max_members: int | None
    max_ratio: float | None = None
    ratio_floor: int = GiB
    kind: str = "archive"


#: Defaults per use (sizes are of the extracted content).
LIMITS: dict[str, Limits] = {
    # session caltables: ~20 files per table, tens of tables per EB, a few EBs
    "caltables": Limits(32 * GiB, 100_000, max_ratio=200, kind="caltables tarball"),
    # one <ms>.flagversions folder: a few flag tables of 1 bit per visibility
    "flagversions": Limits(32 * GiB, 5_000, kind="flagversions tarball"),
    # flux.csv, antennapos.csv, cont.dat, templates, self-cal resources
    "auxproducts": Limits(4 * GiB, 20_000, max_ratio=200, kind="auxproducts tarball"),
    # the archive's delivery tars (ASDMs, products): disk-bound, not size-bound
    "archive": Limits(None, 1_000_000, max_ratio=200, kind="archive tar"),
}


def archive_kind(name: str) -> str:
    """The :data:`LIMITS` key for an archive file name (``...flagversions.tgz`` ...)."""
    base = os.path.basename(name).lower()
    for key, marks in (("flagversions", (".flagversions.",)),
                       ("caltables", ("caltables.",)),
                       ("auxproducts", ("auxproducts.", "supporting."))):
        if any(m in base for m in marks):
            return key
    return "archive"


def limits_for(kind: str, *, ms_bytes: int | None = None,
               env: dict[str, str] | None = None) -> Limits:
    """Default :class:`Limits` for ``kind``, adjusted and overridable.

    ``ms_bytes`` (the imported MS's size) bounds a flagversions tarball:
    flag tables hold one bit per visibility of at least 8 bytes, so a few
    versions stay far below a quarter of the MS.  ``ALMAQA_EXTRACT_MAX_BYTES``
    and ``ALMAQA_EXTRACT_MAX_MEMBERS`` (in ``env``, default ``os.environ``)
    override the size and count for every kind.
    """
    lim = LIMITS.get(kind, LIMITS["archive"])
    if kind == "flagversions" and ms_bytes is not None:
        lim = dataclasses.replace(lim, max_bytes=max(64 * MiB, int(ms_bytes) // 4))
    env = os.environ if env is None else env
    for key, field in (("ALMAQA_EXTRACT_MAX_BYTES", "max_bytes"),
                       ("ALMAQA_EXTRACT_MAX_MEMBERS", "max_members")):
        val = env.get(key, "").strip()
        if val:
            try:
                n = int(float(val))
            except ValueError:
                raise ArchiveError(f"{key}={val!r} is not a number") from None
            lim = dataclasses.replace(lim, **{field: n if n > 0 else None})
    return lim


def _bad(archive: str, name: str, why: str) -> ArchiveError:
    return ArchiveError(f"{archive}: member {name!r} {why}")


def member_parts(name: str, archive: str = "<tar>") -> tuple[str, ...]:
    """Components of a member name; ``()`` for the root (``.`` or ``./``).

    Refuses absolute or non-POSIX names, ``..`` components, NUL characters
    and names too long or too deep.
    """
    if len(name) > MAX_NAME_CHARS:
        raise _bad(archive, name[:80] + "...", f"has a name longer than {MAX_NAME_CHARS} characters")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise _bad(archive, name, "has an absolute or non-POSIX name")
    if "\0" in name:
        raise _bad(archive, name, "has a NUL character in its name")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _bad(archive, name, "points outside the destination ('..')")
    if len(parts) > MAX_DEPTH:
        raise _bad(archive, name, f"is nested deeper than {MAX_DEPTH} folders")
    return parts


Kind = Literal["dir", "file", "link"]


@dataclasses.dataclass
class _Node:
    kind: Kind
    target: str = ""


class _Escape(AlmaqaError):
    """A path resolves outside the root (or cannot be resolved)."""


Lookup = Callable[[tuple[str, ...]], "tuple[Kind, str] | None"]


def resolve(parts: tuple[str, ...] | list[str], lookup: Lookup, *,
            follow_last: bool = True) -> tuple[str, ...]:
    """Resolve ``parts`` (relative to the root) to physical components.

    ``lookup(path)`` says what is at a physical path: ``("dir", "")``,
    ``("file", "")``, ``("link", target)`` or ``None`` (nothing yet, taken
    as a folder to be).  Links are followed (the last component only with
    ``follow_last``); ``..`` climbs the *physical* path, as the kernel does.
    Raises ``_Escape`` when the path leaves the root, loops, goes through a
    file, or is too deep.  Pure: the disk is only seen through ``lookup``.
    """
    resolved: list[str] = []
    pending = list(reversed(list(parts)))
    hops = 0
    while pending:
        c = pending.pop()
        if c in ("", "."):
            continue
        if c == "..":
            if not resolved:
                raise _Escape("leads outside the destination")
            resolved.pop()
            continue
        here = (*resolved, c)
        node = lookup(here)
        if node is not None and node[0] == "link" and (pending or follow_last):
            hops += 1
            if hops > MAX_HOPS:
                raise _Escape("is a link loop (more than %d links)" % MAX_HOPS)
            target = node[1]
            if not target or target.startswith("/") or "\0" in target:
                raise _Escape(f"goes through a link to {target!r}")
            pending.extend(reversed(target.split("/")))
            continue
        if node is not None and node[0] == "file" and pending:
            raise _Escape("goes through a file as if it were a folder")
        resolved.append(c)
        if len(resolved) > MAX_PHYSICAL_DEPTH:
            raise _Escape(f"resolves deeper than {MAX_PHYSICAL_DEPTH} folders")
    return tuple(resolved)


@dataclasses.dataclass(frozen=True)
class Action:
    """One write the extraction does, on a physical path below the root.

    ``op``: ``'dir'`` (create if missing), ``'file'`` (write the member's
    data; ``replace`` an existing file or link), ``'link'`` (symlink to
    ``target``), ``'hardlink'`` (to the file at ``source``).  ``member`` is
    ``None`` for a parent folder the archive does not list.
    """

    op: Literal["dir", "file", "link", "hardlink"]
    path: tuple[str, ...]
    member: tarfile.TarInfo | None
    replace: bool = False
    target: str = ""
    source: tuple[str, ...] = ()

    @property
    def relpath(self) -> str:
        return "/".join(self.path)


class Planner:
    """Place the members of one archive, in archive order, in a virtual tree.

    ``plan(member)`` checks one member against the name rules, the tree and
    the :class:`Limits`, and returns the actions that write it (parent
    folders first), or ``[]`` when ``select`` leaves it out.  ``finish()``
    re-checks every link against the final tree: a later member can change
    how an earlier link resolves.  Raises :class:`ArchiveError` naming the
    archive, the member and the rule or limit.
    """

    def __init__(self, archive: str, limits: Limits, archive_bytes: int | None = None,
                 select: Callable[[str], bool] | None = None) -> None:
        self.archive = archive
        self.limits = limits
        self.archive_bytes = archive_bytes
        self.select = select
        self.nodes: dict[tuple[str, ...], _Node] = {(): _Node("dir")}
        self.members = 0
        self.bytes = 0
        self.links: list[tuple[str, ...]] = []
        self._parents: dict[tuple[str, ...], tuple[str, ...]] = {}   # cache, reset on links

    # -- the virtual tree ----------------------------------------------------------
    def _lookup(self, path: tuple[str, ...]) -> tuple[Kind, str] | None:
        n = self.nodes.get(path)
        return None if n is None else (n.kind, n.target)

    def _resolve(self, parts, name: str, follow_last: bool = True,
                 what: str = "") -> tuple[str, ...]:
        try:
            return resolve(parts, self._lookup, follow_last=follow_last)
        except _Escape as exc:
            raise _bad(self.archive, name, f"{what}{exc}") from None

    def _parent(self, parts: tuple[str, ...], name: str) -> tuple[str, ...]:
        got = self._parents.get(parts)
        if got is None:
            got = self._resolve(parts, name)
            self._parents[parts] = got
        return got

    # -- limits --------------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.members += 1
        lim = self.limits
        if lim.max_members is not None and self.members > lim.max_members:
            raise _bad(self.archive, name, f"is member number {self.members}: over the limit of "
                       f"{lim.max_members} members for a {lim.kind} (nothing was kept; raise "
                       "ALMAQA_EXTRACT_MAX_MEMBERS if the archive is genuine)")

    def _size(self, name: str, size: int) -> None:
        self.bytes += size
        lim = self.limits
        if lim.max_bytes is not None and self.bytes > lim.max_bytes:
            raise _bad(self.archive, name, f"brings the extracted size to {_fmt(self.bytes)}: over "
                       f"the limit of {_fmt(lim.max_bytes)} for a {lim.kind} (nothing was kept; "
                       "raise ALMAQA_EXTRACT_MAX_BYTES if the archive is genuine)")
        if (lim.max_ratio is not None and self.archive_bytes and self.bytes > lim.ratio_floor
                and self.bytes > lim.max_ratio * self.archive_bytes):
            raise _bad(self.archive, name, f"brings the extracted size to {_fmt(self.bytes)}, "
                       f"over {lim.max_ratio:g} times the archive's {_fmt(self.archive_bytes)}: "
                       f"refused as a decompression bomb (limit of a {lim.kind})")

    # -- members -------------------------------------------------------------------
    def plan(self, m: tarfile.TarInfo) -> list[Action]:
        """The actions for member ``m`` (see the class docstring)."""
        name = m.name
        self._count(name)
        parts = member_parts(name, self.archive)
        if self.select is not None and not self.select("/".join(parts)):
            return []
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _bad(self.archive, name, "is a device, FIFO or other special file")
        if not parts:
            if m.isdir():
                return []       # './' : the destination itself
            raise _bad(self.archive, name, "has an empty name")
        if m.isreg():
            if m.size < 0:
                raise _bad(self.archive, name, "has a negative size")
            self._size(name, m.size)
        parent = self._parent(parts[:-1], name)
        out = self._mkparents(parent, name)
        path = (*parent, parts[-1])
        existing = self.nodes.get(path)
        if m.isdir():
            if existing is not None and existing.kind != "dir":
                raise _bad(self.archive, name, f"turns a {existing.kind} into a folder")
            self.nodes[path] = _Node("dir")
            return [*out, Action("dir", path, m)]
        if existing is not None and existing.kind == "dir":
            raise _bad(self.archive, name, "turns a folder into a file or link")
        replace = existing is not None
        if replace and existing.kind == "link":
            self._parents.clear()          # paths through the old link resolve anew
        if m.isreg():
            self.nodes[path] = _Node("file")
            return [*out, Action("file", path, m, replace=replace)]
        if m.issym():
            target = m.linkname
            if not target or target.startswith("/") or "\0" in target or "\\" in target:
                raise _bad(self.archive, name, f"is a link to an absolute or empty path {target!r}")
            if len(target) > MAX_NAME_CHARS:
                raise _bad(self.archive, name, "is a link with an overlong target")
            self._resolve((*parent, *target.split("/")), name,   # must stay inside now
                          what=f"is a link to {target!r}, which ")
            self.nodes[path] = _Node("link", target)
            self.links.append(path)
            self._parents.clear()
            return [*out, Action("link", path, m, replace=replace, target=target)]
        # hard link: the target is another member's name (relative to the root)
        src_parts = member_parts(m.linkname, self.archive) if m.linkname else ()
        src = self._resolve(src_parts, name, follow_last=False) if src_parts else ()
        node = self.nodes.get(src)
        if node is None or node.kind != "file":
            raise _bad(self.archive, name, f"is a hard link to {m.linkname!r}, which is not a "
                       "regular file extracted before it")
        if src == path:
            return out
        self.nodes[path] = _Node("file")
        return [*out, Action("hardlink", path, m, replace=replace, source=src)]

    def _mkparents(self, parent: tuple[str, ...], name: str) -> list[Action]:
        out = []
        for i in range(1, len(parent) + 1):
            p = parent[:i]
            n = self.nodes.get(p)
            if n is None:
                self.nodes[p] = _Node("dir")
                out.append(Action("dir", p, None))
            elif n.kind != "dir":     # resolve() followed links; a file here is refused there
                raise _bad(self.archive, name, f"needs {'/'.join(p)!r} to be a folder")
        return out

    def finish(self) -> None:
        """Re-check every link against the final tree (raises :class:`ArchiveError`)."""
        for path in self.links:
            node = self.nodes.get(path)
            if node is None or node.kind != "link":
                continue
            self._resolve(path, "/".join(path), what=f"is a link to {node.target!r}, which "
                          "(with the links extracted after it) ")

    def walk_links(self) -> Iterator[tuple[str, ...]]:
        """Physical paths of the links in the final tree."""
        for path in self.links:
            node = self.nodes.get(path)
            if node is not None and node.kind == "link":
                yield path


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
