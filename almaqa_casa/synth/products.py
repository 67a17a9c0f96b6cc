"""Image product file names of each era (pure).

* Cycle 5 on (``member``): ``member.<mous>.<field>_<type>.spw<ids>.<mode>.<stokes>[.selfcal][.manual]``
  + ``.pbcor.fits``, ``.pb.fits.gz``, ``.mask.fits.gz``.
* Cycle 4 (``cycle4``): bare ``<mous>.`` prefix, ``.pbcor.fits`` + ``.pb.fits`` (not
  gzipped, no mask); the continuum as Taylor terms: ``.tt0.pbcor.fits``,
  ``.tt1.pbcor.fits``, ``.pb.tt0.fits``, ``.alpha.fits``, ``.alpha.error.fits``
  (jturne19/legus-alma's 2016.1 listing).
* Cycle 1-3 manual imaging (``freeform``): ``<field>.<spw or line>.<mode>.image.pbcor.fits``
  with ``.flux.fits`` (``.flux.fits.gz`` for cubes) and a CASA ``.mask`` folder.

Each layer maps to the tclean output it is exported from (``casa``) and
whether the file is gzipped or a copied CASA image folder.
"""
from __future__ import annotations

from . import shape as SH
from . import spec as S

#: tclean output suffix of each layer (nterms=1 / nterms=2).
CASA_SUFFIX = {
    1: {"pbcor": ".image.pbcor", "pb": ".pb", "mask": ".mask", "image": ".image"},
    2: {"pbcor": ".image.tt0.pbcor", "tt1": ".image.tt1.pbcor", "pb": ".pb.tt0", "mask": ".mask",
        "alpha": ".alpha", "alpha_error": ".alpha.error", "image": ".image.tt0", "image_tt1": ".image.tt1"},
}
#: Layers that are primary-beam corrected images (truth records each).
PBCOR_LAYERS = ("pbcor", "tt1")


def _spwtok(spws: list[int]) -> str:
    return "spw" + "_".join(str(s) for s in spws)


def nterms(spec: S.SynthSpec, imtype: str) -> int:
    """Cycle 4 pipeline continuum images are multi-term (nterms=2)."""
    return 2 if (SH.product_style(spec) == "cycle4" and imtype == "cont") else 1


def product_files(spec: S.SynthSpec, field: str, ttype: str, spws: list[int], imtype: str,
                  stokes: str, selfcal: bool = False) -> dict[str, str]:
    """Layer -> delivered file name for one image."""
    style = SH.product_style(spec)
    if style == "freeform":
        tok = {"cont": "cont", "cube": f"line_{_spwtok(spws)}", "mfs": _spwtok(spws)}[imtype]
        base = f"{field}.{tok}.{imtype}" if imtype != "cont" else f"{field}.{tok}"
        return {"pbcor": base + ".image.pbcor.fits",
                "pb": base + (".flux.fits.gz" if imtype == "cube" else ".flux.fits"),
                "mask": base + ".mask"}
    if style == "cycle4":
        base = f"{spec.mous}.{field}_{ttype}.{_spwtok(spws)}.{imtype}.{stokes}"
        if nterms(spec, imtype) == 2:
            return {"pbcor": base + ".tt0.pbcor.fits", "tt1": base + ".tt1.pbcor.fits",
                    "pb": base + ".pb.tt0.fits", "alpha": base + ".alpha.fits",
                    "alpha_error": base + ".alpha.error.fits"}
        return {"pbcor": base + ".pbcor.fits", "pb": base + ".pb.fits"}
    base = product_base(spec, field, ttype, spws, imtype, stokes, selfcal)
    if spec.calibration == "pipeline" and not SH.pipeline_imaged(spec):
        base += ".manual"  # seed §4.3: manual imaging says so in <cmt>
    return {"pbcor": base + ".pbcor.fits", "pb": base + ".pb.fits.gz", "mask": base + ".mask.fits.gz"}


def product_base(spec: S.SynthSpec, field: str, ttype: str, spws: list[int], imtype: str,
                 stokes: str, selfcal: bool = False) -> str:
    """``member.<MOUS>.<field>_<type>.spw<ids>.<imtype>.<stokes>[.selfcal]``."""
    base = f"member.{spec.mous}.{field}_{ttype}.{_spwtok(spws)}.{imtype}.{stokes}"
    return base + (".selfcal" if selfcal else "")


def image_jobs(spec: S.SynthSpec) -> list[tuple]:
    """(field, type, spws, imtype, stokes, line exclusion) of every product."""
    tgt = spec.target.name
    allspw = list(range(len(S.SPWS)))
    lc = S.line_channels(S.LINE["spw"])
    jobs = []
    if spec.polarization:
        jobs.append((tgt, "sci", allspw, "cont", "IQUV", {S.LINE["spw"]: lc}))
        jobs.append((tgt, "sci", [S.LINE["spw"]], "cube", "IQUV", None))
        cal_images = SH.pipeline_imaged(spec)
    elif SH.product_style(spec) == "freeform":
        jobs.append((tgt, "sci", allspw, "cont", "I", {S.LINE["spw"]: lc}))
        jobs.append((tgt, "sci", [S.LINE["spw"]], "cube", "I", None))
        cal_images = False
    else:
        for k in allspw:
            jobs.append((tgt, "sci", [k], "mfs", "I", None))
        jobs.append((tgt, "sci", allspw, "cont", "I", {S.LINE["spw"]: lc}))
        jobs.append((tgt, "sci", [S.LINE["spw"]], "cube", "I", None))
        cal_images = SH.pipeline_imaged(spec)
    if cal_images:  # the pipeline images calibrators too
        for src in (S.BANDPASS, S.PHASE, S.CHECK):
            for k in allspw:
                jobs.append((src.name, src.role, [k], "mfs", "I", None))
    return jobs


def imaging_script(spec: S.SynthSpec, jobs: list[dict]) -> str:
    lines = ["# ALMA Data Reduction Script: scriptForImaging.py (synthetic)",
             "# Makes the products in ../product from calibrated/calibrated.ms", "",
             "import os", "", "try:", "    tclean", "except NameError:",
             "    from casatasks import tclean, exportfits  # noqa: F401", "",
             "vis = 'calibrated.ms'", ""]
    for j in jobs:
        lines.append(f"# {j['base']}")
        lines.append(f"tclean(vis=vis, imagename='{j['base']}', field='{j['field']}', spw='{j['spw']}', "
                     f"specmode='{j['specmode']}', stokes='{j['stokes']}', imsize=[{j['imsize']}, {j['imsize']}], "
                     f"cell='{j['cell']}', gridder='standard', deconvolver='hogbom', weighting='briggs', "
                     f"robust=0.5, niter={j['niter']}, threshold='{j['threshold']}', pblimit=0.2, "
                     f"usemask='user', mask='{j['mask']}', pbcor=True)")
        lines.append(f"exportfits(imagename='{j['base']}.image.pbcor', fitsimage='{j['base']}.pbcor.fits')")
        lines.append(f"exportfits(imagename='{j['base']}.pb', fitsimage='{j['base']}.pb.fits')")
        lines.append(f"exportfits(imagename='{j['base']}.mask', fitsimage='{j['base']}.mask.fits')")
        lines.append("")
    return "\n".join(lines) + "\n"
