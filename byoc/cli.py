"""Command line: `python build.py {torchserve,triton} [--test] ...` and friends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import builder, compare, compat, config, launcher, push
from .console import Console
from .errors import ByocError, ExitStatus, UsageError
from .render import render_context


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, then exit 2 (not argparse's usage dump)
        raise UsageError(message, f"see `python build.py {self.prog.split()[-1]} --help`"
                         if " " in self.prog else "see `python build.py --help`")


def _image_options(p: argparse.ArgumentParser, default_variant: str = "gpu") -> None:
    p.add_argument("--variant", choices=config.VARIANTS, default=default_variant,
                   help=f"cpu or gpu image (default {default_variant})")
    p.add_argument("--runtime", help="where the server comes from (triton: pytriton or ngc)")
    p.add_argument("--base-image", help="override the config's base image")
    p.add_argument("--no-model", action="store_true",
                   help="do not bake the example model; serve /opt/ml/model instead")
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG), help="images config file")
    p.add_argument("--ca-cert", help="CA bundle for pip in the build (a BuildKit secret)")
    p.add_argument("--wheelhouse", help="folder of wheels bind-mounted into the build")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="build.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for flavor in config.FLAVORS:
        p = sub.add_parser(flavor, help=f"build the {flavor} image")
        _image_options(p)
        p.add_argument("--tag", help="image reference NAME:TAG (default from the config)")
        p.add_argument("--test", action="store_true", help="verify the image after building")
        p.add_argument("--no-cache", action="store_true",
                       help="rebuild every layer (pip and apt caches stay warm)")
        p.add_argument("--gpu", action="store_true", help="verify with all GPUs attached")
        p.add_argument("--startup-timeout", type=float,
                       default=launcher.DEFAULT_STARTUP_BUDGET_S)
        p.add_argument("--push", action="store_true",
                       help="after a passing verify, push the image (see `push --help`)")
        p.add_argument("--skip-verify", action="store_true",
                       help="push without verifying first (loud; never the default)")
        compat.add_gate_options(p)
        push.add_push_options(p)
        p.set_defaults(flavor=flavor)
    p = sub.add_parser("render", help="write the Dockerfile and build context, build nothing")
    p.add_argument("flavor", choices=config.FLAVORS)
    _image_options(p)
    p.add_argument("--out", help="output folder (default build/FLAVOR-VARIANT)")
    p = sub.add_parser("verify", help="run an image as SageMaker does and check the contract")
    p.add_argument("image")
    p.add_argument("--model-tar", help="model.tar.gz to extract read-only into /opt/ml/model")
    p.add_argument("--gpu", action="store_true", help="attach all GPUs")
    p.add_argument("--startup-timeout", type=float, default=launcher.DEFAULT_STARTUP_BUDGET_S)
    push.register(sub)
    compat.register(sub)
    compare.register(sub)
    p = sub.add_parser("package-model", help="write the SageMaker model.tar.gz for a flavor")
    p.add_argument("flavor", choices=config.FLAVORS)
    _image_options(p, default_variant="cpu")
    p.add_argument("--out", default="model.tar.gz")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return make_parser().parse_args(list(argv))


def _spec(args: argparse.Namespace) -> config.ImageSpec:
    spec = config.select(config.load(Path(args.config)), args.flavor, args.variant,
                         args.runtime)
    if args.base_image:
        spec = spec.replace(base_image=config.validate_base_image("--base-image",
                                                                  args.base_image))
    if args.no_model:
        spec = spec.replace(bake_model=False)
    return spec


def _options(args: argparse.Namespace) -> builder.BuildOptions:
    return builder.BuildOptions(tag=getattr(args, "tag", None), ca_cert=args.ca_cert,
                                wheelhouse=args.wheelhouse,
                                no_cache=getattr(args, "no_cache", False))


def run(args: argparse.Namespace, console: Console) -> int:
    from . import verify

    if args.command in config.FLAVORS:
        # build -> compatibility gate -> verify -> push; each step can stop the next.
        spec = _spec(args)
        built = builder.build(spec, _options(args), console)
        compat.gate_built(args, built, spec, console)
        if args.push and args.skip_verify:
            console.warn("--skip-verify: pushing an image that was NOT checked against the "
                         "SageMaker contract")
        elif args.test or args.push:
            verify.verify(built.reference, gpu=args.gpu, startup_budget_s=args.startup_timeout,
                          console=console)
        if args.push:
            # stdout carries one line, the result: here the URI with its digest, for CI.
            print(push.push_built(args, built, spec, console).uri)
        else:
            print(built.reference)
        return ExitStatus.OK
    if args.command in COMMANDS:
        return int(COMMANDS[args.command](args, console))
    if args.command == "render":
        spec = _spec(args)
        out = Path(args.out or builder.DEFAULT_WORK_DIR / spec.name)
        from .build_inputs import find_wheelhouse

        # The wheelhouse changes the rendered torch line, so render sees it as build does.
        rendered = render_context(spec, out, find_wheelhouse(args.wheelhouse))
        console.ok(f"rendered {spec.name}: {rendered.dockerfile}")
        return ExitStatus.OK
    if args.command == "verify":
        model_tar = Path(args.model_tar) if args.model_tar else None
        if model_tar and not model_tar.is_file():
            raise UsageError(f"--model-tar {model_tar}: no such file",
                             "make one with `python build.py package-model FLAVOR`")
        verify.verify(args.image, model_tar=model_tar, gpu=args.gpu,
                      startup_budget_s=args.startup_timeout, console=console)
        return ExitStatus.OK
    if args.command == "package-model":
        builder.package_model(_spec(args), Path(args.out), _options(args), console)
        return ExitStatus.OK
    raise UsageError(f"unknown command {args.command}")


# Subcommands that live in their own modules: name -> run(args, console).
COMMANDS = {"push": push.run_push_command, "check": compat.run_check_command,
            "compare": compare.run_compare_command}


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    try:
        return int(run(parse(sys.argv[1:] if argv is None else argv), console))
    except ByocError as exc:
        console.error(exc.message, exc.tip)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
