"""ALMA image-product file names: parse into fields and format back.

The delivery contract (seed §4.3) names products
``<MOUS>.<target>_<type>.spw<SPWs>.<imagetype>.<y>.<stokes>.<cmt>.<x>.<ext>``;
real deliveries add variants (reference images.md §3): a bare ``uid___``
prefix or ``member.``, quoted targets (``_name__sci``), ``regcal``/``selfcal``
before or after the Stokes token, Taylor terms (``tt0.pbcor``, ``pb.tt0``),
``alpha``/``alpha.error``/``beta``, ``manual`` (+ a band token) before
``image.pbcor``, ``sd``, ``flux``, a ``.v2`` version and gzipped companions.

``parse_name`` never raises: a name it cannot read gives ``None``
(``diagnose_name`` says why), so callers turn it into a finding.
``format_name`` is the exact inverse: ``format_name(parse_name(n)) == n``.
Pure string functions, no I/O.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace

__all__ = [
    "DATATYPES",
    "EXTENSIONS",
    "IMAGE_TYPES",
    "LAYERS",
    "STOKES",
    "TARGET_TYPES",
    "ProductName",
    "diagnose_name",
    "format_name",
    "layer_kind",
    "layer_taylor",
    "match_layer",
    "parse_name",
    "same_source",
    "source_name",
    "split_extension",
    "target_token",
]

#: ``<type>`` tokens: contract (sci, ph, bp, amp, chk, pol_leak), pipeline
#: intents (flux, pol, pang, plk), almaqa2isg (polleak).
TARGET_TYPES = ("pol_leak", "polleak", "pang", "plk", "pol", "sci", "ph", "bp",
                "amp", "flux", "chk", "check")
IMAGE_TYPES = ("mfs", "cont", "cube", "repBW")
#: Stokes tokens: single/combined parameters, derived P/A (manual) and
#: POLI/POLA (pipeline), CASA's derived plane names.
STOKES = ("I", "Q", "U", "V", "IQ", "IV", "QU", "UV", "IQU", "IQUV",
          "XX", "YY", "XXYY", "RR", "LL", "RRLL", "P", "A", "POLI", "POLA",
          "Plinear", "Ptotal", "Pangle")
DATATYPES = ("regcal", "selfcal")
ARRAYS = ("12m", "7m", "tp", "TP")
EXTRA_PREFIXES = ("ari_l",)
EXTENSIONS = ("fits.gz", "fits", "tgz", "tar.gz")

#: Product layers (the ``<x>`` part), as token tuples; ``tt#`` is a Taylor term.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("image", "tt#", "pbcor"), ("image", "pbcor"), ("tt#", "pbcor"), ("pbcor", "tt#"), ("pb", "tt#"),
    ("mask", "tt#"), ("image", "tt#"), ("alpha", "error"), ("sd", "weight"), ("sd", "im"),
    ("pbcor",), ("pbcorr",), ("pb",), ("mask",), ("flux",), ("sd",), ("alpha",),
    ("beta",), ("weight",), ("residual",), ("psf",), ("model",), ("image",), ("tt#",),
)
_TT = re.compile(r"tt\d+\Z")
_SPW_IDS = re.compile(r"(?:virt)?spw([\d_]+?)(?:_\d+(?:\.\d+)?[MG]Hz)?\Z")
_VERSION = re.compile(r"v\d+\Z")
_MOUS = re.compile(r"(member\.)?(uid___[A-Za-z0-9]+_X[0-9A-Za-z]+_X[0-9A-Za-z]+|oussid)\.")
_TYPES_RE = "|".join(TARGET_TYPES)
_SPW = r"(?:spw\d+(?:_\d+)*(?:_\d+(?:\.\d+)?[MG]Hz)?|virtspw\d+(?:_\d+)*|[A-Za-z0-9]+_band)"
_TARGET_SPW = re.compile(rf"_({_TYPES_RE})\.({_SPW})(?=\.)")
_CLEAN_SOURCE = re.compile(r"[A-Za-z0-9+\-_]+\Z")
_SANITIZE = re.compile(r"[^A-Za-z0-9_.+\-]")

def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_LAYER_RE = "|".join(
    r"\.".join(r"tt\d+" if t == "tt#" else re.escape(t) for t in layer)
    for layer in sorted(LAYERS, key=len, reverse=True))
#: Everything after ``spw<ids>.``: [array.]imagetype[.dt][.stokes][.dt][.cmt...][.layer][.vN]
_TAIL = re.compile(
    rf"(?:({_alt(ARRAYS)})\.)?({_alt(IMAGE_TYPES)})(?=\.|\Z)"
    rf"(?:\.({_alt(DATATYPES)})(?=\.|\Z))?"
    rf"(?:\.({_alt(STOKES)})(?=\.|\Z))?"
    rf"(?:\.({_alt(DATATYPES)})(?=\.|\Z))?"
    rf"((?:\.[^.]+)*?)"
    rf"(?:\.({_LAYER_RE}))?"
    rf"(?:\.(v\d+))?\Z")
_MISPLACED = frozenset(DATATYPES) | frozenset(IMAGE_TYPES)

_RESERVED = set(IMAGE_TYPES) | set(STOKES) | set(DATATYPES) | {
    t for layer in LAYERS for t in layer} | set(ARRAYS)


@dataclass(frozen=True)
class ProductName:
    """Structured fields of one product file name.

    Attributes hold the tokens exactly as written so that ``format_name``
    rebuilds the name byte for byte; properties give the interpreted view
    (``kind``, ``taylor``, ``spws``, ``source``, ``selfcal``, ``manual``).
    """

    mous: str | None            #: ``uid___A001_X1_X2``, ``oussid`` or None (no prefix)
    member_prefix: bool            #: name starts with ``member.``
    extra_prefix: str | None    #: e.g. ``ari_l`` after the MOUS
    target: str                    #: target token as written (quoted: ``_a_b_``)
    target_type: str               #: sci, ph, bp, amp, chk, pol_leak, ...
    spw: str                       #: spw token as written (``spw25_27``, ``L_band``)
    array: str | None           #: ``12m``/``7m`` token (ARI-L) or None
    imagetype: str                 #: mfs, cont, cube, repBW
    datatype_before: str | None  #: regcal/selfcal before Stokes (pipeline)
    stokes: str | None          #: I, IQUV, P, A, POLI, ... (None in old names)
    datatype_after: str | None  #: selfcal after Stokes (archive renaming)
    cmt: tuple[str, ...] = field(default_factory=tuple)  #: free tokens (manual, B6, lines)
    layer: tuple[str, ...] = field(default_factory=tuple)  #: ('tt0','pbcor'), ('pb',), () ...
    version: str | None = None  #: ``v2``
    ext: str = "fits"              #: fits, fits.gz, tgz, tar.gz

    # ---- interpreted view -------------------------------------------------
    @functools.cached_property
    def kind(self) -> str:
        """Product role: pbcor, pb, mask, sd, alpha, alpha.error, beta, weight, image, ..."""
        return layer_kind(self.layer)

    @functools.cached_property
    def taylor(self) -> int | None:
        """Taylor-term index (``tt0`` → 0) or None."""
        return layer_taylor(self.layer)

    @functools.cached_property
    def spws(self) -> tuple[int, ...]:
        """Spectral-window ids in the spw token (empty for band tokens)."""
        m = _SPW_IDS.match(self.spw)
        if not m:
            return ()
        return tuple(int(x) for x in m.group(1).split("_") if x)

    @property
    def datatype(self) -> str | None:
        """``selfcal``/``regcal`` wherever it was written, else None."""
        return self.datatype_before or self.datatype_after

    @property
    def selfcal(self) -> bool:
        return self.datatype == "selfcal"

    @property
    def manual(self) -> bool:
        return "manual" in self.cmt

    @property
    def quoted(self) -> bool:
        """Target was quoted by the pipeline (``_name_`` → ``._name__sci.``)."""
        return len(self.target) >= 2 and self.target.startswith("_") and self.target.endswith("_")

    @property
    def source(self) -> str:
        """Target name without the quoting underscores."""
        return self.target[1:-1] if self.quoted else self.target

    @property
    def gzipped(self) -> bool:
        return self.ext.endswith("gz")

    @functools.cached_property
    def image_key(self) -> str:
        """Name without layer and extension: pbcor, pb, mask and alpha of one image share it."""
        return _join(self._stem_tokens(with_layer=False) + ([self.version] if self.version else []))

    @property
    def target_key(self) -> tuple[str | None, str, str]:
        """(MOUS, target, type): products of one target share it."""
        return (self.mous, self.target, self.target_type)

    def _stem_tokens(self, with_layer: bool = True) -> list[str]:
        out: list[str] = []
        if self.mous is not None:
            if self.member_prefix:
                out.append("member")
            out.append(self.mous)
            if self.extra_prefix:
                out.append(self.extra_prefix)
        out.append(f"{self.target}_{self.target_type}")
        out.append(self.spw)
        if self.array:
            out.append(self.array)
        out.append(self.imagetype)
        if self.datatype_before:
            out.append(self.datatype_before)
        if self.stokes:
            out.append(self.stokes)
        if self.datatype_after:
            out.append(self.datatype_after)
        out.extend(self.cmt)
        if with_layer:
            out.extend(self.layer)
            if self.version:
                out.append(self.version)
        return out


def layer_kind(layer: tuple[str, ...]) -> str:
    """Product role of a layer: pbcor, pb (also the old ``flux``), mask, sd, alpha, image, ...

    The one mapping from the ``<x>`` tokens to a role, for scheme names and
    free-form names alike (``almaqa_casa.delivery.products``).
    """
    toks = [t for t in layer if not _TT.match(t)]
    if not toks:
        return "image"
    if "pbcor" in toks or "pbcorr" in toks:
        return "pbcor"
    if toks == ["flux"]:
        return "pb"
    if toks[0] == "sd":
        return "sd" if len(toks) == 1 or toks[1] == "im" else "sd." + toks[1]
    return ".".join(toks)


def layer_taylor(layer: tuple[str, ...]) -> int | None:
    """Taylor-term index in a layer (``('tt0', 'pbcor')`` → 0) or None."""
    for t in layer:
        if _TT.match(t):
            return int(t[2:])
    return None


def _join(tokens: list[str]) -> str:
    return ".".join(tokens)


def format_name(fields: ProductName) -> str:
    """Rebuild the file name from its fields (inverse of ``parse_name``)."""
    return _join(fields._stem_tokens()) + "." + fields.ext


def parse_name(name: str) -> ProductName | None:
    """Parse a product file name (basename); None when it does not follow the scheme."""
    fields, _ = _parse(name)
    return fields


def diagnose_name(name: str) -> str | None:
    """Why ``name`` does not parse (None when it parses)."""
    _, err = _parse(name)
    return err


def _parse(name: object) -> tuple[ProductName | None, str | None]:
    if isinstance(name, str):
        return _parse_cached(name)
    return None, "name is not a string"


@functools.lru_cache(maxsize=65536)
def _parse_cached(name: str) -> tuple[ProductName | None, str | None]:
    """Parses are cached: a validation looks at each name from several checks."""
    try:
        return _parse_unsafe(name)
    except Exception as exc:  # pragma: no cover - defensive: never raise
        return None, f"unparseable name ({type(exc).__name__}: {exc})"


def split_extension(name: str) -> tuple[str, str | None]:
    """``'x.pb.fits.gz'`` → ``('x.pb', 'fits.gz')``; the extension is None when not one of EXTENSIONS."""
    for ext in EXTENSIONS:
        if name.endswith("." + ext) and len(name) > len(ext) + 1:
            return name[: -len(ext) - 1], ext
    return name, None


_LAYER_SET = frozenset(LAYERS)
_LAYER_MAXLEN = max(len(x) for x in LAYERS)


def match_layer(tokens: list[str]) -> tuple[str, ...]:
    """Longest known layer at the end of ``tokens`` (empty tuple if none)."""
    for n in range(min(_LAYER_MAXLEN, len(tokens)), 0, -1):
        tail = tokens[-n:]
        norm = tuple("tt#" if (t[:2] == "tt" and _TT.match(t)) else t for t in tail)
        if norm in _LAYER_SET:
            return tuple(tail)
    return ()


def _parse_unsafe(name: object) -> tuple[ProductName | None, str | None]:
    if not isinstance(name, str):
        return None, "name is not a string"
    if not name or "/" in name or "\x00" in name:
        return None, "empty name or name with a path separator"
    body, ext = split_extension(name)
    if ext is None:
        return None, "extension is not one of " + ", ".join("." + e for e in EXTENSIONS)

    mous = None
    member = False
    extra = None
    rest = body
    m = _MOUS.match(rest)
    if m:
        member = bool(m.group(1))
        mous = m.group(2)
        rest = rest[m.end():]
        for p in EXTRA_PREFIXES:
            if rest.startswith(p + "."):
                extra = p
                rest = rest[len(p) + 1:]
                break
    elif rest.startswith("member."):
        return None, "'member.' is not followed by a MOUS uid (uid___A001_X.._X..)"

    t = _TARGET_SPW.search(rest)
    if not t:
        return None, ("no '<target>_<type>.spw<ids>.' part (type one of "
                      + ", ".join(TARGET_TYPES) + ")")
    target = rest[: t.start()]
    if not target:
        return None, "empty target name"
    if target.startswith(".") or target.endswith(".") or ".." in target:
        return None, f"malformed target name {target!r}"
    target_type, spw = t.group(1), t.group(2)
    tail = rest[t.end() + 1:]
    if not tail or tail.endswith(".") or ".." in tail:
        return None, "empty token (double dot) after the spw part"
    m2 = _TAIL.match(tail)
    if m2 is None:
        got = tail.split(".", 2)
        got = got[1] if got[0] in ARRAYS and len(got) > 1 else got[0]
        return None, f"image type must be one of {', '.join(IMAGE_TYPES)}, found {got!r}"
    array, imagetype, dt_before, stokes, dt_after, cmt_s, layer_s, version = m2.groups()
    cmt = tuple(cmt_s[1:].split(".")) if cmt_s else ()
    layer = tuple(layer_s.split(".")) if layer_s else ()
    if dt_before and dt_after:
        return None, f"token {dt_after!r} out of place"
    for c in cmt:
        if c in _MISPLACED:
            return None, f"token {c!r} out of place"
    if not layer and version is None and stokes is None:
        return None, "no Stokes token and no product type (pbcor, pb, mask, ...)"
    # same as ProductName(...) without the per-field frozen __setattr__ cost
    obj = object.__new__(ProductName)
    obj.__dict__.update(
        mous=mous, member_prefix=member, extra_prefix=extra, target=target,
        target_type=target_type, spw=spw, array=array, imagetype=imagetype,
        datatype_before=dt_before, stokes=stokes, datatype_after=dt_after,
        cmt=cmt, layer=layer, version=version, ext=ext)
    return obj, None


# ---- target names ---------------------------------------------------------
def target_token(source: str) -> str:
    """The target token the pipeline writes for a field name.

    Clean names (``[A-Za-z0-9+-_]``, not digit-only) stay as they are; others
    are quoted and sanitised: ``'NGC 253.1'`` → ``'_NGC_253.1_'`` (so the file
    name reads ``._NGC_253.1__sci.``).
    """
    if _CLEAN_SOURCE.match(source) and not source.isdigit():
        return source
    return "_" + _SANITIZE.sub("_", source) + "_"


def source_name(target: str) -> str:
    """Target token without quoting underscores."""
    if len(target) >= 2 and target.startswith("_") and target.endswith("_"):
        return target[1:-1]
    return target


def same_source(a: str, b: str) -> bool:
    """Whether two target tokens name the same source (quoting, '+' vs 'p', case)."""
    def norm(s: str) -> str:
        s = source_name(s).replace("+", "p")
        return re.sub(r"[^A-Za-z0-9p\-.]", "_", s).lower()
    return norm(a) == norm(b)


def with_layer(fields: ProductName, layer: tuple[str, ...], ext: str) -> ProductName:
    """Same product with another layer/extension (e.g. the pb of a pbcor)."""
    return replace(fields, layer=layer, ext=ext)
