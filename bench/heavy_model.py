#!/usr/bin/env python3
"""A model whose own cost dominates, for BENCHMARKS.md ("A model whose own cost dominates"):
a transformer text classifier built here (random weights, a locally written vocabulary,
nothing downloaded), served by TorchServe, by Triton hosting the same .mar, and by
Triton's own Python backend, then compared with batch size 1 and with tuned batching.

    .venv/bin/python bench/heavy_model.py                    # the BENCHMARKS.md runs
    .venv/bin/python bench/heavy_model.py --smoke            # seconds per step, end to end

Steps: make the model (bench/text_classifier/: the model, its codec, a TorchServe
handler in the shape of TorchServe's examples, a Triton Python backend) in OUT/model
(weights, vocabulary, samples with expected answers, the .mar from the real
torch-model-archiver, the Triton repository, model.yaml describing both); then for each
configuration (batch1: the images config as it is; tuned: TorchServe batch_size and
max_batch_delay, Triton dynamic batching and instances, in a copy of the images config)
`build.py compare` --runs times (the first builds, the others reuse the images);
then one table of every run side by side (OUT/summary.md).

make_model() is also what tests/docker/test_compare.py archives its tiny model with."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SOURCES = REPO / "bench" / "text_classifier"
sys.path.insert(0, str(SOURCES))

import yaml  # noqa: E402

from byoc import process  # noqa: E402

SIZES = {  # classifier.json per size; "heavy" costs milliseconds per request on one CPU core
    "tiny": {"vocab_size": 300, "d_model": 32, "heads": 2, "ff": 64, "layers": 1,
             "seq_len": 32, "classes": 4},
    "heavy": {"vocab_size": 8000, "d_model": 256, "heads": 4, "ff": 1024, "layers": 4,
              "seq_len": 128, "classes": 8},
}
NAME = "text_classifier"
MODEL_FILES = ("text_classifier.py", "text_codec.py")
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Line 1 padding, line 2 unknown, then pseudo-words of two or three syllables."""
    words: set[str] = set()
    while len(words) < size - 2:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))))
    return ["<pad>", "<unk>", *sorted(words)]


def _texts(words: list[str], length: int, rng: random.Random):
    while True:  # a few unknown words in each, as real text has
        yield " ".join(rng.choice(words[2:]) if rng.random() > 0.05 else "zzyzx"
                       for _ in range(length))


def make_model(out: Path, size: str = "heavy", seed: int = 0, samples: int = 6) -> Path:
    """Write the whole model into out; returns model.yaml, its description."""
    import torch
    from text_classifier import TextClassifier

    config = SIZES[size]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "files").mkdir(parents=True)
    files = out / "files"
    (files / "classifier.json").write_text(json.dumps(config, indent=1))
    words = vocabulary(config["vocab_size"], rng)
    (files / "vocab.txt").write_text("".join(f"{w}\n" for w in words))
    model = TextClassifier(config).eval()
    with torch.no_grad():  # random weights, a head wide enough for clear labels
        torch.nn.init.normal_(model.position, std=0.02)
        torch.nn.init.normal_(model.head.weight, std=0.5)
    torch.save(model.state_dict(), files / "weights.pt")
    for name in (*MODEL_FILES, "text_handler.py"):
        shutil.copy2(SOURCES / name, files / name)
    _samples(out / "samples", model, words, config, rng, samples)
    mar = _archive(files, out)
    repository = out / "triton"
    shutil.copytree(SOURCES / "repository", repository)
    version = repository / NAME / "1"
    for name in (*MODEL_FILES, "classifier.json", "vocab.txt", "weights.pt"):
        shutil.copy2(files / name, version / name)
    description = {
        "name": NAME, "description": f"transformer text classifier ({size}), random weights",
        "torchserve": {"mar": mar.name}, "triton": {"repository": "triton",
                                                   "default_model": NAME},
        "content_types": ["text/plain", "application/json"], "samples": "samples"}
    path = out / "model.yaml"
    path.write_text(yaml.safe_dump(description, sort_keys=False))
    return path


def _samples(folder: Path, model, words: list[str], config: dict, rng: random.Random,
             count: int) -> None:
    """count bodies, half text/plain and half JSON, each with its expected answer (computed
    here with the same model and codec; labels with a clear margin only)."""
    import text_codec
    import torch

    folder.mkdir(parents=True)
    vocab = {w: i for i, w in enumerate(words)}
    texts = _texts(words, int(config["seq_len"] * 0.8), rng)
    made = 0
    while made < count:
        text = next(texts)
        with torch.inference_mode():
            probabilities = model(text_codec.encode([text], vocab, config["seq_len"]))
        top = sorted(probabilities[0].tolist(), reverse=True)
        if top[0] - top[1] < 0.01:
            continue
        answer = json.loads(text_codec.answers(probabilities)[0])
        if made % 2:
            name, body, ctype = f"review-{made}.json", json.dumps({"text": text}), \
                "application/json"
        else:
            name, body, ctype = f"review-{made}.txt", text, "text/plain"
        (folder / name).write_text(body)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(
            {"content_type": ctype, "accept": "application/json", "expect": answer,
             "tolerance": 0.001}, sort_keys=False))
        made += 1


def _archive(files: Path, out: Path) -> Path:
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    process.run([str(archiver), "--model-name", NAME, "--version", "1.0",
                 "--model-file", str(files / "text_classifier.py"),
                 "--serialized-file", str(files / "weights.pt"),
                 "--handler", str(files / "text_handler.py"),
                 "--extra-files", ",".join(str(files / n) for n in
                                           ("text_codec.py", "classifier.json", "vocab.txt")),
                 "--export-path", str(out), "--force"], error="torch-model-archiver failed")
    return out / f"{NAME}.mar"


