"""GPU checks without Docker, for any machine with CUDA (a lent GPU box, a self-hosted
runner): the code the images run, on the GPU, compared with the CPU.

    python tests/gpu/gpu_check.py [--json OUT] [--seconds 5]

1. The TorchServe handler (handlers/digits_handler.py) on cuda vs cpu: same labels,
   probabilities within 1e-4, and the model's parameters really on the GPU.
2. The Triton classifier backend (triton_backends/digits/digits_classifier) on cuda vs cpu,
   through tritonserver from the nvidia-pytriton wheel when it is installed (with the
   backend stub for this machine's Python); skipped with a reason otherwise.
3. Throughput on a model large enough to load the GPU: torchvision's ResNet-50 with
   random weights (nothing downloaded), in-process at batch 1/8/32, fp32 and fp16.

Exits 0 with "SKIP: no CUDA" where CUDA is absent (1 with BYOC_REQUIRE_GPU=1), and 1
when a check fails. A check that could not run (torchserve, nvidia-pytriton or torchvision
missing) is reported as SKIPPED with its reason, never as passed: "OK: GPU checks passed"
means every check ran and passed; with BYOC_REQUIRE_GPU=1 a skipped check fails the run."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLASSIFIER = REPO / "triton_backends" / "digits" / "digits_classifier"
CHECKS = ("handler", "triton", "resnet50")
sys.path.insert(0, str(REPO / "handlers"))


def cuda_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def train_model(out: Path) -> Path:
    import train_digits

    if train_digits.main(["--out", str(out)]) != 0:
        raise SystemExit("training the example model failed")
    return out / "digits.pt"


def handler_check(model_dir: Path) -> dict:
    """DigitsHandler through a real ts.context.Context, once on cuda and once on cpu."""
    try:
        from ts.context import Context, RequestProcessor
    except ImportError:
        return {"skipped": "torchserve is not installed (pip install torchserve==0.12.0)"}
    import numpy as np
    import torch
    from digits_data import load_split
    from digits_handler import DigitsHandler

    _, x_test, _, y_test = load_split()
    body = json.dumps({"instances": x_test.tolist()}).encode()
    results = {}
    for device, gpu_id in (("cuda", 0), ("cpu", None)):
        manifest = {"model": {"serializedFile": "digits.pt", "modelName": "digits"}}
        context = Context("digits", str(model_dir), manifest, 1, gpu_id, "0.12.0")
        context.request_processor = [RequestProcessor({"Content-Type": "application/json"})]
        handler = DigitsHandler()
        if device == "cpu":
            torch.cuda.is_available, saved = (lambda: False), torch.cuda.is_available
        try:
            handler.initialize(context)
        finally:
            if device == "cpu":
                torch.cuda.is_available = saved
        on = next(handler.model.parameters()).device.type if hasattr(handler.model,
                                                                     "parameters") else "?"
        answer = json.loads(handler.handle([{"body": body}], context)[0])
        results[device] = {"device": str(handler.device), "params_on": on,
                           "probs": [p["probabilities"] for p in answer["predictions"]],
                           "labels": [p["label"] for p in answer["predictions"]]}
    diff = float(np.abs(np.asarray(results["cuda"]["probs"]) -
                        np.asarray(results["cpu"]["probs"])).max())
    accuracy = float(np.mean(np.asarray(results["cuda"]["labels"]) == y_test))
    ok = (results["cuda"]["device"].startswith("cuda") and
          results["cuda"]["labels"] == results["cpu"]["labels"] and diff < 1e-4)
    return {"ok": ok, "cuda_device": results["cuda"]["device"], "max_prob_diff": diff,
            "accuracy_cuda": accuracy}


def triton_check(model_file: Path) -> dict:
    """The classifier backend in tritonserver (pytriton wheel) with KIND_GPU vs KIND_CPU."""
    try:
        import pytriton
    except ImportError:
        return {"skipped": "nvidia-pytriton is not installed"}
    import os
    import shutil
    import subprocess
    import urllib.request

    import numpy as np

    root = Path(pytriton.__file__).parent / "tritonserver"
    pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = root / "python_backend_stubs" / pyver / "triton_python_backend_stub"
    if not stub.exists():
        return {"skipped": f"no Triton backend stub for Python {pyver}"}
    backends = Path(tempfile.mkdtemp()) / "backends"
    shutil.copytree(root / "backends", backends)
    shutil.copy(stub, backends / "python")
    libs = Path(pytriton.__file__).parents[1] / "nvidia_pytriton.libs"
    x = np.random.default_rng(0).uniform(0, 16, (64, 64)).astype(np.float32)
    out = {}
    for kind in ("GPU", "CPU"):
        repo = Path(tempfile.mkdtemp()) / "repo"
        model = repo / "digits_classifier"
        shutil.copytree(CLASSIFIER, model)
        template = (model / "config.pbtxt.j2").read_text()
        (model / "config.pbtxt.j2").unlink()
        config = (template.replace("{{ spec.server.max_batch_rows }}", "1024")
                  .replace("{{ spec.server.max_batch_delay_ms * 1000 }}", "1000")
                  .replace("{{ spec.server.workers }}", "1"))
        config = config.split("instance_group")[0] + (
            f'instance_group [ {{ count: 1 kind: KIND_{kind} }} ]\n'
            'parameters { key: "model_file" value: { string_value: "digits.pt" } }\n')
        (model / "config.pbtxt").write_text(config)
        shutil.copy(model_file, model / "1" / "digits.pt")
        env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}",
               "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen([str(root / "bin" / "tritonserver"), f"--model-repository={repo}",
                                 f"--backend-directory={backends}", "--http-port=18000",
                                 "--allow-grpc=false", "--allow-metrics=false"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen("http://127.0.0.1:18000/v2/models/digits_classifier/ready",
                                           timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            request = json.dumps({"inputs": [{"name": "INSTANCES", "shape": list(x.shape),
                                              "datatype": "FP32",
                                              "data": x.ravel().tolist()}]}).encode()
            reply = urllib.request.urlopen(urllib.request.Request(
                "http://127.0.0.1:18000/v2/models/digits_classifier/infer", data=request,
                headers={"Content-Type": "application/json"}), timeout=30)
            data = json.loads(reply.read())["outputs"][0]["data"]
            out[kind] = np.asarray(data, dtype=np.float32).reshape(-1, 10)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    diff = float(np.abs(out["GPU"] - out["CPU"]).max())
    return {"ok": diff < 1e-4, "max_prob_diff": diff}


def resnet_throughput(torch, seconds: float) -> dict:
    try:
        import torchvision
    except ImportError:
        return {"skipped": "torchvision is not installed"}
    except RuntimeError as exc:  # built for another torch
        return {"skipped": f"torchvision does not load with this torch: {exc}"}
    model = torchvision.models.resnet50(weights=None).eval().cuda()
    results = {}
    for dtype in (torch.float32, torch.float16):
        m = model.to(dtype)
        for batch in (1, 8, 32):
            x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
            with torch.inference_mode():
                for _ in range(5):
                    m(x)
                torch.cuda.synchronize()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    m(x)
                    n += 1
                torch.cuda.synchronize()
                took = time.perf_counter() - t0
            results[f"{str(dtype).split('.')[-1]}_b{batch}"] = {
                "images_per_s": round(n * batch / took, 1),
                "ms_per_batch": round(1000 * took / n, 2)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput point")
    args = parser.parse_args()
    torch = cuda_or_none()
    if torch is None:
        print("SKIP: no CUDA on this machine (torch missing or torch.cuda.is_available() "
              "is False); the GPU checks need a GPU")
        # A GPU job that checked nothing must not go green.
        return 1 if os.environ.get("BYOC_REQUIRE_GPU") == "1" else 0
    report = {"devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
              "torch": torch.__version__, "cuda": torch.version.cuda}
    with tempfile.TemporaryDirectory() as tmp:
        model_file = train_model(Path(tmp))
        report["handler"] = handler_check(Path(tmp))
        report["triton"] = triton_check(model_file)
    report["resnet50"] = resnet_throughput(torch, args.seconds)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return verdict(report, os.environ.get("BYOC_REQUIRE_GPU") == "1")


def verdict(report: dict, require_all: bool) -> int:
    """Print what passed, failed and was skipped; 0 only when nothing failed, and (with
    require_all) nothing was skipped. Skipped is never counted as passed."""
    failed = [k for k in CHECKS if report[k].get("ok") is False]
    skipped = [k for k in CHECKS if "skipped" in report[k]]
    passed = [k for k in CHECKS if report[k].get("ok") is True
              or (k == "resnet50" and "skipped" not in report[k] and report[k])]
    for name in skipped:
        print(f"SKIPPED: {name}: {report[name]['skipped']}")
    if failed:
        print(f"FAIL: {', '.join(failed)}")
        return 1
    if skipped:
        print(f"NOT PASSED: {len(skipped)} of {len(CHECKS)} GPU checks skipped "
              f"({', '.join(skipped)}); passed: {', '.join(passed) or 'none'}")
        return 1 if require_all else 0
    print(f"OK: GPU checks passed ({', '.join(passed)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
