"""Body of the qa_validate task (interface: xml/qa_validate.xml)."""
from almaqa_casa.log import post
from almaqa_casa.taskdef import TaskParameterError
from almaqa_casa.validate import parse_checks, validate_delivery, write_reports
from almaqa_casa.validate.figures import parse_quantity


def _check_parameters(checks, req_resolution: str, req_sensitivity: str) -> None:
    """Read the check names and the requirements once here, so a bad value is a
    parameter error (exit 2 on the command line) naming the parameter."""
    try:
        parse_checks(checks)
    except ValueError as exc:
        raise TaskParameterError(f"parameter 'checks': {exc}") from None
    for name, text, unit in (("req_resolution", req_resolution, "arcsec"),
                             ("req_sensitivity", req_sensitivity, "Jy/beam")):
        try:
            parse_quantity(text, unit)
        except ValueError as exc:
            raise TaskParameterError(f"parameter '{name}': {exc}; e.g. "
                                     + ("'0.5arcsec'" if unit == "arcsec" else "'0.1mJy/beam'")
                                     ) from None


def qa_validate(deliverydir, outdir, checks, req_resolution, req_sensitivity, res_tolerance,
                sens_tolerance, pbrecovery, thumbnails, overwrite):
    _check_parameters(checks, req_resolution, req_sensitivity)
    outdir = outdir or "."
    v = validate_delivery(deliverydir, checks=checks, req_resolution=req_resolution,
                          req_sensitivity=req_sensitivity, res_tolerance=res_tolerance,
                          sens_tolerance=sens_tolerance, thumbnails=thumbnails,
                          recovery=pbrecovery)
    outputs = write_reports(v, outdir, overwrite=overwrite)
    result = v.as_dict()
    result["outputs"] = outputs
    s = result["summary"]
    post(f"{deliverydir}: {s['error']} error(s), {s['warning']} warning(s), "
         f"{s['info']} info; report {outputs['html']}", "INFO")
    for f in result["findings"]:
        if f["severity"] == "error":
            post(f"[{f['code']}] {f['file']}: {f['message']}", "WARN")
    return result
