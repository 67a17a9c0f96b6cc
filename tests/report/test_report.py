"""JSON writer and self-contained HTML helpers, checked in a real headless Chromium."""
from __future__ import annotations

import math

import numpy as np
import pytest

from almaqa_casa.report import (
    Raw,
    badge,
    dumps,
    figure_png,
    img,
    page,
    png_data_uri,
    read_json,
    section,
    summary_boxes,
    table,
    thumbnail_grid,
    write_html,
    write_json,
)
from tests.browser import check_page


def test_write_json_numpy_nan_atomic(tmp_path):
    out = tmp_path / "sub" / "r.json"
    obj = {"a": np.float32(1.5), "b": np.arange(3), "c": math.nan, "d": {1, 2},
           "p": tmp_path, "e": np.int64(7), "inf": np.inf}
    write_json(out, obj)
    got = read_json(out)
    assert got == {"a": 1.5, "b": [0, 1, 2], "c": None, "d": [1, 2], "p": str(tmp_path),
                   "e": 7, "inf": None}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileExistsError):
        write_json(out, {}, overwrite=False)
    assert "NaN" not in dumps({"x": float("nan")})


def test_html_escaping_and_data_uri():
    t = table(["a", "b"], [("<x>", Raw("<b>y</b>")), (1.23456789, None)], col_classes=[None, "num"])
    assert "&lt;x&gt;" in t and "<b>y</b>" in t and "1.235" in t
    with pytest.raises(ValueError):
        png_data_uri(b"GIF89a")
    assert "none" in table(["a"], [])


def _png():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.random.default_rng(1).normal(size=(16, 16)))
    return figure_png(fig)


def test_page_renders_in_chromium(tmp_path):
    png = _png()
    body = ("<h1>Report</h1>" + summary_boxes({"error": 0, "warning": 1, "info": 2})
            + section("Images", thumbnail_grid([(png, "a <b>"), (png, "c")]))
            + section("Table", table(["sev"], [(Raw(badge("error")),)])) + img(png, "inline"))
    path = write_html(tmp_path / "r.html", page("Report & test", body))
    text = path.read_text()
    assert "http://" not in text and "https://" not in text
    res = check_page(path)
    assert res.ok, res.explain()
    assert res.images_total == 3 and res.title == "Report & test"


def test_browser_detects_problems(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="missing.png" alt="m">'
                   '<script>console.error("boom")</script></body></html>')
    res = check_page(bad)
    assert res.loaded and not res.ok
    assert res.images_broken == ["m"]
    assert any("boom" in e for e in res.console_errors)
