"""The package's task XML files: well-formed, complete, CASA-schema shaped."""
import xml.etree.ElementTree as ET

import pytest

import almaqa_casa
from almaqa_casa.taskdef import task_specs, xml_dir
from almaqa_casa.taskdef.xmlspec import NS

EXPECTED = {"qa_restore", "qa_validate", "qa_polmaps", "qa_renormplots"}


def test_every_task_has_an_interface_and_a_body():
    assert EXPECTED <= set(task_specs())
    assert EXPECTED <= set(almaqa_casa.TASKS)
    for name in EXPECTED:
        assert callable(getattr(almaqa_casa, name))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_xml_follows_casa_schema(name):
    root = ET.parse(xml_dir() / f"{name}.xml").getroot()
    assert root.tag == f"{NS}casaxml"
    task = root.find(f"{NS}task")
    assert task.get("type") == "function" and task.get("name") == name
    inp = task.find(f"{NS}input")
    children = [c.tag for c in inp]
    # CASA's generator only honours <constraints> inside <input>, after the params
    if f"{NS}constraints" in children:
        assert children[-1] == f"{NS}constraints"
    for param in inp.findall(f"{NS}param"):
        assert param.find(f"{NS}shortdescription") is not None, param.get("name")
        value = param.find(f"{NS}value")
        if value is not None and value.text:
            assert not value.text.strip().startswith("'"), "CASA 6 string defaults are unquoted"
    assert task.find(f"{NS}example") is not None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_help_comes_from_the_xml(name):
    task = almaqa_casa.TASKS[name]
    doc = task.__doc__
    assert task.spec.shortdescription in doc
    for p in task.spec.params:
        assert p.name in doc
    assert "Examples" in doc
    assert task._info_desc_ == task.spec.shortdescription


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shortdescriptions_survive_xml_casa(name):
    """xml-casa embeds short descriptions in single-quoted Python strings."""
    root = ET.parse(xml_dir() / f"{name}.xml").getroot()
    for sd in root.iter(f"{NS}shortdescription"):
        assert "'" not in (sd.text or ""), f"{name}: single quote in {sd.text!r}"


def _xmlcasa_jar():
    import os
    import shutil
    from pathlib import Path
    jar = os.environ.get("ALMAQA_XMLCASA_JAR")
    if not jar:
        found = sorted(Path("/tmp/almaqa-xmlcasa").glob("**/xml-casa-assembly-*.jar"))
        jar = str(found[-1]) if found else None
    if not jar or not Path(jar).is_file() or not shutil.which("java"):
        pytest.skip("CASA's xml-casa jar or java not available (.ci/run fetches the jar "
                    "from the casagui wheel; set ALMAQA_XMLCASA_JAR to use another)")
    return jar


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_xml_casa_generator_accepts_interfaces(name, tmp_path):
    """CASA's own generator makes a plain task and an inp/go task that compile."""
    import py_compile
    import subprocess
    jar = _xmlcasa_jar()
    xml = str(xml_dir() / f"{name}.xml")
    (tmp_path / "task").mkdir()
    (tmp_path / "gotasks").mkdir()
    for args in (["output-task=" + str(tmp_path / "task"), "-task", xml],
                 ["gotask-imp-module=almaqa_casa", "output-gotask=" + str(tmp_path / "gotasks"),
                  "-gotask", xml]):
        r = subprocess.run(["java", "-jar", jar, *args], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0 and name in r.stdout, r.stderr
    for sub in ("task", "gotasks"):
        out = tmp_path / sub / f"{name}.py"
        py_compile.compile(str(out), doraise=True)
    gotask = (tmp_path / "gotasks" / f"{name}.py").read_text()
    assert f"from almaqa_casa.private.task_{name} import {name}" in gotask


# ---- constraints the XML states hold in Python calls too (issue 13 item 8)

def _spec(name):
    return task_specs()[name]


def test_multi_type_enums_are_typed():
    assert _spec("qa_restore").param("spacesaving").allowed == (-1, 0, 1, 2, 3, "")
    assert _spec("qa_restore").param("dosplit").allowed == (True, False, "")
    assert _spec("qa_validate").param("res_tolerance").minimum == 0


@pytest.mark.parametrize("value, expected", [(2, 2), (-1, -1), ("", ""), ("3", 3)])
def test_spacesaving_accepted(tmp_path, value, expected):
    from almaqa_casa.taskdef import resolve_arguments
    values = resolve_arguments(_spec("qa_restore"), {"deliverydir": str(tmp_path), "spacesaving": value})
    assert values["spacesaving"] == expected and type(values["spacesaving"]) is type(expected)


@pytest.mark.parametrize("task, kwargs, param", [
    ("qa_restore", {"spacesaving": 7}, "spacesaving"),
    ("qa_restore", {"spacesaving": "two"}, "spacesaving"),
    ("qa_restore", {"spacesaving": True}, "spacesaving"),
    ("qa_restore", {"dosplit": "maybe"}, "dosplit"),
    ("qa_restore", {"docontsub": 1}, "docontsub"),
    ("qa_validate", {"res_tolerance": -1}, "res_tolerance"),
    ("qa_validate", {"sens_tolerance": -0.01}, "sens_tolerance"),
])
def test_python_calls_reject_what_the_xml_rejects(tmp_path, task, kwargs, param):
    from almaqa_casa.taskdef import TaskParameterError
    with pytest.raises(TaskParameterError, match=f"'{param}'") as err:
        getattr(almaqa_casa, task)(deliverydir=str(tmp_path), **kwargs)
    assert isinstance(err.value, AssertionError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("task, kwargs, param", [
    ("qa_polmaps", {"polithresh": "5"}, "polithresh"),
    ("qa_polmaps", {"polithresh": "lots"}, "polithresh"),
    ("qa_polmaps", {"debias": True, "sigma": "0.1"}, "sigma"),
    ("qa_validate", {"checks": ["layout", "bogus"]}, "checks"),
    ("qa_validate", {"req_resolution": "abc"}, "req_resolution"),
    ("qa_validate", {"req_sensitivity": "2arcsec"}, "req_sensitivity"),
])
def test_quantities_read_at_the_task_boundary(tmp_path, task, kwargs, param):
    """Values the XML cannot type (units, names) are read once by the body: a bad one
    is a parameter error naming the parameter, before any file is read."""
    from almaqa_casa.taskdef import TaskParameterError
    image = tmp_path / "x.IQUV.pbcor.fits"
    image.write_text("never opened")
    where = {"imagename": str(image)} if task == "qa_polmaps" else {"deliverydir": str(tmp_path),
                                                                     "outdir": str(tmp_path / "r")}
    with pytest.raises(TaskParameterError, match=f"parameter '{param}'"):
        getattr(almaqa_casa, task)(**where, **kwargs)
    assert not (tmp_path / "r").exists()


def test_help_says_what_the_code_does():
    """Statements the code contradicted (issue 12): the renormalization is applied
    when the manifest records it; the workers are fresh interpreters."""
    restore = _spec("qa_restore")
    text = " ".join(restore.description.split())
    assert "not re-applied" not in text
    assert "renorm.tbl and applied" in text
    nprocs = " ".join(restore.param("nprocs").description.split())
    assert "forked" not in nprocs and "fresh Python interpreters" in nprocs
