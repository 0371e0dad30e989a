"""Every command and option of `python build.py`: the only argparse in byoc.

The parsed namespace never leaves byoc/cli: options.py turns it into the frozen option
objects each stage takes."""

from __future__ import annotations

import argparse

from .. import config
from ..errors import UsageError
from .deploy_parser import add_deploy_commands

DEFAULT_STARTUP_BUDGET_S = 240  # SageMaker's historic health-check budget (C05)
DEFAULT_PUSH_TIMEOUT_S = 3600


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, then exit 2 (not argparse's usage dump)
        raise UsageError(message, f"see `python build.py {self.prog.split()[-1]} --help`"
                         if " " in self.prog else "see `python build.py --help`")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,8,32") from None
    if not values or any(v < 1 or v > 1024 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each concurrency must be 1..1024")
    return sorted(set(values))


def image_options(p: argparse.ArgumentParser, default_variant: str = "gpu") -> None:
    p.add_argument("--variant", choices=config.VARIANTS, default=default_variant,
                   help=f"cpu or gpu image (default {default_variant})")
    p.add_argument("--runtime", help="where the server comes from (triton: pytriton or ngc)")
    p.add_argument("--base-image", help="override the config's base image")
    p.add_argument("--no-model", action="store_true",
                   help="bake no model: the image serves what SageMaker extracts into "
                        "/opt/ml/model (its requirements are still installed)")
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG), help="images config file")
    p.add_argument("--ca-cert", help="CA bundle for pip in the build (a BuildKit secret)")
    p.add_argument("--wheelhouse", help="folder of wheels bind-mounted into the build")


def model_options(p: argparse.ArgumentParser) -> None:
    """The model, described on the command line or named (docs/models.md)."""
    g = p.add_argument_group("model (default: the image entry's model: in the images config)")
    g.add_argument("--model", metavar="NAME|FILE.yaml",
                   help="a described model: images/models/NAME.yaml, or a description file")
    g.add_argument("--mar", metavar="FILE", help="a TorchServe model archive, served as it is")
    g.add_argument("--handler", metavar="H",
                   help="torch-model-archiver inputs: a handler file (file.py or "
                        "file.py:function) or a stock handler name such as image_classifier")
    g.add_argument("--serialized-file", metavar="F")
    g.add_argument("--model-file", metavar="M")
    g.add_argument("--extra-files", metavar="A,B")
    g.add_argument("--config-file", metavar="Y", help="the archive's model-config.yaml")
    g.add_argument("--model-name", metavar="N")
    g.add_argument("--model-version", metavar="V")
    g.add_argument("--model-repository", metavar="DIR", help="a Triton model repository")
    g.add_argument("--default-model", metavar="NAME",
                   help="the repository's model that /invocations runs")
    g.add_argument("--requirements", metavar="FILE",
                   help="pip requirements installed into the image at build time")
    g.add_argument("--samples", metavar="DIR",
                   help="request bodies (and expected answers) for verify, compare, deploy")
    g.add_argument("--content-types", metavar="A,B",
                   help="request types the front accepts (default: whatever the server "
                        "takes; others get 415 naming these)")


def gate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ami-version", metavar="VERSION",
                   help="the endpoint's InferenceAmiVersion, e.g. "
                        "al2-ami-sagemaker-inference-gpu-3-1 (default: the instance's "
                        "default driver)")
    p.add_argument("--allow-incompatible", action="store_true",
                   help="go on when the compatibility gate says the image will not start "
                        "on a target instance (loud; never the default)")


def verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="store_true", help="verify with all GPUs attached")
    p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_BUDGET_S,
                   metavar="S", help="budget for /ping 200 after docker run (C05)")


