"""Saves are atomic, and a save killed mid-write leaves nothing behind after the next save (d16)."""
import os
import subprocess
import sys
from pathlib import Path

from factory import minimal
from pytest_tbreplay.core import cassette as cs

ROOT = Path(__file__).resolve().parents[2]

# A save that is SIGKILLed after its temp file is written, before the rename: the worst moment.
KILLED_SAVE = """
import os, signal, sys
from pytest_tbreplay.core import cassette as cs
sys.path.insert(0, sys.argv[2])
from factory import minimal
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
cs.save(cs.parse(minimal(3), "x.yaml"), sys.argv[1])
"""


def test_a_killed_save_leaves_no_cassette_and_the_next_save_removes_its_temp_file(tmp_path):
    target = tmp_path / "k.yaml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target), str(ROOT / "tests")], env=env, timeout=120)
    assert p.returncode == -9
    leftovers = list(tmp_path.glob(".*.tmp"))
    assert leftovers and not target.exists()  # atomic: no partial cassette, only the temp file
    cs.save(cs.parse(minimal(1), "y.yaml"), tmp_path / "other.yaml")
    assert list(tmp_path.glob(".*.tmp")) == []
    assert sorted(f.name for f in tmp_path.iterdir()) == ["other.yaml"]


def test_a_temp_file_of_a_save_still_running_is_left_alone(tmp_path):
    mine = tmp_path / f".busy.yaml.{os.getpid()}.abc123.tmp"  # this process is alive: a save in progress
    mine.write_text("partial")
    cs.save(cs.parse(minimal(1), "y.yaml"), tmp_path / "other.yaml")
    assert mine.exists()
