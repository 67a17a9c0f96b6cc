"""Text-only skeleton deliveries (pure, fast): every preset rebuilt from the
real cases is a tree whose texts parse and agree with its truth."""
from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import pytest

from almaqa_casa.synth import SynthSpec
from almaqa_casa.synth.skeleton import PRESETS, make_skeleton, preset_spec

from .helpers import calls, imaging_prep_inputs, parse_calapply, ppr_sessions, tar_members

RESTORE_TASKS = ("hifa_restoredata", "hif_restoredata", "hsd_restoredata")


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory):
    root = tmp_path_factory.mktemp("skeletons")
    return {name: make_skeleton(str(root / name), name) for name in PRESETS}


def _script(member, name):
    return os.path.join(member, "script", name)


def _restore_call(member, shape):
    text = open(_script(member, shape["files"]["restore"])).read()
    found = [(n, kw) for n, kw in calls(text) if n in RESTORE_TASKS]
    assert len(found) == 1, found
    return found[0], text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_tree_and_truth(skeletons, name):
    r = skeletons[name]
    t, member = r["truth"], r["member_dir"]
    shape = t["shape"]
    assert json.load(open(r["truth_path"])) == t
    assert os.path.commonpath([r["truth_path"], r["project_dir"]]) != r["project_dir"]
    assert sorted(d for d in os.listdir(member) if os.path.isdir(os.path.join(member, d))) == \
        sorted(shape["subfolders"])
    assert os.path.isfile(os.path.join(member, shape["files"]["readme"]))
    assert sorted(os.listdir(os.path.join(member, "raw"))) == sorted(f"{eb}.asdm.sdm" for eb in t["ebs"])
    for eb in t["ebs"]:
        root = ET.parse(os.path.join(member, "raw", f"{eb}.asdm.sdm", "ASDM.xml")).getroot()
        assert root.find("Entity").attrib["entityId"] == "uid://" + eb[6:].replace("_", "/")
    for f in os.listdir(os.path.join(member, "script")):
        if f.endswith(".py"):
            ast.parse(open(_script(member, f)).read(), f)  # every script is Python that parses
    # nothing outside the member but the truth
    assert sorted(os.listdir(os.path.dirname(r["project_dir"]))) == sorted([t["project"], "truth"])


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if PRESETS[n][2].get("calibration", "pipeline")
                                        == "pipeline"))
def test_sessions_everywhere(skeletons, name):
    """Restore script, PPR, manifest, calapply lists and tarballs all say
    which session (and tarball) each EB belongs to, as the truth does."""
    r = skeletons[name]
    t, member = r["truth"], r["member_dir"]
    shape = t["shape"]
    (task, kw), _text = _restore_call(member, shape)
    assert task == shape["restore_task"]
    assert kw["vis"] == t["ebs"]
    assert kw["session"] == [shape["eb_session"][eb] for eb in t["ebs"]]
    assert kw["ocorr_mode"] == shape["ocorr_mode"]
    # the PPR's SESSION_<k> intents (several EBs of one session joined by ' | ')
    got = ppr_sessions(_script(member, shape["files"]["ppr"]))
    want: dict[str, list[str]] = {}
    for eb in t["ebs"]:
        want.setdefault(shape["ppr_session"][eb].upper(), []).append(eb)
    assert got == want
    # tarballs: one per session, holding exactly its EBs' tables
    cal = os.path.join(member, "calibration")
    tarballs = sorted(f for f in os.listdir(cal) if f.endswith(".caltables.tgz"))
    assert tarballs == sorted(shape["session_caltables"].values())
    content = {tb: {n.rstrip("/") for n in tar_members(os.path.join(cal, tb))} for tb in tarballs}
    for eb in t["ebs"]:
        exp = t["expected"][eb]
        assert exp["caltables_tarball"] == shape["eb_caltables"][eb]
        entries = parse_calapply(os.path.join(cal, f"{eb}.ms.calapply.txt"))
        named = {os.path.basename(g) for e in entries for g in e["gaintable"]}
        assert named == set(exp["caltables"])
        for tb, members in content.items():
            if tb == exp["caltables_tarball"]:
                assert named <= members
            else:
                assert not named & members, (eb, tb)
        fv = tar_members(os.path.join(cal, f"{eb}.ms.flagversions.tgz"))
        assert f"{eb}.ms.flagversions/FLAG_VERSION_LIST" in fv
        assert f"{eb}.ms.flagversions/flags.Pipeline_Final" in fv
    with tarfile.open(os.path.join(cal, tarballs[0])) as tf:
        assert all(m.isdir() for m in tf.getmembers())  # caltable folders, empty
    # the manifest, when the era had one
    mpath = _script(member, shape["files"]["manifest"])
    assert os.path.isfile(mpath) == shape["manifest_present"]
    if shape["manifest_present"]:
        ous = ET.parse(mpath).getroot().find("ous")
        for sess in ous.findall("session"):
            assert sess.find("caltables").attrib["name"] == shape["session_caltables"][sess.attrib["name"]]
            for a in sess.findall("asdm"):
                assert shape["eb_session"][a.attrib["name"]] == sess.attrib["name"]
        assert shape["session_map_source"] == "manifest"
    else:
        assert shape["session_map_source"] == "restore_script"


