"""Print the base images the config names, one a line (used by scripts/setup.sh)."""

from . import config

if __name__ == "__main__":
    for image in sorted({spec.base_image for spec in config.load().values()}):
        print(image)
