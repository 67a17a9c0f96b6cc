"""Options (scriptForPI globals), plan and disk model: pure unit tests."""
import sys
import types

import pytest

from almaqa_casa.delivery.calapply import parse_calapply
from almaqa_casa.delivery.manifest import parse_manifest
from almaqa_casa.delivery.member import EB, Member, match_ebs, uid_sort_key
from almaqa_casa.delivery.ppr import PPR
from almaqa_casa.restore.disk import DiskError, check_disk, scriptforpi_need
from almaqa_casa.restore.options import OptionError, make_options
from almaqa_casa.restore.plan import PlanError, disk_hints, format_plan
from almaqa_casa.restore.planners import plan_pipeline as make_plan

GB = 10**9


def test_globals_as_scriptforpi(monkeypatch):
    o = make_options({"spacesaving": "", "dosplit": "", "docontsub": ""},
                     {"SPACESAVING": 2, "DOSPLIT": True})
    assert (o.spacesaving, o.dosplit, o.docontsub) == (2, True, False)
    assert dict(o.sources) == {"spacesaving": "global", "dosplit": "global", "docontsub": "default"}
    # casashell -c runs in __main__
    main = types.ModuleType("__main__")
    main.DOCONTSUB = True
    monkeypatch.setitem(sys.modules, "__main__", main)
    o = make_options({"spacesaving": 1, "dosplit": "", "docontsub": ""}, {})
    assert (o.spacesaving, o.dosplit, o.docontsub) == (1, False, True)
    assert dict(o.sources)["spacesaving"] == "parameter"


@pytest.mark.parametrize("bad", [-2, 1.5, "x", True])
def test_spacesaving_validated(bad):
    with pytest.raises(OptionError, match="SPACESAVING must be an integer >= -1"):
        make_options({"spacesaving": bad}, None)


def test_uid_order_and_matching():
    uids = ["uid___A002_X1_Xab", "uid___A002_X1_X9", "uid___A002_X1_X1000"]
    assert sorted(uids, key=uid_sort_key) == ["uid___A002_X1_X9", "uid___A002_X1_Xab",
                                              "uid___A002_X1_X1000"]
    assert match_ebs(["a", "b"], ["b", "c"]) == (["b"], ["c"], ["a"])


CAL = ("applycal(vis='x.ms', field='', intent='TARGET,PHASE', spw='0', antenna='', "
       "gaintable=['/a/{u}.ms.gcal.tbl'], gainfield=[''], spwmap=[[]], interp=['linear'], "
       "calwt=[True])\n")


def _info(tmp_path, ebs=("uid___A002_X1_X1", "uid___A002_X1_X2"), raw=None, **kw):
    """A pipeline member model built directly (no files: the planner is pure)."""
    raw = list(ebs) if raw is None else raw
    ok, semipass, missing = match_ebs(list(ebs), raw)
    d = dict(path=str(tmp_path / "member.uid___A001_X1_X2"), mous="uid___A001_X1_X2",
             kind="pipeline", total_power=False, description={},
             ebs=tuple(EB(uid=u, asdm=f"/r/{u}.asdm.sdm" if u in raw else None,
                          raw_bytes=GB if u in raw else 0, session="session_1",
                          caltables="/c/s1.caltables.tgz", session_source="manifest",
                          calapply=f"/c/{u}.ms.calapply.txt",
                          flagversions=f"/c/{u}.ms.flagversions.tgz", script=None)
                       for u in ebs),
             raw_asdms={u: f"/r/{u}.asdm.sdm" for u in raw}, raw_sizes={u: GB for u in raw},
             semipass=tuple(semipass), missing=tuple(missing),
             ppr=PPR(asdms=list(ebs), sessions={}), ppr_path="p.xml",
             calapply={u: parse_calapply(CAL.format(u=u)) for u in ebs},
             calapply_paths={u: f"/c/{u}.ms.calapply.txt" for u in ebs},
             flagversions={u: f"/c/{u}.ms.flagversions.tgz" for u in ebs},
             caltables_tgz={"session_1": "/c/s1.caltables.tgz"})
    d.update(kw)
    return Member(**d)


def test_plan_layout_and_routes(tmp_path):
    info = _info(tmp_path)
    p0 = make_plan(info, make_options({"spacesaving": 0, "dosplit": True}, None))
    assert p0.route == "applycal" and p0.ebs == ["uid___A002_X1_X1", "uid___A002_X1_X2"]
    kinds = [s.kind for s in p0.steps if s.eb == "uid___A002_X1_X1"]
    assert kinds == ["caltables", "ms", "split", "links"]
    outs = {o for s in p0.steps for o in s.outputs}
    cal = p0.calibrated
    assert f"{cal}/working/uid___A002_X1_X1.ms" in outs
    assert f"{cal}/uid___A002_X1_X1.ms.split.cal" in outs
    assert f"{cal}/working/uid___A002_X1_X1.ms.gcal.tbl" in outs
    p2 = make_plan(info, make_options({"spacesaving": 2, "dosplit": True}, None))
    assert p2.route == "callib"
    cleanup = [s for s in p2.steps if s.kind == "cleanup"]
    assert [c.deletes for c in cleanup] == [[f"{cal}/working/uid___A002_X1_X1.ms"],
                                            [f"{cal}/working/uid___A002_X1_X2.ms"]]
    # never a final product
    assert not any(d.endswith(".split.cal") for c in cleanup for d in c.deletes)
    assert p2.peak_bytes < 0.65 * p0.peak_bytes and p2.peak_bytes <= 1.8 * 2 * GB
    assert p0.scriptforpi_bytes == 22 * GB and p2.scriptforpi_bytes == 6 * GB
    # pipeline imaging only and no DOSPLIT: link instead of split (scriptForPI usedimpipe)
    info.usedimpipe = True
    pl = make_plan(info, make_options({"spacesaving": 3}, None))
    assert not [s for s in pl.steps if s.kind in ("split", "cleanup")]
    links = [s for s in pl.steps if s.kind == "links" and s.eb == "uid___A002_X1_X1"][0]
    assert f"{cal}/uid___A002_X1_X1.ms" in links.params["links"]
    assert "uid___A002_X1_X1" in format_plan(pl)


