"""pytest-tbreplay: turn a local coding agent's failures into deterministic regression tests."""
from pytest_tbreplay import _compat

__version__ = "0.1.0"
_compat.install()  # the first layout's flat module names (pytest_tbreplay.cassette, ...) still import
