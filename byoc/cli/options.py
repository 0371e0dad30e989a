"""Parsed arguments -> the frozen option objects each stage takes (and the image entry
and model the command works on). Nothing below byoc/cli sees an argparse namespace."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .. import config
from ..builder import BuildOptions
from ..compat import GateOptions
from ..model import describe
from ..model.spec import ModelSpec
from ..push import PushOptions
from ..verify import VerifyOptions


def image_spec(args: argparse.Namespace, flavor: str | None = None,
               variant: str | None = None, runtime: str | None = None) -> config.ImageSpec:
    spec = config.select(config.load(Path(args.config)), flavor or args.flavor,
                         variant or args.variant, runtime or getattr(args, "runtime", None))
    if getattr(args, "base_image", None):
        spec = spec.replace(base_image=config.validate_base_image("--base-image",
                                                                  args.base_image))
    if getattr(args, "no_model", False):
        spec = spec.replace(bake_model=False)
    return spec


def model_options(args: argparse.Namespace) -> describe.ModelOptions:
    return describe.ModelOptions(
        model=args.model, mar=args.mar, handler=args.handler,
        serialized_file=args.serialized_file, model_file=args.model_file,
        extra_files=args.extra_files, config_file=args.config_file, model_name=args.model_name,
        model_version=args.model_version, model_repository=args.model_repository,
        default_model=args.default_model, requirements=args.requirements, samples=args.samples,
        content_types=args.content_types)


def model(args: argparse.Namespace, spec: config.ImageSpec) -> ModelSpec:
    """The model the command works on: its model options, else the image entry's model."""
    return describe.from_options(model_options(args), Path(args.config).parent, spec.model)


def for_model(spec: config.ImageSpec, model: ModelSpec) -> config.ImageSpec:
    """A model other than the entry's own gets its own repository (so its local tags, ECR
    repository and push record never move the entry's model's tags)."""
    if spec.model is None or model.name == spec.model:
        return spec
    slug = re.sub(r"[^a-z0-9]+", "-", model.name.lower()).strip("-") or "model"
    return spec.replace(repository=f"{spec.repository}-{slug}", model=model.name)


def model_if_given(args: argparse.Namespace, config_dir: Path,
                   name: str) -> ModelSpec | None:
    """verify and push: a model only when the command line names or describes one; only
    --samples gives a model of samples alone."""
    o = model_options(args)
    if o.inline() or o.model:
        return describe.from_options(o, config_dir, None)
    if o.samples:
        return ModelSpec(name=name, origin="command line",
                         samples=Path(o.samples).resolve())
    return None


def build_options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(tag=getattr(args, "tag", None), ca_cert=args.ca_cert,
                        wheelhouse=args.wheelhouse, no_cache=getattr(args, "no_cache", False))


def gate_options(args: argparse.Namespace) -> GateOptions:
    return GateOptions(ami_version=args.ami_version, allow_incompatible=args.allow_incompatible)


def verify_options(args: argparse.Namespace) -> VerifyOptions:
    model_tar = getattr(args, "model_tar", None)
    return VerifyOptions(gpu=args.gpu, startup_budget_s=args.startup_timeout,
                         model_tar=Path(model_tar) if model_tar else None)


def push_options(args: argparse.Namespace) -> PushOptions:
    moving = () if args.no_moving_tags else (tuple(args.moving_tag) if args.moving_tag
                                             else None)
    return PushOptions(registry=args.registry, repository=args.repository, region=args.region,
                       profile=args.profile, create_repository=not args.no_create_repository,
                       content_tag=args.content_tag, moving_tags=moving,
                       push_timeout_s=args.push_timeout,
                       record=Path(args.record) if args.record else None)


def compare_options(args: argparse.Namespace):
    from ..compare.options import CompareOptions

    images = tuple((server, ref) for server, ref in (
        ("torchserve", args.torchserve_image), ("triton", args.triton_image),
        ("triton-mar", args.triton_mar_image)) if ref)
    return CompareOptions(
        model=model_options(args), config=Path(args.config), servers=args.servers,
        body=args.body, concurrency=tuple(args.concurrency), duration_s=args.duration,
        max_requests=args.max_requests, warmup=args.warmup, timeout_s=args.timeout,
        gpu=args.gpu, variant=args.variant, triton_runtime=args.triton_runtime,
        no_build=args.no_build, images=images, ca_cert=args.ca_cert, wheelhouse=args.wheelhouse,
        startup_timeout_s=args.startup_timeout, out=Path(args.out))
