"""Hypothesis settings for the property tests (marked `fuzz`).

The default run checks 300 examples per property, derandomized: the same examples every run, so a
failure on CI is one a rerun reproduces. `pytest -m fuzz` checks 5,000 fresh random examples per
property. No deadline: a loaded 2-core machine must not turn a slow example into a failure."""
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default-run", max_examples=300, derandomize=True, **_common)
settings.register_profile("fuzz", max_examples=5000, **_common)
settings.load_profile("default-run")


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: a property-based test (hypothesis); `-m fuzz` runs "
                                       "5,000 examples each instead of 300")
    expr = config.option.markexpr or ""
    if "fuzz" in expr and "not fuzz" not in expr:
        settings.load_profile("fuzz")
