"""A TorchServe handler that misbehaves on request, for the fault table (test_faults.py).

The body is JSON: {"fault": "raise" | "kill" | "hang" | "sleep", "seconds": N}; anything
else is answered {"ok": true}. "kill" SIGKILLs the worker mid-request, "hang" sleeps
far past any deadline, "sleep" takes N seconds and answers."""

import json
import os
import signal
import time


def handle(data, context):
    if data is None:  # TorchServe's load-time call
        return None
    answers = []
    for row in data:
        body = row.get("body") or row.get("data") or b"{}"
        try:
            request = body if isinstance(body, dict) else json.loads(bytes(body))
        except ValueError:
            request = {}
        fault = request.get("fault") if isinstance(request, dict) else None
        if fault == "raise":
            raise RuntimeError("injected fault: the handler raised")
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":
            time.sleep(3600)
        if fault == "sleep":
            time.sleep(float(request.get("seconds", 1)))
        answers.append(json.dumps({"ok": True, "pid": os.getpid()}))
    return answers
