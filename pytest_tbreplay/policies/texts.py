"""The words the mitigations say to the model, one home for both harnesses (the pi extensions get them
through their config): the system prompt, the loop nudge, the compaction summary's request, and
the anchor a summary starts with (task, acceptance criteria, files produced)."""
from __future__ import annotations

from pytest_tbreplay.core.trial import TaskSpec

SYSTEM = ("You are an expert coding assistant working in a terminal. Use the tools read, bash, edit "
          "and write to complete the user's task. Be concise.")
NUDGE = "Your last message was cut off for looping; stop and take a different concrete action."
SUMMARY_SYSTEM = ("You are a context summarization assistant. Read the conversation and ONLY output the "
                  "structured summary.")
SUMMARY_ASK = ("Summarize the conversation above with the sections: Goal, Constraints & Preferences, "
               "Progress (Done / In Progress / Blocked), Key Decisions, Next Steps, Critical Context.")
MAX_NUDGES = 3
MAX_VERIFY_DEMANDS = 2
TOOL_RESULT_CUT = 2000  # pi cuts tool results to 2000 chars in what it summarizes


def anchor(task: TaskSpec, files: list[str], anchored: bool) -> str:
    """What a summary starts with, kept verbatim, never paraphrased by the model: always the task
    instruction; with (g) also the acceptance criteria and the files produced so far."""
    text = f"## Original task (verbatim)\n{task.instruction}"
    if anchored:
        criteria = "\n".join(f"- {c}" for c in task.acceptance) or "- (see the task)"
        written = "\n".join(f"- {f}" for f in files) or "- (none yet)"
        text += f"\n\n## Acceptance criteria\n{criteria}\n\n## Files written so far\n{written}"
    return text
