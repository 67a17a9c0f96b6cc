"""The full-polarization delivery's instrument and its hifa_polcal tables.

The truth records the injected leakage and cross-hand phase and the sources'
Q/U; the generator solved them as hifa_polcal does (session MS, KCROSS,
Xfparang+QU, Dflls) and the solved leakage equals the injected one up to
what CASA's Jones chain and the linear-feed leakage ambiguity allow: a
rotation by the cross-hand phase and an offset common to all antennas.
"""
from __future__ import annotations

import os

import numpy as np

from .helpers import parse_calapply, tar_members


def test_truth_records_instrument_and_sources(pol_delivery):
    t = pol_delivery["truth"]
    pt = t["polarization_truth"]
    inst = pt["instrument"]
    ants = t["eb"][t["ebs"][0]]["antennas"]
    assert sorted(inst["leakage"]) == sorted(ants)
    d = np.array([[complex(*v["dX"]), complex(*v["dY"])] for v in inst["leakage"].values()])
    assert 0.01 < np.abs(d).mean() < 0.1          # a few per cent, as ALMA's
    assert inst["cross_hand"]["antenna"] == t["refant"]
    assert len(inst["cross_hand"]["phase_deg_at_spw_center"]) == len(t["spws"])
    assert inst["cross_hand"]["delay_ps"] > 0
    st = pt["stokes"]
    for name, frac, ang in ((t["target"], pt["target"]["fraction"], pt["target"]["angle_deg"]),
                            (pt["polcal"]["name"], pt["polcal"]["fraction"], pt["polcal"]["angle_deg"])):
        for spw, v in st[name]["per_spw_center"].items():
            assert np.isclose(np.hypot(v["Q"], v["U"]) / v["I"], frac, rtol=1e-6)
            assert np.isclose(0.5 * np.degrees(np.arctan2(v["U"], v["Q"])), ang, atol=1e-6)


def test_calapply_applies_the_session_tables_everywhere(pol_delivery):
    t = pol_delivery["truth"]
    sol = t["polarization_truth"]["polcal_solutions"]["session_1"]
    tables = set(sol["tables"].values())
    assert {n.split(".")[-2] for n in tables} == {"kcross", "xyf", "dterms"}
    cal = os.path.join(pol_delivery["member_dir"], "calibration")
    for eb in t["ebs"]:
        entries = parse_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt"))
        assert {"POLARIZATION", "PHASE", "CHECK,TARGET"} <= {e["intent"] for e in entries}
        for e in entries:
            pol = {os.path.basename(g) for g in e["gaintable"] if ".hifa_polcal." in g}
            assert pol == tables
            i = [k for k, g in enumerate(e["gaintable"]) if ".hifa_polcal." in g]
            assert {e["interp"][k] for k in i} == {"nearest"} and not any(e["calwt"][k] for k in i)
        assert tables <= set(t["eb"][eb]["caltables"])
    members = tar_members(os.path.join(cal, t["eb"][t["ebs"][0]]["caltables_tarball"]))
    assert len(members) == len(set(members))      # the shared tables once in the session's tarball
    for n in tables:
        assert f"{n}/table.dat" in members


def test_solved_leakage_matches_the_injected(pol_delivery):
    sol = pol_delivery["truth"]["polarization_truth"]["polcal_solutions"]["session_1"]
    cmp = sol["leakage_vs_injected"]
    assert sorted(cmp) == ["0", "1", "2", "3"]
    for spw, c in cmp.items():
        for pol in ("dX", "dY"):
            f = c[pol]
            assert f["residual_fraction"] < 0.25, (spw, pol, f)
            assert 0.85 < f["scale"] < 1.15, (spw, pol, f)
            dev = (f["rotation_deg"] - c["expected_rotation_deg"][pol] + 180) % 360 - 180
            assert abs(dev) < 20, (spw, pol, f["rotation_deg"], c["expected_rotation_deg"][pol])


def test_polcal_q_u_estimates(pol_delivery):
    """polfromgain (parallel hands) and Xfparang+QU (cross hands) find the calibrator's
    fractional Q/U, the latter on the right side of the 180-degree ambiguity."""
    t = pol_delivery["truth"]
    pt = t["polarization_truth"]
    sol = pt["polcal_solutions"]["session_1"]
    frac, ang = pt["polcal"]["fraction"], np.radians(pt["polcal"]["angle_deg"])
    q, u = frac * np.cos(2 * ang), frac * np.sin(2 * ang)
    for key, tol in (("polfromgain_smodel", 0.3), ("xyf_smodel", 0.1)):
        m = sol[key]
        assert np.hypot(m[1] - q, m[2] - u) < tol * frac, (key, m, q, u)
