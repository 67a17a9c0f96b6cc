"""Text products of a pipeline-calibrated delivery: PPR, restore script,
pipescript, manifest, flux.csv, antennapos.csv, cont.dat, flagversions."""
from __future__ import annotations

import os
import shutil

import numpy as np

from . import spec as S
from ._casa import casatasks
from .archive import write_tgz

CASA_VERSION_PIPELINE = "6.6.6.5"
PIPELINE_VERSION = "2025.1.0.40"
RECIPE = "hifa_calimage"
RENORM_INPUTS = {"apply": "True", "threshold": "1.02", "excludechan": "{}", "correct_atm": "False",
                 "atm_auto_exclude": "True", "bwthreshspw": "{}", "spw": ""}


def _url(uid: str) -> str:
    return "uid://" + uid[len("uid___"):].replace("_", "/")


def names(spec: S.SynthSpec) -> dict[str, str]:
    m = spec.mous
    return {
        "ppr": f"member.{m}.{RECIPE}.pprequest.xml",
        "restore": f"member.{m}.{RECIPE}.casa_piperestorescript.py",
        "pipescript": f"member.{m}.{RECIPE}.casa_pipescript.py",
        "manifest": f"member.{m}.{RECIPE}.pipeline_manifest.xml",
        "scriptforpi": f"member.{m}.scriptForPI.py",
        "caltables": f"{m}.session_1.caltables.tgz",
        "auxproducts": f"{m}.{RECIPE}.auxproducts.tgz",
        "weblog": f"member.{m}.{RECIPE}.weblog.tgz",
        "cmdlog": f"member.{m}.{RECIPE}.casa_commands.log",
        "qa2": f"member.{m}.qa2_report.html",
    }


def ppr_xml(spec: S.SynthSpec) -> str:
    sg, g, m = spec.ous_uids
    cmds = ["hifa_importdata", "hifa_flagdata", "hifa_fluxcalflag", "hif_rawflagchans",
            "hif_refant", "h_tsyscal", "hifa_tsysflag", "hifa_antpos", "hifa_wvrgcalflag",
            "hif_lowgainflag", "hif_setmodels", "hifa_bandpassflag", "hifa_bandpass",
            "hifa_spwphaseup", "hifa_gfluxscaleflag", "hifa_gfluxscale", "hifa_timegaincal",
            "hifa_renorm", "hif_applycal", "hifa_imageprecheck", "hif_makeimlist", "hif_makeimages",
            "hif_makeimlist", "hif_makeimages", "hifa_exportdata"]
    if spec.polarization:
        cmds.insert(cmds.index("hifa_renorm"), "hifa_polcal")
    proc = "".join(f"""
                <ProcessingCommand>
                    <Command>{c}</Command>
                    <ParameterSet/>
                </ProcessingCommand>""" for c in cmds)
    sets = "".join(f"""
            <DataSet>
                <RelativePath>{spec.project}/science_goal.{sg}/group.{g}/member.{m}</RelativePath>
                <SchedBlockRef entityId="{_url(m)[:-1]}0" partId="" entityTypeName="SchedBlock" documentVersion="1"/>
                <SessionRef entityId="{_url(m)}" partId="session_1" entityTypeName="ProjectStatus" documentVersion="1"/>
                <AsdmIdentifier>
                    <AsdmRef>
                        <ExecBlockId>{_url(eb)}</ExecBlockId>
                    </AsdmRef>
                    <AsdmDiskName>{eb}</AsdmDiskName>
                </AsdmIdentifier>
            </DataSet>""" for eb in spec.eb_uids)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SciPipeRequest>
    <ProjectStructure>
        <ProjectCode>{spec.project}</ProjectCode>
        <OUSStatusRef entityId="{_url(m)}" partId="" entityTypeName="OUSStatus" documentVersion="1"/>
        <ProjectStatusRef entityId="{_url(sg)[:-1]}1" partId="" entityTypeName="ProjectStatus" documentVersion="1"/>
        <ProcessingIntents>
            <Intents>
                <Keyword>PROCESS</Keyword>
                <Value>true</Value>
            </Intents>
        </ProcessingIntents>
    </ProjectStructure>
    <ProcessingRequests>
        <RootDirectory>/lustre/alma/pipeline/{m}</RootDirectory>
        <ProcessingRequest>
            <ProcessingProcedure>
                <ProcedureTitle>{RECIPE}</ProcedureTitle>{proc}
            </ProcessingProcedure>{sets}
        </ProcessingRequest>
    </ProcessingRequests>
</SciPipeRequest>
"""


def restore_script(spec: S.SynthSpec) -> str:
    vis = [eb for eb in spec.eb_uids]
    sess = ["session_1"] * len(vis)
    return f"""from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes
__rethrow_casa_exceptions = True
h_init()
try:
    hifa_restoredata (vis={vis!r}, session={sess!r}, ocorr_mode='ca')
finally:
    h_save()
"""


def pipescript(spec: S.SynthSpec) -> str:
    vis = [eb for eb in spec.eb_uids]
    pol = "    hifa_polcal()\n" if spec.polarization else ""
    return f"""from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes
