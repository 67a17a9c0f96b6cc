"""Safe, bounded, resumable extraction of delivered tar files.

Archive tars, ``<mous>.session_<k>.caltables.tgz``, ``<ms>.flagversions.tgz``
and ``auxproducts.tgz`` come from outside.  Extraction is safe by
construction on every Python this package supports, without relying on
tarfile's path logic or its ``filter=`` (bypassable on Python 3.13.0,
CVE-2025-4517):

* each member is placed by :class:`~almaqa_casa.delivery.tarsafe.Planner`
  in a virtual tree and resolved through the links already extracted; a
  member or link that would leave the destination is refused, as are
  special files, absolute names and ``..``;
* this module writes every file itself, into a fresh private folder,
  opening each folder with ``O_NOFOLLOW`` and each file with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a link is never written through);
* member count, total size and expansion ratio are bounded per use
  (:data:`~almaqa_casa.delivery.tarsafe.LIMITS`) and free disk space is
  checked, member by member while streaming, so a bomb is refused before it
  fills the disk;
* only when the whole archive is extracted are its top-level entries moved
  into the destination, so a refused, truncated or corrupt archive leaves
  nothing there.  Every error names the archive (and the member).

:func:`extract_archives` adds resumability for the archive tars of a
delivery: per-archive completion records under ``<dest>/.almaqa-extract/``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import stat
import tarfile
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..atomic import partial_name
from ..errors import AlmaqaError, InputError
from ..log import post
from ..safeio import open_regular
from .tarsafe import (
    LIMITS,
    Action,
    ArchiveError,
    Limits,
    Planner,
    _Escape,
    archive_kind,
    limits_for,
    member_parts,
    resolve,
)

try:
    import lzma
    _LZMA_ERRORS: tuple[type[BaseException], ...] = (lzma.LZMAError,)
except ImportError:      # Python built without lzma
    _LZMA_ERRORS = ()

__all__ = ["LIMITS", "STATE_DIR", "ArchiveError", "ExtractReport", "Limits", "archive_kind",
           "check_member", "extract", "extract_archives", "extract_into", "limits_for",
           "list_members", "pending_archives"]

#: Folder (inside the destination) of :func:`extract_archives`' records and
#: temporary folders.  Dot-prefixed: never a delivery folder.
STATE_DIR = ".almaqa-extract"

_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, *_LZMA_ERRORS)
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: the destination itself is the caller's choice (it may be reached through a link)
_OPEN_DEST = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
_CHUNK = 1 << 20
_SPACE_MARGIN = 64 << 20          # keep this much free on the destination's disk
_SPACE_EVERY = 64 << 20           # re-check free space after this many bytes


class _ReadFailure(AlmaqaError):
    """The archive's data could not be read (truncated or corrupt)."""


def check_member(member: tarfile.TarInfo, archive: str = "<tar>") -> str:
    """The member's normalised relative name, or :class:`ArchiveError` (pure).

    Checks the member on its own (name, type, link target as text); where it
    lands among the other members is decided while extracting.
    """
    parts = member_parts(member.name, archive)
    name = "/".join(parts) or "."
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise ArchiveError(f"{archive}: member {member.name!r} is a device, FIFO or other "
                           "special file")
    if member.issym() or member.islnk():
        target = member.linkname
        if not target or target.startswith("/"):
            raise ArchiveError(f"{archive}: member {member.name!r} is a link to an absolute "
                               f"path {target!r}")
        base = parts[:-1] if member.issym() else ()
        try:
            resolve((*base, *target.split("/")), lambda p: None)
        except _Escape:
            raise ArchiveError(f"{archive}: member {member.name!r} is a link pointing outside "
                               f"({target!r})") from None
    return name


# ---- reading -------------------------------------------------------------------------

