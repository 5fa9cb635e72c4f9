"""The package's wings import only the wings below them in the data's trip (record -> cassette ->
replay -> harness -> trial -> report). A new import that runs against the flow fails here."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_tbreplay"
# wing -> the wings it may import (besides itself); the top (plugin, cli) may import anything
ALLOWED = {
    "core": set(),
    "shipped": set(),
    "policies": {"core"},
    "replay": {"core"},
    "record": {"core"},
    "server": {"core"},
    "harnesses": {"core", "policies", "replay"},
    "smoke": {"core", "shipped"},
    "harbor": {"core", "policies", "harnesses"},
    "run": {"core", "harnesses", "record", "replay"},
    "analysis": {"core", "policies", "replay", "harnesses", "run"},
    "serverconfig": {"core", "policies", "server", "smoke", "harnesses", "run"},
}
TOP = {"plugin", "cli", "__init__", "_compat"}  # _compat maps old names to modules by string


def imports_of(path: Path) -> set[str]:
    """The wings `path` imports from (absolute or relative)."""
    wing = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = list(path.relative_to(PACKAGE).parent.parts)[: len(path.relative_to(PACKAGE).parts) - node.level]
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts[0]] if parts else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "pytest_tbreplay":
                parts = node.module.split(".")[1:]
                names = [parts[0]] if parts else [a.name for a in node.names]
            else:
                continue
            found |= set(names)
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pytest_tbreplay.")}
    return found - {wing}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") not in TOP)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_wing_imports_only_the_wings_below_it(path):
    wing = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    assert wing in ALLOWED, f"{wing}: a new wing; say in ALLOWED which wings it may import"
    assert imports_of(path) <= ALLOWED[wing], f"{path.relative_to(PACKAGE)} imports against the flow"


def test_the_rule_catches_a_harness_importing_the_server_builder(tmp_path, monkeypatch):
    bad = PACKAGE / "harnesses" / "_layering_probe.py"
    source = "from pytest_tbreplay.server.llama import build_server\nfrom ..server import llama\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == bad else _read(self))
    assert imports_of(bad) == {"server"}
    assert not imports_of(bad) <= ALLOWED["harnesses"]


_read = Path.read_text


def test_test_modules_have_unique_names_across_tiers():
    """The tiers are folders without __init__.py: two test files of one name collide when every tier
    is collected (pytest imports both as one module), which the fast tier alone never shows."""
    tests = PACKAGE.parent / "tests"
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
