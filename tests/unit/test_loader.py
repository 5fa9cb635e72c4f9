"""The loader answers every broken cassette with one CassetteError naming the file and the
interaction, and accepts every valid SSE form; what it accepts replays (d01-d06, d18-d20)."""
import gzip
import json

import pytest
import yaml

import factory
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.run import replay_cassette
from pytest_tbreplay.core.profiles import load_profile


def write(tmp_path, data=None, text=None):
    p = tmp_path / "c.yaml"
    if text is None:
        text = yaml.dump(data, Dumper=cs.Dumper, sort_keys=False, allow_unicode=True)
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def load_error(tmp_path, data=None, text=None) -> str:
    p = write(tmp_path, data, text)
    with pytest.raises(cs.CassetteError) as e:
        cs.load(p)
    assert str(p) in str(e.value) and str(e.value).count(str(p)) == 1  # named once, not doubled
    return str(e.value)


def response(d, i=0):
    return d["interactions"][i]["response"]


def set_events(d, events, i=0):
    response(d, i)["body"]["string"] = "".join(f"data: {e}\n\n" for e in events)
    response(d, i)["chunk_offsets"] = " ".join(str(k * 0.01) for k in range(len(events)))


def valid_yaml() -> bytes:
    return yaml.dump(factory.minimal(1), Dumper=cs.Dumper, sort_keys=False).encode()


@pytest.mark.parametrize("data, hint", [(lambda b: gzip.compress(b), "gzip"),
                                        (lambda b: b.decode().encode("utf-16"), "UTF-16"),
                                        (lambda b: b.replace(b"say hi", b"sa\xe9 hi"), "byte")])
def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path, data, hint):  # d01
    assert hint in load_error(tmp_path, text=data(valid_yaml()))


