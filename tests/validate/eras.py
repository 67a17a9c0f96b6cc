"""Text-only skeleton deliveries of the shapes the observatory delivered in each era.

Names follow real deliveries (realworld.md "Layout by era", images.md §3);
the files hold placeholder text only (layout, naming and pairing need no
data).  ``build(root, shape)`` writes one under ``root`` and returns the
member folder; ``SHAPES[shape]`` is (project, science goal, group, MOUS,
{relative path: text}); a path ending in ``/`` is a folder, one ending in
``.mask/`` a CASA image folder (with a ``table.dat``).
"""
from __future__ import annotations

from pathlib import Path

# Cycle 4, pipeline-calibrated and -imaged: README named README, flux.csv / antennapos.csv /
# cont.dat loose in calibration/, per-EB flag templates, bare uid___ product names with
# multi-term continuum sets; two sessions.
_C4 = "uid___A001_X87c_X69"
_C4_EBS = ("uid___A002_Xb9dfa4_X4c1c", "uid___A002_Xba0cdc_X2a6")
_C4_CONT = f"{_C4}.NGC_3351_sci.spw17_19_21_23.cont.I"
_C4_CUBE = f"{_C4}.NGC_3351_sci.spw17.cube.I"
_C4_CAL = f"{_C4}.J0139+1753_ph.spw17.mfs.I"
CYCLE4 = ("2016.1.01435.S", "uid___A001_X87c_X67", "uid___A001_X87c_X68", _C4, {
    "README": "ALMA data delivery README\nProcessed with the ALMA pipeline Pipeline-CASA47-P1-B "
              "(CASA version 4.7.2).\n",
    f"calibration/{_C4}.session_1.caltables.tgz": "x",
    f"calibration/{_C4}.session_2.caltables.tgz": "x",
    **{f"calibration/{eb}.ms.calapply.txt": "# Apply file\n" for eb in _C4_EBS},
    **{f"calibration/{eb}.ms.flagversions.tgz": "x" for eb in _C4_EBS},
    **{f"calibration/{eb}_flagtemplate.txt": "# flag template\n" for eb in _C4_EBS},
    **{f"calibration/{eb}_flagtargetstemplate.txt": "# flag template\n" for eb in _C4_EBS},
    "calibration/flux.csv": "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n",
    "calibration/antennapos.csv": "name,antenna,xoff,yoff,zoff,comment\n",
    "calibration/cont.dat": "Field: NGC_3351\n\nSpectralWindow: 17\n230.1~230.5GHz LSRK\n",
    f"log/{_C4}.hifa_calimage.casa_commands.log": "# hifa_importdata\n",
    f"product/{_C4_CONT}.tt0.pbcor.fits": "x", f"product/{_C4_CONT}.tt1.pbcor.fits": "x",
    f"product/{_C4_CONT}.pb.tt0.fits.gz": "x", f"product/{_C4_CONT}.mask.fits.gz": "x",
    f"product/{_C4_CONT}.alpha.fits": "x", f"product/{_C4_CONT}.alpha.error.fits": "x",
    f"product/{_C4_CUBE}.pbcor.fits": "x", f"product/{_C4_CUBE}.pb.fits.gz": "x",
    f"product/{_C4_CUBE}.mask.fits.gz": "x",
    f"product/{_C4_CAL}.pbcor.fits": "x", f"product/{_C4_CAL}.pb.fits": "x",
    f"product/{_C4_CAL}.mask.fits": "x",
    f"qa/{_C4}.hifa_calimage.weblog.tgz": "x", f"qa/{_C4}.qa2_report.pdf": "x",
    f"script/{_C4}.scriptForPI.py": "# scriptForPI\n",
    f"script/{_C4}.hifa_calimage.casa_piperestorescript.py": "h_init()\n",
    f"script/{_C4}.hifa_calimage.casa_pipescript.py": "h_init()\n",
    f"script/PPR_{_C4}.xml": "<SciPipeRequest/>\n",
})

# Cycle 7, pipeline: casa_commands.log in script/, no log/ folder.
_C7 = "uid___A001_X1465_X1b4e"
_C7M = f"member.{_C7}"
_C7_EB = "uid___A002_Xe3a5fd_X6f1d"
_C7_CONT = f"{_C7M}.HD_163296_sci.spw25_27_29_31.cont.I"
_C7_CUBE = f"{_C7M}.HD_163296_sci.spw25.cube.I"
CYCLE7 = ("2019.1.00261.L", "uid___A001_X1465_X1b4c", "uid___A001_X1465_X1b4d", _C7, {
    f"{_C7M}.README.txt": "ALMA Member ObsUnitSet README\n",
    f"calibration/{_C7}.session_1.caltables.tgz": "x",
    f"calibration/{_C7}.session_1.auxcaltables.tgz": "x",
    f"calibration/{_C7_EB}.ms.calapply.txt": "# Apply file\n",
    f"calibration/{_C7_EB}.ms.auxcalapply.txt": "# Apply file\n",
    f"calibration/{_C7_EB}.ms.flagversions.tgz": "x",
    f"calibration/{_C7}.hifa_calimage.auxproducts.tgz": "x",
    f"product/{_C7_CONT}.pbcor.fits": "x", f"product/{_C7_CONT}.pb.fits.gz": "x",
    f"product/{_C7_CONT}.mask.fits.gz": "x",
    f"product/{_C7_CUBE}.pbcor.fits": "x", f"product/{_C7_CUBE}.pb.fits.gz": "x",
    f"product/{_C7_CUBE}.mask.fits.gz": "x",
    f"qa/{_C7M}.hifa_calimage.weblog.tgz": "x", f"qa/{_C7M}.qa2_report.pdf": "x",
    f"script/{_C7M}.scriptForPI.py": "# scriptForPI\n",
    f"script/{_C7M}.hifa_calimage.casa_piperestorescript.py": "h_init()\n",
    f"script/{_C7M}.hifa_calimage.casa_pipescript.py": "h_init()\n",
    f"script/{_C7M}.hifa_calimage.pipeline_manifest.xml": "<piperesults/>\n",
    f"script/PPR_{_C7}.xml": "<SciPipeRequest/>\n",
    f"script/{_C7M}.hifa_calimage.casa_commands.log":
        "# CASA version 5.6.1-8, pipeline 42866M (Pipeline-CASA56-P1-B)\nhifa_importdata()\n",
})

