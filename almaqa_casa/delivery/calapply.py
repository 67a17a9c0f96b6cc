"""Read the pipeline's ``<ms>.calapply.txt`` without evaluating it (pure).

The pipeline writes one ``applycal(vis=..., field=..., ..., calwt=[...])``
line per calibration application and re-reads them with ``eval``.  Delivered
text is data, not code: each line is parsed with :func:`ast.parse` and only
the keyword *values* go through :func:`ast.literal_eval`, so a line that is
not a plain ``applycal(...)`` call with literal arguments is an error that
names the file and line.

Also here: the map from the pipeline's intent names (``TARGET``, ``PHASE``)
to the ALMA scan intents found in a MeasurementSet, and the translation of the
parsed lines into a CASA calibration library (``docallib=True``).
"""
from __future__ import annotations

import ast
import dataclasses
import io
import os
import re
import tokenize
import warnings
from collections.abc import Iterable, Sequence

from ..errors import AlmaqaError, InputError
from ..safeio import read_text

__all__ = [
    "APPLY_INTENTS",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_LINE",
    "PIPELINE_INTENT_OF_OBSMODE",
    "CalApplication",
    "CalApplyError",
    "caltables",
    "casa_intents",
    "drop_full_antenna_selection",
    "format_calapply",
    "parse_calapply",
    "read_calapply",
    "rebase_tables",
    "selects_every_antenna",
    "to_callib",
]

MAX_BYTES = 16 << 20     #: largest calapply.txt read (real ones: a few kB)
MAX_LINE = 256 << 10     #: longest line (real lines: a few kB)
MAX_DEPTH = 8            #: deepest bracket nesting (real lines: 3, ``applycal([[...]])``)

#: Keywords an applycal line must/may carry (CALLIB ``as_applycal``).
_REQUIRED = ("gaintable",)
_ALLOWED = {"vis", "field", "intent", "spw", "antenna", "gaintable", "gainfield",
            "spwmap", "interp", "calwt", "scan", "observation", "timerange",
            "uvrange", "correlation", "parang", "applymode", "flagbackup"}

#: Intents hifa_restoredata applies (ALMARESTORE, ``pipeline/hifa/.../almarestoredata.py``).
APPLY_INTENTS = ("TARGET", "PHASE", "BANDPASS", "AMPLITUDE", "CHECK",
                 "POLARIZATION", "POLANGLE", "POLLEAKAGE")

#: ALMA STATE obs_mode -> pipeline intent (``pipeline/domain/state.py`` StateALMA).
PIPELINE_INTENT_OF_OBSMODE: dict[str, str] = {}
for _mode, _intent in (
        ("CALIBRATE_POLARIZATION", "POLARIZATION"), ("CALIBRATE_POL_ANGLE", "POLANGLE"),
        ("CALIBRATE_POL_LEAKAGE", "POLLEAKAGE"), ("CALIBRATE_BANDPASS", "BANDPASS"),
        ("CALIBRATE_AMPLI", "AMPLITUDE"), ("CALIBRATE_FLUX", "AMPLITUDE"),
        ("CALIBRATE_PHASE", "PHASE"), ("CALIBRATE_TARGET", "TARGET"),
        ("CALIBRATE_POINTING", "POINTING"), ("CALIBRATE_FOCUS", "FOCUS"),
        ("CALIBRATE_WVR", "WVR"), ("CALIBRATE_ATMOSPHERE", "ATMOSPHERE"),
        ("CALIBRATE_SIDEBAND_RATIO", "SIDEBAND"), ("CALIBRATE_DELAY", "CHECK"),
        ("OBSERVE_CHECK_SOURCE", "CHECK"), ("OBSERVE_TARGET", "TARGET")):
    for _sep in "#._":
        PIPELINE_INTENT_OF_OBSMODE[f"{_mode}{_sep}ON_SOURCE"] = _intent
for _sep in "#._":
    PIPELINE_INTENT_OF_OBSMODE[f"CALIBRATE_ATMOSPHERE{_sep}OFF_SOURCE"] = "ATMOSPHERE"
    PIPELINE_INTENT_OF_OBSMODE[f"CALIBRATE_SIDEBAND_RATIO{_sep}OFF_SOURCE"] = "SIDEBAND"
    PIPELINE_INTENT_OF_OBSMODE[f"OBSERVE_TARGET{_sep}OFF_SOURCE"] = "REFERENCE"
