"""Lint as tests: ruff on the code, hadolint on every rendered Dockerfile, actionlint (with
ShellCheck) on every workflow. A finding fails; accepted exceptions live in config with a
reason (pyproject.toml, .hadolint.yaml, .github/actionlint.yaml). The tests of the tests feed
each linter a deliberately broken input and expect findings, so a linter that silently checks
nothing cannot pass.

A missing linter fails under CI=true (with how to install it) and skips elsewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from byoc import config

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("byoc_lint", REPO / "scripts" / "lint.py")
lint = importlib.util.module_from_spec(_spec)
sys.modules["byoc_lint"] = lint
_spec.loader.exec_module(lint)


def need(tool: str) -> str:
    try:
        return lint.find_tool(tool)
    except lint.MissingTool as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {exc}", pytrace=False)
        pytest.skip(str(exc))


def report(findings) -> str:
    return "\n".join(str(f) for f in findings)


# -- ruff -----------------------------------------------------------------------------------

def test_ruff_clean():
    need("ruff")
    findings = lint.ruff()
    assert not findings, "ruff findings:\n" + report(findings)


def test_ruff_reports_a_broken_file(tmp_path):
    need("ruff")
    bad = tmp_path / "broken.py"
    bad.write_text("import os\n\n\ndef f(x):\n    return undefined_name\n")
    codes = {f.code for f in lint.ruff([str(bad)], cwd=REPO)}
    assert {"F401", "F821"} <= codes, codes


# -- hadolint -------------------------------------------------------------------------------

def test_hadolint_clean_on_every_rendered_dockerfile(tmp_path):
    need("hadolint")
    files = lint.rendered_dockerfiles(tmp_path)
    # Every image of images/images.yaml, with and without the baked model, torch from its
    # index and from a wheelhouse: every branch of the templates.
    assert len(files) == 4 * len(config.load())
    findings = lint.hadolint(files + lint.repository_dockerfiles())
    assert not findings, "hadolint findings:\n" + report(findings)


def test_hadolint_sees_the_repositorys_own_dockerfiles():
    found = {p.relative_to(REPO).as_posix() for p in lint.repository_dockerfiles()}
    assert "tests/fixtures/ngc-standin/Dockerfile" in found
    assert not any(p.startswith(("build/", ".venv/", "tests/golden/")) for p in found)


def test_hadolint_reports_a_broken_dockerfile(tmp_path):
    need("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN cd /x && make\n")
    codes = {f.code for f in lint.hadolint([bad])}
    assert {"DL3006", "DL3003"} <= codes, codes  # untagged FROM; cd instead of WORKDIR


def test_hadolint_reports_the_pipe_without_pipefail_once_its_exception_goes(tmp_path):
    """DL4006 is ignored only until images/triton/Dockerfile.j2 loses its pipe; the rule
    itself works (checked with a config that ignores nothing)."""
    need("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\nRUN ldd /bin/ls | grep found\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("failure-threshold: style\n")
    assert "DL4006" in {f.code for f in lint.hadolint([bad], config_file=strict)}


def test_every_hadolint_exception_carries_a_reason():
    lines = (REPO / ".hadolint.yaml").read_text().splitlines()
    start = lines.index("ignored:")
    for i, line in enumerate(lines[start + 1:], start + 1):
        rule = re.fullmatch(r"\s+- (DL\d{4}|SC\d{4})\s*", line)
        if rule:
            assert lines[i - 1].strip().startswith("#"), \
                f".hadolint.yaml line {i + 1}: {rule.group(1)} is ignored without a reason"


# -- actionlint -----------------------------------------------------------------------------

def test_actionlint_clean_on_every_workflow():
    need("actionlint")
    need("shellcheck")
    workflows = lint.workflow_files()
    assert {p.name for p in workflows} >= {"ci.yml", "images.yml", "gpu.yml"}
    findings = lint.actionlint(workflows)
    assert not findings, "actionlint findings:\n" + report(findings)


BROKEN_WORKFLOW = """\
name: broken
on: push
jobs:
  build:
    runs-on: ubuntu-lastest
    steps:
      - run: echo "${{ matrix.nope }}"
      - run: echo $UNQUOTED
