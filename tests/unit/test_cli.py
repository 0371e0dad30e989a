"""byoc.cli: exit statuses, one ERROR line plus a TIP for usage mistakes, render end to end,
the argument defaults, the options each stage takes, and every command's --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from byoc import builder, cli
from byoc.cli import options
from byoc.compat import GateOptions
from byoc.errors import ExitStatus
from byoc.model import describe
from byoc.push import PushOptions


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    status = cli.main(list(argv))
    return status, capsys.readouterr().err.splitlines()


def assert_usage_error(status: int, lines: list[str], *needles: str) -> None:
    assert status == ExitStatus.USAGE == 2
    assert len(lines) == 2, lines
    assert lines[0].startswith("ERROR ") and lines[1].startswith("TIP ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("argv, needle", [
    (["torchserve", "--variant", "tpu"], "'tpu'"),
    (["render", "tensorflow"], "'tensorflow'"),
    (["render", "torchserve", "--colour", "red"], "--colour"),
    (["package-model"], "flavor"),
    ([], "command"),
])
def test_bad_arguments_give_one_error_line_and_a_tip(capsys, argv, needle):
    assert_usage_error(*run_cli(capsys, *argv), needle)


def test_verify_with_missing_model_tar_is_a_usage_error(capsys, tmp_path):
    missing = tmp_path / "missing.tar.gz"
    status, lines = run_cli(capsys, "verify", "byoc-torchserve:0.1.0-cpu",
                            "--model-tar", str(missing))
    assert_usage_error(status, lines, f"--model-tar {missing}: no such file")
    assert "package-model" in lines[1]


def test_bad_base_image_override_names_the_flag(capsys, tmp_path):
    status, lines = run_cli(capsys, "render", "torchserve", "--variant", "cpu",
                            "--base-image", "debian; rm -rf /", "--out", str(tmp_path / "o"))
    assert_usage_error(status, lines, "--base-image")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("config_text, needle", [
    (None, "images config not found"),
    ("images: []\n", "no image torchserve-cpu"),
    ("images: [{flavor: torchserve, variant: tpu}]\n", "images[0].variant"),
])
def test_config_errors_give_one_error_line_and_a_tip(capsys, tmp_path, config_text, needle):
    path = tmp_path / "images.yaml"
    if config_text is not None:
        path.write_text(config_text)
    status, lines = run_cli(capsys, "render", "torchserve", "--variant", "cpu",
                            "--config", str(path), "--out", str(tmp_path / "o"))
    assert_usage_error(status, lines, needle)


def test_render_writes_the_context_and_returns_0(capsys, tmp_path):
    out = tmp_path / "ctx"
    status, lines = run_cli(capsys, "render", "torchserve", "--variant", "cpu",
                            "--out", str(out))
    assert status == ExitStatus.OK
    assert "FROM serving AS image" in (out / "Dockerfile").read_text()
    assert lines == [f"OK  rendered torchserve-cpu: {out / 'Dockerfile'}"]


def test_render_flags_reach_the_dockerfile(capsys, tmp_path):
    baked = tmp_path / "baked" / "Dockerfile"
    assert run_cli(capsys, "render", "torchserve", "--out", str(baked.parent))[0] == 0
    assert "/opt/byoc/model-store" in baked.read_text()
    out = tmp_path / "ctx"
    status, _ = run_cli(capsys, "render", "torchserve", "--variant", "gpu", "--no-model",
                        "--base-image", "ubuntu:24.04", "--out", str(out))
    dockerfile = (out / "Dockerfile").read_text()
    assert status == ExitStatus.OK
    assert "ARG BASE_IMAGE=ubuntu:24.04\n" in dockerfile
    assert 'dev.byoc.variant="gpu"' in dockerfile
    assert "/opt/byoc/model-store" not in dockerfile


def test_build_variant_defaults_to_gpu():
    args = cli.parse(["torchserve"])
    # every flavor's command is the one build command, told its flavor
    assert (args.command, args.flavor, args.variant) == ("build", "torchserve", "gpu")
    assert not (args.test or args.gpu or args.no_model)


def test_render_variant_defaults_to_gpu():
    assert cli.parse(["render", "torchserve"]).variant == "gpu"


def test_package_model_variant_defaults_to_cpu():
    args = cli.parse(["package-model", "torchserve"])
    assert (args.variant, args.out) == ("cpu", "model.tar.gz")


def test_parse_maps_dashed_options_to_fields():
    args = cli.parse(["torchserve", "--variant", "cpu", "--no-model", "--base-image", "x:1",
                      "--ca-cert", "/ca.pem", "--wheelhouse", "/w", "--startup-timeout", "90"])
    assert (args.no_model, args.base_image, args.ca_cert, args.wheelhouse,
            args.startup_timeout) == (True, "x:1", "/ca.pem", "/w", 90.0)


# -- parsed arguments -> the frozen options each stage takes (cli/options.py) -------------

def test_model_options_carry_every_model_flag():
    args = cli.parse(["triton", "--model", "m", "--mar", "a.mar", "--handler", "h.py:f",
                      "--serialized-file", "w.pt", "--model-file", "net.py",
                      "--extra-files", "a,b", "--config-file", "c.yaml", "--model-name", "n",
                      "--model-version", "2", "--model-repository", "repo",
                      "--default-model", "d", "--requirements", "r.txt", "--samples", "s",
                      "--content-types", "image/png,text/plain"])
    assert options.model_options(args) == describe.ModelOptions(
        model="m", mar="a.mar", handler="h.py:f", serialized_file="w.pt", model_file="net.py",
        extra_files="a,b", config_file="c.yaml", model_name="n", model_version="2",
        model_repository="repo", default_model="d", requirements="r.txt", samples="s",
        content_types="image/png,text/plain")


def test_no_model_flags_give_empty_model_options():
    assert options.model_options(cli.parse(["torchserve"])) == describe.ModelOptions()


def test_image_spec_takes_the_entry_and_its_overrides():
    spec = options.image_spec(cli.parse(["triton", "--variant", "cpu", "--runtime", "ngc",
                                         "--base-image", "registry.example/triton:1",
                                         "--no-model"]))
    assert (spec.name, spec.base_image, spec.bake_model) == (
        "triton-cpu-ngc", "registry.example/triton:1", False)
    assert options.image_spec(cli.parse(["torchserve", "--variant", "cpu"])).bake_model


def test_the_model_is_the_image_entrys_unless_options_describe_one(tmp_path, monkeypatch):
    args = cli.parse(["torchserve", "--variant", "cpu"])
    spec = options.image_spec(args)
    assert options.model(args, spec).name == spec.model == "digits"
    (tmp_path / "x.mar").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    args = cli.parse(["torchserve", "--variant", "cpu", "--mar", "x.mar"])
    assert options.model(args, spec).torchserve.mar == tmp_path / "x.mar"


def test_verify_and_push_take_a_model_only_when_one_is_named(tmp_path):
    config_dir = tmp_path
    bare = cli.parse(["verify", "img"])
    assert options.model_if_given(bare, config_dir, "digits") is None
    (tmp_path / "s").mkdir()
    only_samples = cli.parse(["verify", "img", "--samples", str(tmp_path / "s")])
    model = options.model_if_given(only_samples, config_dir, "digits")
    assert (model.name, model.samples, model.torchserve, model.triton) == (
        "digits", tmp_path / "s", None, None)
    named = cli.parse(["verify", "img", "--model", "digits"])
    from byoc import IMAGES_DIR

    assert options.model_if_given(named, IMAGES_DIR, "x").origin.endswith("digits.yaml")


def test_build_gate_and_verify_options():
    args = cli.parse(["torchserve", "--tag", "me:1", "--ca-cert", "/ca.pem", "--wheelhouse",
                      "/w", "--no-cache", "--ami-version", "al2-ami-sagemaker-inference-gpu-3-1",
                      "--allow-incompatible", "--gpu", "--startup-timeout", "90"])
    assert options.build_options(args) == builder.BuildOptions(
        tag="me:1", ca_cert="/ca.pem", wheelhouse="/w", no_cache=True)
    assert options.gate_options(args) == GateOptions(
        ami_version="al2-ami-sagemaker-inference-gpu-3-1", allow_incompatible=True)
    verify = options.verify_options(args)
    assert (verify.gpu, verify.startup_budget_s, verify.model_tar) == (True, 90.0, None)
    tar = options.verify_options(cli.parse(["verify", "img", "--model-tar", "m.tar.gz"]))
    assert tar.model_tar == Path("m.tar.gz")


@pytest.mark.parametrize("argv, moving", [([], None), (["--no-moving-tags"], ()),
                                          (["--moving-tag", "a", "--moving-tag", "b"],
                                           ("a", "b"))])
def test_push_options(argv, moving):
    args = cli.parse(["push", "img", "--registry", "h:5000/ns", "--repository", "r",
                      "--region", "eu-west-1", "--profile", "p", "--no-create-repository",
                      "--content-tag", "c", "--push-timeout", "60", "--record", "rec.json",
                      *argv])
    assert options.push_options(args) == PushOptions(
        registry="h:5000/ns", repository="r", region="eu-west-1", profile="p",
        create_repository=False, content_tag="c", moving_tags=moving, push_timeout_s=60.0,
        record=Path("rec.json"))


def test_push_options_defaults():
    got = options.push_options(cli.parse(["torchserve"]))
    assert (got.create_repository, got.moving_tags, got.record, got.push_timeout_s) == (
        True, None, None, 3600)


# -- every command's --help works ---------------------------------------------------------

def subcommands() -> list[str]:
    from byoc.cli.parser import make_parser

    parser = make_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def test_every_flavor_has_a_build_command():
    assert {"torchserve", "triton"} <= set(subcommands())


@pytest.mark.parametrize("command", subcommands())
def test_each_subcommands_help_works(capsys, command):
    with pytest.raises(SystemExit) as caught:
        cli.main([command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: build.py {command}") and "--help" in out


def test_build_commands_document_the_model_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["triton", "--help"])
    out = capsys.readouterr().out
    for flag in ("--mar", "--handler", "--model-repository", "--default-model",
                 "--requirements", "--samples", "--model"):
        assert flag in out


def test_build_py_help_runs_as_a_script():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "build.py"), "--help"],
                          capture_output=True, text=True, cwd=root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: build.py") and "render" in done.stdout
