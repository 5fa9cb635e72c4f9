"""How a Harbor trial ended, read from its result.json through Harbor's own error policy: one
reading for `tbreplay import`/`summarize` and the live smoke report, so both classify a trial alike.

Harbor 0.26 writes each exception's policy into result.json; older results lack it. Then these are
the types its table (harbor/models/trial/error_policy.py) does not grade: the infrastructure's,
not the model's (failure-analysis §4-E)."""
from __future__ import annotations

UNGRADED = frozenset({"EnvironmentStartTimeoutError", "SandboxBuildFailedError", "AgentSetupTimeoutError",
                      "HealthcheckError", "AddTestsDirError", "DownloadVerifierDirError",
                      "EnvironmentBuildTimeoutError", "DockerError"})


def reward_of(result: dict):
    """The verifier's reward in a result.json (None when there is none)."""
    return ((result.get("verifier_result") or {}).get("rewards") or {}).get("reward")


def harbor_outcome(result: dict, reward=None) -> str:
    """passed | failed | timeout | infra | error (a graded exception and no reward) | incomplete.
    `reward` overrides result.json's (the importer also reads verifier/reward.txt)."""
    if not result:
        return "incomplete"
    exc = result.get("exception_info") or {}
    kind = exc.get("exception_type")
    if kind:
        policy = exc.get("policy") or {"should_grade": kind not in UNGRADED}
        if policy.get("should_grade") is False:
            return "infra"
        if kind == "AgentTimeoutError":
            return "timeout"
    reward = reward_of(result) if reward is None else reward
    if reward is None:
        return "error" if kind else "incomplete"
    return "passed" if float(reward) >= 1.0 and result.get("reward_valid", True) is not False else "failed"
