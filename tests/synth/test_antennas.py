"""Antenna layouts for larger (benchmark-size) synthetic deliveries."""
import pytest

from almaqa_casa.synth import spec as S
from almaqa_casa.synth.simulate import antenna_layout


def test_default_layout_unchanged_and_larger_arrays_distinct():
    x8, y8, z8, _, pads8, names8 = antenna_layout(8)
    assert names8 == list(S.ANTENNA_NAMES[:8])
    x, y, z, d, pads, names = antenna_layout(S.MAX_ANTENNAS)
    assert len(set(pads)) == len(pads) == len(set(names)) == S.MAX_ANTENNAS
    assert all(di == 12.0 for di in d)
    # the first antennas keep their names; the 8-antenna pads are every third of the
    # nearest 24, so they are among the 43 too
    assert set(pads8) <= set(pads)


def test_too_many_antennas_is_refused():
    with pytest.raises(ValueError, match="nant must be between 4 and 43"):
        S.SynthSpec(nant=S.MAX_ANTENNAS + 1)
