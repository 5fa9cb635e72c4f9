"""What both harnesses' compactions share (a, b, g): the conversation as the summary request sees it,
and the anchor a summary starts with, never paraphrased by the model. The pi extensions run the
same functions (harnesses/pi/extensions/lib/compaction.ts); both are checked against
tests/vectors/compaction.json (tests/vectors/make_compaction.py writes it from this module)."""
from __future__ import annotations

TOOL_RESULT_CUT = 2000  # pi cuts tool results to 2000 chars in what it summarizes
CALL_ARGUMENTS_CUT = 500  # and a tool call's arguments to 500


def serialize(m: dict) -> str:
    """One chat (wire) message as the summary request shows it: `[role]: text`, a tool result cut to
    TOOL_RESULT_CUT characters, each tool call on its own line with its arguments cut."""
    content = m.get("content") or ""
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if m["role"] == "tool" and len(text) > TOOL_RESULT_CUT:
        text = text[:TOOL_RESULT_CUT] + f"\n... ({len(text) - TOOL_RESULT_CUT} more chars)"
    calls = "".join(f"\n[tool call {c['function']['name']}: {str(c['function']['arguments'])[:CALL_ARGUMENTS_CUT]}]"
                    for c in m.get("tool_calls") or [])
    return f"[{m['role']}]: {text}{calls}"


def anchor(instruction: str, acceptance: list[str], files: list[str], anchored: bool) -> str:
    """What a summary starts with, kept verbatim: always the task instruction; with (g) also the
    acceptance criteria and the files produced so far."""
    text = f"## Original task (verbatim)\n{instruction}"
    if anchored:
        criteria = "\n".join(f"- {c}" for c in acceptance) or "- (see the task)"
        written = "\n".join(f"- {f}" for f in files) or "- (none yet)"
        text += f"\n\n## Acceptance criteria\n{criteria}\n\n## Files written so far\n{written}"
    return text
