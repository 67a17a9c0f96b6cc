"""Export a simulated MS to an ASDM that looks like ALMA's and imports back.

exportasdm of a simulated MS needs three fixes (see the project's
``casa_environment.md``): one POLARIZATION row (done in :mod:`simulate`), the
scan structure (exportasdm splits the data into odd execblocks and scans with
no ALMA intents; we rewrite Main, Scan, Subscan and ExecBlock), and the empty
``sdPolProducts`` in the binary data headers (lazy import fails on it).
"""
from __future__ import annotations

import glob
import os
import re
import shutil

from . import spec as S
from ._casa import casatasks, casatools

_ROW = re.compile(r"<row>(.*?)</row>", re.S)


def _get(row: str, key: str) -> str:
    m = re.search(r"<%s>\s*(.*?)\s*</%s>" % (key, key), row, re.S)
    if m is None:
        raise ValueError(f"ASDM row without <{key}>: {row[:200]}")
    return m.group(1)


def _set(row: str, key: str, value) -> str:
    return re.sub(r"<%s>.*?</%s>" % (key, key), "<%s> %s </%s>" % (key, value, key), row, count=1, flags=re.S)


def _split_table(text: str):
    first = text.find("<row>")
    last = text.rfind("</row>") + len("</row>")
    if first < 0:
        raise ValueError("ASDM table without rows")
    return text[:first], _ROW.findall(text), text[last:]


def _join_table(head: str, rows: list[str], tail: str) -> str:
    return head + "".join("<row>%s</row>\n  " % r for r in rows) + tail


def _uid_url(uid: str) -> str:
    """``uid___A002_X1_X2`` -> ``uid://A002/X1/X2``."""
    return "uid://" + uid[len("uid___"):].replace("_", "/")


def export(ms: str, asdm: str, eb_uid: str, info: dict, spec: S.SynthSpec) -> None:
    """exportasdm ``ms`` to ``asdm`` and make the result ALMA-like."""
    if os.path.exists(asdm):
        shutil.rmtree(asdm)
    archive, block, _ = eb_uid[len("uid___"):].split("_")
    ok = casatasks.exportasdm(vis=ms, asdm=asdm, archiveid=archive, rangeid=block,
                              sbduration="86400s", verbose=False)
    if ok is False or not os.path.isfile(os.path.join(asdm, "Main.xml")):
        raise RuntimeError(f"exportasdm failed for {ms}")
    container = "uid://%s/%s/X1" % (archive, block)
    rewrite_scans(asdm, info, spec, eb_uid, container)
    write_science_goal(asdm)
    patch_bdf_headers(asdm, spec.corrs)


