"""Terminal-Bench 2.0 tasks made runnable without Docker (the smoke/ folder).

Each task folder is in Harbor's task layout, so `harbor run -p smoke/<task>` runs it too:
instruction.md, task.toml ([metadata] task_class and acceptance are ours; [agent] timeout_sec is
the time budget), environment/Dockerfile, tests/test.sh and tests/test_outputs.py (the verifier),
solution/solve.sh (the oracle), plus wrong/<name>/solve.sh (wrong answers the verifier must
reject; Harbor ignores them). Here an app folder stands in for /app: it is prepared by replaying
the Dockerfile's steps after `WORKDIR /app` (COPY from environment/, RUN in the app folder with
/app mapped); the steps before it install the system, which the host provides. The verifier
always runs from outside the app folder, as Terminal-Bench copies /tests in only after the agent
has finished.
"""
from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pytest_tbreplay.shipped import shipped

SMOKE_ROOT = shipped("smoke")  # inside the package when installed from a wheel


_IMAGES: dict[Path, Path] = {}  # each task's prepared app folder, by task root (see Task.prepare)


@atexit.register
def _remove_images() -> None:
    for image in _IMAGES.values():
        shutil.rmtree(image.parent, ignore_errors=True)


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
    verifier: str = "tests/test_outputs.py"

    @classmethod
    def load(cls, root: Path) -> Task:
        toml_path = root / "task.toml"
        try:
            meta = tomllib.loads(toml_path.read_text())
            extra = meta.get("metadata", {})
            return cls(name=root.name, root=root.resolve(), instruction=(root / "instruction.md").read_text(),
                       time_budget_s=int(meta["agent"]["timeout_sec"]), task_class=extra["task_class"],
                       acceptance=list(extra.get("acceptance", [])))
        except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{toml_path}: not a smoke task ({type(e).__name__}: {e}); it needs instruction.md and "
                             f"a task.toml with [agent] timeout_sec and [metadata] task_class") from None

    @property
    def wrong_answers(self) -> list[str]:
        wrong = self.root / "wrong"
        return sorted(p.name for p in wrong.iterdir() if p.is_dir()) if wrong.is_dir() else []

    def prepare(self, workdir: Path) -> Path:
        """Create workdir/app and fill it as the task's Docker image would. The steps run once per
        task and process, as Docker builds an image once for many containers: path-tracing's
        renders its reference picture, which takes seconds."""
        image = _IMAGES.get(self.root)
        if image is None:
            image = Path(tempfile.mkdtemp(prefix=f"tbreplay-image-{self.name}-")) / "app"
            image.mkdir()
            try:
                self._build(image)
            except BaseException:
                shutil.rmtree(image.parent, ignore_errors=True)
                raise
            _IMAGES[self.root] = image
        app = Path(workdir) / "app"
        shutil.copytree(image, app, symlinks=True)
        return app

    def _build(self, app: Path) -> None:
        for kind, arg in app_steps(self.root / "environment" / "Dockerfile"):
            if kind == "COPY":
                *sources, target = shlex.split(arg)
                for src in sources:
                    dest = Path(map_app(target, app))
                    if target.endswith("/"):
                        dest = dest / Path(src).name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(self.root / "environment" / src, dest)
            else:
                done = subprocess.run(["sh", "-c", map_app(arg, app)], cwd=app, capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f"{self.name}: Dockerfile step `RUN {arg}` exited {done.returncode}:\n"
                                       f"{done.stderr[-2000:]}")

    def instruction_for(self, app: Path) -> str:
        """The instruction with /app mapped to the real app folder."""
        return map_app(self.instruction, app)

    def acceptance_for(self, app: Path) -> list[str]:
        """The acceptance criteria with /app mapped to the real app folder."""
        return [map_app(line, app) for line in self.acceptance]

    def apply(self, app: Path, answer: str = "oracle") -> None:
        """Write an answer into `app`: "oracle" or the name of a wrong answer."""
        folder = self.root / "solution" if answer == "oracle" else self.root / "wrong" / answer
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
            verifier = Path(self.verifier).name
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
            env.update(TBREPLAY_APP=str(Path(app).resolve()), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", verifier]
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


def app_steps(dockerfile: Path) -> list[tuple[str, str]]:
    """The COPY and RUN steps after `WORKDIR /app` (continuation lines joined): what prepares /app.
    Any other instruction there is an error, so a Dockerfile cannot silently mean more in Docker."""
    text = re.sub(r"\\\n", " ", Path(dockerfile).read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    starts = [i for i, ln in enumerate(lines) if ln.split() == ["WORKDIR", "/app"]]
    if not starts:
        raise ValueError(f"{dockerfile}: no `WORKDIR /app`: the Docker-free runners cannot tell what prepares /app")
    steps = []
    for ln in lines[starts[0] + 1:]:
        kind, _, arg = ln.partition(" ")
        if kind not in ("COPY", "RUN") or arg.startswith("--") or arg.startswith("["):
            raise ValueError(f"{dockerfile}: `{ln[:60]}` after WORKDIR /app: the Docker-free runners replay only "
                             f"plain `COPY src /app/...` and `RUN command` there")
        steps.append((kind, arg.strip()))
    return steps


def load_tasks(root: Path = SMOKE_ROOT) -> dict[str, Task]:
    """All tasks under `root`, by name."""
    tasks = [Task.load(p) for p in sorted(Path(root).iterdir()) if (p / "task.toml").is_file()]
    return {t.name: t for t in tasks}
