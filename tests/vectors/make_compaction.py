"""Write tests/vectors/compaction.json: inputs and what policies/compaction.py makes of them. The
TypeScript twin (harnesses/pi/extensions/lib/compaction.ts) must give the same answers
(tests/unit/test_compaction.py runs both).

    python tests/vectors/make_compaction.py
"""
import json
from pathlib import Path

from pytest_tbreplay.policies.compaction import CALL_ARGUMENTS_CUT, TOOL_RESULT_CUT, anchor, serialize

HERE = Path(__file__).resolve().parent
LONG = "".join(f"line {i}: {'x' * (i % 17)}\n" for i in range(400))  # a tool result past the cut
CALL = {"function": {"name": "write", "arguments": json.dumps({"path": "/app/a.py", "content": "print(1)\n" * 90})}}
MESSAGES = [
    {"role": "user", "content": "Write /app/a.py; it must print 1."},
    {"role": "assistant", "content": "I'll write it.", "tool_calls": [CALL]},
    {"role": "assistant", "content": None, "tool_calls": [CALL, {"function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}}]},
    {"role": "tool", "content": "ok"},
    {"role": "tool", "content": LONG},
    {"role": "tool", "content": "x" * TOOL_RESULT_CUT},  # exactly at the cut: kept whole
    {"role": "user", "content": [{"type": "text", "text": "parts "}, {"type": "image"}, {"type": "text", "text": "joined"}]},
    {"role": "assistant", "content": "ünïcode ✓ and \"quotes\"\n\ttabs"},
]
ANCHORS = [
    ("Fix the build.", ["`make` succeeds", "tests pass"], ["/app/out.bin"], True),
    ("Fix the build.", ["`make` succeeds"], ["/app/out.bin"], False),
    ("Recover the db.", [], [], True),
    ("Multi\nline\ninstruction", ["a", "b", "c"], ["/app/x", "/app/y"], True),
]


def main() -> None:
    vectors = {"tool_result_cut": TOOL_RESULT_CUT, "call_arguments_cut": CALL_ARGUMENTS_CUT,
               "serialize": [{"message": m, "expect": serialize(m)} for m in MESSAGES],
               "anchor": [{"args": list(a), "expect": anchor(*a)} for a in ANCHORS]}
    (HERE / "compaction.json").write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
