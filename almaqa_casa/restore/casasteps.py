"""The CASA calls of a pipeline-path restore (I/O; the decisions are in plan/calapply).

Each function writes to the path it is given (the executor hands temporary
names and renames them when the step completes) and never touches the
delivery's own folders.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..delivery.archive import extract
from ..delivery.calapply import (
    CalApplication,
    CalApplyError,
    casa_intents,
    drop_full_antenna_selection,
    rebase_tables,
    restrict_intents,
    to_callib,
)
from ..delivery.contdat import ContDat
from ..errors import AlmaqaError
from ..log import post
from .planners.pipeline import POLCAL_TOKEN

__all__ = [
    "ASIS",
    "RestoreStepError",
    "apply_calibration",
    "contsub",
    "contsub_spec",
    "copy_asdm_xml",
    "extract_caltables",
    "fit_order",
    "import_asdm",
    "needs_parang",
    "restore_flags",
    "science_spws",
    "split_ms",
    "state_obsmodes",
    "write_callib",
    "import_asdm_autocorr",
    "sd_metadata",
    "make_k2jy_table",
    "k2jy_factors",
    "apply_calibration_sd",
    "set_data_unit",
    "sdatmcor_run",
    "sdbaseline_run",
    "write_history",
]

#: hifa_restoredata's asis list (restore.md §4.2).
ASIS = "SBSummary ExecBlock Antenna Annotation Station Receiver Source CalAtmosphere CalWVR CalPointing"


class RestoreStepError(AlmaqaError, RuntimeError):
    """A restore step failed; the message names the EB, the file and the cause."""


def _log(msg: str, level: str = "INFO") -> None:
    post(msg, level, "qa_restore")


def import_asdm(asdm: str, vis: str, lazy: bool = True, ocorr_mode: str = "ca",
                asis: str = ASIS, bdfflags: bool = True,
                readable: Callable[[str], bool] | None = None) -> dict:
    """importasdm with the delivery's restore options; lazy first, non-lazy on failure.

    ``ocorr_mode``, ``asis`` and ``bdfflags`` are those of the delivery's
    restore (:func:`almaqa_casa.delivery.member.import_options`); ``readable``
    says whether a lazily imported MS reads (default: its DATA).  Returns
    ``{'lazy': bool, 'fallback_reason': str}``.
    """
    from casatasks import importasdm
    kw = dict(asdm=asdm, vis=vis, ocorr_mode=ocorr_mode, bdfflags=bdfflags, asis=asis,
              process_caldevice=False, savecmds=False, overwrite=False,
              with_pointing_correction=True, process_pointing=True, createmms=False)
    reason = ""
    if lazy:
        try:
            importasdm(lazy=True, **kw)
            if _nrows(vis) > 0 and (readable or _lazy_readable)(vis):
                return {"lazy": True, "fallback_reason": ""}
            reason = "lazy import gave an unreadable MS"
        except Exception as exc:  # importasdm raises on failure
            reason = f"lazy import failed: {exc}"
        _log(f"{os.path.basename(asdm)}: {reason}; importing again with lazy=False", "WARN")
        for p in (vis, vis + ".flagversions"):
            if os.path.exists(p):
                shutil.rmtree(p)
    importasdm(lazy=False, **kw)
    if not os.path.isdir(vis):
        raise RestoreStepError(f"importasdm of {asdm} wrote no MeasurementSet")
    return {"lazy": False, "fallback_reason": reason}


def _nrows(vis: str) -> int:
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        return tb.nrows()
    finally:
        tb.close()


def _lazy_readable(vis: str) -> bool:
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        d = tb.getcol("DATA", 0, 1) if "DATA" in tb.colnames() else None
        return d is not None and np.isfinite(d).all()
    except Exception:
        return False
    finally:
        tb.close()


def copy_asdm_xml(asdm: str, vis: str) -> None:
    """As the pipeline: Source/SpectralWindow/DataDescription.xml into the MS folder."""
    for name in ("Source.xml", "SpectralWindow.xml", "DataDescription.xml"):
        src = os.path.join(asdm, name)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(vis, name))


def restore_flags(vis: str, flagversions_tgz: str, version: str = "Pipeline_Final",
                  data_bytes: int | None = None) -> None:
    """Replace ``<vis>.flagversions`` by the delivered one and restore ``version``.

    ``data_bytes`` (the EB's ASDM size) bounds what the tarball may expand
    to: flag versions hold about one bit per visibility.
    """
    from casatasks import flagmanager
    from casatools import table

    from ..delivery.tarsafe import limits_for
    fv = vis + ".flagversions"
    with tempfile.TemporaryDirectory(dir=os.path.dirname(vis), prefix=".fv-") as tmp:
        extract(flagversions_tgz, tmp, limits=limits_for("flagversions", ms_bytes=data_bytes)
                if data_bytes else None)
        found = [p for p in Path(tmp).iterdir() if p.name.endswith(".flagversions")]
        if len(found) != 1:
            raise RestoreStepError(f"{flagversions_tgz}: expected one <ms>.flagversions folder, "
                                   f"found {[p.name for p in Path(tmp).iterdir()]}")
        if not (found[0] / f"flags.{version}").is_dir():
            raise RestoreStepError(f"{flagversions_tgz}: no flag version {version!r}")
        tb = table()
        tb.open(str(found[0] / f"flags.{version}"))
        nflag = tb.nrows()
        tb.close()
        nrows = _nrows(vis)
        if nflag != nrows:
            raise RestoreStepError(
                f"{flagversions_tgz}: flag version {version} has {nflag} rows but the imported "
                f"MS has {nrows}; flag versions are indexed to the rows of the full import")
        if os.path.exists(fv):
            shutil.rmtree(fv)
        os.replace(found[0], fv)
    flagmanager(vis=vis, mode="restore", versionname=version, merge="replace")


def extract_caltables(tgz: str, tables: Sequence[str], dest: str) -> list[str]:
    """Extract the named caltables (and nothing else) from a session tarball.

    Several EBs of a session may apply the same table (hifa_polcal's session
    tables), and their EBs run in parallel: each extraction goes to a private
    folder (``.extract-*.partial``, removed by the executor after an interruption) and a
    table is moved into ``dest`` only when no other EB placed it
    there first (a table in place is complete and is never replaced under an
    EB that is applying it)."""
    wanted = set(tables)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-", suffix=".partial") as tmp:
        got = extract(tgz, tmp, select=lambda n: n.split("/", 1)[0] in wanted)
        have = {p.name for p in got}
        missing = sorted(wanted - have)
        if missing:
            raise RestoreStepError(f"{tgz}: caltable(s) named in calapply.txt not found in the "
                                   f"tarball: {', '.join(missing)}")
        for t in sorted(wanted):
            final = os.path.join(dest, t)
            if os.path.isdir(final):
                continue
            try:
                os.rename(os.path.join(tmp, t), final)
            except OSError:
                if not os.path.isdir(final):   # not a concurrent placement: a real failure
                    raise
    return [os.path.join(dest, t) for t in tables]


def state_obsmodes(vis: str) -> list[str]:
    """OBS_MODE entries of the MS's STATE table."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "STATE"))
    try:
        return list(tb.getcol("OBS_MODE")) if tb.nrows() else []
    finally:
        tb.close()


def _selected(apps: Sequence[CalApplication], vis: str) -> list[tuple[CalApplication, str]]:
    modes = state_obsmodes(vis)
    out = []
    for a in apps:
        intents = casa_intents(restrict_intents(a.intent), modes)
        if intents is None:
            continue
        out.append((a, intents))
    return out


def _check_tables(apps: Sequence[CalApplication]) -> None:
    for a in apps:
        for t in a.gaintable:
            if not os.path.isdir(t):
                raise RestoreStepError(f"caltable {t} (from {a.source}) does not exist")


def needs_parang(app: CalApplication) -> bool:
    """hifa_restoredata: ``parang=True`` when a table of hifa_polcal is applied."""
    return any(POLCAL_TOKEN in os.path.basename(t) for t in app.gaintable)


def write_history(vis: str, message: str) -> None:
    """One line in the MS's HISTORY table, origin qa_restore."""
    from casatools import ms as mstool
    m = mstool()
    m.open(vis, nomodify=False)
    try:
        m.writehistory(message=message, origin="qa_restore")
    finally:
        m.close()


def apply_calibration(vis: str, apps: Sequence[CalApplication], table_dir: str) -> int:
    """applycal per calapply line (calflagstrict, pipeline intents, ``parang=True``
    where a hifa_polcal table is applied, said in HISTORY).  Returns the count."""
    from casatasks import applycal
    apps = rebase_tables(apps, table_dir, vis)
    _check_tables(apps)
    n = 0
    for a, intents in _selected(apps, vis):
        parang = needs_parang(a)
        applycal(vis=vis, intent=intents, applymode="calflagstrict", flagbackup=False,
                 parang=parang, **a.applycal_kwargs())
        if parang:
            write_history(vis, f"{a.source}: applied with parang=True (hifa_polcal tables: "
                               + ", ".join(os.path.basename(t) for t in a.gaintable
                                           if POLCAL_TOKEN in os.path.basename(t)) + ")")
        n += 1
    return n


def write_callib(vis: str, apps: Sequence[CalApplication], table_dir: str, path: str) -> str:
    """Write the cal library equivalent of the calapply lines for ``vis``."""
    apps = drop_full_antenna_selection(rebase_tables(apps, table_dir, vis), antenna_names(vis))
    _check_tables(apps)
    modes = state_obsmodes(vis)
    intent_of = {a.intent: casa_intents(restrict_intents(a.intent), modes) for a in apps}
    text = to_callib(apps, intent_of)
    Path(path).write_text(text)
    return path


def antenna_names(vis: str) -> list[str]:
    """NAME column of the MS's ANTENNA table, in row order (antenna id = row)."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "ANTENNA"))
    try:
        return [str(n) for n in tb.getcol("NAME")] if tb.nrows() else []
    finally:
        tb.close()


def n_antennas(vis: str) -> int:
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "ANTENNA"))
    try:
        return tb.nrows()
    finally:
        tb.close()


def callib_possible(apps: Sequence[CalApplication]) -> bool:
    """True when every line can be written to a CASA cal library."""
    try:
        to_callib(rebase_tables(apps, "/x", "v"), {a.intent: "" for a in apps})
        return True
    except CalApplyError:
        return False


def science_spws(vis: str) -> list[int]:
    """scriptForPI: spws of OBSERVE_TARGET* with more than 4 channels."""
    from casatools import msmetadata
    md = msmetadata()
    md.open(vis)
    try:
        try:
            spws = md.spwsforintent("OBSERVE_TARGET*")
        except Exception:
            spws = []
        return sorted(int(s) for s in spws if md.nchan(int(s)) > 4)
    finally:
        md.close()


def split_ms(vis: str, outputvis: str, spw: Sequence[int], callib: str = "",
             intent: str = "", reindex: bool = False) -> None:
    """mstransform of the calibrated data (CORRECTED, or DATA with a cal library)."""
    from casatasks import mstransform
    if not spw:
        raise RestoreStepError(f"{vis}: no science spectral window (OBSERVE_TARGET, > 4 channels)")
    kw = dict(vis=vis, outputvis=outputvis, spw=",".join(str(s) for s in spw),
              datacolumn="corrected", keepflags=True, reindex=reindex, intent=intent)
    if callib:
        kw.update(docallib=True, callib=callib)
    mstransform(**kw)
    if not os.path.isdir(outputvis):
        raise RestoreStepError(f"mstransform wrote no {outputvis}")


#: cont.dat flags (hif_findcont) for which hif_uvcontsub fits a constant.
LOW_FIT_FLAGS = frozenset({"LOWBANDWIDTH", "LOWSPREAD"})


def fit_order(flags: Sequence[str], default: int = 1) -> int:
    """hif_uvcontsub's fit order for one field/spw: ``default`` (1), or 0 when
    hif_findcont flagged the continuum ranges ``LOWBANDWIDTH`` or
    ``LOWSPREAD`` in cont.dat (too little or too clustered for a slope)."""
    return 0 if LOW_FIT_FLAGS & {f.upper() for f in flags} else default


def contsub_spec(vis: str, cont: ContDat, fitorder: int = 1) -> tuple[dict, list[str]]:
    """uvcontsub ``fitspec`` from cont.dat ranges (converted to channels of ``vis``).

    Ranges in LSRK (or another frame) are mapped to channels with
    ``ms.cvelfreqs`` per field; a spw marked ``NONE`` is not fitted, ``ALL``
    fits every channel.  The fit order per field/spw follows
    :func:`fit_order`.  Returns (fitspec, warnings).
    """
    from casatools import ms as mstool
    from casatools import msmetadata
    md = msmetadata()
    md.open(vis)
    try:
        fields = {int(f): md.namesforfields(int(f))[0] for f in md.fieldsforintent("OBSERVE_TARGET*")}
        spws = [int(s) for s in md.spwsforintent("OBSERVE_TARGET*") if md.nchan(int(s)) > 4]
        topo = {s: np.asarray(md.chanfreqs(s)) for s in spws}
    finally:
        md.close()
    warnings = []
    spec: dict = {}
    m = mstool()
    m.open(vis)
    try:
        for fid, fname in fields.items():
            ranges = cont.for_field(fname)
            if not ranges:
                warnings.append(f"{fname}: no continuum ranges in cont.dat; not subtracted")
                spec[str(fid)] = "NONE"
                continue
            fs: dict = {}
            for s in spws:
                r = ranges.get(s)
                if r is None or r.keyword == "NONE" or (not r.ranges and r.keyword != "ALL"):
                    continue
                order = fit_order(r.flags, fitorder)
                if r.keyword == "ALL":
                    fs[str(s)] = {"chan": "", "fitorder": order}
                    continue
                if r.frame == "TOPO":
                    freqs = topo[s]
                else:
                    freqs = np.asarray(m.cvelfreqs(spwids=[s], fieldids=[fid], mode="channel",
                                                   outframe=r.frame if r.frame != "SOURCE" else "LSRK"))
                    if freqs.size != topo[s].size:
                        freqs = topo[s]
                sel = np.zeros(freqs.size, bool)
                for lo, hi in r.ranges:
                    sel |= (freqs >= lo) & (freqs <= hi)
                idx = np.flatnonzero(sel)
                if idx.size == 0:
                    warnings.append(f"{fname} spw {s}: cont.dat ranges select no channel")
                    continue
                runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
                chans = ";".join(f"{a[0]}~{a[-1]}" for a in runs)
                fs[str(s)] = {"chan": chans, "fitorder": order}
            spec[str(fid)] = fs if fs else "NONE"
    finally:
        m.close()
    return spec, warnings


def contsub(vis: str, outputvis: str, fitspec: dict, fitorder: int = 1) -> None:
    """uvcontsub (CASA >= 6.5) writing the continuum-subtracted line MS."""
    from casatasks import uvcontsub
    uvcontsub(vis=vis, outputvis=outputvis, fitspec=fitspec, fitorder=fitorder,
              datacolumn="data", fitmethod="gsl")
    if not os.path.isdir(outputvis):
        raise RestoreStepError(f"uvcontsub wrote no {outputvis}")


# ---- total power (hsd_restoredata, hsd_atmcor, hsd_baseline) ---------------------------
def _float_data_readable(vis: str) -> bool:
    from casatools import table
    tb = table()
    tb.open(vis)
    try:
        col = "FLOAT_DATA" if "FLOAT_DATA" in tb.colnames() else "DATA"
        d = tb.getcol(col, 0, 1) if col in tb.colnames() else None
        return d is not None and np.isfinite(np.asarray(d, float) if col == "FLOAT_DATA" else d).all()
    except Exception:
        return False
    finally:
        tb.close()


def import_asdm_autocorr(asdm: str, vis: str, lazy: bool = True, ocorr_mode: str = "ao",
                         asis: str = "", bdfflags: bool = True) -> dict:
    """importasdm of a total power EB (autocorrelations into FLOAT_DATA);
    lazy first, non-lazy on failure.  Returns ``{'lazy', 'fallback_reason'}``."""
    return import_asdm(asdm, vis, lazy=lazy, ocorr_mode=ocorr_mode, asis=asis,
                       bdfflags=bdfflags, readable=_float_data_readable)


def sd_metadata(vis: str) -> dict:
    """Antenna names, correlations and science spw frequency ranges of a TP MS."""
    from casatools import msmetadata
    md = msmetadata()
    md.open(vis)
    try:
        spws = science_spws(vis)
        ranges = {}
        for s in spws:
            f = np.asarray(md.chanfreqs(s))
            w = np.abs(np.asarray(md.chanwidths(s)))
            ranges[s] = (float(f.min() - w[0] / 2), float(f.max() + w[0] / 2))
        ants = [str(a) for a in md.antennanames()]
    finally:
        md.close()
    return {"antennas": ants, "spws": ranges, "pols": corr_names(vis)}


#: Stokes codes of the correlations ALMA records (casacore's Stokes enum).
CORR_NAMES = {9: "XX", 10: "XY", 11: "YX", 12: "YY", 5: "RR", 8: "LL", 1: "I"}


def corr_names(vis: str) -> list[str]:
    """Names of the correlations of ``vis`` (its first POLARIZATION row)."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, "POLARIZATION"))
    try:
        return [CORR_NAMES.get(int(c), str(c)) for c in tb.getcell("CORR_TYPE", 0)]
    finally:
        tb.close()


def make_k2jy_table(vis: str, csv_text: str, caltable: str) -> None:
    """The Kelvin-to-Jansky table of ``vis`` from MS-based factor text
    (``gencal(caltype='jyperk')``, as hsd_k2jycal makes it)."""
    from casatasks import gencal
    with tempfile.TemporaryDirectory(dir=os.path.dirname(caltable) or ".", prefix=".jyperk-") as tmp:
        infile = os.path.join(tmp, "jyperk.csv")
        Path(infile).write_text(csv_text)
        gencal(vis=vis, caltable=caltable, caltype="jyperk", infile=infile)
    if not os.path.isdir(caltable):
        raise RestoreStepError(f"gencal(caltype='jyperk') wrote no {caltable} for {vis}")


def k2jy_factors(caltable: str, vis: str) -> dict[tuple[str, int, str], float]:
    """(antenna, spw, pol) -> the Jy/K factor a table applies: 1 / |gain|^2
    (an amplitude gain g scales an autocorrelation by 1 / g^2)."""
    from casatools import table
    meta = sd_metadata(vis)
    tb = table()
    tb.open(caltable)
    try:
        ant = tb.getcol("ANTENNA1")
        spw = tb.getcol("SPECTRAL_WINDOW_ID")
        par = tb.getcol("CPARAM")[:, 0, :]
        flag = tb.getcol("FLAG")[:, 0, :]
    finally:
        tb.close()
    tb.open(os.path.join(caltable, "ANTENNA"))
    try:
        names = [str(n) for n in tb.getcol("NAME")]
    finally:
        tb.close()
    out = {}
    for i in range(len(ant)):
        for p, pol in enumerate(meta["pols"][: par.shape[0]]):
            if not flag[p, i] and abs(par[p, i]) > 0:
                out[(names[int(ant[i])], int(spw[i]), pol)] = float(1.0 / abs(par[p, i]) ** 2)
    return out


def apply_calibration_sd(vis: str, apps: Sequence[CalApplication], table_dir: str,
                         extra: Sequence[tuple[str, str, str, bool]] = ()) -> int:
    """applycal per calapply line as hsd_applycal runs it: TARGET
    autocorrelations (``antenna='*&&&'``), ``calflagstrict``.  ``extra``:
    (table, gainfield, interp, calwt) appended to every line (the Jy/K table
    made from jyperk.csv).  Returns the number of lines applied."""
    from casatasks import applycal
    apps = rebase_tables(apps, table_dir, vis)
    _check_tables(apps)
    for t, *_ in extra:
        if not os.path.isdir(t):
            raise RestoreStepError(f"caltable {t} does not exist")
    n = 0
    for a, intents in _selected(apps, vis):
        kw = a.applycal_kwargs()
        kw["antenna"] = "*&&&"
        for t, gf, ip, cw in extra:
            kw["gaintable"].append(t)
            kw["gainfield"].append(gf)
            kw["interp"].append(ip)
            kw["spwmap"].append([])
            kw["calwt"].append(cw)
        applycal(vis=vis, intent=intents, applymode="calflagstrict", flagbackup=False, **kw)
        n += 1
    return n


def set_data_unit(vis: str, unit: str) -> None:
    """Record the brightness unit ('K' or 'Jy') on the data columns, as
    hsd_applycal's ``set_unit`` does (DATA, FLOAT_DATA, CORRECTED_DATA)."""
    from casatools import table
    tb = table()
    tb.open(vis, nomodify=False)
    try:
        for col in set(tb.colnames()) & {"DATA", "FLOAT_DATA", "CORRECTED_DATA"}:
            tb.putcolkeyword(col, "UNIT", unit)
    finally:
        tb.close()


def sdatmcor_run(vis: str, outfile: str, datacolumn: str, atmtype: int, dtem_dh: float, h0: float,
                 gainfactor: str | float, spw: Sequence[int]) -> None:
    """sdatmcor as hsd_atmcor calls it (ON_SOURCE data, the Jy/K table as gainfactor)."""
    from casatasks import sdatmcor
    sdatmcor(infile=vis, datacolumn=datacolumn, outfile=outfile, overwrite=True,
             intent="OBSERVE_TARGET#ON_SOURCE", outputspw=",".join(str(s) for s in spw),
             gainfactor=gainfactor if gainfactor else 1.0, atmtype=int(atmtype),
             dtem_dh=f"{dtem_dh}K/km", h0=f"{h0}km")
    if not os.path.isdir(outfile):
        raise RestoreStepError(f"sdatmcor wrote no {outfile}")


def sdbaseline_run(vis: str, outfile: str, datacolumn: str, spw: str = "", bltable: str = "") -> None:
    """sdbaseline as hsd_baseline: with ``bltable`` the delivered fit is applied
    (``blmode='apply'``); without, a first-order polynomial is fitted outside
    the lines sdbaseline's line finder detects."""
    from casatasks import sdbaseline
    kw = dict(infile=vis, datacolumn=datacolumn, outfile=outfile, overwrite=True, spw=spw,
              intent="OBSERVE_TARGET#ON_SOURCE")
    if bltable:
        sdbaseline(blmode="apply", bltable=bltable, **kw)
    else:
        sdbaseline(blmode="fit", blfunc="poly", order=1, maskmode="auto", thresh=5.0,
                   avg_limit=4, minwidth=4, edge=[0, 0], blformat="", **kw)
    if not os.path.isdir(outfile):
        raise RestoreStepError(f"sdbaseline wrote no {outfile}")
