"""Will the image start on the SageMaker instance it targets? The CUDA/driver gate (C26, C20).

The facts live in images/cuda-compat.yaml, validated once when loaded; this module only
decides. decide() is pure: the image's CUDA, an instance type and an optional
InferenceAmiVersion give one of three answers (starts / starts with forward compatibility /
will not start) and the fix. The image's CUDA comes from the labels the build wrote:
facts_from_labels() takes them as a dict; image_facts() is the thin Docker lookup."""

from __future__ import annotations

import dataclasses
import enum
import re

from .compat_table import (  # noqa: F401  (the table's names stay importable from here)
    TABLE_PATH,
    Ami,
    CudaRelease,
    GpuFamily,
    Table,
    _num,
    at_least,
    default_table,
    load_table,
    parse_table,
)
from .errors import ConfigError, ExitStatus, IncompatibleImage, UsageError

AMI_LABEL = "dev.byoc.ami-version"
COMPAT_LABEL = "dev.byoc.cuda-compat"  # optional: CUDA of the compat libraries inside, or "none"

_MINOR = re.compile(r"^[0-9]+\.[0-9]+$")  # CUDA versions and compute capabilities
_INSTANCE = re.compile(r"^ml\.([a-z0-9-]+)\.[a-z0-9]+$")


# -- the image ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ImageFacts:
    reference: str
    cuda: str | None  # None: a CPU image
    torch: str
    architecture: str
    instance_types: tuple[str, ...]
    compat_libs: str | None = None  # COMPAT_LABEL: a CUDA version, "none", or None: not said
    ami_version: str | None = None  # AMI_LABEL: the InferenceAmiVersion the config names

    def describe(self) -> str:
        what = f"CUDA {self.cuda}" if self.cuda else "CPU"
        return f"{what}, torch {self.torch}, linux/{self.architecture}"


def facts_from_labels(reference: str, labels: dict[str, str] | None,
                      architecture: str = "amd64") -> ImageFacts:
    """What the gate needs, from the labels the build wrote (render.image_labels)."""
    labels = labels or {}
    cuda = labels.get("dev.byoc.cuda")
    if cuda is None:
        raise UsageError(f"{reference} has no dev.byoc.cuda label: its CUDA version is unknown",
                         "check images built by `python build.py`, or rebuild this one")
    if cuda != "none" and not _MINOR.fullmatch(cuda):
        raise UsageError(f"{reference}: label dev.byoc.cuda={cuda!r} is not like 12.6 or none")
    instances = tuple(t for t in labels.get("dev.byoc.instance-types", "").split(",") if t)
    return ImageFacts(reference, None if cuda == "none" else cuda,
                      labels.get("dev.byoc.torch", "unknown"), architecture, instances,
                      labels.get(COMPAT_LABEL), labels.get(AMI_LABEL))


def image_facts(reference: str) -> ImageFacts:
    """The Docker lookup: a local image's labels and architecture."""
    from docker.errors import ImageNotFound

    from .launcher import client

    try:
        image = client().images.get(reference)
    except ImageNotFound:
        raise UsageError(f"image {reference} not found locally",
                         "build it first (python build.py torchserve), or docker pull it") \
            from None
    return facts_from_labels(reference, image.labels, image.attrs.get("Architecture", "amd64"))


# -- the decision -------------------------------------------------------------------------

class Outcome(enum.Enum):
    STARTS = "starts"
    FORWARD_COMPAT = "starts with forward compatibility"
    WILL_NOT_START = "will not start"
    WRONG_TARGET = "wrong instance for this image"

    @property
    def blocks(self) -> bool:
        return self in (Outcome.WILL_NOT_START, Outcome.WRONG_TARGET)


@dataclasses.dataclass(frozen=True)
class Verdict:
    instance: str
    outcome: Outcome
    reason: str
    fix: str | None = None

    def line(self) -> str:
        return f"{self.instance}: {self.outcome.value}: {self.reason}"


def _family(instance: str) -> str:
    match = _INSTANCE.fullmatch(instance)
    if not match:
        raise UsageError(f"{instance!r} is not an instance type like ml.g5.xlarge")
    return match.group(1)


