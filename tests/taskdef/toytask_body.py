"""Body of the test-only qa_toytask: echoes its parameters."""
from casatasks import casalog


def qa_toytask(infile, outfile, mode, factor, niter, verbose, spw, chans, options, fail):
    casalog.origin("qa_toytask")
    casalog.post("toy body running", "INFO")
    if fail:
        raise RuntimeError(f"toy failure requested for {infile}")
    return {"status": "ok", "infile": infile, "outfile": outfile, "mode": mode,
            "factor": factor, "niter": niter, "verbose": verbose, "spw": spw,
            "chans": chans, "options": options}
