"""Which Triton repository an image serves, which of its models load, and which one
/invocations runs: the model-folder rules of Triton's own SageMaker serve, plus
byoc's (every model loads, for ensembles and BLS; the description's default model)."""

from __future__ import annotations

from pathlib import Path

from ..check_model import check_archive, compile_python

MODEL_DIR = Path("/opt/ml/model")
BAKED_REPOSITORY = Path("/opt/byoc/model-store")


class ModelLayoutError(RuntimeError):
    pass


def find_repository(model_dir: Path = MODEL_DIR, baked: Path = BAKED_REPOSITORY) -> Path:
    """/opt/ml/model when SageMaker extracted a model there, else the baked repository."""
    if model_dir.is_dir() and any(model_dir.iterdir()):
        return model_dir
    if baked.is_dir() and any(baked.iterdir()):
        return baked
    raise ModelLayoutError(
        f"no model: {model_dir} is empty and the image has no baked model (built with "
        "--no-model). Point ModelDataUrl at a model.tar.gz made by "
        "`python build.py package-model triton`.")


def model_folders(repository: Path) -> list[str]:
    if (repository / "config.pbtxt").exists():
        raise ModelLayoutError(
            f"config.pbtxt is at the top of {repository}: each model needs its own folder "
            f"({repository}/<model_name>/config.pbtxt and <model_name>/1/...)")
    return sorted(p.name for p in repository.iterdir()
                  if p.is_dir() and (p / "config.pbtxt").is_file())


def models_to_load(folders: list[str], described: str) -> list[str]:
    """The description's load: list where the repository has those models, else all."""
    wanted = [name for name in described.split(",") if name.strip()]
    chosen = [name for name in wanted if name in folders]
    return chosen or folders


def default_model(repository: Path, folders: list[str], wanted: str | None,
                  described: str | None, loaded: list[str]) -> str:
    """The checks of Triton's SageMaker serve, with messages that say how to fix them."""
    if wanted:
        if wanted not in folders:
            raise ModelLayoutError(
                f"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME={wanted} but {repository} has no model "
                f"folder {wanted} (found: {', '.join(folders) or 'none'})")
        return wanted
    if described and described in folders:
        return described
    if not loaded:
        raise ModelLayoutError(f"no model folder (with a config.pbtxt) in {repository}")
    if len(loaded) > 1:
        raise ModelLayoutError(
            f"{len(loaded)} models in {repository} ({', '.join(loaded)}): set "
            "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME to the one /invocations should run "
            "(all of them are loaded, for ensembles and BLS)")
    return loaded[0]


def check_model(model_dir: Path) -> int:
    """Build time (byoc_runtime.check_model): hosted TorchServe handlers import, Python
    backend models compile."""
    model_dir = Path(model_dir)
    for archive in sorted(model_dir.glob("*/[0-9]*/archive")):
        if check_archive(archive, f"{archive.parent.parent.name} (TorchServe archive on "
                                  "Triton)"):
            return 1
    return compile_python(sorted(model_dir.glob("*/[0-9]*/model.py")), model_dir)
