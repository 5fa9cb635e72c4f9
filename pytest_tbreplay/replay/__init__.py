"""Replay: the engine that answers a harness from a cassette (engine.py), its loopback server for
harnesses in another process (server.py), and tool results from the cassette (tools.py)."""
from pytest_tbreplay.replay.engine import (ReplayEngine, ReplayError, ReplayMismatch, ReplayTransport, Served,
                                          _paced)  # noqa: F401 (_paced: the first layout's replay module had it)
from pytest_tbreplay.replay.server import ReplayServer

__all__ = ["ReplayEngine", "ReplayError", "ReplayMismatch", "ReplayServer", "ReplayTransport", "Served"]
