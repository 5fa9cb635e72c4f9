"""Verify-before-done's gate (issue 10 item 3): which actions produce output, which check it, on
table-driven claim/check shapes (tests/data/verify_cases.json) run through both implementations:
pytest_tbreplay/policies/gate.py (reference harness) and harnesses/pi/extensions/lib/gate.ts (pi)."""
import json
import subprocess
from pathlib import Path

import pytest

from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.policies.gate import RULES_FILE, SUCCESS_CLAIM, VerifyGate

DATA = Path(__file__).parents[1] / "data"
CASES = json.loads((DATA / "verify_cases.json").read_text())
CRITERIA = ["crit A", "crit B"]


def python_gate(case: dict) -> dict:
    gate = VerifyGate()
    checked = [gate.observe(name, args, output, is_error) for name, args, output, is_error in case["calls"]]
    return {"armed": sorted(gate.armed), "checked": checked,
            "demand": gate.demand(case["claim"], case.get("criteria", CRITERIA))}


def test_there_are_at_least_a_dozen_claim_check_shapes():
    assert len(CASES) >= 12
    assert sum(c["demand"] for c in CASES) >= 6 and sum(not c["demand"] for c in CASES) >= 6


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_gate_decides_each_shape(case):
    got = python_gate(case)
    assert got["armed"] == case["armed"]
    assert got["checked"] == case["checked"]
    assert bool(got["demand"]) == case["demand"]
    if case["demand"]:
        first = got["demand"].split("since it produced ")[1].split(":")[0].split(", ")[0]
        criteria = case.get("criteria", CRITERIA)
        in_criteria = [a for a in case["armed"] if any(a in c for c in criteria)]
        named_in_claim = [a for a in case["armed"] if a in case["claim"] or Path(a).name in case["claim"]]
        # what the criteria name comes first, then what the claim names
        assert first == (in_criteria or named_in_claim or case["armed"])[0]
        assert all(f"- {c}" in got["demand"] for c in criteria)  # the criteria, quoted


def test_the_demand_says_what_produced_each_artifact():
    case = next(c for c in CASES if c["name"].startswith("re-running the producing command"))
    demand = python_gate(case)["demand"]
    assert "/app/out.json (by `python3 gen.py > /app/out.json`)" in demand
    assert "Re-running what produced an output is not a check" in demand


