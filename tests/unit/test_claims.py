"""summarize's mode D needs a success claim about the task, not any word like "passed" (issue 21):
generated sentences both ways."""
from hypothesis import given, strategies as st

from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.analysis.claims import claim

THING = st.sampled_from(["the bug", "the parser", "all 11 records", "the config", "the failing test", "the server"])
NAME = st.sampled_from(["x", "value", "the path", "config", "the token count", "n_ctx"])
CLAIMS = st.one_of(
    st.sampled_from(["Done!", "Done.", "All done.", "Finished.", "✅ ready", "It works now.", "All tests pass.",
                     "The task is complete.", "Task completed successfully.", "Everything is now working."]),
    st.builds("I have {} {}.".format, st.sampled_from(["fixed", "recovered", "completed", "implemented", "resolved"]), THING),
    st.builds("Successfully {} {}.".format, st.sampled_from(["recovered", "restored", "updated", "fixed"]), THING),
    st.builds("{} is now fixed.".format, THING.map(str.capitalize)),
    st.builds("All {} tests passed.".format, st.integers(1, 99)),
)
NOT_CLAIMS = st.one_of(
    st.builds("{} is passed as an argument to {}.".format, NAME.map(str.capitalize), NAME),
    st.builds("The function passes {} through to {}.".format, NAME, NAME),
    st.builds("This can be done later by {}.".format, NAME),
    st.builds("Once done, run {}.".format, NAME),
    st.builds("I could not fix {}.".format, THING),
    st.builds("The tests failed on {}.".format, THING),
    st.builds("{} is not working yet.".format, THING.map(str.capitalize)),
    st.builds("I haven't finished {}.".format, THING),
    st.builds("Check whether {} works.".format, THING),
    st.builds("Done by the caller when {} changes.".format, NAME),
)


@given(CLAIMS, st.sampled_from(["", "Let me summarize. ", "I ran the command.\n"]))
def test_a_success_claim_about_the_task_is_a_claim(sentence, before):
    assert claim(before + sentence)


@given(st.lists(NOT_CLAIMS, min_size=1, max_size=3))
def test_words_like_passed_or_done_alone_are_not_a_claim(sentences):
    assert claim(" ".join(sentences)) is None


def test_mode_d_needs_the_claim():
    def rec(text):
        return sm.classify(sm.Record("t", "t", "s", 0.0, "failed", turns=1, stop_reasons={"stop": 1}, final_text=text))
    assert rec("Done! All 11 records recovered.").mode == "D"
    assert rec("The path is passed as an argument.").mode == "F"
