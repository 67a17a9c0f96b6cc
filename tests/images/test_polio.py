"""Block reader of polarization maps: direct FITS, direct CASA tiles and the CASA fallback agree with truth."""
from __future__ import annotations

import numpy as np
import pytest

from almaqa_casa.images.polio import open_reader, set_header_ints, split_fits
from almaqa_casa.images.testdata import make_image, to_fits

RNG = np.random.default_rng(11)


def _requests(shape):
    nx, ny, nch, nst = shape
    return [([1, 2], 0, nch, 0, ny), ([0, 2], min(1, nch - 1), min(3, nch), 5, min(20, ny)),
            ([3], nch - 1, nch, min(30, ny - 1), ny), ([1, 2, 3], nch // 3, nch, 7, ny - 2)]


@pytest.mark.parametrize("shape,order", [((300, 260, 40, 4), "alma"), ((300, 260, 40, 4), "casa"),
                                         ((700, 500, 1, 4), "alma"), ((40, 37, 5, 4), "alma")])
def test_reader_modes_equal_truth(tmp_path, shape, order):
    data = RNG.normal(size=shape).astype(np.float32)
    im = make_image(tmp_path / "t.im", shape, order=order, beam=None,
                    plane=lambda c, s: data[:, :, c, s])
    fits_path = to_fits(im, tmp_path / "t.fits")
    readers = [open_reader(im, tmp_path), open_reader(fits_path, tmp_path)]
    assert [r.mode for r in readers] == ["tiled", "fits"]
    # the CASA (tofits per block) fallback, forced
    fallback = open_reader(im, tmp_path)
    fallback.close()
    fallback.mode = "casa"
    from casatools import image, regionmanager
    fallback._ia, fallback._rg = image(), regionmanager()
    fallback._ia.open(im)
    fallback._scratch = str(tmp_path / "block.fits")
    readers.append(fallback)
    try:
        for st, c0, c1, y0, y1 in _requests(shape):
            exp = np.stack([data[:, y0:y1, c0:c1, s].transpose(2, 1, 0) for s in st])
            for rd in readers:
                np.testing.assert_array_equal(rd.read_block(st, c0, c1, y0, y1), exp, err_msg=rd.mode)
        sample = readers[0].read_row_sample([1, 2], 0, 24)
        assert sample.shape[0] == 2 and sample.shape[2] == shape[0] and 8 <= sample.shape[1] <= 24
    finally:
        for rd in readers:
            rd.close()


def test_header_helpers(tmp_path):
    im = make_image(tmp_path / "h.im", (8, 6, 3, 4), plane=lambda c, s: np.ones((8, 6)),
                    beam=[(1, 0.5, 0), (1.1, 0.5, 0), (1.2, 0.5, 0)])
    f = to_fits(im, tmp_path / "h.fits")
    header, data_bytes, ext = split_fits(f)
    assert len(header) % 2880 == 0 and data_bytes == 2880 and ext.startswith(b"XTENSION")
    new = set_header_ints(header, {"NAXIS1": 4096, "NAXIS2": 12})
    assert b"NAXIS1  =                 4096" in new and len(new) == len(header)
    with pytest.raises(ValueError, match="NAXIS9"):
        set_header_ints(header, {"NAXIS9": 1})
