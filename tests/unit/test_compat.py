"""byoc.compat (C26, C20): will the image start on the SageMaker instance it targets?

The verdict matrix for the default GPU images' CUDA versions across the SageMaker GPU
families, with and without each InferenceAmiVersion; the fixes; CPU/GPU and architecture
mismatches; the gate's refusal and its override; the `check` command; the table's
validation. No Docker: images are label dicts (facts_from_labels)."""

from __future__ import annotations

import copy
import io

import pytest
import yaml

from byoc import cli, compat
from byoc.cli import options
from byoc.compat import Outcome
from byoc.console import Console
from byoc.errors import ConfigError, ExitStatus, IncompatibleImage, UsageError

GPU2, GPU21 = "al2-ami-sagemaker-inference-gpu-2", "al2-ami-sagemaker-inference-gpu-2-1"
GPU31, GPU41 = "al2-ami-sagemaker-inference-gpu-3-1", "al2023-ami-sagemaker-inference-gpu-4-1"
AMIS = (None, GPU2, GPU21, GPU31, GPU41)
CODES = {"ok": Outcome.STARTS, "fc": Outcome.FORWARD_COMPAT, "NO": Outcome.WILL_NOT_START}

# Default drivers: g4dn, g5, p4d 470 (CUDA 11.4); g6, p5 535 (12.2); p5e 550 (12.4).
# AMI drivers: gpu-2 and gpu-2-1 535, gpu-3-1 550, gpu-4-1 580. gpu-2/gpu-2-1 are not
# offered for p5e. ok: starts; fc: starts with forward compatibility; NO: will not start.
#                 default gpu-2 gpu-2-1 gpu-3-1 gpu-4-1
MATRIX = {
    "13.0": {"g4dn": "NO  fc  fc  fc  ok",  # R470 cannot run CUDA 13, even with compat
             "g5":   "NO  fc  fc  fc  ok",
             "g6":   "fc  fc  fc  fc  ok",
             "p4d":  "NO  fc  fc  fc  ok",
             "p5":   "fc  fc  fc  fc  ok",
             "p5e":  "fc  NO  NO  fc  ok"},
    "12.6": {"g4dn": "fc  ok  ok  ok  ok",  # 12.x on 535/550: minor-version compatibility
             "g5":   "fc  ok  ok  ok  ok",
             "g6":   "ok  ok  ok  ok  ok",
             "p4d":  "fc  ok  ok  ok  ok",
             "p5":   "ok  ok  ok  ok  ok",
             "p5e":  "ok  NO  NO  ok  ok"},
    "12.4": {"g4dn": "fc  ok  ok  ok  ok",
             "g5":   "fc  ok  ok  ok  ok",
             "g6":   "ok  ok  ok  ok  ok",
             "p4d":  "fc  ok  ok  ok  ok",
             "p5":   "ok  ok  ok  ok  ok",
             "p5e":  "ok  NO  NO  ok  ok"},
    "12.1": {"g4dn": "fc  ok  ok  ok  ok",
             "g5":   "fc  ok  ok  ok  ok",
             "g6":   "ok  ok  ok  ok  ok",
             "p4d":  "fc  ok  ok  ok  ok",
             "p5":   "ok  ok  ok  ok  ok",
             "p5e":  "ok  NO  NO  ok  ok"},
    "11.8": {"g4dn": "ok  ok  ok  ok  ok",  # 11.x on 470: minor-version compatibility
             "g5":   "ok  ok  ok  ok  ok",
             "g6":   "ok  ok  ok  ok  ok",
             "p4d":  "ok  ok  ok  ok  ok",
             "p5":   "ok  ok  ok  ok  ok",
             "p5e":  "ok  NO  NO  ok  ok"},
}
CASES = [pytest.param(cuda, family, ami, CODES[code], id=f"{cuda}-{family}-{ami or 'default'}")
         for cuda, row in MATRIX.items() for family, codes in row.items()
         for ami, code in zip(AMIS, codes.split(), strict=True)]


