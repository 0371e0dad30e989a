"""What every check module shares: the target, recording results, running containers."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator

import requests

from .. import launcher
from ..console import Console
from ..model import repository, samples
from .inputs import Target, VerifyOptions
from .report import FAIL, NOT_APPLICABLE, NOT_CHECKED, PASS, Check, verdict


@dataclasses.dataclass(frozen=True)
class Request:
    """A request whose right answer verify knows: a sample, or the KServe v2 request built
    from the default model's config (any 200 is right)."""

    name: str
    body: bytes
    content_type: str
    headers: dict
    sample: samples.Sample | None = None

    def wrong(self, status: int, body: bytes) -> str | None:
        if self.sample is not None:
            return samples.mismatch(self.sample, status, body)
        return None if status == 200 else f"status {status}"


def is_json_error(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("error"))


class Session:
    def __init__(self, target: Target, options: VerifyOptions, console: Console):
        self.target = target
        self.options = options
        self.console = console
        self.checks: list[Check] = []
        self.http = requests.Session()

    def record(self, cid: str, title: str, result: str | bool | None, detail: str,
               seconds: float | None = None) -> None:
        result = result if isinstance(result, str) else verdict(result)
        self.checks.append(Check(cid, title, result, detail, seconds))
        mark = {PASS: "ok  ", FAIL: "FAIL", NOT_APPLICABLE: "n/a ", NOT_CHECKED: "not checked"}
        self.console.info(f"{mark[result]} {cid} {title}: {detail}")

    def check(self, cid: str, title: str,
              fn: Callable[[], tuple[str | bool | None, str]]) -> None:
        t0 = time.monotonic()
        try:
            result, detail = fn()
        except Exception as exc:  # a check that crashes is a failed check, with the reason
            result, detail = False, f"{type(exc).__name__}: {exc}"
        self.record(cid, title, result, detail, time.monotonic() - t0)

    @contextlib.contextmanager
    def container(self, **kwargs) -> Iterator[launcher.Running]:
        with launcher.launched(self.target.image, model_tar=self.target.model_tar,
                               gpu=self.options.gpu, **kwargs) as running:
            yield running

    def post(self, running: launcher.Running, body: bytes, content_type: str | None,
             **headers) -> requests.Response:
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.post(f"{running.url}/invocations", data=body, headers=headers,
                              timeout=65)

    def send(self, running: launcher.Running, request: Request, **extra) -> requests.Response:
        return self.http.post(f"{running.url}/invocations", data=request.body,
                              headers={**request.headers, **extra}, timeout=65)

    # -- requests with known answers --------------------------------------------------------
    def known_requests(self) -> list[Request]:
        found = [Request(s.name, s.body, s.content_type, s.request_headers(), s)
                 for s in self.target.samples]
        if found:
            return found
        default = self.target.default_model
        if default is not None:
            return [Request(f"KServe v2 request for {default.folder} (from its config)",
                            repository.kserve_request(default), "application/json",
                            {"Content-Type": "application/json"})]
        return []

    def good_request(self) -> Request | None:
        """One request that should get a 200."""
        for request in self.known_requests():
            if request.sample is None or request.sample.status == 200:
                return request
        return None
