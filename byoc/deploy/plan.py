"""What deploy will ask SageMaker for, and every refusal, decided before any AWS call that
creates something. Pure: the options, the image's facts and the model's size in; a Plan
(the CreateModel container, the production variant, the async config) or an error out.

Where the numbers come from (C32, C26, C29, C30):
- InferenceAmiVersion: the CUDA gate's verdict for the instance (byoc/compat.py);
- ContainerStartupHealthCheckTimeoutInSeconds: verify's measured cold start, with a margin;
- ModelDataDownloadTimeoutInSeconds: the model's size at a stated download rate, with a margin;
- VolumeSizeInGB: the image and the model with room to extract it, on instances that take an
  EBS volume (those with local NVMe storage refuse the field);
- async: the payload and deadline variables the image reads, raised to SageMaker's limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import secrets

from .. import compat
from ..errors import IncompatibleImage, UsageError
from . import limits
from .image import DeployImage
from .options import DeployOptions

VARIANT = "AllTraffic"  # blue/green keeps the variant name (deployment guardrails' rule)
STARTUP_FACTOR, STARTUP_MARGIN_S = 2.0, 60  # SageMaker hosts are not this machine
UNMEASURED_STARTUP_S = 600  # no verify report: SageMaker's historic 4 min was too short often
DOWNLOAD_RATE_BPS = 20e6  # a conservative S3-to-instance rate, bytes per second
DOWNLOAD_MARGIN_S = 60
VOLUME_FLOOR_GB, VOLUME_HEADROOM = 30, 1.5
# Instance families with local NVMe storage take no VolumeSizeInGB.
_LOCAL_NVME = re.compile(r"^(?:[cmr][0-9]+[a-z]*d|g4dn|g5|g6e?|g6e?n|p3dn|p4de?|p5e?n?|inf2|"
                         r"trn1n?)$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# The image's own ranges (images/runtime/byoc_runtime/settings.py): out of range, it exits 2.
IMAGE_RANGES = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": (1, 3600),
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": (1, 1024),
                "SAGEMAKER_MODEL_SERVER_WORKERS": (1, 64)}
# Measured with the byoc Triton image under Docker's 64 MB /dev/shm (SageMaker's size): the
# request tensor goes through the Python backend's shared memory, so ~45 MB passes and 60 MB
# fails with 500 "Failed to increase the shared memory pool size" (docs/deploy.md).
TRITON_ASYNC_WARNING = ("warning: Triton's Python backend carries each request through "
                        "/dev/shm (64 MB on SageMaker): async requests over about 45 MB fail "
                        "with 500, not 413, until the runtime caps them (docs/deploy.md)")
ASYNC_ENV = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(limits.ASYNC_MAX_RUN_S),
             "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(limits.ASYNC_MAX_PAYLOAD_MB)}


@dataclasses.dataclass(frozen=True)
class Plan:
    kind: str  # real-time | async | serverless
    endpoint: str
    model_name: str
    config_name: str
    image_uri: str
    model_data_url: str | None
    environment: dict
    variant: dict  # the ProductionVariant
    async_config: dict | None
    notes: tuple[str, ...]  # each decision and why, printed before anything is created

    def container(self) -> dict:
        container = {"Image": self.image_uri, "Mode": "SingleModel",
                     "Environment": dict(self.environment)}
        if self.model_data_url:
            container["ModelDataUrl"] = self.model_data_url
        return container


def check_name(endpoint: str) -> str:
    if not _NAME.fullmatch(endpoint):
        raise UsageError(f"--endpoint {endpoint!r} is not a SageMaker endpoint name",
                         "1-63 letters, numbers and hyphens, starting with a letter or number")
    return endpoint


def resource_names(endpoint: str, digest: str, now: dt.datetime | None = None) -> tuple[str, str]:
    """A model and an endpoint config per deploy (a new pair for each update, so the old
    one keeps serving until the new fleet is healthy), named after the endpoint."""
    now = now or dt.datetime.now(dt.timezone.utc)
    # A deploy and an update within the same second must not collide: a random part too.
    suffix = f"{digest.replace('sha256:', '')[:8]}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    base = endpoint[:63 - len(suffix) - 1]
    return f"{base}-{suffix}", f"{base}-{suffix}"


def environment(options: DeployOptions) -> dict:
    """C14 checked here, not by a failed CreateModel; async raises the image's limits
    (C29) unless the user set them."""
    env = dict(ASYNC_ENV) if options.asynchronous else {}
    env.update(dict(options.env))
    if len(env) > limits.MAX_ENV_VARS:
        raise UsageError(f"{len(env)} environment variables; SageMaker allows "
                         f"{limits.MAX_ENV_VARS} (C14)", "bake the constant ones into the image")
    for key, value in env.items():
        if not _ENV_KEY.fullmatch(key) or len(key.encode()) > limits.MAX_ENV_BYTES:
            raise UsageError(f"--env {key}: not a valid variable name (C14)",
                             "[a-zA-Z_][a-zA-Z0-9_]*, at most 1024 bytes")
        if len(value.encode()) > limits.MAX_ENV_BYTES:
            raise UsageError(f"--env {key}: the value is {len(value.encode())} bytes; "
                             f"SageMaker allows {limits.MAX_ENV_BYTES} (C14)",
                             "put large settings in the model archive instead")
        if key in IMAGE_RANGES:
            low, high = IMAGE_RANGES[key]
            if not value.isdigit() or not low <= int(value) <= high:
                raise UsageError(f"--env {key}={value}: the image accepts {low}..{high} and "
                                 "would exit at start", f"give a whole number in {low}..{high}")
    return env


def choose_ami(facts: compat.ImageFacts, instance: str, requested: str | None,
               table: compat.Table) -> tuple[str | None, compat.Verdict, str]:
    """The AMI version the endpoint needs, from the gate; refuses what will not start.
    An explicit --ami-version wins, then the one the image config names (its label), then
    the instance's default driver, then the first AMI on which the image starts natively."""
    wanted = requested or facts.ami_version
    if wanted is not None and wanted not in table.amis:
        raise UsageError(f"--ami-version {wanted}: not an inference AMI version in the table",
                         f"use one of: {', '.join(table.amis)}")
    verdict = compat.decide(table, facts, instance, wanted)
    if wanted is not None:
        if verdict.outcome.blocks:
            raise _refuse(facts, verdict)
        source = "--ami-version" if requested else "the image's label"
        return wanted, verdict, f"InferenceAmiVersion {wanted} ({source}): {verdict.reason}"
    if verdict.outcome is compat.Outcome.STARTS:
        return None, verdict, f"no InferenceAmiVersion: {verdict.reason}"
    if verdict.outcome is compat.Outcome.WRONG_TARGET:
        raise _refuse(facts, verdict)
    family = instance.split(".")[1]
    offered = sorted((a for a in table.amis.values() if family in a.families),
                     key=lambda a: (a.mounts_compat, _version(a.driver)))
    for ami in offered:
        on_ami = compat.decide(table, facts, instance, ami.name)
        if on_ami.outcome is compat.Outcome.STARTS:
            return ami.name, on_ami, (f"InferenceAmiVersion {ami.name}: the default driver "
                                      f"would not do ({verdict.reason}); {on_ami.reason}")
    if verdict.outcome is compat.Outcome.FORWARD_COMPAT:
        return None, verdict, f"no InferenceAmiVersion: {verdict.reason}"
    raise _refuse(facts, verdict)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _refuse(facts: compat.ImageFacts, verdict: compat.Verdict) -> IncompatibleImage:
    return IncompatibleImage(f"{facts.reference} ({facts.describe()}) {verdict.outcome.value} "
                             f"on {verdict.instance}: {verdict.reason}",
                             f"{verdict.fix}; nothing was created" if verdict.fix
                             else "nothing was created")