def rewrite_scans(asdm: str, info: dict, spec: S.SynthSpec, eb_uid: str, container: str) -> None:
    """Give the ASDM one execblock, the simulated scans and ALMA intents."""
    path = lambda n: os.path.join(asdm, n + ".xml")  # noqa: E731
    with open(path("Field")) as fh:
        _, frows, _ = _split_table(fh.read())
    field_names = {_get(r, "fieldId"): _get(r, "fieldName") for r in frows}
    scans = info["scans"]
    eps = 1.0
    with open(path("Main")) as fh:
        head, mrows, tail = _split_table(fh.read())
    chunks: dict[int, list] = {}
    placed = []
    for r in mrows:
        t = int(_get(r, "time")) * 1e-9
        nint = int(_get(r, "numIntegration"))
        interval = int(_get(r, "interval")) * 1e-9
        fname = field_names[_get(r, "fieldId")]
        hit = [s for s in scans if s["field"] == fname and s["start"] - eps <= t <= s["end"] + eps]
        if len(hit) != 1:
            raise RuntimeError(f"cannot place ASDM Main row at {t} ({fname}) in one scan")
        sc = hit[0]["scan"]
        chunks.setdefault(sc, [])
        if _get(r, "time") not in [c[0] for c in chunks[sc]]:
            chunks[sc].append((_get(r, "time"), t, nint, interval))
        placed.append((r, sc))
    for sc in chunks:
        chunks[sc].sort(key=lambda c: c[1])
    new_main = []
    for r, sc in placed:
        sub = [c[0] for c in chunks[sc]].index(_get(r, "time")) + 1
        r = _set(r, "scanNumber", sc)
        r = _set(r, "subscanNumber", sub)
        r = _set(r, "execBlockId", "ExecBlock_0")
        new_main.append(r)
    # Main rows sorted by time then configuration, as ALMA writes them.
    new_main.sort(key=lambda r: (int(_get(r, "time")), _get(r, "configDescriptionId")))
    with open(path("Main"), "w") as fh:
        fh.write(_join_table(head, new_main, tail))

    # Scan and Subscan tables.
    with open(path("Scan")) as fh:
        shead, _, stail = _split_table(fh.read())
    with open(path("Subscan")) as fh:
        bhead, _, btail = _split_table(fh.read())
    srows, brows = [], []
    for s in scans:
        sc = s["scan"]
        subs = chunks.get(sc, [])
        if not subs:
            raise RuntimeError(f"scan {sc} ({s['field']}) has no data in the ASDM")
        intents = [S.INTENT_CASA[i].split("#")[0] for i in s["intents"]]
        starts = [c[1] - c[2] * c[3] / 2 for c in subs]
        ends = [c[1] + c[2] * c[3] / 2 for c in subs]
        ns = lambda x: "%d" % round(x * 1e9)  # noqa: E731
        n = len(intents)
        srows.append(
            f"\n<scanNumber> {sc} </scanNumber> <startTime> {ns(min(starts))} </startTime> "
            f"<endTime> {ns(max(ends))} </endTime> <numIntent> {n} </numIntent> "
            f"<numSubscan> {len(subs)} </numSubscan> <scanIntent> 1 {n} {' '.join(intents)}</scanIntent>"
            f"<calDataType> 1 {n} {' '.join(['NONE'] * n)}</calDataType>"
            f"<calibrationOnLine> 1 {n} {' '.join(['false'] * n)}  </calibrationOnLine> "
            f"<execBlockId> ExecBlock_0 </execBlockId> <numField> 1 </numField> "
            f"<fieldName> 1 1 \"{s['field']}\"  </fieldName> <sourceName> {s['field']} </sourceName> ")
        for j, c in enumerate(subs):
            zeros = " ".join(["0"] * c[2])
            brows.append(
                f"\n<scanNumber> {sc} </scanNumber> <subscanNumber> {j + 1} </subscanNumber> "
                f"<startTime> {ns(starts[j])} </startTime> <endTime> {ns(ends[j])} </endTime> "
                f"<fieldName> {s['field']} </fieldName> <subscanIntent>ON_SOURCE</subscanIntent>"
                f"<numIntegration> {c[2]} </numIntegration> <numSubintegration> 1 {c[2]} {zeros}  "
                f"</numSubintegration> <execBlockId> ExecBlock_0 </execBlockId> ")
    with open(path("Scan"), "w") as fh:
        fh.write(_join_table(shead, srows, stail))
    with open(path("Subscan"), "w") as fh:
        fh.write(_join_table(bhead, brows, btail))

    # One execblock covering everything, with the EB UID.
    with open(path("ExecBlock")) as fh:
        ehead, erows, etail = _split_table(fh.read())
    e = erows[0]
    tstart = min(s["start"] for s in scans)
    tend = max(s["end"] for s in scans)
    e = _set(e, "startTime", "%d" % round(tstart * 1e9))
    e = _set(e, "endTime", "%d" % round(tend * 1e9))
    e = _set(e, "observerName", "almaqa synth")
    e = _set(e, "configName", S.CONFIG_FILE.replace(".cfg", ""))
    e = e.replace('entityId="%s"' % container, 'entityId="%s"' % _uid_url(eb_uid))
    mous = _uid_url(spec.mous)
    e = re.sub(r'(<sessionReference> <EntityRef entityId=")[^"]*', r"\g<1>" + mous, e)
    with open(path("ExecBlock"), "w") as fh:
        fh.write(_join_table(ehead, [e], etail))

    # ASDM.xml: row counts of the rewritten tables, a deterministic creation time.
    with open(path("ASDM")) as fh:
        text = fh.read()
    for name, n in (("Scan", len(srows)), ("Subscan", len(brows)), ("ExecBlock", 1), ("Main", len(new_main))):
        text = re.sub(r"(<Name> %s </Name> <NumberRows> )\d+( </NumberRows>)" % name,
                      r"\g<1>%d\g<2>" % n, text)
    import datetime
    created = datetime.datetime(1858, 11, 17) + datetime.timedelta(seconds=round(tend) + 60)
    text = re.sub(r"<TimeOfCreation>.*?</TimeOfCreation>",
                  "<TimeOfCreation> %s.000000000 </TimeOfCreation>" % created.strftime("%Y-%m-%dT%H:%M:%S"), text)
    with open(path("ASDM"), "w") as fh:
        fh.write(text)

    # Container entity -> EB UID in every table; SB summary points at the MOUS.
    for xml in glob.glob(os.path.join(asdm, "*.xml")):
        with open(xml) as fh:
            text = fh.read()
        new = text.replace('entityId="%s"' % container, 'entityId="%s"' % _uid_url(eb_uid))
        if os.path.basename(xml) == "SBSummary.xml":
            new = re.sub(r'(<obsUnitSetUID> <EntityRef entityId=")[^"]*', r"\g<1>" + mous, new)
        if new != text:
            with open(xml, "w") as fh:
                fh.write(new)