def test_cycle4_gaps(skeletons):
    r = skeletons["cycle4_gaps"]
    t, member, shape = r["truth"], r["member_dir"], r["truth"]["shape"]
    assert t["project"].startswith("2016.1.")
    assert [shape["eb_session"][eb] for eb in t["ebs"]] == [
        "session_1", "session_2", "session_2", "session_3", "session_4", "session_5", "session_7", "session_8"]
    cal = sorted(os.listdir(os.path.join(member, "calibration")))
    m = t["mous"]
    assert f"{m}.session_6.caltables.tgz" not in cal and f"{m}.session_8.caltables.tgz" in cal
    for loose in ("flux.csv", "antennapos.csv", f"{m}.cont.dat"):
        assert loose in cal
    assert not [f for f in cal if "auxproducts" in f]
    for eb in t["ebs"]:
        assert f"{eb}_flagtemplate.txt" in cal and f"{eb}_flagtargetstemplate.txt" in cal
    script = sorted(os.listdir(os.path.join(member, "script")))
    assert script == sorted(["casa_piperestorescript.py", "casa_pipescript.py", shape["files"]["ppr"],
                             "scriptForImaging.py", "scriptForPI.py"])
    assert shape["files"]["ppr"].startswith("PPR_uid___A001_") and m not in shape["files"]["ppr"]
    assert os.path.isfile(os.path.join(member, "README"))
    assert not shape["manifest_present"]
    prods = sorted(os.listdir(os.path.join(member, "product")))
    stem = f"{m}.Synth_Disk_sci.spw0_1_2_3.cont.I"
    for suffix in (".tt0.pbcor.fits", ".tt1.pbcor.fits", ".pb.tt0.fits", ".alpha.fits", ".alpha.error.fits"):
        assert stem + suffix in prods
    assert all(p.startswith(m + ".") for p in prods)
    assert not [p for p in prods if p.endswith(".gz") or ".mask" in p]
    assert sorted(os.listdir(os.path.join(member, "qa"))) == [f"{m}.weblog.tgz"]
    logs = os.listdir(os.path.join(member, "log"))
    assert f"{m}.casa_commands.log" in logs and any(x.startswith("casa-") for x in logs)


def test_total_power(skeletons):
    r = skeletons["total_power"]
    t, member, shape = r["truth"], r["member_dir"], r["truth"]["shape"]
    assert len(t["ebs"]) == 18 and len(shape["session_caltables"]) == 17
    (task, kw), _ = _restore_call(member, shape)
    assert task == "hsd_restoredata" and kw["ocorr_mode"] == "ao"
    assert kw["session"].count("session_14") == 2
    aux = os.path.join(member, "calibration", shape["files"]["auxproducts"])
    assert "jyperk.csv" in tar_members(aux)
    with tarfile.open(aux) as tf:
        rows = tf.extractfile("jyperk.csv").read().decode().splitlines()
    assert rows[0] == "MS,Antenna,Spwid,Polarization,Factor"
    assert {row.split(",")[0] for row in rows[1:]} == {f"{eb}.ms" for eb in t["ebs"]}
    ppr = ET.parse(_script(member, shape["files"]["ppr"])).getroot()
    assert ppr.find(".//ProcedureTitle").text == "hsd_calimage"
    assert all(p.endswith(".cube.I.sd.fits") for p in os.listdir(os.path.join(member, "product")))


