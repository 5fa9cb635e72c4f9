"""Running a harness against an endpoint: a cassette in replay, or a live server through the
recording proxy. Shared by the plugin's fixtures and the CLI; nothing here knows about pytest."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import Profile
from pytest_tbreplay.core.trial import Endpoint, TaskSpec, Trial, Turn
from pytest_tbreplay.harnesses import run_harness
from pytest_tbreplay.record.proxy import RecordingProxy, hung_up
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayTransport, Served
from pytest_tbreplay.replay.server import ReplayServer


@dataclass
class Replayed:
    """One replayed trial, as a test asserts on it.

    trial     the harness' Trial: turns, stop reasons, compactions, nudges, verify demands, final text
    served    one `Served` per request the harness sent, in order: `.request` (the JSON it sent),
              `.status` (200, or the recorded/emulated error), `.prompt_tokens`, `.cut_at` (tokens kept
              when the request's max tokens cut the recorded stream), `.index` (the interaction that
              answered it, None for an emulated error)
    cassette  the cassette replayed (its metadata: task, instruction, acceptance, failure)
    engine    the replay engine itself (internal: the fields above are what tests need)
    """
    trial: Trial
    engine: ReplayEngine = field(repr=False)

    @property
    def served(self) -> list[Served]:
        return self.engine.served

    @property
    def requests(self) -> list[dict]:
        """The chat requests the harness sent, as JSON."""
        return [s.request for s in self.engine.served]

    @property
    def turns(self) -> list[Turn]:
        return self.trial.turns

    @property
    def cassette(self) -> cs.Cassette:
        return self.engine.cassette


def check_replay_metadata(metadata: dict, path: Path | str = "cassette") -> None:
    """Every metadata key replay reads, checked when the cassette is loaded rather than deep in a
    trial. (The loader can call this; it raises the loader's CassetteError.)"""
    def need(value, kinds, where):
        if not isinstance(value, kinds) or isinstance(value, bool):
            names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
            raise cs.CassetteError(path, f"metadata.{where} must be {names}, found {value!r}: "
                                         "re-record the cassette or add the field")
    need(metadata.get("task"), str, "task")
    need(metadata.get("instruction"), str, "instruction")
    for key in ("acceptance", "history"):
        need(metadata.get(key, []), list, key)
    for i, criterion in enumerate(metadata.get("acceptance") or []):
        need(criterion, str, f"acceptance[{i}]")
    server = metadata.get("server")
    need(server, dict, "server")
    if not (server.get("n_ctx") is None and metadata.get("provenance") == "imported"):  # unknown: no emulated 400s
        need(server.get("n_ctx"), int, "server.n_ctx")
    need(server.get("model", ""), str, "server.model")
    need(server.get("settings", {}), dict, "server.settings")


def replay_cassette(c: cs.Cassette, profile: Profile, harness: str = "reference", realtime: bool = False) -> Replayed:
    """One trial of `harness` against the cassette: in-process for the reference harness, on a
    loopback port for pi (another process). The caller checks the engine for mismatches."""
    check_replay_metadata(c.metadata, c.path)
    engine, task = ReplayEngine(c, realtime=realtime), TaskSpec.from_cassette(c)
    model = c.metadata["server"].get("model", "local")  # what the recorded harness asked for
    if harness == "reference":
        trial = run_harness(harness, profile, task, Endpoint("http://replay", ReplayTransport(engine), cassette=c,
                                                             model=model, out_of_time=engine.out_of_time))
    else:
        with ReplayServer(engine) as server:
            trial = run_harness(harness, profile, task, Endpoint(server.url, cassette=c, model=model,
                                                                 out_of_time=engine.out_of_time))
    if not realtime:
        _recorded_rates(trial, engine, c)
    return Replayed(trial, engine)


def _recorded_rates(trial: Trial, engine: ReplayEngine, c: cs.Cassette) -> None:
    """A replay as fast as it can go measures the replay (729,060 tok/s), not the model: each turn
    gets the rate its recording shows instead (completion tokens over the recorded stream time),
    or none."""
    answered = [s.index for s in engine.served if s.index is not None
                and not c.interactions[s.index].scripted and c.interactions[s.index].streamed]
    for k, turn in enumerate(trial.turns):
        turn.decode_tps = _rate(c.interactions[answered[k]]) if k < len(answered) else None


def _rate(it: cs.Interaction) -> float | None:
    offsets, tokens = it.chunk_offsets or [], it.usage.get("completion_tokens")
    if len(offsets) < 3 or not isinstance(tokens, int) or tokens < 2:
        return None
    span = offsets[-1] - offsets[1]  # from the first token (after the role chunk) to the end
    return (tokens - 1) / span if span > 0 else None


# -- live ------------------------------------------------------------------------------------
@dataclass
class Lived:
    """One live trial: the Trial, the proxy that saw its traffic, the cassette made of it, and
    where --record saved that cassette (None without --record)."""
    trial: Trial
    proxy: RecordingProxy
    cassette: cs.Cassette
    saved_to: Path | None


def live_trial(server, task: TaskSpec, profile: Profile, harness: str, workdir: Path, model: str | None = None,
               budget_s: float | None = None) -> tuple[Trial, RecordingProxy, cs.Cassette]:
    """Run a harness against a live server through the recording proxy."""
    with RecordingProxy(server.url) as proxy:
        endpoint = Endpoint(proxy.url, workdir=workdir, model=model or server.model, budget_s=budget_s)
        trial = run_harness(harness, profile, task, endpoint)
    if proxy.upstream_failures and trial.outcome != "infra":  # the server failed, not the model
        trial.outcome, trial.error = "infra", proxy.upstream_failures[0]
    metadata = recording_metadata(task, trial, profile, harness, server, endpoint.model)
    if trial.outcome == "timeout" and budget_s:
        metadata["ended"] = budget_ending(proxy, budget_s)
    return trial, proxy, proxy.cassette(metadata)


def budget_ending(proxy: RecordingProxy, budget_s: float) -> dict:
    """Where the trial's time budget ran out, for replay (which has no clock) to end it there:
    after the answers the harness read whole. The one it was reading when time ran out (kept,
    cut where it hung up) is not replayed."""
    proxy.settle()
    its = proxy.interactions
    at = len(its) - 1 if its and hung_up(its[-1]) else len(its)
    return {"outcome": "timeout", "after_s": round(budget_s, 3), "at_interaction": at}


def recording_metadata(task: TaskSpec, trial: Trial, profile: Profile, harness: str, server, model: str) -> dict:
    # server.model is the name the harness asked for: what llama-swap routes on, and what replay sends.
    return {"format": cs.FORMAT, "task": task.name, "provenance": "recorded", "server": server.metadata | {"model": model},
            "harness_profile": {"harness": harness} | asdict(profile) | profile.budget(server.n_ctx).sizes(),
            "failure_mode": f"{trial.outcome}: stop reason {trial.stop_reason}",
            "instruction": task.instruction, "acceptance": task.acceptance, "history": task.history,
            **({"prompts": task.prompts} if task.prompts else {})}


def cassette_name(test_name: str, trial_number: int) -> str:
    """The file name --record gives a test's n-th trial (1-based): one cassette per trial."""
    name, _, params = test_name.partition("[")  # test_x[regex-log-pi] -> test_x-regex-log-pi
    parts = [name] + [p for p in re.split(r"[^\w.]+", params) if p]
    base = "-".join(re.sub(r"[^\w.]+", "_", p).strip("_.") for p in parts)
    return f"{base}.yaml" if trial_number == 1 else f"{base}-{trial_number}.yaml"
