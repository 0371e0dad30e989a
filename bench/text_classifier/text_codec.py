"""Requests and answers of the text classifier, shared by its TorchServe handler and its
Triton Python backend so both servers read and answer the same way.

A request is text/plain (the text) or application/json ({"text": "..."}); the answer is
{"label": N, "probabilities": [...]} as JSON. Tokens: lowercase words, looked up in the
archive's vocab.txt (one word a line; line 1 is padding, line 2 unknown words)."""

import json
import re

import torch

PAD, UNKNOWN = 0, 1
WORD = re.compile(r"[a-z]+")


def load_vocabulary(path) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        return {line.strip(): i for i, line in enumerate(f) if line.strip()}


def request_text(value, content_type: str | None = None) -> str:
    """The text of one request body, however the server handed it over: TorchServe gives
    JSON parsed and text decoded; Triton gives bytes and the Content-Type."""
    if isinstance(value, (bytes, bytearray)):
        media = (content_type or "").split(";")[0].strip().lower()
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the body is not UTF-8 text") from None
        if media == "application/json":
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("the body is not valid JSON") from None
    if isinstance(value, dict):
        value = value.get("text")
    if not isinstance(value, str) or not value.strip():
        raise ValueError('send text/plain, or application/json {"text": "..."}')
    return value


def encode(texts: list[str], vocabulary: dict[str, int], seq_len: int) -> torch.Tensor:
    """Token ids [len(texts), seq_len], padded with PAD, longer texts cut."""
    ids = torch.full((len(texts), seq_len), PAD, dtype=torch.long)
    for row, text in enumerate(texts):
        tokens = [vocabulary.get(w, UNKNOWN) for w in WORD.findall(text.lower())][:seq_len]
        ids[row, : len(tokens)] = torch.tensor(tokens or [UNKNOWN], dtype=torch.long)
    return ids


def answers(probabilities: torch.Tensor) -> list[str]:
    """One JSON answer per row."""
    return [json.dumps({"label": int(row.argmax()),
                        "probabilities": [round(float(p), 6) for p in row]})
            for row in probabilities]
