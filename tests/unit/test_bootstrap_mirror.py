"""Mirror detection for the offline base-image bootstrap (scripts/bootstrap-base.sh).

Each test lays out an etc/apt tree the way a real machine has it and runs the script's
--print-mirror path, so the bash glue is covered along with byoc/aptsources.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from byoc import aptsources

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bootstrap-base.sh"

DEBIAN_DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
SECURITY_FIRST_ONE_LINE = """\
# security first, as some installers write it
deb http://security.example.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://oneline.example.org/debian bookworm main contrib
deb-src http://oneline.example.org/debian bookworm main
"""
THIRD_PARTY_LIST = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
THIRD_PARTY_DEB822 = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""


def layout(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True, exist_ok=True)
    return root


def print_mirror(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--print-mirror", str(root)],
                          capture_output=True, text=True, timeout=30)


def test_deb822_only_no_sources_list(tmp_path):
    """Debian 12's default: only sources.list.d/debian.sources, no sources.list (the
    layout that made the old grep exit 2 and the bootstrap die without a word)."""
    root = layout(tmp_path, {"sources.list.d/debian.sources": DEBIAN_DEB822})
    done = print_mirror(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://mirror.example.org/debian"


def test_one_line_only_skips_security_and_reads_options(tmp_path):
    root = layout(tmp_path, {"sources.list": SECURITY_FIRST_ONE_LINE})
    done = print_mirror(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://oneline.example.org/debian"


def test_both_formats_sources_list_first(tmp_path):
    """apt reads sources.list before sources.list.d/; so does the detection."""
    root = layout(tmp_path, {"sources.list": SECURITY_FIRST_ONE_LINE,
                             "sources.list.d/debian.sources": DEBIAN_DEB822})
    assert print_mirror(root).stdout.strip() == "http://oneline.example.org/debian"


def test_files_apt_ignores_are_ignored_even_when_sorted_first(tmp_path):
    """A disabled third-party file that sorts before debian.sources, and a .save copy of
    a one-line file: apt reads neither, so neither may be taken for the mirror."""
    root = layout(tmp_path, {
        "sources.list.d/aaa-google-cloud-sdk.list.disabled-by-farm": THIRD_PARTY_LIST,
        "sources.list.d/aaa-old.list.save": "deb http://stale.example.org/debian bookworm main\n",
        "sources.list.d/debian.sources": DEBIAN_DEB822,
    })
    assert print_mirror(root).stdout.strip() == "http://mirror.example.org/debian"


def test_enabled_third_party_repositories_are_not_the_debian_archive(tmp_path):
    root = layout(tmp_path, {"sources.list.d/a-nodesource.sources": THIRD_PARTY_DEB822,
                             "sources.list.d/b-google.list": THIRD_PARTY_LIST,
                             "sources.list.d/debian.sources": DEBIAN_DEB822})
    assert print_mirror(root).stdout.strip() == "http://mirror.example.org/debian"


def test_disabled_stanza_is_skipped(tmp_path):
    text = DEBIAN_DEB822.replace("Types: deb\n# http", "Types: deb\nEnabled: no\n# http", 1)
    text += "\nTypes: deb\nURIs: http://second.example.org/debian/\nSuites: bookworm\n" \
            "Components: main\n"
    root = layout(tmp_path, {"sources.list.d/debian.sources": text})
    assert print_mirror(root).stdout.strip() == "http://second.example.org/debian"


@pytest.mark.parametrize("files", [
    {},
    {"sources.list.d/google.list.disabled": THIRD_PARTY_LIST},
    {"sources.list": "deb http://security.example.org/debian-security bookworm-security main\n"},
], ids=["nothing at all", "only an ignored file", "only security"])
def test_no_debian_archive_is_one_error_and_a_tip(tmp_path, files):
    done = print_mirror(layout(tmp_path, files))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("ERROR bootstrap-base: cannot find the Debian mirror")
    assert lines[1].startswith("TIP ")
    assert done.stdout == ""


def test_is_debian_archive_rules():
    def src(uri, suite, comps=("main",)):
        return aptsources.Source(uri, (suite,), comps, "t")

    assert aptsources.is_debian_archive(src("http://deb.debian.org/debian", "bookworm"))
    assert aptsources.is_debian_archive(src("http://deb.debian.org/debian", "trixie-updates"))
    assert not aptsources.is_debian_archive(src("http://d/debian-security", "bookworm-security"))
    assert not aptsources.is_debian_archive(src("http://d/debian", "bookworm-backports"))
    assert not aptsources.is_debian_archive(src("http://d/debian", "bookworm", ("contrib",)))
    assert not aptsources.is_debian_archive(src("file:///srv/debian", "bookworm"))


def test_bootstrap_refuses_unknown_arguments_and_images():
    for argv in (["debian:bookworm-slim", "--bogus"], ["ubuntu:24.04"], []):
        done = subprocess.run(["bash", str(SCRIPT), *argv], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode != 0
        assert done.stderr.startswith("ERROR bootstrap-base: "), done.stderr
        assert "\nTIP " in done.stderr
