"""A Triton Python backend that misbehaves on request, for the fault table (test_faults.py).

The body is JSON: {"fault": "raise" | "kill" | "hang" | "sleep" | "big", "seconds": N,
"bytes": N}; anything else is answered {"ok": true}. "kill" SIGKILLs the stub mid-request,
"hang" sleeps far past any deadline, "sleep" takes N seconds and answers, "big" answers N
bytes (through the stub's shared memory)."""

import json
import os
import signal
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "PAYLOAD").as_numpy().reshape(-1)[0]
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            fault = body.get("fault") if isinstance(body, dict) else None
            if fault == "raise":
                raise RuntimeError("injected fault: the backend raised")
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "hang":
                time.sleep(3600)
            if fault == "sleep":
                time.sleep(float(body.get("seconds", 1)))
            answer = json.dumps({"ok": True, "pid": os.getpid()}).encode()
            if fault == "big":
                answer = b'{"ok": true, "pad": "' + b"x" * int(body["bytes"]) + b'"}'
            tensor = pb_utils.Tensor("RESPONSE", np.array([answer], dtype=np.object_))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
