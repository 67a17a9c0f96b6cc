"""Write outputs under a temporary name and rename them into place when complete.

Used for every file and folder (FITS, MeasurementSets, JSON, PNG) the
package writes, so an interrupted run never leaves a half-written output
under its final name, and a re-run can trust whatever exists.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def partial_name(final: str | os.PathLike) -> Path:
    """The temporary sibling name used while ``final`` is being written."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")


def remove(path: str | os.PathLike) -> None:
    """Remove a file, link or folder tree if it exists."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``final``.

    On an exception the temporary output is removed and ``final`` is left as
    it was.  With ``overwrite=False`` an existing ``final`` is an error.

    Examples
    --------
    >>> with atomic_output("out.fits") as tmp:          # doctest: +SKIP
    ...     exportfits(imagename="x.im", fitsimage=str(tmp))
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists (use overwrite=True to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {final}")
        if final.exists():
            old = partial_name(final)
            os.replace(final, old)
            os.replace(tmp, final)
            remove(old)
        else:
            os.replace(tmp, final)
    finally:
        remove(tmp)


def write_text_atomic(final: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``final`` atomically (replacing it)."""
    with atomic_output(final, overwrite=True) as tmp:
        tmp.write_text(text)
    return Path(final)


def clean_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove leftovers of interrupted writes (``.*.partial-*``) in ``folder``."""
    removed = []
    for p in Path(folder).glob(".*.partial-*"):
        remove(p)
        removed.append(p)
    return removed
