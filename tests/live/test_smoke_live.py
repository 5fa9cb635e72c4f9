"""The shipped smoke test (pytest_tbreplay/smoke/test_smoke.py), collected in this repository's
run: `pytest --live -m smoke` here; `pytest --live -m smoke --pyargs pytest_tbreplay.smoke` in a
user's project. This repository's conftest.py adds --harbor and --time-scale to it."""
from pytest_tbreplay.smoke.test_smoke import test_smoke_task  # noqa: F401 (collected here)
