"""Send the model's samples through sagemaker-runtime, as a user's client would, and check
each answer against the sample's expectation (byoc/model/samples.py).

Real-time and serverless: InvokeEndpoint. Async: each body goes to S3 first, then
InvokeEndpointAsync, then the answer is read from the output location (C29)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import tarfile
import tempfile
import time
from pathlib import Path

from ..console import Console
from ..errors import ByocError
from ..model import samples as sample_files
from . import s3
from .aws import Aws, AwsError

SAMPLES_DIR = "/opt/byoc/samples"  # where the build bakes them (render.SAMPLES_DIR)
ASYNC_WAIT_S = 900.0


@dataclasses.dataclass(frozen=True)
class Answer:
    sample: str
    content_type: str
    status: int | None  # None: async failure without a status
    body: bytes
    answer_type: str
    seconds: float
    problem: str | None  # why it is not the expected answer; None when it is
    checked: bool  # the sample had an expectation (status always counts)

    def short(self, limit: int = 60) -> str:
        text = self.body.decode("utf-8", "replace").replace("\n", " ")
        return text if len(text) <= limit else text[:limit - 3] + "..."


def load_samples(folder: Path | None, local_image: str | None,
                 console: Console) -> list[sample_files.Sample]:
    """--samples, else the samples baked into the local image, else none (with a warning)."""
    if folder is not None:
        return sample_files.load(folder)
    if local_image:
        from ..verify.inputs import export_folder

        data = export_folder(local_image, SAMPLES_DIR)
        if data:
            with tempfile.TemporaryDirectory(prefix="byoc-samples-") as scratch:
                with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                    archive.extractall(scratch, filter="data")
                return sample_files.load(Path(scratch))
    console.warn("no samples to send: the image is not local and --samples was not given")
    return []


def _check(sample: sample_files.Sample, status: int | None, body: bytes) -> str | None:
    if status is None:
        return "the async invocation failed: " + body.decode("utf-8", "replace")[:200]
    return sample_files.mismatch(sample, status, body)


def realtime(aws: Aws, endpoint: str, sample: sample_files.Sample) -> Answer:
    kwargs = dict(EndpointName=endpoint, Body=sample.body, ContentType=sample.content_type)
    if sample.accept:
        kwargs["Accept"] = sample.accept
    started = time.monotonic()
    try:
        reply = aws.call(aws.runtime, "invoke_endpoint", **kwargs)
        status, body = 200, reply["Body"].read()
        answer_type = reply.get("ContentType", "")
    except AwsError as exc:
        if exc.code != "ModelError":  # the container answered with an error: an answer
            raise
        response = getattr(exc, "response", {})
        status = int(response.get("OriginalStatusCode") or 500)
        body = (response.get("OriginalMessage") or "").encode()
        answer_type = "application/json"
    seconds = time.monotonic() - started
    return Answer(sample.name, sample.content_type, status, body, answer_type, seconds,
                  _check(sample, status, body), sample.has_expectation)


def asynchronous(aws: Aws, endpoint: str, sample: sample_files.Sample, input_url: str,
                 written: list[str], *, timeout_s: float = ASYNC_WAIT_S,
                 poll_s: float = 2.0, sleep=time.sleep) -> Answer:
    s3.put(aws, input_url, sample.body)
    written.append(input_url)
    kwargs = dict(EndpointName=endpoint, InputLocation=input_url,
                  ContentType=sample.content_type, InvocationTimeoutSeconds=int(timeout_s))
    if sample.accept:
        kwargs["Accept"] = sample.accept
    started = time.monotonic()
    reply = aws.call(aws.runtime, "invoke_endpoint_async", **kwargs)
    output, failure = reply["OutputLocation"], reply.get("FailureLocation")
    written += [url for url in (output, failure) if url]
    while True:
        body = s3.get_if_there(aws, output)
        if body is not None:
            status = 200
            break
        failed = s3.get_if_there(aws, failure) if failure else None
        if failed is not None:
            status, body = None, failed
            break
        if time.monotonic() - started > timeout_s:
            raise ByocError(f"no async answer for {sample.name} in {output} after "
                            f"{timeout_s:.0f}s", "look at the endpoint's CloudWatch logs")
        sleep(poll_s)
    seconds = time.monotonic() - started
    return Answer(sample.name, sample.content_type, status, body, "", seconds,
                  _check(sample, status, body), sample.has_expectation)


def send_all(aws: Aws, endpoint: str, kind: str, samples: list[sample_files.Sample],
             console: Console, *, output: str | None = None,
             written: list[str] | None = None, sleep=time.sleep) -> list[Answer]:
    written = written if written is not None else []
    if not samples:
        return []
    console.step(f"invoke {endpoint}: {len(samples)} samples through sagemaker-runtime"
                 + (" (async, through S3)" if kind == "async" else ""))
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S}"
    answers = []
    for sample in samples:
        if kind == "async":
            url = f"{output.rstrip('/')}/byoc-samples/{stamp}/{sample.name}"
            answers.append(asynchronous(aws, endpoint, sample, url, written, sleep=sleep))
        else:
            answers.append(realtime(aws, endpoint, sample))
    return answers


def table(answers: list[Answer]) -> str:
    rows = [("sample", "status", "seconds", "answer", "check")]
    for a in answers:
        check = f"WRONG: {a.problem}" if a.problem else ("OK" if a.checked else "OK (status)")
        rows.append((a.sample, str(a.status if a.status is not None else "failed"),
                     f"{a.seconds:.2f}", a.short(), check))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < 4 else cell
                               for i, cell in enumerate(row)) for row in rows)


def markdown(endpoint: str, uri: str, answers: list[Answer]) -> str:
    lines = [f"### SageMaker endpoint `{endpoint}`", "", f"Image: `{uri}`", "",
             "| sample | status | seconds | answer | check |", "| --- | --- | --- | --- | --- |"]
    for a in answers:
        check = f"WRONG: {a.problem}" if a.problem else "OK"
        answer = a.short(120).replace("|", "\\|")
        lines.append(f"| {a.sample} | {a.status} | {a.seconds:.2f} | `{answer}` | {check} |")
    return "\n".join(lines) + "\n"


def report(answers: list[Answer], endpoint: str, uri: str, console: Console,
           summary: Path | None) -> None:
    if not answers:
        return
    print(table(answers), flush=True)
    if summary is not None:
        with open(summary, "a") as handle:
            handle.write(markdown(endpoint, uri, answers))
    wrong = [a for a in answers if a.problem]
    if wrong:
        raise ByocError(f"endpoint {endpoint} answered {len(wrong)} of {len(answers)} samples "
                        f"wrongly: {wrong[0].sample}: {wrong[0].problem}",
                        f"the endpoint is up; look at its CloudWatch logs, or remove it: "
                        f"python build.py undeploy {endpoint}")
    console.ok(f"{endpoint}: {len(answers)} samples answered as expected")


def answers_json(answers: list[Answer]) -> list[dict]:
    return [{"sample": a.sample, "status": a.status, "seconds": round(a.seconds, 3),
             "answer": a.short(200), "problem": a.problem} for a in answers]



