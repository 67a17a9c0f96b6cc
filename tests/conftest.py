"""Shared fixtures: synthetic ALMA deliveries built once per test session.

``pipeline_delivery``, ``manual_delivery`` and ``pol_delivery`` return the
dict of :func:`almaqa_casa.synth.generate` (``project_dir``, ``member_dir``,
``truth_path``, ``truth_dir``, ``truth``, ...).  Treat them as read-only:
copy a delivery before changing anything in it.

Real delivery shapes (issue 12; ``truth['shape']`` describes each, see
:func:`almaqa_casa.synth.shape.describe`), 2 EBs and 8 antennas each:

* ``sessions_delivery``: EBs in ``session_2`` and ``session_4``, no manifest
  (the EB -> session map is only in the restore script and the PPR);
* ``snaming_delivery``: Cycle 10, sessions 1 and 2, ``<mous>.s<k>.caltables.tgz``;
* ``cycle4_delivery``: Cycle 4 layout (``README``, loose aux files, flag
  templates, ``PPR_<uid>.xml``, multi-term products), sessions 1 and 2;
* ``cycle7_delivery``: Cycle 7 (``casa_commands.log`` in script/, no log/);
* ``imagingprep_delivery``: pipeline calibration, manual imaging and a
  ``scriptForImagingPrep.py`` (``truth['imaging_prep']``);
* ``semipass_delivery``: qa/, script/, raw/ only;
* ``sacm_delivery``: Cycle 5 SACM/JAO restore pre-step with an ASDM whose
  SysCal table fixsyscaltimes changes (``truth['sacm']``);
* ``tp_delivery``: pipeline-calibrated total power, ON/OFF autocorrelations of
  4 TP antennas, EBs in sessions 1 and 2 (``truth['total_power']``);
* ``tp_manual_delivery``: the same ASDMs calibrated manually, one
  ``<uid>.ms.scriptForSDCalibration.py`` per EB (``truth['total_power']``).

Cycle 10-12 calibration extras (issue 16):

* ``selfcal_delivery``: hif_selfcal's restore resources (selfcal.json and the
  self-calibration tables in auxproducts.tgz), a phase error on the target that
  only they remove, ``.selfcal.`` products (``truth['selfcal_truth']``);
* ``pol_delivery`` (above) carries leakage and a cross-hand phase, and
  hifa_polcal's session tables that remove them (``truth['polarization_truth']``).

With ``ALMAQA_SYNTH_CACHE=/some/folder`` the builds are kept between test
runs in ``<cache>/<variant>-<hash of generator source + parameters>`` and
reused once complete (a ``.complete`` marker is written last; a lock file
serialises concurrent builds of the same variant).
``ALMAQA_SYNTH_PIPELINE`` / ``_MANUAL`` / ``_POL`` may name the output folder
of an existing ``generate()`` run to use instead (handy while iterating).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

VARIANTS = {
    "pipeline": dict(calibration="pipeline", polarization=False, nebs=2, seed=12345),
    "manual": dict(calibration="manual", polarization=False, nebs=2, seed=12345),
    "pol": dict(calibration="pipeline", polarization=True, nebs=2, seed=12345),
    "sessions": dict(calibration="pipeline", nebs=2, seed=12345, sessions=["session_2", "session_4"],
                     manifest=False),
    "snaming": dict(calibration="pipeline", nebs=2, seed=12345, cycle=10,
                    sessions=["session_1", "session_2"], caltables_naming="s"),
    "cycle4": dict(calibration="pipeline", nebs=2, seed=12345, cycle=4, sessions=["session_1", "session_2"]),
    "cycle7": dict(calibration="pipeline", nebs=2, seed=12345, cycle=7),
    "imagingprep": dict(calibration="pipeline", nebs=2, seed=12345, post_scripts=["ImagingPrep"]),
    "semipass": dict(calibration="semipass", nebs=2, seed=12345),
    "sacm": dict(calibration="pipeline", nebs=2, seed=12345, cycle=5, sacm=True,
                 sessions=["session_1", "session_2"]),
    "tp": dict(calibration="pipeline", nebs=2, seed=12345, total_power=True,
               sessions=["session_1", "session_2"]),
    "selfcal": dict(calibration="pipeline", nebs=2, seed=12345, selfcal=True),
    "tp_manual": dict(calibration="manual", nebs=2, seed=12345, total_power=True),
}


def _generator_hash(params: dict) -> str:
    import almaqa_casa.synth as synth

    h = hashlib.sha256()
    root = Path(synth.__file__).parent
    for p in sorted(root.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _result_from_disk(outdir: str) -> dict:
    from almaqa_casa.synth import SynthSpec

    with open(os.path.join(outdir, "truth", "truth.json")) as fh:
        truth = json.load(fh)
    return {"project_dir": truth["project_dir"], "member_dir": truth["member_dir"],
            "truth_path": truth["truth_path"], "truth_dir": truth["truth_dir"], "truth": truth,
            "spec": SynthSpec(**truth["spec"]), "tars": truth.get("tars", []),
            "variant": truth["variant"]}


def build_delivery(variant: str, tmp_path_factory=None, **overrides) -> dict:
    """Build (or reuse from the cache) one synthetic delivery."""
    from almaqa_casa.synth import generate

    params = dict(VARIANTS[variant], **overrides)
    prebuilt = os.environ.get(f"ALMAQA_SYNTH_{variant.upper()}")
    if prebuilt and not overrides:  # a generate() output folder to use as is
        return _result_from_disk(prebuilt)
    cache = os.environ.get("ALMAQA_SYNTH_CACHE")
    if not cache and tmp_path_factory is not None and os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist workers (make test) share one build per variant: the cache below,
        # in the run's common temporary root, locked per variant
        cache = str(tmp_path_factory.getbasetemp().parent / "synth-shared")
    if not cache:
        if tmp_path_factory is None:
            raise RuntimeError("no cache folder and no tmp_path_factory")
        out = str(tmp_path_factory.mktemp(f"synth-{variant}"))
        return generate(out, **params)
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, f"{variant}-{_generator_hash(params)}")
    marker = os.path.join(out, ".complete")
    with open(out + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not os.path.exists(marker):
                shutil.rmtree(out, ignore_errors=True)
                generate(out, **params)
                with open(marker, "w") as fh:
                    fh.write("complete\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _result_from_disk(out)


@pytest.fixture(scope="session")
def pipeline_delivery(tmp_path_factory):
    return build_delivery("pipeline", tmp_path_factory)


@pytest.fixture(scope="session")
def manual_delivery(tmp_path_factory):
    return build_delivery("manual", tmp_path_factory)


@pytest.fixture(scope="session")
def pol_delivery(tmp_path_factory):
    return build_delivery("pol", tmp_path_factory)


@pytest.fixture(scope="session")
def sessions_delivery(tmp_path_factory):
    return build_delivery("sessions", tmp_path_factory)


@pytest.fixture(scope="session")
def snaming_delivery(tmp_path_factory):
    return build_delivery("snaming", tmp_path_factory)


@pytest.fixture(scope="session")
def cycle4_delivery(tmp_path_factory):
    return build_delivery("cycle4", tmp_path_factory)


@pytest.fixture(scope="session")
def cycle7_delivery(tmp_path_factory):
    return build_delivery("cycle7", tmp_path_factory)


@pytest.fixture(scope="session")
def imagingprep_delivery(tmp_path_factory):
    return build_delivery("imagingprep", tmp_path_factory)


@pytest.fixture(scope="session")
def semipass_delivery(tmp_path_factory):
    return build_delivery("semipass", tmp_path_factory)


@pytest.fixture(scope="session")
def sacm_delivery(tmp_path_factory):
    return build_delivery("sacm", tmp_path_factory)


@pytest.fixture(scope="session")
def tp_delivery(tmp_path_factory):
    """Pipeline-calibrated total power (hsd_restoredata), 2 EBs in sessions 1 and 2
    (``truth['total_power']``)."""
    return build_delivery("tp", tmp_path_factory)


@pytest.fixture(scope="session")
def tp_manual_delivery(tmp_path_factory):
    """Manually calibrated total power (scriptForSDCalibration.py per EB), 2 EBs
    (``truth['total_power']``)."""
    return build_delivery("tp_manual", tmp_path_factory)


@pytest.fixture(scope="session")
def selfcal_delivery(tmp_path_factory):
    return build_delivery("selfcal", tmp_path_factory)


@pytest.fixture(scope="session")
def tree_checksum():
    """``tree_checksum(path) -> str``: sha256 over relative paths, file
    contents and symlink targets (prove an input tree is untouched)."""
    from almaqa_casa.synth.checksum import tree_checksum as _tc

    return _tc


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds an extra synthetic delivery (minutes)")