def write_science_goal(asdm: str) -> None:
    """State the PI's science goal (:data:`spec.SCIENCE_GOAL`) in SBSummary.xml as the
    observatory does: exportasdm leaves placeholders ("science goal t.b.d.")."""
    path = os.path.join(asdm, "SBSummary.xml")
    with open(path) as fh:
        text = fh.read()
    goals = " ".join("&quot;%s = %s&quot;" % kv for kv in S.SCIENCE_GOAL)
    weather = ("maxPWVC = 5.186 mm", "seeing = 0.0 arcsec", "phaseStability = 1.0 rad")
    freq_ghz = float(dict(S.SCIENCE_GOAL)["representativeFrequency"].split()[0])
    for key, value in (("frequency", freq_ghz),  # real files: the representative frequency in GHz
                       ("observingMode", "1 1 &quot;Standard Interferometry&quot; "),
                       ("numScienceGoal", len(S.SCIENCE_GOAL)),
                       ("scienceGoal", f"1 {len(S.SCIENCE_GOAL)} {goals} "),
                       ("numWeatherConstraint", len(weather)),
                       ("weatherConstraint", f"1 {len(weather)} "
                        + " ".join(f"&quot;{w}&quot;" for w in weather) + " ")):
        if f"<{key}>" not in text:
            raise RuntimeError(f"{path}: no <{key}> to set")
        text = _set(text, key, value)
    text = text.replace("<sbType>OBSERVATORY</sbType>", "<sbType>OBSERVER</sbType>")
    with open(path, "w") as fh:
        fh.write(text)


_XHTML = b' xmlns:xhtml="http://www.w3.org/1999/xhtml"'


def patch_bdf_headers(asdm: str, corrs: list[str]) -> int:
    """Fill ``sdPolProducts=""`` in every binary data file, same byte length.

    The room comes from the unused ``xmlns:xhtml`` declaration of the same
    header, replaced by spaces.  Returns the number of files patched."""
    n = 0
    for bdf in sorted(glob.glob(os.path.join(asdm, "ASDMBinary", "*"))):
        with open(bdf, "rb") as fh:
            blob = fh.read()
        end = blob.find(b"</sdmDataHeader>")
        if end < 0:
            raise RuntimeError(f"no sdmDataHeader in {bdf}")
        head = blob[:end]
        k = head.count(b'sdPolProducts=""')
        if k == 0:
            continue
        m = re.search(rb'<autoData size="(\d+)"', head)
        nant = int(re.search(rb"<numAntenna>(\d+)</numAntenna>", head).group(1))
        nchan = int(re.search(rb'numSpectralPoint="(\d+)"', head).group(1))
        if len(corrs) == 2:
            prods = b"XX YY"
        else:
            # full-pol autos: ALMA stores XX XY YY (XY complex = 2 floats)
            per = int(m.group(1)) // (nant * nchan) if m else 4
            prods = b"XX XY YY" if per == 4 else b"XX XY YX YY"
        extra = k * len(prods)
        if head.count(_XHTML) != 1 or len(_XHTML) < extra:
            raise RuntimeError(f"cannot patch sdPolProducts in {bdf}: no room in the header")
        new = head.replace(b'sdPolProducts=""', b'sdPolProducts="' + prods + b'"')
        new = new.replace(_XHTML, b" " * (len(_XHTML) - extra))
        assert len(new) == len(head)
        with open(bdf, "r+b") as fh:
            fh.write(new)
        n += 1
    return n


