"""Simulate one total power EB and deliver it as an autocorrelation-only ASDM.

casatools' simulator writes the rows (4 antennas, both windows, the ON and
OFF subscans as separate scans, autocorrelations among them); the table tool
fills the autocorrelation power of :mod:`.tp_spec`'s model and points the
OFF integrations at the OFF position.  exportasdm cannot write
autocorrelation-only data (it expects every baseline in each integration),
so the MS is exported with (zero) cross-correlations and the ASDM is then made
what a TP ASDM is: ``AUTO_ONLY`` binary data (crossData parts dropped,
flags cut to the antennas, ``sdPolProducts`` filled), one OBSERVE_TARGET
scan whose subscans are ON_SOURCE / OFF_SOURCE, a reference State row for
the OFF subscans, a SysCal table holding the Tsys spectra, and the
CalAtmosphere / CalWVR rows of an ATM calibration (weather, PWV) that the
pipeline's atmospheric correction reads.  Pointing is in horizontal
coordinates, as ALMA records it.
``importasdm(ocorr_mode='ao')`` reads it (lazily or not) into FLOAT_DATA.
"""
from __future__ import annotations

import glob
import os
import re
import shutil

import numpy as np

from . import asdm as A
from . import spec as S
from . import tp_spec as T
from ._casa import casatasks, casatools
from .simulate import antenna_layout, start_time_utc


def simulate_structure(spec: S.SynthSpec, k: int, ms: str) -> dict:
    """The simulated MS of EB ``k`` (cross and auto rows, zero data)."""
    me = casatools.measures()
    x, y, z, _d, pads, _names = antenna_layout(len(T.ANTENNAS))
    if os.path.exists(ms):
        shutil.rmtree(ms)
    sm = casatools.simulator()
    try:
        if not sm.open(ms):
            raise RuntimeError(f"simulator could not create {ms}")
        sm.setconfig(telescopename="ALMA", x=x, y=y, z=z, dishdiameter=[T.DISH_M] * len(x),
                     mount=["alt-az"] * len(x), antname=list(T.ANTENNAS), padname=pads,
                     coordsystem="global", referencelocation=me.observatory("ALMA"))
        for i, sw in enumerate(T.SPWS):
            sm.setspwindow(spwname=f"spw{i}", freq=f"{sw.freqs[0]:.1f}Hz", deltafreq=f"{sw.width_hz}Hz",
                           freqresolution=f"{sw.width_hz}Hz", nchannels=sw.nchan, stokes=" ".join(T.CORRS))
        sm.setfeed(mode="perfect X Y")
        sm.setfield(sourcename=T.TARGET.name, sourcedirection=me.direction("J2000", T.TARGET.ra, T.TARGET.dec))
        sm.setauto(autocorrwt=1.0)
        sm.setlimits(shadowlimit=0.001, elevationlimit="8deg")
        t0 = start_time_utc(spec, k)
        sm.settimes(integrationtime=f"{T.INTEGRATION_S}s", usehourangle=False,
                    referencetime=me.epoch("utc", f"{t0}s"))
        for _intent, start, dur in T.schedule():
            for i in range(len(T.SPWS)):
                sm.observe(sourcename=T.TARGET.name, spwname=f"spw{i}", starttime=f"{start}s",
                           stoptime=f"{start + dur}s")
    finally:
        sm.close()
    tb = casatools.table()
    tb.open(ms + "/DATA_DESCRIPTION", nomodify=False)
    tb.putcol("POLARIZATION_ID", np.zeros(tb.nrows(), "int32"))
    tb.close()
    tb.open(ms + "/POLARIZATION", nomodify=False)
    if tb.nrows() > 1:
        tb.removerows(list(range(1, tb.nrows())))
    tb.close()
    tb.open(ms + "/SPECTRAL_WINDOW", nomodify=False)
    tb.putcol("NAME", np.array([sw.name for sw in T.SPWS]))
    tb.close()
    tb.open(ms, nomodify=False)
    try:
        # the simulator numbers one scan per observe() call (per window): one
        # MS scan per subscan for both windows, so exportasdm keeps them apart
        scan = (tb.getcol("SCAN_NUMBER") - 1) // len(T.SPWS) + 1
        tb.putcol("SCAN_NUMBER", scan.astype("int32"))
        tim = tb.getcol("TIME")
        half = tb.getcol("INTERVAL") / 2.0
    finally:
        tb.close()
    subscans = []
    for n, (intent, _start, _dur) in enumerate(T.schedule()):
        m = scan == n + 1
        if not m.any():
            raise RuntimeError(f"the simulator wrote no data for subscan {n + 1} ({intent})")
        subscans.append({"subscan": n + 1, "intent": intent,
                         "start": float((tim[m] - half[m]).min()), "end": float((tim[m] + half[m]).max())})
    return {"subscans": subscans, "antennas": list(T.ANTENNAS), "pads": pads, "t0": float(tim.min()),
            "field": T.TARGET.name}


