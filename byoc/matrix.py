"""The CI's view of the images config: what .github/workflows read, so that no list of images,
label or size lives only in YAML. Needs no Docker.

    python -m byoc.matrix [--flavor F] [--variant V]   {"include": [{name, flavor, ...}]}
    python -m byoc.matrix labels                       the build-time OCI labels, KEY=VALUE lines
    python -m byoc.matrix disk NAME [--path P]         exit 1 unless P has the free disk NAME needs
    python -m byoc.matrix summary RECORD...            Markdown table of pushed URIs with digests

The matrix comes from images/images.yaml (one entry per image: flavor x variant [x runtime]);
GitHub reads it with fromJSON. `labels` gives docker/build-push-action the same labels
`build.py` adds (revision, created, version: push names the content tag from them).
`summary` reads the records `build.py push --record FILE` writes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from . import builder, config, gitinfo
from .console import Console
from .errors import ByocError, ExitStatus, UsageError

# Free disk a build needs on the machine that builds it, in GB (1e9 bytes). Measured: a cpu
# image is 1.3-1.5 GB uncompressed; a gpu image 5.9 GB, 5.7 GB of it the CUDA torch layer.
# With BuildKit's docker-container driver (GitHub's cache) the layers exist twice, in the
# builder and in the engine after --load, next to pip's cache mount (~3 GB of CUDA wheels for
# gpu) and the compressed layers of a cache export or push (~3 GB): ~20 GB at the peak for a
# gpu image, so 25 GB leaves headroom.
DISK_GB = {"cpu": 10, "gpu": 25}
# Bases far larger than Debian's slim one count twice as well (builder and engine), in GB
# uncompressed. NGC's tritonserver:24.10-py3: about 16 GB, an estimate, not measured here
# (nvcr.io is unreachable from the build machines); correct it from `docker image ls`.
LARGE_BASES = {"nvcr.io/nvidia/tritonserver": 16}
# The least free disk a GitHub-hosted runner starts with; an image that needs more frees disk
# first (images.yml deletes runner tool caches a container build never uses, ~20-30 GB).
HOSTED_RUNNER_FREE_GB = 14


def disk_gb(spec: config.ImageSpec) -> int:
    need = DISK_GB[spec.variant]
    for prefix, size in LARGE_BASES.items():
        if spec.base_image.startswith(prefix + ":"):
            need += 2 * size
    return need


def entry(spec: config.ImageSpec) -> dict[str, object]:
    """One matrix entry: everything a workflow job needs to build, verify and push one image."""
    return {
        "name": spec.name,
        "flavor": spec.flavor,
        "variant": spec.variant,
        "runtime": spec.runtime,
        "image": builder.image_references(spec, None)[0],
        "repository": spec.repository,
        "gpu": spec.variant == "gpu",
        "disk_gb": disk_gb(spec),
        "free_disk": disk_gb(spec) > HOSTED_RUNNER_FREE_GB,
    }


def matrix(specs: dict[str, config.ImageSpec], *, flavor: str | None = None,
           variant: str | None = None) -> dict[str, list[dict[str, object]]]:
    chosen = [s for _, s in sorted(specs.items())
              if (flavor is None or s.flavor == flavor)
              and (variant is None or s.variant == variant)]
    if not chosen:
        raise UsageError(f"no image in the config matches flavor={flavor or 'any'} "
                         f"variant={variant or 'any'}", "see images/images.yaml")
    return {"include": [entry(s) for s in chosen]}


def build_labels(revision: gitinfo.Revision | None = None) -> list[str]:
    """The labels `build.py FLAVOR` adds at build time, as build-push-action's labels input."""
    labels = builder.dynamic_labels(revision or gitinfo.current())
    return [f"{key}={value}" for key, value in sorted(labels.items())]


def check_disk(name: str, specs: dict[str, config.ImageSpec], path: Path) -> str:
    """A line saying there is enough free disk at path for NAME's build; raises otherwise."""
    if name not in specs:
        raise UsageError(f"no image {name} in the config (declared: {', '.join(sorted(specs))})",
                         "name one of the matrix's entries")
    need = disk_gb(specs[name])
    free = shutil.disk_usage(path).free / 1e9
    line = f"{free:.1f} GB free on {path}; building {name} needs {need} GB"
    if free < need:
        raise ByocError(line, "free disk first (docker system prune, or on a GitHub-hosted "
                        "runner the 'free disk' step of images.yml); see docs/github-actions.md")
    return line


def summary(records: Sequence[Path]) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: one row per pushed image."""
    rows = ["| image | URI (for CreateModel) | tags | manifest |",
            "| --- | --- | --- | --- |"]
    for path in records:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ByocError(f"cannot read the push record {path}: {exc}",
                            "it is written by `build.py push --record FILE`") from None
        missing = [k for k in ("uri", "digest", "tags", "media_type") if k not in data]
        if missing:
            raise ByocError(f"push record {path} lacks {', '.join(missing)}")
        tags = ", ".join(f"`{t}`" for t in data["tags"])
        rows.append(f"| {Path(path).stem} | `{data['uri']}` | {tags} | {data['media_type']} |")
    if len(rows) == 2:
        raise UsageError("no push records given", "pass the files `build.py push` wrote")
    return "### Pushed images\n\n" + "\n".join(rows) + "\n"


def _docker_root() -> Path:
    for candidate in (os.environ.get("BYOC_DOCKER_ROOT"), "/var/lib/docker"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return Path("/")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m byoc.matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(config.DEFAULT_CONFIG), help="images config")
    parser.add_argument("--flavor", choices=config.FLAVORS, help="only this flavor")
    parser.add_argument("--variant", choices=config.VARIANTS, help="only this variant")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("labels", help="build-time OCI labels as KEY=VALUE lines")
    p = sub.add_parser("disk", help="fail unless there is the free disk an image's build needs")
    p.add_argument("name", help="a matrix entry's name, e.g. torchserve-gpu")
    p.add_argument("--path", help="where the build writes (default: Docker's data root)")
    p = sub.add_parser("summary", help="Markdown table of push records")
    p.add_argument("records", nargs="*", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    args = make_parser().parse_args(argv)
    try:
        if args.command == "labels":
            print("\n".join(build_labels()))
        elif args.command == "summary":
            print(summary(args.records), end="")
        else:
            specs = config.load(Path(args.config))
            if args.command == "disk":
                console.ok(check_disk(args.name, specs, Path(args.path) if args.path
                                      else _docker_root()))
            else:
                print(json.dumps(matrix(specs, flavor=args.flavor, variant=args.variant),
                                 separators=(",", ":")))
    except ByocError as exc:
        console.error(exc.message, exc.tip)
        return int(exc.exit_status)
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
