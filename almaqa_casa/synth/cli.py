"""``almaqa synth``: build a synthetic ALMA delivery from the shell."""
from __future__ import annotations

import argparse
import json
import sys
import time


def build_parser(prog: str = "almaqa synth") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Build a small synthetic ALMA delivery (simulated with CASA) "
        "with its truth beside it.")
    p.add_argument("--out", required=True, help="output folder (created; must not hold the project yet)")
    p.add_argument("--calibration", choices=("pipeline", "manual"), default="pipeline",
                   help="pipeline-calibrated (calapply/caltables) or manual (scriptForCalibration.py)")
    p.add_argument("--polarization", action="store_true", help="full-polarization variant")
    p.add_argument("--nebs", type=int, default=2, help="number of execution blocks (default 2)")
    p.add_argument("--selfcal", action="store_true", help="add self-calibrated (.selfcal.) products")
    p.add_argument("--seed", type=int, default=12345, help="random seed (same seed, same delivery)")
    p.add_argument("--tars", action="store_true", help="also write the archive tar files")
    p.add_argument("--casa-version-pin", default="",
                   help="manual variant: CASA version the calibration scripts demand")
    p.add_argument("--nant", type=int, default=8,
                   help="number of 12-m antennas, 4-43 (default 8; more for benchmark-size data)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from . import SynthError, generate

    t = time.time()
    try:
        r = generate(args.out, calibration=args.calibration, polarization=args.polarization,
                     nebs=args.nebs, selfcal=args.selfcal, seed=args.seed, tars=args.tars,
                     casa_version_pin=args.casa_version_pin, nant=args.nant)
    except (SynthError, FileExistsError, ValueError) as exc:
        print(f"almaqa synth: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: r[k] for k in ("project_dir", "member_dir", "truth_path", "tars")}, indent=1))
    else:
        print(f"synthetic {r['variant']} delivery built in {time.time() - t:.0f} s")
        print(f"  member folder: {r['member_dir']}")
        print(f"  truth:         {r['truth_path']}")
        for tar in r["tars"]:
            print(f"  archive tar:   {tar}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
