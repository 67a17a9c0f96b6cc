"""Text products of a pipeline-calibrated delivery (pure: no CASA, no I/O):
PPR, restore script, pipescript, manifest, scriptForPI stand-in, post
scripts, flag templates, flux.csv, antennapos.csv, cont.dat.

Every writer follows the delivery's shape (:mod:`.shape`): sessions, era,
SACM pre-step, manifest or not.  The default shape gives the texts the
generator has always written."""
from __future__ import annotations

import numpy as np

from . import shape as SH
from . import spec as S

CASA_VERSION_PIPELINE = SH.ERA_VERSIONS[12][0]
PIPELINE_VERSION = SH.ERA_VERSIONS[12][1]
RECIPE = "hifa_calimage"
RENORM_INPUTS = {"apply": "True", "threshold": "1.02", "excludechan": "{}", "correct_atm": "False",
                 "atm_auto_exclude": "True", "bwthreshspw": "{}", "spw": ""}
#: How almaqa restores a delivery (the stand-ins and READMEs say so).
RESTORE_COMMAND = "almaqa qa_restore --deliverydir <member folder>"
_SACM_IMPORT = "from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes\n"


def _url(uid: str) -> str:
    return "uid://" + uid[len("uid___"):].replace("_", "/")


def names(spec: S.SynthSpec) -> dict[str, str]:
    """File names of the member (see :func:`.shape.file_names`)."""
    return SH.file_names(spec)


def _ppr_commands(spec: S.SynthSpec) -> list[str]:
    rec = SH.recipe(spec)
    if rec == "hsd_calimage":
        return ["hsd_importdata", "hsd_flagdata", "h_tsyscal", "hsd_tsysflag", "hsd_skycal", "hsd_k2jycal",
                "hsd_applycal", "hsd_atmcor", "hsd_baseline", "hsd_blflag", "hsd_baseline", "hsd_blflag",
                "hsd_imaging", "hsd_exportdata"]
    if spec.cycle <= 3:
        return ["hifa_importdata", "hifa_flagdata", "hifa_fluxcalflag", "hif_rawflagchans", "hif_refant",
                "hifa_tsyscal", "hifa_tsysflag", "hifa_wvrgcalflag", "hif_lowgainflag", "hif_setjy",
                "hif_bandpass", "hif_bpflagchans", "hifa_gfluxscale", "hifa_timegaincal", "hif_applycal",
                "hifa_exportdata"]
    cmds = ["hifa_importdata", "hifa_flagdata", "hifa_fluxcalflag", "hif_rawflagchans",
            "hif_refant", "h_tsyscal", "hifa_tsysflag", "hifa_antpos", "hifa_wvrgcalflag",
            "hif_lowgainflag", "hif_setmodels", "hifa_bandpassflag", "hifa_bandpass",
            "hifa_spwphaseup", "hifa_gfluxscaleflag", "hifa_gfluxscale", "hifa_timegaincal",
            "hifa_renorm", "hif_applycal", "hifa_imageprecheck", "hif_makeimlist", "hif_makeimages",
            "hif_makeimlist", "hif_makeimages", "hifa_exportdata"]
    if spec.polarization:
        cmds.insert(cmds.index("hifa_renorm"), "hifa_polcal")
    if spec.cycle <= 9:
        cmds.remove("hifa_renorm")
    if rec == "hifa_cal":
        cmds = [c for c in cmds if c not in ("hifa_imageprecheck", "hif_makeimlist", "hif_makeimages")]
    return cmds


def _session_intents(spec: S.SynthSpec) -> list[tuple[str, str]]:
    """(``SESSION_<k>``, EB URLs joined by ``' | '``) as the PPR writes them."""
    by: dict[str, list[str]] = {}
    for eb, sess in zip(spec.eb_uids, SH.ppr_sessions(spec)):
        by.setdefault(sess, []).append(_url(eb))
    order = sorted(by, key=lambda s: int(s.split("_")[1]))
    return [(s.upper(), " | ".join(by[s])) for s in order]