def test_no_session_1_and_s_naming(skeletons):
    shape = skeletons["no_session_1"]["truth"]["shape"]
    assert "session_1" not in shape["session_caltables"]
    assert not [f for f in os.listdir(os.path.join(skeletons["no_session_1"]["member_dir"], "calibration"))
                if "session_1." in f]
    sk = skeletons["s_naming"]
    m = sk["truth"]["mous"]
    assert sk["truth"]["shape"]["session_caltables"] == {"session_1": f"{m}.s1.caltables.tgz",
                                                         "session_2": f"{m}.s2.caltables.tgz"}


def test_ppr_disagrees(skeletons):
    r = skeletons["ppr_disagrees"]
    member, shape = r["member_dir"], r["truth"]["shape"]
    assert shape["ppr_disagrees"] and not shape["manifest_present"]
    got = ppr_sessions(_script(member, shape["files"]["ppr"]))
    assert sorted(got) == ["SESSION_1", "SESSION_2", "SESSION_3", "SESSION_4"]
    (task, kw), _ = _restore_call(member, shape)
    assert set(kw["session"]) == {"session_1"}
    assert list(shape["session_caltables"]) == ["session_1"]


def test_sacm_restore_script(skeletons):
    r = skeletons["sacm"]
    t, member, shape = r["truth"], r["member_dir"], r["truth"]["shape"]
    (_task, _kw), text = _restore_call(member, shape)
    tree = ast.parse(text)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [("recipes.almahelpers", ["fixsyscaltimes"])]
    seq = calls(text)
    names = [n for n, _ in seq]
    imp = [kw for n, kw in seq if n == "hifa_importdata"]
    assert len(imp) == 1 and imp[0]["dbservice"] is False and imp[0]["bdfflags"] is False
    assert [os.path.basename(v) for v in imp[0]["vis"]] == t["ebs"]
    fixed = [kw["vis"] for n, kw in seq if n == "fixsyscaltimes"]
    assert sorted(fixed) == sorted(f"{eb}.ms" for eb in t["ebs"])
    assert names.index("hifa_importdata") < names.index("fixsyscaltimes") < names.index("hifa_restoredata")
    assert max(i for i, n in enumerate(names) if n == "fixsyscaltimes") < names.index("hifa_restoredata")


def test_post_scripts(skeletons):
    r = skeletons["post_scripts"]
    member, shape = r["member_dir"], r["truth"]["shape"]
    assert shape["post_scripts_order"] == ["PolCal", "FluxCal", "ImagingPrep"]
    for p, real in (("PolCal", "scriptForPolCalibration.py"), ("FluxCal", "scriptForFluxCalibration.py"),
                    ("ImagingPrep", "scriptForImagingPrep.py")):
        assert shape["files"][f"scriptFor{p}"] == f"member.{r['truth']['mous']}.{real}"
        assert os.path.isfile(_script(member, shape["files"][f"scriptFor{p}"]))
    prep = open(_script(member, shape["files"]["scriptForImagingPrep"])).read()
    concat = [kw for n, kw in calls(prep) if n == "concat"]
    assert len(concat) == 1 and concat[0]["concatvis"] == "calibrated.ms"
    assert imaging_prep_inputs(prep) == [f"{eb}.ms.split.cal" for eb in r["truth"]["ebs"]]
    assert [n for n, _ in calls(prep)] == ["concat", "listobs"]
    assert not shape["pipeline_imaged"]
    assert all(".manual." in p for p in os.listdir(os.path.join(member, "product")))