def _intent_of_time(info: dict, t: np.ndarray) -> np.ndarray:
    out = np.full(t.shape, "", dtype=object)
    for s in info["subscans"]:
        out[(t >= s["start"] - 1e-3) & (t <= s["end"] + 1e-3)] = s["intent"]
    return out


def _on_index(info: dict, t: np.ndarray) -> np.ndarray:
    """1-based index among the ON subscans of each time (0: not ON)."""
    out = np.zeros(t.shape, int)
    n = 0
    for s in info["subscans"]:
        if s["intent"] == "ON_SOURCE":
            n += 1
            out[(t >= s["start"] - 1e-3) & (t <= s["end"] + 1e-3)] = n
    return out


def fill_data(spec: S.SynthSpec, k: int, ms: str, info: dict) -> dict:
    """Autocorrelation power of the model (cross-correlations zero), OFF
    pointings moved to the OFF position.  Returns the instrument parameters."""
    p = T.instrument(spec, k)
    rng = spec._rng(f"tp-noise-{k}")
    bad_ant = T.ANTENNAS.index(T.BAD["antenna"])
    tb = casatools.table()
    tb.open(ms, nomodify=False)
    try:
        for dd in range(len(T.SPWS)):
            q = tb.query(f"DATA_DESC_ID=={dd}", sortlist="")
            try:
                a1, a2 = q.getcol("ANTENNA1"), q.getcol("ANTENNA2")
                tim = q.getcol("TIME")
                data = np.zeros((len(T.CORRS), T.SPWS[dd].nchan, len(a1)), complex)
                intent = _intent_of_time(info, tim)
                onidx = _on_index(info, tim)
                sky = T.source_spectrum(dd)
                sig = T.radiometer_sigma(dd)
                for r in np.flatnonzero(a1 == a2):
                    a = int(a1[r])
                    for c, corr in enumerate(T.CORRS):
                        ts = T.tsys(p, a, c, dd)
                        temp = ts + (sky / T.jyperk(k, a, dd, corr) if intent[r] == "ON_SOURCE" else 0.0)
                        power = T.receiver_gain(p, a, c, dd) * temp
                        power = power * (1.0 + rng.normal(0.0, sig, power.shape))
                        if a == bad_ant and onidx[r] == T.BAD["on_subscan"]:
                            power = power * T.BAD["factor"]
                        data[c, :, r] = power
                q.putcol("DATA", data.astype("complex64"))
                fl = q.getcol("FLAG")
                fl[:] = False
                q.putcol("FLAG", fl)
            finally:
                q.close()
    finally:
        tb.close()
    _point_off(ms, info)
    return p


def _point_off(ms: str, info: dict) -> None:
    """One POINTING row per antenna and time, pointed at the target (ON) or
    the OFF position, as ALMA records pointing: horizontal (AZELGEO)
    coordinates, which exportasdm writes and importasdm reads as such."""
    me = casatools.measures()
    qa = casatools.quanta()
    me.doframe(me.observatory("ALMA"))
    tb = casatools.table()
    tb.open(ms + "/POINTING", nomodify=False)
    try:
        if not tb.nrows():
            return
        key = np.stack([tb.getcol("ANTENNA_ID"), np.round(tb.getcol("TIME"), 3)], axis=1)
        _, first = np.unique(key, axis=0, return_index=True)
        dup = sorted(set(range(tb.nrows())) - set(first.tolist()))
        if dup:
            tb.removerows(dup)
        tim = tb.getcol("TIME")
        off = _intent_of_time(info, tim) == "OFF_SOURCE"
        target = me.direction("J2000", T.TARGET.ra, T.TARGET.dec)
        ra0, dec0 = target["m0"]["value"], target["m1"]["value"]
        dra = np.deg2rad(T.OFF_OFFSET_ARCMIN / 60.0) / np.cos(dec0)
        azel = np.zeros((2, 1, len(tim)))
        for i, t in enumerate(tim):
            me.doframe(me.epoch("utc", qa.quantity(float(t), "s")))
            d = me.direction("J2000", qa.quantity(ra0 + (dra if off[i] else 0.0), "rad"),
                             qa.quantity(dec0, "rad"))
            h = me.measure(d, "AZELGEO")
            azel[:, 0, i] = (h["m0"]["value"], h["m1"]["value"])
        for col in ("DIRECTION", "TARGET"):
            if col in tb.colnames():
                tb.putcol(col, azel)
                kw = tb.getcolkeywords(col)
                kw.setdefault("MEASINFO", {})["Ref"] = "AZELGEO"
                tb.putcolkeywords(col, kw)
    finally:
        tb.close()


