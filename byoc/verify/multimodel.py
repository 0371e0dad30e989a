"""C21-C25: SageMaker's multi-model API, for images that declare it (Triton).

The packaged model is mounted as SageMaker's MME mounts models, under
/opt/ml/models/<name>/model, then loaded, listed, described, invoked and unloaded. The
invocation is a sample (raw-body models get it as PAYLOAD in Triton's binary tensor
format) or the KServe v2 request built from the default model's config."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

from .. import launcher
from ..model import repository
from .session import Session

BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"


def invocation(s: Session) -> tuple[bytes, dict]:
    """A request /models/NAME/invoke takes (Triton's own endpoint: KServe v2 or binary)."""
    default = s.target.default_model
    sample = next((x for x in s.target.samples if x.status == 200), None)
    if default is not None and default.takes_raw_body() and sample is not None:
        inputs = {"PAYLOAD": sample.body, "CONTENT_TYPE": sample.content_type.encode()}
        sent = [n for n in inputs if n in default.inputs()]
        shape = [1, 1] if default.config.max_batch_size > 0 else [1]
        header = json.dumps({"inputs": [
            {"name": n, "shape": shape, "datatype": "BYTES",
             "parameters": {"binary_data_size": len(inputs[n]) + 4}} for n in sent]}).encode()
        body = b"".join([header] + [struct.pack("<I", len(inputs[n])) + inputs[n] for n in sent])
        return body, {"Content-Type": f"{BINARY_JSON};json-header-size={len(header)}"}
    if default is not None:
        return repository.kserve_request(default), {"Content-Type": "application/json"}
    raise RuntimeError("no default model to invoke")


def checks(s: Session) -> None:
    name = s.target.model_name
    with tempfile.TemporaryDirectory(prefix="byoc-mme-") as tmp:
        model_root = Path(tmp) / name / "model"
        shutil.copytree(s.target.model_dir, model_root)
        for path in [Path(tmp), *Path(tmp).rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        url = f"/opt/ml/models/{name}/model"
        with launcher.launched(s.target.image, gpu=s.options.gpu,
                               env={"SAGEMAKER_MULTI_MODEL": "true"},
                               volumes={tmp: {"bind": "/opt/ml/models", "mode": "ro"}}) \
                as running:
            running.wait_ready(s.options.startup_budget_s)
            base, http = running.url, s.http
            body, headers = invocation(s)

            def load():
                first = http.post(f"{base}/models", json={"model_name": name, "url": url},
                                  timeout=120)
                again = http.post(f"{base}/models", json={"model_name": name, "url": url},
                                  timeout=120)
                return (first.status_code == 200 and again.status_code == 409,
                        f"load {first.status_code}, load again {again.status_code}")

            s.check("C21", "POST /models loads (200), twice is 409", load)

            def listed():
                response = http.get(f"{base}/models", timeout=10)
                models = response.json().get("models", [])
                return {"modelName": name, "modelUrl": url} in models, \
                    f"{response.status_code} {models}"

            s.check("C22", "GET /models lists it", listed)

            def described():
                found = http.get(f"{base}/models/{name}", timeout=10)
                missing = http.get(f"{base}/models/byoc-no-such-model", timeout=10)
                ok = found.status_code == 200 and found.json().get("modelName") == name \
                    and missing.status_code == 404
                return ok, f"{name} {found.status_code}, unknown {missing.status_code}"

            s.check("C23", "GET /models/{name}, 404 when unknown", described)

            def invoked():
                response = http.post(f"{base}/models/{name}/invoke", data=body,
                                     headers=headers, timeout=60)
                detail = "" if response.status_code == 200 else f": {response.text[:200]}"
                return response.status_code == 200, f"invoke {response.status_code}{detail}"

            s.check("C25", "POST /models/{name}/invoke answers", invoked)

            def unloaded():
                deleted = http.delete(f"{base}/models/{name}", timeout=60)
                gone = http.get(f"{base}/models/{name}", timeout=10)
                invoke = http.post(f"{base}/models/{name}/invoke", data=body, headers=headers,
                                   timeout=60)
                ok = deleted.status_code == 200 and gone.status_code == 404 \
                    and invoke.status_code == 404
                return ok, (f"delete {deleted.status_code}, then get {gone.status_code}, "
                            f"invoke {invoke.status_code}")

            s.check("C24", "DELETE unloads; then 404", unloaded)
