"""Body of the qa_renormplots task (interface: xml/qa_renormplots.xml)."""
from casatasks import casalog


def qa_renormplots(vis, outdir, spw, field, threshold, excludechan, atm_auto_exclude, bwthreshspw, apply, caltable):
    casalog.origin("qa_renormplots")
    raise NotImplementedError("qa_renormplots is not implemented yet")
