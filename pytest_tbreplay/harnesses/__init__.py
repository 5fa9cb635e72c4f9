"""The harnesses: a registry of names to `run(task, endpoint) -> Trial`.

    reference      a small pi-style agent loop in Python with every mitigation as a policy
    pi             the real pi CLI at the current pin (harnesses/pi/install.py: PI_VERSION)
    pi@X.Y.Z       a given pi version (installed by `tbreplay install-pi X.Y.Z`)

Tests marked `harnesses` run once per name of MATRIX: the reference harness, the pi the recorded
trials were made with, and the current pi."""
from __future__ import annotations

from pytest_tbreplay.core.profiles import Profile
from pytest_tbreplay.core.trial import Endpoint, TaskSpec, Trial
from pytest_tbreplay.harnesses.pi.install import PI_VERSION, RECORDED_PI, harness_version

HARNESSES = ("reference", "pi")
MATRIX = ("reference", f"pi@{RECORDED_PI}", f"pi@{PI_VERSION}")


def harness_name(name: str) -> str:
    """`name` checked: reference, pi or pi@X.Y.Z (ValueError saying what is known otherwise)."""
    if name == "reference":
        return name
    try:
        harness_version(name)
    except ValueError:
        raise ValueError(f"unknown harness {name!r}: use reference, pi (pi {PI_VERSION}) or pi@VERSION "
                         f"(e.g. pi@{RECORDED_PI})") from None
    return name


def is_pi(name: str) -> bool:
    return name == "pi" or name.startswith("pi@")


def run_harness(name: str, profile: Profile, task: TaskSpec, endpoint: Endpoint) -> Trial:
    """One trial of harness `name` with `profile` against `endpoint`."""
    if harness_name(name) == "reference":
        from pytest_tbreplay.harnesses.reference import ReferenceHarness
        return ReferenceHarness(profile).run(task, endpoint)
    from pytest_tbreplay.harnesses.pi.adapter import PiHarness
    return PiHarness(profile, version=harness_version(name)).run(task, endpoint)
