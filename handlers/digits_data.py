"""The example model's data: scikit-learn's bundled 8x8 digits, split the same way everywhere.

Training and the container tests that measure accuracy both call load_split(), so the
held-out accuracy they report is measured on the same instances.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.25
SPLIT_SEED = 0


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, x_test, y_train, y_test); x is float32 (N, 64) in 0..16, y is int64."""
    digits = load_digits()  # bundled with scikit-learn, no download
    features = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return x_train, x_test, y_train, y_test
