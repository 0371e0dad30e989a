"""byoc_runtime.check_model: the build's model-check stage imports each TorchServe handler
the way a TorchServe worker does (TorchServe's own loader, from the extracted archive) and
compiles Triton Python-backend models, so a handler that needs a missing package fails
the build with a BYOC-ERROR line, not the first request on an endpoint (C15)."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest
from archiving import make_mar
from byoc_runtime import check_model
from byoc_runtime.adapters import torchserve as torchserve_adapter
from byoc_runtime.adapters import triton as triton_adapter

RUNTIME = Path(__file__).resolve().parents[2] / "images" / "runtime"
CLASS_HANDLER = '''\
from ts.torch_handler.base_handler import BaseHandler


class Reviews(BaseHandler):
    def handle(self, data, context):
        return [len(data)]
'''
FUNCTION_HANDLER = "def run(data, context):\n    return [] if data else None\n"
MISSING_IMPORT = "import not_installed_pkg_byoc\n\n\ndef handle(data, context):\n    return []\n"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """import_handler chdirs and extends sys.path as a worker would; undo it, and forget
    the handler modules it imported."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def extracted(tmp_path: Path, name: str, handler_file: str, source: str, **kwargs) -> Path:
    mar = make_mar(tmp_path / "mars", name, handler_file, {handler_file: source, **kwargs.pop(
        "files", {})}, **kwargs)
    folder = tmp_path / "extracted" / name
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(folder)
    return folder


def test_a_class_handler_imports_from_its_archive(isolated):
    folder = extracted(isolated, "reviews", "reviews_handler.py", CLASS_HANDLER)
    assert check_model.import_handler(folder) == "reviews_handler.py: class Reviews"
    assert Path.cwd() == folder and sys.path[:2] == [str(folder / "reviews_handler"),
                                                     str(folder)]


def test_a_function_handler_imports_with_its_entry_point(isolated):
    folder = extracted(isolated, "fn", "entry.py", FUNCTION_HANDLER, function="run")
    assert check_model.import_handler(folder) == "entry:run: function run"


def test_a_handler_imports_its_helpers_from_the_archive(isolated):
    helper = "LABELS = ['neg', 'pos']\n"
    handler = "from labels_helper import LABELS\n\n\ndef handle(data, context):\n" \
              "    return [LABELS[0]] * len(data or [])\n"
    folder = extracted(isolated, "helped", "helped.py", handler,
                       files={"labels_helper.py": helper}, extra=["labels_helper.py"])
    assert check_model.import_handler(folder) == "helped.py: function handle"


def test_a_handler_that_imports_a_missing_module_raises_the_import_error(isolated):
    folder = extracted(isolated, "broken", "broken.py", MISSING_IMPORT)
    with pytest.raises(ModuleNotFoundError, match="not_installed_pkg_byoc"):
        check_model.import_handler(folder)


@pytest.mark.parametrize("source, problem", [
    ("class A:\n    def handle(self): pass\n\n\nclass B:\n    def handle(self): pass\n",
     "found classes ['A', 'B']"),
    ("x = 1\n", "found classes []"),
    ("class NoHandle:\n    pass\n", "class NoHandle has no handle method"),
])
def test_a_handler_module_without_one_entry_point_is_refused(isolated, source, problem):
    folder = extracted(isolated, "odd", "odd.py", source)
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check_model.import_handler(folder)


def test_c15_a_missing_package_fails_the_check_with_the_reason_in_one_error_line(
        isolated, monkeypatch, capsys):
    """The real protocol: a fresh interpreter per archive (as in the image, where
    PYTHONPATH names the runtime), its last line the reason, BYOC-ERROR and BYOC-TIP."""
    monkeypatch.setenv("PYTHONPATH", f"{RUNTIME}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    mar = make_mar(isolated / "store", "broken", "broken.py", {"broken.py": MISSING_IMPORT})
    assert check_model.check_archive(mar, mar.name) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "BYOC-ERROR the handler of broken.mar does not import in the image: "
        "ModuleNotFoundError: No module named 'not_installed_pkg_byoc'",
        f"BYOC-TIP {check_model.TIP_REQUIREMENTS}"]
    assert not (isolated / "store" / "broken.py").exists()  # checked in a scratch copy


def test_fail_prints_the_two_marker_lines(capsys):
    assert check_model.fail("what is wrong", "what to do") == 1
    assert capsys.readouterr().out == "BYOC-ERROR what is wrong\nBYOC-TIP what to do\n"


def test_the_torchserve_check_needs_an_archive(tmp_path, capsys):
    assert torchserve_adapter.check_model(tmp_path) == 1
    assert f"BYOC-ERROR no .mar in the model stage ({tmp_path})" in capsys.readouterr().out


def test_the_torchserve_check_runs_each_archive(tmp_path, monkeypatch):
    for name in ("b", "a"):
        make_mar(tmp_path, name, "h.py", {"h.py": FUNCTION_HANDLER}, function="run")
    checked = []
    monkeypatch.setattr(torchserve_adapter, "check_archive",
                        lambda mar, label: checked.append((mar.name, label)) or 0)
    assert torchserve_adapter.check_model(tmp_path) == 0
    assert checked == [("a.mar", "a.mar"), ("b.mar", "b.mar")]


def test_the_triton_check_imports_hosted_archives_and_compiles_python_models(tmp_path,
                                                                             monkeypatch):
    (tmp_path / "host" / "1" / "archive").mkdir(parents=True)
    (tmp_path / "host" / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    (tmp_path / "clf" / "1").mkdir(parents=True)
    (tmp_path / "clf" / "1" / "model.py").write_text("import triton_python_backend_utils\n")
    checked = []
    where = sys.modules[triton_adapter.check_model.__module__]  # the module defining it
    monkeypatch.setattr(where, "check_archive",
                        lambda folder, label: checked.append((folder, label)) or 0)
    assert triton_adapter.check_model(tmp_path) == 0
    assert checked == [(tmp_path / "host" / "1" / "archive",
                        "host (TorchServe archive on Triton)")]


def test_a_python_backend_model_that_does_not_compile_fails_the_check(tmp_path, capsys):
    (tmp_path / "clf" / "1").mkdir(parents=True)
    (tmp_path / "clf" / "1" / "model.py").write_text("def execute(self, requests)\n    pass\n")
    assert triton_adapter.check_model(tmp_path) == 1
    out = capsys.readouterr().out
    assert out.startswith("BYOC-ERROR clf/1/model.py does not compile: ")
    assert "BYOC-TIP fix the Python backend model" in out
    assert not list(tmp_path.rglob("__pycache__"))  # syntax only, nothing written


def test_main_dispatches_to_the_flavors_adapter(tmp_path, capsys):
    assert check_model.main(["torchserve", str(tmp_path)]) == 1
    assert "no .mar in the model stage" in capsys.readouterr().out
    assert check_model.main(["triton", str(tmp_path)]) == 0  # an empty repository compiles


def test_main_archive_mode_prints_the_reason_as_its_last_line(isolated, capsys):
    folder = extracted(isolated, "broken", "broken.py", MISSING_IMPORT)
    assert check_model.main(["--archive", str(folder)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == \
        "ModuleNotFoundError: No module named 'not_installed_pkg_byoc'"