def push_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `--push` on build commands and the `push` command."""
    g = p.add_argument_group("push (see docs/push.md)")
    g.add_argument("--registry", metavar="HOST[:PORT][/NAMESPACE]",
                   help="push to this OCI registry instead of ECR (credentials from "
                        "BYOC_REGISTRY_USERNAME/PASSWORD or the docker config)")
    g.add_argument("--repository", help="repository name (default from the images config)")
    g.add_argument("--region", help="ECR region (default push.region, AWS_REGION, "
                                    "AWS_DEFAULT_REGION or the profile's)")
    g.add_argument("--profile", help="AWS profile (default AWS_PROFILE or the default)")
    g.add_argument("--no-create-repository", action="store_true",
                   help="fail if the ECR repository is missing instead of creating it")
    g.add_argument("--content-tag", metavar="TAG",
                   help="the immutable tag (default from push.content_tag)")
    g.add_argument("--moving-tag", metavar="TAG", action="append",
                   help="a moving tag, instead of push.moving_tags (repeatable)")
    g.add_argument("--no-moving-tags", action="store_true", help="push the content tag only")
    g.add_argument("--push-timeout", type=float, default=DEFAULT_PUSH_TIMEOUT_S,
                   metavar="SECONDS", help=f"give up on a push after this long "
                                           f"(default {DEFAULT_PUSH_TIMEOUT_S})")
    g.add_argument("--record", metavar="FILE",
                   help="where to write the pushed URI and digest as JSON "
                        "(default build/pushed/NAME.json)")


def _build_command(sub, flavor: str) -> None:
    p = sub.add_parser(flavor, help=f"build the {flavor} image of a model")
    image_options(p)
    model_options(p)
    p.add_argument("--tag", help="image reference NAME:TAG (default from the config)")
    p.add_argument("--test", action="store_true", help="verify the image after building")
    p.add_argument("--no-cache", action="store_true",
                   help="rebuild every layer (pip and apt caches stay warm)")
    verify_options(p)
    p.add_argument("--push", action="store_true",
                   help="after a passing verify, push the image (see `push --help`)")
    p.add_argument("--skip-verify", action="store_true",
                   help="push without verifying first (loud; never the default)")
    gate_options(p)
    push_options(p)
    p.set_defaults(command="build", flavor=flavor)


def _compare_command(sub) -> None:
    p = sub.add_parser(
        "compare", help="build both images of the same model and measure them side by side",
        description="Build (or reuse) the TorchServe and Triton images of one model, run "
                    "each as SageMaker does, and measure size, cold start, latency, "
                    "throughput and resources under the same closed-loop load, with the "
                    "model's samples as request bodies. See docs/compare.md.")
    model_options(p)
    p.add_argument("--servers", default="auto", metavar="LIST",
                   help="torchserve, triton (the Triton repository), triton-mar (the .mar "
                        "hosted by Triton), comma-separated; auto: all the model allows")
    p.add_argument("--body", default="mix", metavar="KIND",
                   help="which samples to send: mix (all, default) or those of one kind, by "
                        "file extension (json, npy, png, jpeg, txt ...)")
    p.add_argument("--concurrency", type=_int_list, default=[1, 8, 32], metavar="N,N,...",
                   help="concurrent closed-loop clients, one load step each (default 1,8,32)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S",
                   help="seconds per load step, at most (default 10)")
    p.add_argument("--max-requests", type=int, default=20000, metavar="N",
                   help="requests per load step, at most (default 20000)")
    p.add_argument("--warmup", type=int, default=100, metavar="N",
                   help="requests sent before each step and not counted (default 100)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="per-request timeout; a timeout counts as an error (default 30)")
    p.add_argument("--gpu", action="store_true",
                   help="gpu variants, run with all GPUs; adds GPU memory and utilisation")
    p.add_argument("--variant", choices=config.VARIANTS,
                   help="image variant (default cpu, gpu with --gpu)")
    p.add_argument("--triton-runtime", choices=config.RUNTIMES["triton"],
                   help="where Triton comes from (default pytriton)")
    p.add_argument("--no-build", action="store_true",
                   help="use existing images instead of building")
    p.add_argument("--torchserve-image", metavar="REF", help="TorchServe image to use or build")
    p.add_argument("--triton-image", metavar="REF", help="likewise for Triton")
    p.add_argument("--triton-mar-image", metavar="REF", help="likewise for the hosted .mar")
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG),
                   help="images config: its server: blocks set workers, batching and "
                        "instance counts, so tuned configurations can be compared")
    p.add_argument("--ca-cert", help="CA bundle for pip in the build (a BuildKit secret)")
    p.add_argument("--wheelhouse", help="folder of wheels bind-mounted into the build")
    p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_BUDGET_S,
                   metavar="S", help="budget for the first correct answer after docker run")
    p.add_argument("--out", default="build/compare", metavar="DIR",
                   help="where compare.md, compare.json and compare.png go")
    p.set_defaults(command="compare")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="build.py", description="byoc: build SageMaker-ready TorchServe and "
                     "Triton images of your model, prove them, push them. See README.md.")
    sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    for flavor in config.FLAVORS:
        _build_command(sub, flavor)

    p = sub.add_parser("render", help="write the Dockerfile and build context, build nothing")
    p.add_argument("flavor", choices=config.FLAVORS)
    image_options(p)
    model_options(p)
    p.add_argument("--out", help="output folder (default build/FLAVOR-VARIANT)")
    p.set_defaults(command="render")

    p = sub.add_parser("verify", help="run an image as SageMaker does and check the contract")
    p.add_argument("image")
    p.add_argument("--model-tar", help="model.tar.gz to extract read-only into /opt/ml/model "
                                       "(default: the image's baked model, packaged)")
    model_options(p)
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG), help="images config file")
    verify_options(p)
    p.set_defaults(command="verify")

    p = sub.add_parser("package-model", help="write the SageMaker model.tar.gz of a model")
    p.add_argument("flavor", choices=config.FLAVORS)
    image_options(p, default_variant="cpu")
    model_options(p)
    p.add_argument("--out", default="model.tar.gz")
    p.set_defaults(command="package-model")

    p = sub.add_parser("push", help="gate, verify, then push an image already built")
    p.add_argument("image", help="local image reference, e.g. byoc-torchserve:0.1.0-cpu")
    p.add_argument("--flavor", choices=config.FLAVORS,
                   help="images-config entry to use (default: the image's dev.byoc.flavor label)")
    p.add_argument("--variant", choices=config.VARIANTS,
                   help="default: the image's dev.byoc.variant label")
    p.add_argument("--config", default=str(config.DEFAULT_CONFIG), help="images config file")
    p.add_argument("--skip-verify", action="store_true",
                   help="push without verifying first (loud; never the default)")
    verify_options(p)
    gate_options(p)
    push_options(p)
    p.set_defaults(command="push")

    p = sub.add_parser("check", help="will an image start on a SageMaker instance? "
                                     "(its CUDA against the instance's driver)")
    p.add_argument("image")
    p.add_argument("--instance", action="append", dest="instances", metavar="TYPE",
                   help="instance type such as ml.g5.xlarge; repeatable (default: the image's "
                        "dev.byoc.instance-types label)")
    p.add_argument("--ami-version", metavar="VERSION",
                   help="the endpoint's InferenceAmiVersion (default: the instance's default)")
    p.set_defaults(command="check")

    _compare_command(sub)
    add_deploy_commands(sub)
    return parser
