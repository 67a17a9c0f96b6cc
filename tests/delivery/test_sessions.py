"""EB -> session -> caltables tarball from manifest, restore script, PPR and tarball names (pure)."""
from hypothesis import given
from hypothesis import strategies as st

from almaqa_casa.delivery.ppr import parse_ppr
from almaqa_casa.delivery.sessions import normalise_session, resolve_sessions, tarball_session

M = "uid___A001_X1296_X133"
E = [f"uid___A002_Xc89480_X{k}" for k in range(1, 9)]


def tgz(k, style="session_"):
    return f"{M}.{style}{k}.caltables.tgz"


def test_tarball_names():
    assert tarball_session(tgz(3)) == "session_3"
    assert tarball_session(f"{M}.s12.caltables.tgz") == "session_12"
    assert tarball_session(f"{M}.caltables.tgz") == "default"
    assert tarball_session(f"{M}.session_1.auxcaltables.tgz") is None
    assert tarball_session(f"{M}.hifa_calimage.auxproducts.tgz") is None
    assert normalise_session("SESSION_4") == normalise_session("s4") == "session_4"


def test_cycle4_gaps_from_the_restore_script():
    """8 EBs in sessions 1,2,2,3,4,5,7,8 and no manifest: each EB from its own tarball."""
    sess = ["session_1", "session_2", "session_2", "session_3", "session_4", "session_5",
            "session_7", "session_8"]
    names = [tgz(k) for k in (1, 2, 3, 4, 5, 7, 8)] + [f"{e}.ms.calapply.txt" for e in E]
    sm = resolve_sessions(E, names, restore_script=dict(zip(E, sess)))
    assert [e.tarball for e in sm.ebs] == [tgz(s.split("_")[1]) for s in sess]
    assert sm.sources == ("restore script",) and not sm.warnings and not sm.unresolved


def test_no_session_1_and_s_naming():
    names = [tgz(2, "s"), tgz(4, "s")]
    sm = resolve_sessions(E[:2], names, ppr={E[0]: "session_2", E[1]: "session_4"})
    assert [(e.session, e.tarball, e.source) for e in sm.ebs] == [
        ("session_2", tgz(2, "s"), "PPR"), ("session_4", tgz(4, "s"), "PPR")]


def test_manifest_first_then_script_then_ppr():
    names = [tgz(1), tgz(2)]
    sm = resolve_sessions([E[0]], names, manifest={E[0]: "session_2"},
                          restore_script={E[0]: "session_2"}, ppr={E[0]: "session_1"},
                          source_files={"PPR": "PPR.xml", "manifest": "pipeline_manifest.xml"})
    e = sm.of(E[0])
    assert (e.session, e.source) == ("session_2", "manifest")
    assert len(sm.warnings) == 1
    w = sm.warnings[0]
    assert "pipeline_manifest.xml" in w and "PPR.xml" in w and "session_1" in w and "session_2" in w


def test_ppr_disagrees_with_script_and_tarballs():
    """A real case: PPR SESSION_1..4 for four EBs, script and tarballs session_1 only."""
    names = [tgz(1)]
    sm = resolve_sessions(E[:4], names, restore_script={e: "session_1" for e in E[:4]},
                          ppr={E[k]: f"session_{k + 1}" for k in range(4)})
    assert {e.tarball for e in sm.ebs} == {tgz(1)}
    assert {e.source for e in sm.ebs} == {"restore script"}
    assert len(sm.warnings) == 3            # EBs 2-4: the PPR said another session
    assert all("no tarball for session_" in w for w in sm.warnings)


def test_a_source_naming_a_session_without_tarball_gives_way():
    names = [tgz(1), tgz(3)]
    sm = resolve_sessions([E[0]], names, manifest={E[0]: "session_2"},
                          restore_script={E[0]: "session_3"})
    assert (sm.of(E[0]).session, sm.of(E[0]).source) == ("session_3", "restore script")
    assert "no tarball for session_2" in sm.warnings[0]


def test_unplaced_eb():
    sm = resolve_sessions([E[0]], [tgz(1), tgz(2)])
    assert sm.unresolved == (E[0],) and sm.of(E[0]).source == ""
    sm = resolve_sessions([E[0]], [tgz(1)])
    assert (sm.of(E[0]).tarball, sm.of(E[0]).source) == (tgz(1), "only tarball")
    sm = resolve_sessions([E[0]], [f"{M}.caltables.tgz", tgz(2)])
    assert sm.of(E[0]).source == "default tarball"


def test_ppr_session_intents():
    ppr = parse_ppr("""<SciPipeRequest><ProcessingRequests><ProcessingRequest>
      <ProcessingIntents>
        <Intents><Keyword xmlns="">PROCESS</Keyword><Value xmlns="">true</Value></Intents>
        <Intents><Keyword xmlns="">SESSION_2</Keyword>
                 <Value xmlns="">uid://A002/Xc89480/X1 | uid://A002/Xc89480/X2</Value></Intents>
        <Intents><Keyword xmlns="">SESSION_4</Keyword><Value xmlns="">uid://A002/Xc89480/X3</Value></Intents>
      </ProcessingIntents>
      <DataSet><SchedBlockSet><SchedBlockIdentifier><AsdmIdentifier>
        <AsdmDiskName>uid___A002_Xc89480_X1</AsdmDiskName></AsdmIdentifier></SchedBlockIdentifier>
      </SchedBlockSet></DataSet></ProcessingRequest></ProcessingRequests></SciPipeRequest>""")
    assert ppr.sessions == {E[0]: "session_2", E[1]: "session_2", E[2]: "session_4"}


@given(st.lists(st.sampled_from([1, 2, 3, 5, 8]), min_size=1, max_size=8))
def test_every_eb_with_its_own_tarball(sessions):
    ebs = E[:len(sessions)]
    names = sorted({tgz(k) for k in sessions})
    sm = resolve_sessions(ebs, names, restore_script={e: f"session_{k}" for e, k in
                                                      zip(ebs, sessions)})
    assert [e.tarball for e in sm.ebs] == [tgz(k) for k in sessions]
