"""The Triton flavor, build side.

Its run-time twin is images/runtime/byoc_runtime/triton.py."""

from __future__ import annotations

from pathlib import Path

from ..config import ImageSpec

_REPO = Path(__file__).resolve().parents[2]
PYTRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"  # bundles Triton 2.51.0

# The example model's own types (decoded by the preprocess model) and Triton's native
# binary tensor format; application/json also carries KServe v2 requests.
ACCEPT_CONTENT_TYPES = ("image/png,image/jpeg,application/json,application/x-npy,"
                        "application/vnd.sagemaker-triton.binary+json")


class TritonFlavor:
    name = "triton"
    server_name = "Triton"
    multi_model = True  # SAGEMAKER_MULTI_MODEL=true serves Triton's multi-model API

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        # The pytriton wheel's backend stub links against the distribution's libpython.
        return (f"libpython{spec.python}",) if spec.runtime == "pytriton" else ()

    def context_files(self) -> dict[str, Path]:
        return {"requirements.txt": _REPO / "images" / "triton" / "requirements.txt",
                "triton_backends": _REPO / "triton_backends"}

    def template_vars(self, spec: ImageSpec) -> dict:
        return {"pytriton_requirement": PYTRITON_REQUIREMENT}

    def runtime_env(self, spec: ImageSpec) -> list[tuple[str, str]]:
        env = [
            ("BYOC_FLAVOR", "triton"),
            ("BYOC_ACCEPT_CONTENT_TYPES", ACCEPT_CONTENT_TYPES),
            ("BYOC_RESPONSE_CONTENT_TYPE", "application/json"),
            ("BYOC_DEFAULT_TIMEOUT_S", str(spec.server.timeout_s)),
            ("BYOC_DEFAULT_MAX_PAYLOAD_MB", str(spec.server.max_payload_mb)),
            # The example repository holds four models; this one answers /invocations.
            ("SAGEMAKER_TRITON_DEFAULT_MODEL_NAME", "digits"),
        ]
        if spec.runtime == "pytriton":
            env.append(("LD_LIBRARY_PATH", "/opt/tritonserver-libs"))
        return env


FLAVOR = TritonFlavor()
