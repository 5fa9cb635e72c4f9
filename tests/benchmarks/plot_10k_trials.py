"""summarize --plot on 10,000 generated trials: seconds, and a 1200x600 PNG (issue 21: was 4 min, 280,000 px tall).
Run: python tests/benchmarks/plot_10k_trials.py OUT_DIR"""
import time, random, sys
from pytest_tbreplay.analysis import summarize as sm
OUT = sys.argv[1] if len(sys.argv) > 1 else "."
recs = []
rng = random.Random(0)
for i in range(10000):
    r = sm.Record(f"task{i % 80}", f"task{i % 80}__{i:07d}", "x", rng.choice([0.0, 1.0]), rng.choice(["passed", "failed", "timeout"]),
                  turns=rng.randint(1, 300), peak_prompt_tokens=rng.randint(1000, 300000), n_ctx=262144,
                  max_tokens=rng.choice([16384, "auto", None]), max_turn_tokens=rng.randint(10, 20000))
    recs.append(sm.classify(r))
t = time.time(); sm.plot(recs, f"{OUT}/p10k.png"); print(f"10,000 trials: {time.time() - t:.1f} s")
t = time.time(); sm.plot(recs[:50], f"{OUT}/p50.png"); print(f"50 trials: {time.time() - t:.1f} s")