def startup_timeout(image: DeployImage, override: int | None) -> tuple[int, str]:
    low, high = limits.STARTUP_TIMEOUT_RANGE
    if override is not None:
        if not low <= override <= high:
            raise UsageError(f"--startup-timeout {override}: SageMaker allows {low}-{high} s",
                             "or leave it out: the measured cold start x2 + 60 s")
        return override, (f"ContainerStartupHealthCheckTimeoutInSeconds {override} "
                          "(--startup-timeout)")
    if image.ready_s is None:
        return UNMEASURED_STARTUP_S, (
            f"ContainerStartupHealthCheckTimeoutInSeconds {UNMEASURED_STARTUP_S}: no verify "
            f"report for this image id, so its cold start was not measured (run `build.py "
            f"verify`, or pass --startup-timeout)")
    value = limits.clamp(math.ceil(image.ready_s * STARTUP_FACTOR + STARTUP_MARGIN_S),
                         limits.STARTUP_TIMEOUT_RANGE)
    return value, (f"ContainerStartupHealthCheckTimeoutInSeconds {value} = "
                   f"{STARTUP_FACTOR:g} x {image.ready_s:.1f} s measured cold start "
                   f"+ {STARTUP_MARGIN_S} s, within {low}-{high} ({image.verified.name})")


