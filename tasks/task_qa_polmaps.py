"""Body of the qa_polmaps task (interface: xml/qa_polmaps.xml)."""
from almaqa_casa.images import polcalc
from almaqa_casa.images.polmaps import DEFAULT_FRACTHRESH, DEFAULT_PBLIMIT, make_polmaps
from almaqa_casa.log import post
from almaqa_casa.taskdef import TaskParameterError


def _check_quantities(polithresh: str, debias: bool, sigma: str, fracthresh: str) -> None:
    """Read polithresh, sigma and fracthresh once here, so a bad value is a parameter
    error (exit 2 on the command line) naming the parameter, before any image is read."""
    for name, check in (("polithresh", lambda: polcalc.parse_threshold(polithresh)),
                        ("sigma", lambda: polcalc.parse_sigma(sigma) if debias else None),
                        ("fracthresh", lambda: polcalc.parse_threshold(fracthresh,
                                                                       param="fracthresh"))):
        try:
            check()
        except ValueError as exc:
            raise TaskParameterError(f"parameter '{name}': {exc}") from None


def qa_polmaps(imagename, outdir, polithresh, debias, sigma, pbcor, fractional, overwrite,
               maskpoli=False, pbimage="", pblimit=DEFAULT_PBLIMIT, fracthresh=DEFAULT_FRACTHRESH):
    _check_quantities(polithresh, debias, sigma, fracthresh)
    result = make_polmaps(imagename=imagename, outdir=outdir, polithresh=polithresh,
                          debias=debias, sigma=sigma, pbcor=pbcor, fractional=fractional,
                          overwrite=overwrite, maskpoli=maskpoli, pbimage=pbimage,
                          pblimit=pblimit, fracthresh=fracthresh)
    for entry in result["inputs"]:
        if entry["status"] == "ok":
            post(f"{entry['input']}: wrote {', '.join(entry['outputs'].values())} "
                 f"(image used: {entry['image_used']})", "INFO")
            for line in entry.get("masking", []):
                post(f"{entry['input']}: {line}", "INFO")
        else:
            post(f"{entry['input']}: {entry['error']}", "SEVERE")
    return result
