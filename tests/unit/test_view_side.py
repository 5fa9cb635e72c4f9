"""`tbreplay view --replay PROFILE[@HARNESS]`: the harness may itself hold an @ (pi@1.6.0)."""
import pytest

from pytest_tbreplay.analysis.view import Side


@pytest.mark.parametrize("text, profile, harness", [
    ("mitigated", "mitigated", "reference"),
    ("baseline@reference", "baseline", "reference"),
    ("baseline@pi", "baseline", "pi"),
    ("baseline@pi@0.73.1", "baseline", "pi@0.73.1"),
    ("profiles/mine.yaml@pi@1.6.0", "profiles/mine.yaml", "pi@1.6.0"),
])
def test_a_side_parses(text, profile, harness):
    assert Side.parse(text) == Side(profile, harness)


@pytest.mark.parametrize("text, says", [
    ("baseline@claude", "unknown harness 'claude'"),
    ("baseline@pi@x.y", "pi@VERSION"),
    ("baseline@", "write PROFILE or PROFILE@HARNESS"),
    ("@pi", "write PROFILE or PROFILE@HARNESS"),
])
def test_a_bad_side_is_named(text, says):
    with pytest.raises(ValueError) as e:
        Side.parse(text)
    assert str(e.value).startswith(f"--replay {text}: ") and says in str(e.value)
