"""Safe extraction of delivered tar files (archive tars, caltables.tgz, flagversions.tgz).

Every member is checked before anything is written: no absolute names, no
``..`` components, no links pointing outside the destination, no device or
FIFO files.  Extraction goes into a temporary sibling folder that is renamed
into place only when complete, so a truncated or corrupt tarball leaves
nothing behind and gives an error naming the archive.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import AlmaqaError

__all__ = ["ArchiveError", "check_member", "extract", "extract_into", "list_members"]


class ArchiveError(AlmaqaError, ValueError):
    """An archive is unsafe, truncated or unreadable; the message names it."""


def _bad(archive, name, why):
    return ArchiveError(f"{archive}: member {name!r} {why}")


def check_member(member: tarfile.TarInfo, archive: str = "<tar>") -> str:
    """Return the member's normalised relative name, or raise :class:`ArchiveError`.

    Pure: decides on the member header only.
    """
    name = member.name
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise _bad(archive, name, "has an absolute or non-POSIX name")
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{name}/":
        raise _bad(archive, name, "points outside the destination ('..')")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _bad(archive, name, "is a device, FIFO or other special file")
    if member.issym() or member.islnk():
        target = member.linkname
        if not target or target.startswith("/"):
            raise _bad(archive, name, f"is a link to an absolute path {target!r}")
        base = posixpath.dirname(norm) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            raise _bad(archive, name, f"is a link pointing outside ({target!r})")
    return norm


def _open(archive: str | os.PathLike) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:*")
    except FileNotFoundError:
        raise ArchiveError(f"{archive}: file not found") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: not a readable tar archive ({exc})") from None


def list_members(archive: str | os.PathLike) -> list[str]:
    """Names of all members (checked for safety; reads the whole archive)."""
    with _open(archive) as tar:
        try:
            return [check_member(m, str(archive)) for m in tar]
        except (tarfile.TarError, EOFError, OSError, Exception) as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{archive}: truncated or corrupt ({exc})") from None


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``, merging folders that exist on both sides."""
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _merge(child, dst / child.name)
        return
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.is_dir():
        shutil.rmtree(dst)
    os.replace(src, dst)


def extract(archive: str | os.PathLike, dest: str | os.PathLike,
            select: Callable[[str], bool] | None = None, merge: bool = False) -> list[Path]:
    """Extract (selected) members of ``archive`` into ``dest`` atomically.

    Members are first extracted into a temporary folder beside ``dest``;
    top-level entries are then moved into ``dest``: existing entries of the
    same name are replaced, or with ``merge=True`` folders are merged (archive
    tars of one delivery share the project folder).  Returns the top-level
    paths created.

    Raises
    ------
    ArchiveError
        Unsafe member, truncated/corrupt archive (nothing is left in ``dest``).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".extract-{uuid.uuid4().hex[:8]}.partial"
    tmp.mkdir()
    try:
        with _open(archive) as tar:
            chosen = []
            try:
                for m in tar:
                    norm = check_member(m, str(archive))
                    if select is None or select(norm):
                        chosen.append(m)
                # data filter: a second line of defence (Python >= 3.12)
                for m in chosen:
                    tar.extract(m, tmp, filter="data")
            except ArchiveError:
                raise
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ArchiveError(f"{archive}: truncated or corrupt archive ({exc})") from None
        tops = sorted({p.name for p in tmp.iterdir()})
        out = []
        for top in tops:
            final = dest / top
            if merge:
                _merge(tmp / top, final)
            else:
                if final.is_symlink() or final.is_file():
                    final.unlink()
                elif final.is_dir():
                    shutil.rmtree(final)
                os.replace(tmp / top, final)
            out.append(final)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_into(archives: Iterable[str | os.PathLike], dest: str | os.PathLike) -> list[Path]:
    """Extract several archives (e.g. the archive's tar files) into ``dest``."""
    out = []
    for a in archives:
        out += extract(a, dest, merge=True)
    return out
