"""Is CASA's ``atmosphere`` tool safe to run in several threads?  (It is not.)

The renormalization once evaluated one spw per thread, each with its own
tool.  This script evaluates two spws' opacity spectra (the renormalization's
own ``opacity_spectrum``) first one after the other, as reference, then
``--rounds`` times in two threads side by side, and counts the spectra that
differ from the serial ones; a serial control loop must find none.  On the
idle 2-core development machine (``--rounds 200``): 12 of 400 threaded spectra
were wrong (by up to 0.18 in zenith opacity), 0 of 400 serial ones.  (The
threads must really run at once: on a busy machine the race is rarer.)  The renormalization therefore
evaluates the tool in one thread.  A crash (the tool's memory corrupted) is
possible too: run it in a throw-away process.  Usage::

    python benchmarks/atm_threads.py [--rounds 100] [--channels 256] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import almaqa_casa  # noqa: F401  (offline CASA)
from almaqa_casa.renorm.atm import opacity_spectrum


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    a = ap.parse_args(argv)
    ch = np.arange(a.channels) * 0.5e6
    spws = [(345.0e9 + ch, 560.0, 20.0, 270.0, 1.2), (230.0e9 + ch, 555.0, 25.0, 272.0, 0.8)]
    reference = [opacity_spectrum(*s)[0] for s in spws]

    def differs(got: list[np.ndarray]) -> list[float]:
        return [float(np.max(np.abs(g - r))) for g, r in zip(got, reference)
                if not np.array_equal(g, r)]

    serial_bad: list[float] = []
    threaded_bad: list[float] = []
    for _ in range(a.rounds):
        serial_bad += differs([opacity_spectrum(*s)[0] for s in spws])
        with ThreadPoolExecutor(len(spws)) as ex:
            threaded_bad += differs(list(ex.map(lambda s: opacity_spectrum(*s)[0], spws)))
    n = a.rounds * len(spws)
    report = {"parameters": {"rounds": a.rounds, "channels": a.channels, "spws": len(spws)},
              "serial": {"spectra": n, "different": len(serial_bad),
                         "max_abs_difference": max(serial_bad, default=0.0)},
              "threaded": {"spectra": n, "different": len(threaded_bad),
                           "max_abs_difference": max(threaded_bad, default=0.0)}}
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        for k in ("serial", "threaded"):
            r = report[k]
            print(f"{k}: {r['different']} of {r['spectra']} opacity spectra differ from the "
                  f"serial reference (max |difference| {r['max_abs_difference']:.3g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
