"""Body of the qa_validate task (interface: xml/qa_validate.xml)."""
from almaqa_casa.log import post
from almaqa_casa.taskdef import TaskParameterError
from almaqa_casa.validate import parse_checks, validate_delivery, write_reports
from almaqa_casa.validate.figures import parse_quantity, parse_range

_EXAMPLES = {"arcsec": "'0.5arcsec' or '0.3arcsec~0.6arcsec'", "Jy/beam": "'0.1mJy/beam'",
             "Hz": "'7.5GHz'"}


def _check_parameters(checks, **reqs) -> None:
    """Read the check names and the requirements once here, so a bad value is a
    parameter error (exit 2 on the command line) naming the parameter."""
    try:
        parse_checks(checks)
    except ValueError as exc:
        raise TaskParameterError(f"parameter 'checks': {exc}") from None
    units = {"req_resolution": "arcsec", "req_sensitivity": "Jy/beam", "req_bandwidth": "Hz",
             "req_frequency": "Hz"}
    for name, text in reqs.items():
        unit = units[name]
        try:
            (parse_range if name == "req_resolution" else parse_quantity)(text, unit)
        except ValueError as exc:
            raise TaskParameterError(f"parameter '{name}': {exc}; e.g. {_EXAMPLES[unit]}") from None


def qa_validate(deliverydir, outdir, checks, req_resolution, req_sensitivity, res_tolerance,
                sens_tolerance, pbrecovery, thumbnails, overwrite, req_bandwidth="",
                req_frequency=""):
    _check_parameters(checks, req_resolution=req_resolution, req_sensitivity=req_sensitivity,
                      req_bandwidth=req_bandwidth, req_frequency=req_frequency)
    outdir = outdir or "."
    v = validate_delivery(deliverydir, checks=checks, req_resolution=req_resolution,
                          req_sensitivity=req_sensitivity, res_tolerance=res_tolerance,
                          sens_tolerance=sens_tolerance, thumbnails=thumbnails,
                          recovery=pbrecovery, req_bandwidth=req_bandwidth,
                          req_frequency=req_frequency)
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