def gpu_image(cuda: str = "13.0", **labels: str) -> compat.ImageFacts:
    """A GPU image that ships CUDA forward-compat libraries for its CUDA (the matrix's
    "fc" cases need them); pass cuda_compat="none" for one that ships none."""
    compat_libs = labels.pop("cuda_compat", cuda)
    return compat.facts_from_labels("byoc-torchserve:0.1.0-gpu", {
        "dev.byoc.cuda": cuda, "dev.byoc.torch": "2.14.1", "dev.byoc.variant": "gpu",
        "dev.byoc.instance-types": "ml.g5.xlarge,ml.g6.xlarge",
        **({compat.COMPAT_LABEL: compat_libs} if compat_libs is not None else {}), **labels})


def cpu_image(architecture: str = "amd64") -> compat.ImageFacts:
    return compat.facts_from_labels("byoc-torchserve:0.1.0-cpu", {
        "dev.byoc.cuda": "none", "dev.byoc.torch": "2.13.0", "dev.byoc.variant": "cpu",
        "dev.byoc.instance-types": "ml.c6i.xlarge,ml.m6i.xlarge"}, architecture)


def verdict(facts, instance: str, ami: str | None = None) -> compat.Verdict:
    return compat.decide(compat.default_table(), facts, instance, ami)


@pytest.mark.parametrize("cuda, family, ami, expected", CASES)
def test_c26_verdict_matrix(cuda, family, ami, expected):
    result = verdict(gpu_image(cuda), f"ml.{family}.xlarge", ami)
    assert result.outcome is expected, result.line()
    assert (result.fix is None) == (expected is Outcome.STARTS)


@pytest.mark.parametrize("cuda, family, ami, expected",
                         [c for c in CASES if c.values[3] is Outcome.FORWARD_COMPAT])
@pytest.mark.parametrize("shipped", ["none", None], ids=["label none", "no label"])
def test_c26_without_compat_libraries_forward_compat_cases_will_not_start(
        cuda, family, ami, expected, shipped):
    """An older driver runs a newer CUDA only through the image's compat libraries: an
    image that ships none (or does not say) will not start there (issue 13)."""
    result = verdict(gpu_image(cuda, cuda_compat=shipped), f"ml.{family}.xlarge", ami)
    assert result.outcome is Outcome.WILL_NOT_START, result.line()
    assert result.fix


def test_matrix_covers_every_ami_and_the_issue_families():
    assert set(AMIS[1:]) == set(compat.default_table().amis)
    assert len(CASES) == 5 * 6 * 5


def test_c26_cuda13_on_g5_default_driver_says_why_and_how_to_fix():
    result = verdict(gpu_image("13.0"), "ml.g5.xlarge")
    assert result.line() == (
        "ml.g5.xlarge: will not start: NVIDIA A10G, default driver 470: driver 470 is older "
        "than CUDA 13.0 needs (>= 580.65.06), and its forward-compat package does not support "
        "the 470 driver branch")
    assert result.fix == (f"set InferenceAmiVersion to {GPU41} (driver 580), or build for CUDA "
                          "11.8 (starts on driver 470), or build for CUDA 12.8 with its "
                          "forward-compat libraries")


def test_c26_cuda13_on_g6_default_needs_the_compat_libraries_at_start():
    result = verdict(gpu_image("13.0"), "ml.g6.xlarge")
    assert result.outcome is Outcome.FORWARD_COMPAT
    assert "driver 535 is older than CUDA 13.0 needs (>= 580.65.06): the image must put " \
           "cuda-compat-13-0 on LD_LIBRARY_PATH at start" in result.reason
    assert result.fix == (f"set InferenceAmiVersion to {GPU41} (driver 580), or build for CUDA "
                          "12.8 (starts on driver 535)")
    unsaid = verdict(gpu_image("13.0", cuda_compat=None), "ml.g6.xlarge")
    assert unsaid.outcome is Outcome.WILL_NOT_START
    assert "labels do not say it ships them (dev.byoc.cuda-compat)" in unsaid.reason


def test_c26_cuda126_on_g5_fix_prefers_an_ami_that_leaves_compat_to_the_image():
    result = verdict(gpu_image("12.6"), "ml.g5.xlarge")
    assert result.outcome is Outcome.FORWARD_COMPAT
    assert result.fix.startswith(f"set InferenceAmiVersion to {GPU21} (driver 535.54.03)")


