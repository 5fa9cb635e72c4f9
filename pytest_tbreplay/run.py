"""Running a harness against an endpoint: a cassette in replay, shared by the plugin and the CLI."""
from __future__ import annotations

from dataclasses import dataclass

from . import cassette as cs
from .harness import Endpoint, ReferenceHarness, TaskSpec
from .profiles import Profile
from .replay import ReplayEngine, ReplayServer, ReplayTransport
from .trial import Trial


@dataclass
class Replayed:
    trial: Trial
    engine: ReplayEngine


def replay_cassette(c: cs.Cassette, profile: Profile, harness: str = "reference", realtime: bool = False) -> Replayed:
    """One trial of `harness` against the cassette: in-process for the reference harness, on a
    loopback port for pi (another process). The caller checks the engine for mismatches."""
    engine, task = ReplayEngine(c, realtime=realtime), TaskSpec.from_cassette(c)
    model = c.metadata["server"].get("model", "local")  # what the recorded harness asked for
    if harness == "reference":
        trial = run_harness(harness, profile, task, Endpoint("http://replay", ReplayTransport(engine), cassette=c,
                                                             model=model))
    else:
        with ReplayServer(engine) as server:
            trial = run_harness(harness, profile, task, Endpoint(server.url, cassette=c, model=model))
    return Replayed(trial, engine)


def run_harness(harness: str, profile: Profile, task: TaskSpec, endpoint: Endpoint) -> Trial:
    if harness == "pi":
        from .pi import PiHarness
        return PiHarness(profile).run(task, endpoint)
    return ReferenceHarness(profile).run(task, endpoint)
