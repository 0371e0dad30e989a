"""TorchServe handler of the text classifier, in the shape of TorchServe's examples: the
base handler loads the eager model (text_classifier.py and its weights); this class only
turns requests into token ids and probabilities into answers."""

import json
import logging
import os

from text_codec import answers, encode, load_vocabulary, request_text
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

logger = logging.getLogger(__name__)


class TextClassifierHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, "classifier.json")) as f:
            self.seq_len = json.load(f)["seq_len"]
        self.vocabulary = load_vocabulary(os.path.join(model_dir, "vocab.txt"))
        logger.info("text classifier loaded on %s", self.device)

    def preprocess(self, data):
        try:
            texts = [request_text(row.get("data") or row.get("body")) for row in data]
        except ValueError as exc:
            raise PredictionException(str(exc), 400) from None
        return encode(texts, self.vocabulary, self.seq_len)

    def postprocess(self, data):
        out = answers(data)
        for i in range(len(out)):
            self.context.set_response_content_type(i, "application/json")
        return out
