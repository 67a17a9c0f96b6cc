"""The one pairing rule (image ↔ primary beam / mask) on real naming variants of every era."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almaqa_casa.delivery.naming import LAYERS, format_name
from almaqa_casa.delivery.products import (
    NAMING_BARE_UID,
    NAMING_FREE_FORM,
    NAMING_NO_MOUS,
    NAMING_NONCONFORMING,
    NAMING_SCHEME,
    classify_name,
    mask_for,
    orphans,
    pb_candidates,
    pb_for,
    product_set_for,
    product_sets,
)
from almaqa_casa.delivery.products import _with_stokes_key as _with_stokes_key
from tests.delivery.test_naming import product_names

M = "member.uid___A001_X3788_X7bda"


def _sets(names):
    return {s.image: s for s in product_sets(names)}


# ---- pipeline names -------------------------------------------------------------------
def test_pipeline_pbcor_with_gzipped_pb_and_mask():
    stem = f"{M}.F23128-5919_sci.spw17_19_21_23.cont.I"
    names = [f"{stem}.pbcor.fits", f"{stem}.pb.fits.gz", f"{stem}.mask.fits.gz"]
    (s,) = product_sets(names)
    assert (s.image, s.pb, s.mask, s.kind) == tuple(names) + ("pbcor",)
    assert (s.naming, s.pb_rule, s.manual, s.needs_pb, s.stokes) == (
        NAMING_SCHEME, "same name", False, True, "I")


def test_plain_fits_preferred_over_gzip_and_folder():
    stem = f"{M}.X_sci.spw1.cube.I"
    names = [f"{stem}.pbcor.fits", f"{stem}.pb.fits.gz", f"{stem}.pb", f"{stem}.pb.fits",
             f"{stem}.mask.tgz", f"{stem}.mask.fits.gz"]
    (s,) = product_sets(names)
    assert s.pb == f"{stem}.pb.fits" and s.mask == f"{stem}.mask.fits.gz"


def test_cycle4_multiterm_tt0_and_tt1_share_pb_tt0():
    """Cycle 4 (bare uid___): tt0.pbcor and tt1.pbcor both pair with pb.tt0; alpha travels along."""
    stem = "uid___A001_X87c_X69.NGC_3351_sci.spw17_19_21_23.cont.I"
    for pbname in (f"{stem}.pb.tt0.fits.gz", f"{stem}.pb.tt0.fits"):
        names = [f"{stem}.tt0.pbcor.fits", f"{stem}.tt1.pbcor.fits", pbname,
                 f"{stem}.mask.fits.gz", f"{stem}.alpha.fits", f"{stem}.alpha.error.fits"]
        sets = _sets(names)
        tt0, tt1 = sets[f"{stem}.tt0.pbcor.fits"], sets[f"{stem}.tt1.pbcor.fits"]
        assert tt0.pb == tt1.pb == pbname
        assert tt0.mask == tt1.mask == f"{stem}.mask.fits.gz"
        assert (tt0.taylor, tt1.taylor) == (0, 1)
        assert (tt0.pb_rule, tt1.pb_rule) == ("same name", "tt0 primary beam")
        assert tt0.companions == (f"{stem}.alpha.error.fits", f"{stem}.alpha.fits")
        assert tt0.naming == NAMING_BARE_UID
        assert len(sets) == 2 and orphans(names) == []
    # a tt1 primary beam, when there is one, is the tt1 image's own
    names = [f"{stem}.tt1.pbcor.fits", f"{stem}.pb.tt0.fits.gz", f"{stem}.pb.tt1.fits.gz"]
    assert pb_for(f"{stem}.tt1.pbcor.fits", names) == f"{stem}.pb.tt1.fits.gz"
    # VLA-style pbcor.tt0 with pb.tt0
    vla = "oussid._Abell_2631__sci.L_band.cont.selfcal.I"
    assert pb_for(f"{vla}.pbcor.tt0.fits", [f"{vla}.pb.tt0.fits"]) == f"{vla}.pb.tt0.fits"


def test_impbcor_example_image_pbcor_with_flux():
    """The old README's example: impbcor(imagename='<name>.image.pbcor.fits', pbimage='<name>.flux.fits')."""
    for flux in ("image.flux.fits", "image.flux.fits.gz"):
        name = "G34.26_CH3CN"
        images = [f"{name}.image.pbcor.fits", f"{name}.{flux}"]
        # '<name>.image.flux.fits' is not the README form; '<name>.flux.fits' is
        assert pb_for(images[0], images) is None
    for flux in ("flux.fits", "flux.fits.gz"):
        names = [f"{name}.image.pbcor.fits", f"{name}.{flux}"]
        s = product_set_for(names[0], names)
        assert (s.pb, s.pb_rule, s.naming, s.manual) == (names[1], "flux image", NAMING_FREE_FORM, True)


