"""Layout, naming and product-set rules on name listings (pure checks, no files)."""
from __future__ import annotations

from almaqa_casa.validate.structure import layout_checks, member_listing, naming_checks, product_checks
from almaqa_casa.validate.tree import Entry, MemberView

MOUS = "uid___A001_X1_X2"
M = f"member.{MOUS}"
PARENTS = ("group.uid___A001_X1_X1", "science_goal.uid___A001_X1_X0", "2025.1.00001.S")

PIPE_BASE = [
    f"{M}.README.txt", "calibration/", "log/", "product/", "qa/", "script/",
    f"script/{M}.scriptForPI.py", f"script/{M}.hifa_calimage.casa_piperestorescript.py",
    f"script/PPR_{MOUS}.xml", f"calibration/{MOUS}.session_1.caltables.tgz",
    "calibration/uid___A002_X1_X1.ms.calapply.txt", "calibration/uid___A002_X1_X1.ms.flagversions.tgz",
    f"calibration/{MOUS}.hifa_calimage.auxproducts.tgz", f"qa/{M}.hifa_calimage.weblog.tgz",
    f"qa/{M}.qa2_report.pdf", f"log/{M}.casa_commands.log",
]


def view(names: list[str]) -> MemberView:
    v = MemberView(rel=f"p/{M}", mous=MOUS, parents=PARENTS)
    for n in names:
        kind = "dir" if n.endswith("/") else "file"
        n = n.rstrip("/")
        v.entries[n] = Entry(rel=f"p/{M}/{n}", kind=kind, display=f"p/{M}/{n}")
    return v


def image_set(stem: str, pb=True, mask=True) -> list[str]:
    out = [f"product/{stem}.pbcor.fits"]
    if pb:
        out.append(f"product/{stem}.pb.fits.gz")
    if mask:
        out.append(f"product/{stem}.mask.fits.gz")
    return out


def run(names: list[str]):
    v = view(names)
    d, lay = layout_checks(v, member_listing(v))
    products, nam = naming_checks(v)
    prod = product_checks(products, d)
    return d, sorted((f.code, f.file.rsplit("/", 1)[-1]) for f in lay + nam + prod
                     if f.severity != "info")


def test_clean_pipeline_listing():
    d, problems = run(PIPE_BASE + ["raw/"] + image_set(f"{M}.X_sci.spw1_3.cont.I")
                      + image_set(f"{M}.X_sci.spw1.cube.I") + image_set(f"{M}.X_sci.spw3.cube.I"))
    assert problems == []
    assert d.calibration == "pipeline" and d.imaging == "pipeline"


def test_spw_disagreement():
    _, problems = run(PIPE_BASE + ["raw/"] + image_set(f"{M}.X_sci.spw1_3.cont.I")
                      + image_set(f"{M}.X_sci.spw1_5.cont.I.manual") + image_set(f"{M}.X_sci.spw7.cube.I"))
    assert [c for c, _ in problems] == ["P004", "P004"]


def test_polarization_sets():
    base = PIPE_BASE + ["raw/"]
    iquv = image_set(f"{M}.X_sci.spw1.mfs.IQUV")
    p = [f"product/{M}.X_sci.spw1.mfs.P.pbcor.fits"]
    a = [f"product/{M}.X_sci.spw1.mfs.A.pbcor.fits"]
    d, problems = run(base + iquv + p + a)
    assert problems == [] and d.full_polarization
    _, problems = run(base + iquv + p)
    assert problems == [("P007", f"{M}.X_sci.spw1.mfs.IQUV.pbcor.fits")]
    _, problems = run(base + image_set(f"{M}.X_sci.spw1.mfs.I") + [
        f"product/{M}.X_sci.spw1.mfs.P.pbcor.fits", f"product/{M}.X_sci.spw1.mfs.A.pbcor.fits"])
    assert ("P006", f"{M}.X_sci.spw1.mfs.P.pbcor.fits") in problems
    assert ("P005", "product") not in problems  # P/A present: flagged pol, IQUV missing
    assert any(c == "P005" for c, _ in problems)


def test_pairing_and_orphans():
    _, problems = run(PIPE_BASE + ["raw/"] + image_set(f"{M}.X_sci.spw1.cont.I", pb=False, mask=False)
                      + [f"product/{M}.Y_sci.spw1.cont.I.mask.fits.gz"])
    assert problems == [("P001", f"{M}.X_sci.spw1.cont.I.pbcor.fits"),
                        ("P002", f"{M}.X_sci.spw1.cont.I.pbcor.fits"),
                        ("P003", f"{M}.Y_sci.spw1.cont.I.mask.fits.gz")]
    # multi-term: tt0.pbcor pairs with pb.tt0; tt1 and alpha need nothing of their own
    stem = f"{M}.X_sci.spw1.cont.I"
    _, problems = run(PIPE_BASE + ["raw/"] + [f"product/{stem}.tt0.pbcor.fits", f"product/{stem}.tt1.pbcor.fits",
                                              f"product/{stem}.pb.tt0.fits.gz", f"product/{stem}.mask.fits.gz",
                                              f"product/{stem}.alpha.fits", f"product/{stem}.alpha.error.fits"])
    assert problems == []


def test_scripts_and_calibration_files():
    names = [n for n in PIPE_BASE if "PPR" not in n and "caltables" not in n] + ["raw/"] + \
        image_set(f"{M}.X_sci.spw1.cont.I")
    _, problems = run(names)
    assert [c for c, _ in problems] == ["L007", "L010"]
    _, problems = run(PIPE_BASE + ["raw/", f"script/{M}.other.casa_piperestorescript.py"]
                      + image_set(f"{M}.X_sci.spw1.cont.I"))
    assert [c for c, _ in problems] == ["L016"]
    manual = [f"{M}.README.txt", "calibration/", "log/", "product/", "qa/", "script/",
              f"script/{M}.scriptForPI.py", "script/uid___A002_X1_X1.ms.scriptForCalibration.py",
              "calibration/uid___A002_X1_X1.ms.split.bandpass.tgz", f"qa/{M}.manual.weblog.tgz",
              f"qa/{M}.qa2_report.pdf", "log/casa.log"] + image_set(f"{M}.X_sci.spw1.cube.I.manual")
    d, problems = run(manual)
    assert (d.calibration, d.imaging) == ("manual", "manual")
    assert [c for c, _ in problems] == ["L007"]  # no scriptForImaging.py
    _, problems = run(manual + ["script/scriptForImaging.py"])
    assert problems == []
    _, problems = run([f"{M}.README.txt", "calibration/", "log/", "product/", "qa/", "script/"])
    assert "L008" in [c for c, _ in problems]


def test_naming_findings():
    _, problems = run(PIPE_BASE + ["raw/"] + image_set(f"{M}.X_sci.spw1.cont.I") + [
        "product/random.fits", "product/notes.txt", "product/manual_imaging.tgz",
        "product/member.uid___A001_X9_X9.X_sci.spw1.cont.I.pb.fits.gz"])
    assert ("N001", "random.fits") in problems
    assert ("L011", "notes.txt") in problems
    assert ("N002", "member.uid___A001_X9_X9.X_sci.spw1.cont.I.pb.fits.gz") in problems
    assert not any(f == "manual_imaging.tgz" for _, f in problems)
