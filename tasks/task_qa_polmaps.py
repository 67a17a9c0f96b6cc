"""Body of the qa_polmaps task (interface: xml/qa_polmaps.xml)."""
from almaqa_casa.images import polcalc
from almaqa_casa.images.polmaps import make_polmaps
from almaqa_casa.log import post
from almaqa_casa.taskdef import TaskParameterError


def _check_quantities(polithresh: str, debias: bool, sigma: str) -> None:
    """Read polithresh and sigma once here, so a bad value is a parameter error
    (exit 2 on the command line) naming the parameter, before any image is read."""
    try:
        polcalc.parse_threshold(polithresh)
        if debias:
            polcalc.parse_sigma(sigma)
    except ValueError as exc:
        which = "sigma" if str(exc).startswith("sigma") else "polithresh"
        raise TaskParameterError(f"parameter '{which}': {exc}") from None


def qa_polmaps(imagename, outdir, polithresh, debias, sigma, pbcor, fractional, overwrite,
               maskpoli=False, pbimage=""):
    _check_quantities(polithresh, debias, sigma)
    result = make_polmaps(imagename=imagename, outdir=outdir, polithresh=polithresh,
                          debias=debias, sigma=sigma, pbcor=pbcor, fractional=fractional,
                          overwrite=overwrite, maskpoli=maskpoli, pbimage=pbimage)
    for entry in result["inputs"]:
        if entry["status"] == "ok":
            post(f"{entry['input']}: wrote {', '.join(entry['outputs'].values())} "
                 f"(image used: {entry['image_used']})", "INFO")
        else:
            post(f"{entry['input']}: {entry['error']}", "SEVERE")
    return result