for _sub in ("AMBIENT", "HOT", "TEST"):
    PIPELINE_INTENT_OF_OBSMODE[f"CALIBRATE_ATMOSPHERE#{_sub}"] = "ATMOSPHERE"
PIPELINE_INTENT_OF_OBSMODE["CALIBRATE_DIFFGAIN#REFERENCE"] = "DIFFGAINREF"
PIPELINE_INTENT_OF_OBSMODE["CALIBRATE_DIFFGAIN#ON_SOURCE"] = "DIFFGAINSRC"


class CalApplyError(AlmaqaError, ValueError):
    """A calapply.txt line cannot be read; the message names file and line."""


@dataclasses.dataclass(frozen=True)
class CalApplication:
    """One ``applycal`` line: a data selection and the tables applied to it."""

    vis: str
    field: str
    intent: str
    spw: str
    antenna: str
    gaintable: tuple[str, ...]
    gainfield: tuple[str, ...]
    spwmap: tuple[tuple[int, ...], ...]
    interp: tuple[str, ...]
    calwt: tuple[bool, ...]
    source: str = ""      # "<file>:<line>" for messages
    extra: tuple[tuple[str, object], ...] = ()

    def applycal_kwargs(self) -> dict:
        """Arguments for ``casatasks.applycal`` (vis and intent left to the caller)."""
        return dict(field=self.field, spw=self.spw, antenna=self.antenna,
                    gaintable=list(self.gaintable), gainfield=list(self.gainfield),
                    spwmap=[list(m) for m in self.spwmap], interp=list(self.interp),
                    calwt=list(self.calwt))


def _where(filename: str, lineno: int) -> str:
    return f"{filename}, line {lineno}"


def _as_list(value, kind, name, where):
    """Wrap scalars in a list as the pipeline's ``from_export`` does, check the type."""
    if isinstance(value, kind):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, kind) for v in value):
        raise CalApplyError(f"{where}: {name} must be a {kind.__name__} or a list of them; "
                            f"got {value!r}")
    return tuple(value)


def _spwmap(value, where) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, (list, tuple)):
        raise CalApplyError(f"{where}: spwmap must be a list; got {value!r}")
    if len(value) == 0 or not isinstance(value[0], (list, tuple)):
        value = [value]
    out = []
    for m in value:
        if not isinstance(m, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in m):
            raise CalApplyError(f"{where}: spwmap entries must be lists of integers; got {m!r}")
        out.append(tuple(m))
    return tuple(out)


_TOKENS_OK = {tokenize.NAME, tokenize.STRING, tokenize.NUMBER, tokenize.NEWLINE,
              tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT}
_OPS_OK = {"(", ")", "[", "]", ",", "=", "-", "."}
_MAX_DOTS = 16           # attribute access is never a literal; a few reach the literal check


def _prescan(line: str, where: str) -> None:
    """Refuse, before :func:`ast.parse` sees it, a line that no literal
    ``applycal(...)`` call can be: too long, nested too deep, any operator
    (a 100,000-term sum would otherwise exhaust the parser's recursion)."""
    if len(line) > MAX_LINE:
        raise CalApplyError(f"{where}: line of {len(line)} characters (longest accepted "
                            f"{MAX_LINE})")
    depth = dots = 0
    prev = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.OP:
                if tok.string not in _OPS_OK:
                    raise CalApplyError(f"{where}: operator {tok.string!r} is not allowed "
                                        "(applycal arguments are literals)")
                if tok.string == ".":
                    dots += 1
                    if dots > _MAX_DOTS:
                        raise CalApplyError(f"{where}: operator '.' is not allowed "
                                            "(applycal arguments are literals)")
                elif tok.string in "([":
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise CalApplyError(f"{where}: brackets nested deeper than {MAX_DEPTH}")
                elif tok.string in ")]":
                    depth -= 1
            elif tok.type not in _TOKENS_OK:
                raise CalApplyError(f"{where}: {tokenize.tok_name.get(tok.type, 'token')} "
                                    f"{tok.string!r} is not allowed (literals only)")
            if prev is not None and prev.string == "-" and tok.type != tokenize.NUMBER:
                raise CalApplyError(f"{where}: '-' must precede a number")
            prev = tok if tok.type == tokenize.OP else None
    except CalApplyError:
        raise
    except (tokenize.TokenError, SyntaxError, ValueError) as exc:
        msg = exc.args[0] if exc.args else exc
        raise CalApplyError(f"{where}: not a valid applycal(...) line ({msg})") from None


