"""Body of the qa_validate task (interface: xml/qa_validate.xml)."""
from casatasks import casalog

from almaqa_casa.validate import validate_delivery, write_reports


def qa_validate(deliverydir, outdir, checks, req_resolution, req_sensitivity, res_tolerance,
                sens_tolerance, pbrecovery, thumbnails, overwrite):
    casalog.origin("qa_validate")
    outdir = outdir or "."
    v = validate_delivery(deliverydir, checks=checks, req_resolution=req_resolution,
                          req_sensitivity=req_sensitivity, res_tolerance=res_tolerance,
                          sens_tolerance=sens_tolerance, thumbnails=thumbnails,
                          recovery=pbrecovery)
    outputs = write_reports(v, outdir, overwrite=overwrite)
    result = v.as_dict()
    result["outputs"] = outputs
    s = result["summary"]
    casalog.post(f"{deliverydir}: {s['error']} error(s), {s['warning']} warning(s), "
                 f"{s['info']} info; report {outputs['html']}", "INFO")
    for f in result["findings"]:
        if f["severity"] == "error":
            casalog.post(f"[{f['code']}] {f['file']}: {f['message']}", "WARN")
    return result
