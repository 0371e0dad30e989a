#!/usr/bin/env python3
"""byoc: build SageMaker-ready TorchServe and Triton images. See README.md."""
import sys

from byoc.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
