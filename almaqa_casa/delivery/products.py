"""Which primary beam and mask belong to an image: one rule for every naming era (pure).

Every consumer (qa_validate, qa_restore's image recovery, qa_polmaps, the
layout classification) asks this module; no other module pairs products.
It works on a list of names (a folder listing, a tar listing, paths or
basenames); names pair only with names of the same folder.  A name without
an extension (or ending in ``/``) is taken as a CASA image folder.

What pairs (reference images.md §2.5, §3; realworld.md "Layout by era"):

* archive scheme (``member.uid___...`` from Cycle 5, bare ``uid___...`` in
  Cycle 3-4, manual ``...manual.image.pbcor.fits``): ``X.pbcor.fits`` with
  ``X.pb.fits(.gz)`` and ``X.mask.fits(.gz)`` (``X`` is the name without
  its layer: ``naming.ProductName.image_key``);
* multi-term: ``X.tt0.pbcor.fits`` and ``X.tt1.pbcor.fits`` both with
  ``X.pb.tt0.fits(.gz)``; ``X.alpha.fits``, ``X.alpha.error.fits`` are
  companions of the set;
* the old README's impbcor example and Cycle 2-3 manual free-form names:
  ``<name>.image.pbcor.fits`` with ``<name>.flux.fits(.gz)``, the mask a CASA
  ``<name>.mask`` image folder (or ``<name>.mask.fits``);
* full polarization: ``X.IQUV.pbcor.fits`` with its own pb, else the Stokes-I
  image's (``X.I.pb.fits.gz``); a P/A image belongs to the IQUV image of the
  same target, spws, image type and Taylor term; P borrows that pb, an angle
  image (A) needs none;
* total power: ``X.sd.fits`` (and ``X.sd.weight.fits``) needs no pb.

Preferences when several files qualify: the same Taylor term, then tt0; a
``pb`` before an older ``flux``; ``.fits`` before ``.fits.gz`` before a CASA
image folder before a tarred image.
"""
from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .naming import (
    STOKES,
    TARGET_TYPES,
    ProductName,
    format_name,
    layer_kind,
    layer_taylor,
    match_layer,
    parse_name,
    split_extension,
)

__all__ = [
    "COMPANION_ROLES",
    "IMAGE_ROLES",
    "NAMINGS",
    "NAMING_BARE_UID",
    "NAMING_FREE_FORM",
    "NAMING_NONCONFORMING",
    "NAMING_NO_MOUS",
    "NAMING_SCHEME",
    "POL_ANGLE",
    "POL_DERIVED",
    "POL_INPUT",
    "POL_INTENSITY",
    "ProductFile",
    "ProductSet",
    "classify_name",
    "mask_for",
    "orphans",
    "pair",
    "pb_candidates",
    "pb_for",
    "product_set_for",
    "product_sets",
]

#: Roles of images (a product set is built around each).
IMAGE_ROLES = ("pbcor", "image", "sd")
#: Roles that travel with an image without being its pb or mask.
COMPANION_ROLES = ("alpha", "alpha.error", "beta", "weight", "sd.weight", "residual", "psf", "model")
#: Stokes tokens of images P and A are made from; derived intensity and angle tokens.
POL_INPUT = ("IQUV", "IQU", "QU")
POL_INTENSITY = ("P", "POLI", "Plinear", "Ptotal")
POL_ANGLE = ("A", "POLA", "Pangle")
POL_DERIVED = POL_INTENSITY + POL_ANGLE
#: Stokes images that may borrow the primary beam of the IQUV / Stokes-I image.
_BORROWS_PB = POL_INPUT + POL_INTENSITY + ("Q", "U", "V", "IQ", "IV", "QU", "UV")

#: Naming styles.  ``scheme``: the archive scheme with ``member.uid___`` (Cycle 5 on) or the
#: pipeline's ``oussid.``; ``bare-uid``: the scheme with a bare ``uid___`` prefix (Cycle 3-4);
#: ``no-mous``: the scheme without MOUS prefix; ``free-form``: ``<name>.<layer>.<ext>`` of manual
#: imaging before the archive scheme (Cycle 2-3); ``nonconforming``: starts like a scheme name
#: but does not parse (``naming.diagnose_name`` says why).  Pairing works for all of them.
NAMING_SCHEME = "scheme"
NAMING_BARE_UID = "bare-uid"
NAMING_NO_MOUS = "no-mous"
NAMING_FREE_FORM = "free-form"
NAMING_NONCONFORMING = "nonconforming"
NAMINGS = (NAMING_SCHEME, NAMING_BARE_UID, NAMING_NO_MOUS, NAMING_FREE_FORM, NAMING_NONCONFORMING)

