"""TorchServe model archives (.mar) as byoc reads them on the host, before any build.

A .mar is a zip holding MAR-INF/MANIFEST.json and the archive's files. What is checked
here: it is a zip with a manifest naming a Python handler; its requirements file (if
any) is read so the build installs it. unsupported_features() finds what the Triton host
(triton_backends/torchserve_host) cannot serve, so `triton --mar` refuses it at build
time instead of at the first request (docs/torchserve-on-triton.md has the table)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from pathlib import Path

import yaml

from ..errors import ConfigError

MANIFEST = "MAR-INF/MANIFEST.json"
PYTHON_RUNTIMES = ("python", "python3")
_TIP = "make the archive with torch-model-archiver (it writes MAR-INF/MANIFEST.json)"


@dataclasses.dataclass(frozen=True)
class MarInfo:
    path: Path
    model_name: str
    version: str
    handler: str
    runtime: str
    requirements: str  # the text of the archive's requirements file ("" when none)
    config: dict  # its model-config.yaml, parsed ({} when none)
    # What byoc reads of the archive: its Python files, requirements and config file
    # (never the weights: an archive may be gigabytes); names: every file but the manifest.
    files: dict[str, bytes]
    names: tuple[str, ...] = ()

    def python_sources(self) -> dict[str, str]:
        return {name: data.decode("utf-8", "replace") for name, data in self.files.items()
                if name.endswith(".py")}


def read(path: Path) -> MarInfo:
    path = Path(path)
    if path.suffix == ".war":
        raise ConfigError(f"{path}: workflow archives (.war) are not supported: byoc serves "
                          "one model per image", "serve each model's .mar of the workflow "
                          "as its own image, or chain them in a Triton ensemble")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a .mar", _TIP)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if MANIFEST not in names:
                raise ConfigError(f"{path}: not a TorchServe model archive: no {MANIFEST}",
                                  _TIP)
            manifest = json.loads(archive.read(MANIFEST))
            model = manifest.get("model") if isinstance(manifest, dict) else None
            wanted = {(model or {}).get("requirementsFile"), (model or {}).get("configFile")}
            files = {n: archive.read(n) for n in names
                     if not n.endswith("/") and n != MANIFEST
                     and (n.endswith(".py") or n in wanted)}
            names = tuple(n for n in names if not n.endswith("/") and n != MANIFEST)
    except zipfile.BadZipFile:
        raise ConfigError(f"{path}: not a TorchServe model archive: not a zip file", _TIP) \
            from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {MANIFEST} is not valid JSON: {exc}", _TIP) from None
    if not isinstance(model, dict) or not model.get("handler"):
        raise ConfigError(f"{path}: {MANIFEST} names no model.handler", _TIP)
    runtime = str(manifest.get("runtime") or "python")
    if runtime not in PYTHON_RUNTIMES:
        raise ConfigError(f"{path}: runtime {runtime!r}: byoc serves Python handlers only",
                          "archive the model with --runtime python")
    requirements = ""
    if model.get("requirementsFile"):
        data = files.get(model["requirementsFile"])
        if data is None:
            raise ConfigError(f"{path}: {MANIFEST} names requirementsFile "
                              f"{model['requirementsFile']!r}, which the archive lacks", _TIP)
        requirements = data.decode("utf-8", "replace")
    config = {}
    if model.get("configFile"):
        data = files.get(model["configFile"])
        if data is None:
            raise ConfigError(f"{path}: {MANIFEST} names configFile {model['configFile']!r}, "
                              "which the archive lacks", _TIP)
        config = _yaml(path, model["configFile"], data)
    return MarInfo(path=path, model_name=str(model.get("modelName") or path.stem),
                   version=str(model.get("modelVersion") or "1.0"),
                   handler=str(model["handler"]), runtime=runtime,
                   requirements=requirements, config=config, files=files, names=names)


def read_config(path: Path) -> dict:
    """A model-config.yaml on disk (archiver inputs), parsed as the archive's would be."""
    return _yaml(path, path.name, Path(path).read_bytes())


def _yaml(path: Path, name: str, data: bytes) -> dict:
    try:
        parsed = yaml.safe_load(io.BytesIO(data)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {name} is not valid YAML: {exc}", _TIP) from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{path}: {name} must be a mapping of settings", _TIP)
    return parsed


# -- what the Triton host does not serve ----------------------------------------------------

# Handler code that needs TorchServe's frontend: found by name in the archive's sources.
_CODE_FEATURES = (
    (re.compile(r"\bsend_intermediate_predict_response\b"),
     "streaming responses (send_intermediate_predict_response)"),
    (re.compile(r"\.\s*(add_counter|add_gauge|add_histogram|add_metric|add_metric_to_cache|"
                r"add_time|add_size|add_percent|add_error|get_metric)\s*\("),
     "custom metrics (context.metrics.{0})"),
    (re.compile(r"\bstopping_criteria\b"),
     "streaming stopping criteria (context.stopping_criteria)"),
    (re.compile(r"\bget_sequence_id\b|\bts_request_sequence_id\b"),
     "stateful sequence batching (context.get_sequence_id)"),
)
# model-config.yaml settings that need TorchServe's frontend.
_CONFIG_FEATURES = {
    "parallelType": "multi-process parallelism (parallelType: torchrun)",
    "torchrun": "multi-process parallelism (torchrun:)",
    "continuousBatching": "continuous batching (continuousBatching)",
    "sequenceBatching": "stateful sequence batching (sequenceBatching)",
    "stateful": "stateful sequence batching (stateful)",
    "sequenceMaxIdleMSec": "stateful sequence batching (sequenceMaxIdleMSec)",
    "useJobTicket": "job tickets (useJobTicket)",
    "asyncCommunication": "asynchronous worker communication (asyncCommunication)",
}
_OFF = (False, None, "", 0, "false", "False")


def unsupported_features(info: MarInfo) -> list[str]:
    """Each feature of the archive the Triton host cannot serve, with where it was found."""
    found = []
    for name, text in sorted(info.python_sources().items()):
        for lineno, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, feature in _CODE_FEATURES:
                match = pattern.search(code)
                if match:
                    label = feature.format(*match.groups()) if match.groups() else feature
                    found.append(f"{label} in {name} line {lineno}")
    for key, feature in _CONFIG_FEATURES.items():
        if key in info.config and info.config[key] not in _OFF:
            found.append(f"{feature} in model-config.yaml")
    device = str(info.config.get("deviceType", "")).lower()
    if device and device not in ("cpu", "gpu"):
        found.append(f"deviceType {device!r} in model-config.yaml (cpu and gpu only)")
    return found


def batch_settings(info_config: dict) -> dict:
    """The archive's own batching (model-config.yaml), as the Triton host maps it."""
    out = {}
    for key, name in (("batchSize", "batch_size"), ("maxBatchDelay", "max_batch_delay_ms"),
                      ("minWorkers", "workers"), ("responseTimeout", "timeout_s")):
        value = info_config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[name] = value
    return out