@contextlib.contextmanager
def _open_tar(archive: str):
    """``(TarFile, size of the archive file)``; the file is opened as a regular file only."""
    try:
        fh = open_regular(archive, "rb")
    except FileNotFoundError:
        raise ArchiveError(f"{archive}: file not found") from None
    except InputError as exc:
        raise ArchiveError(str(exc)) from None
    except OSError as exc:
        raise ArchiveError(f"{archive}: cannot be read ({exc.strerror})") from None
    try:
        size = os.fstat(fh.fileno()).st_size
        try:
            tar = tarfile.open(fileobj=fh, mode="r:*")
        except (*_READ_ERRORS, OSError) as exc:
            raise ArchiveError(f"{archive}: not a readable tar archive ({exc})") from None
        try:
            yield tar, size
        finally:
            tar.close()
    finally:
        fh.close()


def _members(tar: tarfile.TarFile, archive: str):
    """Stream the members; tarfile keeps no list of them (memory stays flat)."""
    while True:
        try:
            m = tar.next()
        except (*_READ_ERRORS, OSError) as exc:
            raise ArchiveError(f"{archive}: truncated or corrupt archive ({exc})") from None
        if m is None:
            return
        del tar.members[:]
        yield m


# ---- writing -------------------------------------------------------------------------

