"""Body of the qa_polmaps task (interface: xml/qa_polmaps.xml)."""
from casatasks import casalog

from almaqa_casa.images.polmaps import make_polmaps


def qa_polmaps(imagename, outdir, polithresh, debias, sigma, pbcor, fractional, overwrite,
               maskpoli=False, pbimage=""):
    casalog.origin("qa_polmaps")
    result = make_polmaps(imagename=imagename, outdir=outdir, polithresh=polithresh,
                          debias=debias, sigma=sigma, pbcor=pbcor, fractional=fractional,
                          overwrite=overwrite, maskpoli=maskpoli, pbimage=pbimage)
    for entry in result["inputs"]:
        if entry["status"] == "ok":
            casalog.post(f"{entry['input']}: wrote {', '.join(entry['outputs'].values())} "
                         f"(image used: {entry['image_used']})", "INFO")
        else:
            casalog.post(f"{entry['input']}: {entry['error']}", "SEVERE")
    return result
