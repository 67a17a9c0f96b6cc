"""``almaqa synth``: build a synthetic ALMA delivery from the shell."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .spec import CALIBRATIONS, CALTABLES_NAMING, POST_SCRIPTS


def _sessions(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def build_parser(prog: str = "almaqa synth") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Build a small synthetic ALMA delivery (simulated with CASA) "
        "with its truth beside it, or a text-only skeleton of a real delivery shape.")
    p.add_argument("--out", help="output folder (created; must not hold the project yet); required")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="pipeline",
                   help="pipeline-calibrated (calapply/caltables), manual (scriptForCalibration.py) "
                   "or semipass (raw data and QA only)")
    p.add_argument("--polarization", action="store_true", help="full-polarization variant")
    p.add_argument("--nebs", type=int, default=2, help="number of execution blocks (default 2)")
    p.add_argument("--selfcal", action="store_true", help="add self-calibrated (.selfcal.) products")
    p.add_argument("--seed", type=int, default=12345, help="random seed (same seed, same delivery)")
    p.add_argument("--tars", action="store_true", help="also write the archive tar files")
    p.add_argument("--casa-version-pin", default="",
                   help="manual variant: CASA version the calibration scripts demand")
    p.add_argument("--nant", type=int, default=8,
                   help="number of 12-m antennas, 4-43 (default 8; more for benchmark-size data)")
    shape = p.add_argument_group("delivery shape (real eras and layouts)")
    shape.add_argument("--cycle", type=int, default=12,
                       help="ALMA cycle whose layout, names and versions to follow, 1-12 (default 12)")
    shape.add_argument("--sessions", type=_sessions, default=(),
                       help="session of each EB, comma separated, e.g. session_2,session_4")
    shape.add_argument("--manifest", action=argparse.BooleanOptionalAction, default=None,
                       help="write pipeline_manifest.xml or not (default: as the era did, Cycle 5 on)")
    shape.add_argument("--caltables-naming", choices=CALTABLES_NAMING, default="session",
                       help="'s': Cycle 10+ <mous>.s<k>.caltables.tgz (default <mous>.session_<k>...)")
    shape.add_argument("--sacm", action="store_true",
                       help="Cycle 5-6 SACM/JAO restore pre-step (bdfflags=False, fixsyscaltimes)")
    shape.add_argument("--post-script", action="append", choices=POST_SCRIPTS, default=[],
                       dest="post_scripts", help="a script scriptForPI.py runs after the restore "
                       "(repeat; the CASA build runs ImagingPrep)")
    shape.add_argument("--total-power", action="store_true",
                       help="total power (hsd_restoredata, ocorr_mode='ao'): ON/OFF autocorrelations of "
                       "4 TP antennas, sky/Tsys/Jy-K tables, jyperk.csv, sd cubes; with --calibration manual "
                       "per-EB scriptForSDCalibration.py instead of tables and jyperk.csv")
    sk = p.add_argument_group("text-only skeletons (no CASA, no data)")
    sk.add_argument("--skeleton", metavar="PRESET",
                    help="write a text-only skeleton: a preset name, or 'custom' for the shape options")
    sk.add_argument("--list-skeletons", action="store_true", help="list the skeleton presets and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _shape_kwargs(args) -> dict:
    return dict(cycle=args.cycle, sessions=args.sessions, manifest=args.manifest,
                caltables_naming=args.caltables_naming, sacm=args.sacm,
                post_scripts=tuple(args.post_scripts), total_power=args.total_power)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.out and not args.list_skeletons:
        parser.error("the following arguments are required: --out")
    from ..errors import AlmaqaError

    if args.list_skeletons:
        from .skeleton import PRESETS
        for name, (desc, source, _fields) in PRESETS.items():
            print(f"{name:15s} {desc}\n{'':15s} (from {source})")
        return 0
    t = time.time()
    try:
        if args.skeleton:
            from .skeleton import make_skeleton
            from .spec import SynthSpec
            shape = args.skeleton
            if shape == "custom":
                shape = SynthSpec(calibration=args.calibration, polarization=args.polarization,
                                  nebs=args.nebs, selfcal=args.selfcal, seed=args.seed, nant=args.nant,
                                  **_shape_kwargs(args))
            r = make_skeleton(args.out, shape)
            r["tars"] = []
            r["variant"] = r["spec"].variant + " (text-only skeleton)"
        else:
            from . import generate
            r = generate(args.out, calibration=args.calibration, polarization=args.polarization,
                         nebs=args.nebs, selfcal=args.selfcal, seed=args.seed, tars=args.tars,
                         casa_version_pin=args.casa_version_pin, nant=args.nant, **_shape_kwargs(args))
    except (AlmaqaError, FileExistsError, ValueError) as exc:
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
