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


def find_cassette(name: str | Path, cassette_dir: Path | None = None) -> Path:
    """A cassette by path, or by name: from `cassette_dir`, else the packaged ones. The pytest
    fixture and `tbreplay show|replay` find a name the same way."""
    path = Path(name)
    if path.suffix or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"cassette {str(name)!r}: no such file")
        return path.resolve()
    packaged = shipped_cassettes()
    for candidate in ((cassette_dir / f"{name}.yaml") if cassette_dir else None, packaged.get(str(name))):
        if candidate and candidate.is_file():
            return candidate.resolve()
    where = f"not in {cassette_dir} (--cassette-dir, or the ini's tbreplay_cassette_dir) nor" if cassette_dir else "not"
    raise FileNotFoundError(f"cassette {str(name)!r}: {where} among the packaged ones ({', '.join(packaged)})")


def ini_cassette_dir(folder: Path) -> Path | None:
    """tbreplay_cassette_dir from the pytest ini file in `folder` (pytest.ini or pyproject.toml), as
    the fixture reads it; else a cassettes/ folder there."""
    import configparser
    import tomllib
    ini, pyproject = folder / "pytest.ini", folder / "pyproject.toml"
    value = None
    if ini.is_file():
        parser = configparser.ConfigParser()
        parser.read(ini)
        value = parser.get("pytest", "tbreplay_cassette_dir", fallback=None)
    elif pyproject.is_file():
        options = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pytest", {}).get("ini_options", {})
        value = options.get("tbreplay_cassette_dir")
    if value:
        return folder / value
    return folder / "cassettes" if (folder / "cassettes").is_dir() else None
