"""sha256 of a folder tree: relative paths, file contents, symlink targets."""
from __future__ import annotations

import hashlib
import os


def tree_checksum(path: str) -> str:
    """Digest of everything under ``path`` (sorted relative paths; file bytes;
    symlinks by target, not followed; empty folders count too)."""
    h = hashlib.sha256()
    root = os.path.abspath(path)
    if os.path.islink(root) or os.path.isfile(root):
        entries = [("", root)]
    else:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel = os.path.relpath(dirpath, root)
            entries.append((rel + "/", None))
            for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
                entries.append((os.path.normpath(os.path.join(rel, name)), os.path.join(dirpath, name)))
    for rel, full in sorted(entries, key=lambda e: e[0]):
        h.update(rel.encode() + b"\0")
        if full is None:
            h.update(b"D\0")
        elif os.path.islink(full):
            h.update(b"L\0" + os.readlink(full).encode() + b"\0")
        else:
            h.update(b"F\0")
            with open(full, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
    return h.hexdigest()
