"""Parameters of a synthetic delivery and everything derived from them.

All names and UIDs are deterministic functions of the seed, so two builds
with one seed give the same tree.  The sky, the instrument and the schedule
are fixed here so that tests and the truth file share one definition.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re

import numpy as np

#: ALMA antenna names used for the simulated 12-m antennas (in pad order).
ANTENNA_NAMES = ("DA41", "DA42", "DA44", "DA45", "DA49", "DV03", "DV08", "DV11",
                 "DV17", "DV20") + tuple(
    f"DA{n}" for n in (43, 46, 47, 48, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64)
) + tuple(f"DV{n:02d}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 18))
#: Most antennas a delivery can have (one per pad of :data:`CONFIG_FILE`).
MAX_ANTENNAS = 43
#: Most EBs a spec can name (text-only skeletons); generate() simulates at most 6.
MAX_EBS = 64
MAX_SIMULATED_EBS = 6
#: Proposal year of each cycle's project codes (``<year>.1.<nnnnn>.S``).
CYCLE_YEAR = {1: 2012, 2: 2013, 3: 2015, 4: 2016, 5: 2017, 6: 2018, 7: 2019, 8: 2021,
              9: 2022, 10: 2023, 11: 2024, 12: 2025}
#: SynthSpec fields that describe the delivery's shape.
SHAPE_FIELDS = ("cycle", "sessions", "manifest", "caltables_naming", "sacm", "post_scripts",
                "total_power", "ppr_sessions")
#: Antenna configuration file (casadata ``alma/simmos``); the most compact one.
CONFIG_FILE = "alma.cycle10.1.cfg"
#: Reference antenna for the calibration solves.
REFANT = "DA41"
#: Integration time, as ALMA's 12-m correlator uses for this kind of setup.
INTEGRATION_S = 12.096
#: Reference frequency for fluxes and spectral indices.
REF_FREQ_HZ = 100.0e9

INTENT_CASA = {
    "BANDPASS": "CALIBRATE_BANDPASS#ON_SOURCE",
    "FLUX": "CALIBRATE_FLUX#ON_SOURCE",
    "PHASE": "CALIBRATE_PHASE#ON_SOURCE",
    "CHECK": "OBSERVE_CHECK_SOURCE#ON_SOURCE",
    "TARGET": "OBSERVE_TARGET#ON_SOURCE",
    "POLARIZATION": "CALIBRATE_POLARIZATION#ON_SOURCE",
}


@dataclasses.dataclass(frozen=True)
class SpwDef:
    """One spectral window: ASDM/MS id equals its index."""

    name: str
    center_hz: float
    nchan: int
    width_hz: float
    kind: str  # 'FDM' or 'TDM'

    @property
    def freqs(self) -> np.ndarray:
        return self.center_hz + (np.arange(self.nchan) - (self.nchan / 2 - 0.5)) * self.width_hz

    @property
    def bandwidth_hz(self) -> float:
        return self.nchan * self.width_hz


#: Three FDM windows (60 channels; msmd counts spws without 64/128/256
#: channels as FDM) and one TDM window (128 channels over 2 GHz), Band 3.
SPWS = (
    SpwDef("X0000000000#ALMA_RB_03#BB_1#SW-01#FULL_RES", 100.25e9, 60, 3.125e6, "FDM"),
    SpwDef("X0000000000#ALMA_RB_03#BB_2#SW-01#FULL_RES", 102.05e9, 60, 3.125e6, "FDM"),
    SpwDef("X0000000000#ALMA_RB_03#BB_3#SW-01#FULL_RES", 112.05e9, 60, 3.125e6, "FDM"),
    SpwDef("X0000000000#ALMA_RB_03#BB_4#SW-01#FULL_RES", 114.0e9, 128, 15.625e6, "TDM"),
)


@dataclasses.dataclass(frozen=True)
class SourceDef:
    name: str
    ra: str
    dec: str
    role: str  # 'bp', 'ph', 'chk', 'sci', 'pol'
    intents: tuple[str, ...]  # pipeline intent names
    flux_jy: float  # Stokes I at REF_FREQ_HZ
    spix: float
    pol_frac: float = 0.0
    pol_angle_deg: float = 0.0


BANDPASS = SourceDef("J1924-2914", "19h24m51.056s", "-29d14m30.12s", "bp",
                     ("BANDPASS", "FLUX"), 3.20, -0.60)
PHASE = SourceDef("J1937-2742", "19h37m00.000s", "-27d42m00.00s", "ph",
                  ("PHASE",), 0.85, -0.70)
CHECK = SourceDef("J1932-2553", "19h32m00.000s", "-25d53m00.00s", "chk",
                  ("CHECK",), 0.12, -0.50)
TARGET = SourceDef("Synth_Disk", "19h30m00.000s", "-27d00m00.00s", "sci",
                   ("TARGET",), 0.20, 2.30)
TARGET_POL = dataclasses.replace(TARGET, pol_frac=0.08, pol_angle_deg=35.0)
POLCAL = SourceDef("J1945-2810", "19h45m00.000s", "-28d10m00.00s", "pol",
                   ("POLARIZATION",), 1.10, -0.55, pol_frac=0.05, pol_angle_deg=-20.0)

#: The PI's science goal as the Observing Tool states it in every EB's
#: SBSummary.xml ("key = value unit" strings, a real file's order): a
#: continuum goal on the representative (TDM) window, sensitivity at the
#: aggregate bandwidth of the four windows.
SCIENCE_GOAL = (
    ("representativeFrequency", "114.0 GHz"),
    ("minAcceptableAngResolution", "3.0 arcsec"),
    ("maxAcceptableAngResolution", "7.0 arcsec"),
    ("dynamicRange", "1.0"),
    ("representativeBandwidth", "2562.5 MHz"),
    ("representativeSource", TARGET.name),
    ("sensitivityGoal", "6.0 mJy"),
    ("SBName", "Synth_Disk_a_03_TM1"),
    ("representativeWindow", SPWS[3].name),
    ("maxAllowedBeamAxialRatio", "999.999"),
    ("spectralDynamicRangeBandWidth", "2562.5 MHz"),
)

#: Science line in the target's cross-correlations (spw 0).
LINE = {"spw": 0, "center_hz": 100.30e9, "fwhm_hz": 15.0e6, "peak_jy": 0.12}
#: Renormalization signal: a line in the target's autocorrelations of spw 1,
#: and the cross-correlations under-scaled by the same spectrum.
RENORM = {"spw": 1, "center_hz": 102.08e9, "fwhm_hz": 12.0e6, "peak": 0.05}
#: Noise per real/imaginary part of one visibility (one 12.096 s integration,
#: one 3.125 MHz channel); scaled by sqrt(3.125 MHz / channel width).
NOISE_JY_REF = 0.2
NOISE_REF_WIDTH_HZ = 3.125e6
#: Autocorrelation noise, relative.
AUTO_NOISE_REL = 2.0e-4


def gaussian(x, center, fwhm):
    return np.exp(-4.0 * np.log(2.0) * ((x - center) / fwhm) ** 2)


def renorm_scaling(freqs: np.ndarray, spw: int) -> np.ndarray:
    """The injected renormalization scaling spectrum (1 outside its spw)."""
    if spw != RENORM["spw"]:
        return np.ones_like(freqs)
    return 1.0 + RENORM["peak"] * gaussian(freqs, RENORM["center_hz"], RENORM["fwhm_hz"])


def stokes_spectrum(src: SourceDef, freqs: np.ndarray, spw: int):
    """True (I, Q, U, V) spectra of a point source at its phase centre."""
    i = src.flux_jy * (freqs / REF_FREQ_HZ) ** src.spix
    if src.role == "sci" and spw == LINE["spw"]:
        i = i + LINE["peak_jy"] * gaussian(freqs, LINE["center_hz"], LINE["fwhm_hz"])
    p = src.pol_frac * i
    chi = np.deg2rad(src.pol_angle_deg)
    return i, p * np.cos(2 * chi), p * np.sin(2 * chi), np.zeros_like(i)


def line_channels(spw: int, nsigma_fwhm: float = 1.5) -> tuple[int, int]:
    """Channel range (inclusive) covered by the science line in ``spw``."""
    f = SPWS[spw].freqs
    m = np.abs(f - LINE["center_hz"]) <= nsigma_fwhm * LINE["fwhm_hz"]
    idx = np.nonzero(m)[0]
    return int(idx[0]), int(idx[-1])


def _hexid(rng: np.random.Generator, lo: int, hi: int) -> str:
    return "X%x" % int(rng.integers(lo, hi))


#: Calibration kinds: pipeline (calapply lists and caltables), manual
#: (per-EB scriptForCalibration.py) or semipass (raw data only).
CALIBRATIONS = ("pipeline", "manual", "semipass")
#: Post-restore scripts scriptForPI.py runs in ``calibrated/``, in its order.
POST_SCRIPTS = ("PolCal", "FluxCal", "ImagingPrep")
#: Caltable tarball naming: ``<mous>.session_<k>.caltables.tgz`` or ``<mous>.s<k>.caltables.tgz``.
CALTABLES_NAMING = ("session", "s")
#: ALMA observing cycles the shapes imitate.
CYCLES = tuple(range(1, 13))
_SESSION_RE = re.compile(r"session_[1-9]\d*\Z")


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """What to build.  Everything else follows from these fields.

    The shape fields (``cycle`` ... ``ppr_sessions``) say which real
    delivery shape the tree imitates; their defaults give today's modern
    shape (Cycle 12, one session, manifest present)."""

    calibration: str = "pipeline"
    polarization: bool = False
    nebs: int = 2
    selfcal: bool = False
    seed: int = 12345
    tars: bool = False
    nant: int = 8
    #: CASA version the manual scripts demand ('' = accept any 6.x >= 6.5).
    casa_version_pin: str = ""
    #: ALMA cycle whose layout, names and versions the delivery follows (1-12).
    cycle: int = 12
    #: Session of each EB (``session_<k>``); empty: every EB in ``session_1``.
    sessions: tuple[str, ...] = ()
    #: Write ``pipeline_manifest.xml``; None: as the era did (Cycle 5 on).
    manifest: bool | None = None
    #: ``'session'`` or ``'s'`` (Cycle 10+ ``<mous>.s<k>.caltables.tgz``).
    caltables_naming: str = "session"
    #: Cycle 5-6 SACM/JAO restore pre-step (``bdfflags=False`` import and
    #: ``fixsyscaltimes``), with an ASDM whose SysCal needs the fix.
    sacm: bool = False
    #: Scripts scriptForPI.py runs after the restore (subset of POST_SCRIPTS).
    post_scripts: tuple[str, ...] = ()
    #: Total power (hsd_restoredata, ocorr_mode='ao'): generate() simulates
    #: ON/OFF autocorrelations of 4 TP antennas (:mod:`.tp_build`; with
    #: ``calibration='manual'`` per-EB scriptForSDCalibration.py, :mod:`.tp_manual`);
    #: skeletons write the pipeline names as text.
    total_power: bool = False
    #: SESSION_<k> intents of the PPR per EB when they differ from
    #: ``sessions`` (real PPRs disagree with the restore script); empty: same.
    ppr_sessions: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("sessions", "post_scripts", "ppr_sessions"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, not {self.calibration!r}")
        if not 1 <= int(self.nebs) <= MAX_EBS:
            raise ValueError(f"nebs must be between 1 and {MAX_EBS}, not {self.nebs!r}")
        if not 4 <= int(self.nant) <= MAX_ANTENNAS:
            raise ValueError(f"nant must be between 4 and {MAX_ANTENNAS}")
        if int(self.cycle) not in CYCLES:
            raise ValueError(f"cycle must be between 1 and 12, not {self.cycle!r}")
        for name in ("sessions", "ppr_sessions"):
            val = getattr(self, name)
            if val and len(val) != int(self.nebs):
                raise ValueError(f"{name} names {len(val)} sessions for {self.nebs} EBs")
            bad = [v for v in val if not _SESSION_RE.match(v)]
            if bad:
                raise ValueError(f"{name}: {bad[0]!r} is not a session name like 'session_2'")
        if self.caltables_naming not in CALTABLES_NAMING:
            raise ValueError(f"caltables_naming must be 'session' or 's', not {self.caltables_naming!r}")
        unknown = [p for p in self.post_scripts if p not in POST_SCRIPTS]
        if unknown or len(set(self.post_scripts)) != len(self.post_scripts):
            raise ValueError(f"post_scripts must be distinct names of {POST_SCRIPTS}, not {self.post_scripts!r}")
        if self.manifest not in (None, True, False):
            raise ValueError(f"manifest must be True, False or None, not {self.manifest!r}")
        if self.calibration != "pipeline":
            for name in ("sacm", "post_scripts", "sessions", "ppr_sessions"):
                if getattr(self, name):
                    raise ValueError(f"{name} applies to pipeline deliveries only")
            if self.total_power and self.calibration != "manual":
                raise ValueError("total_power applies to pipeline and manual deliveries only")
            if self.manifest or self.caltables_naming != "session":
                raise ValueError("manifest and caltables_naming apply to pipeline deliveries only")
        if self.total_power and (self.polarization or self.selfcal):
            raise ValueError("total_power excludes polarization and selfcal")
        if self.selfcal and self.cycle < 10:
            raise ValueError("self-calibrated products exist from Cycle 10 on")

    @property
    def is_default_shape(self) -> bool:
        """The modern shape every build had before the shape options existed."""
        return all(getattr(self, f.name) == f.default for f in dataclasses.fields(self)
                   if f.name in SHAPE_FIELDS)

    @property
    def shape_token(self) -> str:
        """Short text naming the non-default shape fields ('' for the default)."""
        parts = []
        if self.cycle != 12:
            parts.append(f"c{self.cycle}")
        if self.sessions:
            parts.append("sess" + "_".join(s.split("_")[1] for s in self.sessions))
        if self.manifest is not None:
            parts.append("manifest" if self.manifest else "nomanifest")
        if self.caltables_naming != "session":
            parts.append("sk")
        if self.sacm:
            parts.append("sacm")
        parts += [p.lower() for p in self.post_scripts]
        if self.total_power:
            parts.append("tp")
        if self.ppr_sessions:
            parts.append("ppr" + "_".join(s.split("_")[1] for s in self.ppr_sessions))
        return "-".join(parts)

    # ---- names -----------------------------------------------------------
    def _rng(self, salt: str) -> np.random.Generator:
        # Names depend on the variant so variants never share UIDs; the sky
        # and instrument (salts without '/') depend on the seed only.
        key = f"{self.seed}:{salt}"
        if salt in ("project", "ous", "eb"):
            key = f"{self.seed}:{self.calibration}:{self.polarization}:{self.selfcal}:{salt}"
            if not self.is_default_shape:  # shapes never share UIDs either
                key += ":" + self.shape_token
        h = hashlib.sha256(key.encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))

    @property
    def variant(self) -> str:
        v = self.calibration + ("-pol" if self.polarization else "")
        v += "-selfcal" if self.selfcal else ""
        return v + ("-" + self.shape_token if self.shape_token else "")

    @property
    def project(self) -> str:
        r = self._rng("project")
        return "%d.1.%05d.S" % (CYCLE_YEAR[self.cycle], int(r.integers(100, 1600)))

    @property
    def ous_uids(self) -> tuple[str, str, str]:
        """(science goal, group, member) OUS UIDs, ``uid___A001_X..._X...``."""
        r = self._rng("ous")
        block = _hexid(r, 0x3000, 0x3fff)
        base = int(r.integers(0x100, 0xf000))
        return tuple(f"uid___A001_{block}_X{base + k:x}" for k in range(3))

    @property
    def mous(self) -> str:
        return self.ous_uids[2]

    @property
    def eb_uids(self) -> list[str]:
        """EB UIDs, ``uid___A002_X..._X...``, in observing order."""
        r = self._rng("eb")
        out = []
        for k in range(self.nebs):
            block = _hexid(r, 0x1100000, 0x12fffff)
            out.append(f"uid___A002_{block}_X{int(r.integers(0x1000, 0xffff)):x}")
        return out

    @property
    def sources(self) -> list[SourceDef]:
        srcs = [BANDPASS, PHASE, CHECK, TARGET_POL if self.polarization else TARGET]
        if self.polarization:
            srcs.append(POLCAL)
        return srcs

    @property
    def target(self) -> SourceDef:
        return TARGET_POL if self.polarization else TARGET

    @property
    def corrs(self) -> list[str]:
        return ["XX", "XY", "YX", "YY"] if self.polarization else ["XX", "YY"]

    def schedule(self) -> list[tuple[SourceDef, float]]:
        """(source, duration s) per scan, in order; no field repeats back to back."""
        plan = [(BANDPASS, 120.0)]
        if self.polarization:
            plan += [(POLCAL, 48.0)]
        plan += [(PHASE, 48.0), (self.target, 120.0), (PHASE, 48.0), (CHECK, 48.0)]
        if self.polarization:
            plan += [(POLCAL, 48.0)]
        plan += [(self.target, 120.0), (PHASE, 48.0)]
        if self.polarization:
            plan += [(POLCAL, 48.0)]
        return plan

    def cache_key(self) -> str:
        return hashlib.sha256(repr(dataclasses.astuple(self)).encode()).hexdigest()[:16]