def _table_name(path: str, where: str) -> str:
    """The basename a gaintable path is reduced to; it must name a table, not a folder."""
    name = os.path.basename(path.rstrip("/"))
    if name in ("", ".", "..") or "\0" in path:
        raise CalApplyError(f"{where}: gaintable {path!r} does not name a table")
    return name


def parse_line(line: str, filename: str = "<calapply>", lineno: int = 0) -> CalApplication:
    """Parse one ``applycal(...)`` line (never evaluated as code; bounded)."""
    where = _where(filename, lineno)
    line = line.strip()
    _prescan(line, where)
    try:
        with warnings.catch_warnings():        # e.g. invalid escapes in delivered strings
            warnings.simplefilter("ignore")
            tree = ast.parse(line, mode="eval")
    except SyntaxError as exc:
        raise CalApplyError(f"{where}: not a valid applycal(...) line ({exc.msg})") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise CalApplyError(f"{where}: not a valid applycal(...) line "
                            f"({type(exc).__name__})") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "applycal"):
        raise CalApplyError(f"{where}: expected a call applycal(...)")
    if call.args:
        raise CalApplyError(f"{where}: applycal(...) must use keyword arguments only")
    args: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise CalApplyError(f"{where}: '**' arguments are not allowed")
        if kw.arg not in _ALLOWED:
            raise CalApplyError(f"{where}: unknown applycal argument {kw.arg!r}")
        if kw.arg in args:
            raise CalApplyError(f"{where}: argument {kw.arg!r} given twice")
        try:
            args[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise CalApplyError(f"{where}: the value of {kw.arg!r} is not a literal") from None
    for key in _REQUIRED:
        if key not in args:
            raise CalApplyError(f"{where}: applycal line has no {key!r}")
    for key in ("vis", "field", "intent", "spw", "antenna"):
        v = args.get(key, "")
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            raise CalApplyError(f"{where}: {key} must be a string; got {v!r}")
        args[key] = v
    gaintable = _as_list(args["gaintable"], str, "gaintable", where)
    n = len(gaintable)
    if n == 0 or any(not t for t in gaintable):
        raise CalApplyError(f"{where}: gaintable is empty")
    for t in gaintable:
        _table_name(t, where)
    gainfield = _as_list(args.get("gainfield", [""] * n), str, "gainfield", where)
    interp = _as_list(args.get("interp", [""] * n), str, "interp", where)
    calwt = _as_list(args.get("calwt", [True] * n), bool, "calwt", where)
    spwmap = _spwmap(args.get("spwmap", [[]] * n), where)
    # CASA pads short lists (last calwt repeats, missing gainfield/interp/spwmap default)
    if len(gainfield) < n:
        gainfield = gainfield + ("",) * (n - len(gainfield))
    if len(interp) < n:
        interp = interp + ("",) * (n - len(interp))
    if len(calwt) < n:
        calwt = calwt + (calwt[-1] if calwt else True,) * (n - len(calwt))
    if len(spwmap) < n:
        spwmap = spwmap + ((),) * (n - len(spwmap))
    for name, seq in (("gainfield", gainfield), ("interp", interp), ("calwt", calwt),
                      ("spwmap", spwmap)):
        if len(seq) > n:
            raise CalApplyError(f"{where}: {name} has {len(seq)} entries for {n} gaintables")
    extra = tuple(sorted((k, v) for k, v in args.items()
                         if k not in ("vis", "field", "intent", "spw", "antenna", "gaintable",
                                      "gainfield", "interp", "calwt", "spwmap")))
    return CalApplication(vis=args["vis"], field=args["field"], intent=args["intent"],
                          spw=args["spw"], antenna=args["antenna"], gaintable=gaintable,
                          gainfield=gainfield, spwmap=spwmap, interp=interp, calwt=calwt,
                          source=f"{filename}:{lineno}", extra=extra)


def parse_calapply(text: str, filename: str = "<calapply>") -> list[CalApplication]:
    """Parse a whole calapply.txt text; comments and blank lines are skipped.

    Raises
    ------
    CalApplyError
        On any line that is neither blank, a ``#`` comment, nor a literal
        ``applycal(...)`` call, or when the file holds no applycal line.
    """
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        out.append(parse_line(s, filename, lineno))
    if not out:
        raise CalApplyError(f"{filename}: no applycal(...) line found")
    return out


def read_calapply(path: str | os.PathLike) -> list[CalApplication]:
    """Read and parse a calapply.txt file (a regular file of at most :data:`MAX_BYTES`)."""
    try:
        text = read_text(path, MAX_BYTES, what="calapply.txt")
    except InputError as exc:
        raise CalApplyError(str(exc)) from None
    return parse_calapply(text, os.fspath(path))


def format_line(app: CalApplication) -> str:
    """The ``applycal(...)`` line for ``app``, in the pipeline's argument order."""
    args = [("vis", app.vis), ("field", app.field), ("intent", app.intent), ("spw", app.spw),
            ("antenna", app.antenna), ("gaintable", list(app.gaintable)),
            ("gainfield", list(app.gainfield)), ("spwmap", [list(m) for m in app.spwmap]),
            ("interp", list(app.interp)), ("calwt", list(app.calwt)), *app.extra]
    return "applycal(" + ", ".join(f"{k}={v!r}" for k, v in args) + ")"


def format_calapply(apps: Sequence[CalApplication], vis_name: str = "") -> str:
    """calapply.txt text (``# Apply file for <vis>`` then one line per application)."""
    head = [f"# Apply file for {vis_name}"] if vis_name else []
    return "\n".join(head + [format_line(a) for a in apps]) + "\n"


def caltables(apps: Iterable[CalApplication]) -> list[str]:
    """Basenames of every caltable the applications use, in first-use order."""
    seen: dict[str, None] = {}
    for a in apps:
        for t in a.gaintable:
            seen.setdefault(_table_name(t, a.source), None)
    return list(seen)


def rebase_tables(apps: Sequence[CalApplication], table_dir: str, vis: str) -> list[CalApplication]:
    """Point every gaintable at ``table_dir/<basename>`` and vis at ``vis``.

    As the pipeline's ``_convert_calstate_paths``: the exporting machine's
    paths mean nothing here; the tables are extracted into ``table_dir``.
    """
    out = []
    for a in apps:
        tables = tuple(os.path.join(table_dir, _table_name(t, a.source)) for t in a.gaintable)
        out.append(dataclasses.replace(a, gaintable=tables, vis=vis))
    return out


def casa_intents(pipeline_intents: str, ms_obsmodes: Iterable[str]) -> str:
    """Translate pipeline intents (``'TARGET,PHASE'``) to the MS's own obs modes.

    ``ms_obsmodes`` are the STATE table's OBS_MODE entries (each possibly a
    comma list).  As the pipeline's ``to_CASA_intent``: the result lists every
    obs mode of the MS that maps to one of the wanted intents.  ``''`` (all
    data) stays ``''``; wanted intents absent from the MS give ``None`` (the
    application selects no data and is skipped).
    """
    wanted = {i.strip().upper() for i in pipeline_intents.split(",") if i.strip()}
    if not wanted:
        return ""
    modes: dict[str, None] = {}
    for entry in ms_obsmodes:
        for mode in str(entry).split(","):
            mode = mode.strip()
            if mode and PIPELINE_INTENT_OF_OBSMODE.get(mode) in wanted:
                modes.setdefault(mode, None)
    return ",".join(modes) if modes else None


def restrict_intents(app_intent: str, allowed: Sequence[str] = APPLY_INTENTS) -> str:
    """Pipeline intents of ``app_intent`` that hifa_restoredata applies.

    An empty ``app_intent`` (all data) becomes the full allowed list.
    """
    given = [i.strip().upper() for i in app_intent.split(",") if i.strip()]
    if not given:
        return ",".join(allowed)
    return ",".join(i for i in given if i in allowed)


def antenna_ids(selection: str) -> set[int] | None:
    """Antenna ids of a plain id selection (``'0~7,9'``); ``None`` if it uses names."""
    out: set[int] = set()
    for part in selection.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,6})(?:~(\d{1,6}))?", part)
        if not m:
            return None
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo or hi - lo > 100_000:
            return None
        out.update(range(lo, hi + 1))
    return out