def ppr_xml(spec: S.SynthSpec) -> str:
    """The pipeline processing request, in the archive's element layout:
    ``ProcessingIntents`` (PROCESS, ``SESSION_<k>`` with ``' | '``-joined EB
    URLs, the observing mode) inside ``ProcessingRequest``."""
    sg, g, m = spec.ous_uids
    proc = "".join(f"""
                <ProcessingCommand>
                    <Command>{c}</Command>
                    <ParameterSet/>
                </ProcessingCommand>""" for c in _ppr_commands(spec))
    mode = "SINGLE_DISH_STANDARD_OBSERVING_MODE" if spec.total_power else "INTERFEROMETRY_STANDARD_OBSERVING_MODE"
    intents = [("PROCESS", "true")] + _session_intents(spec) + [(mode, "Undefined")]
    itext = "".join(f"""
                <Intents>
                    <Keyword>{k}</Keyword>
                    <Value>{v}</Value>
                </Intents>""" for k, v in intents)
    asdms = "".join(f"""
                        <AsdmIdentifier>
                            <AsdmRef>
                                <ExecBlockId>{_url(eb)}</ExecBlockId>
                            </AsdmRef>
                            <AsdmDiskName>{eb}</AsdmDiskName>
                        </AsdmIdentifier>""" for eb in spec.eb_uids)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SciPipeRequest>
    <SciPipeRequestEntity entityId="{_url(m)[:-1]}f" entityTypeName="SciPipeRequest" datamodelVersion="0.1"/>
    <ProjectSummary>
        <ProposalCode>{spec.project}</ProposalCode>
        <Observatory>ALMA Joint Observatory</Observatory>
        <Telescope>ALMA</Telescope>
        <ProcessingSite>Undefined</ProcessingSite>
        <Operator>Anonymous</Operator>
        <Mode>SCIENCE</Mode>
        <Version>Undefined</Version>
        <CreationTime>{S.CYCLE_YEAR[spec.cycle] + 1}-01-15T12:00:00.000</CreationTime>
    </ProjectSummary>
    <ProjectStructure>
        <ProjectCode>{spec.project}</ProjectCode>
        <OUSStatusRef entityId="{_url(m)}" partId="" entityTypeName="OUSStatus" documentVersion="1"/>
        <ProjectStatusRef entityId="{_url(sg)[:-1]}1" partId="" entityTypeName="ProjectStatus" documentVersion="1"/>
    </ProjectStructure>
    <ProcessingRequests>
        <RootDirectory>/lustre/alma/pipeline/{m}</RootDirectory>
        <ProcessingRequest>
            <ProcessingIntents>{itext}
            </ProcessingIntents>
            <ProcessingProcedure>
                <ProcedureTitle>{SH.recipe(spec)}</ProcedureTitle>{proc}
            </ProcessingProcedure>
            <DataSet>
                <SchedBlockSet>
                    <SchedBlockIdentifier>
                        <RelativePath>{spec.project}/science_goal.{sg}/group.{g}/member.{m}</RelativePath>
                        <SchedBlockRef entityId="{_url(m)[:-1]}0" partId="" entityTypeName="SchedBlock" documentVersion="1"/>
                        <SBTitle>Synth_a_03_TM1</SBTitle>{asdms}
                    </SchedBlockIdentifier>
                </SchedBlockSet>
            </DataSet>
        </ProcessingRequest>
    </ProcessingRequests>
</SciPipeRequest>
"""


def restore_script(spec: S.SynthSpec) -> str:
    """``casa_piperestorescript.py`` as the observatory wrote it for the era:
    plain, SACM/JAO pre-step, ``hif_``/``hifa_``/``hsd_restoredata``."""
    vis = list(spec.eb_uids)
    sess = SH.eb_sessions(spec)
    task, mode = SH.restore_task(spec), SH.ocorr_mode(spec)
    head = "" if spec.cycle <= 4 else _SACM_IMPORT
    body = ""
    if spec.sacm:
        raw = ["../rawdata/" + v for v in vis]
        body += (f"    hifa_importdata (dbservice=False, bdfflags=False, vis={raw!r}, session={sess!r}, "
                 f"ocorr_mode='{mode}')\n")
        body += "".join(f"    fixsyscaltimes(vis = '{v}.ms')# SACM/JAO - Fixes\n" for v in reversed(vis))
        body += ("    h_save() # SACM/JAO - Finish weblog after fixes\n"
                 "    h_init() # SACM/JAO - Restart weblog after fixes\n")
    body += f"    {task} (vis={vis!r}, session={sess!r}, ocorr_mode='{mode}')\n"
    return f"""{head}__rethrow_casa_exceptions = True
h_init()
try:
{body}finally:
    h_save()