def test_cycle7_cycle3_manual_semipass(skeletons):
    c7 = skeletons["cycle7"]
    assert "log" not in os.listdir(c7["member_dir"])
    assert os.path.isfile(_script(c7["member_dir"], c7["truth"]["shape"]["files"]["cmdlog"]))
    c3 = skeletons["cycle3"]
    (task, _kw), _ = _restore_call(c3["member_dir"], c3["truth"]["shape"])
    assert task == "hif_restoredata"
    prods = sorted(os.listdir(os.path.join(c3["member_dir"], "product")))
    assert prods == ["Synth_Disk.cont.flux.fits", "Synth_Disk.cont.image.pbcor.fits", "Synth_Disk.cont.mask",
                     "Synth_Disk.line_spw0.cube.flux.fits.gz", "Synth_Disk.line_spw0.cube.image.pbcor.fits",
                     "Synth_Disk.line_spw0.cube.mask"]
    assert os.path.isdir(os.path.join(c3["member_dir"], "product", "Synth_Disk.cont.mask"))
    man = skeletons["manual_cycle3"]
    script = os.listdir(os.path.join(man["member_dir"], "script"))
    for eb in man["truth"]["ebs"]:
        assert f"{eb}.ms.scriptForCalibration.py" in script
    assert not [f for f in script if "piperestore" in f or "PPR" in f]
    sp = skeletons["semipass"]
    assert sorted(os.listdir(sp["member_dir"])) == sorted(["qa", "raw", "script", sp["truth"]["shape"]["files"]["readme"]])
    assert os.listdir(os.path.join(sp["member_dir"], "script")) == [sp["truth"]["shape"]["files"]["scriptforpi"]]
    assert sp["truth"]["shape"]["semipass"] and "semipass" in open(
        os.path.join(sp["member_dir"], sp["truth"]["shape"]["files"]["readme"])).read()


def test_products_open_as_fits(skeletons):
    from astropy.io import fits

    member = skeletons["modern"]["member_dir"]
    for p in sorted(os.listdir(os.path.join(member, "product"))):
        path = os.path.join(member, "product", p)
        if p.endswith(".gz"):
            with gzip.open(path) as fh, fits.open(fh) as hl:
                hl.verify("exception")
        else:
            with fits.open(path) as hl:
                hl.verify("exception")
                assert hl[0].header["TELESCOP"] == "ALMA"


def test_readme_names_the_real_command(skeletons):
    for name in ("modern", "cycle4_gaps"):
        r = skeletons[name]
        readme = open(os.path.join(r["member_dir"], r["truth"]["shape"]["files"]["readme"])).read()
        assert "almaqa qa_restore --deliverydir" in readme and "almaqa restore " not in readme
        pi = open(_script(r["member_dir"], r["truth"]["shape"]["files"]["scriptforpi"])).read()
        assert "almaqa qa_restore --deliverydir" in pi


def test_deterministic(tmp_path, tree_checksum):
    a = make_skeleton(str(tmp_path / "a"), "cycle4_gaps")
    b = make_skeleton(str(tmp_path / "b"), "cycle4_gaps")
    assert tree_checksum(a["member_dir"]) == tree_checksum(b["member_dir"])
    c = make_skeleton(str(tmp_path / "c"), "cycle4_gaps", seed=99)
    assert c["truth"]["mous"] != a["truth"]["mous"]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown skeleton preset"):
        make_skeleton(str(tmp_path / "x"), "cycle99")
    make_skeleton(str(tmp_path / "y"), "semipass")
    with pytest.raises(FileExistsError):
        make_skeleton(str(tmp_path / "y"), "semipass")
    with pytest.raises(ValueError, match="names 3 sessions for 2 EBs"):
        SynthSpec(sessions=("session_1", "session_2", "session_3"))
    with pytest.raises(ValueError, match="not a session name"):
        SynthSpec(sessions=("session_1", "s2"))
    with pytest.raises(ValueError, match="pipeline deliveries only"):
        SynthSpec(calibration="manual", sacm=True)
    with pytest.raises(ValueError, match="cycle"):
        SynthSpec(cycle=13)
    assert preset_spec("sacm", nebs=1, sessions=("session_3",)).sessions == ("session_3",)


