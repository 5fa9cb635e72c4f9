"""Reading the README and the docs as the tests check them: code blocks with their example
markers, command lines, and the repository paths the text names."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Every document a user or maintainer is sent to: what they name must exist.
DOCUMENTS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# A path is the repository's when it starts at one of its top-level entries.
TOP = ("pytest_tbreplay/", "tests/", "tools/", "docs/", "cassettes/", "smoke/", ".ci/", "conftest.py",
       "pyproject.toml", "README.md", "CHANGELOG.md")

_FENCE = re.compile(r"(?:<!-- example: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


@dataclass
class Block:
    lang: str
    marker: str | None  # `<!-- example: ... -->` on the line before the fence
    body: str
    line: int


def blocks(text: str) -> list[Block]:
    return [Block(m["lang"], m["marker"], m["body"], text.count("\n", 0, m.start("body")) + 1)
            for m in _FENCE.finditer(text)]


def command_lines(text: str) -> list[tuple[int, list[str]]]:
    """Every `tbreplay ...`, `python -m pytest_tbreplay.cli ...` and `[python -m] pytest ...` command
    of the text's code blocks (indented ones too), as argv after the program, `\\` continuations joined,
    comments and `&&` chains split off."""
    found = []
    for b in blocks(text) + _indented(text):
        if b.lang == "python":
            continue
        joined = re.sub(r"\\\n\s*", " ", b.body)
        for i, line in enumerate(joined.splitlines()):
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if argv := _program_args(words):
                    found.append((b.line + i, argv))
    return found


def _program_args(words: list[str]) -> list[str] | None:
    for prog in (["python", "-m", "pytest_tbreplay.cli"], ["tbreplay"], ["python", "-m", "pytest"], ["pytest"]):
        if words[:len(prog)] == prog:
            kind = "pytest" if prog[-1] == "pytest" else "tbreplay"
            return [kind, *words[len(prog):]]
    return None


def _indented(text: str) -> list[Block]:
    """Four-space indented code (the Harbor and server recipes) outside fenced blocks."""
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found, lines = [], outside.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("    ") and (i == 0 or not lines[i - 1].startswith("    ")) and \
                (i == 0 or not lines[i - 1].strip()):
            body = []
            for more in lines[i:]:
                if more.startswith("    ") or not more.strip():
                    body.append(more[4:])
                else:
                    break
            found.append(Block("", None, "\n".join(body), i + 1))
    return found


def repo_paths(text: str) -> set[str]:
    """Repository paths the text names: in backticks, or as link targets."""
    candidates = re.findall(r"`([^`\s]+)`", text) + re.findall(r"\]\(([^)\s]+)\)", text)
    paths = set()
    for c in candidates:
        c = re.split(r"::|:(?=[A-Za-z_])", c)[0].rstrip(".,;")  # test ids and module:Name
        if c.startswith(TOP) or re.fullmatch(r"[\w.-]+\.md", c):
            paths.add(c)
    return paths


def missing(path: str) -> bool:
    """Whether a named path is absent: `<placeholder>` parts check the folder before them, globs must match."""
    if "<" in path:
        path = path.split("<")[0].rsplit("/", 1)[0] or "."
    if "*" in path:
        return not list(ROOT.glob(path))
    target = ROOT / path if "/" in path or (ROOT / path).exists() else ROOT / "docs" / path
    return not target.exists()


def write_example_project(folder: Path, kind: str) -> int:
    """The README's examples of `kind` (replay, live) as a user's project in `folder`, with the files
    they use (`<!-- example: file PATH -->`); returns how many tests they define."""
    tests = 0
    for b in blocks(README.read_text()):
        if not b.marker:
            continue
        what, *arg = b.marker.split()
        if what == "file":
            (folder / arg[0]).parent.mkdir(parents=True, exist_ok=True)
            (folder / arg[0]).write_text(b.body)
        elif what == kind:
            (folder / f"test_readme_{kind}_{b.line}.py").write_text(b.body)
            tests += len(re.findall(r"^def test_", b.body, re.M))
    return tests