"""


def pipescript(spec: S.SynthSpec) -> str:
    vis = [eb for eb in spec.eb_uids]
    sess = SH.eb_sessions(spec)
    n = names(spec)
    rec = SH.recipe(spec)
    steps = [c for c in _ppr_commands(spec) if c not in ("hifa_importdata", "hsd_importdata")]
    if spec.sacm:
        fix = "".join(f"    fixsyscaltimes(vis = '{v}.ms')# SACM/JAO - Fixes\n" for v in reversed(vis))
        fix += ("    h_save() # SACM/JAO - Finish weblog after fixes\n"
                "    h_init() # SACM/JAO - Restart weblog after fixes\n"
                f"    hifa_importdata(vis={vis!r}, session={sess!r})\n")
    else:
        fix = f"    fixsyscaltimes(vis = {[v + '.ms' for v in vis]!r})\n    h_save()\n"
    special = {"hifa_renorm": "hifa_renorm(createcaltable=True, atm_auto_exclude=True)",
               "hifa_polcal": "hifa_polcal()"}
    calsteps = ""
    for c in steps:
        if c in ("hif_makeimlist", "hif_makeimages"):
            continue
        if c in ("hifa_exportdata", "hsd_exportdata") and SH.pipeline_imaged(spec) and not spec.total_power:
            for sel in ("intent='PHASE,BANDPASS,CHECK'", "specmode='mfs'", "specmode='cont'", "specmode='cube'"):
                calsteps += f'    hif_makeimlist({sel})\n    hif_makeimages(pipelinemode="automatic")\n'
        calsteps += "    " + special.get(c, f'{c}(pipelinemode="automatic")') + "\n"
    imp = "hsd_importdata" if spec.total_power else "hifa_importdata"
    head = _SACM_IMPORT
    if spec.cycle <= 4:  # before the SACM/JAO fixes
        head, fix = "", ""
    return f"""{head}__rethrow_casa_exceptions = True
context = h_init()
context.set_state('ProjectSummary', 'proposal_code', '{spec.project}')
context.set_state('ProjectSummary', 'piname', 'unknown')
context.set_state('ProjectSummary', 'proposal_title', 'unknown')
context.set_state('ProjectStructure', 'ous_part_id', 'X1')
context.set_state('ProjectStructure', 'ous_title', 'Undefined')
context.set_state('ProjectStructure', 'ppr_file', '/lustre/alma/pipeline/{spec.mous}/{n["ppr"]}')
context.set_state('ProjectStructure', 'ps_entity_id', '{_url(spec.ous_uids[0])}')
context.set_state('ProjectStructure', 'recipe_name', '{rec}')
context.set_state('ProjectStructure', 'ous_entity_id', '{_url(spec.mous)}')
context.set_state('ProjectStructure', 'ousstatus_entity_id', '{_url(spec.mous)}')
try:
    {imp}(vis={vis!r}, session={sess!r})
{fix}{calsteps}finally:
    h_save()
