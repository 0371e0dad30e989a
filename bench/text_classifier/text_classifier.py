"""A small transformer text classifier in plain torch, sized by classifier.json beside it.

TorchServe's BaseHandler loads eager models from a model file holding exactly one class
with a no-argument constructor (as in TorchServe's mnist example), so the sizes come from
the config file that travels in the archive, not from arguments."""

import json
import math
from pathlib import Path

import torch
from torch import nn

CONFIG = Path(__file__).with_name("classifier.json")


class TextClassifier(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        c = config or json.loads(CONFIG.read_text())
        self.embedding = nn.Embedding(c["vocab_size"], c["d_model"], padding_idx=0)
        self.position = nn.Parameter(torch.zeros(1, c["seq_len"], c["d_model"]))
        layer = nn.TransformerEncoderLayer(c["d_model"], c["heads"], c["ff"], dropout=0.0,
                                           batch_first=True)
        # no nested tensors: the cost per request stays that of seq_len tokens
        self.encoder = nn.TransformerEncoder(layer, c["layers"], enable_nested_tensor=False)
        self.head = nn.Linear(c["d_model"], c["classes"])
        self.scale = math.sqrt(c["d_model"])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [batch, seq_len] (0 is padding) -> class probabilities [batch, classes]."""
        padding = ids == 0
        x = self.embedding(ids) * self.scale + self.position[:, : ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return torch.softmax(self.head(pooled), dim=-1)
