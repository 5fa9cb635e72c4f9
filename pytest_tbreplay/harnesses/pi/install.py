"""Which pi, and the Node it needs: the npm package and version, where `tbreplay setup` installs
it (the package cache), and what is missing when it cannot run."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pytest_tbreplay.core.cache import CACHE, progress

PI_PACKAGE = "@mariozechner/pi-coding-agent"
PI_VERSION = "0.73.1"
NODE_MIN = (20, 6)  # pi 0.73.1's engines field



class PiUnavailable(RuntimeError):
    """Node or pi is missing; the message says what to install."""


# -- installation ---------------------------------------------------------------------------------
def node_problem() -> str | None:
    """Why pi cannot run here (None when Node is fine)."""
    need = ".".join(map(str, NODE_MIN))
    node = shutil.which("node")
    if not node:
        return f"pi needs Node.js >= {need}: install it (https://nodejs.org, or nvm install 20) and put `node` on PATH"
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)", out)
    if not m or (int(m[1]), int(m[2])) < NODE_MIN:
        return f"pi needs Node.js >= {need}, found {out or 'an unknown version'} at {node}: install Node 20 or newer"
    return None


def pi_problem(version: str = PI_VERSION) -> str | None:
    """Why pi cannot run here (Node missing, or pi not installed), saying what to do; None when it can.
    Only `tbreplay setup` and `tbreplay install-pi` install pi: a test or a trial never does."""
    if problem := node_problem():
        return problem
    if not pi_binary(version).exists():
        return (f"pi {version} is not installed in {pi_dir(version)}: run `python -m pytest_tbreplay.cli install-pi` "
                "(or `... setup`)")
    return None


def pi_dir(version: str = PI_VERSION) -> Path:
    return CACHE / f"pi-{version}"


def pi_binary(version: str = PI_VERSION) -> Path:
    return pi_dir(version) / "node_modules" / ".bin" / "pi"


def install_pi(version: str = PI_VERSION) -> Path:
    """npm-install pi into the cache (outside the repo) once; later calls reuse it. Returns the
    install folder."""
    if pi_binary(version).exists():
        return pi_dir(version)
    if problem := node_problem():
        raise PiUnavailable(problem)
    npm = shutil.which("npm")
    if not npm:
        raise PiUnavailable("installing pi needs npm (it comes with Node.js): install Node 20 or newer")
    CACHE.mkdir(parents=True, exist_ok=True)
    progress(f"installing pi {version} (npm install {PI_PACKAGE}@{version})")
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="pi-install-") as tmp:
        done = subprocess.run([npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error",
                               f"{PI_PACKAGE}@{version}"], capture_output=True, text=True)
        if done.returncode:
            raise PiUnavailable(f"npm install {PI_PACKAGE}@{version} failed:\n{done.stderr[-2000:]}")
        try:
            os.rename(tmp, pi_dir(version))  # atomic: a half-installed pi is never seen as installed
        except OSError:
            if not pi_binary(version).exists():  # not a concurrent install that won the race
                raise
        else:
            os.mkdir(tmp)  # TemporaryDirectory wants something to delete
    return pi_dir(version)
