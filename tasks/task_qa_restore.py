"""Body of the qa_restore task (interface: xml/qa_restore.xml)."""
from casatasks import casalog


def qa_restore(deliverydir, outdir, spacesaving, dosplit, docontsub, images, imagedir, dryrun, usepipeline, usems, ignoreversion, nprocs):
    casalog.origin("qa_restore")
    raise NotImplementedError("qa_restore is not implemented yet")
