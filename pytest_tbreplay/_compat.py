"""The flat module names of the first layout (`pytest_tbreplay.cassette`, `.proxy`, `.harness`, ...)
keep importing: each is the module of its wing now. Code written against them, and the project's
own reproducers, go on working; new code imports the wings (docs/design.md has the map)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "cassette": "core.cassette", "sse": "core.sse", "redact": "core.redact", "profiles": "core.profiles",
    "trial": "core.trial", "loading": "core.loading", "llama_stream": "core.llama_stream",
    "verify": "policies.gate", "loopdetect": "policies.loopdetect", "tools": "replay.tools",
    "proxy": "record.proxy", "pisession": "harnesses.pi.session", "harness": "harnesses.reference",
    "pi": "harnesses.pi", "llama": "server.llama", "tasks": "smoke.tasks", "importer": "analysis.importer",
    "summarize": "analysis.summarize", "whatif": "analysis.whatif", "lint": "serverconfig.lint",
    "llamaswap": "serverconfig.llamaswap", "serverargs": "serverconfig.serverargs", "sweep": "serverconfig.sweep",
}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an old name with the module it moved to (the same module object, not a copy)."""

    def find_spec(self, name, path=None, target=None):
        old = name.partition("pytest_tbreplay.")[2]
        return importlib.util.spec_from_loader(name, self) if name.startswith("pytest_tbreplay.") and old in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(f"pytest_tbreplay.{MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _Moved) for f in sys.meta_path):
        sys.meta_path.insert(0, _Moved())  # before the path finder: profiles/ is also a data folder
