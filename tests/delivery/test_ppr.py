"""PPR parser."""
import pytest

from almaqa_casa.delivery.ppr import PPRError, parse_ppr

PPR = """<?xml version="1.0" encoding="UTF-8"?>
<ns2:SciPipeRequest xmlns:ns2="Alma/pipelinescience/SciPipeRequest">
  <ProcessingProcedure><ProcedureTitle>hifa_calimage</ProcedureTitle>
    <ProcessingCommand><Command>hifa_importdata</Command></ProcessingCommand>
  </ProcessingProcedure>
  <DataSet><SchedBlockSet><SchedBlockIdentifier>
    <AsdmIdentifier><AsdmDiskName>uid___A002_X1_X10</AsdmDiskName></AsdmIdentifier>
    <AsdmIdentifier><AsdmDiskName>uid___A002_X1_X2f</AsdmDiskName></AsdmIdentifier>
  </SchedBlockIdentifier></SchedBlockSet></DataSet>
</ns2:SciPipeRequest>
"""


def test_parse():
    p = parse_ppr(PPR)
    assert p.asdms == ["uid___A002_X1_X10", "uid___A002_X1_X2f"]
    assert p.recipe == "hifa_calimage" and p.tasks == ["hifa_importdata"]


def test_line_scan_fallback_and_error():
    p = parse_ppr("<x>\n  <AsdmDiskName>uid___A002_X1_X3</AsdmDiskName>\n<broken")
    assert p.asdms == ["uid___A002_X1_X3"]
    with pytest.raises(PPRError, match="q.xml: no <AsdmDiskName>"):
        parse_ppr("<x/>", "q.xml")
