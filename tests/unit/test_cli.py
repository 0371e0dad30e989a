"""byoc.cli: exit statuses, one ERROR line plus a TIP for usage mistakes, render end to end,
and the argument defaults."""

from __future__ import annotations

import pytest

from byoc import cli
from byoc.errors import ExitStatus


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
