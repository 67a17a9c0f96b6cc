"""The restore report (almaqa_casa.report.restore_page): document, page, Chromium.

A member result shaped as qa_restore returns it (one EB verified and
failing, one not restored); the real report of a real restore is checked
in tests/restore/test_pipeline_restore.py.
"""
from __future__ import annotations

import json

from almaqa_casa.report.restore_page import build_restore_html, restore_document, write_restore_report

EB1, EB2 = "uid___A002_X1_X1", "uid___A002_X1_X2"
RES = {
    "member": "/d/member.uid___A001_X1_X4", "mous": "uid___A001_X1_X4", "status": "failed",
    "mode": "pipeline", "route": "callib", "calibrated": "/d/calibrated", "seconds": 12.3,
    "error": f"verification failed: {EB1}: coverage: 2 of 4 ...",
    "warnings": ["uid___A001_X1_X4: the delivery was calibrated with CASA 6.6.6.5 <and>"],
    "predicted_peak_bytes": 4.0e7, "peak_bytes": 3.4e7, "raw_bytes": 2.4e7,
    "steps": [{"step": f"{EB1}:ms", "seconds": 2.5, "skipped": False},
              {"step": f"{EB1}:split", "seconds": 3.0, "skipped": False},
              {"step": "products-link", "seconds": 0.0, "skipped": False}],
    "eb_results": {EB1: {"status": "ok", "seconds": 5.5, "outputs": ["/d/calibrated/x.split.cal"]},
                   EB2: {"status": "failed", "seconds": 1.0, "outputs": [],
                         "error": "flag version Pipeline_Final has 6524 rows but the imported "
                                  "MS has 6624"}},
    "renorm": {EB1: {"applied": True, "spws": [1], "caltable": "/d/w/u.ms.renorm.tbl",
                     "max_scaling": {"Synth_Disk": {"0": 1.0002, "1": 1.0499}}, "seconds": 0.6,
                     "qa": {"spw": {"Synth_Disk": {"1": [{"score": 0.8954, "colour": "info",
                                                          "longmsg": "corrections were applied"}]}},
                            "run": []}}},
    "provenance": {"package": "almaqa_casa 0.1.0", "parameters": {"spacesaving": 2},
                   "delivery_versions": {"casa": "6.6.6.5", "pipeline": "2025.1.0.40"},
                   "restoring_versions": {"casa": "6.7.6"}, "major_difference": True},
    "verification": {"status": "failed", "failures": ["x"], "ebs": {
        EB1: {"status": "failed", "ms": "/d/calibrated/x.split.cal", "column": "DATA", "checks": [
            {"check": "coverage", "status": "fail", "message": f"{EB1}: coverage: 2 of 4 <rows>",
             "numbers": {}},
            {"check": "flags", "status": "pass", "message": f"{EB1}: flags: equal", "numbers": {
                "table": [{"scan": 6, "intent": "TARGET", "spw": 1, "rows": 140,
                           "flagged_rows": 35, "reference_flagged_rows": 35,
                           "flagged_samples": 4200, "reference_flagged_samples": 4200}]}},
            {"check": "flux", "status": "pass", "message": f"{EB1}: flux: ok", "numbers": {
                "field": "J1924-2914", "spws": [{"spw": 0, "expected": 3.195, "measured": 3.196,
                                                 "tolerance": 0.0034, "parts": {
                                                     "spectral_index": 0.0006,
                                                     "uv_structure": 0.0, "noise": 0.0033}}],
                "others": []}}]},
        EB2: {"status": "failed", "checks": [{"check": "restore", "status": "fail",
                                              "message": f"{EB2}: restore: not restored",
                                              "numbers": {}}]}}},
}


def test_document_per_eb():
    doc = restore_document(RES, {"needed": 4.0e7, "available": 6.0e10, "checked": True})
    assert doc["status"] == "failed" and doc["verification"]["status"] == "failed"
    assert [s["step"] for s in doc["ebs"][EB1]["steps"]] == [f"{EB1}:ms", f"{EB1}:split"]
    assert doc["member_steps"] == [{"step": "products-link", "seconds": 0.0, "skipped": False}]
    assert doc["ebs"][EB1]["renorm"]["applied"] and doc["ebs"][EB2]["renorm"] is None
    assert doc["ebs"][EB2]["error"].endswith("6624")
    assert doc["disk"]["available"] == 6.0e10
    json.dumps(doc)


def test_page_renders_in_chromium(tmp_path):
    from tests.browser import check_page
    paths = write_restore_report(str(tmp_path), RES, {"needed": 4.0e7, "available": 6.0e10})
    assert paths == {"json": str(tmp_path / "restore.json"), "html": str(tmp_path / "restore.html")}
    assert json.loads((tmp_path / "restore.json").read_text())["mous"] == "uid___A001_X1_X4"
    html = (tmp_path / "restore.html").read_text()
    assert "&lt;rows&gt;" in html and "<rows>" not in html           # messages are escaped
    assert "Flagged rows per scan and intent" in html and "Calibrators against flux.csv" in html
    assert "corrections were applied" in html and "6.6.6.5" in html
    page = check_page(paths["html"])
    assert page.ok, page.explain()
    assert page.text_length > 500 and page.images_total == 0
    assert build_restore_html(restore_document(RES)).startswith("<!DOCTYPE html>")
