"""Start an image the way SageMaker does, and wait for it honestly.

`docker run IMAGE serve`, Docker's default 64 MB /dev/shm (SageMaker cannot raise
it), the model tarball extracted read-only into /opt/ml/model, SageMaker's
environment variables, the port published on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import dataclasses
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import requests
from docker.errors import DockerException, ImageNotFound

from .errors import ByocError, DockerError

DEFAULT_STARTUP_BUDGET_S = 240  # SageMaker's historic default health-check budget (C05)


def client() -> docker.DockerClient:
    try:
        dock = docker.from_env(timeout=120)
        dock.ping()
        return dock
    except DockerException as exc:
        raise DockerError(f"cannot reach the Docker engine: {exc}",
                          "start Docker (`make setup` does it on Debian)") from None


@dataclasses.dataclass
class Running:
    container: docker.models.containers.Container
    port: int
    started_at: float  # monotonic, just before `docker run`
    ready_after_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        try:
            return self.container.logs().decode(errors="replace")
        except DockerException:
            return ""

    def status(self) -> str:
        self.container.reload()
        return self.container.status

    def exit_code(self) -> int | None:
        self.container.reload()
        return self.container.attrs["State"]["ExitCode"] if self.container.status == "exited" \
            else None

    def wait_ready(self, budget_s: float = DEFAULT_STARTUP_BUDGET_S) -> float:
        """Poll /ping until 200, failing fast if the container dies. Returns seconds."""
        deadline = self.started_at + budget_s
        with requests.Session() as http:
            while time.monotonic() < deadline:
                if self.status() in ("exited", "dead"):
                    raise ByocError(
                        f"container exited with code {self.exit_code()} before it was ready; "
                        f"last log lines:\n{_tail(self.logs())}")
                try:
                    if http.get(f"{self.url}/ping", timeout=2).status_code == 200:
                        self.ready_after_s = time.monotonic() - self.started_at
                        return self.ready_after_s
                except requests.RequestException:
                    pass
                time.sleep(0.2)
        raise ByocError(f"container not ready within {budget_s:.0f} s; last log lines:\n"
                        f"{_tail(self.logs())}",
                        "raise the budget with --startup-timeout if the model is large")

    def stop(self, timeout_s: int = 30) -> tuple[int, float]:
        """SIGTERM, as SageMaker sends it; returns (exit code, seconds to exit)."""
        t0 = time.monotonic()
        with contextlib.suppress(DockerException):
            self.container.stop(timeout=timeout_s)
        self.container.reload()
        return self.container.attrs["State"]["ExitCode"], time.monotonic() - t0

    def remove(self) -> None:
        with contextlib.suppress(DockerException):
            self.container.remove(force=True)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


def extract_model(model_tar: Path, into: Path) -> Path:
    """Extract as SageMaker does, refusing paths that escape the folder."""
    target = into / "model"
    target.mkdir(parents=True)
    with tarfile.open(model_tar, "r:gz") as archive:
        archive.extractall(target, filter="data")
    target.chmod(0o755)
    return target


def run(image: str, *, model_dir: Path | None = None, env: dict[str, str] | None = None,
        gpu: bool = False, command: list[str] | None = None, publish: bool = True,
        network_mode: str | None = None, name_hint: str = "byoc-verify",
        volumes: dict | None = None) -> Running:
    dock = client()
    env = dict(env or {})
    port_in = int(env.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    kwargs = dict(
        command=command or ["serve"],
        environment=env,
        detach=True,
        labels={"dev.byoc.launched-by": name_hint},
        # Docker's default /dev/shm (64 MB): the size SageMaker gives, never raised.
    )
    if publish and network_mode is None:
        kwargs["ports"] = {f"{port_in}/tcp": ("127.0.0.1", None)}
    if network_mode:
        kwargs["network_mode"] = network_mode
    kwargs["volumes"] = dict(volumes or {})
    if model_dir is not None:
        kwargs["volumes"][str(model_dir)] = {"bind": "/opt/ml/model", "mode": "ro"}
    if gpu:
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1,
                                                                capabilities=[["gpu"]])]
    try:
        dock.images.get(image)
    except ImageNotFound:
        raise ByocError(f"image {image} not found locally",
                        "build it first: python build.py torchserve --variant cpu") from None
    kwargs.pop("detach")
    container = dock.containers.create(image, **kwargs)
    started = time.monotonic()
    try:
        container.start()
    except DockerException as exc:
        # A container that could not start is removed, not left behind as "Created".
        with contextlib.suppress(DockerException):
            container.remove(force=True)
        text = str(exc)
        if "could not select device driver" in text:
            raise DockerError(f"cannot start {image} with GPUs: this Docker host has no "
                              "NVIDIA container runtime",
                              "install the NVIDIA Container Toolkit, or verify without --gpu"
                              ) from None
        raise DockerError(f"docker run {image} failed: {text}") from None
    port = 0
    if publish and network_mode is None:
        container.reload()
        binding = container.attrs["NetworkSettings"]["Ports"].get(f"{port_in}/tcp") or []
        port = int(binding[0]["HostPort"]) if binding else 0
    return Running(container, port, started)


@contextlib.contextmanager
def launched(image: str, *, model_tar: Path | None = None, **kwargs) -> Iterator[Running]:
    """run() with the model tarball extracted for it, and everything removed after."""
    with tempfile.TemporaryDirectory(prefix="byoc-model-") as tmp:
        model_dir = extract_model(Path(model_tar), Path(tmp)) if model_tar else None
        running = run(image, model_dir=model_dir, **kwargs)
        try:
            yield running
        finally:
            running.remove()