BREAKAGES = {  # d02-d05, d20: (change, what the message says); all in interaction 0 unless said
    "body a mapping": (lambda d: d["interactions"][0]["request"].update(body={"messages": []}), "request.body must be"),
    "body an int": (lambda d: d["interactions"][0]["request"].update(body=5), "request.body must be"),
    "body a JSON list": (lambda d: d["interactions"][0]["request"].update(body="[1, 2]"), "JSON object"),
    "header name an int": (lambda d: response(d).update(headers={1: ["x"]}), "header names and values"),
    "header value an int": (lambda d: response(d).update(headers={"Content-Type": [5]}), "header names and values"),
    "headers a list": (lambda d: d["interactions"][0]["request"].update(headers=["a"]), "request.headers must be"),
    "status 'abc'": (lambda d: response(d)["status"].update(code="abc"), "response.status.code"),
    "status 200.7": (lambda d: response(d)["status"].update(code=200.7), "response.status.code"),
    "status true": (lambda d: response(d)["status"].update(code=True), "response.status.code"),
    "status 99": (lambda d: response(d)["status"].update(code=99), "response.status.code"),
    "binary body not UTF-8": (lambda d: (response(d).pop("chunk_offsets"), response(d).update(headers={}),
                                         response(d)["body"].update(string=b"\xff\xfe")), "not UTF-8"),
    "event not JSON": (lambda d: set_events(d, ['{"choices": [', "[DONE]"]), "SSE event 0 is not JSON"),
    "event a list": (lambda d: set_events(d, ["[1, 2]", "[DONE]"]), "SSE event 0 is not a chat completion chunk"),
    "choices a string": (lambda d: set_events(d, ['{"choices": "x"}', "[DONE]"]), "not a chat completion chunk"),
    "delta a list": (lambda d: set_events(d, ['{"choices": [{"delta": [1]}]}', "[DONE]"]), "not a chat completion"),
    "usage tokens text": (lambda d: set_events(d, ['{"usage": {"prompt_tokens": "x"}}', "[DONE]"]), "token counts"),
    "events after DONE": (lambda d: set_events(d, ["[DONE]", '{"choices": []}']), "1 events follow it"),
    "no DONE": (lambda d: set_events(d, ['{"choices": []}']), "no [DONE]"),
    "exceed 400 without n_prompt_tokens": (lambda d: (response(d).pop("chunk_offsets"), response(d).update(
        headers={"Content-Type": ["application/json"]}, status={"code": 400}), response(d)["body"].update(
        string='{"error": {"type": "exceed_context_size_error"}}')), "n_prompt_tokens"),
    "message not a mapping": (lambda d: d["interactions"][0]["request"].update(
        body=json.dumps({"messages": [1]})), "request messages[0] must be a chat message"),
    "tool call without function": (lambda d: d["interactions"][0]["request"].update(
        body=json.dumps({"messages": [{"role": "assistant", "tool_calls": [{}]}]})), "tool_calls"),
    "tool result missing output": (lambda d: d["interactions"][0].update(
        tool_results=[{"id": "a", "name": "b", "arguments": {}}]), "tool_results[0]"),
    "tool result unknown key": (lambda d: d["interactions"][0].update(
        tool_results=[{"id": "a", "name": "b", "arguments": {}, "output": "", "when": 1}]), "tool_results[0]"),
    "match not a mapping": (lambda d: d["interactions"][0].update(match="x"), "match must be"),
    "offsets negative": (lambda d: response(d).update(chunk_offsets="-5 -4 -3 -2 -1 -0.5"), "chunk_offsets[0]"),
    "offsets decreasing": (lambda d: response(d).update(chunk_offsets="0.5 0.4 0.3 0.2 0.1 0"), "chunk_offsets[1]"),
    "offsets nan": (lambda d: response(d).update(chunk_offsets="nan 0 0 0 0 inf"), "chunk_offsets[0]"),
    "offset inf": (lambda d: response(d).update(chunk_offsets="0 0 0 0 0 inf"), "chunk_offsets[5]"),
    "offset 1e9 (d06: realtime replay sleeps 30 years)": (
        lambda d: response(d).update(chunk_offsets="0 0 0 0 0 1e9"), "chunk_offsets[5]"),
    "interaction not a mapping": (lambda d: d["interactions"].__setitem__(0, [1]), "needs `request` and `response`"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_a_broken_interaction_is_one_error_naming_file_and_interaction(tmp_path, name):
    change, says = BREAKAGES[name]
    data = factory.minimal(2)
    change(data)
    message = load_error(tmp_path, data)
    assert "interaction 0" in message and says in message


METADATA_BREAKAGES = {
    "no instruction": (lambda m: m.pop("instruction"), "metadata.instruction"),
    "history a string": (lambda m: m.update(history="abc"), "metadata.history must be a list"),
    "history of numbers": (lambda m: m.update(history=[1]), "metadata.history[0]"),
    "acceptance a mapping": (lambda m: m.update(acceptance={"a": 1}), "metadata.acceptance"),
    "n_ctx true": (lambda m: m["server"].update(n_ctx=True), "n_ctx must be a positive integer"),
    "n_ctx 0": (lambda m: m["server"].update(n_ctx=0), "n_ctx must be a positive integer"),
    "a date in metadata": (lambda m: m.update(recorded=__import__("datetime").date(2026, 1, 1)), "plain JSON"),
}


@pytest.mark.parametrize("name", METADATA_BREAKAGES)
def test_broken_task_metadata_is_refused_at_load(tmp_path, name):  # d05, d20
    change, says = METADATA_BREAKAGES[name]
    data = factory.minimal(1)
    change(data["metadata"])
    assert says in load_error(tmp_path, data)


def test_no_interactions_is_an_error(tmp_path):  # d20
    data = factory.minimal(1)
    data["interactions"] = []
    assert "no interactions" in load_error(tmp_path, data)


def test_duplicate_keys_are_refused(tmp_path):  # d20: YAML keeps the last one silently
    assert "duplicate key 'version'" in load_error(tmp_path, text=b"version: 7\n" + valid_yaml())


@pytest.mark.parametrize("levels", [1, 7])
def test_yaml_aliases_are_refused_before_anything_expands(tmp_path, levels):  # d18
    lines = ['a0: &a0 "x"'] + [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]" for k in range(1, levels + 1)]
    text = valid_yaml().decode().replace("metadata:\n", "metadata:\n  bomb:\n" + "".join(f"    {l}\n" for l in lines), 1)
    assert "aliases" in load_error(tmp_path, text=text)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    # libyaml's composer recursed in C on this and crashed the process (found by this test)
    # ours, or PyYAML's own limit (6.0.4 and later refuse 1,000 flow levels in the scanner, first)
    error = load_error(tmp_path, text="x: " + "[" * 100_000 + "]" * 100_000)
    assert "nested deeper than" in error or "exceeded maximum nesting depth" in error


VALID_FORMS = {  # d19: valid SSE the loader used to refuse, or misaligned offsets for
    "event: line before data": lambda b: b.replace("data: [DONE]", "event: done\ndata: [DONE]"),
    "data: without a space": lambda b: b.replace("data: [DONE]", "data:[DONE]"),
    "comment after [DONE]": lambda b: b + ": keepalive\n\n",
    "ping comment first": lambda b: ": ping\n\n" + b,
    "CR line ends": lambda b: b.replace("\n", "\r"),
    "CRLF line ends": lambda b: b.replace("\n", "\r\n"),
    "U+2028 inside a delta": lambda b: b.replace("Hello", "Hel\u2028lo"),
}


@pytest.mark.parametrize("name", VALID_FORMS)
def test_valid_sse_forms_load_and_pair_each_event_with_its_offset(tmp_path, name):
    data = factory.minimal(1)
    r = response(data)
    events = factory.sse_events()
    r["body"]["string"] = VALID_FORMS[name](r["body"]["string"])
    r["chunk_offsets"] = " ".join(f"{k}.5" for k in range(len(events)))  # one per event, none per comment
    it = cs.load(write(tmp_path, data)).interactions[0]
    assert [e.replace("\u2028", "") for e in it.events] == events
    assert list(zip(it.chunk_offsets, it.events))[-1] == (len(events) - 0.5, "[DONE]")


def test_what_the_loader_accepts_replays(tmp_path):
    c = cs.load(write(tmp_path, factory.minimal(2)))
    result = replay_cassette(c, load_profile("baseline"), "reference")
    result.engine.check()
