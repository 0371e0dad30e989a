"""The docker CLI, for BuildKit builds (the Python SDK cannot drive BuildKit).

Detection: BYOC_DOCKER names the binary; otherwise the first docker on PATH,
then /usr/bin/docker. A client with the buildx plugin builds with
`buildx build --load`; an older classic client (before 23) builds with
DOCKER_BUILDKIT=1. A new client without buildx cannot use BuildKit, so it is
skipped for the next candidate."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError, DockerError
from .process import probe, run

# Daemon messages we can explain (the rest are shown as they are).
HINTS = (
    ("Cannot connect to the Docker daemon", "start Docker: `make setup` starts it on Debian"),
    ("BuildKit is enabled but the buildx component is missing",
     "install docker-buildx, or set BYOC_DOCKER=/usr/bin/docker (a classic client)"),
    ("pull access denied", "the base image is missing locally and cannot be pulled: "
     "`make setup` bootstraps it offline"),
    ("no space left on device", "free disk: `docker builder prune` and `docker image prune`"),
    ("CERTIFICATE_VERIFY_FAILED", "pass your CA bundle: --ca-cert PATH or BYOC_CA_CERT"),
)


def in_build_error(lines: Sequence[str]) -> tuple[str, str | None] | None:
    """The message of a byoc check inside the build: BYOC-ERROR and BYOC-TIP lines, as
    BuildKit's plain progress shows them ("#12 0.53 BYOC-ERROR ...")."""
    error = tip = None
    for line in lines:
        for marker in ("BYOC-ERROR ", "BYOC-TIP "):
            at = line.find(marker)
            # echo commands in the Dockerfile show the marker inside quotes; skip those
            if at >= 0 and '"' not in line[:at] and "'" not in line[:at]:
                text = line[at + len(marker):].strip()
                if marker == "BYOC-ERROR ":
                    error = text
                else:
                    tip = text
    return (error, tip) if error else None


def hint_for(output: str) -> str | None:
    lowered = output.lower()  # BuildKit says "cannot connect to the Docker daemon" too
    for needle, hint in HINTS:
        if needle.lower() in lowered:
            return hint
    return None


@dataclasses.dataclass(frozen=True)
class DockerCLI:
    binary: str
    buildx: bool

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if not self.buildx:
            env["DOCKER_BUILDKIT"] = "1"
        return env

    def build_argv(self, context: Path, *, tags: Sequence[str], target: str | None,
                   labels: dict[str, str], secrets: dict[str, Path],
                   progress: str, output: str | None = None,
                   no_cache: bool = False, iidfile: Path | None = None) -> list[str]:
        argv = [self.binary] + (["buildx", "build"] if self.buildx else ["build"])
        argv += ["--progress", progress]
        if target:
            argv += ["--target", target]
        if no_cache:
            argv.append("--no-cache")  # layers only: pip/apt cache mounts stay warm
        if self.buildx:
            # C19: attestations turn the manifest into an OCI index SageMaker rejects.
            argv += ["--provenance=false", "--sbom=false"]
            if output is None:
                argv += ["--load"]
        for tag in tags:
            argv += ["--tag", tag]
        if iidfile is not None:
            argv += ["--iidfile", str(iidfile)]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        for name, path in sorted(secrets.items()):
            argv += ["--secret", f"id={name},src={path}"]
        if output is not None:
            argv += ["--output", output]
        argv.append(str(context))
        return argv

    def build(self, context: Path, *, on_line: Callable[[str], None] | None = None,
              **kwargs) -> None:
        argv = self.build_argv(context, **kwargs)
        lines: list[str] = []

        def collect(line: str) -> None:
            lines.append(line)
            if on_line:
                on_line(line)

        proc = run(argv, env=self.env(), on_line=collect, check=False)
        if proc.returncode != 0:
            said = in_build_error(lines)
            if said:  # a check inside the build said what is wrong (BYOC-ERROR lines)
                raise ConfigError(*said)
            output = "\n".join(lines)
            tail = "\n".join(f"    {line}" for line in lines[-25:])
            raise DockerError(f"docker build failed (exit {proc.returncode})\n{tail}",
                              hint_for(output) or "the build output above shows the step")


def _client_version(binary: str) -> tuple[int, ...] | None:
    done = probe([binary, "version", "--format", "{{.Client.Version}}"])
    if done is None:
        return None
    out = done.stdout.strip()
    numbers = []
    for part in out.split("+")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) or None


def _has_buildx(binary: str) -> bool:
    done = probe([binary, "buildx", "version"])
    return done is not None and done.returncode == 0


@functools.lru_cache(maxsize=1)
def detect() -> DockerCLI:
    named = os.environ.get("BYOC_DOCKER")
    candidates = [named] if named else [shutil.which("docker"), "/usr/bin/docker"]
    tried = []
    for binary in dict.fromkeys(c for c in candidates if c):
        version = _client_version(binary)
        if version is None:
            tried.append(f"{binary} (not runnable)")
            continue
        if _has_buildx(binary):
            return DockerCLI(binary, buildx=True)
        if version < (23,):
            return DockerCLI(binary, buildx=False)
        tried.append(f"{binary} (client {'.'.join(map(str, version))} without buildx)")
    raise DockerError(
        "no docker client that can build with BuildKit: " + (", ".join(tried) or "none found"),
        "install docker-buildx, or point BYOC_DOCKER at a classic client such as "
        "/usr/bin/docker from Debian's docker.io")