def _walk(root_fd: int, path: Sequence[str]) -> int:
    """A new descriptor of folder ``path`` below ``root_fd``; no component may be a link."""
    fd = os.dup(root_fd)
    try:
        for c in path:
            nfd = os.open(c, _OPEN_DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Writer:
    """Carries out :class:`Action` s below a root folder, never following a link."""

    def __init__(self, root: str, archive: str) -> None:
        self.root = root
        self.archive = archive
        self.root_fd = os.open(root, _OPEN_DIR)
        self._key: tuple[str, ...] | None = None
        self._fd: int | None = None
        self._dirs: list[tuple[tuple[str, ...], int, float]] = []
        self._since_check = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._key = None
        os.close(self.root_fd)

    def _parent(self, path: tuple[str, ...]) -> int:
        if path == self._key and self._fd is not None:
            return self._fd
        fd = _walk(self.root_fd, path)
        if self._fd is not None:
            os.close(self._fd)
        self._key, self._fd = path, fd
        return fd

    def _space(self, name: str, need: int) -> None:
        self._since_check += need
        if need < (8 << 20) and self._since_check < _SPACE_EVERY:
            return
        self._since_check = 0
        st = os.fstatvfs(self.root_fd)
        free = st.f_bavail * st.f_frsize
        if need > free - _SPACE_MARGIN:
            raise ArchiveError(f"{self.archive}: member {name!r} ({need} bytes) does not fit on "
                               f"the disk of {self.root} ({free} bytes free); nothing was kept")

    def do(self, a: Action, tar: tarfile.TarFile) -> None:
        parent = self._parent(a.path[:-1])
        name = a.path[-1]
        m = a.member
        if a.op == "dir":
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                    raise ArchiveError(f"{self.archive}: {a.relpath!r} exists and is not a "
                                       "folder") from None
            if m is not None:
                self._dirs.append((a.path, (m.mode & 0o755) | 0o700, m.mtime))
            return
        if a.replace:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent)
        if a.op == "link":
            os.symlink(a.target, name, dir_fd=parent)
        elif a.op == "hardlink":
            src = _walk(self.root_fd, a.source[:-1])
            try:
                os.link(a.source[-1], name, src_dir_fd=src, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(src)
        else:
            self._file(parent, name, m, tar)

    def _file(self, parent: int, name: str, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self._space(m.name, m.size)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            try:
                src = tar.extractfile(m)
            except (*_READ_ERRORS, OSError) as exc:
                raise _ReadFailure(str(exc)) from None
            written = 0
            while src is not None:
                try:
                    chunk = src.read(_CHUNK)
                except (*_READ_ERRORS, OSError) as exc:
                    raise _ReadFailure(str(exc)) from None
                if not chunk:
                    break
                written += len(chunk)
                if written > m.size:       # never more than the header declared
                    raise ArchiveError(f"{self.archive}: member {m.name!r} holds more data than "
                                       "its header declares")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            if written != m.size:
                raise _ReadFailure(f"member {m.name!r}: {written} of {m.size} bytes")
            os.fchmod(fd, (m.mode & 0o755) | 0o600)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Folder modes and times, deepest first (writing into them changed the times)."""
        for path, mode, mtime in sorted(self._dirs, key=lambda d: -len(d[0])):
            fd = _walk(self.root_fd, path)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def _extract_to(archive: str, root: str, select: Callable[[str], bool] | None,
                limits: Limits | None) -> Planner:
    """Extract (selected) members of ``archive`` into the new, empty folder ``root``."""
    os.mkdir(root, 0o700)
    with _open_tar(archive) as (tar, size):
        lim = limits or limits_for(archive_kind(archive))
        planner = Planner(archive, lim, size, select)
        writer = _Writer(root, archive)
        try:
            for m in _members(tar, archive):
                for action in planner.plan(m):
                    try:
                        writer.do(action, tar)
                    except _ReadFailure as exc:
                        raise ArchiveError(f"{archive}: truncated or corrupt archive "
                                           f"({exc})") from None
                    except OSError as exc:
                        raise ArchiveError(f"{archive}: member {m.name!r} cannot be written "
                                           f"({exc.strerror or exc}); nothing was kept") from None
            planner.finish()
            writer.finish()
        finally:
            writer.close()
    return planner


# ---- placing into the destination ----------------------------------------------------

def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _rmtree_at(parent_fd: int, name: str) -> None:
    """Remove folder ``name`` of ``parent_fd`` without following any link."""
    fd = os.open(name, _OPEN_DIR, dir_fd=parent_fd)
    try:
        for child in os.listdir(fd):
            st = _lstat_at(fd, child)
            if st is not None and stat.S_ISDIR(st.st_mode):
                _rmtree_at(fd, child)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def _remove_at(parent_fd: int, name: str) -> None:
    st = _lstat_at(parent_fd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        _rmtree_at(parent_fd, name)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _place(src_fd: int, dst_fd: int, name: str, merge: bool) -> None:
    """Move ``name`` from ``src_fd`` to ``dst_fd``, merging folders when ``merge``."""
    s = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
    d = _lstat_at(dst_fd, name)
    if merge and d is not None and stat.S_ISDIR(s.st_mode) and stat.S_ISDIR(d.st_mode):
        sfd = os.open(name, _OPEN_DIR, dir_fd=src_fd)
        try:
            dfd = os.open(name, _OPEN_DIR, dir_fd=dst_fd)
            try:
                for child in sorted(os.listdir(sfd)):
                    _place(sfd, dfd, child, merge)
                os.fchmod(dfd, stat.S_IMODE(s.st_mode))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        return
    if d is not None:
        _remove_at(dst_fd, name)
    os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _physical_lookup(root_fd: int):
    def lookup(path: tuple[str, ...]):
        try:
            fd = _walk(root_fd, path[:-1])
        except OSError:
            return None
        try:
            st = _lstat_at(fd, path[-1])
            if st is None:
                return None
            if stat.S_ISLNK(st.st_mode):
                return ("link", os.readlink(path[-1], dir_fd=fd))
            return ("dir", "") if stat.S_ISDIR(st.st_mode) else ("file", "")
        except OSError:
            return None
        finally:
            os.close(fd)
    return lookup


def _check_links(dest: str, links: Iterable[tuple[str, ...]], archive: str) -> None:
    """Links in ``dest`` must still resolve inside it, on the real disk; else removed."""
    links = list(links)
    if not links:
        return
    root_fd = os.open(dest, _OPEN_DEST)
    try:
        lookup = _physical_lookup(root_fd)
        bad = []
        for path in links:
            node = lookup(path)
            if node is None or node[0] != "link":
                continue
            try:
                resolve(path, lookup)
            except _Escape as exc:
                bad.append(("/".join(path), str(exc)))
                parent = _walk(root_fd, path[:-1])
                try:
                    os.unlink(path[-1], dir_fd=parent)
                finally:
                    os.close(parent)
    finally:
        os.close(root_fd)
    if bad:
        raise ArchiveError(f"{archive}: link {bad[0][0]!r} {bad[0][1]} once placed in {dest} "
                           "(the link was removed)")


def extract(archive: str | os.PathLike, dest: str | os.PathLike,
            select: Callable[[str], bool] | None = None, merge: bool = False, *,
            limits: Limits | None = None) -> list[Path]:
    """Extract (selected) members of ``archive`` into ``dest`` atomically.

    Members are written into a private temporary folder inside ``dest``;
    when the whole archive is extracted its top-level entries are moved into
    ``dest``: an existing entry of the same name is replaced, or with
    ``merge=True`` folders are merged (archive tars of one delivery share
    the project folder).  ``limits`` defaults to
    ``limits_for(archive_kind(archive))``.  Returns the top-level paths.

    Raises
    ------
    ArchiveError
        Unsafe member, limit exceeded, truncated/corrupt or unreadable
        archive; nothing is left in ``dest``.  The message names the archive
        (and the member and the limit).
    """
    archive = os.fspath(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(dest / "extract")     # .extract.partial-*: atomic.clean_partials' pattern
    try:
        planner = _extract_to(archive, str(tmp), select, limits)
        return _move_into(tmp, dest, merge, planner, archive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into(tmp: Path, dest: Path, merge: bool, planner: Planner, archive: str) -> list[Path]:
    tops = sorted(os.listdir(tmp))
    sfd = os.open(tmp, _OPEN_DIR)
    try:
        dfd = os.open(dest, _OPEN_DEST)
        try:
            for top in tops:
                _place(sfd, dfd, top, merge)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    _check_links(str(dest), planner.walk_links(), archive)
    return [dest / t for t in tops]


def extract_into(archives: Iterable[str | os.PathLike], dest: str | os.PathLike) -> list[Path]:
    """Extract several archives (e.g. the archive's tar files) into ``dest``, merged.

    Not resumable; see :func:`extract_archives`.
    """
    out: list[Path] = []
    for a in archives:
        out += [p for p in extract(a, dest, merge=True) if p not in out]
    return out


def list_members(archive: str | os.PathLike) -> list[str]:
    """Normalised names of all members, checked as an extraction would (nothing written)."""
    archive = os.fspath(archive)
    with _open_tar(archive) as (tar, size):
        planner = Planner(archive, limits_for(archive_kind(archive)), size)
        names = []
        for m in _members(tar, archive):
            planner.plan(m)
            names.append("/".join(member_parts(m.name, archive)) or ".")
        planner.finish()
    return names


# ---- resumable extraction of a delivery's archive tars --------------------------------

@dataclasses.dataclass
class ExtractReport:
    """What :func:`extract_archives` did.

    ``extracted``: archives extracted by this call; ``skipped``: archives a
    previous call completed; ``tops``: top-level entries of ``dest`` the
    archives hold (in ``dest``).
    """

    dest: str
    extracted: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    tops: list[str] = dataclasses.field(default_factory=list)


def _signature(archive: str) -> dict:
    try:
        st = os.stat(archive)
    except FileNotFoundError:
        raise ArchiveError(f"{archive}: file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArchiveError(f"{archive}: not a regular file; not read")
    return {"name": os.path.basename(archive), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_path(state: Path, archive: str) -> Path:
    return state / f"{os.path.basename(archive)}.done.json"


def _read_record(path: Path) -> dict | None:
    try:
        with open_regular(path) as fh:
            rec = json.loads(fh.read(1 << 22))
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError, InputError):
        return None


def _write_record(path: Path, rec: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as fh:
        json.dump(rec, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def pending_archives(tars: Sequence[str | os.PathLike], dest: str | os.PathLike) -> list[str]:
    """The archive tars :func:`extract_archives` would (re-)extract into ``dest`` (no I/O
    beyond reading its records): for a dry run of an interrupted extraction."""
    state = Path(dest) / STATE_DIR
    out: list[str] = []
    for archive in map(os.fspath, tars):
        rec = None if out else _read_record(_record_path(state, archive))
        if (rec is None or rec.get("signature") != _signature(archive)
                or not all(os.path.lexists(Path(dest) / t) for t in rec.get("tops", []))):
            out.append(archive)
    return out


@contextlib.contextmanager
def _locked(state: Path, dest: Path):
    """One :func:`extract_archives` per destination at a time (others wait)."""
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            post(f"waiting for process {holder}, which is extracting archives into {dest}",
                 "WARN")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)       # releases the lock


def extract_archives(tars: Sequence[str | os.PathLike], dest: str | os.PathLike, *,
                     limits: Limits | None = None) -> ExtractReport:
    """Extract archive tars into ``dest`` (merged, in the given order), resumably.

    Each completed archive leaves a record in ``dest/.almaqa-extract/``
    (name, size and time of the archive, its top-level entries); a later
    call skips archives whose record matches and whose entries are still
    there, and redoes the first incomplete or changed one and every archive
    after it, so an interrupted run (even ``SIGKILL``) completes to the same
    tree as an uninterrupted one.  Temporary folders live in that dot folder
    and are removed on the next call.  The tars are only read: ``dest`` can
    be any writable folder (a read-only folder of archive tars works with an
    output folder elsewhere).  Concurrent calls on one ``dest`` wait for each
    other.  ``limits`` default per archive (:func:`limits_for`).

    Raises
    ------
    ArchiveError
        As :func:`extract`, naming the archive; earlier archives stay complete.
    """
    tars = [os.fspath(t) for t in tars]
    names = [os.path.basename(t) for t in tars]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ArchiveError(f"archive tars with the same name given twice: {', '.join(dup)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    state = dest / STATE_DIR
    state.mkdir(exist_ok=True)
    report = ExtractReport(dest=str(dest))
    with _locked(state, dest):
        for p in state.iterdir():                  # leftovers of an interrupted call
            if p.name.startswith("tmp-"):
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".") and ".done.json." in p.name:
                p.unlink()
        redo = False
        links: list[tuple[str, ...]] = []
        for i, archive in enumerate(tars):
            sig = _signature(archive)
            rec = None if redo else _read_record(_record_path(state, archive))
            if (rec is not None and rec.get("signature") == sig
                    and all(os.path.lexists(dest / t) for t in rec.get("tops", []))):
                report.skipped.append(archive)
                report.tops += [t for t in rec.get("tops", []) if t not in report.tops]
                links += [tuple(lk) for lk in rec.get("links", [])]
                continue
            if not redo:                           # this and every later archive are redone
                redo = True
                for later in tars[i:]:
                    with contextlib.suppress(FileNotFoundError):
                        _record_path(state, later).unlink()
            post(f"extracting {archive} into {dest}", "INFO")
            tmp = state / f"tmp-{uuid.uuid4().hex[:12]}"
            try:
                planner = _extract_to(archive, str(tmp), None, limits)
                tops = _move_into(tmp, dest, True, planner, archive)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            new_links = [list(lk) for lk in planner.walk_links()]
            links += [tuple(lk) for lk in new_links]
            _check_links(str(dest), links, archive)     # earlier links, now beside new entries
            _write_record(_record_path(state, archive),
                          {"signature": sig, "tops": [t.name for t in tops], "links": new_links,
                           "members": planner.members, "bytes": planner.bytes})
            report.extracted.append(archive)
            report.tops += [t.name for t in tops if t.name not in report.tops]
    return report
