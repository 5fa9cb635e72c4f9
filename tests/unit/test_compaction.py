"""The compaction helpers of both harnesses (policies/compaction.py and its TypeScript twin
harnesses/pi/extensions/lib/compaction.ts) on one file of vectors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tbreplay.harnesses.pi.install import pi_dir
from pytest_tbreplay.policies.compaction import anchor, serialize

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def vectors() -> dict:
    return json.loads((VECTORS / "compaction.json").read_text())


def test_the_vectors_are_what_the_python_module_makes_now():
    done = subprocess.run([sys.executable, str(VECTORS / "make_compaction.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    v = vectors()
    assert [serialize(c["message"]) for c in v["serialize"]] == [c["expect"] for c in v["serialize"]]
    assert [anchor(*c["args"]) for c in v["anchor"]] == [c["expect"] for c in v["anchor"]]
    assert any("more chars" in c["expect"] for c in v["serialize"])  # the cut is exercised


@pytest.mark.needs("jiti")
def test_the_typescript_helpers_give_the_same_answers():
    jiti = pi_dir() / "node_modules" / "jiti" / "lib" / "jiti-cli.mjs"
    done = subprocess.run(["node", str(jiti), str(VECTORS / "run_compaction.ts"), str(VECTORS / "compaction.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got, v = json.loads(done.stdout), vectors()
    assert (got["tool_result_cut"], got["call_arguments_cut"]) == (v["tool_result_cut"], v["call_arguments_cut"])
    assert got["serialize"] == [c["expect"] for c in v["serialize"]]
    assert got["anchor"] == [c["expect"] for c in v["anchor"]]