def _runs(release: CudaRelease, gpu: GpuFamily, driver: str) -> tuple[Outcome, str]:
    """A CUDA release on a GPU under a host driver, before asking what the image ships."""
    cuda = release.version
    if _num(gpu.compute_capability) < _num(release.min_compute_capability):
        return Outcome.WILL_NOT_START, (
            f"CUDA {cuda} does not support the {gpu.gpu} (compute capability "
            f"{gpu.compute_capability} < {release.min_compute_capability})")
    if _num(cuda) < _num(gpu.min_cuda):
        return Outcome.WILL_NOT_START, f"the {gpu.gpu} needs CUDA {gpu.min_cuda} or newer"
    if at_least(driver, release.driver):
        return Outcome.STARTS, f"driver {driver} runs CUDA {cuda} natively"
    if at_least(driver, release.minor_compat_driver):
        return Outcome.STARTS, (f"driver {driver} runs CUDA {cuda} through minor-version "
                                f"compatibility (>= {release.minor_compat_driver})")
    needs = f"driver {driver} is older than CUDA {cuda} needs (>= {release.minor_compat_driver})"
    branch = _num(driver)[0]
    if not any(_num(bridge)[0] == branch and at_least(driver, bridge)
               for bridge in release.forward_compat_drivers):
        return Outcome.WILL_NOT_START, (f"{needs}, and its forward-compat package does not "
                                        f"support the {branch} driver branch")
    if not gpu.forward_compat:
        return Outcome.WILL_NOT_START, f"{needs}, and the {gpu.gpu} has no forward compatibility"
    return Outcome.FORWARD_COMPAT, (f"{needs}: the image must put cuda-compat-"
                                    f"{cuda.replace('.', '-')} on LD_LIBRARY_PATH at start")


def _fix(table: Table, gpu: GpuFamily, release: CudaRelease, driver: str) -> str:
    """The smallest changes that make it start: an AMI version, or another CUDA."""
    offered = sorted((a for a in table.amis.values() if gpu.name in a.families),
                     key=lambda a: (a.mounts_compat, _num(a.driver)))
    fixes = [f"set InferenceAmiVersion to {a.name} (driver {a.driver})"
             for a in offered if _runs(release, gpu, a.driver)[0] is Outcome.STARTS][:1]
    releases = sorted(table.cuda.values(), key=lambda r: _num(r.version), reverse=True)
    native = [r for r in releases if _runs(r, gpu, driver)[0] is Outcome.STARTS]
    if native:
        fixes.append(f"build for CUDA {native[0].version} (starts on driver {driver})")
    bridged = [r for r in releases if _runs(r, gpu, driver)[0] is Outcome.FORWARD_COMPAT]
    if bridged and _runs(release, gpu, driver)[0] is Outcome.WILL_NOT_START:
        fixes.append(f"build for CUDA {bridged[0].version} with its forward-compat libraries")
    return ", or ".join(fixes) or f"nothing in the table runs CUDA {release.version} on a {gpu.gpu}"


def decide(table: Table, facts: ImageFacts, instance: str, ami: str | None = None) -> Verdict:
    family = _family(instance)
    if family in table.cpu_families:
        arch = table.cpu_families[family]
        if facts.cuda is not None:
            return Verdict(instance, Outcome.WRONG_TARGET,
                           f"a GPU image (CUDA {facts.cuda}) on a CPU instance",
                           "build the cpu variant for it (--variant cpu), or target a GPU instance")
        if arch != facts.architecture:
            return Verdict(instance, Outcome.WILL_NOT_START,
                           f"a linux/{facts.architecture} image on a linux/{arch} instance (C20)",
                           f"build for linux/{arch}, or pick a linux/{facts.architecture} family")
        return Verdict(instance, Outcome.STARTS, "a CPU image on a CPU instance: no CUDA to check")
    gpu = table.gpu_families.get(family)
    if gpu is None:
        raise ConfigError(f"{instance}: instance family {family!r} is not in the compatibility "
                          "table", "add it to images/cuda-compat.yaml (gpu_families or "
                          "cpu_families) with its default driver")
    if facts.cuda is None:
        return Verdict(instance, Outcome.WRONG_TARGET,
                       f"a CPU image on a GPU instance ({gpu.gpu}) leaves the GPU idle (C27)",
                       "build the gpu variant (--variant gpu), or target a CPU instance")
    if facts.architecture != "amd64":
        return Verdict(instance, Outcome.WILL_NOT_START,
                       f"a linux/{facts.architecture} image on a linux/amd64 GPU instance (C20)",
                       "build for linux/amd64")
    release = table.cuda.get(facts.cuda)
    if release is None:
        raise ConfigError(f"CUDA {facts.cuda} ({facts.reference}) is not in the compatibility "
                          "table", "add it under cuda: in images/cuda-compat.yaml with its "
                          "drivers from the CUDA release notes")
    if ami is None:
        driver, host = gpu.driver, f"default driver {gpu.driver}"
    elif ami in table.amis and gpu.name in table.amis[ami].families:
        driver, host = table.amis[ami].driver, ami
    else:
        offered = [a.name for a in table.amis.values() if gpu.name in a.families]
        return Verdict(instance, Outcome.WILL_NOT_START, f"{ami} is not offered for ml.{family}",
                       f"use one of: {', '.join(offered)}" if offered else "leave out the AMI")
    outcome, reason = _runs(release, gpu, driver)
    reason = f"{gpu.gpu}, {host}: {reason}"
    if outcome is Outcome.FORWARD_COMPAT and facts.compat_libs in (None, "none"):
        # Without the compat libraries an older driver cannot run it at all.
        ships = "the image ships none" if facts.compat_libs == "none" else \
            f"its labels do not say it ships them ({COMPAT_LABEL}), so it cannot be counted on"
        outcome, reason = Outcome.WILL_NOT_START, f"{reason}; {ships}"
    fix = None if outcome is Outcome.STARTS else _fix(table, gpu, release, driver)
    return Verdict(instance, outcome, reason, fix)


