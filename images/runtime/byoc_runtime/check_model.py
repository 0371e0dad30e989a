"""Build-time check that the model's handler imports inside the image.

    python -m byoc_runtime.check_model torchserve|triton MODEL_DIR

Run in the build's model-check stage, after the model's requirements are installed, so
a handler that needs a missing package fails the build, not the first request. Each
TorchServe handler (a .mar, or an archive hosted by Triton) is imported the way a
TorchServe worker imports it: archive folder as working directory and on sys.path,
TorchServe's own loader resolving the handler, its entry point checked. Triton
Python-backend models are compiled (their triton_python_backend_utils exists only
inside Triton). A failure prints BYOC-ERROR and BYOC-TIP lines and exits 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TIP_REQUIREMENTS = ("declare the package in the archive's requirements "
                    "(torch-model-archiver --requirements-file), or in requirements: of the "
                    "model's description (--requirements FILE)")


def fail(message: str, tip: str) -> int:
    print(f"BYOC-ERROR {message}", flush=True)
    print(f"BYOC-TIP {tip}", flush=True)
    return 1


def import_handler(archive_dir: Path) -> str:
    """Import and resolve the handler as TsModelLoader.load does, without initialize()."""
    from ts.model_loader import TsModelLoader
    from ts.utils.util import list_classes_from_module

    manifest = json.loads((archive_dir / "MAR-INF" / "MANIFEST.json").read_text())
    handler = manifest["model"]["handler"]
    module_name = handler.split(":", 1)[0].removesuffix(".py").split("/")[-1]
    os.chdir(archive_dir)
    sys.path[:0] = [str(archive_dir / module_name), str(archive_dir)]
    loader = TsModelLoader()
    if (archive_dir / f"{module_name}.py").exists():
        module, function = loader._load_handler_file(handler)
    else:
        try:
            module, function = loader._load_handler_file(handler)
        except ImportError:
            module, function = loader._load_default_handler(handler), None
    function = function or "handle"
    if hasattr(module, function):
        return f"{handler}: function {function}"
    classes = list_classes_from_module(module)
    if len(classes) != 1:
        raise ValueError(f"expected one handler class or a '{function}' function in "
                         f"{module.__name__}, found classes {[c.__name__ for c in classes]}")
    if not hasattr(classes[0], "handle"):
        raise ValueError(f"class {classes[0].__name__} has no handle method")
    return f"{handler}: class {classes[0].__name__}"


def check_one(archive_dir: Path, label: str) -> int:
    """In a fresh interpreter, so two archives' modules never meet."""
    done = subprocess.run([sys.executable, "-m", "byoc_runtime.check_model", "--archive",
                           str(archive_dir)], capture_output=True, text=True)
    if done.returncode == 0:
        print(f"model-check: {label}: {done.stdout.strip()}", flush=True)
        return 0
    reason = (done.stdout.strip().splitlines() or [""])[-1] or done.stderr.strip()[-300:]
    print(done.stderr[-3000:], file=sys.stderr)
    return fail(f"the handler of {label} does not import in the image: {reason}",
                TIP_REQUIREMENTS)


def check_archive(archive: Path, label: str) -> int:
    """A .mar file or an unpacked archive folder, imported from a scratch copy (handlers
    may write beside themselves, as TorchServe's own extraction lets them)."""
    with tempfile.TemporaryDirectory(prefix="byoc-check-") as tmp:
        work = Path(tmp) / "archive"
        if archive.is_dir():
            shutil.copytree(archive, work)
        else:
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(work)
        return check_one(work, label)


def compile_python(sources: list[Path], root: Path) -> int:
    for source in sources:
        try:
            compile(source.read_bytes(), str(source), "exec")  # syntax only, nothing written
        except (SyntaxError, ValueError) as exc:
            return fail(f"{source.relative_to(root)} does not compile: {exc}",
                        "fix the Python backend model")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--archive"]:
        try:
            print(import_handler(Path(argv[1])))
        except Exception as exc:  # the reason goes to the parent as the last line
            print(f"{type(exc).__name__}: {exc}")
            return 1
        return 0
    flavor, model_dir = argv
    import importlib

    # Each flavor's run-time adapter names its check (adapters/NAME.py: check_model).
    adapter = importlib.import_module(f"byoc_runtime.adapters.{flavor}")
    return adapter.check_model(Path(model_dir))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
