"""Which servers to compare for a model, and their images: built with builder.build + tag,
or, with --no-build, the images already here (checked to serve this model, this way).

    torchserve   TorchServe serving the model's .mar            (the model has torchserve:)
    triton-mar   Triton serving the same .mar through the host  (likewise)
    triton       Triton serving the model's own repository      (the model has triton:)

Each server gets its own image reference, so comparing a model never overwrites the
images `build.py torchserve|triton` made: REPOSITORY:TAG-MODEL, plus -mar for the host."""

from __future__ import annotations

import dataclasses

from docker.errors import ImageNotFound

from .. import builder, config, launcher
from ..console import Console
from ..errors import UsageError
from ..model import mar
from ..model.spec import ModelSpec
from .options import SERVERS, CompareOptions

ORDER = ("torchserve", "triton-mar", "triton")  # the .mar pair side by side, then native
FLAVOR = {"torchserve": "torchserve", "triton-mar": "triton", "triton": "triton"}
KIND = {"torchserve": "mar", "triton-mar": "torchserve-host", "triton": "repository"}


@dataclasses.dataclass(frozen=True)
class Planned:
    server: str
    spec: config.ImageSpec
    model: ModelSpec  # the part of the model this server serves
    reference: str


def allowed(model: ModelSpec) -> list[str]:
    return [s for s in ORDER if (model.triton is not None if s == "triton"
                                 else model.torchserve is not None)]


def _host_refusal(model: ModelSpec) -> str | None:
    """What the Triton host cannot serve in a finished .mar (archiver inputs are checked
    by the build itself)."""
    if model.torchserve is None or model.torchserve.mar is None:
        return None
    features = mar.unsupported_features(mar.read(model.torchserve.mar))
    return features[0] if features else None


def choose(model: ModelSpec, servers: str, console: Console) -> list[str]:
    """The servers to run, in ORDER: all the model allows (auto), or those named."""
    can = allowed(model)
    refusal = _host_refusal(model)
    if servers.strip() == "auto":
        if refusal and "triton-mar" in can:
            console.warn(f"triton-mar left out: Triton's host of TorchServe archives does not "
                         f"support {refusal} (docs/torchserve-on-triton.md)")
            can.remove("triton-mar")
        return can
    named = [s.strip() for s in servers.split(",") if s.strip()]
    for server in named:
        if server not in SERVERS:
            raise UsageError(f"--servers: unknown server {server!r}",
                             f"name some of {', '.join(ORDER)}, comma-separated, or auto")
        if server not in can:
            has = "Triton repository (triton: or --model-repository)" if server == "triton" \
                else "TorchServe archive (torchserve:, --mar or --handler)"
            raise UsageError(f"--servers {server}: model {model.name!r} ({model.origin}) "
                             f"has no {has}",
                             f"the servers this model allows: {', '.join(can)}; or leave "
                             "--servers at auto")
        if server == "triton-mar" and refusal:
            raise UsageError(f"--servers triton-mar: Triton's host of TorchServe archives "
                             f"does not support {refusal}",
                             "see docs/torchserve-on-triton.md; compare torchserve alone")
    if not named:
        raise UsageError("--servers: give at least one server, or auto")
    return [s for s in ORDER if s in named]


def _served(model: ModelSpec, server: str) -> ModelSpec:
    if server == "triton-mar":
        return model.replace(triton=None)  # the Triton flavor hosts the .mar then
    if server == "triton":
        return model.replace(torchserve=None)
    return model


def default_reference(spec: config.ImageSpec, model: ModelSpec, server: str) -> str:
    tag = builder.image_references(spec, None)[0]
    suffix = f"-{model.name}" + ("-mar" if server == "triton-mar" else "")
    repository, _, name = tag.rpartition(":")
    return f"{repository}:{(name + suffix)[:128]}"


def plan(model: ModelSpec, chosen: list[str], options: CompareOptions) -> list[Planned]:
    variant = options.variant or ("gpu" if options.gpu else "cpu")
    specs = config.load(options.config)
    out = []
    for server in chosen:
        flavor = FLAVOR[server]
        spec = config.select(specs, flavor, variant,
                             options.triton_runtime if flavor == "triton" else None)
        served = _served(model, server)
        reference = options.image_for(server) or default_reference(spec, served, server)
        out.append(Planned(server, spec, served, reference))
    return out


def _check_existing(planned: Planned) -> None:
    try:
        image = launcher.client().images.get(planned.reference)
    except ImageNotFound:
        raise UsageError(f"--no-build: no image {planned.reference} here",
                         f"build it (drop --no-build) or name one with "
                         f"--{planned.server}-image") from None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    name, kind = labels.get("dev.byoc.model-name"), labels.get("dev.byoc.model-kind")
    if name != planned.model.name or kind != KIND[planned.server]:
        raise UsageError(f"{planned.reference} serves model {name!r} as {kind!r}, not "
                         f"{planned.model.name!r} as {KIND[planned.server]!r} "
                         f"({planned.server})",
                         "give the model options that image was built from, or drop "
                         "--no-build to build this model's image")


def images(planned: list[Planned], options: CompareOptions, console: Console) -> dict:
    """server -> image reference, every image there before anything is measured."""
    chosen = {}
    for p in planned:
        if options.no_build:
            _check_existing(p)
        else:
            build_options = builder.BuildOptions(tag=p.reference, ca_cert=options.ca_cert,
                                                 wheelhouse=options.wheelhouse)
            console.step(f"compare: build the {p.server} image of {p.model.name}")
            builder.tag(builder.build(p.spec, p.model, build_options, console), console)
        chosen[p.server] = p.reference
    return chosen
