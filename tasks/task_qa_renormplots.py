"""Body of the qa_renormplots task (interface: xml/qa_renormplots.xml)."""
from almaqa_casa.log import post


def qa_renormplots(vis, outdir, spw, field, threshold, excludechan, atm_auto_exclude, bwthreshspw,
                   apply, caltable):
    from almaqa_casa.renorm.run import renormplots

    def log(msg):
        post(msg, "INFO")

    return renormplots(vis, outdir=outdir, spw=spw, field=field, threshold=threshold,
                       excludechan=excludechan, atm_auto_exclude=atm_auto_exclude,
                       bwthreshspw=bwthreshspw, apply=apply, caltable=caltable, log=log)
