"""Small real deliveries for the validation tests: FITS written by CASA (image tool + exportfits)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

PROJECT = "2025.1.00001.S"
SG, GROUP, MOUS = "uid___A001_X1_X10", "uid___A001_X1_X11", "uid___A001_X1_X12"
EB = "uid___A002_Xab_X1"
NOISE = 1.0e-3          # Jy/beam, per pixel of the uncorrected image
BEAM = (1.0, 0.8, 30.0)  # arcsec, arcsec, deg
CELL = 0.2               # arcsec
N = 64
PEAK = 0.05


def member_dir(root: Path) -> Path:
    return (Path(root) / PROJECT / f"science_goal.{SG}" / f"group.{GROUP}" / f"member.{MOUS}")


def _planes(nchan: int, nstokes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uncorrected, pb, mask) arrays shaped (nx, ny, nchan, nstokes)."""
    from almaqa_casa.images.testdata import gaussian_pb

    rng = np.random.default_rng(seed)
    unc = rng.normal(0.0, NOISE, size=(N, N, nchan, nstokes))
    x = np.arange(N)[:, None] - N // 2
    y = np.arange(N)[None, :] - N // 2
    src = PEAK * np.exp(-4 * np.log(2) * (x ** 2 + y ** 2) / (BEAM[0] / CELL) ** 2)
    unc[:, :, :, 0] += src[:, :, None]
    pb = gaussian_pb(N, N, fwhm_pix=N * 0.8)
    pb = np.where(pb >= 0.2, pb, np.nan)
    mask = ((x ** 2 + y ** 2) <= 8 ** 2).astype(np.float32)
    return (unc, np.broadcast_to(pb[:, :, None, None], unc.shape).copy(),
            np.broadcast_to(mask[:, :, None, None], unc.shape).copy())


def write_image_set(product: Path, stem: str, nchan: int = 1, stokes: str = "I", seed: int = 1,
                    gz: bool = True, tt: bool = False, work: Path | None = None,
                    names: dict | None = None, only: tuple = ("pbcor", "pb", "mask")) -> dict:
    """Write <stem>.pbcor.fits, .pb.fits[.gz], .mask.fits[.gz]; return the truth.

    ``names`` overrides file names per kind (a name without ``.fits`` is
    written as a CASA image folder); ``only`` limits the kinds written.
    """
    from almaqa_casa.images.testdata import make_image, to_fits

    work = Path(work or product.parent / ".work")
    work.mkdir(parents=True, exist_ok=True)
    unc, pb, mask = _planes(nchan, len(stokes), seed)
    pbcor = unc / pb
    beam = [BEAM] * nchan if nchan > 1 else BEAM
    ext = ".fits.gz" if gz else ".fits"
    names = {
        "pbcor": f"{stem}.tt0.pbcor.fits" if tt else f"{stem}.pbcor.fits",
        "pb": (f"{stem}.pb.tt0" if tt else f"{stem}.pb") + ext,
        "mask": f"{stem}.mask" + ext,
        **(names or {}),
    }
    for kind, data, unit, bm in (("pbcor", pbcor, "Jy/beam", beam), ("pb", pb, "", None),
                                 ("mask", mask, "", None)):
        if kind not in only:
            continue
        if ".fits" not in names[kind]:  # a CASA image folder, as Cycle 2-3 manual masks
            make_image(str(product / names[kind]), shape=data.shape, stokes=stokes, data=data,
                       beam=bm, unit=unit, cell_arcsec=CELL)
            continue
        im = work / f"{stem}.{kind}.im"
        make_image(str(im), shape=data.shape, stokes=stokes, data=data, beam=bm, unit=unit,
                   cell_arcsec=CELL)
        to_fits(str(im), str(product / names[kind]), gz=names[kind].endswith(".gz"))
    return {"noise": NOISE, "beam": BEAM, "peak_uncorrected": PEAK,
            "files": {k: v for k, v in names.items() if k in only}}


def build_pipeline_delivery(root: Path, cube: bool = True) -> dict:
    """A small pipeline-calibrated, pipeline-imaged delivery; returns paths and truth."""
    m = member_dir(root)
    for sub in ("calibration", "log", "product", "qa", "script", "raw"):
        (m / sub).mkdir(parents=True, exist_ok=True)
    M = f"member.{MOUS}"
    files = {
        f"{M}.README.txt": "Synthetic README\n",
        f"script/{M}.scriptForPI.py": "# scriptForPI\n",
        f"script/{M}.hifa_calimage.casa_piperestorescript.py": "h_init()\n",
        f"script/{M}.hifa_calimage.casa_pipescript.py": "h_init()\n",
        f"script/PPR_{MOUS}.xml": "<SciPipeRequest/>\n",
        f"calibration/{MOUS}.session_1.caltables.tgz": "x",
        f"calibration/{EB}.ms.calapply.txt": "# Apply file\n",
        f"calibration/{EB}.ms.flagversions.tgz": "x",
        f"calibration/{MOUS}.hifa_calimage.auxproducts.tgz": "x",
        f"qa/{M}.hifa_calimage.weblog.tgz": "x",
        f"qa/{M}.qa2_report.html": "<html></html>\n",
        f"log/{M}.hifa_calimage.casa_commands.log": "log\n",
        f"raw/{EB}.asdm.sdm/ASDM.xml": "<ASDM/>\n",
    }
    for rel, text in files.items():
        p = m / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    product = m / "product"
    work = Path(root) / ".work"
    truth = {}
    truth["cont"] = write_image_set(product, f"{M}.NGC_253_sci.spw16_18.cont.I", seed=1, work=work)
    if cube:
        truth["cube"] = write_image_set(product, f"{M}.NGC_253_sci.spw16.cube.I", nchan=3, seed=2,
                                        work=work)
    truth["cal"] = write_image_set(product, f"{M}.J0006-0623_ph.spw16.mfs.I", seed=3, gz=False,
                                   work=work)
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return {"root": str(root), "member": str(m), "product": str(product), "truth": truth}