def selects_every_antenna(selection: str, antennas: int | Sequence[str]) -> bool | None:
    """Whether a CASA antenna selection selects every antenna of an MS (pure).

    ``antennas`` is the MS's ANTENNA table: its names in row order (or just
    its row count).  The selection may list ids (``'0~41'``, a range past
    the last antenna as real calapply files have), ``*``, or exact antenna
    names (``'DA41,DV02'``).  ``True``: every antenna is selected (the same
    as no selection); ``False``: some are left out; ``None``: the selection
    uses syntax decided here only by CASA (baselines ``&``, negation ``!``,
    wildcards, regular expressions, names that are numbers).
    """
    names = [] if isinstance(antennas, int) else [str(n) for n in antennas]
    nant = antennas if isinstance(antennas, int) else len(names)
    if any(n.isdigit() for n in names):
        return None                         # '5' could be a name or an index
    index = {n: i for i, n in enumerate(names)}
    chosen: set[int] = set()
    for part in selection.split(","):
        part = part.strip()
        if part == "*":
            return True
        ids = antenna_ids(part)
        if ids is not None:
            chosen |= ids
        elif part in index:
            chosen.add(index[part])
        else:
            return None
    return chosen >= set(range(nant))


def drop_full_antenna_selection(apps: Sequence[CalApplication],
                                antennas: int | Sequence[str]) -> list[CalApplication]:
    """Clear antenna selections that select every antenna of the MS.

    The pipeline writes ``antenna='0~7'`` (and real files ``'0~41'`` on MSs
    of fewer antennas) for all antennas; a cal library has no antenna
    selection, and selecting all antennas is the same as none.  ``antennas``:
    the MS's antenna names in row order (or their count).  Partial or
    undecidable selections are kept (:func:`to_callib` then refuses them and
    the restore falls back to applycal).
    """
    out = []
    for a in apps:
        if a.antenna and selects_every_antenna(a.antenna, antennas):
            a = dataclasses.replace(a, antenna="")
        out.append(a)
    return out


