"""Verifier for polyglot-rust-c, following Terminal-Bench 2.0's test.

The app folder comes from TBREPLAY_APP (default /app). Terminal-Bench compiles into
/app/polyglot itself; we compile into a temporary folder so that running the verifier
twice does not fail the "only main.rs" check on its own leftovers.
"""
import os
import pathlib
import subprocess
import tempfile

import pytest

POLYGLOT = pathlib.Path(os.environ.get("TBREPLAY_APP", "/app")) / "polyglot"
CASES = [(0, "1"), (1, "1"), (2, "2"), (10, "89"), (42, "433494437")]


@pytest.fixture(scope="module")
def binaries():
    with tempfile.TemporaryDirectory(prefix="tbreplay-polyglot-") as tmp:
        tmp = pathlib.Path(tmp)
        source = POLYGLOT / "main.rs"
        for cmd in (
            ["rustc", str(source), "-o", str(tmp / "main")],
            ["g++", "-x", "c++", str(source), "-o", str(tmp / "cmain")],
        ):
            built = subprocess.run(cmd, capture_output=True, text=True)
            assert built.returncode == 0, f"{' '.join(cmd)} failed:\n{built.stderr[-3000:]}"
        yield tmp / "main", tmp / "cmain"


def test_only_main_rs():
    assert POLYGLOT.is_dir(), "polyglot folder not found"
    entries = sorted(p.name for p in POLYGLOT.iterdir())
    assert entries == ["main.rs"], f"polyglot folder must hold only main.rs, found {entries}"


@pytest.mark.parametrize("n,expected", CASES)
def test_fibonacci(binaries, n, expected):
    rust, cpp = binaries
    outputs = []
    for binary in (rust, cpp):
        run = subprocess.run([str(binary), str(n)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{binary.name} {n} exited {run.returncode}: {run.stderr}"
        outputs.append(run.stdout.strip())
    assert outputs == [expected, expected], f"f({n}): expected {expected}, got Rust/C++ {outputs}"
