"""What a delivery of a given shape looks like: era facts, file names, the
EB -> session -> caltables map (pure; no CASA, no I/O).

One place decides every name and era rule the generator and the text-only
skeletons write, so both always agree.  Facts (reference realworld.md,
restore.md §1, §2, §4; jturne19/legus-alma's Cycle 4 listing):

* Cycle 1-4: ``README`` at the member top; ``flux.csv``, ``antennapos.csv``,
  ``<mous>.cont.dat`` and per-EB ``<uid>_flagtemplate.txt`` /
  ``<uid>_flagtargetstemplate.txt`` loose in ``calibration/``; scripts without
  a ``member.<mous>.`` prefix, the PPR named ``PPR_<uid>.xml`` (a UID that is
  not the MOUS's); no manifest; ``hif_restoredata`` (Cycle 1-3) or
  ``hifa_restoredata`` (Cycle 4); Cycle 4 products with a bare ``uid___``
  prefix, ``.pb.fits`` not gzipped, no masks, multi-term continuum
  (``tt0``/``tt1``/``pb.tt0``/``alpha``/``alpha.error``).  Cycle 1-3 imaging
  was manual: free-form names (``<field>.<spw>.<type>.image.pbcor.fits`` with
  ``.flux.fits.gz``, CASA ``.mask`` folders).
* Cycle 5 on: ``member.<mous>.<recipe>.*`` names, ``auxproducts.tgz``,
  ``pipeline_manifest.xml``.  Cycle 7: ``casa_commands.log`` in ``script/``
  and no ``log/``.  Cycle 10+: tarballs may be named ``<mous>.s<k>.caltables.tgz``.
* Semipass: ``qa/``, a small ``script/`` and ``raw/`` only.
"""
from __future__ import annotations

import dataclasses
import re

from . import spec as S

__all__ = [
    "ERA_VERSIONS",
    "describe",
    "eb_sessions",
    "era_label",
    "file_names",
    "session_tarballs",
]

#: CASA and pipeline versions typical of each cycle (public release lists;
#: approximate for the early cycles).  Cycle 12 keeps the generator's values.
ERA_VERSIONS = {
    1: ("4.2.2", "r31424 (Pipeline-Cycle2-R1-B)"),
    2: ("4.2.2", "r31424 (Pipeline-Cycle2-R1-B)"),
    3: ("4.5.3", "r36252 (Pipeline-Cycle3-R4-B)"),
    4: ("4.7.0-1", "r38377 (Pipeline-Cycle4-R2-B)"),
    5: ("5.1.1-5", "40896 (Pipeline-CASA51-P2-B)"),
    6: ("5.4.0-70", "42254M (Pipeline-CASA54-P1-B)"),
    7: ("5.6.1-8", "42866M (Pipeline-CASA56-P1-B)"),
    8: ("6.2.1-7", "2021.2.0.128"),
    9: ("6.4.1-12", "2022.2.0.64"),
    10: ("6.5.4-9", "2023.1.0.124"),
    11: ("6.6.1-17", "2024.1.0.8"),
    12: ("6.6.6.5", "2025.1.0.40"),
}
_NUM = re.compile(r"session_(\d+)\Z")
#: File names of the post scripts (restore.md §2.3; ``member.<mous>.`` prefixed from Cycle 5).
POST_SCRIPT_FILES = {"PolCal": "scriptForPolCalibration.py", "FluxCal": "scriptForFluxCalibration.py",
                     "ImagingPrep": "scriptForImagingPrep.py"}


def era_label(spec: S.SynthSpec) -> str:
    """Layout era: cycle1-3, cycle4, cycle5-6, cycle7, cycle8-9, cycle10+."""
    c = spec.cycle
    if c <= 3:
        return "cycle1-3"
    if c == 4:
        return "cycle4"
    if c <= 6:
        return "cycle5-6"
    if c == 7:
        return "cycle7"
    return "cycle8-9" if c <= 9 else "cycle10+"


def eb_sessions(spec: S.SynthSpec) -> list[str]:
    """The session of each EB (``session_<k>``), in EB order."""
    return list(spec.sessions) if spec.sessions else ["session_1"] * spec.nebs


def ppr_sessions(spec: S.SynthSpec) -> list[str]:
    """The session the PPR's ``SESSION_<k>`` intent gives each EB."""
    return list(spec.ppr_sessions) if spec.ppr_sessions else eb_sessions(spec)


def session_order(spec: S.SynthSpec) -> list[str]:
    """Distinct sessions, by number."""
    return sorted(set(eb_sessions(spec)), key=lambda s: int(_NUM.match(s).group(1)))


def session_tarballs(spec: S.SynthSpec) -> dict[str, str]:
    """Session name -> its caltables tarball (the tarball names are final)."""
    m = spec.mous
    out = {}
    for s in session_order(spec):
        k = _NUM.match(s).group(1)
        out[s] = f"{m}.s{k}.caltables.tgz" if spec.caltables_naming == "s" else f"{m}.{s}.caltables.tgz"
    return out


def has_manifest(spec: S.SynthSpec) -> bool:
    if spec.calibration != "pipeline":
        return False
    return spec.cycle >= 5 if spec.manifest is None else bool(spec.manifest)


def restore_task(spec: S.SynthSpec) -> str:
    if spec.total_power:
        return "hsd_restoredata"
    return "hif_restoredata" if spec.cycle <= 3 else "hifa_restoredata"


def ocorr_mode(spec: S.SynthSpec) -> str:
    return "ao" if spec.total_power else "ca"


def recipe(spec: S.SynthSpec) -> str:
    """The PPR procedure: calibration only when imaging was manual."""
    if spec.total_power:
        return "hsd_calimage"
    if spec.cycle <= 3 or "ImagingPrep" in spec.post_scripts:
        return "hifa_cal"
    return "hifa_calimage"


