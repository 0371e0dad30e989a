"""The compare report, from the one document `build.py compare` measures (a plain dict):
compare.md (the tables), compare.json (every number, the raw latencies included) and
compare.png (latency against throughput per server). Pure functions of the document, so a
report can be re-rendered from a compare.json."""

from __future__ import annotations

import json
from pathlib import Path

NAMES = {"torchserve": "TorchServe", "triton-mar": "Triton (.mar)",
         "triton": "Triton (repository)"}
COLORS = {"torchserve": "tab:orange", "triton-mar": "tab:blue", "triton": "tab:green"}
CLIENT_BOUND_CORES = 0.9  # one event loop: near one core, the client is the limit
MACHINE_BOUND_SHARE = 0.9  # the machine's cores this busy: everything shares what is left
BUSY_MACHINE_CORES = 0.25  # other work this busy during a step is worth a warning


def name(server: str) -> str:
    return NAMES.get(server, server)


def _num(value, places: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{places}f}{unit}"


def _gb(n_bytes: int | None) -> str:
    return "n/a" if n_bytes is None else f"{n_bytes / 1e9:.2f} GB"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def saturation(step: dict, nproc: int) -> str:
    """Which shared resource ran out in a step, if any: the client, or the whole machine."""
    found = []
    if step.get("client_cores", 0) >= CLIENT_BOUND_CORES:
        found.append("client")
    machine = step.get("machine_cpu_cores")
    if machine is not None and nproc and machine >= MACHINE_BOUND_SHARE * nproc:
        found.append("machine CPU")
    return ", ".join(found) or "no"


def other_cores(step: dict) -> float | None:
    """Busy cores that were neither server, client nor Docker: other work on the machine."""
    machine = step.get("machine_cpu_cores")
    if machine is None:
        return None
    ours = sum(step.get(k) or 0.0 for k in ("server_cpu_cores", "client_cores",
                                            "docker_cpu_cores"))
    return max(0.0, machine - ours)


def _model_section(doc: dict) -> list[str]:
    model = doc["model"]
    kinds = ", ".join(f"{name(s)}: {k}" for s, k in model["kinds"].items())
    rows = [[m["content_type"], str(m["samples"]),
             f"{m['min_bytes']:,}" if m["min_bytes"] == m["max_bytes"]
             else f"{m['min_bytes']:,}-{m['max_bytes']:,}", f"{m['total_bytes']:,}"]
            for m in model["mix"]]
    lines = ["### Model", "",
             f"**{model['name']}** ({model['origin']}); served as {kinds}. Samples from "
             f"{model['samples_origin']}: {len(model['samples'])} bodies, `--body "
             f"{doc['load']['body']}`, sent round robin in the same order to every server.", ""]
    lines += _table(["content type", "samples", "bytes each", "bytes in all"], rows,
                    {1, 2, 3}) + [""]
    if model.get("left_out"):
        lines += [f"Left out (they expect an error, not an answer): "
                  f"{', '.join(model['left_out'])}.", ""]
    return lines


def _images_section(doc: dict) -> list[str]:
    header = ["server", "image", "uncompressed", "compressed", "cold start",
              "busy before start", "settings"]
    rows = []
    for s in doc["servers"]:
        rows.append([f"{name(s['server'])}, {s.get('server_version') or 'unknown'}",
                     f"`{s['image']}`", _gb(s["size"]["uncompressed_bytes"]),
                     _gb(s["size"]["compressed_bytes"]), _num(s["first_answer_s"], 2, " s"),
                     _num(s.get("machine_busy_before_cores"), 2, " cores"), s["settings_line"]])
    return ["### Images", ""] + _table(header, rows, {2, 3, 4, 5}) + [
        "", "Cold start: `docker run` to the first correct answer to a real request. Busy "
        "before start: the machine's busy cores over 1 s before `docker run` (other work). "
        f"Compressed: {doc['servers'][0]['size']['method']}. Settings: read from the image "
        "(TorchServe: its environment and the archive's model-config.yaml; Triton: each "
        "config.pbtxt, parsed with Triton's protobuf).", ""]


