"""The front candidates alone, on the host: CPU per proxied request of each, in front of the
same stand-in model server (a Go program answering a fixed KServe v2 answer), with the
same light client. No Docker, no model: what each front itself costs per request.

    .venv/bin/python bench/front_micro.py [--requests 20000] [--duration 5] [--rounds 2]

Needs `go` (Debian's golang-go) for the stand-in server and the Go floor. Candidates:
aiohttp (the front before issue 15, from git history), aiohttp on uvloop, front_fast
(this checkout), and the Go floor (bench/front_candidates/goproxy.go: a pass-through with
none of the front's checks). Loopback only; each cell bounded by --requests and
--duration."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.front_overhead import OLD_RUNTIME, extract_runtimes  # noqa: E402
from bench.front_rows import write_bodies  # noqa: E402

UPSTREAM_GO = """package main

import ("io"; "net/http")

func main() {
	answer := []byte(`{"model_name":"digits_classifier","model_version":"1","outputs":[{"name":` +
		`"PROBABILITIES","datatype":"FP32","shape":[1,10],"data":[0,0,0,1,0,0,0,0,0,0]}]}`)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	http.ListenAndServe("127.0.0.1:7000", nil)
}
"""

FRONT_PY = """import asyncio, sys
from multidict import CIMultiDict
from byoc_runtime.settings import Settings
import byoc_runtime.front as shared
kind, port = sys.argv[1], int(sys.argv[2])
S = Settings(port=port, safe_ports=None, workers=1, timeout_s=50,
             max_payload_bytes=6 * 1024 * 1024, log_level="WARNING")

class Backend:  # a stand-in adapter: the KServe v2 body as it is, its answer as it is
    name = "stand-in"
    address = ("127.0.0.1", 7000)
    def supported_content_types(self, declared): return None
    async def ready(self, session): return True, "ready"
    def upstream(self, body, content_type, headers):
        return shared.Upstream("/v2", {**headers, "Content-Type": content_type}, body,
            lambda s, h, raw: shared.Reply(s, raw, h.get("Content-Type", ""), h))
    async def invoke(self, session, body, content_type, headers):
        async with session.post("http://127.0.0.1:7000/v2", data=body,
                                headers={**headers, "Content-Type": content_type}) as r:
            return shared.Reply(r.status, await r.read(), r.headers.get("Content-Type", ""),
                                CIMultiDict(r.headers))

async def main():
    if kind.startswith("aiohttp"):
        from aiohttp import web
        runner = web.AppRunner(shared.Front(S, Backend()).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    else:
        from byoc_runtime.front_fast import FastFront
        await FastFront(S, Backend()).start("127.0.0.1", port)
    await asyncio.Event().wait()

if kind != "aiohttp":
    import uvloop
    uvloop.install()
asyncio.run(main())
"""


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows, procs = [], []
    with tempfile.TemporaryDirectory(prefix="byoc-front-micro-") as tmp:
        data = Path(tmp)
        write_bodies(data)
        extract_runtimes(data, OLD_RUNTIME)
        (data / "upstream.go").write_text(UPSTREAM_GO)
        (data / "front.py").write_text(FRONT_PY)
        env = {**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(data / "gocache")}
        for name, src in (("upstream", data / "upstream.go"),
                          ("goproxy", ROOT / "bench" / "front_candidates" / "goproxy.go")):
            subprocess.run(["go", "build", "-o", str(data / name), str(src)], check=True,
                           env=env)
        try:
            procs.append(subprocess.Popen([str(data / "upstream")]))
            fronts = {}
            for kind, port, runtime in (("aiohttp", 7001, "old-runtime"),
                                        ("aiohttp-uvloop", 7002, "old-runtime"),
                                        ("fast", 7004, "runtime")):
                path = f"{data / runtime}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
                fronts[kind] = (port, subprocess.Popen(
                    [sys.executable, str(data / "front.py"), kind, str(port)],
                    env={**os.environ, "PYTHONPATH": path}))
            fronts["go"] = (7003, subprocess.Popen(
                [str(data / "goproxy"), "-listen", "127.0.0.1:7003",
                 "-upstream", "http://127.0.0.1:7000/v2"]))
            procs += [p for _, p in fronts.values()]
            time.sleep(2)
            for rnd in range(1, args.rounds + 1):
                for kind, (port, proc) in fronts.items():
                    before, up0 = cpu_s(proc.pid), cpu_s(procs[0].pid)
                    out = subprocess.run(
                        [sys.executable, str(ROOT / "bench" / "front_client.py"), "--port",
                         str(port), "--body", str(data / "v2_classifier.json"),
                         "--concurrency", str(args.concurrency), "--requests",
                         str(args.requests), "--duration", str(args.duration), "--warmup",
                         "200"], capture_output=True, text=True, check=True).stdout
                    result = json.loads(out.splitlines()[-1])
                    served = result["requests"] + 200
                    result.update(front=kind, round=rnd, load1=round(os.getloadavg()[0], 2),
                                  front_us_per_req=round(
                                      (cpu_s(proc.pid) - before) / served * 1e6, 1),
                                  upstream_us_per_req=round(
                                      (cpu_s(procs[0].pid) - up0) / served * 1e6, 1))
                    rows.append(result)
                    print(f"round {rnd} {kind:<15} {result['rps']:>7.0f} req/s  p50 "
                          f"{result['p50_ms']:.3f} ms  front {result['front_us_per_req']:6.1f}"
                          f" us/req  stand-in server {result['upstream_us_per_req']:5.1f} us/req"
                          f"  load {result['load1']}  {result['statuses']}", flush=True)
        finally:
            for proc in procs:
                proc.terminate()
    if args.out:
        Path(args.out).write_text(json.dumps({"argv": sys.argv, "uptime": os.getloadavg(),
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
