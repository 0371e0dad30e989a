"""Reading rendered Dockerfiles in tests: instructions, stages, labels and quoted words,
parsed by BuildKit's rules, so a test sees what the builder will see."""

from __future__ import annotations

import shlex


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in dockerfile.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    return result


def unquote(text: str) -> tuple[str, str]:
    """Read a Dockerfile double-quoted word at the start of text (BuildKit's rules):
    returns (value, rest). An unescaped $ would be expanded, so it fails the test."""
    assert text.startswith('"'), text
    out, i = [], 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if nxt in '"$\\' else ch + nxt)
            i += 2
        elif ch == '"':
            return "".join(out), text[i + 1:]
        elif ch == "$":
            raise AssertionError(f"unescaped $ at {i} in {text!r}")
        else:
            out.append(ch)
            i += 1
    raise AssertionError(f"unterminated string: {text!r}")


def key_values(args: str) -> dict[str, str]:
    """LABEL/ENV arguments `k="v" k2=v2` to a dict; quoted values must close cleanly."""
    pairs, rest = {}, args.strip()
    while rest:
        key, sep, rest = rest.partition("=")
        assert sep and " " not in key.strip(), f"not a key=value pair: {args!r}"
        if rest.startswith('"'):
            value, rest = unquote(rest)
            assert rest == "" or rest.startswith(" "), f"junk after a closing quote: {rest!r}"
        else:
            value, _, rest = rest.partition(" ")
        pairs[key.strip()] = value
        rest = rest.strip()
    return pairs


def labels_of(dockerfile: str) -> dict[str, str]:
    found = [key_values(args) for kw, args in instructions(dockerfile) if kw == "LABEL"]
    assert len(found) == 1
    return found[0]


def stages(dockerfile: str) -> dict[str, list[tuple[str, str]]]:
    """Instructions grouped by build stage name (FROM ... AS name)."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for kw, args in instructions(dockerfile):
        if kw == "FROM":
            current = args.split()[-1]
            result[current] = []
        elif current is not None:
            result[current].append((kw, args))
    return result


def pip_args(dockerfile: str, first: str) -> list[str]:
    """The arguments of the pip-install.sh RUN whose first package starts with `first`,
    as the shell will split them."""
    for kw, args in instructions(dockerfile):
        if kw == "RUN" and "pip-install.sh" in args:
            tokens = shlex.split(args)
            rest = tokens[tokens.index("/byoc-build/pip-install.sh") + 1:]
            if rest[0].startswith(first):
                return rest
    raise AssertionError(f"no pip-install.sh RUN for {first}")


def env_of(dockerfile: str) -> dict[str, str]:
    """The last ENV instruction (the image stage's runtime settings) as a dict."""
    found = [key_values(args) for kw, args in instructions(dockerfile) if kw == "ENV"]
    return found[-1]
