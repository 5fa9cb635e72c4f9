"""The README against what it describes: its quick start is what CI runs, every command line in it
parses (the CLI's argparse; pytest's own parser with the plugin, or with this repository's conftest
for the section about this repository), every code example is marked for the test that runs it, and
no document names a repository file that is not there."""
import re

import pytest

from pytest_tbreplay import cli
from readme_doc import DOCUMENTS, README, ROOT, blocks, command_lines, missing, repo_paths

TEXT = README.read_text()
# Marked examples and the test that runs each kind.
EXAMPLE_KINDS = {"replay": "tests/replay/test_readme_examples.py", "live": "tests/live/test_readme_live.py",
                 "file": "the examples' project folder"}
REPO_SECTION = "## Testing pytest-tbreplay itself"  # the only place for this repository's own options


def test_ci_runs_the_readme_quick_start():
    quick_start = blocks(TEXT)[0].body.strip().splitlines()
    assert len(quick_start) == 2  # one command sets everything up, one runs the tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-2:] == quick_start


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.name)
def test_every_repository_path_a_document_names_exists(doc):
    gone = sorted(p for p in repo_paths(doc.read_text()) if missing(p))
    assert not gone, f"{doc.name} names files that are not in the repository: {gone}"


def test_the_path_check_catches_a_missing_file():
    assert missing("failure-analysis.md") and missing("tests/test_pi.py") and missing("README-harbor.md")
    assert not missing("docs/design.md") and not missing("tests/pi/test_pi.py") and not missing("smoke/<task>")
    assert repo_paths("see `tests/pi/test_pi.py::test_x`, [x](docs/design.md), `README-loop.md`") == \
        {"tests/pi/test_pi.py", "docs/design.md", "README-loop.md"}


def test_every_code_example_is_marked_for_the_test_that_runs_it():
    for b in blocks(TEXT):
        if b.lang in ("python", "ini", "yaml", "toml", "json"):
            assert b.marker, f"README line {b.line}: a {b.lang} example no test runs (mark it <!-- example: ... -->)"
            assert b.marker.split()[0] in EXAMPLE_KINDS, f"README line {b.line}: unknown example kind {b.marker!r}"
    kinds = {b.marker.split()[0] for b in blocks(TEXT) if b.marker}
    assert {"replay", "live"} <= kinds


def test_the_readme_tells_no_dated_history():
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", TEXT), "dated narrative belongs in CHANGELOG.md"
    assert not re.search(r"\b[0-9a-f]{7}\b(?=\))", TEXT), "commit hashes belong in CHANGELOG.md"


# -- command lines -----------------------------------------------------------------------------------
COMMANDS = command_lines(TEXT)
TBREPLAY = [argv[1:] for _, argv in COMMANDS if argv[0] == "tbreplay"]
PYTEST = [(line, argv[1:]) for line, argv in COMMANDS if argv[0] == "pytest"]


def test_the_readme_has_commands_of_both_kinds():
    assert len(TBREPLAY) >= 10 and len(PYTEST) >= 10
    assert ["--live", "-m", "smoke", "--pyargs", "pytest_tbreplay.smoke"] in [a for _, a in PYTEST]


@pytest.fixture
def dry_cli(monkeypatch):
    """The CLI with every command replaced by one that only records what argparse gave it."""
    seen = []
    for name, value in vars(cli).copy().items():
        if name.startswith("_") and not name.startswith("__") and callable(value) and value.__module__ == cli.__name__:
            monkeypatch.setattr(cli, name, lambda args, name=name: seen.append((name, args)) or 0)

    def parse(argv):
        seen.clear()
        assert cli.main(argv) == 0
        return seen[0]
    return parse


@pytest.mark.parametrize("argv", TBREPLAY, ids=" ".join)
def test_every_tbreplay_command_in_the_readme_parses(argv, dry_cli):
    command, args = dry_cli(argv)
    assert args.command == argv[0] and command.lstrip("_").replace("_", "-") == argv[0]


def test_a_wrong_tbreplay_command_does_not_parse(dry_cli):
    for argv in (["replay", "x", "--harness", "gpt"], ["show"], ["sweep", "--no-such-option"]):
        with pytest.raises(SystemExit):
            dry_cli(argv)


def _section(line: int) -> str:
    heads = [h for h in re.finditer(r"^## .*$", TEXT, re.M) if TEXT.count("\n", 0, h.start()) < line]
    return heads[-1].group(0) if heads else ""


@pytest.mark.parametrize("line, argv", PYTEST, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_every_pytest_command_in_the_readme_parses(line, argv, pytester, pytestconfig):
    """A user's project knows the plugin's options (pytester's folder has no conftest); this
    repository's section may use the root conftest's options too. Named test paths exist."""
    for arg in argv:
        if arg.startswith("tests/"):
            assert not missing(arg.split("::")[0]), f"README line {line}: {arg} does not exist"
    if _section(line) == REPO_SECTION:
        pytestconfig._parser.parse(argv)  # raises UsageError on an unknown option or a bad choice
    else:
        pytester.parseconfig(*argv)


def test_a_repository_option_does_not_parse_in_a_users_project(pytester):
    with pytest.raises(pytest.UsageError):
        pytester.parseconfig("--live", "--harbor")