def test_custom_shape(tmp_path):
    spec = SynthSpec(nebs=3, cycle=11, sessions="session_2,session_2,session_5", manifest=False,
                     caltables_naming="s")
    r = make_skeleton(str(tmp_path), spec)
    shape = r["truth"]["shape"]
    m = r["truth"]["mous"]
    assert shape["session_caltables"] == {"session_2": f"{m}.s2.caltables.tgz", "session_5": f"{m}.s5.caltables.tgz"}
    assert r["preset"] is None and shape["era"] == "cycle10+"


def test_pure_without_casa(tmp_path):
    """The skeleton and the modules it uses never import CASA: with the
    synth package's CASA gateway made unimportable they still work."""
    code = f"""
import sys, importlib.abc
import almaqa_casa  # the package itself (may load casatools)
before = set(sys.modules)
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("almaqa_casa.synth._casa", "casatasks") or name.startswith("casatasks."):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from almaqa_casa.synth.skeleton import make_skeleton
r = make_skeleton({str(tmp_path)!r}, "total_power")
new = set(sys.modules) - before
bad = sorted(m for m in new if m.startswith(("casatools", "casatasks", "almaqa_casa.synth._casa",
                                             "almaqa_casa.synth.build", "almaqa_casa.synth.imaging")))
print("BAD", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "BAD []" in out.stdout, out.stdout[-2000:]


def test_aux_caltables_are_not_the_main_list(skeletons):
    """Cycle 5-7 pipeline imaging: session auxcaltables tarballs and per-EB
    auxcalapply lists beside the real ones (realworld.md: not the main list)."""
    r = skeletons["no_session_1"]
    t, cal = r["truth"], os.path.join(r["member_dir"], "calibration")
    names = os.listdir(cal)
    for eb in t["ebs"]:
        aux = t["expected"][eb]["aux_caltables"]
        assert aux["tarball"] in names and aux["calapply"] in names
        assert aux["tarball"].endswith(".auxcaltables.tgz") and not aux["tarball"].endswith(".caltables.tgz")
        assert aux["tarball"] not in t["shape"]["session_caltables"].values()
        assert parse_calapply(os.path.join(cal, aux["calapply"]))[0]["intent"] == "TARGET"
        assert set(aux["caltables"]) <= {n.rstrip("/") for n in tar_members(os.path.join(cal, aux["tarball"]))}
        assert not set(aux["caltables"]) & set(t["expected"][eb]["caltables"])
    assert not [n for n in os.listdir(os.path.join(skeletons["modern"]["member_dir"], "calibration"))
                if "aux" in n and "auxproducts" not in n]


@pytest.mark.parametrize("name", ["cycle4_gaps", "semipass", "modern"])
def test_archive_tars(skeletons, tmp_path, name):
    """The archive's tar files of each era hold the member, relative paths only."""
    from almaqa_casa.synth.tree import archive_tars

    r = skeletons[name]
    spec = r["spec"]
    tars = archive_tars(spec, os.path.dirname(r["project_dir"]), str(tmp_path))
    base = sorted(os.path.basename(p) for p in tars)
    p, m = spec.project, spec.mous
    asdm = [f"{p}_{eb}.asdm.sdm.tar" if spec.cycle <= 4 else f"{p}_{eb}_asdm.sdm.tar" for eb in spec.eb_uids]
    if spec.cycle <= 4:
        assert base == sorted([f"{p}_{m}_001_of_001.tar", *asdm])
    elif spec.calibration == "semipass":
        assert base == sorted([f"{p}_{m}_001_of_001.tar", f"member_{m}_README.txt.tar", *asdm])
    else:
        assert base == sorted([f"{p}_{m}_001_of_001.tar", f"{p}_{m}_auxiliary.tar",
                               f"member_{m}_README.txt.tar", *asdm])
    for path in tars:
        with tarfile.open(path) as tf:
            for ti in tf.getmembers():
                assert ti.name.startswith(p + "/") and ".." not in ti.name.split("/")
