"""Dry runs on every text-only skeleton preset of the generator (shapes rebuilt from real
delivery files): each EB is planned from the tarball its truth expects, the mapping's source is
named, and what cannot be restored natively says why."""
from __future__ import annotations

from pathlib import Path

import pytest

import almaqa_casa  # noqa: F401
from almaqa_casa.synth.skeleton import PRESETS, make_skeleton


def _dry(member, **kw):
    from almaqa_casa import qa_restore
    return qa_restore(deliverydir=str(member), dryrun=True, **kw)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_plans_each_eb_from_its_truth_tarball(preset, tmp_path):
    d = make_skeleton(str(tmp_path / "d"), preset)
    truth = d["truth"]
    shape = truth["shape"]
    if shape["semipass"]:
        r = _dry(d["member_dir"])
        assert r["mode"] == "semipass" and any("semipass package" in w for w in r["warnings"])
        return
    r = _dry(d["member_dir"], outdir=str(tmp_path / "out"), dosplit=True)
    assert r["status"] == "ok", r.get("error")
    m = r["members"][0]
    if m["mode"] == "manual":
        assert [s["eb"] for s in m["plan"]["steps"] if s["kind"] == "manual-eb"] == truth["ebs"]
        return
    if shape["total_power"]:
        assert m["delivery"]["total_power"] is True
        assert sorted(s["eb"] for s in m["plan"]["steps"] if s["kind"] == "tp-ms") == sorted(truth["ebs"])
    got = {s["eb"]: Path(s["inputs"][0]).name for s in m["plan"]["steps"]
           if s["id"] == f"{s['eb']}:caltables"}
    assert got == {u: e["caltables_tarball"] for u, e in truth["expected"].items()}
    sources = {v["source"] for v in m["delivery"]["sessions"].values()}
    want = {"manifest"} if shape["manifest_present"] else {"restore script"}
    assert sources == want, (sources, shape["session_map_sources"])
    disagree = [w for w in r["warnings"] if "PPR" in w and "places it in" in w]
    assert bool(disagree) == bool(shape["ppr_disagrees"])
    if shape["sacm"]:
        assert all(s["params"]["fixsyscaltimes"] and not s["params"]["import"]["bdfflags"]
                   for s in m["plan"]["steps"] if s["kind"] == "ms")
    post = [Path(s["params"]["script"]).name for s in m["plan"]["steps"] if s["kind"] == "post"]
    full = {"PolCal": "PolCalibration", "FluxCal": "FluxCalibration", "ImagingPrep": "ImagingPrep"}
    assert post == [f"member.{truth['mous']}.scriptFor{full[k]}.py"
                    for k in shape["post_scripts_order"]]
