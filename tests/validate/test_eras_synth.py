"""qa_validate on the generator's real-CASA era shapes: no error for what the observatory delivered."""
from __future__ import annotations

import pytest

import almaqa_casa  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("shape", ["cycle4", "cycle7", "semipass", "sessions", "sacm"])
def test_no_error_on_real_era_shapes(shape, request, tmp_path):
    from almaqa_casa import qa_validate
    d = request.getfixturevalue(f"{shape}_delivery")
    r = qa_validate(deliverydir=d["project_dir"], outdir=str(tmp_path), thumbnails=False)
    errors = [f for f in r["findings"] if f["severity"] == "error"]
    assert not errors, errors
    m = r["members"][0]
    assert m["kind"] == ("semipass" if shape == "semipass" else "pipeline")
    if shape == "cycle4":
        assert m["era"]["cycle_max"] is None or m["era"]["cycle_max"] >= 4
        images = [i for i in r["images"] if i.get("taylor") in (None, 0)]
        assert images and all(i.get("pb") for i in images if i["kind"] == "pbcor")
