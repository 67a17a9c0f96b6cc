"""Pipeline manifest parser."""
import pytest

from almaqa_casa.delivery.manifest import ManifestError, parse_manifest, read_manifest

XML = """<?xml version="1.0" ?>
<piperesults name="uid___A001_X1_X2">
  <ous name="uid___A001_X1_X2">
    <casaversion name="6.6.1.17"/>
    <pipeline_version name="2024.1.0.8"/>
    <execution_environment><node num_mpi_servers="4"/></execution_environment>
    <piperequest name="PPR_uid___A001_X1_X2.xml"/>
    <restorescript name="uid___A001_X1_X2.hifa_calimage.casa_piperestorescript.py"/>
    <aux_products_file name="uid___A001_X1_X2.hifa_calimage.auxproducts.tgz"/>
    <session name="session_1">
      <caltables name="uid___A001_X1_X2.session_1.caltables.tgz"/>
      <asdm name="uid___A002_Xa_X1">
        <finalflags name="uid___A002_Xa_X1.ms.flagversions.tgz"/>
        <applycmds name="uid___A002_Xa_X1.ms.calapply.txt"/>
        <hifa_renorm apply="True" threshold="1.02" spw="" excludechan="{}"/>
      </asdm>
    </session>
    <session name="session_2">
      <caltables name="uid___A001_X1_X2.session_2.caltables.tgz"/>
      <asdm name="uid___A002_Xa_X2">
        <finalflags name="uid___A002_Xa_X2.ms.flagversions.tgz"/>
        <applycmds name="uid___A002_Xa_X2.ms.calapply.txt"/>
      </asdm>
    </session>
  </ous>
</piperesults>
"""


def test_parse(tmp_path):
    p = tmp_path / "m.pipeline_manifest.xml"
    p.write_text(XML)
    m = read_manifest(p)
    assert m.casaversion == "6.6.1.17" and m.pipeline_version == "2024.1.0.8"
    assert m.num_mpi_servers == [4]
    assert m.caltables == {"session_1": "uid___A001_X1_X2.session_1.caltables.tgz",
                           "session_2": "uid___A001_X1_X2.session_2.caltables.tgz"}
    assert m.session_of("uid___A002_Xa_X2.ms") == "session_2"
    assert m.asdms["uid___A002_Xa_X1"].renorm["threshold"] == "1.02"
    assert m.asdms["uid___A002_Xa_X2"].renorm is None
    assert m.aux_products_file.endswith("auxproducts.tgz")


def test_errors():
    with pytest.raises(ManifestError, match="x.xml: not well-formed"):
        parse_manifest("<piperesults><ous>", "x.xml")
    with pytest.raises(ManifestError, match="DTD"):
        parse_manifest('<!DOCTYPE a [<!ENTITY b "c">]><piperesults/>', "x.xml")
    with pytest.raises(ManifestError, match="no <ous>"):
        parse_manifest("<piperesults/>", "x.xml")
