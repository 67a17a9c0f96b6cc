"""Body of the qa_polmaps task (interface: xml/qa_polmaps.xml)."""
from casatasks import casalog


def qa_polmaps(imagename, outdir, polithresh, debias, sigma, pbcor, fractional, overwrite):
    casalog.origin("qa_polmaps")
    raise NotImplementedError("qa_polmaps is not implemented yet")