# -- the gate and the `check` command -----------------------------------------------------

def check(facts: ImageFacts, instances, ami: str | None = None,
          table: Table | None = None) -> list[Verdict]:
    table = table or default_table()
    if ami is not None and ami not in table.amis:
        raise UsageError(f"--ami-version {ami}: not an inference AMI version in the table",
                         f"use one of: {', '.join(table.amis)}")
    return [decide(table, facts, instance, ami) for instance in instances]


def report(verdicts: list[Verdict], console) -> None:
    for verdict in verdicts:
        if verdict.outcome is Outcome.STARTS:
            console.ok(verdict.line())
        elif verdict.outcome is Outcome.FORWARD_COMPAT:
            console.warn(verdict.line())
            console.info(f"  to start without it: {verdict.fix}")
        else:
            console.info(f"NO  {verdict.line()}")
            console.info(f"  fix: {verdict.fix}")


def gate(facts: ImageFacts, instances, ami: str | None, allow: bool, console,
         table: Table | None = None) -> list[Verdict]:
    """Check and report; refuse an image that will not start, unless allowed (loudly).
    Without an explicit AMI version, the one the image config names (its label) counts."""
    ami = ami or facts.ami_version
    instances = tuple(instances or ())
    if not instances:
        console.info(f"compatibility: no instance types for {facts.reference}: nothing to check")
        return []
    console.step(f"compatibility: {facts.reference} ({facts.describe()})"
                 + (f" with {ami}" if ami else ""))
    verdicts = check(facts, instances, ami, table)
    report(verdicts, console)
    blocked = [v for v in verdicts if v.outcome.blocks]
    if not blocked:
        return verdicts
    problems = []
    for outcome, what in ((Outcome.WILL_NOT_START, "will not start on"),
                          (Outcome.WRONG_TARGET, "is the wrong image for")):
        names = [v.instance for v in blocked if v.outcome is outcome]
        if names:
            problems.append(f"{what} {', '.join(names)}")
    if allow:
        console.warn(f"--allow-incompatible: going on with {facts.reference}, which "
                     + " and ".join(problems).replace("will not", "will NOT"))
        return verdicts
    raise IncompatibleImage(f"{facts.reference} {' and '.join(problems)}",
                            f"{blocked[0].fix}; to build or push it anyway, pass "
                            "--allow-incompatible")


def gate_image(reference: str, instance_types, ami_version: str | None, allow: bool,
               console) -> list[Verdict]:
    """For push: gate a local image. No instance_types: those in its labels."""
    facts = image_facts(reference)
    return gate(facts, instance_types or facts.instance_types, ami_version, allow, console)


@dataclasses.dataclass(frozen=True)
class GateOptions:
    ami_version: str | None = None  # the endpoint's InferenceAmiVersion
    allow_incompatible: bool = False  # go on, loudly, when the gate says it will not start


def gate_built(reference: str, spec, options: GateOptions, console) -> None:
    """Refuse (overridably) an image that would not start on its target instances."""
    gate_image(reference, spec.instance_types, options.ami_version,
               options.allow_incompatible, console)


def check_command(image: str, instances: list[str] | None, ami_version: str | None,
                  console) -> int:
    facts = image_facts(image)
    instances = instances or facts.instance_types
    if not instances:
        raise UsageError(f"no instance types to check {image} against",
                         "pass --instance ml.g5.xlarge (repeatable)")
    gate(facts, instances, ami_version, False, console)
    return ExitStatus.OK
