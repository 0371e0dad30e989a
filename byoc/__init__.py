"""byoc: build, verify and push SageMaker bring-your-own-container images."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: templates, handlers and backends live beside the package.
REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"
