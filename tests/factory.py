"""Small valid cassettes as dicts, for unit and property tests to break or vary."""
import json

from pytest_tbreplay.sse import format_event

URI = "http://llama-server/v1/chat/completions"


def chunk(delta=None, finish=None):
    return json.dumps({"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
                       "id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "m"}, separators=(",", ":"))


def sse_events(texts=("Hello", " world"), prompt_tokens=20):
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(texts),
             "total_tokens": prompt_tokens + len(texts)}
    return ([chunk({"role": "assistant", "content": None})] + [chunk({"content": t}) for t in texts]
            + [chunk({}, "stop"), json.dumps({"choices": [], "usage": usage}), "[DONE]"])


def request_body(user="say hi", **kw):
    return json.dumps({"model": "m", "messages": [{"role": "system", "content": "sys"},
                                                  {"role": "user", "content": user}],
                       "stream": True, "stream_options": {"include_usage": True}, **kw})


def interaction(user="say hi", texts=("Hello", " world")):
    events = sse_events(texts)
    return {"request": {"method": "POST", "uri": URI, "body": request_body(user),
                        "headers": {"Content-Type": ["application/json"]}},
            "response": {"status": {"code": 200, "message": "OK"}, "headers": {"Content-Type": ["text/event-stream"]},
                         "body": {"string": "".join(format_event(e) for e in events)},
                         "chunk_offsets": " ".join(f"{0.01 * j:.6f}" for j in range(len(events)))}}


def minimal(n=1):
    """A valid n-interaction cassette."""
    return {"version": 1,
            "metadata": {"format": 1, "task": "t", "provenance": "recorded", "server": {"n_ctx": 4096, "model": "m"},
                         "harness_profile": {"harness": "reference"}, "failure_mode": "none",
                         "instruction": "say hi 0", "acceptance": []},
            "interactions": [interaction(f"say hi {i}") for i in range(n)]}
