"""What every test of this repository shares: its tiers, hypothesis' profiles, and the one place
that says what a test needs (Node, pi, jiti, Harbor) and what happens when it is missing.

Tiers are folders. Plain `pytest` is the fast tier: unit/, replay/ and proofs/ with the
reference harness, one trial of the current pi per policy (tests marked `pi_sample`), hypothesis
at 25 examples. The README's test command (`pytest --live`), `-m fuzz`, `TBREPLAY_TIERS=all` or a
path into another tier run every tier (pi/, harbor/, hardening/, acceptance/, viewer/, live/,
package/ too), the whole both-harness matrix, and hypothesis at 300 examples (5,000 under
`-m fuzz`).

Needs are markers: `@pytest.mark.needs("pi")`. Outside CI a missing need skips the test saying
what to install; in CI (`CI` set) it fails the run, since CI must run every test."""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parent
FAST_TIERS = {"unit", "replay", "proofs"}

_common = dict(deadline=None, database=None, print_blob=True, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fast", max_examples=25, **_common)
settings.register_profile("default-run", max_examples=300, **_common)
settings.register_profile("fuzz", max_examples=5000, **{**_common, "derandomize": False})


def all_tiers(config) -> bool:
    """Whether this run collects every tier (see the module's docstring)."""
    if config.getoption("live", False) or os.environ.get("TBREPLAY_TIERS") == "all" or _fuzz(config):
        return True
    return any(_tier_of(Path(a.split("::")[0]).resolve()) not in (None, *FAST_TIERS) for a in config.args)


def _fuzz(config) -> bool:
    expr = config.option.markexpr or ""
    return "fuzz" in expr and "not fuzz" not in expr


def _tier_of(path: Path) -> str | None:
    try:
        rel = path.relative_to(TESTS)
    except ValueError:
        return None
    if not rel.parts:
        return None  # tests/ itself
    return rel.parts[0] if len(rel.parts) > 1 or path.is_dir() else None


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: a property-based test (hypothesis); `-m fuzz` runs 5,000 examples each")
    config.addinivalue_line("markers", "pi_sample: in the fast tier, this test's harness=pi case runs too (one pi "
                                       "trial per policy); the other pi cases run with every tier")
    config.addinivalue_line("markers", "needs(*what): node, pi, jiti, harbor or chromium; skipped without it outside CI")
    config._tbreplay_all_tiers = all_tiers(config)
    settings.load_profile("fuzz" if _fuzz(config) else "default-run" if config._tbreplay_all_tiers else "fast")


def pytest_ignore_collect(collection_path, config):
    """The fast tier leaves out the folders of the slow ones (and benchmarks stay with -m benchmark)."""
    tier = _tier_of(Path(collection_path))
    if tier and collection_path.is_dir() and tier not in FAST_TIERS | {"benchmarks"}:
        return None if config._tbreplay_all_tiers else True
    return None


def pytest_collection_modifyitems(config, items):
    keep = []
    for item in items:
        if not config._tbreplay_all_tiers and _is_unsampled_pi(item):
            continue  # the rest of the pi matrix runs with every tier
        for marker in item.iter_markers("needs"):
            for what in marker.args:
                if problem := NEEDS[what]():
                    if os.environ.get("CI"):
                        raise pytest.UsageError(f"{item.nodeid}: {problem} (CI must run it, not skip it)")
                    item.add_marker(pytest.mark.skip(reason=problem))
        keep.append(item)
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def _is_unsampled_pi(item) -> bool:
    """A pi case the fast tier leaves to the full run: all but the current pi's `pi_sample` cases."""
    from pytest_tbreplay.harnesses.pi.install import PI_VERSION
    harness = str(getattr(getattr(item, "callspec", None), "params", {}).get("harness", ""))
    if not harness.startswith("pi"):
        return False
    return harness not in ("pi", f"pi@{PI_VERSION}") or item.get_closest_marker("pi_sample") is None


def _node() -> str | None:
    from pytest_tbreplay.harnesses.pi.install import node_problem
    return node_problem()


def _pi() -> str | None:
    from pytest_tbreplay.harnesses.pi.install import pi_problem
    return pi_problem()


def _jiti() -> str | None:
    from pytest_tbreplay.harnesses.pi.install import pi_dir
    jiti = pi_dir() / "node_modules" / "jiti" / "lib" / "jiti-cli.mjs"
    return _node() or (None if jiti.exists() else "pi is not installed (`tbreplay setup` installs it, with jiti)")


def _harbor() -> str | None:
    from harbor_run import harbor_problem
    return harbor_problem()


def _chromium() -> str | None:
    from browser import chromium_problem
    return chromium_problem()


NEEDS = {"node": _node, "pi": _pi, "jiti": _jiti, "harbor": _harbor, "chromium": _chromium}