# ---------------------------------------------------------------------------
# ASDM
# ---------------------------------------------------------------------------
def export(ms: str, asdm: str, eb_uid: str, info: dict, spec: S.SynthSpec, tsys_params: dict) -> dict:
    """exportasdm ``ms`` (cross + auto) and turn the result into a TP ASDM."""
    if os.path.exists(asdm):
        shutil.rmtree(asdm)
    archive, block, _ = eb_uid[len("uid___"):].split("_")
    # one integration per Main row: exportasdm's own subscans straddle the
    # ON/OFF boundaries, so each row is placed in its subscan by its time
    casatasks.exportasdm(vis=ms, asdm=asdm, archiveid=archive, rangeid=block, sbduration="86400s",
                         subscanduration=f"{T.INTEGRATION_S * 1.5}s", verbose=False)
    if not os.path.isfile(os.path.join(asdm, "Main.xml")):
        raise RuntimeError(f"exportasdm failed for {ms}")
    container = "uid://%s/%s/X1" % (archive, block)
    sizes = {os.path.basename(b): auto_only_bdf(b, len(T.ANTENNAS)) for b in
             sorted(glob.glob(os.path.join(asdm, "ASDMBinary", "*")))}
    _rewrite(asdm, info, spec, eb_uid, container, sizes)
    out = write_syscal(asdm, eb_uid, info, tsys_params)
    out["atmosphere"] = write_atmosphere(asdm, eb_uid, info, tsys_params)
    return out


