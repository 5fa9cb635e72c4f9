"""Terminal-Bench 2.0 tasks made runnable without Docker (the smoke/ folder).

Each task folder holds instruction.md, task.yaml, setup.py (prepares the app folder
that stands in for /app), test_outputs.py (the verifier), oracle/solve.sh and
wrong/<name>/solve.sh. The verifier always runs from outside the app folder, as
Terminal-Bench copies /tests in only after the agent has finished.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .shipped import shipped

SMOKE_ROOT = shipped("smoke")  # inside the package when installed from a wheel


@dataclass
class VerifierResult:
    passed: bool
    output: str


@dataclass
class Task:
    name: str
    root: Path
    instruction: str
    time_budget_s: int
    task_class: str  # "build" or "text"
    acceptance: list[str] = field(default_factory=list)
    verifier: str = "test_outputs.py"

    @classmethod
    def load(cls, root: Path) -> Task:
        meta = yaml.safe_load((root / "task.yaml").read_text())
        return cls(
            name=meta["name"],
            root=root.resolve(),
            instruction=(root / "instruction.md").read_text(),
            time_budget_s=int(meta["time_budget_s"]),
            task_class=meta["task_class"],
            acceptance=list(meta.get("acceptance", [])),
            verifier=meta.get("verifier", "test_outputs.py"),
        )

    @property
    def wrong_answers(self) -> list[str]:
        wrong = self.root / "wrong"
        return sorted(p.name for p in wrong.iterdir() if p.is_dir()) if wrong.is_dir() else []

    def prepare(self, workdir: Path) -> Path:
        """Create workdir/app and fill it as the task's Docker image would."""
        app = Path(workdir) / "app"
        app.mkdir(parents=True)
        # A unique module name per task: several setup.py files are loaded in one process.
        spec = importlib.util.spec_from_file_location(
            f"tbreplay_setup_{self.name.replace('-', '_')}", self.root / "setup.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.setup(app)
        return app

    def instruction_for(self, app: Path) -> str:
        """The instruction with /app mapped to the real app folder."""
        return map_app(self.instruction, app)

    def acceptance_for(self, app: Path) -> list[str]:
        """The acceptance criteria with /app mapped to the real app folder."""
        return [map_app(line, app) for line in self.acceptance]

    def apply(self, app: Path, answer: str = "oracle") -> None:
        """Write an answer into `app`: "oracle" or the name of a wrong answer."""
        folder = self.root / "oracle" if answer == "oracle" else self.root / "wrong" / answer
        script = folder / "solve.sh"
        if not script.is_file():
            raise ValueError(f"{self.name}: no answer {answer!r} ({script} missing)")
        env = {**os.environ, "APP": str(Path(app).resolve())}
        done = subprocess.run(["sh", str(script)], cwd=app, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{script} exited {done.returncode}:\n{done.stderr}")

    def verify(self, app: Path, timeout: float = 900) -> VerifierResult:
        """Run the verifier against `app` in a fresh pytest process."""
        with tempfile.TemporaryDirectory(prefix=f"tbreplay-verify-{self.name}-") as tmp:
            # A bare folder with its own pytest.ini: no rootdir, conftest or addopts of
            # the surrounding repo can change how the verifier runs.
            shutil.copy(self.root / self.verifier, tmp)
            Path(tmp, "pytest.ini").write_text("[pytest]\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
            env.update(TBREPLAY_APP=str(Path(app).resolve()), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", self.verifier]
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Kill the whole session: the verifier may have started compilers or ./image.
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
                return VerifierResult(False, f"{output}\nverifier timed out after {timeout} s")
        return VerifierResult(proc.returncode == 0, output)


def map_app(text: str, app: Path) -> str:
    """Replace /app where it is a whole path component (not /apple, /app.py, x/app)."""
    return re.sub(r"(?<![\w.-])/app(?![\w-]|\.\w)", lambda _: str(app), text)


def load_tasks(root: Path = SMOKE_ROOT) -> dict[str, Task]:
    """All tasks under `root`, by name."""
    tasks = [Task.load(p) for p in sorted(Path(root).iterdir()) if (p / "task.yaml").is_file()]
    return {t.name: t for t in tasks}
