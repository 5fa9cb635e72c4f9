"""Helpers for unit and property tests: small valid cassettes (as dicts, to break or vary), a raw
HTTP exchange, and waiting for the recording proxy."""
import json
import socket
import time

from pytest_tbreplay.core.sse import format_event

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


def raw_exchange(url: str, data: bytes, timeout: float = 30.0) -> bytes:
    """Send bytes to a loopback server, close the sending side, return all it answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
        return out


def wait_recorded(proxy, n=1, timeout=10.0):
    # A handler thread records after its last write; the harness may see the end a moment earlier.
    deadline = time.monotonic() + timeout
    while len(proxy.interactions) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.interactions