def test_c26_minor_version_compatibility_is_named():
    result = verdict(gpu_image("12.6"), "ml.g6.xlarge")
    assert result.reason == ("NVIDIA L4, default driver 535: driver 535 runs CUDA 12.6 through "
                             "minor-version compatibility (>= 525.60.13)")
    assert verdict(gpu_image("12.4"), "ml.p5e.48xlarge").reason.endswith(
        "driver 550 runs CUDA 12.4 natively")


def test_c26_an_image_that_ships_no_compat_libraries_will_not_start():
    result = verdict(gpu_image("13.0", **{"dev.byoc.cuda-compat": "none"}), "ml.g6.xlarge")
    assert result.outcome is Outcome.WILL_NOT_START
    assert result.reason.endswith("at start; the image ships none")
    shipped = verdict(gpu_image("13.0", **{"dev.byoc.cuda-compat": "13.0"}), "ml.g6.xlarge")
    assert shipped.outcome is Outcome.FORWARD_COMPAT and "labels do not say" not in shipped.reason


def test_c26_cuda13_dropped_volta():
    result = verdict(gpu_image("13.0"), "ml.p3.2xlarge", GPU41)
    assert result.outcome is Outcome.WILL_NOT_START
    assert "CUDA 13.0 does not support the NVIDIA V100 (compute capability 7.0 < 7.5)" \
        in result.reason
    assert "build for CUDA 12.8 (starts on driver 580)" in result.fix


def test_c26_an_ami_not_offered_for_the_family():
    result = verdict(gpu_image("12.4"), "ml.p5e.48xlarge", GPU2)
    assert result.reason == f"{GPU2} is not offered for ml.p5e"
    assert result.fix == f"use one of: {GPU31}, {GPU41}"


def test_c20_c27_cpu_images_on_cpu_instances_have_nothing_to_check():
    assert verdict(cpu_image(), "ml.c6i.xlarge").outcome is Outcome.STARTS
    assert verdict(cpu_image("arm64"), "ml.c7g.xlarge").outcome is Outcome.STARTS


def test_c20_architecture_must_match_the_instance():
    result = verdict(cpu_image(), "ml.c7g.xlarge")
    assert result.outcome is Outcome.WILL_NOT_START
    assert result.reason == "a linux/amd64 image on a linux/arm64 instance (C20)"
    arm_gpu = compat.facts_from_labels("x", {"dev.byoc.cuda": "12.6"}, "arm64")
    assert verdict(arm_gpu, "ml.g5.xlarge").outcome is Outcome.WILL_NOT_START


def test_c27_gpu_image_on_a_cpu_instance_and_the_reverse_are_wrong_targets():
    gpu_on_cpu = verdict(gpu_image(), "ml.m5.large")
    cpu_on_gpu = verdict(cpu_image(), "ml.g5.xlarge")
    assert gpu_on_cpu.outcome is cpu_on_gpu.outcome is Outcome.WRONG_TARGET
    assert gpu_on_cpu.outcome.blocks and "--variant cpu" in gpu_on_cpu.fix
    assert "leaves the GPU idle" in cpu_on_gpu.reason and "--variant gpu" in cpu_on_gpu.fix


@pytest.mark.parametrize("facts, instance, error, needle", [
    (gpu_image(), "g5.xlarge", UsageError, "'g5.xlarge' is not an instance type"),
    (gpu_image(), "ml.x9.large", ConfigError, "instance family 'x9' is not in the"),
    (gpu_image("12.9"), "ml.g5.xlarge", ConfigError, "CUDA 12.9 (byoc-torchserve:0.1.0-gpu)"),
])
def test_what_the_table_cannot_judge_is_an_error(facts, instance, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)")):
        verdict(facts, instance)


def test_labels_give_the_facts():
    facts = gpu_image("12.6", **{"dev.byoc.cuda-compat": "12.6"})
    assert (facts.cuda, facts.torch, facts.architecture, facts.compat_libs) == \
        ("12.6", "2.14.1", "amd64", "12.6")
    assert facts.instance_types == ("ml.g5.xlarge", "ml.g6.xlarge")
    assert facts.describe() == "CUDA 12.6, torch 2.14.1, linux/amd64"
    assert cpu_image().cuda is None and cpu_image().describe().startswith("CPU, torch 2.13.0")
    with pytest.raises(UsageError, match="no dev.byoc.cuda label"):
        compat.facts_from_labels("debian:12", None)
    with pytest.raises(UsageError, match="is not like 12.6 or none"):
        compat.facts_from_labels("x", {"dev.byoc.cuda": "cu126"})


