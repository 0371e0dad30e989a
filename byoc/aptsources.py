"""The Debian archive mirror this machine's apt uses, read the way apt reads its sources.

apt reads /etc/apt/sources.list (when it exists), and in /etc/apt/sources.list.d/ only
files ending in .list (one-line format) or .sources (deb822). Anything else there
(*.disabled, *.save, *.distUpgrade) is ignored by apt, so it is ignored here too: it
may name a third-party repository. Of what apt reads, the Debian archive is the entry
of type `deb`, enabled, whose suite is a Debian release or release-updates (not
-security, -backports or a third party's own suite) and whose components hold `main`.

scripts/bootstrap-base.sh calls `python3 -m byoc.aptsources`: standard library only,
because it runs before the project's virtual environment exists."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

# Debian's release codenames and suite names: what the archive (not a third party) serves.
DEBIAN_SUITES = frozenset({
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
})


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str  # the file it came from, for messages


class NoMirror(LookupError):
    pass


def files_apt_reads(root: Path) -> list[Path]:
    etc = root / "etc" / "apt"
    found = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    parts = etc / "sources.list.d"
    if parts.is_dir():
        found += sorted(p for p in parts.iterdir()
                        if p.is_file() and p.suffix in (".list", ".sources"))
    return found


def _one_line(path: Path, text: str) -> list[Source]:
    out = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        words = words[1:]
        if words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            out.append(Source(words[0], (words[1],), tuple(words[2:]), str(path)))
    return out


def _deb822(path: Path, text: str) -> list[Source]:
    out = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        out += [Source(uri, suites, components, str(path))
                for uri in stanza.get("uris", "").split()]
    return out


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:  # a continuation line
            current[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def sources(root: Path = Path("/")) -> list[Source]:
    found = []
    for path in files_apt_reads(root):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found += _deb822(path, text) if path.suffix == ".sources" else _one_line(path, text)
    return found


def is_debian_archive(source: Source) -> bool:
    if not source.uri.startswith(("http://", "https://")) or "main" not in source.components:
        return False
    for suite in source.suites:
        release, _, pocket = suite.partition("-")
        if release in DEBIAN_SUITES and pocket in ("", "updates"):
            return True
    return False


def debian_mirror(root: Path = Path("/")) -> str:
    """The first Debian archive URI among the sources apt reads, in apt's reading order."""
    candidates = [s for s in sources(root) if is_debian_archive(s)]
    if not candidates:
        read = ", ".join(str(p) for p in files_apt_reads(root)) or "no source files at all"
        raise NoMirror(f"no Debian archive (a deb entry for a Debian release with 'main') in "
                       f"the sources apt reads ({read})")
    return candidates[0].uri.rstrip("/")


def main(argv: list[str] | None = None) -> int:
    """`python3 -m byoc.aptsources [ROOT]`: print the mirror; ROOT (tests) holds etc/apt."""
    args = sys.argv[1:] if argv is None else argv
    try:
        print(debian_mirror(Path(args[0] if args else "/")))
    except NoMirror as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