def download_timeout(model_bytes: int) -> tuple[int, str]:
    value = limits.clamp(math.ceil(model_bytes / DOWNLOAD_RATE_BPS + DOWNLOAD_MARGIN_S),
                         limits.DOWNLOAD_TIMEOUT_RANGE)
    return value, (f"ModelDataDownloadTimeoutInSeconds {value} = {model_bytes / 1e6:.1f} MB at "
                   f"{DOWNLOAD_RATE_BPS / 1e6:.0f} MB/s + {DOWNLOAD_MARGIN_S} s, at least 60")


def takes_volume(instance: str) -> bool:
    return not _LOCAL_NVME.fullmatch(instance.split(".")[1])


def volume_gb(image: DeployImage, model_bytes: int) -> tuple[int, str]:
    need = (image.size_bytes + 2 * model_bytes) * VOLUME_HEADROOM / limits.GIB
    value = limits.clamp(max(VOLUME_FLOOR_GB, math.ceil(need)), limits.VOLUME_GB_RANGE)
    return value, (f"VolumeSizeInGB {value}: image {image.size_bytes / limits.GIB:.1f} GiB + "
                   f"model {model_bytes / limits.GIB:.2f} GiB twice (archive and extracted), "
                   f"x{VOLUME_HEADROOM:g}, at least {VOLUME_FLOOR_GB}")


def check_options(options: DeployOptions) -> None:
    """What the command line alone can get wrong: refused before the image is looked up."""
    check_name(options.endpoint)
    environment(options)
    if options.serverless:
        limits.serverless_memory(options.memory_mb)
        limits.serverless_concurrency(options.max_concurrency)
    elif not options.instance_type:
        raise UsageError("deploy needs --instance-type TYPE (or --serverless)",
                         "for example --instance-type ml.c5.xlarge")
    elif options.count < 1:
        raise UsageError(f"--count {options.count}: at least one instance",
                         "--count 1, or more for more capacity")
    if options.asynchronous and not (options.output or "").startswith("s3://"):
        raise UsageError("--async needs --output s3://BUCKET/PREFIX/ for the answers",
                         "name a bucket in the endpoint's region")
    if not 0 <= options.termination_wait_s <= 3600:
        raise UsageError(f"--termination-wait {options.termination_wait_s}: 0-3600 s",
                         "the default is 120")


def check_registry(image: DeployImage) -> None:
    """SageMaker pulls images from ECR (a private registry needs VPC access settings byoc
    does not make)."""
    if image.ecr_region() is None:
        raise UsageError(f"{image.uri} is not in Amazon ECR: SageMaker pulls endpoint images "
                         "from ECR", "push it to ECR: python build.py push IMAGE (without "
                         "--registry)")


