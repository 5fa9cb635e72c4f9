"""Writes tests/data/stuck_cases.json: turn sequences for the stuck-turn guard with the verdicts
(and texts) policies/stuck.py gives; tests/unit/test_stuck.py checks the TypeScript port against
them and pins the key verdicts by hand.

    python tests/vectors/make_stuck.py"""
import json
from pathlib import Path

from pytest_tbreplay.core.profiles import STUCK_DEFAULTS as DEFAULTS
from pytest_tbreplay.policies.stuck import STUCK_NUDGE, STUCK_STOP, StuckGuard, step_of

OUT = Path(__file__).parents[1] / "data" / "stuck_cases.json"
MAKE_ERR = ("gcc -c -O2 povray.cpp\npovray.cpp:412:10: fatal error: boost/thread.hpp: No such file or directory\n"
            "compilation terminated.\nmake: *** [Makefile:30: povray.o] Error 1\n\nCommand exited with code 2")


def bash(cmd, out, err=False):
    return ["bash", {"command": cmd}, out, err]


E = [bash("cd /app && make", MAKE_ERR, True)]
A = [bash("cat /app/Makefile", "CXX=g++\nall: povray\n")]
B = [bash("sed -i 's/-O2/-O3/' /app/Makefile", "")]
X = [["read", {"path": "/app/povray.cpp"}, "#include <boost/thread.hpp>\n", False]]
CASES = {
    "the same failing build, six turns": [E] * 6,
    "the same successful call with the same result": [[bash("ls /app", "Makefile\npovray.cpp\n")]] * 6,
    "the same call failing with a changing error text": [
        [bash("./run_tests.sh", f"FAILED at {t}s\n\nCommand exited with code 1", True)] for t in range(6)],
    "two calls alternating A B A B": [A, B] * 4,
    "alternation of two every two turns is not A B": [A, A, B, B] * 3,
    "a poll that fails twice then succeeds": [
        [bash("curl -s localhost:8000/health", "curl: (7) Failed to connect\n\nCommand exited with code 7", True)]] * 2
        + [[bash("curl -s localhost:8000/health", '{"status":"ok","uptime":%d}' % t)] for t in range(5)],
    "ls whose result changes every time": [[bash("ls /app/out", "\n".join(f"part-{i}" for i in range(t)))]
                                           for t in range(8)],
    "keys in another order are the same call": [[["bash", {"command": "make", "timeout": 60}, MAKE_ERR, True]],
                                                [["bash", {"timeout": 60, "command": "make"}, MAKE_ERR, True]]] * 3,
    "a different step after the nudge resets the count": [E] * 4 + [X] + [E] * 5,
    "multi-call turns repeated": [E + A] * 5,
    "a command with $& and unicode in it": [[bash("echo '$& ünï' && false", "$& ünï\n", True)]] * 6,
    "a long command is shortened in the text": [[bash("python3 -c \"" + "x = 1; " * 30 + "\"", "", True)]] * 5,
    "a build failing twice between reads is not stuck": [E, E, X, E, E, X, E, E],
}
CONFIGS = {
    "the same failing build, repeats 2 and one step after the nudge": ([E] * 4, {"repeats": 2, "after_nudge": 1}),
    "A B A B with alternation 2": ([A, B] * 3, {"alternation": 2}),
}


def run(steps, config):
    guard = StuckGuard(**config)
    verdicts, texts = [], []
    for s in steps:
        v = guard.observe(step_of([tuple(c) for c in s]))
        verdicts.append(v)
        texts.append(guard.text(STUCK_NUDGE if v == "nudge" else STUCK_STOP) if v else None)
    return verdicts, texts


def main():
    cases = []
    for name, (steps, config) in {**{k: (v, {}) for k, v in CASES.items()}, **CONFIGS}.items():
        config = DEFAULTS | config
        verdicts, texts = run(steps, config)
        cases.append({"name": name, "config": config, "steps": steps, "verdicts": verdicts, "texts": texts})
    OUT.write_text(json.dumps({"nudge": STUCK_NUDGE, "stop": STUCK_STOP, "cases": cases}, indent=1,
                              ensure_ascii=False) + "\n")
    for c in cases:
        print(f"{c['name']}: {c['verdicts']}")


if __name__ == "__main__":
    main()
