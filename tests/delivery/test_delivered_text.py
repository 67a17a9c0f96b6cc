"""Small delivered texts, a file or ``<tarball>::<member>``, read and parsed the same way
for cont.dat, selfcal.json and jyperk.csv (delivery.member.parse_delivered)."""
from __future__ import annotations

import os

from almaqa_casa.delivery.contdat import parse_contdat
from almaqa_casa.delivery.member import parse_delivered, read_delivered_text
from tests.hostile.tarmakers import files_tar

CONTDAT = "Field: Synth_Disk\n\nSpectralWindow: 16\n230.0~230.5GHz LSRK\n"


def test_a_file_and_a_tarball_member_read_alike(tmp_path):
    f = tmp_path / "cont.dat"
    f.write_text(CONTDAT)
    tgz = files_tar(tmp_path / "m.auxproducts.tgz", {"x/cont.dat": CONTDAT.encode()}, gz=True)
    assert read_delivered_text(str(f)) == read_delivered_text(f"{tgz}::x/cont.dat") == CONTDAT
    a, err_a = parse_delivered(str(f), parse_contdat)
    b, err_b = parse_delivered(f"{tgz}::x/cont.dat", parse_contdat)
    assert err_a == err_b == ""
    assert a.fields == b.fields and "Synth_Disk" in a.fields


def test_unreadable_or_unparsable_texts_are_recorded_not_raised(tmp_path):
    tgz = files_tar(tmp_path / "m.auxproducts.tgz", {"big.txt": b"x" * 200, "bad.dat": b"\xff\xfe"},
                    gz=True)
    value, err = parse_delivered(f"{tgz}::missing.dat", parse_contdat)
    assert value is None and "missing.dat" in err
    value, err = parse_delivered(f"{tgz}::big.txt", parse_contdat, limit=100)
    assert value is None and "big.txt" in err and "at most 100 bytes" in err
    value, err = parse_delivered(f"{tgz}::bad.dat", parse_contdat)
    assert value is None and "bad.dat" in err and "line 1" in err
    fifo = tmp_path / "cont.dat"
    os.mkfifo(fifo)
    value, err = parse_delivered(str(fifo), parse_contdat)      # never opened as data
    assert value is None and "FIFO" in err
