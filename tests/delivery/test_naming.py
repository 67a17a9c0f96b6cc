"""Product-name parser: real names from deliveries, round trips, never raising."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.naming import (
    ARRAYS,
    DATATYPES,
    IMAGE_TYPES,
    LAYERS,
    STOKES,
    TARGET_TYPES,
    ProductName,
    diagnose_name,
    format_name,
    parse_name,
    same_source,
    target_token,
)

REAL = {
    # name: (mous, source, type, spws, imagetype, datatype, stokes, cmt, kind, taylor, ext)
    "uid___A001_X87c_X69.J0139+1753_ph.spw17.mfs.I.pbcor.fits":
        ("uid___A001_X87c_X69", "J0139+1753", "ph", (17,), "mfs", None, "I", (), "pbcor", None, "fits"),
    "member.uid___A001_X12a3_Xe9.50_kms_cloud_sci.spw0_4_8_12.cube.I.manual.image.pbcor.fits":
        ("uid___A001_X12a3_Xe9", "50_kms_cloud", "sci", (0, 4, 8, 12), "cube", None, "I", ("manual",), "pbcor", None, "fits"),
    "member.uid___A001_X133d_X7ac.cdfs_31127_sci.spw25_27_29_31.cont.I.pb.fits.gz":
        ("uid___A001_X133d_X7ac", "cdfs_31127", "sci", (25, 27, 29, 31), "cont", None, "I", (), "pb", None, "fits.gz"),
    "member.uid___A001_X3788_X7bda.F23128-5919_sci.spw17_19_21_23.cont.I.tt0.pbcor.fits":
        ("uid___A001_X3788_X7bda", "F23128-5919", "sci", (17, 19, 21, 23), "cont", None, "I", (), "pbcor", 0, "fits"),
    "member.uid___A001_X3845_Xa31._G0.02467-0.0727__sci.spw45_47_49_51_53_55_57_59.cont.I.selfcal.pbcor.fits":
        ("uid___A001_X3845_Xa31", "G0.02467-0.0727", "sci", (45, 47, 49, 51, 53, 55, 57, 59), "cont", "selfcal", "I", (), "pbcor", None, "fits"),
    "member.uid___A001_X136d_X1d5.AS_209_sci.spw25_27_29_31.mfs.IQUV.manual.pbcor.fits":
        ("uid___A001_X136d_X1d5", "AS_209", "sci", (25, 27, 29, 31), "mfs", None, "IQUV", ("manual",), "pbcor", None, "fits"),
    "member.uid___A001_X87a_X837.ari_l.SPT0418-47_sci.spw25_27_29_31_357701MHz.12m.cont.I.pbcor.fits":
        ("uid___A001_X87a_X837", "SPT0418-47", "sci", (25, 27, 29, 31), "cont", None, "I", (), "pbcor", None, "fits"),
    "member.uid___A001_X15aa_X2a0.M308_sci.spw21.cube.I.sd.fits":
        ("uid___A001_X15aa_X2a0", "M308", "sci", (21,), "cube", None, "I", (), "sd", None, "fits"),
    "oussid.helms30_sci.spw0.mfs.regcal.I.pbcor.fits":
        ("oussid", "helms30", "sci", (0,), "mfs", "regcal", "I", (), "pbcor", None, "fits"),
    "oussid._Abell_2631__sci.L_band.cont.selfcal.I.pbcor.tt0.fits":
        ("oussid", "Abell_2631", "sci", (), "cont", "selfcal", "I", (), "pbcor", 0, "fits"),
    "uid___A001_X1_X2.X_sci.spw1.cont.I.pb.tt0.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "pb", 0, "fits"),
    "uid___A001_X1_X2.X_sci.spw1.cont.I.tt1.pbcor.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "pbcor", 1, "fits"),
    "uid___A001_X1_X2.X_sci.spw1.cont.I.alpha.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "alpha", None, "fits"),
    "uid___A001_X1_X2.X_sci.spw1.cont.I.alpha.error.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "alpha.error", None, "fits"),
    "uid___A001_X1_X2.X_sci.spw1.cont.I.beta.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "beta", None, "fits"),
    "member.uid___A001_X1_X2.X_sci.spw1.cont.I.mask.fits.gz":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", (), "mask", None, "fits.gz"),
    "member.uid___A001_X1_X2.X_sci.spw1.cont.I.manual.mask.tgz":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cont", None, "I", ("manual",), "mask", None, "tgz"),
    "member.uid___A001_X1_X2.3C286_pol_leak.spw1.mfs.P.manual.pbcor.fits":
        ("uid___A001_X1_X2", "3C286", "pol_leak", (1,), "mfs", None, "P", ("manual",), "pbcor", None, "fits"),
    "member.uid___A001_X1_X2.AS_209_sci.spw1.mfs.A.manual.pbcor.fits":
        ("uid___A001_X1_X2", "AS_209", "sci", (1,), "mfs", None, "A", ("manual",), "pbcor", None, "fits"),
    "member.uid___A001_X1_X2.G31.41p0.31_sci.spw5_7.cube.I.repBW.fits":
        None,  # repBW is an image type, not a trailing token: must not parse
    "member.uid___A001_X1_X2.G31.41p0.31_sci.spw5_7.repBW.I.pbcor.fits":
        ("uid___A001_X1_X2", "G31.41p0.31", "sci", (5, 7), "repBW", None, "I", (), "pbcor", None, "fits"),
    "member.uid___A001_X1_X2.M308_sci.spw21.cube.I.flux.fits":
        ("uid___A001_X1_X2", "M308", "sci", (21,), "cube", None, "I", (), "pb", None, "fits"),
    "member.uid___A001_X1_X2.X_sci.spw1.cube.I.CO_2-1.manual.image.pbcor.fits":
        ("uid___A001_X1_X2", "X", "sci", (1,), "cube", None, "I", ("CO_2-1", "manual"), "pbcor", None, "fits"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_names(name):
    want = REAL[name]
    got = parse_name(name)
    if want is None:
        assert got is None
        assert diagnose_name(name)
        return
    assert got is not None, diagnose_name(name)
    mous, source, ttype, spws, imtype, dt, stokes, cmt, kind, taylor, ext = want
    assert (got.mous, got.source, got.target_type, got.spws, got.imagetype, got.datatype,
            got.stokes, got.cmt, got.kind, got.taylor, got.ext) == want
    assert format_name(got) == name


def test_pairing_keys():
    pbcor = parse_name("member.uid___A001_X1_X2.X_sci.spw1.cont.I.tt0.pbcor.fits")
    pb = parse_name("member.uid___A001_X1_X2.X_sci.spw1.cont.I.pb.tt0.fits.gz")
    mask = parse_name("member.uid___A001_X1_X2.X_sci.spw1.cont.I.mask.fits.gz")
    assert pbcor.image_key == pb.image_key == mask.image_key
    m1 = parse_name("member.uid___A001_X1_X2.X_sci.spw1.cube.I.manual.image.pbcor.fits")
    m2 = parse_name("member.uid___A001_X1_X2.X_sci.spw1.cube.I.manual.pb.fits.gz")
    assert m1.image_key == m2.image_key


@pytest.mark.parametrize("bad", [
    "", "README.txt", "member.uid___A001_X1_X2.README.txt", "x.fits",
    "member.uid___A001_X1_X2.X_sci.spw1.fits", "member.uid___A001_X1_X2.X_sci.spw1.foo.I.pbcor.fits",
    "member.uid___A001_X1_X2.X_sci.spw1.cont..pbcor.fits", "member.uid___A001_X1_X2.X_sci.spw1.cont.I.pbcor.png",
    "member.X_sci.spw1.cont.I.pbcor.fits", "a/b_sci.spw1.cont.I.pbcor.fits",
])
def test_unparseable(bad):
    assert parse_name(bad) is None
    assert isinstance(diagnose_name(bad), str)


def test_target_quoting():
    assert target_token("NGC_628") == "NGC_628"
    assert target_token("J0139+1753") == "J0139+1753"
    assert target_token("G0.02467-0.0727") == "_G0.02467-0.0727_"
    assert target_token("Sgr A*") == "_Sgr_A__"
    assert target_token("187663") == "_187663_"
    assert same_source("_G31.41+0.31_", "G31.41p0.31")


# ---- property tests --------------------------------------------------------
_alnum = st.text("ABCDEFGHJKLMNXYZabcdefghkmnxyz0123456789", min_size=1, max_size=6)
_clean_source = st.text("ABCXYZabcxyz0123456789+-", min_size=1, max_size=12).filter(
    lambda s: not s.isdigit())
_dotted_source = st.lists(st.text("ABCxyz0123456789+-", min_size=1, max_size=6),
                          min_size=1, max_size=3).map(".".join)
_target = st.one_of(_clean_source, _dotted_source.map(lambda s: "_" + s + "_"),
                    st.builds(lambda a, b: f"{a}_{b}", _clean_source, _clean_source))
_mous = st.builds(lambda a, b, c: f"uid___{a}_X{b}_X{c}",
                  st.sampled_from(["A001", "A002"]),
                  st.text("0123456789abcdef", min_size=1, max_size=5),
                  st.text("0123456789abcdef", min_size=1, max_size=5))
_spw = st.one_of(
    st.lists(st.integers(0, 99), min_size=1, max_size=8).map(
        lambda ids: "spw" + "_".join(map(str, ids))),
    st.sampled_from(["L_band", "K_band"]),
)
_reserved = set(IMAGE_TYPES) | set(STOKES) | set(DATATYPES) | set(ARRAYS) | {
    t for layer in LAYERS for t in layer}
_cmt_token = st.text("abcdefghklnorsuvwxyzBCO0123456789_-", min_size=1, max_size=8).filter(
    lambda t: t not in _reserved and not t.startswith("tt") and not (t[0] == "v" and t[1:].isdigit()))
_layers = st.sampled_from([
    ("pbcor",), ("pb",), ("mask",), ("flux",), ("sd",), ("sd", "weight"), ("alpha",),
    ("alpha", "error"), ("beta",), ("tt0", "pbcor"), ("tt1", "pbcor"), ("pb", "tt0"),
    ("image", "pbcor"), ("pbcorr",)])


@st.composite
def product_names(draw) -> ProductName:
    has_mous = draw(st.booleans())
    mous = draw(_mous) if has_mous else None
    dt_pos = draw(st.sampled_from([None, "before", "after"]))
    dt = draw(st.sampled_from(DATATYPES))
    stokes = draw(st.sampled_from(STOKES))
    return ProductName(
        mous=mous,
        member_prefix=has_mous and draw(st.booleans()),
        extra_prefix=draw(st.sampled_from([None, "ari_l"])) if has_mous else None,
        target=draw(_target),
        target_type=draw(st.sampled_from(TARGET_TYPES)),
        spw=draw(_spw),
        array=draw(st.sampled_from([None, "12m", "7m"])),
        imagetype=draw(st.sampled_from(IMAGE_TYPES)),
        datatype_before=dt if dt_pos == "before" else None,
        stokes=stokes,
        datatype_after=dt if dt_pos == "after" else None,
        cmt=tuple(draw(st.lists(_cmt_token, max_size=3))),
        layer=draw(_layers),
        version=draw(st.sampled_from([None, "v2"])),
        ext=draw(st.sampled_from(["fits", "fits.gz", "tgz"])),
    )


@settings(max_examples=400, deadline=None)
@given(product_names())
def test_roundtrip_fields(fields):
    name = format_name(fields)
    parsed = parse_name(name)
    assert parsed == fields, (name, diagnose_name(name))
    assert format_name(parsed) == name


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_never_raises(text):
    got = parse_name(text)
    assert got is None or format_name(got) == text
    assert (diagnose_name(text) is None) == (got is not None)


_piece = st.sampled_from(["member", "uid___A001_X1_X2", "X", "_sci", "sci", "spw1", "cont", "I",
                          "selfcal", "pbcor", "pb", "tt0", "fits", "gz", "", "_", "+", "alpha",
                          "manual", "IQUV", "v2", "12m", "ari_l"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_piece, max_size=14), st.sampled_from([".", "_", ""]))
def test_near_valid_text_never_raises(pieces, sep):
    text = sep.join(pieces)
    got = parse_name(text)
    assert got is None or format_name(got) == text
