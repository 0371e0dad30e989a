"""Which servers compare runs for a model, and the images it names for them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from byoc import config
from byoc.compare import servers
from byoc.compare.options import CompareOptions
from byoc.console import Console
from byoc.errors import UsageError
from byoc.model.describe import ModelOptions
from byoc.model.spec import Archive, ModelSpec, Repository

REPO = Path(__file__).resolve().parents[2]


def mar(tmp_path: Path, handler_code: str = "def handle(data, context):\n    return data\n"):
    path = tmp_path / "m.mar"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps(
            {"runtime": "python", "model": {"modelName": "m", "handler": "h.py"}}))
        z.writestr("h.py", handler_code)
    return path


def model(tmp_path: Path, *, archive: bool = True, repository: bool = False,
          code: str | None = None) -> ModelSpec:
    return ModelSpec(
        name="m", origin="test",
        torchserve=Archive("m", mar=mar(tmp_path, *(code,) if code else ())) if archive
        else None,
        triton=Repository(path=tmp_path) if repository else None)


def test_auto_runs_every_server_the_model_allows(tmp_path):
    console = Console()
    assert servers.choose(model(tmp_path), "auto", console) == ["torchserve", "triton-mar"]
    assert servers.choose(model(tmp_path, repository=True), "auto", console) == \
        ["torchserve", "triton-mar", "triton"]
    assert servers.choose(model(tmp_path, archive=False, repository=True), "auto",
                          console) == ["triton"]


def test_a_named_server_the_model_cannot_serve_is_refused(tmp_path):
    with pytest.raises(UsageError) as refused:
        servers.choose(model(tmp_path), "torchserve,triton", Console())
    assert refused.value.message == ("--servers triton: model 'm' (test) has no Triton "
                                     "repository (triton: or --model-repository)")
    assert "the servers this model allows: torchserve, triton-mar" in refused.value.tip
    with pytest.raises(UsageError, match="has no TorchServe archive"):
        servers.choose(model(tmp_path, archive=False, repository=True), "triton-mar",
                       Console())
    with pytest.raises(UsageError, match="unknown server 'tritonx'"):
        servers.choose(model(tmp_path), "tritonx", Console())
    assert servers.choose(model(tmp_path, repository=True), "triton, torchserve",
                          Console()) == ["torchserve", "triton"]


def test_what_the_host_cannot_serve_is_left_out_or_refused(tmp_path, capsys):
    streaming = "def handle(data, context):\n    send_intermediate_predict_response(1)\n"
    m = model(tmp_path, code=streaming)
    assert servers.choose(m, "auto", Console()) == ["torchserve"]
    assert "triton-mar left out" in capsys.readouterr().err
    with pytest.raises(UsageError, match="does not support streaming responses"):
        servers.choose(m, "triton-mar", Console())


def test_each_server_gets_its_own_image_and_model_part(tmp_path):
    m = model(tmp_path, repository=True)
    options = CompareOptions(model=ModelOptions(), config=config.DEFAULT_CONFIG)
    planned = {p.server: p for p in servers.plan(m, ["torchserve", "triton-mar", "triton"],
                                                 options)}
    assert planned["torchserve"].reference == "byoc-torchserve:0.1.0-cpu-m"
    assert planned["triton-mar"].reference == "byoc-triton:0.1.0-cpu-m-mar"
    assert planned["triton"].reference == "byoc-triton:0.1.0-cpu-m"
    assert planned["triton-mar"].model.triton is None
    assert planned["triton"].model.torchserve is None
    assert planned["triton"].spec.flavor == "triton" and planned["torchserve"].spec.variant \
        == "cpu"
    given = CompareOptions(model=ModelOptions(), config=config.DEFAULT_CONFIG, gpu=True,
                           images=(("triton-mar", "mine:1"),))
    planned = {p.server: p for p in servers.plan(m, ["torchserve", "triton-mar"], given)}
    assert planned["triton-mar"].reference == "mine:1"
    assert planned["torchserve"].spec.variant == "gpu"