_CALLIB_SAFE = re.compile(r"^[^\s'\"\\]*$")


def _callib_value(name: str, value: str, where: str) -> str:
    if not _CALLIB_SAFE.match(value):
        raise CalApplyError(f"{where}: {name} {value!r} cannot be written to a CASA cal "
                            "library (spaces or quotes)")
    return value


def to_callib(apps: Sequence[CalApplication], intent_of: dict[str, str | None]) -> str:
    """A CASA calibration library text equivalent to the applycal lines.

    ``intent_of`` maps each application's pipeline intent string to the CASA
    intent selection (from :func:`casa_intents`); applications mapped to
    ``None`` select no data and are left out.  Follows
    ``casatasks.private.callibrary.callibrary.addold``: ``interp`` splits into
    ``tinterp``/``finterp``, ``gainfield`` becomes ``fldmap``.
    """
    lines = []
    for a in apps:
        intent = intent_of.get(a.intent, a.intent)
        if intent is None:
            continue
        for i, table in enumerate(a.gaintable):
            parts = [f"caltable='{_callib_value('gaintable', table, a.source)}'",
                     f"calwt={bool(a.calwt[i])}"]
            for key, val in (("field", a.field), ("intent", intent), ("spw", a.spw)):
                if val:
                    parts.append(f"{key}='{_callib_value(key, val, a.source)}'")
            interp = a.interp[i].split(",") if a.interp[i] else []
            tint = interp[0] if interp and interp[0] else "linear"
            parts.append(f"tinterp='{_callib_value('interp', tint, a.source)}'")
            if len(interp) > 1 and interp[1]:
                parts.append(f"finterp='{_callib_value('interp', interp[1], a.source)}'")
            if a.gainfield[i]:
                parts.append(f"fldmap='{_callib_value('gainfield', a.gainfield[i], a.source)}'")
            if a.spwmap[i]:
                parts.append("spwmap=[" + ",".join(str(int(s)) for s in a.spwmap[i]) + "]")
            if a.antenna:
                # the cal library has no antenna selection: refuse rather than widen it
                raise CalApplyError(f"{a.source}: antenna selection {a.antenna!r} cannot be "
                                    "expressed in a CASA cal library")
            lines.append(" ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")
