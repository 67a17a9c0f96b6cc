"""Body of the qa_restore task (interface: xml/qa_restore.xml)."""


def qa_restore(deliverydir, outdir, spacesaving, dosplit, docontsub, images, imagedir, dryrun,
               usepipeline, usems, ignoreversion, nprocs, postscripts=True, verify=True,
               atmcor=False, sdbaseline=False):
    from almaqa_casa.restore.engine import restore
    from almaqa_casa.taskdef import current_call

    ctx = current_call()
    params = dict(outdir=outdir, spacesaving=spacesaving, dosplit=dosplit, docontsub=docontsub,
                  images=images, imagedir=imagedir, dryrun=dryrun, usepipeline=usepipeline,
                  usems=usems, ignoreversion=ignoreversion, nprocs=nprocs,
                  postscripts=postscripts, verify=verify, atmcor=atmcor,
                  sdbaseline=sdbaseline)
    return restore(deliverydir, params, ctx.caller_globals if ctx else None)