def import_asdm(asdm: str, vis: str, lazy: bool = True) -> str:
    """importasdm as the pipeline does (cross+auto, BDF flags)."""
    if os.path.exists(vis):
        shutil.rmtree(vis)
    casatasks.importasdm(asdm=asdm, vis=vis, ocorr_mode="ca", lazy=lazy, bdfflags=True,
                         process_caldevice=False, asis="SBSummary ExecBlock Antenna Station Receiver Source",
                         with_pointing_correction=False, overwrite=True)
    if not os.path.isdir(vis):
        raise RuntimeError(f"importasdm did not create {vis} from {asdm}")
    return vis


def check_import(vis: str, spec: S.SynthSpec, info: dict) -> dict:
    """Verify scans, intents, fields and spws of an imported MS."""
    msmd = casatools.msmetadata()
    msmd.open(vis)
    try:
        nscan = len(msmd.scannumbers())
        if nscan != len(info["scans"]):
            raise RuntimeError(f"{vis}: {nscan} scans after import, expected {len(info['scans'])}")
        for s in info["scans"]:
            got = set(msmd.intentsforscan(s["scan"]))
            want = {S.INTENT_CASA[i] for i in s["intents"]}
            if not want <= got:
                raise RuntimeError(f"{vis}: scan {s['scan']} intents {sorted(got)}, expected {sorted(want)}")
        if msmd.nspw() < len(S.SPWS):
            raise RuntimeError(f"{vis}: {msmd.nspw()} spws after import")
        return {"nscan": nscan, "nrows": msmd.nrows(), "fields": list(msmd.fieldnames())}
    finally:
        msmd.close()


#: SysCal (Tsys) measurement length per antenna under the SACM/JAO timing
#: fault (Cycle 5-6): one measurement, antennas with different INTERVALs,
#: so TIME (its midpoint) differs over antennas while TIME - INTERVAL/2 does
#: not.  ``recipes.almahelpers.fixsyscaltimes`` finds exactly that and sets
#: TIME = mean(TIME - INTERVAL/2) + 1 s, INTERVAL = 2 s.
SACM_DURATIONS_S = (1.152, 2.304, 3.456)
FIXSYSCALTIMES_INTERVAL_S = 2.0


def _temperature_array(values) -> str:
    """ASDM XML text of a 2-D temperature array (numReceptor x numChan)."""
    import numpy as np

    v = np.asarray(values, float)
    return "2 %d %d %s" % (v.shape[0], v.shape[1], " ".join("%.3f" % x for x in v.ravel()))


def syscal_measurements(info: dict) -> list[dict]:
    """Tsys measurement starts (MJD s): the first seconds of the bandpass scan
    and of every target scan, as ALMA measures Tsys before them.  Starts sit
    at half seconds so ``floor(TIME - INTERVAL/2)`` is the same on every
    antenna."""
    import math

    out = []
    for s in info["scans"]:
        if "BANDPASS" in s["intents"] or "TARGET" in s["intents"]:
            out.append({"scan": s["scan"], "start_s": math.floor(s["start"]) + 1.5})
    return out


