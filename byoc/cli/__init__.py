"""Command line: `python build.py {torchserve,triton} [--test] [--push] ...` and friends.

main(argv) parses (parser.py), turns the arguments into each stage's options
(options.py) and runs the stages in order: render -> build -> compatibility gate ->
verify -> tag -> push. Errors reach the user here, once: one ERROR line, one TIP, and
the exit status of errors.ExitStatus."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import builder, compat, push, verify
from ..console import Console
from ..deploy.limits import check_local_image_size
from ..errors import ByocError, ExitStatus, UsageError
from . import options as opt
from .deploy_parser import deploy_command, undeploy_command
from .parser import make_parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return make_parser().parse_args(list(argv))


def build_command(args: argparse.Namespace, console: Console) -> int:
    # render (refusals) -> build -> gate -> verify -> tag -> push; each can stop the next,
    # and nothing is tagged, let alone pushed, before the checks asked for have passed.
    spec = opt.image_spec(args)
    model = opt.model(args, spec)
    spec = opt.for_model(spec, model)
    built = builder.build(spec, model, opt.build_options(args), console)
    check_local_image_size(built.image_id)  # C28: SageMaker refuses images over 10 GiB
    compat.gate_built(built.image_id, spec, opt.gate_options(args), console)
    if args.push and args.skip_verify:
        console.warn("--skip-verify: pushing an image that was NOT checked against the "
                     "SageMaker contract")
    elif args.test or args.push:
        verify.verify(built.image_id, opt.verify_options(args), console, model=model,
                      shown=built.reference)
    reference = builder.tag(built, console)
    if args.push:
        # stdout carries one line, the result: here the URI with its digest, for CI.
        print(push.publish(reference, spec, opt.push_options(args), console).uri)
    else:
        print(reference)
    return ExitStatus.OK


def render_command(args: argparse.Namespace, console: Console) -> int:
    from ..build_inputs import find_ca_cert, find_wheelhouse
    from ..render import render_context

    find_ca_cert(args.ca_cert)  # the same mistake gets the same answer as in a build
    spec = opt.image_spec(args)
    out = Path(args.out or builder.DEFAULT_WORK_DIR / spec.name)
    # The wheelhouse changes the rendered torch line, so render sees it as build does.
    rendered = render_context(spec, opt.model(args, spec), out, find_wheelhouse(args.wheelhouse))
    console.ok(f"rendered {spec.name}: {rendered.dockerfile}")
    return ExitStatus.OK


def _image_spec_from_labels(args: argparse.Namespace, image: str):
    labels = (verify.image_attrs(image).get("Config") or {}).get("Labels") or {}
    flavor = getattr(args, "flavor", None) or labels.get("dev.byoc.flavor")
    variant = getattr(args, "variant", None) or labels.get("dev.byoc.variant")
    if not flavor or not variant:
        raise ByocError(f"{image} has no dev.byoc.flavor / dev.byoc.variant labels",
                        "name the images-config entry: --flavor torchserve --variant cpu")
    return opt.image_spec(args, flavor, variant, labels.get("dev.byoc.runtime")), labels


def verify_command(args: argparse.Namespace, console: Console) -> int:
    spec, labels = _image_spec_from_labels(args, args.image)
    model = opt.model_if_given(args, Path(args.config).parent,
                               labels.get("dev.byoc.model-name") or "model")

    def package(flavor: str, out: Path) -> Path:  # for an image built with --no-model
        return builder.package_model(spec, model, out, builder.BuildOptions(), console)

    verify.verify(args.image, opt.verify_options(args), console, model=model,
                  package=package if model is not None and model.sources() else None)
    return ExitStatus.OK


def package_model_command(args: argparse.Namespace, console: Console) -> int:
    spec = opt.image_spec(args)
    builder.package_model(spec, opt.model(args, spec), Path(args.out),
                          opt.build_options(args), console)
    return ExitStatus.OK


def push_command(args: argparse.Namespace, console: Console) -> int:
    spec, _ = _image_spec_from_labels(args, args.image)
    # the same order as a build with --push: size, compatibility gate -> verify -> push
    check_local_image_size(args.image)
    compat.gate_built(args.image, spec, opt.gate_options(args), console)
    if args.skip_verify:
        console.warn("--skip-verify: pushing an image that was NOT checked against the "
                     "SageMaker contract")
    else:
        verify.verify(args.image, opt.verify_options(args), console)
    print(push.publish(args.image, spec, opt.push_options(args), console).uri)
    return ExitStatus.OK


def check_command(args: argparse.Namespace, console: Console) -> int:
    return compat.check_command(args.image, args.instances, args.ami_version, console)


def compare_command(args: argparse.Namespace, console: Console) -> int:
    from .. import compare

    return compare.run(opt.compare_options(args), console)


COMMANDS = {"build": build_command, "render": render_command, "verify": verify_command,
            "package-model": package_model_command, "push": push_command,
            "check": check_command, "compare": compare_command,
            "deploy": deploy_command, "undeploy": undeploy_command}


def run(args: argparse.Namespace, console: Console) -> int:
    if args.command not in COMMANDS:
        raise UsageError(f"unknown command {args.command}")
    return int(COMMANDS[args.command](args, console))


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    try:
        return run(parse(sys.argv[1:] if argv is None else argv), console)
    except ByocError as exc:
        console.error(exc.message, exc.tip)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
