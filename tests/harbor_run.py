"""One real `harbor run` of a task folder, Docker-free, against a model server: the helper the
live tests use (and the one to call for real trial folders, e.g. for `tbreplay import`):

    trial = run_trial(ROOT / "smoke" / "regex-log", "mitigated", server.url, tmp_path / "jobs",
                      model=server.model, profile="mitigated-cpu")
    trial / "result.json", trial / "agent" / "trajectory.json", ...

`agent` is "mitigated" (pytest_tbreplay.harbor:MitigatedPi: pi.jsonl, pi.stderr, pi/sessions/,
tbreplay.json, tbreplay-request.json, extensions.jsonl, trajectory.json) or "harbor-pi" (Harbor's
built-in pi agent with the cached pi 0.73.1, harbor_pi.CachedPi: pi.txt, pi/sessions/,
trajectory.json, setup/). The environment is harbor_env.ChrootEnvironment.

Harbor needs Python >= 3.12, so it runs from its own venv: $TBREPLAY_HARBOR_VENV, else .venv-harbor
in the checkout (.ci/run makes it: harbor==0.26.0 plus this project, editable).
"""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from pytest_tbreplay.smoke import report as smoke

REPO = Path(__file__).resolve().parent.parent
HARBOR_VENV = Path(os.environ.get("TBREPLAY_HARBOR_VENV") or REPO / ".venv-harbor")
AGENTS = {"mitigated": smoke.HARBOR_AGENT, "harbor-pi": "harbor_pi:CachedPi"}
# Docker-free by default; TBREPLAY_HARBOR_ENV=docker on a desktop with Docker.
ENVIRONMENT = os.environ.get("TBREPLAY_HARBOR_ENV") or "harbor_env:ChrootEnvironment"


def harbor_problem() -> str | None:
    """Why the Harbor tests cannot run here (None when they can)."""
    if not (HARBOR_VENV / "bin" / "harbor").exists():
        return (f"no Harbor venv at {HARBOR_VENV}: make it with `python3.12 -m venv {HARBOR_VENV} && "
                f"{HARBOR_VENV}/bin/pip install harbor==0.26.0 -e {REPO}` (as .ci/run does), "
                f"or point TBREPLAY_HARBOR_VENV at one")
    if ENVIRONMENT.startswith("harbor_env:") and os.geteuid() != 0:
        return "the Docker-free Harbor environment needs root (mount namespaces), as Docker does"
    return None


def harbor_env() -> dict[str, str]:
    """The environment `harbor` runs with: this folder and the checkout importable, and LiteLLM's
    price table from its own package (it would try the internet first)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "none"}


def harbor_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The harbor CLI of the venv."""
    return subprocess.run([str(HARBOR_VENV / "bin" / "harbor"), *args], capture_output=True, text=True,
                          env=harbor_env(), cwd=REPO, timeout=timeout)


def trial_command(task_dir: Path, agent: str, server_url: str, jobs_dir: Path, job_name: str, *, model: str,
                  n_ctx: int | None = None, profile: str | None = None, time_scale: float = 1.0) -> list[str]:
    if agent == "mitigated":
        return smoke.harbor_command(task_dir, model, jobs_dir, job_name, api_base=server_url, n_ctx=n_ctx,
                                    profile=profile, time_scale=time_scale, environment=ENVIRONMENT,
                                    harbor=str(HARBOR_VENV / "bin" / "harbor"))
    # Harbor's own pi against a custom endpoint: --base-url, a key variable, and the API style.
    return [str(HARBOR_VENV / "bin" / "harbor"), "run", "-p", str(task_dir), "-a", AGENTS[agent],
            "-m", f"openai/{model}", "--base-url", f"{server_url}/v1", "--api-key-name", "OPENAI_API_KEY",
            "--ak", "model_api=openai-completions", "--ak", "version=0.73.1", "-n", "1", "-k", "1",
            "--timeout-multiplier", str(time_scale), "-o", str(jobs_dir), "--job-name", job_name, "-y", "-q",
            "-e", ENVIRONMENT]


def run_trial(task_dir: Path, agent: str, server_url: str, jobs_dir: Path, *, model: str,
              n_ctx: int | None = None, profile: str | None = None, time_scale: float = 1.0,
              extra: Sequence[str] = (), timeout: float = 2400) -> Path:
    """Run one trial with `harbor run` (plus `extra` arguments); returns the trial folder (found by
    its result.json)."""
    if agent not in AGENTS:
        raise ValueError(f"agent {agent!r}: one of {', '.join(AGENTS)}")
    job_name = f"{agent}-{Path(task_dir).name}-{uuid.uuid4().hex[:8]}"
    cmd = trial_command(Path(task_dir).resolve(), agent, server_url, Path(jobs_dir), job_name, model=model,
                        n_ctx=n_ctx, profile=profile, time_scale=time_scale) + list(extra)
    done = subprocess.run(cmd, capture_output=True, text=True, env=harbor_env(), cwd=REPO, timeout=timeout)
    found = smoke.harbor_trial(Path(jobs_dir) / job_name, Path(task_dir).name)
    if found is None:
        log = Path(jobs_dir) / job_name / "job.log"
        raise RuntimeError(f"`{' '.join(cmd)}` exited {done.returncode} without a trial result:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}\n"
                           f"{log.read_text()[-3000:] if log.is_file() else ''}")
    return found[0]