def _renorm_manifest(attrs: str):
    return parse_manifest(f"""<piperesults><ous name="m"><session name="session_1">
      <caltables name="s1.caltables.tgz"/>
      <asdm name="uid___A002_X1_X1"><hifa_renorm {attrs}/></asdm></session></ous></piperesults>""")


def test_plan_contsub_and_renorm(tmp_path):
    """A manifest hifa_renorm becomes part of the ms step (shown by dryrun, in the digest)."""
    from almaqa_casa.restore.records import digest as _digest
    man = _renorm_manifest('apply="True" threshold="1.02" excludechan="{}" atm_auto_exclude="True"')
    info = _info(tmp_path, contdat="/c/cont.dat", manifest=man)
    p = make_plan(info, make_options({"docontsub": True, "dosplit": True}, None))
    kinds = [s.kind for s in p.steps if s.eb == "uid___A002_X1_X1"]
    assert kinds == ["caltables", "ms", "targets", "contsub", "split", "links"]
    assert not any("renormalization" in w for w in p.warnings)
    ms = [s for s in p.steps if s.id == "uid___A002_X1_X1:ms"][0]
    rn = ms.params["renorm"]
    assert rn["apply"] is True and rn["threshold"] == 1.02 and rn["atm_auto_exclude"] is True
    assert rn["caltable"] == f"{p.working}/uid___A002_X1_X1.ms.renorm.tbl"
    # the steps that calibrate on the fly know it too
    assert all(s.params["renorm"] for s in p.steps
               if s.eb == "uid___A002_X1_X1" and s.kind in ("split", "targets"))
    text = format_plan(p)
    assert "renormalization (manifest hifa_renorm: threshold 1.02" in text
    assert "uid___A002_X1_X1.ms.renorm.tbl" in text
    # another threshold -> another digest: a resumed run redoes the ms step
    info2 = _info(tmp_path, contdat="/c/cont.dat",
                  manifest=_renorm_manifest('apply="True" threshold="1.05"'))
    p2 = make_plan(info2, make_options({"docontsub": True, "dosplit": True}, None))
    ms2 = [s for s in p2.steps if s.id == "uid___A002_X1_X1:ms"][0]
    assert _digest(ms2) != _digest(ms)
    # no renormalization recorded: nothing about it
    p3 = make_plan(_info(tmp_path, contdat="/c/cont.dat"),
                   make_options({"docontsub": True, "dosplit": True}, None))
    ms3 = [s for s in p3.steps if s.id == "uid___A002_X1_X1:ms"][0]
    assert ms3.params["renorm"] is None and "renormalization" not in format_plan(p3)


def test_plan_renorm_unreadable_is_a_warning(tmp_path):
    info = _info(tmp_path, manifest=_renorm_manifest('apply="True" excludechan="{1: __import__}"'))
    p = make_plan(info, make_options({"dosplit": True}, None))
    assert any("renormalization" in w and "NOT applied" in w and "excludechan" in w
               for w in p.warnings)
    ms = [s for s in p.steps if s.id == "uid___A002_X1_X1:ms"][0]
    assert ms.params["renorm"] is None


def test_plan_semipass_and_missing(tmp_path):
    info = _info(tmp_path, ebs=("uid___A002_X1_X1",), raw=["uid___A002_X1_X1", "uid___A002_X9_X9"])
    p = make_plan(info, make_options({}, None))
    assert p.semipass == ["uid___A002_X1_X9".replace("X1_X9", "X9_X9")]
    assert any("semipass" in w for w in p.warnings)
    info = _info(tmp_path, ebs=("uid___A002_X1_X1", "uid___A002_X1_X2"), raw=["uid___A002_X1_X1"])
    with pytest.raises(PlanError, match=r"ASDM missing.*uid___A002_X1_X2 \(raw/uid___A002_X1_X2.asdm.sdm\)"):
        make_plan(info, make_options({}, None))


def test_disk_check(tmp_path):
    info = _info(tmp_path)
    p = make_plan(info, make_options({"spacesaving": 0, "dosplit": True}, None))
    with pytest.raises(DiskError) as ei:
        check_disk(p.peak_bytes, p.calibrated, 0, disk_hints(p), free=lambda _: GB)
    msg = str(ei.value)
    assert "1.0 GB are available" in msg and "spacesaving=2" in msg and "spacesaving=-1" in msg
    assert check_disk(p.peak_bytes, p.calibrated, -1, [], free=lambda _: 0)["checked"] is False
    assert check_disk(10, "/", 0, [], free=lambda _: 100)["available"] == 100
    assert scriptforpi_need(GB, 1, True) == 10 * GB and scriptforpi_need(GB, -1, False) is None
