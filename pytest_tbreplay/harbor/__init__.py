"""Harbor: `harbor run -a pytest_tbreplay.harbor:MitigatedPi` (pi with a tbreplay profile inside a
Harbor environment). The agent lives in agent.py; `MitigatedPi` is built on first access, so
importing this package never needs Harbor."""
from pytest_tbreplay.harbor.agent import MitigatedPiAgent

__all__ = ["MitigatedPi", "MitigatedPiAgent"]


def __getattr__(name: str):
    if name != "MitigatedPi":
        raise AttributeError(name)
    from pytest_tbreplay.harbor import agent
    return agent.MitigatedPi
