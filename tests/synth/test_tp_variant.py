"""The synthetic pipeline-calibrated total power delivery: an ASDM that
importasdm(ocorr_mode='ao') reads, the pipeline's tables, texts and products,
and a truth a correct calibration reproduces."""
from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import almaqa_casa  # noqa: F401  (configures CASA offline)

from .helpers import extract, parse_calapply, tar_members


def _member(tp_delivery):
    return tp_delivery["member_dir"], tp_delivery["truth"]


def test_layout_and_names(tp_delivery):
    member, t = _member(tp_delivery)
    m = t["mous"]
    cal, script = os.path.join(member, "calibration"), os.path.join(member, "script")
    for suffix in ("hsd_calimage.pprequest.xml", "hsd_calimage.casa_piperestorescript.py",
                   "hsd_calimage.casa_pipescript.py", "hsd_calimage.pipeline_manifest.xml", "scriptForPI.py"):
        assert os.path.isfile(os.path.join(script, f"member.{m}.{suffix}")), suffix
    for k, eb in enumerate(t["ebs"]):
        sess = f"session_{k + 1}"
        assert t["eb"][eb]["session"] == sess
        for name in (f"{eb}.ms.calapply.txt", f"{eb}.ms.flagversions.tgz", f"{eb}.ms.auxcalapply.txt",
                     f"{m}.{sess}.caltables.tgz", f"{m}.{sess}.auxcaltables.tgz"):
            assert os.path.isfile(os.path.join(cal, name)), name
        assert os.path.isdir(os.path.join(member, "raw", f"{eb}.asdm.sdm"))
    assert os.path.isfile(os.path.join(cal, f"{m}.hsd_calimage.auxproducts.tgz"))
    prods = sorted(os.listdir(os.path.join(member, "product")))
    assert prods == sorted(t["total_power"]["products"])
    for p in prods:
        assert re.fullmatch(rf"member\.{m}\.Synth_Cloud_sci\.spw\d\.cube\.I\.sd\.fits", p)


def test_restore_script_ppr_and_manifest(tp_delivery):
    member, t = _member(tp_delivery)
    m = t["mous"]
    rs = open(os.path.join(member, "script", f"member.{m}.hsd_calimage.casa_piperestorescript.py")).read()
    assert f"hsd_restoredata (vis={t['ebs']!r}, session=['session_1', 'session_2'], ocorr_mode='ao')" in rs
    compile(rs, "restore", "exec")
    ppr = ET.parse(os.path.join(member, "script", f"member.{m}.hsd_calimage.pprequest.xml")).getroot()
    keys = [e.findtext("Keyword") for e in ppr.iter("Intents")]
    assert "SESSION_1" in keys and "SESSION_2" in keys and "SINGLE_DISH_STANDARD_OBSERVING_MODE" in keys
    assert ppr.findtext(".//ProcedureTitle") == "hsd_calimage"
    man = ET.parse(os.path.join(member, "script", f"member.{m}.hsd_calimage.pipeline_manifest.xml")).getroot()
    sessions = {s.get("name"): [a.get("name") for a in s.findall("asdm")] for s in man.iter("session")}
    assert sessions == {"session_1": [t["ebs"][0]], "session_2": [t["ebs"][1]]}


def test_asdm_is_autocorrelation_only(tp_delivery):
    member, t = _member(tp_delivery)
    for eb in t["ebs"]:
        asdm = os.path.join(member, "raw", f"{eb}.asdm.sdm")
        conf = open(os.path.join(asdm, "ConfigDescription.xml")).read()
        assert "AUTO_ONLY" in conf and "CROSS_AND_AUTO" not in conf
        for bdf in glob.glob(os.path.join(asdm, "ASDMBinary", "*")):
            head = open(bdf, "rb").read(4000)
            assert b"<correlationMode>AUTO_ONLY</correlationMode>" in head
            assert b"crossData" not in head and b'sdPolProducts="XX YY"' in head
        sub = open(os.path.join(asdm, "Subscan.xml")).read()
        intents = re.findall(r"<subscanIntent>(\w+)</subscanIntent>", sub)
        assert intents == ["OFF_SOURCE", "ON_SOURCE", "OFF_SOURCE", "ON_SOURCE", "OFF_SOURCE"]
        for table in ("SysCal", "CalAtmosphere", "CalWVR"):
            assert f"<Name> {table} </Name> <NumberRows> 0 </NumberRows>" not in open(
                os.path.join(asdm, "ASDM.xml")).read()


@pytest.mark.parametrize("lazy", [True, False])
def test_importasdm_ao_reads_it(tp_delivery, tmp_path, lazy):
    from casatasks import importasdm
    from casatools import msmetadata, table

    from almaqa_casa.delivery.member import ASIS_TP
    member, t = _member(tp_delivery)
    eb = t["ebs"][0]
    vis = str(tmp_path / f"{eb}.ms")
    importasdm(asdm=os.path.join(member, "raw", f"{eb}.asdm.sdm"), vis=vis, ocorr_mode="ao", asis=ASIS_TP,
               lazy=lazy, bdfflags=True, process_caldevice=False)
    tb = table()
    tb.open(vis)
    try:
        assert "FLOAT_DATA" in tb.colnames() and "DATA" not in tb.colnames()
        assert (tb.getcol("ANTENNA1") == tb.getcol("ANTENNA2")).all()
        n = tb.nrows()
        data = tb.getcol("FLOAT_DATA")
    finally:
        tb.close()
    md = msmetadata()
    md.open(vis)
    try:
        assert sorted(md.intents()) == ["OBSERVE_TARGET#OFF_SOURCE", "OBSERVE_TARGET#ON_SOURCE"]
        assert list(md.antennanames()) == t["total_power"]["antennas"]
        assert [md.nchan(s) for s in range(md.nspw())] == [s["nchan"] for s in t["spws"]]
    finally:
        md.close()
    assert n == t["eb"][eb]["rows"] and np.isfinite(data).all() and data.min() > 0
    for sub, rows in (("SYSCAL", 8), ("ASDM_CALATMOSPHERE", 8), ("ASDM_CALWVR", 4)):
        tb.open(os.path.join(vis, sub))
        try:
            assert tb.nrows() == rows, sub
        finally:
            tb.close()


