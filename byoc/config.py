"""The image config (images/images.yaml): loaded once, validated at the edge, then trusted.

Errors name the exact field at fault and the values it allows."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import yaml

from . import IMAGES_DIR
from .errors import ConfigError
from .flavors import registry

FLAVORS = tuple(registry())
VARIANTS = ("cpu", "gpu")
# Where each flavor's server comes from; the first is the default.
RUNTIMES = {name: flavor.runtimes for name, flavor in registry().items()}
DEFAULT_CONFIG = IMAGES_DIR / "images.yaml"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,2}([a-z0-9.+-]*)$")
_IMAGE_REF = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL_KEY = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_URL = re.compile(r"^https?://[^\s'\"\\]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_KMS_KEY = re.compile(r"^[A-Za-z0-9:/_.+=,@-]{1,2048}$")


@dataclasses.dataclass(frozen=True)
class TorchSpec:
    version: str
    index_url: str | None = None
    cuda: str | None = None  # None for CPU builds


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Serving knobs. TorchServe: workers per model, requests per batch. Triton: instances
    per model, and the dynamic batcher's delay; max_batch_rows caps the rows (instances)
    the classifier takes in one batch, so one 6 MiB request (~24k rows) still fits."""

    workers: int = 1
    batch_size: int = 1
    max_batch_delay_ms: int = 5
    timeout_s: int = 50
    max_payload_mb: int = 6
    max_batch_rows: int = 32768


TAG_MUTABILITY = ("IMMUTABLE", "MUTABLE")
ENCRYPTION = ("AES256", "KMS")
# Placeholders in push tags: {sha} is the git revision the image was built from ("-dirty"
# plus the image id when the tree had changes); {branch} the current git branch.
CONTENT_TAG_FIELDS = ("version", "variant", "flavor", "sha")
MOVING_TAG_FIELDS = ("version", "variant", "flavor", "branch")
_SAMPLE = {"version": "0.1.0", "variant": "cpu", "flavor": "triton", "sha": "0123456789ab",
           "branch": "main"}


@dataclasses.dataclass(frozen=True)
class PushSettings:
    """Where and how `--push` publishes an image (byoc/push.py); none of it is in the image."""

    region: str | None = None  # None: boto3's chain (AWS_REGION, AWS_DEFAULT_REGION, profile)
    create_repository: bool = True
    tag_mutability: str = "IMMUTABLE"  # content tags never move; moving tags are exempt
    scan_on_push: bool = True
    encryption: str = "AES256"
    kms_key: str | None = None  # KMS only; None: the AWS-managed key
    lifecycle_policy: str | None = None  # ECR lifecycle policy JSON text
    content_tag: str = "{version}-{variant}-{sha}"
    moving_tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    flavor: str
    variant: str
    repository: str
    base_image: str
    python: str
    server_version: str
    torch: TorchSpec
    source: str
    tags: tuple[str, ...]
    instance_types: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()
    server: ServerSettings = ServerSettings()
    bake_model: bool = True
    push: PushSettings = PushSettings()
    runtime: str = "pypi"
    # ProductionVariant.InferenceAmiVersion the endpoint must use (None: the default
    # driver of each instance type); the compatibility gate checks against it.
    ami_version: str | None = None
    # The model this image serves: a name under models/ beside the config (byoc/model).
    model: str | None = None

    @property
    def name(self) -> str:
        default = RUNTIMES[self.flavor][0]
        suffix = "" if self.runtime == default else f"-{self.runtime}"
        return f"{self.flavor}-{self.variant}{suffix}"

    def expanded_tags(self, version: str) -> list[str]:
        return [t.format(version=version, variant=self.variant, flavor=self.flavor)
                for t in self.tags]

    def replace(self, **changes: Any) -> ImageSpec:
        return dataclasses.replace(self, **changes)


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"images config: {where}: {problem}",
                       "fix the field in images/images.yaml (or the flag that overrides it)")


