"""A qa_toytask body that runs a real CASA task inside, as qa_restore runs applycal."""
import os

from almaqa_casa.log import post


def qa_toytask(infile, outfile, mode, factor, niter, verbose, spw, chans, options, fail):
    import casatasks
    import casatools
    image = os.path.join(os.path.dirname(infile), "nested.im")
    ia = casatools.image()
    try:
        ia.fromshape(image, [8, 8, 1, 1], overwrite=True)
    finally:
        ia.close()
    post("before the nested task")
    header = casatasks.imhead(imagename=image, mode="list")   # sets casalog's origin to imhead
    post(f"after the nested task: shape {list(header['shape'])}")
    post("a warning of ours", "WARN")
    if fail:
        raise RuntimeError("failure after the nested task")
    return {"status": "ok", "shape": list(header["shape"])}