def test_cycle23_free_form_names_with_flux_and_mask_folders():
    names = [
        "NGC1333_IRAS4A.spw17.image.pbcor.fits", "NGC1333_IRAS4A.spw17.flux.fits.gz",
        "NGC1333_IRAS4A.spw17.mask/",
        "OrionKL.CH3OH_241.7GHz.image.pbcor.fits", "OrionKL.CH3OH_241.7GHz.flux.fits.gz",
        "OrionKL.CH3OH_241.7GHz.mask",
        "OrionKL.cont.image.pbcor.fits", "OrionKL.cont.flux.fits", "OrionKL.cont.mask.fits",
    ]
    sets = _sets(names)
    assert len(sets) == 3 and orphans(names) == []
    a = sets["NGC1333_IRAS4A.spw17.image.pbcor.fits"]
    assert (a.pb, a.mask, a.key) == ("NGC1333_IRAS4A.spw17.flux.fits.gz", "NGC1333_IRAS4A.spw17.mask/",
                                      "NGC1333_IRAS4A.spw17")
    b = sets["OrionKL.CH3OH_241.7GHz.image.pbcor.fits"]
    assert (b.pb, b.mask) == ("OrionKL.CH3OH_241.7GHz.flux.fits.gz", "OrionKL.CH3OH_241.7GHz.mask")
    assert sets["OrionKL.cont.image.pbcor.fits"].mask == "OrionKL.cont.mask.fits"
    assert {s.naming for s in sets.values()} == {NAMING_FREE_FORM}
    f = classify_name("NGC1333_IRAS4A.spw17.mask/")
    assert (f.role, f.casa_image, f.fits) == ("mask", True, False)
    assert classify_name("OrionKL.CH3OH_241.7GHz.flux.fits.gz").role == "pb"


def test_pb_preferred_over_old_flux():
    names = ["src.image.pbcor.fits", "src.flux.fits", "src.pb.fits.gz"]
    assert pb_for(names[0], names) == "src.pb.fits.gz"


def test_manual_scheme_names_and_tarred_mask():
    stem = "member.uid___A001_X12a3_Xe9.50_kms_cloud_sci.spw0_4_8_12.cube.I.manual"
    names = [f"{stem}.image.pbcor.fits", f"{stem}.pb.fits.gz", f"{stem}.mask.tgz"]
    (s,) = product_sets(names)
    assert (s.pb, s.mask, s.manual, s.naming) == (names[1], names[2], True, NAMING_SCHEME)
    # prefix-less Cycle 4 manual name with a band token
    stem = "Arp220_sci.spw25_27.cont.I.manual.B6"
    s = product_set_for(f"{stem}.image.pbcor.fits", [f"{stem}.pb.fits"])
    assert (s.pb, s.naming) == (f"{stem}.pb.fits", NAMING_NO_MOUS)


