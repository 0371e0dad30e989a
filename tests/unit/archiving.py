"""TorchServe model archives for the unit tests, made by the real torch-model-archiver.

make_mar() runs the archiver's own code in this process (the manifest and packaging
functions its CLI calls), so a test gets exactly the .mar TorchServe's tool writes, in a
few milliseconds instead of a subprocess start. Handlers are the tests' own, written in
the shape of TorchServe's examples."""

from __future__ import annotations

import tempfile
from pathlib import Path

from model_archiver.model_archiver_config import ModelArchiverConfig
from model_archiver.model_packaging import package_model
from model_archiver.model_packaging_utils import ModelExportUtils


def make_mar(out: Path, name: str, handler: str, files: dict[str, str | bytes] | None = None,
             *, function: str | None = None, serialized: str | None = None,
             extra: list[str] = (), config: str | None = None,
             requirements: str | None = None, version: str = "1.0") -> Path:
    """Write files (name -> text or bytes) into a scratch folder beside out, then archive
    them: handler is one of those files (or a stock handler name), function its entry
    point (module:function), serialized/extra/config/requirements name files too."""
    src = Path(out) / f"{name}-inputs"
    src.mkdir(parents=True)
    for file_name, content in (files or {}).items():
        path = src / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    def at(file_name: str | None) -> str | None:
        return str(src / file_name) if file_name else None

    if (src / handler).is_file():
        handler_arg = str(src / Path(handler).stem) + f":{function}" if function else at(handler)
    else:
        handler_arg = handler  # a stock handler, such as image_classifier
    config_obj = ModelArchiverConfig(
        model_name=name, handler=handler_arg, version=version, serialized_file=at(serialized),
        extra_files=",".join(str(src / e) for e in extra) or None, export_path=str(out),
        force=True, requirements_file=at(requirements), config_file=at(config))
    # The archiver stages files in tempfile.gettempdir()/NAME: keep that inside out.
    saved = tempfile.tempdir
    tempfile.tempdir = str(src)
    try:
        package_model(config_obj, ModelExportUtils.generate_manifest_json(config_obj))
    finally:
        tempfile.tempdir = saved
    return Path(out) / f"{name}.mar"
