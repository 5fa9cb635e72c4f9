"""The embedded llama-server: starts, reports its settings, and is always gone afterwards."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from pytest_tbreplay.server.llama import LlamaServer
from pytest_tbreplay.core.props import LlamaServerError

pytestmark = pytest.mark.live


def alive(pid: int) -> bool:
    # A zombie counts as dead: in a container nobody may reap an orphan's corpse.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.fixture(scope="module")
def server():
    with LlamaServer(ctx_size=2048) as s:
        yield s


def test_starts_and_reads_props(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{server.url}/health", timeout=60).status_code == 200
    assert server.n_ctx == 2048
    assert server.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert {"temperature", "top_k", "top_p", "dry_multiplier"} <= set(server.settings)
    assert server.metadata["n_ctx"] == 2048
    assert "llamacpp:" in httpx.get(f"{server.url}/metrics", timeout=60).text  # --metrics is on


def test_gone_after_exit_even_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with LlamaServer(ctx_size=512) as s:
            pid, url = s.pid, s.url
            raise RuntimeError("boom")
    assert not alive(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=1)


def test_kill_is_immediate():
    with LlamaServer(ctx_size=512) as s:
        s.kill()
        assert not alive(s.pid)


def test_missing_binary_or_model_says_how_to_get_it(tmp_path):
    with pytest.raises(LlamaServerError, match="tbreplay server --build"):
        LlamaServer(binary=tmp_path / "llama-server")
    with pytest.raises(LlamaServerError, match="model not found"):
        LlamaServer(model=tmp_path / "nope.gguf")


def test_startup_failure_shows_the_log_tail():
    with pytest.raises(LlamaServerError, match="exited with code .*log tail"):
        LlamaServer(ctx_size=512, extra_args=["--no-such-flag"]).start()


CHILD = textwrap.dedent("""
    import sys, time
    from pytest_tbreplay.server.llama import LlamaServer
    with LlamaServer(ctx_size=512) as s:
        print(s.pid, flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill-parent", "ctrl-c"])
def test_no_orphan_when_the_python_process_dies(sig):
    """SIGKILL: the kernel kills the server (PR_SET_PDEATHSIG). Ctrl-C: KeyboardInterrupt runs
    __exit__ (SIGTERM, up to 5 s of grace, then SIGKILL). What is tested is that no server
    outlives its parent, not how fast: on a loaded 2-core machine the child's exit took over
    15 s, so the waits are generous (the test still ends as soon as both are gone)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        pid = int(child.stdout.readline())
        assert alive(pid)
        child.send_signal(sig)
        child.wait(120)
        assert wait_dead(pid, timeout=60), f"llama-server {pid} outlived its parent ({sig!r})"
    finally:
        child.kill()
        child.wait()
