"""The pipeline's caltable names, flag commands and ``calapply.txt`` lines of
one synthetic EB (pure: shared by the generator and the text-only skeletons)."""
from __future__ import annotations

from . import spec as S

#: Where the (fictitious) pipeline ran; calapply paths point here, as real
#: ones point at the pipeline's working folder.
PIPELINE_WORKDIR = "/lustre/alma/pipeline/{mous}/working/"

SPW_LIST = ",".join(str(i) for i in range(len(S.SPWS)))
SPW_TOKEN = "spw" + "_".join(str(i) for i in range(len(S.SPWS)))


def caltable_names(uid: str, spec: S.SynthSpec) -> dict[str, str]:
    """Pipeline-style caltable names of one EB (basename only)."""
    names = {
        "bcal": f"{uid}.ms.hifa_bandpass.s9_5.{SPW_TOKEN}.channel.solintinf.bcal.tbl",
        "gpcal_int": f"{uid}.ms.hifa_timegaincal.s14_1.{SPW_TOKEN}.solintint.gpcal.tbl",
        "gpcal_inf": f"{uid}.ms.hifa_timegaincal.s14_3.{SPW_TOKEN}.solintinf.gpcal.tbl",
        "gacal": f"{uid}.ms.hifa_timegaincal.s14_5.{SPW_TOKEN}.solintinf.gacal.tbl",
    }
    if spec.polarization:
        from .shape import eb_sessions
        names.update(polcal_table_names(eb_sessions(spec)[spec.eb_uids.index(uid)]))
    return names


#: hifa_polcal's tables applied to every intent (cross-hand delay, cross-hand phase, leakage).
POLCAL_KINDS = ("kcross", "xyf", "dterms")


def polcal_table_names(session: str) -> dict[str, str]:
    """hifa_polcal's tables of one session, named after its session MS
    (``<session>_polcalib.ms``): the same tables serve every EB of the session."""
    base = f"{session}_polcalib.ms.hifa_polcal"
    sol = "solintinf_5MHz"
    return {"kcross": f"{base}.s15_5.{SPW_TOKEN}.{sol}.kcross.tbl",
            "xyf": f"{base}.s15_6.{SPW_TOKEN}.{sol}.xyf.tbl",
            "dterms": f"{base}.s15_8.{SPW_TOKEN}.{sol}.dterms.tbl"}


def flag_commands(info: dict) -> list[str]:
    """The flags the pipeline "found": autocorrelations, the TDM edges and a
    bad antenna in one target scan."""
    tdm = [i for i, s in enumerate(S.SPWS) if s.kind == "TDM"][0]
    n = S.SPWS[tdm].nchan
    return [
        "mode='manual' autocorr=True reason='QA0:autocorr'",
        f"mode='manual' spw='{tdm}:0~3;{n - 4}~{n - 1}' reason='edgespw'",
        f"mode='manual' antenna='{info['bad']['antenna']}' scan='{info['bad']['scan']}' reason='hifa_flagdata:bad_antenna'",
    ]


def calapply_entries(uid: str, spec: S.SynthSpec, tables: dict[str, str], vis: str) -> list[dict]:
    """One applycal selection per calibrator group, as the pipeline exports."""
    bp, ph, chk, tgt = S.BANDPASS.name, S.PHASE.name, S.CHECK.name, spec.target.name
    nant = spec.nant
    ant = f"0~{nant - 1}"
    t = tables
    extra_t, extra_f, extra_i, extra_w = [], [], [], []
    if all(k in t for k in POLCAL_KINDS):   # hifa_polcal registers them for every intent
        extra_t = [t[k] for k in POLCAL_KINDS]
        extra_f, extra_i, extra_w = [""] * 3, ["nearest"] * 3, [False] * 3
    e = []

    def add(field, intent, gt, gf, interp, calwt):
        e.append({"vis": vis, "field": field, "intent": intent, "spw": SPW_LIST, "antenna": ant,
                  "gaintable": gt + extra_t, "gainfield": gf + extra_f,
                  "spwmap": [[] for _ in gt + extra_t], "interp": interp + extra_i,
                  "calwt": calwt + extra_w})

    add(bp, "AMPLITUDE,BANDPASS", [t["bcal"], t["gpcal_int"], t["gacal"]], ["", bp, bp],
        ["linear,linear", "linear", "linear"], [False, False, True])
    add(ph, "PHASE", [t["bcal"], t["gpcal_int"], t["gacal"]], ["", ph, ph],
        ["linear,linear", "linear", "linear"], [False, False, True])
    if spec.polarization:
        add(S.POLCAL.name, "POLARIZATION", [t["bcal"], t["gpcal_int"], t["gacal"]],
            ["", S.POLCAL.name, ph], ["linear,linear", "linear", "linear"], [False, False, True])
    add(f"{chk},{tgt}", "CHECK,TARGET", [t["bcal"], t["gpcal_inf"], t["gacal"]], ["", ph, ph],
        ["linear,linear", "linear", "linear"], [False, False, True])
    return e


def format_calapply(vis_name: str, entries: list[dict]) -> str:
    """The exact text of ``<vis>.calapply.txt``."""
    lines = [f"# Apply file for {vis_name}"]
    for d in entries:
        lines.append(
            "applycal(vis=%r, field=%r, intent=%r, spw=%r, antenna=%r, gaintable=%r, "
            "gainfield=%r, spwmap=%r, interp=%r, calwt=%r)" % (
                d["vis"], d["field"], d["intent"], d["spw"], d["antenna"], d["gaintable"],
                d["gainfield"], d["spwmap"], d["interp"], d["calwt"]))
    return "\n".join(lines) + "\n"


PL_TO_CASA = {"AMPLITUDE": "CALIBRATE_FLUX#ON_SOURCE", "BANDPASS": "CALIBRATE_BANDPASS#ON_SOURCE",
               "PHASE": "CALIBRATE_PHASE#ON_SOURCE", "CHECK": "OBSERVE_CHECK_SOURCE#ON_SOURCE",
               "TARGET": "OBSERVE_TARGET#ON_SOURCE",
               "POLARIZATION": "CALIBRATE_POLARIZATION#ON_SOURCE"}