def test_caltables_and_calapply(tp_delivery, tmp_path):
    from casatools import table
    member, t = _member(tp_delivery)
    types = t["total_power"]["table_types"]
    for eb in t["ebs"]:
        e = t["eb"][eb]
        apps = parse_calapply(os.path.join(member, "calibration", f"{eb}.ms.calapply.txt"))
        assert len(apps) == 1 and apps[0]["intent"] == "TARGET" and apps[0]["field"] == t["target"]
        names = [os.path.basename(g) for g in apps[0]["gaintable"]]
        assert names == [e["caltables"][k] for k in ("sky", "tsys", "k2jy")]
        assert apps[0]["interp"] == ["linear,linear", "linear,linear", "nearest,nearest"]
        tgz = os.path.join(member, "calibration", e["caltables_tarball"])
        assert {n.split("/")[0] for n in tar_members(tgz)} == set(names)
        out = str(tmp_path / eb)
        extract(tgz, out)
        tb = table()
        for kind, name in e["caltables"].items():
            tb.open(os.path.join(out, name))
            try:
                assert tb.getkeyword("VisCal") == types[kind], (kind, name)
                if kind == "k2jy":   # 1/|g|^2 = the delivered factor
                    ant, spw = tb.getcol("ANTENNA1"), tb.getcol("SPECTRAL_WINDOW_ID")
                    g = tb.getcol("CPARAM")[:, 0, :]
                    for i in range(len(ant)):
                        a = t["total_power"]["antennas"][ant[i]]
                        for p, pol in enumerate(("XX", "YY")):
                            want = t["total_power"]["jyperk"][eb][a][str(spw[i])][pol]
                            assert 1.0 / abs(g[p, i]) ** 2 == pytest.approx(want, rel=1e-6)
            finally:
                tb.close()
        aux = open(os.path.join(member, "calibration", f"{eb}.ms.auxcalapply.txt")).read()
        assert f"bltable='{e['baseline_table']}'" in aux and "blmode='apply'" in aux
        assert {n.split("/")[0] for n in tar_members(os.path.join(member, "calibration",
                                                                  e["auxcaltables_tarball"]))} \
            == {e["baseline_table"]}


def test_jyperk_csv_matches_truth(tp_delivery):
    import tarfile

    from almaqa_casa.delivery.jyperk import parse_jyperk
    member, t = _member(tp_delivery)
    tgz = os.path.join(member, "calibration", f"{t['mous']}.hsd_calimage.auxproducts.tgz")
    with tarfile.open(tgz) as tf:
        assert tf.getnames() == ["jyperk.csv"]
        text = tf.extractfile("jyperk.csv").read().decode()
    jf = parse_jyperk(text, "jyperk.csv")
    got = {(f.ms, f.antenna, f.spw, f.pol): f.factor for f in jf.factors}
    want = {(f"{eb}.ms", a, int(s), p): v for eb, d in t["total_power"]["jyperk"].items()
            for a, ds in d.items() for s, dp in ds.items() for p, v in dp.items()}
    assert got == want
    # one factor per EB, antenna, window and polarization, all different
    assert len(set(want.values())) == len(want) == 2 * 4 * 2 * 2


def test_truth_total_power(tp_delivery):
    tp = tp_delivery["truth"]["total_power"]
    for key in ("jyperk", "peak_jy", "peak_jy_per_spw", "line_free_channels", "noise_jy_per_sample",
                "bad_data", "ocorr_mode", "asis"):
        assert key in tp, key
    assert tp["ocorr_mode"] == "ao" and tp["peak_jy"] == max(tp["peak_jy_per_spw"].values())
    for eb, e in tp_delivery["truth"]["eb"].items():
        # the generator's own calibration agrees with the truth (what a restore must match)
        for s, peak in e["generator_peak_jy_per_spw"].items():
            assert peak == pytest.approx(tp["peak_jy_per_spw"][s], rel=0.02)
        assert tp["bad_data"][eb]["rows"] > 0


def test_sd_cubes(tp_delivery):
    from astropy.io import fits
    member, t = _member(tp_delivery)
    for name, info in t["images"].items():
        with fits.open(os.path.join(member, "product", name)) as hd:
            h, d = hd[0].header, hd[0].data
            assert h["BUNIT"] == "Jy/beam" and h["BMAJ"] * 3600 == pytest.approx(info["beam_arcsec"])
            assert h["CTYPE3"] == "FREQ" and h["NAXIS3"] == t["spws"][info["spw"]]["nchan"]
            assert np.nanmax(d) == pytest.approx(info["peak_jy_per_beam"], rel=1e-5)
        assert info["centre_peak_jy_per_beam"] == pytest.approx(
            t["total_power"]["peak_jy_per_spw"][str(info["spw"])], rel=0.03)