_EXT_RANK = {"fits": 0, "fits.gz": 1, "": 2, "tgz": 3, "tar.gz": 3}
_VERSION = re.compile(r"v\d+\Z")
_SCHEME_START = re.compile(r"(member\.|uid___[A-Za-z0-9]+_X|oussid\.)")
_SCHEME_BODY = re.compile(rf"_(?:{'|'.join(TARGET_TYPES)})\.(?:virt)?spw\d")
_STOKES_SET = frozenset(STOKES)


@dataclass(frozen=True)
class ProductFile:
    """One product name and what it is (pure data).

    ``name`` is the string given (path or basename); ``key`` is the name
    without layer and extension (products of one image share it within a
    folder); ``role`` is pbcor, image, sd, pb (also an old ``flux``), mask,
    alpha, alpha.error, ...; ``ext`` is ``fits``, ``fits.gz``, ``tgz``,
    ``tar.gz`` or ``''`` for a CASA image folder.
    """

    name: str
    folder: str
    base: str
    role: str
    key: str
    taylor: int | None
    ext: str
    naming: str
    layer: tuple[str, ...]
    version: str | None
    stokes: str | None
    parsed: ProductName | None

    @property
    def fits(self) -> bool:
        """A FITS file (plain or gzipped) astropy and, once gunzipped, CASA read."""
        return self.ext in ("fits", "fits.gz")

    @property
    def casa_image(self) -> bool:
        return self.ext == ""

    @property
    def manual(self) -> bool:
        """Manual imaging: a ``manual`` token, or a free-form name."""
        return self.parsed.manual if self.parsed is not None else self.naming == NAMING_FREE_FORM


@dataclass(frozen=True)
class ProductSet:
    """An image with the primary beam and mask that belong to it.

    ``pb_rule`` says how the pb was found (``'same name'``, ``'flux image'``,
    ``'tt0 primary beam'``, ``'Stokes I image'``, ...); ``companions`` are the
    other files of the image (alpha, weight, ...); for an IQUV image
    ``polarization`` lists its P/A images, for a P/A image ``pol_source`` is
    the IQUV image.
    """

    image: str
    kind: str
    pb: str | None
    mask: str | None
    key: str
    folder: str
    naming: str
    taylor: int | None = None
    stokes: str | None = None
    manual: bool = False
    pb_rule: str | None = None
    companions: tuple[str, ...] = ()
    polarization: tuple[str, ...] = ()
    pol_source: str | None = None

    @property
    def needs_pb(self) -> bool:
        """Whether a missing pb is a gap: pbcor images, except derived P/A maps."""
        return self.kind == "pbcor" and self.stokes not in POL_DERIVED

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("companions", "polarization"):
            d[k] = list(d[k])
        return d


