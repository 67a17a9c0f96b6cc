"""Body of the qa_renormplots task (interface: xml/qa_renormplots.xml)."""
from casatasks import casalog


def qa_renormplots(vis, outdir, spw, field, threshold, excludechan, atm_auto_exclude, bwthreshspw,
                   apply, caltable):
    casalog.origin("qa_renormplots")
    from almaqa_casa.renorm.run import renormplots

    def log(msg):
        casalog.post(msg, "INFO", "qa_renormplots")

    return renormplots(vis, outdir=outdir, spw=spw, field=field, threshold=threshold,
                       excludechan=excludechan, atm_auto_exclude=atm_auto_exclude,
                       bwthreshspw=bwthreshspw, apply=apply, caltable=caltable, log=log)
