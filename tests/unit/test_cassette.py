import os
import subprocess
import sys

import httpx
import pytest
import vcr
import yaml

from pytest_tbreplay.core import cassette as cs

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SENTINEL = ROOT / "tests" / "cassettes" / "sentinel.yaml"


def raw(path=SENTINEL) -> dict:
    return yaml.safe_load(path.read_text())


def write(tmp_path, data, text=None):
    p = tmp_path / "c.yaml"
    p.write_text(text if text is not None else yaml.safe_dump(data))
    return p


def test_plain_vcrpy_replays_a_cassette_to_a_plain_httpx_client():
    c = cs.load(SENTINEL)
    with vcr.use_cassette(str(SENTINEL), record_mode="none"):
        with httpx.Client() as client:
            bodies = [client.post(it.uri, content=it.request_body).text for it in c.interactions]
    assert bodies == [it.body for it in c.interactions]
    assert "data: [DONE]" in bodies[0]


def test_load_keeps_chunks_offsets_tool_results_and_metadata():
    c = cs.load(ROOT / "cassettes" / "polyglot-rust-c.yaml")
    runaway = c.interactions[4]
    assert len(runaway.events) == len(runaway.chunk_offsets) == 32_004
    assert runaway.chunk_offsets == sorted(runaway.chunk_offsets)
    assert runaway.usage["completion_tokens"] == 32_000
    assert c.interactions[0].tool_results[0].name == "write"
    assert c.metadata["provenance"] == "reconstructed" and c.n_ctx == 262144
    assert c.metadata["harness_profile"]["max_tokens"] == 32000


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.update(version=2), "unknown cassette version 2"),
    (lambda d: d["metadata"].update(format=9), "unknown tbreplay format 9"),
    (lambda d: d["metadata"].pop("task"), "metadata lacks ['task']"),
    (lambda d: d["metadata"].update(provenance="guessed"), "provenance 'guessed'"),
    (lambda d: d["interactions"][1]["response"].pop("status"), "interaction 1: response.status.code must be an HTTP status"),
    (lambda d: d["interactions"][0]["request"].update(body="{not json"), "interaction 0: request.body is not JSON"),
    (lambda d: d["interactions"][1]["response"]["body"].update(
        string=d["interactions"][1]["response"]["body"]["string"][:-30]), "interaction 1: truncated SSE stream"),
    (lambda d: d["interactions"][0]["response"].update(chunk_offsets="0.1 0.2"), "interaction 0: .* SSE events but 2"),
    (lambda d: d["interactions"][0]["response"].update(chunk_offsets="0.1 soon"), "interaction 0: chunk_offsets must be"),
])
def test_a_malformed_cassette_names_the_file_and_the_interaction(tmp_path, breakage, message):
    data = raw()
    breakage(data)
    with pytest.raises(cs.CassetteError, match=message.replace("[", r"\[").replace("]", r"\]")
                       if "*" not in message else message) as e:
        cs.load(write(tmp_path, data))
    assert str(tmp_path / "c.yaml") in str(e.value)


def test_bad_yaml_is_one_clear_error(tmp_path):
    with pytest.raises(cs.CassetteError, match="c.yaml: bad YAML"):
        cs.load(write(tmp_path, None, "interactions: [\n  - {request: "))


def test_a_stream_without_done_or_error_is_truncated(tmp_path):
    data = raw()
    body = data["interactions"][1]["response"]["body"]
    body["string"] = body["string"].replace("data: [DONE]\n\n", "")
    offsets = data["interactions"][1]["response"]["chunk_offsets"]
    data["interactions"][1]["response"]["chunk_offsets"] = offsets.rsplit(" ", 1)[0]
    with pytest.raises(cs.CassetteError, match="interaction 1: truncated SSE stream: no .DONE."):
        cs.load(write(tmp_path, data))


def test_save_never_overwrites_and_redacts(tmp_path):
    c = cs.load(SENTINEL)
    c.interactions[0].request_headers["Authorization"] = ["Bearer sk-secret"]
    path = cs.save(c, tmp_path / "out.yaml")
    assert "sk-secret" not in path.read_text() and cs.REDACTED in path.read_text()
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="--record-mode=rewrite"):
        cs.save(c, path)
    assert path.read_bytes() == before
    cs.save(c, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]  # no temp file left behind
    assert cs.load(path).interactions[0].body == c.interactions[0].body
    assert oct(path.stat().st_mode & 0o777) != "0o600"


# A child rewrites a cassette and is killed once the new text is written but not yet in place (it
# stops itself at fsync, so the kill lands inside the save every time, never after it).
KILLED_MID_SAVE = """
import os, sys, time
from pytest_tbreplay.core import cassette as cs
def stop(fd):
    print("written", flush=True)
    time.sleep(600)
os.fsync = stop
c = cs.load(sys.argv[1])
c.interactions[-1].body = c.interactions[-1].body.replace("Finished", "Rewritten")
cs.save(c, sys.argv[2], overwrite=True)
"""


def test_a_save_killed_mid_write_leaves_the_old_cassette(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(SENTINEL.read_bytes())
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_SAVE, str(SENTINEL), str(path)],
                             stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline() == "written\n"
        [tmp] = [p for p in tmp_path.iterdir() if p != path]  # the new text, not yet renamed
        assert "Rewritten" in tmp.read_text()
    finally:
        child.kill()
        child.wait()
    assert path.read_bytes() == SENTINEL.read_bytes()
    assert cs.load(path).interactions[-1].body == cs.load(SENTINEL).interactions[-1].body