"""


def test_actionlint_reports_a_broken_workflow(tmp_path):
    need("actionlint")
    need("shellcheck")
    bad = tmp_path / "broken.yml"
    bad.write_text(BROKEN_WORKFLOW)
    findings = lint.actionlint([bad], cwd=REPO)
    text = report(findings)
    assert any(f.code == "runner-label" and f.line == 5 for f in findings), text
    assert any(f.code == "expression" and "nope" in f.message for f in findings), text
    # ShellCheck runs on `run:` scripts: a missing shellcheck would silently skip this.
    assert any(f.code == "shellcheck" and "SC2086" in f.message for f in findings), text


def test_actionlint_knows_the_self_hosted_gpu_label(tmp_path):
    """`runs-on: [self-hosted, gpu]` is declared in .github/actionlint.yaml, not ignored."""
    need("actionlint")
    need("shellcheck")
    wf = tmp_path / "gpu.yml"
    wf.write_text("on: workflow_dispatch\njobs:\n  j:\n    runs-on: [self-hosted, gpu]\n"
                  "    steps:\n      - run: nvidia-smi\n")
    assert not lint.actionlint([wf], cwd=REPO)
    wf.write_text(wf.read_text().replace("gpu]", "gpuu]"))
    assert any(f.code == "runner-label" for f in lint.actionlint([wf], cwd=REPO))


# -- the script -----------------------------------------------------------------------------

def test_lint_script_fails_on_findings_and_says_how_to_install_a_missing_linter(
        monkeypatch, capsys):
    monkeypatch.setitem(lint.LINTERS, "ruff",
                        lambda: [lint.Finding("ruff", "x.py", 1, "F401", "unused")])
    assert lint.main(["ruff"]) == 1
    assert "x.py:1: F401 unused [ruff]" in capsys.readouterr().out

    def missing():
        raise lint.MissingTool("actionlint")

    monkeypatch.setitem(lint.LINTERS, "actionlint", missing)
    assert lint.main(["actionlint"]) == 1
    err = capsys.readouterr().err
    assert "actionlint not found" in err and "requirements-tools.lock" in err
    assert lint.main(["nope"]) == 2


def test_hadolint_clean_on_the_template_branches_only_user_models_reach(tmp_path):
    """The shipped images do not reach every branch: a .mar served as it is, a .mar hosted
    on Triton, archiver inputs built for Triton (with requirements)."""
    need("hadolint")
    from archiving import make_mar

    from byoc import render
    from byoc.model import describe

    handler = "def handle(data, context):\n    return [] if data is None else data\n"
    mar = make_mar(tmp_path / "mars", "user", "h.py", {"h.py": handler, "r.txt": "regex\n"},
                   function="handle", requirements="r.txt")
    (tmp_path / "h.py").write_text(handler)
    (tmp_path / "r.txt").write_text("regex\n")
    models = {
        "mar": describe.from_options(describe.ModelOptions(mar=str(mar)), tmp_path, None),
        "inputs": describe.parse({"torchserve": {"handler": "h.py"}, "requirements": ["r.txt"]},
                                 "u.yaml", tmp_path, "u"),
    }
    specs = config.load()
    files = []
    for model_name, model in models.items():
        for image in ("torchserve-cpu", "triton-cpu", "triton-gpu"):
            out = render.render_context(specs[image], model, tmp_path / f"{model_name}-{image}")
            files.append(out.dockerfile.rename(tmp_path / f"{model_name}-{image}.Dockerfile"))
    text = "".join(f.read_text() for f in files)
    assert "zipfile -e" in text and "--requirements-file" in text  # the branches are there
    findings = lint.hadolint(files)
    assert not findings, "hadolint findings:\n" + report(findings)