def write_syscal(asdm: str, eb_uid: str, info: dict, tsys_k, sacm: bool = True) -> dict:
    """Replace the exported SysCal table (one spectrum-less row per
    integration) by Tsys measurements with TCAL/TRX/TSKY/TSYS spectra, as XML
    rows that importasdm fills into the MS SYSCAL table; with ``sacm`` the
    antennas' intervals differ as under the SACM/JAO fault.  Returns the
    truth of the table and of what fixsyscaltimes must do to it."""
    import numpy as np

    path = os.path.join(asdm, "SysCal.xml")
    with open(path) as fh:
        text = fh.read()
    head = text[: text.index("<BulkStoreRef")] if "<BulkStoreRef" in text else text[: text.index("<row>")]
    head = re.sub(r"(<ContainerEntity entityId=)'[^']*'", r"\g<1>'%s'" % _uid_url(eb_uid), head)
    meas = syscal_measurements(info)
    nant = len(info["antennas"])
    rows = []
    for m in meas:
        for ant in range(nant):
            dur = SACM_DURATIONS_S[ant % len(SACM_DURATIONS_S)] if sacm else SACM_DURATIONS_S[0]
            mid = m["start_s"] + dur / 2.0
            for spw, sw in enumerate(S.SPWS):
                fr = (sw.freqs - sw.center_hz) / sw.bandwidth_hz
                shape = 1.0 + 0.04 * fr + 0.03 * fr ** 2
                tsys = np.array([tsys_k[ant][p] * shape for p in range(2)])
                trx = np.full_like(tsys, 45.0) * (1.0 + 0.02 * fr)
                tsky = np.clip(tsys - trx, 1.0, None)
                tcal = np.full_like(tsys, 270.0)
                rows.append(
                    f"<row> <timeInterval> {round(mid * 1e9)} {round(dur * 1e9)} </timeInterval> "
                    f"<numReceptor> 2 </numReceptor> <numChan> {sw.nchan} </numChan> "
                    f"<tcalFlag>true</tcalFlag> <tcalSpectrum> {_temperature_array(tcal)} </tcalSpectrum> "
                    f"<trxFlag>true</trxFlag> <trxSpectrum> {_temperature_array(trx)} </trxSpectrum> "
                    f"<tskyFlag>true</tskyFlag> <tskySpectrum> {_temperature_array(tsky)} </tskySpectrum> "
                    f"<tsysFlag>true</tsysFlag> <tsysSpectrum> {_temperature_array(tsys)} </tsysSpectrum> "
                    f"<tantFlag>false</tantFlag> <tantTsysFlag>false</tantTsysFlag> "
                    f"<phaseDiffFlag>false</phaseDiffFlag> <antennaId> Antenna_{ant} </antennaId> "
                    f"<feedId> 0 </feedId> <spectralWindowId> SpectralWindow_{spw} </spectralWindowId> </row>\n")
    head = re.sub(r"<Attributes>.*?</Attributes>\s*", "", head, flags=re.S)
    with open(path, "w") as fh:
        fh.write(head + "".join(rows) + "</SysCalTable>\n")
    binary = os.path.join(asdm, "SysCal.bin")
    if os.path.exists(binary):
        os.remove(binary)
    apath = os.path.join(asdm, "ASDM.xml")
    with open(apath) as fh:
        atext = fh.read()
    atext, n = re.subn(r"(<Name> SysCal </Name> <NumberRows> )\d+", r"\g<1>%d" % len(rows), atext)
    if n != 1:
        raise RuntimeError(f"{apath}: no SysCal entry to update")
    with open(apath, "w") as fh:
        fh.write(atext)
    durs = sorted({SACM_DURATIONS_S[a % len(SACM_DURATIONS_S)] if sacm else SACM_DURATIONS_S[0]
                   for a in range(nant)})
    return {
        "rows": len(rows), "spws": list(range(len(S.SPWS))), "antennas": nant,
        "measurements": [dict(m, fixed_time_s=m["start_s"] + FIXSYSCALTIMES_INTERVAL_S / 2.0) for m in meas],
        "intervals_s": durs, "fixed_interval_s": FIXSYSCALTIMES_INTERVAL_S,
        "distinct_times_per_spw": len(meas) * len(durs), "distinct_times_per_spw_fixed": len(meas),
        "fixsyscaltimes_changes": len(durs) > 1,
        "tsys_k": [[float(tsys_k[a][p]) for p in range(2)] for a in range(nant)],
        "tsys_spectral_shape": "tsys_k x (1 + 0.04 f + 0.03 f^2), f = (nu - centre) / bandwidth",
        "time_convention": "MS TIME is the ASDM timeInterval midpoint; TIME - INTERVAL/2 is the start",
    }