# Cycle 2-3, manual calibration and imaging: README named README, free-form product names
# with .flux.fits(.gz) primary beams and CASA .mask image folders.
_C2 = "uid___A001_X12f_X20b"
_C2_EBS = ("uid___A002_X9d13e3_X3b2", "uid___A002_X9d6f4c_X154")
MANUAL_C23 = ("2013.1.00031.S", "uid___A001_X12f_X209", "uid___A001_X12f_X20a", _C2, {
    "README": "This is the README of the ALMA Cycle 2 data delivery.\nThe data were calibrated "
              "and imaged manually with CASA 4.2.2.\n",
    **{f"calibration/{eb}.calibration.tgz": "x" for eb in _C2_EBS},
    **{f"calibration/{eb}.calibration.plots.tgz": "x" for eb in _C2_EBS},
    "calibration/flux.csv": "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n",
    "calibration/antennapos.csv": "name,antenna,xoff,yoff,zoff,comment\n",
    "calibration/cont.dat": "Field: NGC1333_IRAS4A\n",
    "log/casapy-20150402-140512.log": "log\n",
    **{f"log/{eb}.ms.scriptForCalibration.log": "log\n" for eb in _C2_EBS},
    "product/NGC1333_IRAS4A.spw17.image.pbcor.fits": "x",
    "product/NGC1333_IRAS4A.spw17.flux.fits.gz": "x",
    "product/NGC1333_IRAS4A.spw17.mask/": None,
    "product/NGC1333_IRAS4A.cont.image.pbcor.fits": "x",
    "product/NGC1333_IRAS4A.cont.flux.fits.gz": "x",
    "product/NGC1333_IRAS4A.cont.mask/": None,
    "product/OrionKL.CH3OH_241.7GHz.image.pbcor.fits": "x",
    "product/OrionKL.CH3OH_241.7GHz.flux.fits.gz": "x",
    "product/OrionKL.CH3OH_241.7GHz.mask/": None,
    **{f"qa/{eb}__textfile.txt": "QA2\n" for eb in _C2_EBS},
    **{f"qa/{eb}__qa2_part3.png": "x" for eb in _C2_EBS},
    f"qa/{_C2}.qa2_report.pdf": "x",
    f"script/{_C2}.scriptForPI.py": "# scriptForPI\n",
    **{f"script/{eb}.ms.scriptForCalibration.py": "applyonly = True\n" for eb in _C2_EBS},
    f"script/{_C2}.scriptForImaging.py": "clean(vis='calibrated.ms')\n",
    f"script/{_C2}.scriptForFluxCalibration.py": "fluxscale()\n",
})

# Semipass package: QA0 semi-pass data only: qa/, a tiny script/, raw data; no calibration/.
_SP = "uid___A001_X133d_X2c1"
SEMIPASS = ("2018.1.01055.L", "uid___A001_X133d_X2bf", "uid___A001_X133d_X2c0", _SP, {
    f"member.{_SP}.README.txt": "ALMA Member ObsUnitSet README\n",
    "qa/uid___A002_Xd1ff61_X2b5f.qa0_semipass_report.pdf": "x",
    f"script/member.{_SP}.scriptForPI.py": "# scriptForPI\n",
    f"script/{_SP}.product_rename.txt": "# nothing to rename\n",
    "raw/uid___A002_Xd1ff61_X2b5f.asdm.sdm/ASDM.xml": "<ASDM/>\n",
})

SHAPES = {"cycle4": CYCLE4, "cycle7": CYCLE7, "manual_c23": MANUAL_C23, "semipass": SEMIPASS}


def member_path(root: Path, shape: str) -> Path:
    project, sg, group, mous, _ = SHAPES[shape]
    return Path(root) / project / f"science_goal.{sg}" / f"group.{group}" / f"member.{mous}"


def build(root: Path, shape: str, extra: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """Write the skeleton of ``shape`` (plus ``extra`` files, minus paths starting with ``drop``)."""
    files = {**SHAPES[shape][4], **(extra or {})}
    member = member_path(root, shape)
    member.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        if any(rel.startswith(d) for d in drop):
            continue
        p = member / rel.rstrip("/")
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".mask/"):
                (p / "table.dat").write_text("placeholder CASA table\n")
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return member


def listing_names(shape: str) -> dict[str, tuple[str, ...]]:
    """The subfolder listing of a shape (names directly inside each subfolder)."""
    folders: dict[str, set[str]] = {}
    for rel in SHAPES[shape][4]:
        parts = rel.rstrip("/").split("/")
        if len(parts) >= 2:
            folders.setdefault(parts[0], set()).add(parts[1])
    return {k: tuple(sorted(v)) for k, v in folders.items()}