# -- the gate ---------------------------------------------------------------------------

def run_gate(facts, instances, ami=None, allow=False):
    out = io.StringIO()
    try:
        return compat.gate(facts, instances, ami, allow, Console(out)), out.getvalue()
    except IncompatibleImage as exc:
        return exc, out.getvalue()


def test_gate_refuses_an_image_that_will_not_start():
    error, out = run_gate(gpu_image("13.0"), ["ml.g5.xlarge", "ml.g6.xlarge"])
    assert isinstance(error, IncompatibleImage)
    assert error.exit_status == ExitStatus.INCOMPATIBLE == 4
    assert error.message == "byoc-torchserve:0.1.0-gpu will not start on ml.g5.xlarge"
    assert error.tip.startswith(f"set InferenceAmiVersion to {GPU41}")
    assert error.tip.endswith("to build or push it anyway, pass --allow-incompatible")
    lines = out.splitlines()
    assert lines[0].startswith("==> compatibility: byoc-torchserve:0.1.0-gpu (CUDA 13.0, torch "
                               "2.14.1, linux/amd64)")
    assert lines[1].startswith("    NO  ml.g5.xlarge: will not start: ")
    assert lines[2].startswith("      fix: set InferenceAmiVersion")
    assert lines[3].startswith("WARNING ml.g6.xlarge: starts with forward compatibility: ")
    assert lines[4].startswith("      to start without it: ")


def test_gate_allow_incompatible_goes_on_loudly():
    verdicts, out = run_gate(gpu_image("13.0"), ["ml.g5.xlarge"], allow=True)
    assert [v.outcome for v in verdicts] == [Outcome.WILL_NOT_START]
    assert out.splitlines()[-1] == ("WARNING --allow-incompatible: going on with "
                                    "byoc-torchserve:0.1.0-gpu, which will NOT start on "
                                    "ml.g5.xlarge")


def test_gate_names_wrong_targets_apart():
    error, _ = run_gate(cpu_image(), ["ml.c7g.xlarge", "ml.g5.xlarge", "ml.g6.xlarge"])
    assert error.message == ("byoc-torchserve:0.1.0-cpu will not start on ml.c7g.xlarge and "
                             "is the wrong image for ml.g5.xlarge, ml.g6.xlarge")
    assert error.tip.startswith("build for linux/arm64")


def test_gate_passes_an_image_that_starts_and_cpu_images():
    verdicts, out = run_gate(gpu_image("12.6"), ["ml.g6.xlarge"], ami=None)
    assert [v.outcome for v in verdicts] == [Outcome.STARTS]
    assert out.splitlines()[1].startswith("OK  ml.g6.xlarge: starts: ")
    verdicts, _ = run_gate(cpu_image(), ["ml.c6i.xlarge", "ml.m6i.xlarge"])
    assert all(v.outcome is Outcome.STARTS for v in verdicts)


def test_gate_with_an_ami_version_uses_its_driver():
    verdicts, out = run_gate(gpu_image("13.0"), ["ml.g5.xlarge", "ml.g6.xlarge"], ami=GPU41)
    assert [v.outcome for v in verdicts] == [Outcome.STARTS, Outcome.STARTS]
    assert f"(CUDA 13.0, torch 2.14.1, linux/amd64) with {GPU41}" in out.splitlines()[0]


def test_gate_without_instance_types_checks_nothing():
    verdicts, out = run_gate(gpu_image(), [])
    assert verdicts == [] and "nothing to check" in out


def test_gate_rejects_an_unknown_ami_version():
    with pytest.raises(UsageError, match="--ami-version al2-gpu-9: not an inference AMI"):
        run_gate(gpu_image(), ["ml.g5.xlarge"], ami="al2-gpu-9")


