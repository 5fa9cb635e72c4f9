"""`--server-url` on a server whose /props or /running answer is odd, and `--profile FILE` with a
broken file: one clear error naming the URL or file and the field, exit status 2 (`tbreplay
lint-config`) or a pytest UsageError (`pytest --live --server-url`), never a traceback (issue 21).
The server is a small loopback HTTP server answering what each case gives it."""
import contextlib
import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from pytest_tbreplay.cli import main

GOOD = {"default_generation_settings": {"n_ctx": 4096, "params": {}}, "total_slots": 1}
NO = (404, "")


class OddServer:
    """Answers /props and /running with the (status, body) it is given; 404 elsewhere."""

    def __init__(self, props, running=NO):
        answers = {"/props": props, "/running": running}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                status, body = answers.get(self.path.split("?")[0], NO)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def props_with(**gen) -> tuple[int, str]:
    return 200, json.dumps({"default_generation_settings": {"n_ctx": 4096, "params": {}} | gen})


ODD = {  # name: (/props answer, /running answer, what the error names)
    "props not JSON": ((200, "default_generation_settings <html>"), NO, "/props: the answer is not JSON"),
    "props a list": ((200, "[1, 2]"), NO, "no llama-server /props answered"),
    "props 500": ((500, "boom"), NO, "/props -> 500"),
    "n_ctx a string": (props_with(n_ctx="4096"), NO, "default_generation_settings.n_ctx is '4096'"),
    "n_ctx 0": (props_with(n_ctx=0), NO, "default_generation_settings.n_ctx is '0'"),
    "settings a list": ((200, json.dumps({"default_generation_settings": [1]})), NO, "default_generation_settings is"),
    "params text": (props_with(params="x"), NO, "default_generation_settings.params is 'x'"),
    "dry_multiplier text": (props_with(params={"dry_multiplier": "high"}), NO, "params.dry_multiplier is 'high'"),
    "total_slots text": ((200, json.dumps(GOOD | {"total_slots": "two"})), NO, "total_slots is 'two'"),
    "running not JSON": ((200, json.dumps(GOOD)), (200, "nope"), "/running: the answer is not JSON"),
    "running a list": ((200, json.dumps(GOOD)), (200, "[1]"), "/running: expected"),
    "running entry text": ((200, json.dumps(GOOD)), (200, json.dumps({"running": ["x"]})), "running[0] must be"),
    "running cmd a number": ((200, json.dumps(GOOD)), (200, json.dumps({"running": [{"model": "m", "cmd": 5}]})),
                             "running[0] must be"),
}


@pytest.mark.parametrize("name", ODD)
def test_lint_config_on_an_odd_server_is_one_error_naming_url_and_field(name, capsys):
    props, running, says = ODD[name]
    with OddServer(props, running) as server:
        status = main(["lint-config", "--server-url", server.url, "--profile", "baseline"])
    err = capsys.readouterr().err
    assert status == 2 and says in err and server.url in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_plain_llama_server_without_running_still_lints(capsys):
    with OddServer((200, json.dumps(GOOD)), (500, "no such route")) as server:
        assert main(["lint-config", "--server-url", server.url, "--profile", "baseline"]) in (0, 1)
    assert "not-visible" in capsys.readouterr().out


PROFILES = {  # file text: what the error says
    "a YAML syntax error": ("name: x\ncontext_window: [1, 2\n", "not valid YAML"),
    "a list, not a mapping": ("- 1\n- 2\n", "a profile is a mapping"),
    "wrong types": ("context_window: abc\nmax_tokens: -4\nloop_detector: maybe\n", "context_window must be"),
    "an alias to a list": ("alias: [a, b]\n", "an alias profile holds only"),
    "not UTF-8": (b"name: \xff\xfe\n", "not UTF-8"),
    "YAML aliases expanding": ("a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")), "refused"),
}


def write_profile(tmp_path, text) -> Path:
    path = tmp_path / "broken.yaml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


@pytest.mark.parametrize("name", PROFILES)
def test_a_broken_profile_file_is_one_error_naming_the_file(name, tmp_path, capsys):
    text, says = PROFILES[name]
    path = write_profile(tmp_path, text)
    assert main(["lint-config", "--server-url", "http://127.0.0.1:9", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and says in err and "Traceback" not in err, err


def run_pytest(tmp_path, *args) -> subprocess.CompletedProcess:
    (tmp_path / "test_one.py").write_text("def test_one(live):\n    pass\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path / "test_one.py"),
                           "--rootdir", str(tmp_path), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("name", ["n_ctx a string", "settings a list", "total_slots text"])
def test_pytest_server_url_on_an_odd_server_is_a_usage_error(name, tmp_path):
    props, running, says = ODD[name]
    with OddServer(props, running) as server:
        r = run_pytest(tmp_path, "--live", "--server-url", server.url)
    out = r.stdout + r.stderr
    assert "--server-url" in out and says in out and server.url in out, out[-2000:]
    assert "Traceback" not in out and r.returncode != 0 and " passed" not in out


@pytest.mark.parametrize("name", ["a YAML syntax error", "a list, not a mapping", "wrong types", "an alias to a list"])
def test_pytest_profile_file_broken_is_a_usage_error(name, tmp_path):
    text, says = PROFILES[name]
    path = write_profile(tmp_path, text)
    r = run_pytest(tmp_path, "--profile", str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 4 and "--profile" in out and str(path) in out and says in out, out[-2000:]
    assert "Traceback" not in out


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=8)
_field = st.sampled_from(["n_ctx", "params", "dry_multiplier", "total_slots", "model_alias", "running", "cmd", "model"])


@st.composite
def _answers(draw):
    """A valid /props and /running pair with one field replaced by arbitrary JSON."""
    props = {"default_generation_settings": {"n_ctx": 4096, "params": {"dry_multiplier": 0.0}},
             "total_slots": 1, "model_alias": "m"}
    running = {"running": [{"model": "m", "cmd": "llama-server -c 4096 --port 8080"}]}
    field, value = draw(_field), draw(_json)
    where = {"n_ctx": props["default_generation_settings"], "params": props["default_generation_settings"],
             "dry_multiplier": props["default_generation_settings"]["params"], "total_slots": props,
             "model_alias": props, "running": running, "cmd": running["running"][0], "model": running["running"][0]}
    where[field][field] = value
    return props, running


@given(_answers())
def test_property_lint_config_on_any_answer_lints_or_is_one_clear_error(answers):
    props, running = answers
    with OddServer((200, json.dumps(props)), (200, json.dumps(running))) as server:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["lint-config", "--server-url", server.url, "--profile", "baseline"])
    assert status in (0, 1) or (status == 2 and server.url in err.getvalue()), err.getvalue()
