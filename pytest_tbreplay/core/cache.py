"""The package cache (`TBREPLAY_CACHE`, default ~/.cache/pytest-tbreplay): the built llama-server,
the installed pis, and progress lines for the long installs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE = Path(os.environ.get("TBREPLAY_CACHE", Path.home() / ".cache" / "pytest-tbreplay"))


def progress(step: str) -> None:
    """One line per setup step (and per tenth of the build), so a cold setup shows where its minutes go."""
    print(f"tbreplay setup: {step}", file=sys.stderr, flush=True)