def test_gate_built_checks_the_spec_instance_types(monkeypatch):
    seen = []
    monkeypatch.setattr(compat, "image_facts", lambda ref: seen.append(ref) or gpu_image("13.0"))
    # The gate runs on the built image's id, before it is tagged.
    image_id = "sha256:" + "b" * 64
    spec = type("Spec", (), {"instance_types": ("ml.g5.xlarge", "ml.g6.xlarge")})()

    def gate(*argv):
        compat.gate_built(image_id, spec, options.gate_options(cli.parse(["torchserve", *argv])),
                          Console(io.StringIO()))

    gate("--ami-version", GPU41)
    assert seen == [image_id]
    with pytest.raises(IncompatibleImage):
        gate()
    gate("--allow-incompatible")
    assert seen == [image_id] * 3


def test_build_commands_default_to_gating_on_the_default_driver():
    args = cli.parse(["torchserve"])
    assert (args.ami_version, args.allow_incompatible) == (None, False)


# -- the check command ------------------------------------------------------------------

@pytest.fixture
def fake_image(monkeypatch):
    images = {"byoc-torchserve:0.1.0-gpu": gpu_image("13.0"),
              "byoc-torchserve:0.1.0-cpu": cpu_image()}
    monkeypatch.setattr(compat, "image_facts", lambda ref: images[ref])


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    status = cli.main(list(argv))
    return status, capsys.readouterr().err.splitlines()


def test_check_command_exit_codes(capsys, fake_image):
    image = "byoc-torchserve:0.1.0-gpu"
    status, lines = run_cli(capsys, "check", image, "--instance", "ml.g5.xlarge",
                            "--instance", "ml.p5.48xlarge")
    assert status == ExitStatus.INCOMPATIBLE == 4
    assert lines[-2] == f"ERROR {image} will not start on ml.g5.xlarge"
    assert lines[-1].startswith("TIP   set InferenceAmiVersion")
    assert any(line.startswith("WARNING ml.p5.48xlarge: starts with forward") for line in lines)
    status, lines = run_cli(capsys, "check", image, "--instance", "ml.g5.xlarge",
                            "--ami-version", GPU41)
    assert status == ExitStatus.OK and lines[-1].startswith("OK  ml.g5.xlarge: starts: ")


def test_check_command_defaults_to_the_image_instance_types(capsys, fake_image):
    status, lines = run_cli(capsys, "check", "byoc-torchserve:0.1.0-cpu")
    assert status == 0
    assert [line.split(":")[0] for line in lines[1:]] == ["OK  ml.c6i.xlarge", "OK  ml.m6i.xlarge"]


def test_check_command_usage_errors(capsys, fake_image):
    status, lines = run_cli(capsys, "check", "byoc-torchserve:0.1.0-gpu", "--instance",
                            "ml.g5.xlarge", "--ami-version", "latest")
    assert status == ExitStatus.USAGE and lines[-2].startswith("ERROR --ami-version latest")
    status, lines = run_cli(capsys, "check")
    assert status == ExitStatus.USAGE and "image" in lines[0]


def test_check_command_without_any_instance_type(capsys, monkeypatch):
    monkeypatch.setattr(compat, "image_facts",
                        lambda ref: compat.facts_from_labels(ref, {"dev.byoc.cuda": "12.6"}))
    status, lines = run_cli(capsys, "check", "mine:1")
    assert status == ExitStatus.USAGE
    assert lines == ["ERROR no instance types to check mine:1 against",
                     "TIP   pass --instance ml.g5.xlarge (repeatable)"]


# -- the table --------------------------------------------------------------------------

def table_data() -> dict:
    return copy.deepcopy(yaml.safe_load(compat.TABLE_PATH.read_text()))


