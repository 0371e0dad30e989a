"""Triton model repositories as byoc checks them before a build.

config.pbtxt files are parsed with Triton's own model-config protobuf (shipped in
tritonclient) and google.protobuf's text format, exactly as Triton reads them. A refusal
names the file and the field. Conventions byoc adds (docs/models.md):

- requirements: a model folder may hold requirements.txt; the build installs it.
- raw bodies: a model whose config has a TYPE_STRING input PAYLOAD (and optionally
  CONTENT_TYPE) and a TYPE_STRING output RESPONSE takes request bodies as they are; the
  front hands other content types only to such a default model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import ConfigError

CONFIG = "config.pbtxt"
# Backends (or platforms) each runtime's tritonserver has. The nvidia-pytriton wheel ships
# the Python backend only; NGC's images ship the rest.
RUNTIME_BACKENDS = {
    "pytriton": {"python"},
    "ngc": {"python", "onnxruntime", "pytorch", "tensorrt", "tensorflow", "openvino", "fil",
            "dali", "identity"},
}
_PLATFORMS = {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch",
              "tensorrt_plan": "tensorrt", "tensorflow_graphdef": "tensorflow",
              "tensorflow_savedmodel": "tensorflow", "ensemble": "ensemble"}
RAW_INPUT, RAW_CONTENT_TYPE, RAW_OUTPUT = "PAYLOAD", "CONTENT_TYPE", "RESPONSE"
_TIP = "see docs/models.md (Triton repositories) and Triton's model configuration guide"


def _pb():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format, model_config_pb2


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    folder: str
    path: Path
    config: object  # model_config_pb2.ModelConfig
    versions: tuple[int, ...]

    @property
    def kind(self) -> str:
        """The backend, or 'ensemble'; platforms map to the backend that serves them."""
        if self.config.backend:
            return self.config.backend
        return _PLATFORMS.get(self.config.platform, self.config.platform or "unknown")

    def inputs(self) -> dict:
        return {i.name: i for i in self.config.input}

    def outputs(self) -> dict:
        return {o.name: o for o in self.config.output}

    def takes_raw_body(self) -> bool:
        string = _pb()[1].TYPE_STRING
        ins, outs = self.inputs(), self.outputs()
        return (RAW_INPUT in ins and ins[RAW_INPUT].data_type == string
                and RAW_OUTPUT in outs and outs[RAW_OUTPUT].data_type == string)


def parse_config(path: Path, folder: str) -> object:
    text_format, pb = _pb()
    try:
        return text_format.Parse(Path(path).read_text(), pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigError(f"{path}: not a valid Triton model configuration: {exc}", _TIP) \
            from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file", _TIP) from None


def read(repository: Path, will_exist: set[str] = frozenset()) -> dict[str, ModelConfig]:
    """Every model folder of the repository, checked one by one. will_exist holds paths
    (relative to the repository) the build adds, such as trained weights."""
    repository = Path(repository)
    if (repository / CONFIG).exists():
        raise ConfigError(f"{repository / CONFIG}: a config.pbtxt at the top of the "
                          "repository; each model needs its own folder "
                          "(REPO/NAME/config.pbtxt, REPO/NAME/1/...)", _TIP)
    models = {}
    for folder in sorted(p for p in repository.iterdir() if p.is_dir()):
        if folder.name.startswith(".") or folder.name == "__pycache__":
            continue
        config_path = folder / CONFIG
        if not config_path.is_file():
            raise ConfigError(f"{folder}: model folder without {CONFIG}", _TIP)
        config = parse_config(config_path, folder.name)
        if config.name and config.name != folder.name:
            raise ConfigError(f"{config_path}: name: {config.name!r} differs from its folder "
                              f"{folder.name!r}", "rename the folder or the model: Triton "
                              "needs them equal")
        versions = sorted(int(p.name) for p in folder.iterdir()
                          if p.is_dir() and p.name.isdigit())
        versions += [int(v.split("/")[1]) for v in will_exist
                     if v.startswith(f"{folder.name}/") and v.split("/")[1].isdigit()]
        if not versions:  # ensembles too: Triton wants a (possibly empty) version folder
            raise ConfigError(f"{folder}: no version folder (like {folder}/1/)", _TIP)
        models[folder.name] = ModelConfig(folder.name, config_path, config,
                                          tuple(sorted(set(versions))))
    if not models:
        raise ConfigError(f"{repository}: no model folder in the repository", _TIP)
    return models


def check(models: dict[str, ModelConfig], runtime: str, *, default_model: str | None,
          load: tuple[str, ...]) -> str:
    """Refuse what Triton would refuse at start; returns the default model."""
    available = RUNTIME_BACKENDS[runtime]
    for name in load:
        if name not in models:
            raise ConfigError(f"load: {name!r} is not a model of the repository (found: "
                              f"{', '.join(models)})", "name folders of the repository")
    loaded = {n: m for n, m in models.items() if not load or n in load}
    for model in loaded.values():
        kind = model.kind
        if kind == "ensemble":
            _check_ensemble(model, models, loaded)
        elif kind not in available:
            field = "backend" if model.config.backend else "platform"
            raise ConfigError(
                f"{model.path}: {field}: {model.config.backend or model.config.platform!r} "
                f"is not in the {runtime} runtime (it has: {', '.join(sorted(available))})",
                "build with --runtime ngc (NVIDIA's Triton image has every backend)"
                if runtime == "pytriton" else "use a backend Triton ships")
    if default_model is not None:
        if default_model not in models:
            where = Path(next(iter(models.values())).path).parent.parent
            raise ConfigError(f"{where}: default_model {default_model!r} is not a model of the "
                              f"repository (found: {', '.join(models)})",
                              "name one of its folders, or leave it out when there is one")
        if load and default_model not in load:
            raise ConfigError(f"default_model {default_model!r} is not in load: "
                              f"{', '.join(load)}", "add it to load:")
        return default_model
    if len(loaded) == 1:
        return next(iter(loaded))
    raise ConfigError(f"{len(loaded)} models in the repository ({', '.join(loaded)}) and "
                      "no default_model", "set default_model (or --default-model) to the one "
                      "/invocations runs; the others are loaded too, for ensembles and BLS")


def _check_ensemble(model: ModelConfig, models: dict, loaded: dict) -> None:
    produced = set(model.inputs())
    for i, step in enumerate(model.config.ensemble_scheduling.step):
        where = f"{model.path}: ensemble_scheduling.step[{i}]"
        target = models.get(step.model_name)
        if target is None:
            raise ConfigError(f"{where}: model_name {step.model_name!r} is not a model of "
                              "the repository", _TIP)
        if step.model_name not in loaded:
            raise ConfigError(f"{where}: model_name {step.model_name!r} is not in load:",
                              "add it to load:")
        for key, value in step.input_map.items():
            if key not in target.inputs():
                raise ConfigError(f"{where}: input_map key {key!r} is not an input of "
                                  f"{step.model_name} (it has: {', '.join(target.inputs())})",
                                  _TIP)
            if value not in produced:
                raise ConfigError(f"{where}: input_map value {value!r} is neither an "
                                  "ensemble input nor an output of an earlier step", _TIP)
        for key, value in step.output_map.items():
            if key not in target.outputs():
                raise ConfigError(f"{where}: output_map key {key!r} is not an output of "
                                  f"{step.model_name} (it has: {', '.join(target.outputs())})",
                                  _TIP)
            produced.add(value)
    for name in model.outputs():
        if name not in produced:
            raise ConfigError(f"{model.path}: output {name!r} is produced by no step", _TIP)


def multi_model_servable(models: dict[str, ModelConfig], default_model: str,
                         loaded: list[str]) -> tuple[bool, str]:
    """Can Triton's SageMaker multi-model API serve this repository as one model?

    Its load (sagemaker_server.cc, SageMakerMMELoadModel) maps the archive's only model
    folder, or else its ensemble, to the target name and loads that model alone, with an
    ensemble's steps as dependents. Models called with BLS are not loaded there, and with
    several folders and no ensemble it picks whichever folder it read last."""
    if len(models) == 1:
        return True, "one model"
    ensembles = [n for n, m in models.items() if m.kind == "ensemble"]
    if ensembles != [default_model]:
        found = "ensembles " + ", ".join(ensembles) if ensembles else "no ensemble"
        return False, (f"{len(models)} models, {found}, default model {default_model}: "
                       "Triton's multi-model load serves one model, or one ensemble (the "
                       "default model) with its steps")
    reached, todo = set(), [default_model]
    while todo:
        name = todo.pop()
        if name in reached or name not in models:
            continue
        reached.add(name)
        todo += [step.model_name for step in models[name].config.ensemble_scheduling.step]
    missing = [n for n in loaded if n not in reached]
    if missing:
        return False, (f"{', '.join(missing)} not a step of the ensemble {default_model}: "
                       "Triton's multi-model load would not load them (BLS calls fail)")
    return True, f"the ensemble {default_model} and its steps"


def requirement_files(repository: Path, models: dict[str, ModelConfig],
                      load: tuple[str, ...]) -> list[Path]:
    return [repository / name / "requirements.txt" for name in models
            if (not load or name in load) and (repository / name / "requirements.txt").is_file()]


_DATATYPES = {"TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16",
              "TYPE_UINT32": "UINT32", "TYPE_UINT64": "UINT64", "TYPE_INT8": "INT8",
              "TYPE_INT16": "INT16", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64",
              "TYPE_FP16": "FP16", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64",
              "TYPE_STRING": "BYTES", "TYPE_BF16": "BF16"}


def kserve_request(model: ModelConfig) -> bytes:
    """A KServe v2 JSON request built from the model's inputs: shapes from dims (-1 -> 1,
    a batch of 1 when max_batch_size > 0), zeros (or empty strings) as data."""
    pb = _pb()[1]
    inputs = []
    for tensor in model.config.input:
        if tensor.optional:
            continue
        shape = [1 if d < 0 else int(d) for d in tensor.dims]
        if model.config.max_batch_size > 0:
            shape = [1, *shape]
        count = 1
        for d in shape:
            count *= d
        datatype = _DATATYPES.get(pb.DataType.Name(tensor.data_type), "FP32")
        value = "" if datatype == "BYTES" else (False if datatype == "BOOL" else 0)
        inputs.append({"name": tensor.name, "shape": shape, "datatype": datatype,
                       "data": [value] * count})
    return json.dumps({"inputs": inputs}).encode()
