"""validation.html thumbnails: sky offsets in arcsec, beam, PB 0.2 and clean-mask contours,
the plane shown named (channel, Stokes), checked on the figure and in Chromium."""
from __future__ import annotations

import base64
import io
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from almaqa_casa.validate import validate_delivery, write_reports
from almaqa_casa.validate.figures import measure, thumbnail_figure
from tests.browser import check_page
from tests.validate.builders import BEAM, CELL, MOUS, N, build_pipeline_delivery, write_image_set

M = f"member.{MOUS}"
CUBE = f"{M}.NGC_253_sci.spw16.cube.I"
IQUV = f"{M}.NGC_253_sci.spw16_18.cont.IQUV"


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """The small pipeline delivery plus a full-polarization continuum product set."""
    root = tmp_path_factory.mktemp("thumbs")
    d = build_pipeline_delivery(root)
    write_image_set(Path(d["product"]), IQUV, stokes="IQUV", seed=7, work=root / ".work")
    shutil.rmtree(root / ".work", ignore_errors=True)
    return d


def _figure(delivery, stem: str, tmp_path):
    prod = Path(delivery["product"])
    fig = measure(str(prod / f"{stem}.pbcor.fits"), str(prod / f"{stem}.pb.fits.gz"),
                  str(prod / f"{stem}.mask.fits.gz"), str(tmp_path), recovery="numpy")
    assert fig.error is None, fig.error
    return fig, thumbnail_figure(fig, f"{stem}.pbcor.fits")


def _radii(contour, centre: tuple[float, float]) -> np.ndarray:
    """Distances (arcsec) of a contour's vertices from ``centre``."""
    verts = np.concatenate([p.vertices for p in contour.get_paths() if len(p.vertices)])
    return np.hypot(verts[:, 0] - centre[0], verts[:, 1] - centre[1])


def test_cube_thumbnail_is_the_brightest_channel_on_sky_axes(delivery, tmp_path):
    fig, f = _figure(delivery, CUBE, tmp_path)
    data = fits.getdata(Path(delivery["product"]) / f"{CUBE}.pbcor.fits")  # (stokes, chan, y, x)
    brightest = int(np.nanargmax(np.nanmax(data[0], axis=(1, 2))))
    assert fig.thumb_plane["channel"] == brightest and fig.thumb_plane["nchan"] == 3
    np.testing.assert_array_equal(fig.thumb, data[0, brightest])
    ax = f.axes[0]
    title = ax.get_title()
    assert f"Stokes I, channel {brightest} of 3 (the brightest" in title
    assert re.search(r"230\.00\d\d GHz", title)
    assert ax.get_xlabel().startswith("\u0394RA (arcsec) from 10:00:00.000 -30:00:00.00")
    assert ax.get_ylabel() == "\u0394Dec (arcsec)"
    assert ax.xaxis_inverted()  # east to the left
    left, right, bottom, top = ax.images[0].get_extent()
    assert (left - right, top - bottom) == pytest.approx((N * CELL, N * CELL))
    h = fits.getheader(Path(delivery["product"]) / f"{CUBE}.pbcor.fits")
    x0 = (h["CRPIX1"] - 1) * CELL  # offset 0 sits on the reference pixel
    assert left == pytest.approx(x0 + CELL / 2) and bottom == pytest.approx(-(h["CRPIX2"] - 0.5) * CELL)
    assert "Jy/beam (primary-beam corrected)" in f.axes[1].get_ylabel()
    # contours: the primary beam at 0.2 and the clean mask, where the builder put them
    sets = {round(float(c.levels[0]), 3): c for c in ax.collections if hasattr(c, "levels")}
    assert set(sets) == {0.2, 0.5}
    centre = (-(N // 2 - (h["CRPIX1"] - 1)) * CELL, (N // 2 - (h["CRPIX2"] - 1)) * CELL)
    r_pb = 0.8 * N / 2 * math.sqrt(math.log(1 / 0.2) / math.log(2)) * CELL  # gaussian pb = 0.2
    assert np.abs(_radii(sets[0.2], centre) - r_pb).max() < 1.5 * CELL
    assert np.abs(_radii(sets[0.5], centre) - 8 * CELL).max() < 1.5 * CELL
    (beam,) = ax.patches
    assert (beam.width, beam.height, beam.angle) == pytest.approx((BEAM[0], BEAM[1], 90 - BEAM[2]))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["PB 0.2", "clean mask", 'beam 1"x0.8"']


def test_iquv_thumbnail_says_it_shows_stokes_i(delivery, tmp_path):
    fig, f = _figure(delivery, IQUV, tmp_path)
    assert fig.stokes_planes == ["I", "Q", "U", "V"]
    assert "Stokes I of IQUV, single plane" in f.axes[0].get_title()
    data = fits.getdata(Path(delivery["product"]) / f"{IQUV}.pbcor.fits")
    np.testing.assert_array_equal(fig.thumb, data[0, 0])


def _png_pixels(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def test_page_in_chromium_shows_sky_axes_and_contours(delivery, tmp_path):
    v = validate_delivery(delivery["root"], req_resolution="1.2arcsec")
    paths = write_reports(v, tmp_path / "report")
    shot = tmp_path / "validation.png"
    page = check_page(paths["html"], screenshot=shot)
    assert page.ok, page.explain()
    assert page.images_total == len(v.thumbnails) == 4
    alts = dict(a.split(" — ", 1) for a in page.image_alts)
    assert alts[f"{CUBE}.pbcor.fits"].startswith("Stokes I, channel ")
    assert alts[f"{IQUV}.pbcor.fits"].startswith("Stokes I of IQUV, single plane")
    # what the browser decoded: each thumbnail has cyan (PB) and green (mask) contour pixels
    html = Path(paths["html"]).read_text()
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        rgb = _png_pixels(base64.b64decode(data))
        cyan = (rgb[..., 0] < 0.2) & (rgb[..., 1] > 0.8) & (rgb[..., 2] > 0.8)
        lime = (rgb[..., 0] < 0.2) & (rgb[..., 1] > 0.8) & (rgb[..., 2] < 0.2)
        assert cyan.sum() > 50 and lime.sum() > 20
    assert "offsets in arcsec" in html and "resolution" in html
    assert shot.stat().st_size > 50_000 and _png_pixels(shot.read_bytes()).shape[1] == 1400
