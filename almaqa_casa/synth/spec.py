"""Parameters of a synthetic delivery and everything derived from them.

All names and UIDs are deterministic functions of the seed, so two builds
with one seed give the same tree.  The sky, the instrument and the schedule
are fixed here so that tests and the truth file share one definition.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

#: ALMA antenna names used for the simulated 12-m antennas (in pad order).
ANTENNA_NAMES = ("DA41", "DA42", "DA44", "DA45", "DA49", "DV03", "DV08", "DV11",
                 "DV17", "DV20") + tuple(
    f"DA{n}" for n in (43, 46, 47, 48, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64)
) + tuple(f"DV{n:02d}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 18))
#: Most antennas a delivery can have (one per pad of :data:`CONFIG_FILE`).
MAX_ANTENNAS = 43
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


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """What to build.  Everything else follows from these fields."""

    calibration: str = "pipeline"
    polarization: bool = False
    nebs: int = 2
    selfcal: bool = False
    seed: int = 12345
    tars: bool = False
    nant: int = 8
    #: CASA version the manual scripts demand ('' = accept any 6.x >= 6.5).
    casa_version_pin: str = ""

    def __post_init__(self):
        if self.calibration not in ("pipeline", "manual"):
            raise ValueError(f"calibration must be 'pipeline' or 'manual', not {self.calibration!r}")
        if not 1 <= int(self.nebs) <= 6:
            raise ValueError(f"nebs must be between 1 and 6, not {self.nebs!r}")
        if not 4 <= int(self.nant) <= MAX_ANTENNAS:
            raise ValueError(f"nant must be between 4 and {MAX_ANTENNAS}")

    # ---- names -----------------------------------------------------------
    def _rng(self, salt: str) -> np.random.Generator:
        # Names depend on the variant so variants never share UIDs; the sky
        # and instrument (salts without '/') depend on the seed only.
        key = f"{self.seed}:{salt}"
        if salt in ("project", "ous", "eb"):
            key = f"{self.seed}:{self.calibration}:{self.polarization}:{self.selfcal}:{salt}"
        h = hashlib.sha256(key.encode()).digest()
        return np.random.default_rng(int.from_bytes(h[:8], "little"))

    @property
    def variant(self) -> str:
        v = self.calibration + ("-pol" if self.polarization else "")
        return v + ("-selfcal" if self.selfcal else "")

    @property
    def project(self) -> str:
        r = self._rng("project")
        return "2025.1.%05d.S" % int(r.integers(100, 1600))

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