"""


def manifest_xml(spec: S.SynthSpec, renorm_ebs: list[str]) -> str:
    """``pipeline_manifest.xml``: per session its caltables tarball and its
    EBs (final flags, apply commands, ``hifa_renorm`` where applied)."""
    import xml.etree.ElementTree as ET
    from xml.dom import minidom

    n = names(spec)
    m = spec.mous
    casa, pl = SH.versions(spec)
    root = ET.Element("piperesults", name=m)
    ous = ET.SubElement(root, "ous", name=m)
    ET.SubElement(ous, "casaversion", name=casa)
    ET.SubElement(ous, "pipeline_version", name=pl)
    env = ET.SubElement(ous, "execution_environment")
    ET.SubElement(env, "node", num_mpi_servers="0")
    ET.SubElement(ous, "procedure_name", name=SH.recipe(spec))
    ET.SubElement(ous, "piperequest", name=n["ppr"], level="member", ous=m, package="N/A",
                  datatype="pprequest", format="xml")
    by_session = dict(zip(spec.eb_uids, SH.eb_sessions(spec)))
    for sname, tarball in SH.session_tarballs(spec).items():
        sess = ET.SubElement(ous, "session", name=sname)
        ET.SubElement(sess, "caltables", name=tarball, ous_name=m, level="member",
                      session=sname, package="N/A", datatype="caltables", format="tgz")
        for eb in spec.eb_uids:
            if by_session[eb] != sname:
                continue
            a = ET.SubElement(sess, "asdm", name=eb, datatype="asdm", format="sdm")
            ET.SubElement(a, "finalflags", name=f"{eb}.ms.flagversions.tgz", asdm=eb,
                          datatype="ms.flagversions", format="tgz")
            ET.SubElement(a, "applycmds", name=f"{eb}.ms.calapply.txt")
            if eb in renorm_ebs:
                ET.SubElement(a, "hifa_renorm", dict(vis=eb + ".ms", **RENORM_INPUTS))
    ET.SubElement(ous, "pipescript", name=n["pipescript"], level="member", ous=m, package="N/A",
                  datatype="casa_pipescript", format="py")
    ET.SubElement(ous, "restorescript", name=n["restore"], level="member", ous=m, package="N/A",
                  datatype="casa_piperestorescript", format="py")
    ET.SubElement(ous, "weblog", name=n["weblog"], level="member", ous=m, package="N/A",
                  datatype="weblog", format="tgz")
    ET.SubElement(ous, "casa_cmdlog", name=n["cmdlog"], level="member", ous=m, package="N/A",
                  datatype="casa_commands", format="log")
    ET.SubElement(ous, "aux_products_file", name=n["auxproducts"], level="member", ous=m,
                  package="N/A", datatype="auxproducts", format="tgz")
    return minidom.parseString(ET.tostring(root, "utf-8")).toprettyxml(indent="  ")


def scriptforpi_standin(spec: S.SynthSpec) -> str:
    return f"""# ALMA Data Reduction Script: scriptForPI.py (stand-in)
# $Id: scriptForPI.py,v 2.5 synthetic $
#
# This synthetic delivery of {spec.project} ({spec.mous}) was generated by
# almaqa_casa.synth.  The observatory's scriptForPI.py is not redistributed;
# restore the calibrated data with:
#
#     {RESTORE_COMMAND}          (shell)
#     qa_restore(deliverydir='<member folder>')                        (CASA)
#
import sys
try:
    casalog.post('*** ALMA scriptForPI ***', 'INFO', 'scriptForPI')
except NameError:
    pass
print('This is a stand-in for scriptForPI.py; use qa_restore from almaqa_casa.')
"""


def imaging_prep_script(spec: S.SynthSpec) -> str:
    """``scriptForImagingPrep.py`` in the observatory's style for pipeline
    data (scriptForPI.py runs it in ``calibrated/`` after the restore)."""
    vis = [f"{eb}.ms.split.cal" for eb in spec.eb_uids]
    return f"""## Image preparation
doconcat=True

#List of files to concatenate:
vislist={vis!r}

#Concatenate EB:
if doconcat:
  concat(vis=vislist, concatvis='calibrated.ms')
  listobs(vis='calibrated.ms',listfile='calibrated.ms.listobs')
