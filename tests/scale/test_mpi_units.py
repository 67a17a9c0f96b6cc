"""almaqa_casa.scale on casampi servers, and qa_validate / qa_polmaps spread per product.

One MPI job (``mpirun -n 3``: a client and two servers) runs
``mpi_scripts/units.py``; the tests read what its client saw and compare
qa_validate's and qa_polmaps' results on the synthetic polarization
delivery with the same tasks run here without MPI.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.scale import mpihelp

pytestmark = [pytest.mark.slow, mpihelp.requires_mpi]


@pytest.fixture(scope="module")
def seen(pol_delivery, tmp_path_factory):
    work = tmp_path_factory.mktemp("units")
    r = mpihelp.run("units.py", {"workdir": str(work), "pol_project": pol_delivery["project_dir"],
                                 "result": str(work / "result.json")}, work)
    r["_work"], r["_log"] = work, work / "casa.log"
    return r


def test_units_run_in_a_worker_of_each_server_in_the_clients_folder(seen):
    assert seen["engine"] == "casampi", seen["choice"]
    servers = {int(k): v for k, v in seen["servers"].items()}
    assert sorted(servers) == [1, 2]
    used = set()
    for o in seen["where"]:
        assert o["ok"] and o["engine"] == "casampi" and o["server"] in servers, o
        w = o["value"]
        assert w["ppid"] == servers[o["server"]]["pid"]      # the server's own worker
        assert w["pid"] != seen["client_pid"] and w["mpi_env"] == []
        assert w["cwd"] == str(seen["_work"])
        used.add(o["server"])
    assert used == {1, 2}


def test_a_failing_unit_carries_its_message_back(seen):
    f = seen["fail"]
    assert not f["ok"] and not f["died"] and f["server"] in (1, 2)
    assert f["error"] == "ValueError: caltable x.tbl is missing"


def test_a_killed_worker_fails_its_unit_and_the_server_goes_on(seen):
    d = seen["die"]
    assert not d["ok"] and d["died"]
    assert f"on casampi server {d['server']}" in d["error"]
    assert "died (killed by SIGKILL)" in d["error"]
    after = seen["after_die"]
    assert all(o["ok"] for o in after), after
    assert {o["server"] for o in after} == {1, 2}


def test_the_servers_log_into_the_clients_log_with_their_rank(seen):
    text = Path(seen["_log"]).read_text(errors="replace")
    for o in seen["say"]:
        assert o["ok"] and o["value"] == str(seen["_log"])
        i = o["key"][1:]
        assert f"mpitest::casa::MPIServer-{o['server']}\thello from the servers {i}" in text


def test_mouses_send_their_units_side_by_side(seen):
    a, b = seen["members"]
    assert a["ok"] and b["ok"] and a["server"] != b["server"]
    (s1, e1), (s2, e2) = a["value"], b["value"]
    assert max(s1, s2) < min(e1, e2)      # the two 4 s units overlapped in time


def _fits(path):
    from astropy.io import fits
    with fits.open(path) as h:
        return np.asarray(h[0].data)


def test_polmaps_per_product_on_the_servers_equal_the_local_ones(seen, pol_delivery, tmp_path):
    from almaqa_casa import qa_polmaps
    here = qa_polmaps(imagename=pol_delivery["project_dir"], outdir=str(tmp_path / "pol"),
                      polithresh="5sigma", fractional=True)
    there = seen["polmaps"]
    assert here["status"] == there["status"] == "ok"
    assert (here["engine"], there["engine"]) == ("local", "casampi")
    assert len(there["inputs"]) == len(here["inputs"]) >= 2
    assert {e["server"] for e in there["inputs"]} <= {1, 2}
    for a, b in zip(here["inputs"], there["inputs"]):
        assert a["input"] == b["input"] and "server" not in a
        assert a["outputs"].keys() == b["outputs"].keys()
        for k in a["outputs"]:
            np.testing.assert_array_equal(_fits(a["outputs"][k]), _fits(b["outputs"][k]))


def test_validate_figures_per_product_on_the_servers_equal_the_local_ones(seen, pol_delivery,
                                                                            tmp_path):
    from almaqa_casa import qa_validate
    here = qa_validate(deliverydir=pol_delivery["project_dir"], outdir=str(tmp_path / "val"))
    here = json.loads(json.dumps(here, default=str))    # as the MPI client wrote its result
    there = seen["validate"]
    assert there["findings"] == here["findings"]        # same findings, same order
    assert len(there["images"]) == len(here["images"]) >= 4
    assert {i["server"] for i in there["images"]} == {1, 2}
    for a, b in zip(here["images"], there["images"]):
        assert "server" not in a
        assert a == {k: v for k, v in b.items() if k != "server"}
