"""Where the data that ships with the package lives: the failure cassettes and the smoke tasks.

A wheel carries them inside the package (pyproject maps the repo's cassettes/ and smoke/ folders
to pytest_tbreplay/cassettes and pytest_tbreplay/smoke_tasks); a checkout (editable install, or
PYTHONPATH) reads the repo's folders themselves."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
IN_WHEEL = {"cassettes": "cassettes", "smoke": "smoke_tasks"}


def shipped(folder: str) -> Path:
    """The shipped `folder` ("cassettes" or "smoke")."""
    packaged = PACKAGE / IN_WHEEL[folder]
    return packaged if packaged.is_dir() else PACKAGE.parent / folder


def shipped_cassettes() -> dict[str, Path]:
    """The packaged failure cassettes, by name."""
    return {p.stem: p for p in sorted(shipped("cassettes").glob("*.yaml"))}