def make(options: DeployOptions, image: DeployImage, model_data_url: str | None,
         model_bytes: int, *, region: str, table: compat.Table | None = None,
         now: dt.datetime | None = None) -> Plan:
    table = table or compat.default_table()
    check_options(options)
    check_registry(image)
    notes: list[str] = []
    limits.refuse_oversized_image(image.uri, image.size_bytes, compressed=image.size_compressed)
    ecr_region = image.ecr_region()
    if ecr_region and ecr_region != region:
        raise UsageError(f"{image.uri} is in ECR {ecr_region}, the endpoint in {region}: "
                         "SageMaker pulls only from its own region (C20)",
                         f"deploy with --region {ecr_region}, or push to ECR in {region}")
    if not model_data_url and not image.bakes_model:
        raise UsageError(f"{image.uri} was built with --no-model "
                         f"({image.labels.get('dev.byoc.model', 'no model label')}) and deploy "
                         "was given no model", "pass --model-tar model.tar.gz (python build.py "
                         "package-model FLAVOR) or --model-data s3://BUCKET/model.tar.gz")
    env = environment(options)
    model_name, config_name = resource_names(options.endpoint, image.digest, now)
    variant: dict = {"VariantName": VARIANT, "ModelName": model_name}
    async_config = None
    if options.serverless:
        facts = image.facts
        if facts.cuda is not None:
            raise IncompatibleImage(f"{image.uri} is a GPU image (CUDA {facts.cuda}); "
                                    "serverless endpoints are CPU only (C30)",
                                    "deploy the cpu variant (--variant cpu), or deploy to a GPU "
                                    "instance with --instance-type; nothing was created")
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": limits.serverless_memory(options.memory_mb),
            "MaxConcurrency": limits.serverless_concurrency(options.max_concurrency)}
        notes.append(f"serverless: {options.memory_mb} MB, at most {options.max_concurrency} "
                     "concurrent invocations; SageMaker takes no AMI, volume or startup "
                     "timeouts for serverless variants")
    else:
        instance = options.instance_type
        ami, _verdict, why = choose_ami(image.facts, instance, options.ami_version, table)
        notes.append(why)
        if image.facts.instance_types and instance not in image.facts.instance_types:
            notes.append(f"note: {instance} is not among the image's target instance types "
                         f"({', '.join(image.facts.instance_types)}); the gate says it starts")
        variant.update({"InstanceType": instance, "InitialInstanceCount": options.count,
                        "InitialVariantWeight": 1.0})
        if ami:
            variant["InferenceAmiVersion"] = ami
        value, why = startup_timeout(image, options.startup_timeout_s)
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = value
        notes.append(why)
        if model_data_url:
            value, why = download_timeout(model_bytes)
            variant["ModelDataDownloadTimeoutInSeconds"] = value
            notes.append(why)
        if takes_volume(instance):
            value, why = volume_gb(image, model_bytes)
            variant["VolumeSizeInGB"] = value
            notes.append(why)
        else:
            notes.append(f"no VolumeSizeInGB: {instance} has local NVMe storage, which "
                         "SageMaker uses instead")
    if options.asynchronous:
        out = options.output.rstrip("/") + "/"
        async_config = {"OutputConfig": {"S3OutputPath": out,
                                         "S3FailurePath": f"{out}failures/"}}
        if options.max_concurrent_invocations:
            async_config["ClientConfig"] = {
                "MaxConcurrentInvocationsPerInstance": options.max_concurrent_invocations}
        notes.append(f"async: answers to {out}; the image's limits raised for async (C29): "
                     + ", ".join(f"{k}={v}" for k, v in ASYNC_ENV.items()
                                 if env.get(k) == v))
        if image.flavor == "triton":
            notes.append(TRITON_ASYNC_WARNING)
    return Plan(options.kind, options.endpoint, model_name, config_name, image.uri,
                model_data_url, env, variant, async_config, tuple(notes))