def test_scheme_mask_as_casa_image_folder():
    stem = f"{M}.X_sci.spw1.cont.I"
    assert mask_for(f"{stem}.pbcor.fits", [f"{stem}.mask"]) == f"{stem}.mask"


def test_full_polarization_iquv_with_p_and_a():
    stem = "member.uid___A001_X136d_X1d5.AS_209_sci.spw25_27_29_31.mfs"
    iquv, p, a = (f"{stem}.{s}.manual.pbcor.fits" for s in ("IQUV", "P", "A"))
    own = [iquv, p, a, f"{stem}.IQUV.manual.pb.fits.gz", f"{stem}.IQUV.manual.mask.fits.gz"]
    sets = _sets(own)
    assert sets[iquv].pb == f"{stem}.IQUV.manual.pb.fits.gz"
    assert sets[iquv].polarization == (a, p)
    assert sets[p].pol_source == sets[a].pol_source == iquv
    assert sets[p].pb == f"{stem}.IQUV.manual.pb.fits.gz" and sets[p].pb_rule == "Stokes IQUV image"
    assert sets[a].pb is None  # an angle map has no primary beam
    assert not sets[p].needs_pb and not sets[a].needs_pb and sets[iquv].needs_pb
    # IQUV without its own pb takes the Stokes-I image's
    borrowed = [iquv, f"{stem}.I.manual.pb.fits.gz", f"{stem}.I.manual.mask.fits.gz"]
    s = product_set_for(iquv, borrowed)
    assert (s.pb, s.mask, s.pb_rule) == (borrowed[1], borrowed[2], "Stokes I image")
    assert orphans(borrowed) == []
    # a P image of another target has no IQUV source
    other = f"{M}.Other_sci.spw25_27_29_31.mfs.P.manual.pbcor.fits"
    assert product_set_for(other, own).pol_source is None


def test_total_power_sd_needs_no_pb():
    stem = "member.uid___A001_X15aa_X2a0.M308_sci.spw21.cube.I"
    names = [f"{stem}.sd.fits", f"{stem}.sd.weight.fits"]
    (s,) = product_sets(names)
    assert (s.kind, s.pb, s.needs_pb, s.companions) == ("sd", None, False, (names[1],))


def test_folders_never_pair_across():
    stem = f"{M}.X_sci.spw1.cont.I"
    names = [f"a/product/{stem}.pbcor.fits", f"b/product/{stem}.pb.fits.gz"]
    assert pb_for(names[0], names) is None
    assert [f.name for f in orphans(names)] == [names[1]]
    names.append(f"a/product/{stem}.pb.fits.gz")
    assert pb_for(names[0], names) == f"a/product/{stem}.pb.fits.gz"


def test_orphans_and_unlisted_image():
    stem = f"{M}.X_sci.spw1.cont.I"
    names = [f"{stem}.pb.fits.gz", f"{stem}.mask.fits.gz", "Y.flux.fits"]
    assert sorted(f.name for f in orphans(names)) == sorted(names)
    # pb_for adds the image when it is not in the listing
    assert pb_for(f"{stem}.pbcor.fits", names) == f"{stem}.pb.fits.gz"
    assert pb_for("notes.txt", names) is None and pb_for(f"{stem}.pb.fits.gz", names) is None


def test_versions_pair_with_the_same_version():
    stem = "oussid.J1248-4559_ph.spw21.mfs.I"
    names = [f"{stem}.pbcor.v2.fits", f"{stem}.pb.v2.fits", f"{stem}.pb.fits"]
    assert pb_for(names[0], names) == f"{stem}.pb.v2.fits"
    assert pb_for("x.image.pbcor.v2.fits", ["x.flux.v2.fits", "x.flux.fits"]) == "x.flux.v2.fits"