__rethrow_casa_exceptions = True
context = h_init()
context.set_state('ProjectSummary', 'proposal_code', '{spec.project}')
context.set_state('ProjectSummary', 'piname', 'unknown')
context.set_state('ProjectSummary', 'proposal_title', 'unknown')
context.set_state('ProjectStructure', 'ous_part_id', 'X1')
context.set_state('ProjectStructure', 'ous_title', 'Undefined')
context.set_state('ProjectStructure', 'ppr_file', '/lustre/alma/pipeline/{spec.mous}/{names(spec)["ppr"]}')
context.set_state('ProjectStructure', 'ps_entity_id', '{_url(spec.ous_uids[0])}')
context.set_state('ProjectStructure', 'recipe_name', '{RECIPE}')
context.set_state('ProjectStructure', 'ous_entity_id', '{_url(spec.mous)}')
context.set_state('ProjectStructure', 'ousstatus_entity_id', '{_url(spec.mous)}')
try:
    hifa_importdata(vis={vis!r}, session={['session_1'] * len(vis)!r})
    fixsyscaltimes(vis = {[v + '.ms' for v in vis]!r})
    h_save()
    hifa_flagdata(pipelinemode="automatic")
    hifa_fluxcalflag(pipelinemode="automatic")
    hif_rawflagchans(pipelinemode="automatic")
    hif_refant(pipelinemode="automatic")
    h_tsyscal(pipelinemode="automatic")
    hifa_tsysflag(pipelinemode="automatic")
    hifa_antpos(pipelinemode="automatic")
    hifa_wvrgcalflag(pipelinemode="automatic")
    hif_lowgainflag(pipelinemode="automatic")
    hif_setmodels(pipelinemode="automatic")
    hifa_bandpassflag(pipelinemode="automatic")
    hifa_spwphaseup(pipelinemode="automatic")
    hifa_gfluxscaleflag(pipelinemode="automatic")
    hifa_gfluxscale(pipelinemode="automatic")
    hifa_timegaincal(pipelinemode="automatic")
{pol}    hifa_renorm(createcaltable=True, atm_auto_exclude=True)
    hif_applycal(pipelinemode="automatic")
    hifa_imageprecheck(pipelinemode="automatic")
    hif_makeimlist(intent='PHASE,BANDPASS,CHECK')
    hif_makeimages(pipelinemode="automatic")
    hif_makeimlist(specmode='mfs')
    hif_makeimages(pipelinemode="automatic")
    hif_makeimlist(specmode='cont')
    hif_makeimages(pipelinemode="automatic")
    hif_makeimlist(specmode='cube')
    hif_makeimages(pipelinemode="automatic")
    hifa_exportdata(pipelinemode="automatic")
finally:
    h_save()
"""


def manifest_xml(spec: S.SynthSpec, renorm_ebs: list[str]) -> str:
    import xml.etree.ElementTree as ET
    from xml.dom import minidom

    n = names(spec)
    m = spec.mous
    root = ET.Element("piperesults", name=m)
    ous = ET.SubElement(root, "ous", name=m)
    ET.SubElement(ous, "casaversion", name=CASA_VERSION_PIPELINE)
    ET.SubElement(ous, "pipeline_version", name=PIPELINE_VERSION)
    env = ET.SubElement(ous, "execution_environment")
    ET.SubElement(env, "node", num_mpi_servers="0")
    ET.SubElement(ous, "procedure_name", name=RECIPE)
    ET.SubElement(ous, "piperequest", name=n["ppr"], level="member", ous=m, package="N/A",
                  datatype="pprequest", format="xml")
    sess = ET.SubElement(ous, "session", name="session_1")
    ET.SubElement(sess, "caltables", name=n["caltables"], ous_name=m, level="member",
                  session="session_1", package="N/A", datatype="caltables", format="tgz")
    for eb in spec.eb_uids:
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
#     almaqa restore <member folder>            (shell)
#     qa_restore(deliverydir='<member folder>')  (CASA)
#
import sys
try:
    casalog.post('*** ALMA scriptForPI ***', 'INFO', 'scriptForPI')
except NameError:
    pass
print('This is a stand-in for scriptForPI.py; use qa_restore from almaqa_casa.')
"""


def flux_csv(spec: S.SynthSpec, field_ids: dict[str, dict[str, int]]) -> str:
    rows = ["ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment"]
    for eb in spec.eb_uids:
        for src in spec.sources:
            if src.role not in ("bp", "ph", "pol"):
                continue
            intents = ",".join(src.intents).replace("FLUX", "AMPLITUDE")
            for k, sw in enumerate(S.SPWS):
                i, q, u, v = (float(x[0]) for x in S.stokes_spectrum(
                    src, np.array([sw.center_hz]), k))
                rows.append(f"{eb}.ms,{field_ids[eb][src.name]},{k},{i!r},{q!r},{u!r},{v!r},"
                            f"{src.spix!r},0.0,0.0,\"# field={src.name} intents={intents} "
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


def flagversions_tgz(vis: str, out: str, uid: str) -> str:
    """``<uid>.ms.flagversions.tgz`` with ``flags.Pipeline_Final`` only."""
    casatasks.flagmanager(vis=vis, mode="save", versionname="Pipeline_Final",
                          comment="Final pipeline flags")
    fv = vis + ".flagversions"
    src = os.path.join(fv, "flags.Pipeline_Final")
    if not os.path.isdir(src):
        raise RuntimeError(f"flagmanager did not save {src}")
    stage = out + ".d"
    shutil.rmtree(stage, ignore_errors=True)
    d = os.path.join(stage, f"{uid}.ms.flagversions")
    os.makedirs(d)
    shutil.copytree(src, os.path.join(d, "flags.Pipeline_Final"))
    with open(os.path.join(d, "FLAG_VERSION_LIST"), "w") as fh:
        fh.write("Pipeline_Final : Final pipeline flags\n")
    write_tgz(out, [(d, f"{uid}.ms.flagversions")])
    shutil.rmtree(stage)
    return out
