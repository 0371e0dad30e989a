"""byoc images with the SageMaker Python SDK as users call it: `sagemaker.model.Model(
image_uri=..., model_data=...)` deployed with instance_type="local" (the SDK's local mode,
on Docker Compose), invoked with the SDK's JSON, NumPy and raw-bytes serializers.

Nothing leaves the machine: telemetry is off (TelemetryOptOut in the file named by
SAGEMAKER_USER_CONFIG_OVERRIDE), and every AWS endpoint is moto on loopback. Local mode
is laxer than SageMaker (no /dev/shm limit, no port variables, no network isolation, 8080
published on all interfaces): `build.py verify` checks those; this checks the SDK path."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from byoc import launcher
from byoc.model import samples as sample_files
from byoc.render import BAKED_MODEL_DIR
from byoc.verify.inputs import export_folder

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "images" / "samples" / "digits"
ROLE = "arn:aws:iam::123456789012:role/service-role/byoc-local"  # local mode wants a "/"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def sdk(moto_url, tmp_path_factory):
    """The real SDK, configured so that nothing leaves the machine."""
    if shutil.which("docker-compose") is None and not _compose_v2():
        message = "the SDK's local mode needs docker compose (Debian: apt-get install " \
                  "docker-compose; scripts/setup.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    config = tmp_path_factory.mktemp("sdk") / "config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                      "      TelemetryOptOut: true\n")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
                           "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
                           "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                           "AWS_REGION": "eu-west-1"}.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        import sagemaker
        from sagemaker.local import LocalSession

        session = LocalSession()
        session.config = {"local": {"local_code": True}}
        assert session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"][
            "TelemetryOptOut"] is True
        yield sagemaker, session


def _compose_v2() -> bool:
    import subprocess

    try:
        out = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                             timeout=30)
    except OSError:
        return False
    return out.returncode == 0 and "v2" in out.stdout


def baked_model_tar(image: str, folder: Path) -> Path:
    """The image's own model as SageMaker's model.tar.gz: local mode extracts it into
    /opt/ml/model, which wins over the baked copy."""
    data = export_folder(image, BAKED_MODEL_DIR)
    assert data, f"{image} bakes no model"
    out = folder / "model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            if member.name not in (".", "./"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out


def remove_compose_leftovers(before: set[str]) -> None:
    """Local mode stops its compose container but leaves it: remove the ones it made."""
    for container in launcher.client().containers.list(all=True):
        if container.id not in before and "-algo-1-" in container.name and \
                container.labels.get("com.docker.compose.project"):
            container.remove(force=True)


def _sample(name: str) -> sample_files.Sample:
    return next(s for s in sample_files.load(SAMPLES) if s.name == name)


def _check(sample: sample_files.Sample, answer) -> None:
    problem = sample_files.mismatch(sample, 200, json.dumps(answer).encode())
    assert problem is None, f"{sample.name}: {problem}"


@pytest.mark.parametrize("flavor", ["torchserve", "triton"])
def test_sdk_local_mode_json_numpy_and_raw_bytes(flavor, sdk, request, tmp_path):
    sagemaker, session = sdk
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer, JSONSerializer, NumpySerializer

    image = request.getfixturevalue(f"{flavor}_image")
    model_tar = baked_model_tar(image, tmp_path)
    before = {c.id for c in launcher.client().containers.list(all=True)}
    model = Model(image_uri=image, model_data=f"file://{model_tar}", role=ROLE,
                  sagemaker_session=session, predictor_cls=Predictor)
    predictor = model.deploy(initial_instance_count=1, instance_type="local",
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
    try:
        as_json = _sample("digit-1.json")
        answer = predictor.predict(json.loads(as_json.body))
        _check(as_json, answer)
        print(f"{flavor} JSONSerializer {as_json.name}: label "
              f"{answer['predictions'][0]['label']}")

        as_npy = _sample("digit-3.npy")
        predictor.serializer = NumpySerializer()
        answer = predictor.predict(np.load(io.BytesIO(as_npy.body)))
        _check(as_npy, answer)
        print(f"{flavor} NumpySerializer {as_npy.name}: label "
              f"{answer['predictions'][0]['label']}")

        as_png = _sample("digit-0.png")
        predictor.serializer = IdentitySerializer(content_type="image/png")
        answer = predictor.predict(as_png.body)
        _check(as_png, answer)
        print(f"{flavor} IdentitySerializer(image/png) {as_png.name}: label "
              f"{answer['predictions'][0]['label']}")

        # Local mode hands a 4xx body back instead of raising (SageMaker raises ModelError).
        predictor.serializer = IdentitySerializer(content_type="application/json")
        error = predictor.predict(b'{"instances": [[1, 2')
        assert error["status"] == 400 and error["error"], error
        print(f"{flavor} malformed JSON: {error['status']} {error['error'][:60]}")
    finally:
        predictor.delete_model()  # it reads the endpoint config, so before that goes
        predictor.delete_endpoint(delete_endpoint_config=True)
        remove_compose_leftovers(before)
