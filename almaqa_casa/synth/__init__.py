"""Synthetic ALMA deliveries built with CASA itself (issue 3).

``generate(outdir, calibration='pipeline'|'manual', polarization=False, nebs=2,
selfcal=False, seed=12345, tars=False)`` simulates each execution block with
casatools' simulator (8 antennas of ``alma.cycle10.1.cfg``, Band 3, spws 0-2
FDM 60 ch x 3.125 MHz, spw 3 TDM 128 ch x 15.625 MHz, XX YY or XX XY YX YY,
12.096 s integrations, ~10 min per EB, autocorrelations except in the
polarization variant), corrupts it with recorded antenna gains, bandpasses
and noise, exports it with ``exportasdm`` (one POLARIZATION row; Main, Scan,
Subscan, ExecBlock rewritten so scans and ALMA intents survive;
``sdPolProducts`` patched so ``importasdm(lazy=True)`` works), then calibrates
and images it as the pipeline (``calapply.txt``, ``flagversions.tgz``,
``caltables.tgz``, ``auxproducts.tgz``, PPR, restore script, manifest) or a
manual script (per-EB ``scriptForCalibration.py``, run by the generator
itself, ``scriptForImagingPrep.py``, ``scriptForImaging.py``) would.

Returns ``{'project_dir', 'member_dir', 'truth_path', 'truth_dir', 'truth',
'spec', 'tars', 'variant'}``.  Layout::

    <outdir>/<project>/science_goal.uid___A001_X.._X../group.../member.../
        {script,calibration,product,qa,log,raw}, member.<mous>.README.txt
    <outdir>/truth/truth.json, reference/<eb>.ms, images/<product>.fits,
        corruptions/<eb>.npz
    <outdir>/archive/*.tar                                  (tars=True)

Truth: the reference MS of an EB is importasdm(lazy=False) of the delivered
ASDM (same rows) with the cross-correlation DATA replaced by the true
sky-frame visibilities (no gains, no renormalization under-scaling), FLAG
cleared.  ``truth['images'][<pbcor name>]`` gives the uncorrected tclean
image exported to FITS (what impbcor mode 'm' recovers) and its noise.
``truth['renorm']`` holds the injected scaling spectrum (spw 1 of the target:
autocorrelations x (1 + 0.05 g), cross-correlations / the same).
``truth['eb'][uid]`` holds scans, antennas, the flagged bad data, caltable
names, the injected gain parameters and the calibrated/true target ratio.

Shapes of real deliveries (keyword-only options of ``generate``; the
defaults give the modern shape above): ``cycle`` (1-12: layout, names,
versions of the era), ``sessions`` (one ``session_<k>`` per EB, a caltables
tarball per session), ``manifest``, ``caltables_naming='s'``, ``sacm``
(SACM/JAO pre-step and a SysCal table that needs it), ``post_scripts``
(``ImagingPrep``), ``calibration='semipass'``.  ``truth['shape']``
(:func:`.shape.describe`) records the shape.  Text-only skeletons of any
shape, and presets rebuilt from real cases: :mod:`.skeleton` (pure).

Tests: ``tests/conftest.py`` fixtures ``pipeline_delivery``,
``manual_delivery``, ``pol_delivery``, ``sessions_delivery``,
``snaming_delivery``, ``cycle4_delivery``, ``cycle7_delivery``,
``imagingprep_delivery``, ``semipass_delivery``, ``sacm_delivery`` (cache
with ``ALMAQA_SYNTH_CACHE``), ``tree_checksum``.
Command line: ``almaqa synth --out DIR [--calibration manual|semipass]
[--polarization] [--nebs N] [--selfcal] [--seed S] [--tars] [--cycle N]
[--sessions s1,s2] [--[no-]manifest] [--caltables-naming s] [--sacm]
[--post-script ImagingPrep] [--skeleton PRESET]``.
"""
from __future__ import annotations

from .spec import SynthSpec

__all__ = ["SynthError", "SynthSpec", "generate", "make_skeleton"]


def __getattr__(name: str):
    """``generate``/``SynthError`` import CASA; ``make_skeleton`` does not.
    Loaded on first use so the pure modules (spec, shape, skeleton) import
    without casatools."""
    if name in ("generate", "SynthError"):
        from . import build

        return getattr(build, name)
    if name == "make_skeleton":
        from .skeleton import make_skeleton

        return make_skeleton
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
