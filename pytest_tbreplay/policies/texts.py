"""The words the mitigations say to the model, one home for both harnesses (the pi extensions get them
through their config): the system prompt, the loop nudge, the compaction summary's request, and
the anchor a summary starts with (task, acceptance criteria, files produced)."""
from __future__ import annotations

import re


SYSTEM = ("You are an expert coding assistant working in a terminal. Use the tools read, bash, edit "
          "and write to complete the user's task. Be concise.")
NUDGE = "Your last message was cut off for looping; stop and take a different concrete action."
SUMMARY_SYSTEM = ("You are a context summarization assistant. Read the conversation and ONLY output the "
                  "structured summary.")
SUMMARY_ASK = ("Summarize the conversation above with the sections: Goal, Constraints & Preferences, "
               "Progress (Done / In Progress / Blocked), Key Decisions, Next Steps, Critical Context.")
# How each message a mitigation sends as the user begins (the loop and length nudges, the stuck
# guard's nudge, the verify gate's demand): a session keeps them as user prompts, and import tells
# them from the user's own prompts by these (tests/replay/test_multi_prompt.py pins them).
HARNESS_OPENINGS = (NUDGE, "Your last message was cut off at the max-tokens limit",
                    "You claimed success, but nothing has checked your work")
_STUCK = re.compile(r"You have run .{1,400}? \d+ times with the same result\. Repeating it will not change", re.S)


def is_harness_message(text: str) -> bool:
    return text.startswith(HARNESS_OPENINGS) or _STUCK.match(text) is not None


MAX_NUDGES = 3
MAX_VERIFY_DEMANDS = 2
