"""Per-layer sizes of an image and a check for duplicated CUDA libraries.

    .venv/bin/python bench/layer_report.py IMAGE

Lists each layer (size, the instruction that made it) and every CUDA/cuDNN/NCCL
shared library in the image grouped by name: the same library twice (a CUDA base
image under pip's nvidia-* wheels, say) is reported and exits 1."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byoc import launcher  # noqa: E402

FIND_CUDA_LIBS = (
    "find / -xdev \\( -name 'libcudart.so*' -o -name 'libcublas*.so*' -o -name 'libcudnn*.so*' "
    "-o -name 'libnccl*.so*' -o -name 'libcufft*.so*' -o -name 'libcusparse*.so*' "
    "-o -name 'libcusolver*.so*' -o -name 'libcurand*.so*' -o -name 'libnvrtc*.so*' "
    "-o -name 'libcuda.so*' \\) -type f -printf '%s %p\\n' 2>/dev/null")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    image = sys.argv[1]
    dock = launcher.client()
    history = dock.images.get(image).history()
    print(f"# {image}\n\n| size | created by |\n| ---: | --- |")
    for layer in reversed(history):
        if layer["Size"] < 1_000_000:
            continue
        made_by = " ".join(layer["CreatedBy"].replace("/bin/sh -c ", "").split())[:110]
        print(f"| {layer['Size'] / 1e6:,.0f} MB | `{made_by}` |")
    total = sum(layer["Size"] for layer in history)
    print(f"| **{total / 1e9:.2f} GB** | total |")
    out = dock.containers.run(image, ["sh", "-c", FIND_CUDA_LIBS], remove=True,
                              entrypoint=[]).decode()
    libs = collections.defaultdict(list)
    for line in out.splitlines():
        size, path = line.split(" ", 1)
        name = Path(path).name.split(".so")[0]
        libs[name].append((int(size), path))
    print(f"\nCUDA libraries: {len(libs)} distinct, "
          f"{sum(s for v in libs.values() for s, _ in v) / 1e9:.2f} GB")
    duplicated = {k: v for k, v in libs.items() if len(v) > 1}
    for name, copies in sorted(libs.items()):
        print(f"  {name}: {', '.join(p for _, p in copies)}")
    if duplicated:
        print(f"DUPLICATED: {', '.join(sorted(duplicated))}")
        return 1
    print("no CUDA library appears twice" if libs else "no CUDA libraries (a CPU image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