@pytest.mark.needs("pi")
def test_the_pi_gate_decides_every_shape_as_the_python_gate():
    done = subprocess.run(["node", str(DATA / "run_gate.mjs"), str(pi.LIBRARIES / "gate.ts"), str(RULES_FILE),
                           str(DATA / "verify_cases.json"), SUCCESS_CLAIM.pattern, str(pi.pi_dir())],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ts = json.loads(done.stdout)
    for case, theirs in zip(CASES, ts):
        assert theirs == python_gate(case), case["name"]


# -- generated families: any artifact path, any producer, any inspection --------------------------
from hypothesis import given, strategies as st  # noqa: E402

PATHS = st.from_regex(r"/app/[a-z]{1,8}(/[a-z_]{1,8})?\.(json|csv|txt|bin|h)", fullmatch=True)
PRODUCERS = ["python3 gen.py > {p}", "cp /tmp/x {p}", "make 2>&1 | tee {p}", "sed -i 's/a/b/' {p}", "touch {p}",
             "gcc -O2 -o {p} main.c", "cd /app && python3 gen.py >> {p}", "python3 -c \"open('{p}', 'w').write('1')\""]
INSPECTIONS = ["cat {p}", "head -n 3 {p}", "tail {p}", "wc -l {p}", "jq . {p}", "xxd {p} | head",
               "python3 -c \"print(open('{p}').read())\"", "diff {p} /tmp/expected", "grep -c x {p}"]
NOT_CHECKS = ["ls -l {p}", "test -f {p}", "stat {p}", "echo wrote {p}", "file {p}", "du -h {p}"]


@given(PATHS, st.sampled_from(PRODUCERS), st.sampled_from(NOT_CHECKS))
def test_existence_and_echo_never_check_what_any_producer_made(path, produce, look):
    gate = VerifyGate()
    gate.observe("bash", {"command": produce.format(p=path)}, "", False)
    assert path in gate.armed
    assert not gate.observe("bash", {"command": look.format(p=path)}, "", False)
    assert path in gate.demand("Done!", ["c"])


@given(PATHS, st.sampled_from(PRODUCERS))
def test_producing_again_is_never_a_check(path, produce):
    gate = VerifyGate()
    for _ in range(2):
        assert not gate.observe("bash", {"command": produce.format(p=path)}, "", False)
    assert path in gate.armed


@given(PATHS, st.sampled_from(PRODUCERS), st.sampled_from(INSPECTIONS))
def test_any_inspection_checks_what_any_producer_made(path, produce, inspect):
    gate = VerifyGate()
    gate.observe("bash", {"command": produce.format(p=path)}, "", False)
    assert gate.observe("bash", {"command": inspect.format(p=path)}, "x", False)
    assert path not in gate.armed and gate.demand("Done!", ["c"]) is None


# -- issue 20 item 4: produce-then-claim families; the demand names what the criteria name -------
ARTIFACTS = st.from_regex(r"/app/[a-z]{1,8}(/[a-z_]{1,8})?\.(bin|json|pt|npy|csv|db)", fullmatch=True)
SCRIPT_SAVES = ["model.save_model('{p}')", "torch.save(model.state_dict(), '{p}')", "joblib.dump(clf, '{p}')",
                "np.save('{p}', x)", "df.to_csv('{p}')", "open('{p}', 'wb').write(b)", "Path('{p}').write_text(s)"]
ONE_LINERS = ["python3 -c \"import numpy as np; np.save('{p}', np.zeros(3))\"",
              "python3 -c \"open('{p}', 'w').write('1')\"",
              "node -e \"require('fs').writeFileSync('{p}', '{{}}')\""]
LOADERS = ["python3 -c \"import fasttext; m = fasttext.load_model('{p}'); print(m.test('/app/test.txt'))\"",
           "python3 -c \"import torch; print(torch.load('{p}'))\"", "node -e \"console.log(require('{p}'))\"",
           "sqlite3 {p} 'select count(*) from t'", "python3 -c \"import numpy; print(numpy.load('{p}').shape)\""]
CLAIMS = ["Done! saved to {p}", "Training completed.", "Finished: the output is ready.", "Done!"]


def produce(gate: VerifyGate, kind: str, how: str, path: str) -> list[bool]:
    """The calls of one producer family; what observe() said of each."""
    if kind == "script":
        code = f"import numpy as np\nx = 1\n{how.format(p=path)}\nprint('ok')\n"
        return [gate.observe("write", {"path": "/app/make_it.py", "content": code}, "Successfully wrote", False),
                gate.observe("bash", {"command": "cd /app && python3 make_it.py"}, "ok", False)]
    if kind == "one-liner":
        return [gate.observe("bash", {"command": how.format(p=path)}, "", False)]
    return [gate.observe("bash", {"command": f"cd /app && gcc -O2 -o {path} main.c"}, "", False)]


FAMILIES = st.one_of(st.tuples(st.just("script"), st.sampled_from(SCRIPT_SAVES)),
                     st.tuples(st.just("one-liner"), st.sampled_from(ONE_LINERS)),
                     st.tuples(st.just("build"), st.just("")))


@given(ARTIFACTS, FAMILIES, st.sampled_from(CLAIMS))
def test_producing_is_no_check_and_the_demand_names_the_criteria_artifact_first(path, family, claim):
    gate = VerifyGate()
    gate.observe("bash", {"command": "python3 notes.py > /app/zz_notes.txt"}, "", False)  # another output
    assert produce(gate, *family, path) == [False] * (2 if family[0] == "script" else 1)
    demand = gate.demand(claim.format(p="/app/zz_notes.txt"), [f"{path} is what the task asks for", "it is valid"])
    assert demand is not None
    assert demand.split("since it produced ")[1].startswith(path + ",")  # the criteria's, not the claim's
    assert f"- {path} is what the task asks for" in demand


@given(ARTIFACTS, FAMILIES, st.sampled_from(LOADERS), st.sampled_from(CLAIMS))
def test_a_program_that_loads_or_evaluates_the_artifact_checks_it(path, family, load, claim):
    gate = VerifyGate()
    produce(gate, *family, path)
    assert path in gate.armed
    if family[0] == "build":
        load = "{p} --self-test"  # a built program is checked by running it
    assert gate.observe("bash", {"command": load.format(p=path)}, "(1000, 0.64, 0.64)", False)
    assert path not in gate.armed and gate.demand(claim.format(p=path), [f"{path} exists"]) is None
