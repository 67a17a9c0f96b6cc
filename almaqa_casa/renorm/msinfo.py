"""MeasurementSet facts the renormalization heuristic needs, read once (I/O only).

Gathers with ``msmetadata`` and the ``table`` tool everything the
pipeline's ``ACreNorm`` asks ``msmd`` for inside its loops (spws, scans,
fields, intents, frequencies, times, phase centres), so that the planning
and the mathematics work on plain data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

#: ALMA band edges (Hz) as in ``ACreNorm.getband``.
BAND_LO = np.array([35, 67, 84, 125, 157, 211, 275, 385, 602, 787]) * 1e9
BAND_HI = np.array([50, 83.999999999, 116, 163, 212, 275, 373, 500, 720, 950]) * 1e9


def alma_band(freq_hz: float) -> int:
    """ALMA band of a frequency (0 when outside all bands)."""
    hit = np.arange(1, len(BAND_LO) + 1)[(freq_hz > BAND_LO) & (freq_hz < BAND_HI)]
    return int(hit[0]) if len(hit) else 0


@dataclass
class SpwInfo:
    spw: int
    nchan: int
    freqs: np.ndarray          # Hz, per channel
    widths: np.ndarray         # Hz, per channel
    bandwidth: float           # Hz
    ddids: list[int]
    ref_freq: float
    net_sideband: int
    corr_index: list[int]      # correlations to read (parallel hands)


@dataclass
class MSInfo:
    """Plain facts of one MS (no open tools)."""

    path: str
    nant: int
    antnames: list[str]
    fdm_spws: list[int]
    tdm_spws: list[int]
    band: int
    ncorr: int
    spws: dict[int, SpwInfo]
    targets: list[str]                       # sorted unique target names
    target_fields: dict[str, list[int]]      # target-intent fields per name
    field_names: dict[int, str]
    target_scans: list[int]                  # scans with *TARGET*
    bandpass_scans: list[int]                # scans with *BANDPASS*
    scans_for_name: dict[str, list[int]]
    spws_for_name: dict[str, list[int]]
    scans_for_spw: dict[int, list[int]]
    fields_for_scan: dict[int, list[int]]
    scan_times: dict[int, np.ndarray]
    phase_centers: dict[int, dict]
    has_corrected: bool
    data_column: str
    tables: list[str] = field(default_factory=list)


def read_msinfo(vis: str) -> MSInfo:
    """Read the metadata of ``vis``; raises naming the MS when it lacks what is needed."""
    import casatools

    if not os.path.isdir(vis):
        raise FileNotFoundError(f"{vis}: MeasurementSet not found")
    msmd = casatools.msmetadata()
    tb = casatools.table()
    msmd.open(vis)
    try:
        nant = int(msmd.nantennas())
        antnames = list(msmd.antennanames())
        try:
            tspws = set(int(s) for s in msmd.spwsforintent("OBSERVE_TARGET#ON_SOURCE"))
        except Exception:
            tspws = set()
        fdm = sorted(set(int(s) for s in msmd.fdmspws()) & tspws)
        tdm = sorted(set(int(s) for s in msmd.tdmspws()) & tspws)
        targets: list[str] = []
        target_fields: dict[str, list[int]] = {}
        try:
            tfields = [int(f) for f in msmd.fieldsforintent("*TARGET*")]
        except Exception:
            tfields = []
        field_names = {i: n for i, n in enumerate(msmd.fieldnames())}
        for f in tfields:
            target_fields.setdefault(field_names[f], []).append(f)
        targets = sorted(target_fields)
        try:
            target_scans = sorted(int(s) for s in msmd.scansforintent("*TARGET*"))
        except Exception:
            target_scans = []
        try:
            bp_scans = sorted(int(s) for s in msmd.scansforintent("*BANDPASS*"))
        except Exception:
            bp_scans = []
        scans_for_name = {t: sorted(int(s) for s in msmd.scansforfield(t)) for t in targets}
        spws_for_name = {t: sorted(int(s) for s in msmd.spwsforfield(t)) for t in targets}
        spws: dict[int, SpwInfo] = {}
        scans_for_spw: dict[int, list[int]] = {}
        tb.open(vis + "/SPECTRAL_WINDOW")
        ref_freq = tb.getcol("REF_FREQUENCY")
        net_sb = tb.getcol("NET_SIDEBAND")
        tb.close()
        ncorr_first = None
        for s in fdm + tdm:
            ddids = [int(d) for d in msmd.datadescids(spw=s)]
            nc = int(msmd.ncorrforpol(msmd.polidfordatadesc(ddids[0])))
            corr_index = [0, 3] if nc == 4 else list(range(nc))
            if ncorr_first is None and s in fdm:
                ncorr_first = len(corr_index)
            spws[s] = SpwInfo(
                spw=s, nchan=int(msmd.nchan(s)), freqs=np.asarray(msmd.chanfreqs(s), float),
                widths=np.asarray(msmd.chanwidths(s), float),
                bandwidth=float(msmd.bandwidths(s)), ddids=ddids,
                ref_freq=float(ref_freq[s]), net_sideband=int(net_sb[s]),
                corr_index=corr_index)
            scans_for_spw[s] = sorted(int(x) for x in msmd.scansforspw(s))
        all_scans = sorted(set(target_scans) | set(bp_scans))
        fields_for_scan = {k: sorted(int(f) for f in msmd.fieldsforscan(k)) for k in all_scans}
        scan_times = {k: np.asarray(msmd.timesforscan(k), float) for k in all_scans}
        fids = sorted({f for fl in fields_for_scan.values() for f in fl})
        phase_centers = {f: msmd.phasecenter(f) for f in fids}
        band_spw = fdm[0] if fdm else (tdm[0] if tdm else None)
        band = alma_band(spws[band_spw].freqs[0]) if band_spw is not None else 0
    finally:
        msmd.close()
    tb.open(vis)
    try:
        cols = tb.colnames()
    finally:
        tb.close()
    data_column = "DATA" if "DATA" in cols else ("FLOAT_DATA" if "FLOAT_DATA" in cols else "")
    if not data_column:
        raise ValueError(f"{vis}: no DATA or FLOAT_DATA column to read autocorrelations from")
    tables = sorted(os.listdir(vis))
    return MSInfo(path=vis, nant=nant, antnames=antnames, fdm_spws=fdm, tdm_spws=tdm,
                  band=band, ncorr=ncorr_first or 2, spws=spws, targets=targets,
                  target_fields=target_fields, field_names=field_names,
                  target_scans=target_scans, bandpass_scans=bp_scans,
                  scans_for_name=scans_for_name, spws_for_name=spws_for_name,
                  scans_for_spw=scans_for_spw, fields_for_scan=fields_for_scan,
                  scan_times=scan_times, phase_centers=phase_centers,
                  has_corrected="CORRECTED_DATA" in cols, data_column=data_column,
                  tables=tables)
