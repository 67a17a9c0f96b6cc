"""Body of the qa_validate task (interface: xml/qa_validate.xml)."""
from casatasks import casalog


def qa_validate(deliverydir, outdir, checks, req_resolution, req_sensitivity, overwrite):
    casalog.origin("qa_validate")
    raise NotImplementedError("qa_validate is not implemented yet")