def _load_section(doc: dict) -> list[str]:
    nproc = doc["machine"].get("nproc") or 0
    gpu = doc["load"].get("gpu")
    header = ["server", "clients", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms",
              "server CPU", "server mem (MiB)", "client CPU", "docker CPU", "other CPU",
              "saturated"]
    if gpu:
        header[10:10] = ["GPU mem (MiB)", "GPU util %"]
    rows = []
    for server in doc["servers"]:
        for st in server["steps"]:
            row = [name(server["server"]), str(st["concurrency"]),
                   f"{st['ok'] + st['errors']:,}", str(st["errors"]),
                   _num(st["throughput_rps"], 0), _num(st["p50_ms"], 2),
                   _num(st["p90_ms"], 2), _num(st["p99_ms"], 2),
                   _num(st.get("server_cpu_cores"), 2), _num(st.get("server_mem_mib"), 0),
                   _num(st["client_cores"], 2), _num(st.get("docker_cpu_cores"), 2),
                   _num(other_cores(st), 2), saturation(st, nproc)]
            if gpu:
                row[10:10] = [_num(st.get("gpu_mem_mib"), 0) if st.get("gpu_mem_mib") is not None
                              else st.get("gpu_note", "n/a"), _num(st.get("gpu_util_pct"), 0)]
            rows.append(row)
    notes = []
    for server in doc["servers"]:
        for st in server["steps"]:
            if st["errors"]:
                kinds = ", ".join(f"{k}: {n}" for k, n in sorted(st["error_kinds"].items()))
                notes.append(f"- {name(server['server'])} errors at {st['concurrency']} "
                             f"clients: {kinds}")
    others = [o for server in doc["servers"] for st in server["steps"]
              if (o := other_cores(st)) is not None]
    if others and max(others) >= BUSY_MACHINE_CORES:
        notes.append(f"- Other work on the machine used {min(others):.2f} to "
                     f"{max(others):.2f} cores during the steps: the servers shared the cores "
                     "with it, so expect run-to-run spread; compare runs with similar "
                     "background.")
    table = _table(header, rows, set(range(1, len(header) - 1)))
    return ["### Load", ""] + table + [""] + (notes + [""] if notes else [])


def _stats_row(label: str, stats: dict, per_row: float | None) -> list[str]:
    return [label, _num(stats["p50_us"]), _num(stats["p90_us"]), _num(stats["p99_us"]),
            _num(per_row if per_row is not None else stats["p50_us"], 1)]


def _baseline_section(doc: dict) -> list[str]:
    b = doc["baseline"]
    lines = ["### In-process baseline: the model's own cost", ""]
    if not b.get("measured"):
        return lines + [f"{b['note'][0].upper()}{b['note'][1:]}. The overheads below are "
                        "therefore not measured either.", ""]
    same = {True: "; the images hold the same archive", None: "",
            False: f"; the images' archives differ in "
                   f"{', '.join(b.get('archive_differences') or [])}, this one is timed"}[
        b.get("same_archive_in_images")]
    wrong = b.get("wrong_answers") or {}
    checked = (f"{b['answers_checked'] - len(wrong)} of {b['answers_checked']} sample answers "
               "correct in process")
    rows = []
    stages = b.get("stages") or {}
    for stage, what in (("preprocess", "decode"), ("inference", "model"),
                        ("postprocess", "encode")):
        if stage in stages:
            rows.append(_stats_row(f"{stage} ({what}), alone", stages[stage], None))
    rows.append(_stats_row("**whole request**, batch 1", b["request"], None))
    for m in b["batches"]:
        if m["batch"] > 1:
            rows.append(_stats_row(f"whole request, batch {m['batch']}", m, m["per_row_us"]))
    lines += [f"The handler `{b.get('handler')}` of the archive from {b['archive_origin']}"
              f"{same}, loaded with TorchServe's own loader as a worker loads it and called "
              f"directly in Python (torch {b['torch']}, {b['threads']} torch threads, the "
              f"default a one-worker server gets; {b['device']}), single-threaded, on the "
              f"same bodies; {checked}.", ""]
    lines += _table(["step", "p50 us", "p90 us", "p99 us", "us per request"], rows,
                    {1, 2, 3, 4}) + [
        "", "Whole request: TorchServe's PREDICT frame read by its decoder, the handler's "
        "`handle` (decode + model + encode, and TorchServe's own per-request work in the "
        "worker), the answer frame. A batch of N is one call with N requests; us per "
        "request is its p50 / N. The stages are timed alone, so they add up to less.", ""]
    if "note" in stages:
        lines += [f"Stages alone: {stages['note']}.", ""]
    return lines


def _summary_section(doc: dict) -> list[str]:
    summary = doc["summary"]
    by = {s["server"]: {st["concurrency"]: st for st in s["steps"]} for s in doc["servers"]}
    ratios = summary["throughput_ratio_over_torchserve"]
    lines = ["### Summary", ""]
    if ratios:
        others = [s for s in ("triton-mar", "triton") if s in ratios]
        header = ["clients", *(f"{name(s)} req/s" for s in by),
                  *(f"{name(s)} / TorchServe" for s in others)]
        rows = []
        for c in sorted(by["torchserve"]):
            rows.append([str(c), *(_num(by[s][c]["throughput_rps"], 0) if c in by[s] else "n/a"
                                   for s in by),
                         *(f"{ratios[s][str(c)]:.2f}" if str(c) in ratios[s] else "n/a"
                           for s in others)])
        lines += ["Throughput against TorchServe's at each concurrency:", ""]
        lines += _table(header, rows, set(range(len(header)))) + [""]
    overheads = summary["p50_overhead"]
    if not overheads:
        return lines + ["Overhead over the in-process call: not measured (no in-process "
                        "baseline).", ""]
    rows = []
    for server, per in overheads.items():
        for c, o in per.items():
            rows.append([name(server), c, _num(o["p50_ms"], 2), _num(o["in_process_p50_ms"], 3),
                         _num(o["overhead_ms"], 2), _num(o["times_in_process"], 1)])
    lines += ["Each server's p50 over the in-process whole request, per concurrency (above "
              "one client it includes waiting for a turn):", ""]
    lines += _table(["server", "clients", "p50 ms", "in process ms", "overhead ms",
                     "x in process"], rows, {1, 2, 3, 4, 5}) + [""]
    for server, per in overheads.items():
        lowest = min(per, key=int)
        o = per[lowest]
        lines.append(f"- {name(server)}: p50 {o['p50_ms']:.2f} ms at {lowest} client(s) "
                     f"against {o['in_process_p50_ms'] * 1000:.0f} us in process: "
                     f"**{o['overhead_ms']:.2f} ms of serving overhead** "
                     f"({o['times_in_process']:.1f}x the model's own cost)")
    return lines + [""]


