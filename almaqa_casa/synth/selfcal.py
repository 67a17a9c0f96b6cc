"""``selfcal=True``: one round of phase self-calibration on the target's
continuum model, then the target's cont and cube products again with
``.selfcal.`` in their names (archive order: after the Stokes token)."""
from __future__ import annotations

import os
import shutil

from . import imaging
from . import spec as S
from ._casa import casatasks


def selfcal_products(spec: S.SynthSpec, vislist: list[str], imgwork: str, productdir: str,
                     truthdir: str, to_final) -> dict:
    tgt = spec.target.name
    for k, vis in enumerate(vislist):
        tab = os.path.join(imgwork, f"selfcal_{k}.pcal")
        shutil.rmtree(tab, ignore_errors=True)
        casatasks.gaincal(vis=vis, caltable=tab, field=tgt, solint="inf", calmode="p",
                          refant=S.REFANT, minsnr=3.0, gaintype="T")
        casatasks.applycal(vis=vis, field=tgt, gaintable=[tab], interp=["linear"], calwt=False,
                           flagbackup=False, applymode="calonly")
    out = {}
    allspw = list(range(len(S.SPWS)))
    lc = S.line_channels(S.LINE["spw"])
    stokes = "IQUV" if spec.polarization else "I"
    for spws, imtype, excl in ((allspw, "cont", {S.LINE["spw"]: lc}), ([S.LINE["spw"]], "cube", None)):
        base = imaging.product_base(spec, tgt, "sci", spws, imtype, stokes, selfcal=True)
        r = imaging.make_image(vislist, imgwork, productdir, truthdir, base, tgt, spws, imtype, stokes,
                               cont_exclude=excl, niter=600 if imtype == "cube" else 300,
                               threshold="5mJy" if imtype == "cube" else "0mJy")
        out[os.path.basename(r["pbcor"])] = {
            "uncorrected_fits": to_final(r["uncorrected_fits"]), "pb": os.path.basename(r["pb"]),
            "mask": os.path.basename(r["mask"]), "noise_jy_per_beam": r["noise_jy_per_beam"],
            "center_pbcor_jy_per_beam": r["center_pbcor_jy_per_beam"], "field": tgt, "type": "sci",
            "spws": spws, "imtype": imtype, "stokes": stokes, "selfcal": True}
    return out
