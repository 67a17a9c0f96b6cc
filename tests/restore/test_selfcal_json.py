"""selfcal.json (hif_selfcal's restore record): the pure parser and the
applications it gives, as ``Selfcal._apply_scal`` makes them (no CASA)."""
from __future__ import annotations

import json

import pytest

from almaqa_casa.delivery.selfcal import SelfcalJsonError, parse_selfcal_json
from almaqa_casa.errors import AlmaqaError

EB1, EB2 = "uid___A002_Xaaaa_X1", "uid___A002_Xbbbb_X2"


def _target(field="NGC_1", ebs=(EB1, EB2), spw="16,18", exception=False, success=True,
            tables=("inf_EB_0_p.g", "inf_1_p.g"), spwmap=None, cont=False):
    vis = [f"{e}_targets{'_cont' if cont else ''}.ms" for e in ebs]
    lib = {"SC_success": success, "RMS_orig": 1e-3, "RMS_final": 5e-4, "vislist": vis}
    for v in vis:
        lib[v] = {"gaintable_final": [f"{field}_{v}_Band_6_{t}" for t in tables],
                  "applycal_interpolate_final": ["linearPD"] * len(tables),
                  "spwmap_final": spwmap if spwmap is not None else [[] for _ in tables]}
    return {"field": field, "spw": spw, "spw_real": {v: spw for v in vis}, "sc_workdir":
            f"sc_workdir_{field}_alma_band_6", "sc_exception": exception, "sc_lib": lib,
            "is_mosaic": False, "heuristics_removed": True}


def _doc(*targets) -> str:
    return json.dumps({"scal_targets": list(targets), "version": 1.0,
                       "datetime": "2025-01-01 00:00:00", "pipeline_version": "2025.1.0.5"},
                      indent=2)


def test_applications_as_apply_scal():
    rec = parse_selfcal_json(_doc(_target()), "x.selfcal.json")
    assert [t.field for t in rec.calibrated_targets] == ["NGC_1"]
    assert rec.pipeline_version == "2025.1.0.5"
    names = [f"{EB1}_targets.ms", f"{EB1}_targets_line.ms", f"{EB2}_targets.ms"]
    apps = rec.applications(names)
    # EB1's tables on both of EB1's MSs, EB2's on its own; never crossed
    assert [(a.vis, a.gaintable[0].split("_targets")[0].split("/")[-1]) for a in apps] == [
        (f"{EB1}_targets.ms", f"NGC_1_{EB1}"), (f"{EB1}_targets_line.ms", f"NGC_1_{EB1}"),
        (f"{EB2}_targets.ms", f"NGC_1_{EB2}")]
    a = apps[0]
    assert a.field == "NGC_1" and a.spw == "16,18"
    assert a.gaintable == (f"sc_workdir_NGC_1_alma_band_6/NGC_1_{EB1}_targets.ms_Band_6_inf_EB_0_p.g",
                           f"sc_workdir_NGC_1_alma_band_6/NGC_1_{EB1}_targets.ms_Band_6_inf_1_p.g")
    assert a.interp == ("linearPD", "linearPD") and a.calwt == (False, False)
    assert a.spwmap == ((), ())
    assert a.as_dict()["applymode"] == "calflag" and a.as_dict()["intent"] == "TARGET"
    assert a.source == "x.selfcal.json:3"          # the line of the target entry ("{")
    assert len(rec.tables) == 4


def test_targets_not_self_calibrated_are_left_alone():
    rec = parse_selfcal_json(_doc(_target("A", exception=True), _target("B", success=False),
                                  _target("C", ebs=(EB2,))), "s.json")
    assert [t.field for t in rec.targets] == ["A", "B", "C"]
    assert [t.field for t in rec.calibrated_targets] == ["C"]
    assert rec.applications([f"{EB1}_targets.ms"]) == []
    assert [a.field for a in rec.applications([f"{EB2}_targets.ms"])] == ["C"]
    s = rec.summary()
    assert s["self_calibrated"] == ["C"] and s["targets"][0]["sc_exception"] is True


def test_empty_scal_targets():
    """A real Cycle 10 shape: hif_selfcal ran and self-calibrated nothing."""
    rec = parse_selfcal_json('{"scal_targets": [], "version": 1.0}', "e.json")
    assert rec.targets == () and rec.calibrated_targets == [] and rec.tables == []


def test_cont_suffix_and_flat_spwmap():
    """``<vis>_cont.ms`` in the vislist matches ``<vis>.ms`` (``_apply_scal``) and a
    flat spwmap of one table is nested, as its workaround does."""
    rec = parse_selfcal_json(_doc(_target(cont=True, tables=("inf_EB_0_p.g",),
                                          spwmap=[0, 0, 0, 0])), "c.json")
    apps = rec.applications([f"{EB1}_targets.ms"])
    assert len(apps) == 1 and apps[0].spwmap == ((0, 0, 0, 0),)


@pytest.mark.parametrize("text,line,words", [
    ('{"scal_targets": [\n  {"field": "X",\n   "sc_lib": }\n]}', 3, "not valid JSON"),
    ('[1, 2]', 1, "no 'scal_targets'"),
    ('{"scal_targets": {"a": 1}}', 1, "must be a list"),
    ('{"scal_targets": [\n 5\n]}', 1, "must be an object"),
])
def test_malformed_json_names_file_and_line(text, line, words):
    with pytest.raises(SelfcalJsonError, match=rf"bad\.json, line {line}: .*{words}") as ei:
        parse_selfcal_json(text, "bad.json")
    assert isinstance(ei.value, AlmaqaError) and isinstance(ei.value, ValueError)


def test_structure_errors_name_the_line_of_their_object():
    doc = json.loads(_doc(_target()))
    doc["scal_targets"][0]["sc_lib"][f"{EB1}_targets.ms"]["gaintable_final"] = [3]
    text = json.dumps(doc, indent=2)
    line = next(i + 1 for i, t in enumerate(text.splitlines()) if f'"{EB1}_targets.ms": {{' in t)
    with pytest.raises(SelfcalJsonError, match=rf"bad\.json, line {line}: gaintable_final"):
        parse_selfcal_json(text, "bad.json")


@pytest.mark.parametrize("name", ["/abs/table.g", "../escape.g", "a/../../b.g", ""])
def test_table_names_stay_inside_the_workdir(name):
    doc = json.loads(_doc(_target()))
    doc["scal_targets"][0]["sc_lib"][f"{EB1}_targets.ms"]["gaintable_final"] = [name]
    with pytest.raises(SelfcalJsonError, match="table|gaintable_final"):
        parse_selfcal_json(json.dumps(doc), "t.json")


def test_self_calibrated_without_vislist_or_workdir():
    doc = json.loads(_doc(_target()))
    del doc["scal_targets"][0]["sc_lib"]["vislist"]
    with pytest.raises(SelfcalJsonError, match="vislist"):
        parse_selfcal_json(json.dumps(doc), "v.json")
    doc = json.loads(_doc(_target()))
    doc["scal_targets"][0]["sc_workdir"] = ""
    with pytest.raises(SelfcalJsonError, match="sc_workdir"):
        parse_selfcal_json(json.dumps(doc), "v.json")


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(SelfcalJsonError, match="nested too deeply"):
        parse_selfcal_json('{"scal_targets": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep.json")
