"""Every CLI entry point answers bad input with one clear error naming the file (issue 21): each
subcommand is driven with generated malformed inputs; any exception that escapes `main` (a
traceback for the user) fails, and so does an error line that names no file. 25 examples each in
the fast tier, thousands under -m fuzz (tests/conftest.py's profiles)."""
import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from factory import minimal
from pytest_tbreplay.cli import main
from pytest_tbreplay.core import cassette as cs

pytestmark = pytest.mark.fuzz

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                    max_leaves=6)
CASSETTE_PATHS = [("version",), ("metadata",), ("metadata", "task"), ("metadata", "server"), ("metadata", "server", "n_ctx"),
                  ("metadata", "harness_profile"), ("metadata", "instruction"), ("metadata", "provenance"),
                  ("metadata", "history"), ("interactions",), ("interactions", 0), ("interactions", 0, "request"),
                  ("interactions", 0, "request", "body"), ("interactions", 0, "response", "status"),
                  ("interactions", 0, "response", "body", "string"), ("interactions", 0, "response", "chunk_offsets"),
                  ("interactions", 0, "tool_results"), ("interactions", 0, "messages"), ("messages",)]


def run(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def names_the_file(err: str, path: Path) -> bool:
    lines = [line for line in err.splitlines() if line.startswith(("tbreplay", "FAILED"))]
    return all(str(path) in line or path.name in line for line in lines)


@st.composite
def broken_cassette(draw) -> str:
    if draw(st.integers(0, 4)) == 0:  # not a cassette at all
        return draw(st.sampled_from(["", "[1, 2", "{a: 1}", "- x\n- y\n", "version: 1\n", "\x00\x01"])) + draw(st.text(max_size=20))
    d = minimal(2)
    d = cs.to_dict(cs.parse(d))  # the format-2 form, with its message store
    keys = draw(st.sampled_from(CASSETTE_PATHS))
    target = d
    for k in keys[:-1]:
        target = target[k] if isinstance(target, dict) or (isinstance(k, int) and isinstance(target, list)) else {}
    value = draw(JSON)
    if isinstance(target, dict) or (isinstance(target, list) and isinstance(keys[-1], int) and keys[-1] < len(target)):
        target[keys[-1]] = value
    return yaml.dump(d, Dumper=cs.Dumper, sort_keys=False, allow_unicode=True)


@pytest.mark.parametrize("command", ["show", "replay", "export", "summarize", "whatif"])
@given(text=broken_cassette())
def test_cassette_commands_answer_a_broken_cassette_with_one_named_error(command, text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.yaml"
        p.write_text(text)
        argv = {"show": ["show", p], "replay": ["replay", p], "export": ["export", p, Path(d) / "o.yaml"],
                "summarize": ["summarize", p], "whatif": ["whatif", p, "--profile", "baseline"]}[command]
        rc, err = run(*argv)  # an exception escaping main fails the test
        assert isinstance(rc, int) and "Traceback" not in err
        if rc:
            assert names_the_file(err, p), err


@given(text=st.one_of(st.text(max_size=200), st.builds(
    lambda cmd, extra: f"models:\n  m:\n    cmd: {cmd}\n{extra}",
    st.sampled_from(["llama-server --port ${PORT}", "'unclosed", "${nope}", "[1, 2]", "5", "{}"]),
    st.sampled_from(["", "    ttl: x\n", "    aliases: {a: 1}\n", "    env: [5]\n", "    filters: [1]\n",
                     "    macros: {'bad name': 1}\n", "macros: [1]\n", "startPort: abc\n", "    proxy: 5\n"]))))
def test_lint_config_answers_a_broken_config_with_one_named_error(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "config.yaml"
        p.write_text(text)
        rc, err = run("lint-config", p, "--profile", "none")
        assert rc in (0, 1, 2) and "Traceback" not in err
        if rc == 2:
            assert names_the_file(err, p), err


@given(session=st.one_of(st.text(max_size=100), st.lists(JSON, min_size=1, max_size=4).map(
    lambda rs: "\n".join(json.dumps(r) for r in [{"type": "session", "id": "s", "cwd": "/app"}, *rs]))),
    command=st.sampled_from(["import", "summarize", "whatif"]))
def test_trial_commands_answer_a_broken_session_with_a_named_failure(session, command):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.jsonl"
        p.write_text(session)
        argv = {"import": ["import", p, "-o", Path(d) / "out"], "summarize": ["summarize", p],
                "whatif": ["whatif", p, "--profile", "baseline"]}[command]
        rc, err = run(*argv)
        assert isinstance(rc, int) and "Traceback" not in err and "cannot be read (" not in err, err
        if rc:
            assert names_the_file(err, p), err


@pytest.mark.parametrize("argv", [["show", "/nonexistent/c.yaml"], ["replay", "/nonexistent/c.yaml"],
                                  ["export", "/nonexistent/c.yaml", "/tmp/x.yaml"], ["import", "/nonexistent/job"],
                                  ["summarize", "/nonexistent/job"], ["lint-config", "/nonexistent/config.yaml"],
                                  ["whatif", "/nonexistent/job", "--profile", "baseline"]])
def test_a_missing_file_is_named(argv):
    rc, err = run(*argv)
    assert rc != 0 and "/nonexistent/" in err and "Traceback" not in err
