"""The first layout's flat module names still import, as the very modules of their wings (code
written against them, and the reproducers of past defects, go on working)."""
import importlib

import pytest

from pytest_tbreplay._compat import MOVED


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_module_name_is_the_module_it_moved_to(old, new):
    assert importlib.import_module(f"pytest_tbreplay.{old}") is importlib.import_module(f"pytest_tbreplay.{new}")


def test_old_imports_of_the_public_names_work():
    from pytest_tbreplay.harness import Endpoint, ReferenceHarness, TaskSpec  # noqa: F401
    from pytest_tbreplay.profiles import load_profile  # profiles/ is also the shipped YAML folder
    from pytest_tbreplay.replay import ReplayEngine, ReplayServer  # noqa: F401
    assert load_profile("baseline").name == "baseline"