def pipeline_imaged(spec: S.SynthSpec) -> bool:
    """Products made by the pipeline (else by a scriptForImaging.py)."""
    return spec.calibration == "pipeline" and recipe(spec).endswith("calimage")


def product_style(spec: S.SynthSpec) -> str:
    """'member' (Cycle 5 on), 'cycle4' (bare uid prefix, multi-term) or
    'freeform' (manual imaging of Cycle 1-3)."""
    if spec.cycle <= 3:
        return "freeform"
    return "cycle4" if spec.cycle == 4 else "member"


def versions(spec: S.SynthSpec) -> tuple[str, str]:
    """(CASA version, pipeline version) the delivery says made it."""
    return ERA_VERSIONS[spec.cycle]


def subfolders(spec: S.SynthSpec) -> tuple[str, ...]:
    if spec.calibration == "semipass":
        return ("script", "qa", "raw")
    if spec.cycle == 7 and spec.calibration == "pipeline":
        return ("script", "calibration", "product", "qa", "raw")
    return ("script", "calibration", "product", "qa", "log", "raw")


def aux_loose(spec: S.SynthSpec) -> bool:
    """flux.csv, antennapos.csv, cont.dat loose in calibration/ (Cycle 1-4)."""
    return spec.calibration == "pipeline" and spec.cycle <= 4


def ppr_uid(spec: S.SynthSpec) -> str:
    """The UID in a Cycle 1-4 ``PPR_<uid>.xml`` name (not the MOUS's own)."""
    sg, g, m = spec.ous_uids
    head, last = m.rsplit("_X", 1)
    return f"{head}_X{int(last, 16) + 1:x}"


def file_names(spec: S.SynthSpec) -> dict[str, str]:
    """Every fixed file name of the member (basename; folder in the key's
    ``*_dir`` companion when it is not the obvious one)."""
    m = spec.mous
    old = spec.cycle <= 4
    rec = recipe(spec)
    pre = "" if old else f"member.{m}."
    tok = "" if old else f"{rec}."
    out = {
        "readme": "README" if old else f"member.{m}.README.txt",
        "ppr": f"PPR_{ppr_uid(spec)}.xml" if old else f"{pre}{tok}pprequest.xml",
        "restore": f"{pre}{tok}casa_piperestorescript.py",
        "pipescript": f"{pre}{tok}casa_pipescript.py",
        "manifest": f"{pre}{tok}pipeline_manifest.xml",
        "scriptforpi": f"{pre}scriptForPI.py",
        "imaging": f"{pre}scriptForImaging.py",
        "auxproducts": f"{m}.{rec}.auxproducts.tgz",
        "cont_dat": f"{m}.cont.dat" if old else "cont.dat",
        "weblog": f"{m}.weblog.tgz" if old else f"member.{m}.{rec}.weblog.tgz",
        "cmdlog": f"{m}.casa_commands.log" if old else f"member.{m}.{rec}.casa_commands.log",
        "cmdlog_dir": "script" if spec.cycle == 7 else "log",
        "qa2": None if (old and spec.calibration == "pipeline") else f"member.{m}.qa2_report.html",
    }
    for p in S.POST_SCRIPTS:
        out[f"scriptFor{p}"] = f"{pre}{POST_SCRIPT_FILES[p]}"
    out["caltables"] = session_tarballs(spec).get("session_1", next(iter(session_tarballs(spec).values())))
    return out


def flagtemplate_names(uid: str) -> tuple[str, str]:
    return f"{uid}_flagtemplate.txt", f"{uid}_flagtargetstemplate.txt"


def describe(spec: S.SynthSpec) -> dict:
    """``truth['shape']``: the shape and what a reader of the delivery must
    find in it (the EB -> session -> tarball map and where it is written)."""
    ebs = spec.eb_uids
    sess = eb_sessions(spec)
    tarballs = session_tarballs(spec) if spec.calibration == "pipeline" else {}
    manifest = has_manifest(spec)
    sources = []
    if spec.calibration == "pipeline":
        sources = (["manifest"] if manifest else []) + ["restore_script", "ppr"]
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name in S.SHAPE_FIELDS}
    return {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()},
        "kind": spec.calibration + ("_total_power" if spec.total_power else ""),
        "era": era_label(spec),
        "default": spec.is_default_shape,
        "casa_version": versions(spec)[0],
        "pipeline_version": versions(spec)[1] if spec.calibration == "pipeline" else None,
        "manifest_present": manifest,
        "restore_task": restore_task(spec) if spec.calibration == "pipeline" else None,
        "ocorr_mode": ocorr_mode(spec),
        "recipe": recipe(spec) if spec.calibration == "pipeline" else None,
        "pipeline_imaged": pipeline_imaged(spec),
        "eb_session": dict(zip(ebs, sess)) if spec.calibration == "pipeline" else {},
        "ppr_session": dict(zip(ebs, ppr_sessions(spec))) if spec.calibration == "pipeline" else {},
        "session_caltables": tarballs,
        "eb_caltables": {eb: tarballs[s] for eb, s in zip(ebs, sess)} if tarballs else {},
        "session_map_sources": sources,
        "session_map_source": sources[0] if sources else None,
        "ppr_disagrees": bool(spec.ppr_sessions) and list(spec.ppr_sessions) != sess,
        "subfolders": list(subfolders(spec)),
        "aux_loose": aux_loose(spec),
        "flagtemplates": spec.calibration == "pipeline" and spec.cycle <= 4,
        "product_style": product_style(spec),
        "post_scripts_order": [p for p in S.POST_SCRIPTS if p in spec.post_scripts],
        "files": file_names(spec),
        "semipass": spec.calibration == "semipass",
    }