"""


def post_script_standin(spec: S.SynthSpec, which: str) -> str:
    """Text-only FluxCal / PolCal scripts (skeletons; never run)."""
    vis = [f"{eb}.ms.split.cal" for eb in spec.eb_uids]
    if which == "FluxCal":
        lines = [f"setjy(vis='{v}', field='{S.BANDPASS.name}', standard='manual', fluxdensity=[{S.BANDPASS.flux_jy}, 0, 0, 0])"
                 for v in vis]
    elif which == "PolCal":
        lines = [f"polcal(vis='{v}', caltable='{v}.Df0', field='{S.POLCAL.name}', poltype='Df', solint='inf')"
                 for v in vis]
    else:
        return imaging_prep_script(spec)
    return (f"# ALMA Data Reduction Script: {SH.POST_SCRIPT_FILES[which]} (synthetic skeleton)\n"
            f"# Run by scriptForPI.py in 'calibrated/' after the restore.\n\n"
            + "\n".join(lines) + "\n")


def imaging_script_placeholder(spec: S.SynthSpec) -> str:
    """Cycle 4 pipeline-imaged deliveries carry a comment-only scriptForImaging.py."""
    return ("# This data set was imaged by the ALMA Science Pipeline.\n"
            "# The imaging products are in the product directory; see the pipeline weblog\n"
            "# for the imaging parameters.  No manual imaging script is provided.\n")


def flagtemplates(uid: str, info: dict | None) -> tuple[str, str]:
    """(``<uid>_flagtemplate.txt``, ``<uid>_flagtargetstemplate.txt``)."""
    head = ("# Flag template: manual flags added by the pipeline operator.\n"
            "# One flagdata command per line (mode='manual' ... reason='...').\n")
    flag = head
    if info is not None and info.get("bad"):
        flag += (f"mode='manual' antenna='{info['bad']['antenna']}' scan='{info['bad']['scan']}' "
                 f"reason='QA2:bad_antenna'\n")
    targets = head.replace("Flag template", "Flag template for the science targets")
    return flag, targets


def flux_csv(spec: S.SynthSpec, field_ids: dict[str, dict[str, int]]) -> str:
    old = spec.cycle <= 4  # the older header has no uvmin, uvmax (restore.md §4.5)
    rows = ["ms,field,spw,I,Q,U,V,spix,comment" if old else "ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment"]
    for eb in spec.eb_uids:
        for src in spec.sources:
            if src.role not in ("bp", "ph", "pol"):
                continue
            intents = ",".join(src.intents).replace("FLUX", "AMPLITUDE")
            for k, sw in enumerate(S.SPWS):
                i, q, u, v = (float(x[0]) for x in S.stokes_spectrum(
                    src, np.array([sw.center_hz]), k))
                rows.append(f"{eb}.ms,{field_ids[eb][src.name]},{k},{i!r},{q!r},{u!r},{v!r},"
                            f"{src.spix!r},{'' if old else '0.0,0.0,'}\"# field={src.name} intents={intents} "
                            f"origin=DB age=3.0 queried_at=2025-10-09 12:00:00 UTC\"")
    return "\n".join(rows) + "\n"


def antennapos_csv(spec: S.SynthSpec, antennas: list[str]) -> str:
    rows = ["ms,antenna,xoffset,yoffset,zoffset,comment"]
    for eb in spec.eb_uids:
        for a in antennas[:2]:
            rows.append(f"{eb}.ms,{a},0.00000e+00,0.00000e+00,0.00000e+00,\"# no correction\"")
    return "\n".join(rows) + "\n"


def cont_ranges(spec: S.SynthSpec) -> dict[int, list[tuple]]:
    """Line-free ranges (GHz, TOPO channel edges) per spw of the target."""
    out = {}
    for k, sw in enumerate(S.SPWS):
        f = sw.freqs
        lo_edge, hi_edge = f - sw.width_hz / 2, f + sw.width_hz / 2
        n = sw.nchan
        e = max(1, n // 32)  # drop the edge channels
        chans = [(e, n - 1 - e)]
        if k == S.LINE["spw"]:
            a, b = S.line_channels(k)
            chans = [(e, a - 1), (b + 1, n - 1 - e)]
        out[k] = [(lo_edge[a] / 1e9, hi_edge[b] / 1e9, a, b) for a, b in chans]
    return out


def cont_dat(spec: S.SynthSpec) -> str:
    lines = [f"Field: {spec.target.name}", ""]
    for k, rngs in cont_ranges(spec).items():
        lines.append(f"SpectralWindow: {k} {S.SPWS[k].name}")
        for lo, hi, _a, _b in rngs:
            lines.append("%.10f~%.10fGHz TOPO" % (lo, hi))
        lines.append("")
    return "\n".join(lines)


def commands_log(spec: S.SynthSpec) -> str:
    """``casa_commands.log``: the CASA calls of the calibration (abridged)."""
    lines = ["# casa_commands.log (synthetic): calibration as almaqa_casa.synth ran it"]
    bdf = "False" if spec.sacm else "True"
    for eb in spec.eb_uids:
        lines += [f"importasdm(asdm='{eb}', vis='{eb}.ms', ocorr_mode='{SH.ocorr_mode(spec)}', lazy=True, bdfflags={bdf})"]
        if spec.sacm:
            lines += [f"fixsyscaltimes(vis='{eb}.ms')"]
        lines += [
                  f"flagdata(vis='{eb}.ms', mode='manual', autocorr=True)",
                  f"bandpass(vis='{eb}.ms', field='{S.BANDPASS.name}', solint='inf', combine='scan', solnorm=True)",
                  f"gaincal(vis='{eb}.ms', solint='int', calmode='p')",
                  f"gaincal(vis='{eb}.ms', solint='inf', calmode='a')",
                  f"applycal(vis='{eb}.ms', ...)"]
    return "\n".join(lines) + "\n"
