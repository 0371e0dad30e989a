"""verify: start an image as SageMaker does and check each applicable contract point.

The contract lives in shared/docs/sagemaker-contract.md; every check names its ID.
inputs.py gathers what the image runs against (the packaged model, always mounted
read-only at /opt/ml/model, and the samples); contract.py checks the container,
model_checks.py the model's answers, multimodel.py the multi-model API (C21-C25)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import REPO_ROOT
from ..console import Console
from ..errors import VerifyFailed
from ..model.spec import ModelSpec
from . import contract, model_checks, multimodel
from .inputs import Target, VerifyOptions, image_attrs, prepare
from .report import Check, Report
from .session import Session

__all__ = ["Check", "Report", "Target", "VerifyOptions", "run", "verify"]
REPORT_DIR = REPO_ROOT / "build" / "verified"


def run(target: Target, options: VerifyOptions, console: Console) -> Report:
    s = Session(target, options, console)
    contract.static_checks(s, image_attrs(target.image))
    report = Report(target.image, s.checks)
    console.step(f"verify: {target.model_name} on {target.image[:40]} as SageMaker runs it "
                 "(serve, 64 MB shm, model read-only at /opt/ml/model)")
    with s.container() as running:
        report.ready_s = running.wait_ready(options.startup_budget_s)
        s.record("C05", "ready within the startup budget",
                 report.ready_s < options.startup_budget_s,
                 f"/ping 200 {report.ready_s:.2f}s after docker run "
                 f"(budget {options.startup_budget_s:.0f}s)", report.ready_s)
        contract.empty_environment(s, report.ready_s)
        contract.ping_fast(s, running)
        report.first_answer_s = model_checks.answers(s, running)
        model_checks.unsupported_types(s, running)
        model_checks.payload_limits(s, running)
        contract.headers(s, running)
        model_checks.bad_inputs(s, running)
        contract.quiet_ping(s, running)
        contract.model_dir_untouched(s, running)
        if options.gpu:
            model_checks.placement(s, running)
        contract.shutdown(s, running)
    model_checks.not_provoked(s)
    console.step("verify: ports, a SageMaker-size environment, the deadline (C03, C14, C08)")
    contract.ports(s)
    if target.multi_model:
        console.step("verify: multi-model API (SAGEMAKER_MULTI_MODEL=true, C21-C25)")
        multimodel.checks(s)
    console.step("verify: start with no network (C15), server death (C06)")
    contract.offline(s)
    contract.server_death(s)
    contract.debug_command(s)
    contract.bundled_driver(s)
    s.checks.sort(key=lambda c: c.cid)
    return report


def verify(image: str, options: VerifyOptions, console: Console, *,
           model: ModelSpec | None = None,
           package: Callable[[str, Path], Path] | None = None,
           shown: str | None = None) -> Report:
    """Verify and print the table; VerifyFailed (exit 3) when a point fails."""
    with tempfile.TemporaryDirectory(prefix="byoc-verify-") as scratch:
        target = prepare(image, options, Path(scratch), model=model, package=package)
        report = run(target, options, console)
    report.image = shown or image
    print(report.table(), flush=True)
    _save(report, target)
    if not report.passed:
        failed = ", ".join(f"{c.cid} ({c.title})" for c in report.failed())
        first = report.failed()[0]
        raise VerifyFailed(f"{shown or image} fails the SageMaker contract: {failed}; "
                           f"{first.cid}: {first.detail[:300]}",
                           "fix the image or the model; nothing was tagged for push")
    return report


def _save(report: Report, target: Target) -> None:
    """The report by image id, for push and deploy (the measured cold start, C32)."""
    try:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        # By image id, so push and deploy find it whatever the image was called.
        name = str(image_attrs(target.image).get("Id", target.image)).replace("sha256:", "")
        name = name.replace("/", "_").replace(":", "_")
        (REPORT_DIR / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=1))
    except OSError:
        pass  # a read-only checkout still verifies
