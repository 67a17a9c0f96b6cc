"""A tiny real manual delivery for the manual-path tests (helpers; no tests here).

Each EB script "imports" a small simulated MS (a copy stands in for
importasdm, so tests stay fast), then splits it twice as a CSG script does
(``<uid>.ms.split``, ``<uid>.ms.split.cal``); ImagingPrep concatenates into
``calibrated.ms``; PolCal and FluxCal scripts record their turn.
"""
import os
from pathlib import Path

from almaqa_casa.restore.scriptenv import casa_version

PRESENT = ".".join(str(x) for x in casa_version()[0][:3])
MOUS = "uid___A001_X3621_X541"
# chronological order is X9 then X1a (string order would be the reverse)
EB1, EB2 = "uid___A002_Xb0_X9", "uid___A002_Xb0_X1a"

EB_SCRIPT = """\
# tiny CSG-like calibration script (qa_restore tests)
import re
import shutil

if applyonly != True: es = aU.stuffForScienceDataReduction()

if re.search('^{version}', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {version}')

thesteps = []
step_title = {{0: 'Import of the ASDM', 1: 'Split out science SPWs', 2: 'Split out corrected column'}}
try:
  print('List of steps to be executed ...', mysteps)
  thesteps = mysteps
except:
  print('global variable mysteps not set.')
if (thesteps==[]):
  thesteps = range(0,len(step_title))

if os.environ.get('QA_TEST_FAIL_EB') == '{uid}':
    raise RuntimeError('calibration of {uid} failed on purpose')

mystep = 0
if(mystep in thesteps):
  assert os.path.islink('{uid}') and os.path.isdir('{uid}'), 'ASDM link missing'
  if os.path.exists('{uid}.ms') == False:
    shutil.copytree(r'{template}', '{uid}.ms')
    note = 'imported'
  else:
    note = 'reused'
  with open('../.order.txt', 'a') as fh:
    fh.write('{uid} ' + note + '\\n')

mystep = 1
if(mystep in thesteps):
  split(vis='{uid}.ms', outputvis='{uid}.ms.split', datacolumn='data', keepflags=True)
  if os.environ.get('QA_TEST_HANG_EB') == '{uid}':   # to be killed here by a test
    import time
    open('hanging', 'w').close()
    time.sleep(600)

mystep = 2
if(mystep in thesteps):
  split(vis='{uid}.ms.split', outputvis='{uid}.ms.split.cal', datacolumn='data', keepflags=True)
  tb.open('{uid}.ms.split.cal')
  assert tb.nrows() > 0
  tb.close()
"""

POST_SCRIPT = """\
import glob
with open('.order.txt', 'a') as fh:
    fh.write('{kind}\\n')
"""

IMAGINGPREP = """\
import glob
with open('.order.txt', 'a') as fh:
    fh.write('scriptForImagingPrep\\n')
vislist = sorted(glob.glob('*.ms.split.cal'))
assert len(vislist) == 2, vislist
concat(vis=vislist, concatvis='calibrated.ms')
"""


def _simulate(msname: str) -> None:
    import casatools
    me = casatools.measures()
    sm = casatools.simulator()
    sm.open(msname)
    n = 4
    sm.setconfig(telescopename="ALMA", x=[0.0, 30.0, 0.0, -40.0], y=[0.0, 0.0, 25.0, -10.0],
                 z=[0.0] * n, dishdiameter=[12.0] * n, mount=["alt-az"] * n,
                 antname=[f"DA4{i}" for i in range(n)], padname=[f"A00{i}" for i in range(n)],
                 coordsystem="local", referencelocation=me.observatory("ALMA"))
    sm.setspwindow(spwname="spw0", freq="100GHz", deltafreq="10MHz", freqresolution="10MHz",
                   nchannels=8, stokes="XX YY")
    sm.setfeed(mode="perfect X Y")
    sm.setfield(sourcename="T", sourcedirection=me.direction("J2000", "10h00m00", "-30d00m00"))
    sm.setlimits(shadowlimit=0.01, elevationlimit="1deg")
    sm.setauto(autocorrwt=0.0)
    sm.settimes(integrationtime="10s", usehourangle=True,
                referencetime=me.epoch("UTC", "2024/01/01/00:00:00"))
    sm.observe("T", "spw0", starttime="0s", stoptime="60s")
    sm.close()
    me.done()
    tb = casatools.table()          # a 1 Jy point source at the phase centre: real, non-zero
    tb.open(msname, nomodify=False)  # data (the restore's verification samples them)
    try:
        tb.putcol("DATA", tb.getcol("DATA") * 0 + 1)
    finally:
        tb.close()