def set_path(data: dict, path: str, value) -> dict:
    *parents, last = path.split("/")
    node = data
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, needle", [
    ("gpu_families/g5/driver", 470, "gpu_families.g5.driver: 470 is not a quoted version"),
    ("gpu_families/g5/driver", "470.x", "gpu_families.g5.driver: '470.x' is not a quoted"),
    ("gpu_families/g5/cuda", "12", "gpu_families.g5.cuda: '12' is not a quoted version like "
                                   "\"12.6\""),
    ("gpu_families/g5/forward_compat", "yes", "gpu_families.g5.forward_compat: 'yes' must be "
                                              "true or false"),
    ("gpu_families/g5/gpus", "A10G", "gpu_families.g5: unknown field 'gpus'; allowed: "
                                     "compute_capability, cuda, driver, forward_compat, gpu, "
                                     "min_cuda"),
    ("gpu_families/g5/min_cuda", KeyError, "gpu_families.g5: missing field 'min_cuda'"),
    ("cpu_families/sparc", ["t1"], "cpu_families: unknown field 'sparc'; allowed: amd64, arm64"),
    ("cpu_families/amd64", ["c5", "g5"], "cpu_families.amd64: 'g5' is listed twice"),
    ("ami_versions/" + GPU31 + "/families", ["g5", "g9"],
     f"ami_versions.{GPU31}.families[1]: 'g9' is not one of the gpu_families"),
    ("ami_versions/" + GPU31 + "/driver", KeyError, f"ami_versions.{GPU31}: missing field "
                                                    "'driver'"),
    ("cuda/13.0/forward_compat_drivers", "535", "cuda.13.0.forward_compat_drivers: must be a list"),
    ("cuda/13.0/forward_compat_drivers", ["535.54.03", "r550"],
     "cuda.13.0.forward_compat_drivers[1]: 'r550' is not a quoted version"),
    ("cuda/13", {}, "cuda key: '13' is not a quoted version"),
    ("gpu_families", ["g5"], "gpu_families: must be a mapping"),
    ("extra", {}, "top level: unknown field 'extra'"),
])
def test_table_validation_names_the_field(path, value, needle):
    with pytest.raises(ConfigError) as caught:
        compat.parse_table(set_path(table_data(), path, value))
    assert caught.value.message.startswith(f"compatibility table: {needle}")
    assert caught.value.tip == "fix that field in images/cuda-compat.yaml"


def test_table_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="compatibility table not found"):
        compat.load_table(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cuda: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        compat.load_table(bad)


def test_the_shipped_table_loads_and_knows_the_default_drivers():
    table = compat.default_table()
    drivers = {name: family.driver for name, family in table.gpu_families.items()}
    assert {f: drivers[f] for f in ("g4dn", "g5", "p4d", "g6", "p5", "p5e", "p5en")} == {
        "g4dn": "470", "g5": "470", "p4d": "470", "g6": "535", "p5": "535", "p5e": "550",
        "p5en": "550"}
    assert {a.name: (a.driver, a.cuda) for a in table.amis.values()} == {
        GPU2: ("535.54.03", "12.2"), GPU21: ("535.54.03", "12.2"),
        GPU31: ("550.144.01", "12.4"), GPU41: ("580", "13.0")}
    assert {v: r.driver for v, r in table.cuda.items()} == {
        "11.8": "520.61.05", "12.1": "530.30.02", "12.2": "535.54.03", "12.4": "550.54.14",
        "12.6": "560.28.03", "12.8": "570.26", "13.0": "580.65.06"}


@pytest.mark.parametrize("driver, minimum, expected", [
    ("470", "470.57.02", True), ("470", "520.61.05", False), ("580", "580.65.06", True),
    ("535.54.03", "535.54.03", True), ("550.144.01", "550.54.14", True),
    ("535.54.03", "550.54.14", False),
])
def test_a_bare_branch_compares_by_branch(driver, minimum, expected):
    assert compat.at_least(driver, minimum) is expected


def test_the_image_configs_ami_version_is_used_when_none_is_given():
    """The shipped gpu images name the driver-580 AMI; the gate reads it from the label."""
    labels = {"dev.byoc.cuda": "13.0", "dev.byoc.instance-types": "ml.g5.xlarge,ml.g6.xlarge",
              "dev.byoc.ami-version": "al2023-ami-sagemaker-inference-gpu-4-1"}
    facts = compat.facts_from_labels("img", labels)
    verdicts = compat.gate(facts, facts.instance_types, None, False, Console(io.StringIO()))
    assert [v.outcome for v in verdicts] == [compat.Outcome.STARTS, compat.Outcome.STARTS]
    no_ami = compat.facts_from_labels("img", {k: v for k, v in labels.items()
                                              if k != "dev.byoc.ami-version"})
    with pytest.raises(IncompatibleImage):
        compat.gate(no_ami, no_ami.instance_types, None, False, Console(io.StringIO()))