def markdown(doc: dict) -> str:
    m, load = doc["machine"], doc["load"]
    variant = "GPU" if load.get("gpu") else "CPU"
    servers = " vs ".join(name(s["server"]) for s in doc["servers"])
    lines = [
        f"## {doc['model']['name']}: {servers}, {variant}: {doc['date']}", "",
        f"`{doc['command']}`", "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Docker "
        f"{m['docker']}, Linux {m['kernel']}. Client: {m['client']}, on the same cores as the "
        "servers.", "",
        f"Load: closed loop. Each of N clients sends its next request when the answer to the "
        f"last one has arrived, over its own keep-alive connection; per step at most "
        f"{load['duration_s']:g} s or {load['max_requests']:,} requests, after "
        f"{load['warmup']} warm-up requests that are not counted. An error is an answer the "
        f"sample does not expect (status, or body beyond its tolerance), or a timeout "
        f"({load['timeout_s']:g} s); latencies are of correct answers only.", "",
    ]
    lines += _model_section(doc) + _images_section(doc) + _load_section(doc)
    lines += _baseline_section(doc) + _summary_section(doc)
    lines += ["CPU in cores: 1.00 is one core busy for the whole step. Server: the container "
              "(docker stats). Client: this process. Docker: what the container costs outside "
              "its cgroup (docker-proxy carrying the loopback traffic, the shim and dockerd "
              "carrying its logs; dockerd also serves other Docker work). Other: the rest of "
              "the machine's busy time. Saturated: client when the client's one event loop "
              f"used >= {CLIENT_BOUND_CORES} core, machine CPU when >= "
              f"{MACHINE_BOUND_SHARE:.0%} of all cores were busy; there the numbers are a "
              "lower bound for the server.", ""]
    return "\n".join(lines)


def to_json(doc: dict) -> str:
    """Indented, but each raw latency list on one line."""
    holder = {}

    def strip(value):
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "latency_us" and isinstance(item, list):
                    marker = f"@@latency{len(holder)}@@"
                    holder[marker] = json.dumps(item, separators=(",", ":"))
                    out[key] = marker
                else:
                    out[key] = strip(item)
            return out
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    text = json.dumps(strip(doc), indent=2)
    for marker, compact in holder.items():
        text = text.replace(f'"{marker}"', compact)
    return text + "\n"


def chart(doc: dict, path: Path) -> Path:
    """Latency (p50 solid, p99 dashed, log scale) against throughput, one colour per server,
    each point labelled with its clients; the in-process request cost as a floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.6), dpi=100)
    for server in doc["servers"]:
        steps = [st for st in server["steps"] if st["p50_ms"] is not None]
        x = [st["throughput_rps"] for st in steps]
        color = COLORS.get(server["server"])
        label = name(server["server"])
        ax.plot(x, [st["p50_ms"] for st in steps], "o-", color=color, label=f"{label} p50")
        ax.plot(x, [st["p99_ms"] for st in steps], "s--", color=color, alpha=0.7,
                label=f"{label} p99")
        for st in steps:
            ax.annotate(f"c={st['concurrency']}", (st["throughput_rps"], st["p50_ms"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=8, color=color)
    if doc["baseline"].get("measured"):
        floor = doc["baseline"]["request"]["p50_us"] / 1000
        ax.axhline(floor, color="grey", linestyle=":",
                   label=f"in process, p50 {floor * 1000:.0f} us")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (correct answers per second)")
    ax.set_ylabel("latency (ms, log scale)")
    m = doc["machine"]
    ax.set_title(f"{doc['model']['name']}: closed loop, {doc['load']['body']} samples, "
                 f"clients on the same {m['nproc']} CPUs ({m['cpu_model']})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write(doc: dict, out: Path, console=None) -> list[Path]:
    """compare.md, compare.json and (with matplotlib) compare.png in out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.md", out / "compare.json"]
    written[0].write_text(markdown(doc))
    written[1].write_text(to_json(doc))
    try:
        written.append(chart(doc, out / "compare.png"))
    except ImportError:
        if console:
            console.warn("matplotlib is not installed: compare.png not drawn "
                         "(.venv/bin/pip install matplotlib)")
    return written
