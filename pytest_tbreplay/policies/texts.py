"""The words the mitigations say to the model, one home for both harnesses (the pi extensions get them
through their config): the system prompt, the loop nudge, the compaction summary's request, and
the anchor a summary starts with (task, acceptance criteria, files produced)."""
from __future__ import annotations


SYSTEM = ("You are an expert coding assistant working in a terminal. Use the tools read, bash, edit "
          "and write to complete the user's task. Be concise.")
NUDGE = "Your last message was cut off for looping; stop and take a different concrete action."
SUMMARY_SYSTEM = ("You are a context summarization assistant. Read the conversation and ONLY output the "
                  "structured summary.")
SUMMARY_ASK = ("Summarize the conversation above with the sections: Goal, Constraints & Preferences, "
               "Progress (Done / In Progress / Blocked), Key Decisions, Next Steps, Critical Context.")
MAX_NUDGES = 3
MAX_VERIFY_DEMANDS = 2