@pytest.mark.parametrize("name,naming,role", [
    ("uid___A001_X87c_X69.J0139+1753_ph.spw17.mfs.I.pbcor.fits", NAMING_BARE_UID, "pbcor"),
    (f"{M}.X_sci.spw1.foo.I.pbcor.fits", NAMING_NONCONFORMING, "pbcor"),  # bad image type
    ("NGC253.band6_cube.image.pbcor.fits", NAMING_FREE_FORM, "pbcor"),
    ("NGC253.band6_cube.image", NAMING_FREE_FORM, "image"),
    ("Serpens_Main.spw25.image.fits", NAMING_FREE_FORM, "image"),
    ("cont.flux.pbcoverage.fits", None, None),
    ("random.fits", None, None), ("notes.txt", None, None), ("x..pbcor.fits", None, None),
    (".pbcor.fits", None, None), ("README", None, None), ("", None, None),
])
def test_classify_name(name, naming, role):
    f = classify_name(name)
    if naming is None:
        assert f is None
    else:
        assert (f.naming, f.role) == (naming, role)


def test_pb_candidates_are_what_pb_for_accepts_in_order():
    for image in (f"{M}.X_sci.spw1.cont.I.tt1.pbcor.fits", "NGC1333_IRAS4A.spw17.image.pbcor.fits",
                  f"{M}.AS_209_sci.spw1.mfs.IQUV.pbcor.fits", "AS209.cont.P.image.pbcor.v2.fits",
                  "p/q/uid___A001_X87c_X69.X_sci.spw1.cont.I.pbcor.fits"):
        cands = pb_candidates(image)
        assert cands, image
        for c in cands:
            assert pb_for(image, [c]) == c, (image, c)
        # with every candidate present, the first one wins; then the next, ...
        for i in range(len(cands)):
            assert pb_for(image, cands[i:]) == cands[i], (image, i)
    assert pb_candidates("notes.txt") == [] and pb_candidates("x.flux.fits") == []


_LAYER_TOKENS = {t for layer in LAYERS for t in layer}
#: name tokens that cannot end in a layer token (``x.tt0`` + ``.pbcor`` reads as ``x`` + ``tt0.pbcor``)
_word = st.text("ABCDEFGHJKNOPRSTXYZabcdefghknrstxyz0123456789+-_", min_size=1, max_size=10).filter(
    lambda w: w not in _LAYER_TOKENS and not re.fullmatch(r"tt\d+", w))


@settings(max_examples=300, deadline=None)
@given(st.lists(_word, min_size=1, max_size=4).map(".".join),
       st.sampled_from(["image.pbcor", "pbcor", "tt0.pbcor"]),
       st.sampled_from(["flux", "pb", "pb.tt0"]),
       st.sampled_from(["fits", "fits.gz"]), st.sampled_from(["mask", "mask.fits", "mask.fits.gz"]))
def test_free_form_stems_always_pair(stem, img_layer, pb_layer, pb_ext, mask):
    names = [f"{stem}.{img_layer}.fits", f"{stem}.{pb_layer}.{pb_ext}", f"{stem}.{mask}"]
    sets = product_sets(names)
    assert [s.image for s in sets] == [names[0]]
    assert (sets[0].pb, sets[0].mask) == (names[1], names[2])
    assert orphans(names) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=12))
def test_arbitrary_listings_never_raise(names):
    for s in product_sets(names):
        assert s.image in names and (s.pb is None or s.pb in names)
    for f in orphans(names):
        assert f.name in names


@settings(max_examples=400, deadline=None)
@given(product_names())
def test_scheme_keys_equal_the_parsed_image_key(fields):
    """The key cut from the string is ProductName.image_key, and Stokes swaps land on the Stokes token."""
    name = format_name(fields)
    f = classify_name(name)
    assert f is not None and f.parsed == fields
    assert (f.key, f.role, f.taylor) == (fields.image_key, fields.kind, fields.taylor)
    if fields.stokes != "I":
        from dataclasses import replace
        assert _with_stokes_key(f, "I") == replace(fields, stokes="I").image_key
