"""The full-polarization synthetic delivery."""
from __future__ import annotations

import os

import numpy as np

from .helpers import PRODUCT_RE, parse_calapply, products


def test_pol_products(pol_delivery):
    t = pol_delivery["truth"]
    names = products(pol_delivery["member_dir"])
    sci = [n for n in names if "_sci." in n]
    assert sci and all(".IQUV." in n for n in sci), sci
    m = t["mous"]
    assert f"member.{m}.{t['target']}_sci.spw0_1_2_3.cont.IQUV.pbcor.fits" in names
    for n in names:
        assert PRODUCT_RE.match(n), n


def test_pol_calapply(pol_delivery):
    t = pol_delivery["truth"]
    cal = os.path.join(pol_delivery["member_dir"], "calibration")
    for eb in t["ebs"]:
        entries = parse_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt"))
        assert "POLARIZATION" in {e["intent"] for e in entries}
        for e in entries:
            assert any(".hifa_polcal." in g for g in e["gaintable"])


def test_pol_intents(pol_delivery):
    t = pol_delivery["truth"]
    intents = {i for eb in t["ebs"] for s in t["eb"][eb]["scans"] for i in s["intents"]}
    assert "POLARIZATION" in intents
    assert t["corrs"] == ["XX", "XY", "YX", "YY"]


def test_pol_fraction_angle(pol_delivery):
    from astropy.io import fits

    t = pol_delivery["truth"]
    name = f"member.{t['mous']}.{t['target']}_sci.spw0_1_2_3.cont.IQUV.pbcor.fits"
    d = fits.getdata(os.path.join(pol_delivery["member_dir"], "product", name))  # (stokes, chan, y, x)
    c = d.shape[-1] // 2
    i, q, u = (float(d[s, 0, c, c]) for s in range(3))
    frac = np.hypot(q, u) / i
    ang = 0.5 * np.degrees(np.arctan2(u, q))
    want = t["polarization_truth"]["target"]
    assert abs(frac - want["fraction"]) < 0.01, frac
    assert abs(ang - want["angle_deg"]) < 2.0, ang