def _pick(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(where, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _match(where: str, value: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(where, f"{value!r} is not {what}")
    return value


def _int(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"{value!r} must be a whole number from {low} to {high}")
    return value


def _only_keys(where: str, data: dict, allowed: set[str]) -> None:
    if not isinstance(data, dict):
        raise _fail(where, "must be a mapping")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def validate_base_image(where: str, value: Any) -> str:
    return _match(where, value, _IMAGE_REF, "an image reference like debian:bookworm-slim")


def validate_tag(where: str, value: Any) -> str:
    return _match(where, value, _TAG, "a Docker tag ([A-Za-z0-9_.-], at most 128 chars)")


def validate_repository(where: str, value: Any) -> str:
    return _match(where, value, _REPOSITORY, "a lowercase repository name like byoc-triton")


def _torch(where: str, data: Any) -> TorchSpec:
    _only_keys(where, data, {"version", "index_url", "cuda"})
    version = _match(f"{where}.version", data.get("version"), _VERSION, "a version like 2.13.0")
    index_url = data.get("index_url")
    if index_url is not None:
        _match(f"{where}.index_url", index_url, _URL, "an http(s) URL")
    cuda = data.get("cuda")
    if cuda is not None:
        cuda = _match(f"{where}.cuda", str(cuda), re.compile(r"^[0-9]+\.[0-9]+$"), "like 12.4")
    return TorchSpec(version=version, index_url=index_url, cuda=cuda)


def _ami(where: str, value: Any) -> str | None:
    if value is None:
        return None
    return _match(where, value, re.compile(r"^al[0-9]+-ami-sagemaker-inference-gpu-[0-9-]+$"),
                  "an InferenceAmiVersion like al2023-ami-sagemaker-inference-gpu-4-1")


def _server(where: str, data: Any) -> ServerSettings:
    data = data or {}
    fields = {f.name for f in dataclasses.fields(ServerSettings)}
    _only_keys(where, data, fields)
    limits = {"workers": (1, 64), "batch_size": (1, 1024), "max_batch_delay_ms": (0, 10_000),
              "timeout_s": (1, 59), "max_payload_mb": (1, 1024),
              "max_batch_rows": (1, 1_000_000)}
    return ServerSettings(**{k: _int(f"{where}.{k}", v, *limits[k]) for k, v in data.items()})


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"{value!r} must be true or false")
    return value


def _tag_template(where: str, value: Any, fields: tuple[str, ...]) -> str:
    try:
        expanded = value.format(**{k: _SAMPLE[k] for k in fields})
    except (AttributeError, KeyError, IndexError, ValueError):
        allowed = ", ".join("{" + f + "}" for f in fields)
        raise _fail(where, f"{value!r} is not a tag template; placeholders allowed: "
                    f"{allowed}") from None
    validate_tag(where, expanded)
    return value


def mutability_filter(template: str) -> str:
    """The ECR tag-mutability exclusion filter (WILDCARD) that matches every expansion of a
    moving-tag template: each placeholder becomes '*'."""
    return re.sub(r"\{[a-z]+\}", "*", template)


def _lifecycle(where: str, data: Any, base: Path) -> str | None:
    if data is None:
        return None
    _only_keys(where, data, {"keep_last", "policy_file"})
    if len(data) != 1:
        raise _fail(where, "give exactly one of keep_last, policy_file")
    if "keep_last" in data:
        keep = _int(f"{where}.keep_last", data["keep_last"], 1, 10_000)
        return json.dumps({"rules": [{
            "rulePriority": 1,
            "description": f"keep the last {keep} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                          "countNumber": keep},
            "action": {"type": "expire"}}]}, separators=(",", ":"))
    name = data["policy_file"]
    if not isinstance(name, str) or not name:
        raise _fail(f"{where}.policy_file", f"{name!r} must be a path to a JSON file")
    path = base / name
    try:
        policy = json.loads(path.read_text())
    except OSError as exc:
        raise _fail(f"{where}.policy_file", f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{where}.policy_file", f"{path} is not valid JSON: {exc}") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("rules"), list):
        raise _fail(f"{where}.policy_file", f"{path} must hold an object with a 'rules' list")
    text = json.dumps(policy, separators=(",", ":"))
    if not 100 <= len(text) <= 30720:
        raise _fail(f"{where}.policy_file", f"{path} is {len(text)} characters compacted; "
                    "ECR allows 100 to 30720")
    return text


def _push(where: str, data: Any, base: Path) -> PushSettings:
    """The `push:` block: defaults.push merged key by key with the image's own."""
    fields = {"region", "create_repository", "tag_mutability", "scan_on_push", "encryption",
              "kms_key", "lifecycle", "content_tag", "moving_tags"}
    _only_keys(where, data, fields)
    out: dict[str, Any] = {}
    if data.get("region") is not None:
        out["region"] = _match(f"{where}.region", data["region"], _REGION,
                               "an AWS region like us-east-1")
    for key in ("create_repository", "scan_on_push"):
        if key in data:
            out[key] = _bool(f"{where}.{key}", data[key])
    if "tag_mutability" in data:
        out["tag_mutability"] = _pick(f"{where}.tag_mutability", data["tag_mutability"],
                                      TAG_MUTABILITY)
    out["encryption"] = _pick(f"{where}.encryption", data.get("encryption", "AES256"),
                              ENCRYPTION)
    if data.get("kms_key") is not None:
        if out["encryption"] != "KMS":
            raise _fail(f"{where}.kms_key", "only with encryption: KMS")
        out["kms_key"] = _match(f"{where}.kms_key", data["kms_key"], _KMS_KEY,
                                "a KMS key ARN, alias/NAME or key id")
    out["lifecycle_policy"] = _lifecycle(f"{where}.lifecycle", data.get("lifecycle"), base)
    content = _tag_template(f"{where}.content_tag",
                            data.get("content_tag", PushSettings.content_tag), CONTENT_TAG_FIELDS)
    if "{sha}" not in content:
        raise _fail(f"{where}.content_tag", f"{content!r} must contain {{sha}}: the content "
                    "tag names one build and never moves")
    out["content_tag"] = content
    moving = data.get("moving_tags") or []
    if not isinstance(moving, list):
        raise _fail(f"{where}.moving_tags", "must be a list of tag templates")
    if len(moving) > 5:
        raise _fail(f"{where}.moving_tags", "at most 5 (ECR's limit on tag-mutability "
                    "exclusion filters)")
    sample_content = content.format(**_SAMPLE)
    for i, tag in enumerate(moving):
        _tag_template(f"{where}.moving_tags[{i}]", tag, MOVING_TAG_FIELDS)
        if fnmatch.fnmatchcase(sample_content, mutability_filter(tag)):
            raise _fail(f"{where}.moving_tags[{i}]", f"{tag!r} would also match content tags "
                        f"like {sample_content!r} and make them mutable; give it a fixed "
                        "prefix, like 'latest-{variant}' or 'branch-{branch}'")
    out["moving_tags"] = tuple(moving)
    return PushSettings(**out)


def _image(where: str, data: Any, defaults: dict, base: Path = IMAGES_DIR) -> ImageSpec:
    allowed = {"flavor", "variant", "repository", "base_image", "python", "server_version",
               "torch", "source", "tags", "instance_types", "labels", "server", "runtime",
               "push", "ami_version", "model"}
    _only_keys(where, data, allowed)
    merged = {**defaults, **data}
    default_push, image_push = defaults.get("push") or {}, data.get("push") or {}
    for at, block in (("defaults.push", default_push), (f"{where}.push", image_push)):
        if not isinstance(block, dict):
            raise _fail(at, "must be a mapping")
    flavor = _pick(f"{where}.flavor", merged.get("flavor"), FLAVORS)
    variant = _pick(f"{where}.variant", merged.get("variant"), VARIANTS)
    runtime = _pick(f"{where}.runtime", merged.get("runtime", RUNTIMES[flavor][0]),
                    RUNTIMES[flavor])
    python = _pick(f"{where}.python", str(merged.get("python")), ("3.10", "3.11", "3.12"))
    torch = _torch(f"{where}.torch", merged.get("torch"))
    if variant == "gpu" and torch.cuda is None:
        raise _fail(f"{where}.torch.cuda", "a gpu variant must name its CUDA version")
    if variant == "cpu" and torch.cuda is not None:
        raise _fail(f"{where}.torch.cuda", "a cpu variant must not name a CUDA version")
    tags = merged.get("tags") or []
    if not isinstance(tags, list) or not tags:
        raise _fail(f"{where}.tags", "must be a non-empty list")
    for i, tag in enumerate(tags):  # placeholders are checked expanded
        try:
            expanded = tag.format(version="0.1.0", variant="cpu", flavor="triton")
        except (AttributeError, KeyError, IndexError, ValueError):
            raise _fail(f"{where}.tags[{i}]", f"{tag!r} is not a tag template; placeholders "
                        "allowed: {version}, {variant}, {flavor}") from None
        validate_tag(f"{where}.tags[{i}]", expanded)
    instances = merged.get("instance_types") or []
    for i, inst in enumerate(instances):
        _match(f"{where}.instance_types[{i}]", inst, _INSTANCE, "like ml.g5.xlarge")
    labels = merged.get("labels") or {}
    if not isinstance(labels, dict):
        raise _fail(f"{where}.labels", "must be a mapping of label key to value")
    for key, value in labels.items():
        _match(f"{where}.labels key", key, _LABEL_KEY, "a lowercase dotted label key")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _fail(f"{where}.labels.{key}", "must be a one-line string")
    return ImageSpec(
        flavor=flavor,
        variant=variant,
        repository=validate_repository(f"{where}.repository", merged.get("repository")),
        base_image=validate_base_image(f"{where}.base_image", merged.get("base_image")),
        python=python,
        server_version=_match(f"{where}.server_version", str(merged.get("server_version")),
                              _VERSION, "a version like 0.12.0"),
        torch=torch,
        source=_match(f"{where}.source", merged.get("source"), _URL, "an http(s) URL"),
        tags=tuple(tags),
        instance_types=tuple(instances),
        labels=tuple(sorted(labels.items())),
        server=_server(f"{where}.server", merged.get("server")),
        runtime=runtime,
        ami_version=_ami(f"{where}.ami_version", merged.get("ami_version")),
        model=None if merged.get("model") is None else _match(
            f"{where}.model", merged.get("model"), _MODEL_NAME,
            "a model name (images/models/NAME.yaml)"),
        push=_push(f"{where}.push" if image_push else "defaults.push",
                   {**default_push, **image_push}, base),
    )


def read_yaml(path: Path, what: str, missing_tip: str) -> Any:
    """A data file under images/, or a ConfigError naming it and what to do."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}", missing_tip) from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"{what} {path} is not a readable text file "
                          f"({type(exc).__name__})", missing_tip) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}",
                          "fix the YAML syntax at the line named") from None


def load(path: Path = DEFAULT_CONFIG) -> dict[str, ImageSpec]:
    """All images in the config, keyed by 'flavor-variant'."""
    data = read_yaml(path, "images config", "pass --config PATH, or run from a byoc checkout")
    _only_keys("top level", data, {"defaults", "images"})
    defaults = data.get("defaults") or {}
    _only_keys("defaults", defaults, {"base_image", "python", "source", "tags", "labels",
                                      "push", "model"})
    specs: dict[str, ImageSpec] = {}
    for i, entry in enumerate(data.get("images") or []):
        spec = _image(f"images[{i}]", entry, defaults, Path(path).parent)
        if spec.name in specs:
            raise _fail(f"images[{i}]", f"{spec.name} is declared twice")
        specs[spec.name] = spec
    return specs


def select(specs: dict[str, ImageSpec], flavor: str, variant: str,
           runtime: str | None = None) -> ImageSpec:
    _pick("flavor", flavor, FLAVORS)
    _pick("variant", variant, VARIANTS)
    runtime = _pick("runtime", runtime or RUNTIMES[flavor][0], RUNTIMES[flavor])
    suffix = "" if runtime == RUNTIMES[flavor][0] else f"-{runtime}"
    try:
        return specs[f"{flavor}-{variant}{suffix}"]
    except KeyError:
        declared = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"no image {flavor}-{variant}{suffix} in the images config "
                          f"(declared: {declared})",
                          "add an entry to images/images.yaml or pick a declared one") from None