def make_tiny_delivery(root: Path, template: str, version: str = PRESENT,
                       semipass: bool = False, post: bool = True) -> Path:
    member = root / "2025.1.00001.S" / "science_goal.uid___A001_X3621_X53f" / \
        "group.uid___A001_X3621_X540" / f"member.{MOUS}"
    for d in ("script", "calibration", "raw", "product", "qa"):
        (member / d).mkdir(parents=True)
    ebs = [EB1, EB2] + (["uid___A002_Xb0_X200"] if semipass else [])
    for uid in ebs:
        asdm = member / "raw" / f"{uid}.asdm.sdm"
        asdm.mkdir()
        (asdm / "ASDM.xml").write_text("<ASDM/>\n")
    for uid in (EB1, EB2):
        (member / "script" / f"{uid}.ms.scriptForCalibration.py").write_text(
            EB_SCRIPT.format(uid=uid, template=template, version=version))
    if post:
        for kind in ("scriptForPolCalibration", "scriptForFluxCalibration"):
            (member / "script" / f"member.{MOUS}.{kind}.py").write_text(
                POST_SCRIPT.format(kind=kind))
        (member / "script" / f"member.{MOUS}.scriptForImagingPrep.py").write_text(IMAGINGPREP)
    (member / "script" / f"member.{MOUS}.scriptForPI.py").write_text("# not run by qa_restore\n")
    (member / "script" / f"member.{MOUS}.scriptForImaging.py").write_text("# imaging\n")
    (member / "calibration" / "Titan_ephem.eph").write_text("MJD 60000 ...\n")
    return member


def _visible(folder: Path) -> set:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def expected_files(level: int, post: bool = True) -> tuple[set, set]:
    """scriptForPI.py's files left in calibrated/ and in each <uid>.calibration/."""
    top = {f"{EB1}.calibration", f"{EB2}.calibration", "restore.json", "restore.html"}
    if not (level >= 3 and post):
        top |= {f"{EB1}.ms.split.cal", f"{EB2}.ms.split.cal"}
    if post:
        top |= {"calibrated.ms", "scriptForPolCalibration.log", "scriptForFluxCalibration.log",
                "scriptForImagingPrep.log"}
    work = {"{uid}", "{uid}.ms", "{uid}.ms.split", "{uid}.scriptForCalibration.log",
            "Titan_ephem.eph"}
    if level >= 1:
        work.discard("{uid}.ms.split")
    if level >= 2:
        work.discard("{uid}.ms")
    return top, work


def check_tree(cal: Path, level: int, post: bool = True) -> None:
    top, work = expected_files(level, post)
    assert _visible(cal) == top
    for uid in (EB1, EB2):
        wd = cal / f"{uid}.calibration"
        assert _visible(wd) == {w.format(uid=uid) for w in work}
        assert os.readlink(wd / uid) == os.path.relpath(
            Path(cal).parent / "raw" / f"{uid}.asdm.sdm", wd) or os.path.isdir(wd / uid)
        assert os.path.islink(wd / "Titan_ephem.eph")




def simulate_template(folder) -> str:
    ms = str(Path(folder) / "tpl.ms")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        _simulate(ms)
    finally:
        os.chdir(cwd)
    return ms


def inputs_checksum(checksum, member) -> tuple:
    """Checksums of a member's input folders (outputs may live inside the member)."""
    member = Path(member)
    return tuple(checksum(member / sub) for sub in ("raw", "calibration", "script", "product")
                 if (member / sub).exists())


def shadow_member(member, where, edit_script=None) -> Path:
    """A member folder in ``where`` whose raw/calibration/product link to ``member``'s and
    whose script/ is a real copy (``edit_script(name, text) -> text`` may alter it)."""
    member = Path(member)
    shadow = Path(where) / member.name
    shadow.mkdir(parents=True)
    for sub in ("raw", "calibration", "product", "qa", "log"):
        if (member / sub).exists():
            os.symlink(member / sub, shadow / sub)
    (shadow / "script").mkdir()
    for f in sorted((member / "script").iterdir()):
        text = f.read_text(errors="replace")
        if edit_script is not None:
            text = edit_script(f.name, text)
        (shadow / "script" / f.name).write_text(text)
    return shadow


def restore_manual_member(member, cal=None, opts=None, free=None):
    """One member through the restore engine, outputs in ``cal`` (default <member>/calibrated)."""
    import dataclasses

    from almaqa_casa.restore.engine import restore_member
    from almaqa_casa.restore.options import RestoreOptions
    opts = opts or RestoreOptions()
    if cal is not None:
        opts = dataclasses.replace(opts, outdir=str(cal))
    kw = {"free": free} if free is not None else {}
    return restore_member(member, opts, **kw)

