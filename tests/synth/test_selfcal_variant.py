"""The self-calibrated synthetic delivery (``selfcal=True``): hif_selfcal's
restore resources in auxproducts.tgz, the injected target phase error in the
truth, and ``.selfcal.`` products made from the self-calibrated data."""
from __future__ import annotations

import glob
import os
import tarfile

import numpy as np

from .helpers import PRODUCT_RE, products


def _aux(d):
    return glob.glob(os.path.join(d["member_dir"], "calibration", "*.auxproducts.tgz"))[0]


def test_auxproducts_hold_selfcal_json_and_its_tables(selfcal_delivery):
    from almaqa_casa.delivery.selfcal import parse_selfcal_json
    t = selfcal_delivery["truth"]
    st = t["selfcal_truth"]
    aux = _aux(selfcal_delivery)
    assert os.path.basename(aux) == st["resources_in"]
    with tarfile.open(aux) as tf:
        names = tf.getnames()
        text = tf.extractfile(st["json"]).read().decode()
    assert st["json"].endswith(".selfcal.json") and {"cont.dat", "flux.csv"} <= set(names)
    rec = parse_selfcal_json(text, st["json"])
    assert [tg.field for tg in rec.calibrated_targets] == [t["target"]]
    for table in rec.tables:                 # every table the JSON names is a CASA table in the tarball
        assert f"{table}/table.dat" in names, table
    assert sorted(os.path.basename(x) for x in rec.tables) == sorted(st["tables"])
    for eb in t["ebs"]:
        apps = rec.applications([f"{eb}_targets.ms", f"{eb}_targets_line.ms"])
        assert [a.vis for a in apps] == [f"{eb}_targets.ms", f"{eb}_targets_line.ms"]
        assert all(eb in g for a in apps for g in a.gaintable)
        assert apps[0].interp == ("linearPD", "linearPD") and apps[0].spw == "0,1,2,3"


def test_member_model_reads_the_record(selfcal_delivery):
    from almaqa_casa.delivery.member import read_member
    m = read_member(selfcal_delivery["member_dir"])
    assert m.selfcal_json.startswith(_aux(selfcal_delivery) + "::")
    assert m.selfcal is not None and not m.selfcal_error
    assert [x.field for x in m.selfcal.calibrated_targets] == [selfcal_delivery["truth"]["target"]]


def test_truth_records_the_injected_phase_error(selfcal_delivery):
    t = selfcal_delivery["truth"]
    st = t["selfcal_truth"]
    assert set(st["ebs"]) == set(t["ebs"])
    rms = []
    for eb, e in st["ebs"].items():
        scans = [s["scan"] for s in t["eb"][eb]["scans"] if s["field"] == t["target"]]
        assert e["target_scans"] == scans and sorted(e["phase_deg_at_ref_freq"]) == sorted(map(str, scans))
        phi = np.array([e["phase_deg_at_ref_freq"][str(s)] for s in scans])
        assert phi.shape == (len(scans), t["spec"]["nant"]) and 10 < phi.std() < 60
        rms.append(e["baseline_phase_rms_deg"])
    assert min(rms) <= st["injected_baseline_phase_rms_deg"] <= max(rms)
    assert st["injected_baseline_phase_rms_deg"] > 20


def test_selfcal_products_are_better_than_the_regular_ones(selfcal_delivery):
    """The regular continuum image is smeared by the phase error; the ``.selfcal.`` one
    (made from the self-calibrated data) has a higher peak and a lower noise."""
    t = selfcal_delivery["truth"]
    m = t["mous"]
    names = products(selfcal_delivery["member_dir"])
    base = f"member.{m}.{t['target']}_sci.spw0_1_2_3.cont.I"
    assert f"{base}.selfcal.pbcor.fits" in names and f"{base}.pbcor.fits" in names
    for n in names:
        assert PRODUCT_RE.match(n), n
    sc, reg = t["images"][f"{base}.selfcal.pbcor.fits"], t["images"][f"{base}.pbcor.fits"]
    assert sc["selfcal"] is True and reg["selfcal"] is False
    assert sc["center_pbcor_jy_per_beam"][0] > 1.1 * reg["center_pbcor_jy_per_beam"][0]
    assert sc["noise_jy_per_beam"] < 0.8 * reg["noise_jy_per_beam"]
    assert all("_targets.ms" in v for v in sc["made_from"])
