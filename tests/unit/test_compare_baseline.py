"""The in-process baseline without Docker: a tiny text classifier archived with the real
torch-model-archiver (bench/heavy_model.py), its handler loaded with TorchServe's own
loader the way the Triton host loads it, timed in its own process on the samples."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from byoc.compare import baseline, facts
from byoc.console import Console
from byoc.model import describe, samples

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("ts")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import heavy_model
    finally:
        sys.path.remove(str(REPO / "bench"))
    return describe.load(heavy_model.make_model(tmp_path_factory.mktemp("tiny") / "model",
                                                "tiny", samples=4))


def names(model) -> list[str]:
    return [s.name for s in samples.load(model.samples)]


def test_the_handler_is_timed_in_process_and_answers_correctly(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(baseline, "BUDGET_S", 0.05)
    result = baseline.measure(tiny, {}, tiny.samples, names(tiny), (1, 4), [2], False,
                              tmp_path, Console())
    assert result["measured"] and result["archive_origin"] == str(tiny.torchserve.mar)
    assert result["handler"] == "text_handler.py" and result["device"] == "cpu"
    assert result["answers_checked"] == 4 and result["wrong_answers"] == {}
    assert [b["batch"] for b in result["batches"]] == [1, 2, 4]
    assert all(b["n"] >= 30 and b["p50_us"] > 0 for b in result["batches"])
    assert set(result["stages"]) == {"preprocess", "inference", "postprocess"}
    import torch

    assert result["threads"] == torch.get_num_threads()  # a fresh process's default
    assert result["request"]["p50_us"] <= result["request"]["p99_us"]


def test_a_repository_alone_is_not_measured(tiny, tmp_path):
    result = baseline.measure(tiny.replace(torchserve=None), {}, tiny.samples, names(tiny),
                              (1,), [], False, tmp_path, Console())
    assert result == {"measured": False, "note": "not measured: the model has no TorchServe "
                      "archive to call in process (a Triton repository's backends run only "
                      "inside tritonserver)"}


def test_a_handler_that_does_not_load_here_is_not_measured(tiny, tmp_path, capsys):
    broken = tmp_path / "broken.mar"
    with zipfile.ZipFile(tiny.torchserve.mar) as original, \
            zipfile.ZipFile(broken, "w") as archive:
        manifest = json.loads(original.read("MAR-INF/MANIFEST.json"))
        manifest["model"]["handler"] = "needs_more.py"
        for name in original.namelist():
            archive.writestr(name, json.dumps(manifest) if name == "MAR-INF/MANIFEST.json"
                             else original.read(name))
        archive.writestr("needs_more.py", "import a_package_only_the_image_has\n")
    model = tiny.replace(torchserve=tiny.torchserve.__class__("text_classifier", mar=broken))
    result = baseline.measure(model, {}, tiny.samples, names(tiny), (1,), [], False,
                              tmp_path / "scratch", Console())
    assert not result["measured"]
    assert "No module named 'a_package_only_the_image_has'" in result["note"]
    assert "in-process baseline not measured" in capsys.readouterr().err


def test_archives_from_either_image_are_the_same_files(tiny, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy2(tiny.torchserve.mar, store / "text_classifier.mar")
    from_mar = facts.find_archive(store, tmp_path / "a")
    hosted = tmp_path / "host" / "text_classifier" / "1" / "archive"
    facts.unpack_mar(tiny.torchserve.mar, hosted)
    (hosted / "__pycache__").mkdir()
    (hosted / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    assert facts.find_archive(tmp_path / "host", tmp_path / "b") == hosted
    assert facts.archive_files(from_mar) == facts.archive_files(hosted)
    # archived again later: only torch-model-archiver's timestamp differs, and it is ignored
    manifest = hosted / "MAR-INF" / "MANIFEST.json"
    stamped = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**stamped, "createdOn": "01/01/2030 00:00:00"}))
    assert facts.archive_differences(facts.archive_files(from_mar),
                                     facts.archive_files(hosted)) == []
    (hosted / "metrics.json").write_text("{}")
    assert facts.archive_differences(facts.archive_files(from_mar),
                                     facts.archive_files(hosted)) == ["metrics.json"]
    assert facts.archive_config(hosted) == {}
    assert baseline.batch_sizes((1, 8, 128), [16, 1]) == [1, 8, 16, 64]
