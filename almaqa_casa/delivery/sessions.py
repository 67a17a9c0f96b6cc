"""Which session (and so which caltables tarball) each EB belongs to (pure).

An MOUS's EBs are grouped into observing sessions; each session has its own
``<mous>.session_<k>.caltables.tgz`` (Cycle 10+: ``<mous>.s<k>.caltables.tgz``)
and an EB's calapply.txt names tables found only in its session's tarball.
Half of real restore scripts use several sessions, a quarter have gaps, some
have no ``session_1`` (realworld.md "Sessions and caltable tarballs").

The map is written in up to three places, read here in this order:

1. ``pipeline_manifest.xml`` (Cycle 5 on, not always delivered);
2. the restore script's ``hifa_restoredata(vis=[...], session=[...])``:
   what the observatory's restore actually ran;
3. the PPR's ``SESSION_k`` processing intents.

The delivered tarball names are the final word on which sessions exist: a
source naming a session without a tarball gives way to the next source.  A
disagreement between two sources is a warning naming both; an EB no source
places, in a delivery with several tarballs, is left unresolved (the planner
turns that into an error naming the EB and the tarballs).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["EBSession", "SessionMap", "normalise_session", "tarball_session",
           "resolve_sessions", "CALTABLES_SUFFIXES"]

CALTABLES_SUFFIXES = (".caltables.tgz", ".caltables.tar.gz")
_SESSION = re.compile(r"(?:session_?|s)(\d+)\Z", re.I)
_TARBALL = re.compile(r"\.(session_?\d+|s\d+|default)\.caltables\.t(?:ar\.)?gz\Z", re.I)


def normalise_session(name: str) -> str:
    """``'Session_2'``, ``'SESSION_2'``, ``'s2'`` -> ``'session_2'``; others lower-cased."""
    name = str(name).strip()
    m = _SESSION.fullmatch(name)
    return f"session_{int(m.group(1))}" if m else name.lower()


def tarball_session(filename: str) -> str | None:
    """The session a caltables tarball holds, from its name (``None``: not one).

    ``<mous>.session_3.caltables.tgz`` and ``<mous>.s3.caltables.tgz`` ->
    ``'session_3'``; ``<mous>.caltables.tgz`` or ``...default.caltables.tgz``
    -> ``'default'``; ``*.auxcaltables.tgz`` (imaging aux tables) -> ``None``.
    """
    if not filename.endswith(CALTABLES_SUFFIXES) or "auxcaltables" in filename:
        return None
    m = _TARBALL.search(filename)
    return normalise_session(m.group(1)) if m else "default"


@dataclasses.dataclass(frozen=True)
class EBSession:
    """Where one EB's caltables are."""

    uid: str
    session: str | None     #: normalised session name, None if unresolved
    tarball: str | None     #: tarball file name (in calibration/), None if unresolved
    source: str             #: 'manifest', 'restore script', 'PPR', 'only tarball', 'default tarball', ''


@dataclasses.dataclass(frozen=True)
class SessionMap:
    """EB -> session -> tarball for a member, with the warnings on the way."""

    ebs: tuple[EBSession, ...]
    warnings: tuple[str, ...]
    tarballs: tuple[tuple[str, str], ...]   #: (session, tarball name) found

    def of(self, uid: str) -> EBSession | None:
        for e in self.ebs:
            if e.uid == uid:
                return e
        return None

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources the mapping came from (for the result and the dry run)."""
        return tuple(dict.fromkeys(e.source for e in self.ebs if e.source))

    @property
    def unresolved(self) -> tuple[str, ...]:
        return tuple(e.uid for e in self.ebs if e.tarball is None)


def _tarball_index(names: Iterable[str], manifest_caltables: Mapping[str, str]
                   ) -> dict[str, str]:
    """Normalised session -> tarball name (the manifest's names win)."""
    names = list(names)
    out: dict[str, str] = {}
    for n in sorted(names):
        s = tarball_session(n)
        if s is not None:
            out.setdefault(s, n)
    for sess, n in manifest_caltables.items():
        if n in names:
            out[normalise_session(sess)] = n
    return out


def resolve_sessions(ebs: Sequence[str], tarball_names: Iterable[str], *,
                     manifest: Mapping[str, str] | None = None,
                     manifest_caltables: Mapping[str, str] | None = None,
                     restore_script: Mapping[str, str] | None = None,
                     ppr: Mapping[str, str] | None = None,
                     source_files: Mapping[str, str] | None = None) -> SessionMap:
    """Place every EB of ``ebs`` in its session and tarball.

    Parameters
    ----------
    ebs
        EB uids to restore.
    tarball_names
        File names in calibration/ (any; the caltables tarballs are picked).
    manifest, restore_script, ppr
        EB uid -> session name as each source records it (absent: ``None``).
    manifest_caltables
        The manifest's session -> caltables tarball name.
    source_files
        Source label -> file name, for the warnings.
    """
    index = _tarball_index(tarball_names, manifest_caltables or {})
    files = dict(source_files or {})
    sources = [(label, {u: normalise_session(s) for u, s in (m or {}).items()})
               for label, m in (("manifest", manifest), ("restore script", restore_script),
                                ("PPR", ppr)) if m]
    warnings: list[str] = []
    out: list[EBSession] = []

    def named(label: str) -> str:
        return f"the {label} ({files[label]})" if label in files else f"the {label}"

    for uid in ebs:
        said = [(label, m[uid]) for label, m in sources if uid in m]
        chosen = next(((label, s) for label, s in said if s in index), None)
        if chosen is None:
            if len(index) == 1:
                sess, tgz = next(iter(index.items()))
                out.append(EBSession(uid, sess, tgz, "only tarball"))
                if said:
                    warnings.append(f"{uid}: {named(said[0][0])} places it in {said[0][1]}, "
                                    f"but the only caltables tarball is {tgz}; using it")
            elif "default" in index:
                out.append(EBSession(uid, "default", index["default"], "default tarball"))
            else:
                out.append(EBSession(uid, said[0][1] if said else None, None,
                                     said[0][0] if said else ""))
            continue
        label, sess = chosen
        out.append(EBSession(uid, sess, index[sess], label))
        for other, s in said:
            if other != label and s != sess:
                warnings.append(f"{uid}: {named(label)} places it in {sess}, "
                                f"{named(other)} in {s}; using {sess} ({index[sess]})"
                                + ("" if s in index else f"; no tarball for {s} was delivered"))
    return SessionMap(ebs=tuple(out), warnings=tuple(warnings),
                      tarballs=tuple(sorted(index.items())))