# -- the benchmark runs ---------------------------------------------------------------------

def tuned_config(out: Path, batch: int, delay_ms: int, workers: int) -> Path:
    """The images config with batching on for the cpu images, the same on both servers:
    TorchServe batch_size, max_batch_delay and workers; Triton's dynamic batcher (max
    batch, queue delay) and instance count, for the hosted .mar and the model's own
    repository alike."""
    data = yaml.safe_load((REPO / "images" / "images.yaml").read_text())
    for entry in data["images"]:
        if entry["variant"] != "cpu":
            continue
        server = entry.setdefault("server", {})
        server.update(batch_size=batch, max_batch_delay_ms=delay_ms, workers=workers)
    path = out / "tuned.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_compare(description: Path, config: Path, label: str, run: int, args,
                out: Path) -> Path:
    folder = out / label / f"run{run}"
    images = ["--torchserve-image", f"byoc-bench/{NAME}-torchserve:{label}",
              "--triton-mar-image", f"byoc-bench/{NAME}-triton-mar:{label}",
              "--triton-image", f"byoc-bench/{NAME}-triton:{label}"]
    argv = [sys.executable, str(REPO / "build.py"), "compare", "--model", str(description),
            "--config", str(config), "--servers", args.servers,
            "--concurrency", args.concurrency, "--duration", str(args.duration),
            "--max-requests", str(args.max_requests), "--warmup", str(args.warmup),
            "--out", str(folder), *images, *(["--no-build"] if run > 1 or args.no_build
                                             else [])]
    print(f"## {label}, run {run}: {' '.join(argv[1:])}", flush=True)
    process.run(argv, cwd=str(REPO), on_line=print, error=f"compare ({label}, run {run}) failed")
    return folder / "compare.json"


def summary(results: dict[str, list[Path]]) -> str:
    """Every run side by side: req/s, p50, p99, overhead over in process, ratio."""
    lines = []
    for label, paths in results.items():
        docs = [json.loads(p.read_text()) for p in paths]
        runs = [f"run {i + 1}" for i in range(len(docs))]
        base = [d["baseline"] for d in docs]
        inproc = " / ".join(f"{b['request']['p50_us'] / 1000:.2f}" if b.get("measured")
                            else "not measured" for b in base)
        settings = "; ".join(f"{s['label']}: {s['settings_line']}" for s in docs[0]["servers"])
        lines += [f"### {label}", "", f"Settings: {settings}.", "",
                  f"In-process whole request p50 ({' / '.join(runs)}): {inproc} ms", ""]
        header = ["server", "clients"] + [f"{what} ({run})" for what in
                                          ("req/s", "p50 ms", "p99 ms", "overhead ms")
                                          for run in runs]
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for s_index, server in enumerate(docs[0]["servers"]):
            for c_index, step in enumerate(server["steps"]):
                steps = [d["servers"][s_index]["steps"][c_index] for d in docs]
                over = [d["summary"]["p50_overhead"].get(server["server"], {})
                        .get(str(step["concurrency"]), {}).get("overhead_ms") for d in docs]
                cells = [f"{st['throughput_rps']:.0f}" for st in steps]
                cells += [f"{st['p50_ms']:.2f}" if st["p50_ms"] is not None else "n/a"
                          for st in steps]
                cells += [f"{st['p99_ms']:.2f}" if st["p99_ms"] is not None else "n/a"
                          for st in steps]
                cells += [f"{o:.2f}" if o is not None else "not measured" for o in over]
                lines.append(f"| {server['label']} | {step['concurrency']} | "
                             + " | ".join(cells) + " |")
        lines.append("")
        for run, doc in zip(runs, docs, strict=True):
            ratios = doc["summary"]["throughput_ratio_over_torchserve"]
            labels = {s["server"]: s["label"] for s in doc["servers"]}
            parts = [f"{labels[server]} / TorchServe: " + ", ".join(
                f"{c} clients {r:.2f}" for c, r in per.items())
                for server, per in ratios.items()]
            lines.append(f"- {run} ({doc['date']}): " + "; ".join(parts))
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="heavy")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "heavy-model")
    parser.add_argument("--servers", default="auto")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="tuned: requests per batch")
    parser.add_argument("--delay-ms", type=int, default=5, help="tuned: max batch delay")
    parser.add_argument("--workers", type=int, default=1,
                        help="tuned: TorchServe workers and Triton instances (default 1)")
    parser.add_argument("--configs", default="batch1,tuned")
    parser.add_argument("--no-build", action="store_true", help="reuse the images")
    parser.add_argument("--make-only", action="store_true",
                        help="make the model in OUT/model (the .mar, samples, repository, "
                             "model.yaml) and stop")
    parser.add_argument("--smoke", action="store_true",
                        help="check the whole path quickly: 1 and 8 clients, 2 s or 100 "
                             "requests per step (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.concurrency, args.duration, args.max_requests, args.warmup = "1,8", 2.0, 100, 5
    out = args.out.resolve()
    print(f"## model: {args.size} {SIZES[args.size]}", flush=True)
    description = make_model(out / "model", args.size)
    if args.make_only:
        print(f"made {description} and {description.parent / (NAME + '.mar')}")
        return 0
    configs = {"batch1": REPO / "images" / "images.yaml",
               "tuned": tuned_config(out, args.batch, args.delay_ms, args.workers)}
    results = {}
    for label in args.configs.split(","):
        results[label] = [run_compare(description, configs[label], label, run, args, out)
                          for run in range(1, args.runs + 1)]
    text = summary(results)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
