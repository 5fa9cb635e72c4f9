"""`tbreplay export --atif`: replays, cassettes and imported trials as ATIF trajectories, validated
by Harbor 0.26's own pydantic models (Trajectory) in its venv, so `harbor view` can open them."""
import json
import subprocess
from pathlib import Path

import pytest

from harbor_run import HARBOR_VENV
from pytest_tbreplay.cli import main
from trialgen import make_job

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = sorted((ROOT / "cassettes").glob("*.yaml"))

VALIDATE = """
import json, sys
from harbor.models.trajectories.trajectory import Trajectory
for path in sys.argv[1:]:
    t = Trajectory.model_validate(json.load(open(path)))
    print(path, t.schema_version, len(t.steps), t.final_metrics.total_completion_tokens)
"""


def validate(paths: list[Path]) -> list[str]:
    p = subprocess.run([str(HARBOR_VENV / "bin" / "python"), "-c", VALIDATE, *map(str, paths)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout.splitlines()


@pytest.mark.needs("harbor")
def test_replays_cassettes_and_imports_validate_as_harbors_trajectory(tmp_path):
    out = []
    for c in CASSETTES:
        for profile in (None, "baseline", "mitigated"):
            path = tmp_path / f"{c.stem}-{profile or 'recorded'}.json"
            assert main(["export", "--atif", str(c), str(path)] + (["--profile", profile] if profile else [])) == 0
            out.append(path)
    job = make_job(tmp_path)
    for trial in sorted(p for p in job.iterdir() if (p / "agent" / "pi" / "sessions").is_dir()):
        path = tmp_path / f"imported-{trial.name}.json"
        assert main(["export", "--atif", str(trial), str(path)]) == 0
        out.append(path)
    lines = validate(out)
    assert len(lines) == len(out) and all(" ATIF-v1.7 " in line for line in lines)


@pytest.mark.needs("harbor")
def test_what_the_harness_did_travels_in_the_steps(tmp_path):
    path = tmp_path / "poly.json"
    assert main(["export", "--atif", str(ROOT / "cassettes" / "polyglot-rust-c.yaml"), str(path),
                 "--profile", "mitigated"]) == 0
    validate([path])
    t = json.loads(path.read_text())
    cut = [s for s in t["steps"] if any(m["kind"] == "loop-cut" for m in (s.get("extra") or {}).get("marks", []))]
    assert len(cut) == 1 and cut[0]["extra"]["stop_reason"] == "length" and cut[0]["metrics"]["completion_tokens"] < 32000
    nudge = t["steps"][t["steps"].index(cut[0]) + 1]
    assert nudge["source"] == "user" and "looping" in nudge["message"]