def auto_only_bdf(path: str, nant: int) -> int:
    """Rewrite one binary data file as AUTO_ONLY: drop the crossData parts,
    cut the flags to the antennas, fill ``sdPolProducts``.  Returns its size."""
    with open(path, "rb") as fh:
        blob = fh.read()
    end = blob.index(b"</sdmDataHeader>") + len(b"</sdmDataHeader>")
    head, rest = blob[:end].decode("utf-8"), blob[end:]
    nbl = nant * (nant - 1) // 2
    m = re.search(r'<flags size="(\d+)" axes="([^"]*)"/>', head)
    n_old = int(m.group(1)) if m else 0
    n_new = nant * (n_old // (nant + nbl)) if m else 0
    if m:
        head = head.replace(m.group(0), f'<flags size="{n_new}" axes="{m.group(2)}"/>')
    head = head.replace("<correlationMode>CROSS_AND_AUTO</correlationMode>",
                        "<correlationMode>AUTO_ONLY</correlationMode>")
    head = re.sub(r"\s*<crossData [^>]*/>", "", head)
    head = re.sub(r' crossPolProducts="[^"]*"', "", head)
    head = head.replace('sdPolProducts=""', f'sdPolProducts="{" ".join(T.CORRS)}"')
    parts = re.split(rb"(?=--MIME_boundary-2\n)", rest)
    out = []
    for part in parts:
        if b"Content-Type: binary" in part and b"crossData.bin" in part:
            continue
        if b"sdmDataSubsetHeader" in part:
            part = part.replace(b'xsi:type="BinaryCrossAndAutoData"', b'xsi:type="BinaryAutoData"')
            part = re.sub(rb"<crossData [^>]*/>\n", b"", part)
        elif b"Content-Type: binary" in part and b"flags.bin" in part and m:
            body_at = part.index(b"\n\n") + 2
            body = part[body_at:]
            part = part[:body_at] + body[(n_old - n_new) * 4:n_old * 4] + body[n_old * 4:]
        out.append(part)
    new = head.encode("utf-8") + b"".join(out)
    with open(path, "wb") as fh:
        fh.write(new)
    return len(new)


def _rewrite(asdm: str, info: dict, spec: S.SynthSpec, eb_uid: str, container: str,
             sizes: dict[str, int]) -> None:
    """One OBSERVE_TARGET scan with ON_SOURCE / OFF_SOURCE subscans, a
    reference State for the OFF subscans, AUTO_ONLY configuration, the EB UID."""
    path = lambda n: os.path.join(asdm, n + ".xml")  # noqa: E731
    subs = info["subscans"]
    with open(path("Main")) as fh:
        head, mrows, tail = A._split_table(fh.read())
    new_main = []
    counts: dict[int, int] = {}
    for r in mrows:
        t = int(A._get(r, "time")) * 1e-9
        hit = [s for s in subs if s["start"] - 1.0 <= t <= s["end"] + 1.0]
        if len(hit) != 1:
            raise RuntimeError(f"cannot place ASDM Main row at {t} in one subscan")
        s = hit[0]
        counts[s["subscan"]] = int(A._get(r, "numIntegration"))
        r = A._set(r, "scanNumber", 1)
        r = A._set(r, "subscanNumber", s["subscan"])
        r = A._set(r, "execBlockId", "ExecBlock_0")
        nant = int(A._get(r, "numAntenna"))
        state = "State_1" if s["intent"] == "OFF_SOURCE" else "State_0"
        r = A._set(r, "stateId", f"1 {nant} " + " ".join([state] * nant) + " ")
        url = re.search(r'entityId="uid://([^"]*)"', A._get(r, "dataUID")).group(1)
        key = "uid___" + url.replace("/", "_")
        if key in sizes:
            r = A._set(r, "dataSize", sizes[key])
        new_main.append(r)
    new_main.sort(key=lambda r: (int(A._get(r, "time")), A._get(r, "configDescriptionId")))
    with open(path("Main"), "w") as fh:
        fh.write(A._join_table(head, new_main, tail))
    ns = lambda x: "%d" % round(x * 1e9)  # noqa: E731
    with open(path("Scan")) as fh:
        shead, _, stail = A._split_table(fh.read())
    with open(path("Subscan")) as fh:
        bhead, _, btail = A._split_table(fh.read())
    start, end = min(s["start"] for s in subs), max(s["end"] for s in subs)
    srow = (f"\n<scanNumber> 1 </scanNumber> <startTime> {ns(start)} </startTime> "
            f"<endTime> {ns(end)} </endTime> <numIntent> 1 </numIntent> "
            f"<numSubscan> {len(subs)} </numSubscan> <scanIntent> 1 1 OBSERVE_TARGET</scanIntent>"
            f"<calDataType> 1 1 NONE</calDataType><calibrationOnLine> 1 1 false  </calibrationOnLine> "
            f"<execBlockId> ExecBlock_0 </execBlockId> <numField> 1 </numField> "
            f"<fieldName> 1 1 \"{info['field']}\"  </fieldName> <sourceName> {info['field']} </sourceName> ")
    brows = []
    for s in subs:
        n = counts.get(s["subscan"], 0)
        brows.append(
            f"\n<scanNumber> 1 </scanNumber> <subscanNumber> {s['subscan']} </subscanNumber> "
            f"<startTime> {ns(s['start'])} </startTime> <endTime> {ns(s['end'])} </endTime> "
            f"<fieldName> {info['field']} </fieldName> <subscanIntent>{s['intent']}</subscanIntent>"
            f"<numIntegration> {n} </numIntegration> <numSubintegration> 1 {n} {' '.join(['0'] * n)}  "
            f"</numSubintegration> <execBlockId> ExecBlock_0 </execBlockId> ")
    with open(path("Scan"), "w") as fh:
        fh.write(A._join_table(shead, [srow], stail))
    with open(path("Subscan"), "w") as fh:
        fh.write(A._join_table(bhead, brows, btail))
    with open(path("State")) as fh:
        thead, trows, ttail = A._split_table(fh.read())
    on = trows[0]
    off = A._set(A._set(A._set(on, "stateId", "State_1"), "sig", "false"), "ref", "true")
    with open(path("State"), "w") as fh:
        fh.write(A._join_table(thead, [on, off], ttail))
    with open(path("ConfigDescription")) as fh:
        text = fh.read()
    with open(path("ConfigDescription"), "w") as fh:
        fh.write(text.replace("CROSS_AND_AUTO", "AUTO_ONLY"))
    with open(path("ExecBlock")) as fh:
        ehead, erows, etail = A._split_table(fh.read())
    e = erows[0]
    e = A._set(e, "startTime", ns(start))
    e = A._set(e, "endTime", ns(end))
    e = A._set(e, "observerName", "almaqa synth")
    e = A._set(e, "configName", "ACA-TP")
    e = re.sub(r'(<sessionReference> <EntityRef entityId=")[^"]*', r"\g<1>" + A._uid_url(spec.mous), e)
    with open(path("ExecBlock"), "w") as fh:
        fh.write(A._join_table(ehead, [e], etail))
    with open(path("ASDM")) as fh:
        text = fh.read()
    for name, n in (("Scan", 1), ("Subscan", len(brows)), ("ExecBlock", 1), ("Main", len(new_main)),
                    ("State", 2)):
        text = re.sub(r"(<Name> %s </Name> <NumberRows> )\d+( </NumberRows>)" % name, r"\g<1>%d\g<2>" % n, text)
    import datetime
    created = datetime.datetime(1858, 11, 17) + datetime.timedelta(seconds=round(end) + 60)
    text = re.sub(r"<TimeOfCreation>.*?</TimeOfCreation>",
                  "<TimeOfCreation> %s.000000000 </TimeOfCreation>" % created.strftime("%Y-%m-%dT%H:%M:%S"), text)
    with open(path("ASDM"), "w") as fh:
        fh.write(text)
    mous = A._uid_url(spec.mous)
    for xml in glob.glob(os.path.join(asdm, "*.xml")):
        with open(xml) as fh:
            text = fh.read()
        new = text.replace('entityId="%s"' % container, 'entityId="%s"' % A._uid_url(eb_uid))
        if os.path.basename(xml) == "SBSummary.xml":
            new = re.sub(r'(<obsUnitSetUID> <EntityRef entityId=")[^"]*', r"\g<1>" + mous, new)
        if new != text:
            with open(xml, "w") as fh:
                fh.write(new)


def write_syscal(asdm: str, eb_uid: str, info: dict, params: dict) -> dict:
    """The SysCal table: one Tsys measurement per antenna and window at the
    start of the target scan (TSYS, TRX, TSKY, TCAL spectra)."""
    path = os.path.join(asdm, "SysCal.xml")
    with open(path) as fh:
        text = fh.read()
    head = text[: text.index("<BulkStoreRef")] if "<BulkStoreRef" in text else text[: text.index("<row>")]
    head = re.sub(r"(<ContainerEntity entityId=)'[^']*'", r"\g<1>'%s'" % A._uid_url(eb_uid), head)
    head = re.sub(r"<Attributes>.*?</Attributes>\s*", "", head, flags=re.S)
    start = min(s["start"] for s in info["subscans"])
    dur = 2.0
    mid = np.floor(start) + 0.5 + dur / 2.0
    rows = []
    for a in range(len(T.ANTENNAS)):
        for s, sw in enumerate(T.SPWS):
            tsys = np.array([T.tsys(params, a, c, s) for c in range(len(T.CORRS))])
            trx = np.full_like(tsys, 40.0)
            tsky = np.clip(tsys - trx, 1.0, None)
            tcal = np.full_like(tsys, 275.0)
            rows.append(
                f"<row> <timeInterval> {round(mid * 1e9)} {round(dur * 1e9)} </timeInterval> "
                f"<numReceptor> 2 </numReceptor> <numChan> {sw.nchan} </numChan> "
                f"<tcalFlag>true</tcalFlag> <tcalSpectrum> {A._temperature_array(tcal)} </tcalSpectrum> "
                f"<trxFlag>true</trxFlag> <trxSpectrum> {A._temperature_array(trx)} </trxSpectrum> "
                f"<tskyFlag>true</tskyFlag> <tskySpectrum> {A._temperature_array(tsky)} </tskySpectrum> "
                f"<tsysFlag>true</tsysFlag> <tsysSpectrum> {A._temperature_array(tsys)} </tsysSpectrum> "
                f"<tantFlag>false</tantFlag> <tantTsysFlag>false</tantTsysFlag> "
                f"<phaseDiffFlag>false</phaseDiffFlag> <antennaId> Antenna_{a} </antennaId> "
                f"<feedId> 0 </feedId> <spectralWindowId> SpectralWindow_{s} </spectralWindowId> </row>\n")
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
    return {"rows": len(rows), "time_s": float(mid), "interval_s": dur,
            "tsys0_k": [[float(params["tsys0_k"][a, c]) for c in range(len(T.CORRS))]
                        for a in range(len(T.ANTENNAS))],
            "tsys_spectral_shape": "tsys0_k x tp_spec.tsys_shape(spw)"}


#: Weather at the time of the ATM calibration, as ALMA's CalAtmosphere rows
#: record it (sdatmcor reads it with the PWV of CalWVR).
WEATHER = {"ground_pressure_pa": 55800.0, "ground_temperature_k": 271.0, "ground_rel_humidity": 18.0,
           "pwv_m": 0.0012}


def _arr(values, *shape) -> str:
    flat = np.asarray(values, float).ravel()
    dims = " ".join(str(int(n)) for n in shape)
    return f"{len(shape)} {dims} " + " ".join("%.6g" % v for v in flat)


def _table_file(asdm: str, name: str, eb_uid: str, rows: list[str], entity: str) -> None:
    """Write ``<name>.xml`` (XML rows) and register its rows in ASDM.xml."""
    url = A._uid_url(eb_uid)
    text = (f"<?xml version='1.0'  encoding='ISO-8859-1'?>\n"
            f'<{name}Table xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:{name.lower()}="http://Alma/XASDM/{name}Table" '
            f'xsi:schemaLocation="http://Alma/XASDM/{name}Table http://almaobservatory.org/XML/XASDM/4/'
            f'{name}Table.xsd" schemaVersion="4" schemaRevision="-1">\n'
            f"<Entity entityId='{entity}' entityIdEncrypted='na' entityTypeName='{name}Table' "
            f"schemaVersion='1' documentVersion='1'/>\n"
            f"<ContainerEntity entityId='{url}' entityIdEncrypted='na' entityTypeName='ASDM' "
            f"schemaVersion='1' documentVersion='1'/>\n" + "".join(rows) + f"</{name}Table>\n")
    with open(os.path.join(asdm, f"{name}.xml"), "w") as fh:
        fh.write(text)
    apath = os.path.join(asdm, "ASDM.xml")
    with open(apath) as fh:
        atext = fh.read()
    atext, n = re.subn(r"<Table> <Name> %s </Name> <NumberRows> \d+ </NumberRows>\s*</Table>" % name,
                       f'<Table> <Name> {name} </Name> <NumberRows> {len(rows)} </NumberRows> '
                       f'<Entity entityId="{entity}" entityIdEncrypted="na" entityTypeName="{name}Table" '
                       f'schemaVersion="1" documentVersion="1"/> </Table>', atext)
    if n != 1:
        raise RuntimeError(f"{apath}: no {name} entry to update")
    with open(apath, "w") as fh:
        fh.write(atext)


def write_atmosphere(asdm: str, eb_uid: str, info: dict, params: dict) -> dict:
    """CalAtmosphere and CalWVR rows (one ATM calibration per antenna and
    baseband at the start of the scan): the weather and PWV that hsd_atmcor's
    sdatmcor needs (``ASDM_CALATMOSPHERE``, ``ASDM_CALWVR`` through the asis list)."""
    start = min(s["start"] for s in info["subscans"])
    t0, t1 = round((np.floor(start) + 0.5) * 1e9), round((np.floor(start) + 2.5) * 1e9)
    archive, block, _ = eb_uid[len("uid___"):].split("_")
    rows = []
    for a, ant in enumerate(T.ANTENNAS):
        for s, sw in enumerate(T.SPWS):
            f = [float(sw.freqs[0]), float(sw.freqs[-1])]
            ts = [float(np.mean(T.tsys(params, a, c, s))) for c in range(len(T.CORRS))]
            trx = [40.0, 40.0]
            tatm = [260.0, 260.0]
            tsky2 = [[t - 40.0] * 2 for t in ts]
            rows.append(
                f"<row> <receiverBand>ALMA_RB_03</receiverBand> <antennaName>{ant}</antennaName> "
                f"<basebandName>BB_{s + 1}</basebandName> <startValidTime> {t0} </startValidTime> "
                f"<endValidTime> {t1} </endValidTime> <numFreq> 2 </numFreq> <numLoad> 2 </numLoad> "
                f"<numReceptor> 2 </numReceptor> <forwardEffSpectrum> {_arr([0.95] * 4, 2, 2)} </forwardEffSpectrum> "
                f"<frequencyRange> {_arr(f, 2)} </frequencyRange> "
                f"<groundPressure> {WEATHER['ground_pressure_pa']} </groundPressure> "
                f"<groundRelHumidity> {WEATHER['ground_rel_humidity']} </groundRelHumidity> "
                f"<frequencySpectrum> {_arr(f, 2)} </frequencySpectrum> "
                f"<groundTemperature> {WEATHER['ground_temperature_k']} </groundTemperature> "
                f"<polarizationTypes> 1 2 X Y </polarizationTypes> "
                f"<powerSkySpectrum> {_arr(tsky2, 2, 2)} </powerSkySpectrum> "
                f"<powerLoadSpectrum> {_arr([[[270.0] * 2] * 2, [[360.0] * 2] * 2], 2, 2, 2)} </powerLoadSpectrum> "
                f"<syscalType>TEMPERATURE_SCALE</syscalType> "
                f"<tAtmSpectrum> {_arr([tatm] * 2, 2, 2)} </tAtmSpectrum> "
                f"<tRecSpectrum> {_arr([trx] * 2, 2, 2)} </tRecSpectrum> "
                f"<tSysSpectrum> {_arr([[t, t] for t in ts], 2, 2)} </tSysSpectrum> "
                f"<tauSpectrum> {_arr([[0.08, 0.08]] * 2, 2, 2)} </tauSpectrum> "
                f"<tAtm> {_arr(tatm, 2)} </tAtm> <tRec> {_arr(trx, 2)} </tRec> <tSys> {_arr(ts, 2)} </tSys> "
                f"<tau> {_arr([0.08, 0.08], 2)} </tau> <water> {_arr([WEATHER['pwv_m']] * 2, 2)} </water> "
                f"<waterError> {_arr([0.0001] * 2, 2)} </waterError> "
                f"<calDataId> CalData_0 </calDataId> <calReductionId> CalReduction_0 </calReductionId> </row>\n")
    _table_file(asdm, "CalAtmosphere", eb_uid, rows, f"uid://{archive}/{block}/Xca1")
    wrows = []
    for ant in T.ANTENNAS:
        freqs = [184.5e9, 185.5e9, 187.0e9, 190.0e9]
        wrows.append(
            f"<row> <startValidTime> {t0} </startValidTime> <endValidTime> {t1} </endValidTime> "
            f"<wvrMethod>ATM_MODEL</wvrMethod> <antennaName>{ant}</antennaName> "
            f"<numInputAntennas> 1 </numInputAntennas> <inputAntennaNames> 1 1 \"{ant}\" </inputAntennaNames> "
            f"<numChan> 4 </numChan> <chanFreq> {_arr(freqs, 4)} </chanFreq> "
            f"<chanWidth> {_arr([1.5e9, 2.5e9, 2.0e9, 4.0e9], 4)} </chanWidth> "
            f"<refTemp> {_arr([[150.0, 120.0, 90.0, 60.0]], 1, 4)} </refTemp> <numPoly> 1 </numPoly> "
            f"<pathCoeff> {_arr([[[0.1], [0.1], [0.1], [0.1]]], 1, 4, 1)} </pathCoeff> "
            f"<polyFreqLimits> {_arr([184.0e9, 192.0e9], 2)} </polyFreqLimits> "
            f"<wetPath> {_arr([1.0], 1)} </wetPath> <dryPath> {_arr([0.0], 1)} </dryPath> "
            f"<water> {WEATHER['pwv_m']} </water> "
            f"<calDataId> CalData_0 </calDataId> <calReductionId> CalReduction_0 </calReductionId> </row>\n")
    _table_file(asdm, "CalWVR", eb_uid, wrows, f"uid://{archive}/{block}/Xca2")
    return {"calatmosphere_rows": len(rows), "calwvr_rows": len(wrows), "weather": dict(WEATHER),
            "start_valid_time_s": t0 * 1e-9}
