"""byoc.config: the shipped images.yaml loads, and every mistake is a ConfigError that
names the exact field and what it allows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from byoc import config
from byoc.errors import ConfigError, ExitStatus

# A minimal valid entry; each error test changes one thing about it.
ENTRY = {
    "flavor": "torchserve",
    "variant": "cpu",
    "repository": "byoc-torchserve",
    "base_image": "debian:bookworm-slim",
    "python": "3.11",
    "source": "https://github.com/byoc-dev/byoc",
    "tags": ["{version}-{variant}"],
    "server_version": "0.12.0",
    "torch": {"version": "2.13.0", "index_url": "https://download.pytorch.org/whl/cpu"},
    "instance_types": ["ml.c6i.xlarge"],
}
GPU_TORCH = {"version": "2.14.1", "cuda": "13.0"}


def write_config(tmp_path: Path, data) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def load_entries(tmp_path: Path, *entries: dict, **top) -> dict[str, config.ImageSpec]:
    return config.load(write_config(tmp_path, {"images": list(entries), **top}))


def load_error(tmp_path: Path, *entries: dict, **top) -> str:
    with pytest.raises(ConfigError) as caught:
        load_entries(tmp_path, *entries, **top)
    assert caught.value.exit_status == ExitStatus.USAGE
    return caught.value.message


def entry(**changes) -> dict:
    return {**ENTRY, **changes}


# -- the shipped config ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> dict[str, config.ImageSpec]:
    return config.load()


def test_shipped_config_holds_both_torchserve_variants(shipped):
    assert {"torchserve-cpu", "torchserve-gpu"} <= set(shipped)
    assert shipped["torchserve-cpu"].torch.cuda is None
    assert shipped["torchserve-gpu"].torch.cuda is not None


def test_c08_shipped_server_timeouts_stay_under_sagemakers_60s(shipped):
    assert all(spec.server.timeout_s < 60 for spec in shipped.values())


def test_c09_shipped_payload_limits_admit_6_mib(shipped):
    assert all(spec.server.max_payload_mb >= 6 for spec in shipped.values())


def test_shipped_tags_expand_to_valid_docker_tags(shipped):
    for spec in shipped.values():
        for tag in spec.expanded_tags("0.1.0"):
            assert config.validate_tag("tag", tag) == tag


# -- a valid file, so the error tests below fail for their one reason -----------------------

def test_minimal_entry_loads(tmp_path):
    spec = load_entries(tmp_path, entry())["torchserve-cpu"]
    assert spec.torch.version == "2.13.0"
    assert spec.server == config.ServerSettings()
    assert spec.bake_model


def test_defaults_fill_fields_the_entry_leaves_out(tmp_path):
    bare = {k: v for k, v in ENTRY.items() if k not in ("base_image", "python", "source")}
    defaults = {"base_image": "ubuntu:24.04", "python": "3.12",
                "source": "https://example.com/x"}
    spec = load_entries(tmp_path, bare, defaults=defaults)["torchserve-cpu"]
    assert (spec.base_image, spec.python, spec.source) == ("ubuntu:24.04", "3.12",
                                                           "https://example.com/x")


# -- each mistake names its field and the allowed values -------------------------------------

def test_unknown_flavor_names_field_and_flavors(tmp_path):
    message = load_error(tmp_path, entry(flavor="tensorflow"))
    assert "images[0].flavor" in message
    assert "'tensorflow'" in message and "torchserve, triton" in message


def test_unknown_variant_names_field_and_variants(tmp_path):
    message = load_error(tmp_path, entry(variant="tpu"))
    assert "images[0].variant" in message and "cpu, gpu" in message


def test_unknown_field_is_named_with_the_allowed_ones(tmp_path):
    message = load_error(tmp_path, entry(colour="red"))
    assert "images[0]: unknown field 'colour'" in message
    assert "allowed: ami_version, base_image, flavor," in message


def test_unknown_torch_field_is_named(tmp_path):
    message = load_error(tmp_path, entry(torch={**ENTRY["torch"], "cuda_version": "12.4"}))
    assert "images[0].torch: unknown field 'cuda_version'" in message
    assert "cuda, index_url, version" in message


def test_unknown_top_level_key_is_named(tmp_path):
    message = load_error(tmp_path, entry(), image_defaults={})
    assert "top level: unknown field 'image_defaults'" in message


@pytest.mark.parametrize("version", ["latest", "2", "v2.13.0", "2.13.0; id"])
def test_bad_torch_version_is_refused(tmp_path, version):
    message = load_error(tmp_path, entry(torch={**ENTRY["torch"], "version": version}))
    assert "images[0].torch.version" in message and "a version like 2.13.0" in message


def test_gpu_variant_without_cuda_is_refused(tmp_path):
    message = load_error(tmp_path, entry(variant="gpu", torch={"version": "2.14.1"}))
    assert "images[0].torch.cuda" in message and "must name its CUDA version" in message


def test_gpu_variant_with_cuda_loads(tmp_path):
    spec = load_entries(tmp_path, entry(variant="gpu", torch=GPU_TORCH))["torchserve-gpu"]
    assert spec.torch.cuda == "13.0"


def test_cpu_variant_with_cuda_is_refused(tmp_path):
    message = load_error(tmp_path, entry(torch={**ENTRY["torch"], "cuda": "12.4"}))
    assert "images[0].torch.cuda" in message and "must not name a CUDA version" in message


@pytest.mark.parametrize("instance", ["g5.xlarge", "ml.g5", "ML.G5.XLARGE", "ml.g5.xlarge "])
def test_bad_instance_type_is_refused(tmp_path, instance):
    message = load_error(tmp_path, entry(instance_types=["ml.g5.xlarge", instance]))
    assert "images[0].instance_types[1]" in message and "like ml.g5.xlarge" in message


@pytest.mark.parametrize("tag", ["v1 latest", "-rf", "a:b", "x" * 129, ""])
def test_bad_tag_is_refused(tmp_path, tag):
    message = load_error(tmp_path, entry(tags=["{version}", tag]))
    assert "images[0].tags[1]" in message and "a Docker tag" in message


def test_empty_tag_list_is_refused(tmp_path):
    assert "images[0].tags: must be a non-empty list" in load_error(tmp_path, entry(tags=[]))


@pytest.mark.parametrize("tag", [1, "{sha}"])
def test_malformed_tag_template_is_a_config_error(tmp_path, tag):
    assert "images[0].tags[0]" in load_error(tmp_path, entry(tags=[tag]))


@pytest.mark.parametrize("key", ["Dev.Owner", "dev owner", "dev.owner=x", "dev..owner"])
def test_bad_label_key_is_refused(tmp_path, key):
    message = load_error(tmp_path, entry(labels={key: "x"}))
    assert "images[0].labels key" in message and "a lowercase dotted label key" in message


def test_label_value_with_a_newline_is_refused(tmp_path):
    message = load_error(tmp_path, entry(labels={"dev.owner": "team\nRUN id"}))
    assert "images[0].labels.dev.owner: must be a one-line string" in message


def test_non_string_label_value_is_refused(tmp_path):
    assert "images[0].labels.dev.n" in load_error(tmp_path, entry(labels={"dev.n": 3}))


def test_server_timeout_at_sagemakers_limit_is_refused(tmp_path):
    message = load_error(tmp_path, entry(server={"timeout_s": 60}))
    assert "images[0].server.timeout_s" in message and "from 1 to 59" in message


def test_python_version_not_offered_is_refused(tmp_path):
    message = load_error(tmp_path, entry(python="3.9"))
    assert "images[0].python" in message and "3.10, 3.11, 3.12" in message


def test_duplicate_entries_are_refused(tmp_path):
    message = load_error(tmp_path, entry(), entry(repository="other"))
    assert "images[1]: torchserve-cpu is declared twice" in message


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = write_config(tmp_path, "images: [\n  - flavor: torchserve\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        config.load(path)


def test_non_mapping_document_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="top level: must be a mapping"):
        config.load(write_config(tmp_path, "- just\n- a list\n"))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="images config not found: .*nope.yaml"):
        config.load(tmp_path / "nope.yaml")


# -- select ---------------------------------------------------------------------------------

def test_select_returns_the_declared_image(tmp_path):
    specs = load_entries(tmp_path, entry())
    assert config.select(specs, "torchserve", "cpu") is specs["torchserve-cpu"]


def test_select_undeclared_image_lists_the_declared_ones(tmp_path):
    specs = load_entries(tmp_path, entry())
    with pytest.raises(ConfigError) as caught:
        config.select(specs, "torchserve", "gpu")
    assert caught.value.message == ("no image torchserve-gpu in the images config "
                                    "(declared: torchserve-cpu)")


def test_select_unknown_variant_names_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError, match="variant: 'tpu' is not one of cpu, gpu"):
        config.select(load_entries(tmp_path, entry()), "torchserve", "tpu")


# -- push settings (byoc/push.py; never in the Dockerfile) ----------------------------------

def test_shipped_push_settings_keep_content_tags_immutable(shipped):
    for spec in shipped.values():
        assert spec.push.tag_mutability == "IMMUTABLE"
        assert "{sha}" in spec.push.content_tag
        assert spec.push.lifecycle_policy is not None


def test_push_defaults_apply_when_the_config_has_no_push_block(tmp_path):
    assert load_entries(tmp_path, entry())["torchserve-cpu"].push == config.PushSettings()


def test_image_push_block_overrides_defaults_key_by_key(tmp_path):
    defaults = {"push": {"region": "eu-west-1", "scan_on_push": False,
                         "moving_tags": ["latest-{variant}"]}}
    spec = load_entries(tmp_path, entry(push={"region": "us-east-2"}),
                        defaults=defaults)["torchserve-cpu"]
    assert spec.push.region == "us-east-2"
    assert spec.push.scan_on_push is False and spec.push.moving_tags == ("latest-{variant}",)


def test_keep_last_becomes_an_ecr_lifecycle_policy(tmp_path):
    spec = load_entries(tmp_path, entry(push={"lifecycle": {"keep_last": 7}}))["torchserve-cpu"]
    rule = json.loads(spec.push.lifecycle_policy)["rules"][0]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan",
                                 "countNumber": 7}
    assert rule["action"] == {"type": "expire"}


def test_lifecycle_policy_file_is_read_beside_the_config(tmp_path):
    policy = {"rules": [{"rulePriority": 1, "description": "expire untagged after 3 days",
                         "selection": {"tagStatus": "untagged", "countType":
                                       "sinceImagePushed", "countUnit": "days", "countNumber": 3},
                         "action": {"type": "expire"}}]}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    spec = load_entries(tmp_path, entry(push={"lifecycle": {"policy_file": "policy.json"}}))
    assert json.loads(spec["torchserve-cpu"].push.lifecycle_policy) == policy


@pytest.mark.parametrize("push, field, needle", [
    ({"tag_mutability": "SOMETIMES"}, "push.tag_mutability", "IMMUTABLE, MUTABLE"),
    ({"encryption": "DES"}, "push.encryption", "AES256, KMS"),
    ({"kms_key": "alias/x"}, "push.kms_key", "only with encryption: KMS"),
    ({"encryption": "KMS", "kms_key": "bad key"}, "push.kms_key", "a KMS key ARN"),
    ({"region": "Europe"}, "push.region", "an AWS region like us-east-1"),
    ({"scan_on_push": "yes"}, "push.scan_on_push", "must be true or false"),
    ({"create_repository": 1}, "push.create_repository", "must be true or false"),
    ({"lifecycle": {"keep_last": 0}}, "push.lifecycle.keep_last", "from 1 to 10000"),
    ({"lifecycle": {"keep_last": 3, "policy_file": "x.json"}}, "push.lifecycle",
     "exactly one of keep_last, policy_file"),
    ({"lifecycle": {"policy_file": "missing.json"}}, "push.lifecycle.policy_file",
     "cannot read"),
    ({"lifecycle": {"expire": 3}}, "push.lifecycle", "unknown field 'expire'"),
    ({"content_tag": "{version}-{variant}"}, "push.content_tag", "must contain {sha}"),
    ({"content_tag": "{version}-{branch}-{sha}"}, "push.content_tag", "placeholders allowed"),
    ({"moving_tags": "latest"}, "push.moving_tags", "must be a list"),
    ({"moving_tags": ["{branch}"]}, "push.moving_tags[0]", "would also match content tags"),
    ({"moving_tags": ["latest {variant}"]}, "push.moving_tags[0]", "a Docker tag"),
    ({"moving_tags": [f"t{i}" for i in range(6)]}, "push.moving_tags", "at most 5"),
    ({"colour": "red"}, "push", "unknown field 'colour'"),
])
def test_bad_push_setting_names_its_field(tmp_path, push, field, needle):
    message = load_error(tmp_path, entry(push=push))
    assert f"images[0].{field}" in message and needle in message


def test_bad_push_default_is_named_under_defaults(tmp_path):
    message = load_error(tmp_path, entry(), defaults={"push": {"encryption": "DES"}})
    assert "defaults.push.encryption" in message


def test_lifecycle_policy_file_without_rules_is_refused(tmp_path):
    (tmp_path / "policy.json").write_text('{"rule": []}')
    message = load_error(tmp_path, entry(push={"lifecycle": {"policy_file": "policy.json"}}))
    assert "must hold an object with a 'rules' list" in message


def test_moving_tag_templates_become_ecr_wildcards():
    assert config.mutability_filter("latest-{variant}") == "latest-*"
    assert config.mutability_filter("branch-{branch}-{flavor}") == "branch-*-*"


def test_ami_version_must_look_like_an_inference_ami(tmp_path):
    message = load_error(tmp_path, entry(ami_version="ubuntu-22.04"))
    assert "images[0].ami_version" in message and "InferenceAmiVersion" in message


# -- the model an image serves ------------------------------------------------------------

def test_every_shipped_image_names_a_described_model():
    from byoc.model import describe

    for name, spec in config.load().items():
        assert spec.model, name
        path = describe.find(spec.model, config.DEFAULT_CONFIG.parent)
        assert describe.load(path).name == spec.model, name


def test_model_comes_from_defaults_and_the_entry_wins(tmp_path):
    specs = load_entries(tmp_path, entry(), entry(variant="gpu", torch=GPU_TORCH, model="other"),
                         defaults={"model": "digits"})
    assert (specs["torchserve-cpu"].model, specs["torchserve-gpu"].model) == ("digits", "other")


def test_no_model_anywhere_is_none(tmp_path):
    assert load_entries(tmp_path, entry())["torchserve-cpu"].model is None


@pytest.mark.parametrize("value", ["has space", "../digits", "models/digits", "", "-x", 3,
                                   "x" * 65, ["digits"]])
def test_a_bad_model_name_names_the_field(tmp_path, value):
    message = load_error(tmp_path, entry(model=value))
    assert message.startswith("images config: images[0].model: ")
    assert "a model name (images/models/NAME.yaml)" in message


def test_a_bad_default_model_name_is_refused_too(tmp_path):
    assert "images[0].model: " in load_error(tmp_path, entry(), defaults={"model": "a/b"})