def _new(cls, **fields):
    """A frozen dataclass instance without the per-field ``__setattr__`` cost (thousands per member)."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


# ---- one name ----------------------------------------------------------------------
def _naming_of(p: ProductName) -> str:
    if p.mous is None:
        return NAMING_NO_MOUS
    if p.member_prefix or p.mous == "oussid":
        return NAMING_SCHEME
    return NAMING_BARE_UID


def classify_name(name: str) -> ProductFile | None:
    """What a product name is, or None when it is not a product name.

    Scheme names are read by :func:`naming.parse_name`; other names by their
    layer suffix (``.image.pbcor``, ``.flux``, ``.mask``, ``.pb.tt0``, ...),
    as free-form names or, when they start like a scheme name, nonconforming.
    """
    if not isinstance(name, str) or not name.strip("/") or "\x00" in name:
        return None
    bare = name.rstrip("/")
    folder, base = posixpath.split(bare) if "/" in bare else ("", bare)
    if not base:
        return None
    stem, ext = split_extension(base)
    if ext is None:
        stem, ext = base, ""
    parsed = parse_name(base if ext else base + ".fits")
    if parsed is not None:
        layer, version = parsed.layer, parsed.version
        # the name without its layer: ProductName.image_key, cut from the string (format_name
        # rebuilds the name exactly, so the layer and version are its last tokens)
        key = stem[: len(stem) - len(version) - 1] if version else stem
        if layer:
            key = key[: len(key) - sum(map(len, layer)) - len(layer)]
        if version:
            key += "." + version
        return _new(ProductFile, name=name, folder=folder, base=base, role=layer_kind(layer),
                    key=key, taylor=layer_taylor(layer), ext=ext, naming=_naming_of(parsed),
                    layer=layer, version=version, stokes=parsed.stokes, parsed=parsed)
    tokens = stem.split(".")
    version = None
    if len(tokens) > 1 and _VERSION.match(tokens[-1]):
        version = tokens.pop()
    layer = match_layer(tokens)
    keytoks = tokens[: len(tokens) - len(layer)]
    if not layer or not keytoks or any(not t for t in keytoks):
        return None
    naming = (NAMING_NONCONFORMING if _SCHEME_START.match(stem) or _SCHEME_BODY.search(stem)
              else NAMING_FREE_FORM)
    stokes = keytoks[-1] if len(keytoks) > 1 and keytoks[-1] in _STOKES_SET else None
    return _new(ProductFile, name=name, folder=folder, base=base, role=layer_kind(layer),
                key=".".join(keytoks + ([version] if version else [])),
                taylor=layer_taylor(layer), ext=ext, naming=naming, layer=layer,
                version=version, stokes=stokes, parsed=None)


def _with_stokes_key(f: ProductFile, stokes: str) -> str | None:
    """The key of the same image with another Stokes token (None when it has none)."""
    if f.stokes is None or f.stokes == stokes:
        return None
    if f.parsed is not None:  # tokens after Stokes: [datatype] [cmt...] [version]
        p = f.parsed
        after = (1 if p.datatype_after else 0) + len(p.cmt) + (1 if p.version else 0)
    else:
        after = 1 if f.version else 0
    parts = f.key.rsplit(".", after + 1)
    if len(parts) != after + 2 or parts[1] != f.stokes:
        return None
    parts[1] = stokes
    return ".".join(parts)


def _rank(image: ProductFile, cand: ProductFile) -> tuple:
    tt = (0 if cand.taylor == image.taylor else 1 if cand.taylor == 0 else
          2 if cand.taylor is None else 3)
    old = 1 if cand.layer[:1] == ("flux",) else 0
    return (tt, old, _EXT_RANK.get(cand.ext, 4), cand.name)


def _pb_rule(image: ProductFile, pb: ProductFile) -> str:
    if pb.layer[:1] == ("flux",):
        return "flux image"
    if pb.taylor == image.taylor:
        return "same name"
    if pb.taylor is not None:
        return f"tt{pb.taylor} primary beam"
    return "single-term primary beam"


def _pol_key(f: ProductFile) -> tuple | None:
    p = f.parsed
    if p is None:
        return None
    return (f.folder, p.mous, p.target, p.target_type, p.spw, p.imagetype, p.datatype, f.taylor)


# ---- sets ------------------------------------------------------------------------------
def _files(names: Iterable[str | ProductFile]) -> list[ProductFile]:
    """Classified names, each once (a :class:`ProductFile` given is taken as it is)."""
    seen: set[str] = set()
    out = []
    for n in names:
        f = n if isinstance(n, ProductFile) else None
        key = f.name if f is not None else n
        if key in seen:
            continue
        seen.add(key)
        if f is None:
            f = classify_name(n)
        if f is not None:
            out.append(f)
    return out


def _build(files: list[ProductFile]) -> list[ProductSet]:
    groups: dict[tuple[str, str], list[ProductFile]] = defaultdict(list)
    for f in files:
        groups[(f.folder, f.key)].append(f)

    def best(image: ProductFile, group: list[ProductFile], role: str) -> ProductFile | None:
        return min((c for c in group if c.role == role), key=lambda c: _rank(image, c), default=None)

    images = [f for f in files if f.role in IMAGE_ROLES]
    by_pol: dict[tuple, list[ProductFile]] = defaultdict(list)
    pol_keys = {}
    for f in images:
        k = pol_keys[f.name] = _pol_key(f)
        if k is not None:
            by_pol[k].append(f)
    sets = []
    for img in sorted(images, key=lambda f: f.name):
        group = groups[(img.folder, img.key)]
        pb, mask = best(img, group, "pb"), best(img, group, "mask")
        rule = _pb_rule(img, pb) if pb is not None else None
        if img.stokes in _BORROWS_PB:
            for st in ("IQUV", "I"):
                alt = _with_stokes_key(img, st)
                other = groups.get((img.folder, alt)) if alt else None
                if not other:
                    continue
                if pb is None:
                    pb = best(img, other, "pb")
                    rule = f"Stokes {st} image" if pb is not None else None
                if mask is None:
                    mask = best(img, other, "mask")
        pol, source = (), None
        pk = pol_keys[img.name]
        if pk is not None and img.stokes in POL_INPUT:
            pol = tuple(sorted(f.name for f in by_pol[pk] if f.stokes in POL_DERIVED))
        elif pk is not None and img.stokes in POL_DERIVED:
            src = sorted((f for f in by_pol[pk] if f.stokes in POL_INPUT),
                         key=lambda f: (f.role != "pbcor", f.stokes != "IQUV", f.name))
            source = src[0].name if src else None
        companions = tuple(sorted(f.name for f in group if f.role in COMPANION_ROLES))
        sets.append(_new(
            ProductSet, image=img.name, kind=img.role, pb=pb.name if pb else None,
            mask=mask.name if mask else None, key=img.key, folder=img.folder, naming=img.naming,
            taylor=img.taylor, stokes=img.stokes, manual=img.manual, pb_rule=rule,
            companions=companions, polarization=pol, pol_source=source))
    return sets


def product_sets(names: Iterable[str]) -> list[ProductSet]:
    """One :class:`ProductSet` per image (pbcor, uncorrected image, sd) among ``names``, sorted."""
    return _build(_files(names))


def pair(names: Iterable[str | ProductFile]) -> tuple[list[ProductSet], list[ProductFile]]:
    """:func:`product_sets` and :func:`orphans` from one classification of ``names``.

    ``names`` may hold :class:`ProductFile` objects already classified.
    """
    files = _files(names)
    sets = _build(files)
    used = {x for s in sets for x in (s.pb, s.mask) if x}
    return sets, [f for f in files if f.role in ("pb", "mask") and f.name not in used]


def product_set_for(image_name: str, names: Iterable[str]) -> ProductSet | None:
    """The set of ``image_name`` (added to ``names`` when not listed); None if it is no image name."""
    names = list(names)
    if image_name not in names:
        names.append(image_name)
    for s in product_sets(names):
        if s.image == image_name:
            return s
    return None


def pb_for(image_name: str, names: Iterable[str]) -> str | None:
    """The primary beam of ``image_name`` among ``names`` (as listed), or None."""
    s = product_set_for(image_name, names)
    return s.pb if s is not None else None


def mask_for(image_name: str, names: Iterable[str]) -> str | None:
    """The clean mask of ``image_name`` among ``names`` (as listed), or None."""
    s = product_set_for(image_name, names)
    return s.mask if s is not None else None


def orphans(names: Iterable[str]) -> list[ProductFile]:
    """Primary beams and masks that belong to no image."""
    return pair(names)[1]


def pb_candidates(image_name: str) -> list[str]:
    """Primary-beam names the rule accepts for ``image_name``, most preferred first.

    For messages ("none of ... exists"); :func:`pb_for` decides from a
    listing.  Same folder as the image; empty when it is no image name.
    """
    img = classify_name(image_name)
    if img is None or img.role not in IMAGE_ROLES:
        return []

    def names_for(stokes: str | None) -> list[str]:
        layers = {("pb",), ("pb", "tt0"), ("flux",)}
        if img.taylor is not None:
            layers.add(("pb", f"tt{img.taylor}"))
        cands = [classify_name(_name_with(img, layer, ext, stokes))
                 for layer in layers for ext in ("fits", "fits.gz", "")]
        cands = [c for c in cands if c is not None and c.role == "pb"]
        return [c.name for c in sorted(cands, key=lambda c: _rank(img, c))]

    out = names_for(None)
    if img.stokes in _BORROWS_PB:
        for st in ("IQUV", "I"):
            if _with_stokes_key(img, st):
                out += names_for(st)
    prefix = img.folder + "/" if img.folder else ""
    return [prefix + n for n in dict.fromkeys(out)]


def _name_with(f: ProductFile, layer: tuple[str, ...], ext: str, stokes: str | None) -> str:
    """``f``'s name with another layer, extension and (optionally) Stokes token."""
    if f.parsed is not None:
        p = replace(f.parsed, layer=layer, ext=ext or "fits",
                    **({"stokes": stokes} if stokes else {}))
        n = format_name(p)
        return n if ext else n[: -len(".fits")]
    key = f.key if not stokes else (_with_stokes_key(f, stokes) or f.key)
    toks = key.split(".")
    if f.version:
        toks = toks[:-1]
    toks += list(layer) + ([f.version] if f.version else [])
    return ".".join(toks) + ("." + ext if ext else "")
