"""Unit-test fake (the live tests use the real llama-server): a tiny OpenAI-compatible server on loopback, raw sockets, with failure modes chosen
by the `mode` field of the request body (or the X-Mode header):
  normal        SSE, chunked, ends with [DONE]
  ping          like normal, with `: ping` comment events between
  crlf          like normal, CRLF line endings
  u2028         content with a raw U+2028 (as llama-server's JSON writer sends it)
  slow          one event every 0.2 s (40 events)
  die_mid_event some events, then half an event, then the socket closes (no final chunk)
  die_boundary  complete events, then the socket closes (no final chunk, no [DONE])
  close_delim   HTTP/1.0-style close-delimited SSE that stops at an event boundary without [DONE]
  die_before    reads the request, closes without answering
  json          non-streamed JSON answer
  (any mode)    503 "Loading model" (and /health 503) until LOADING_UNTIL (time.monotonic()), then normal
Also serves GET /props and /health. Every request's headers and body are kept in REQUESTS."""
import json
import socket
import threading
import time

REQUESTS = []
LOADING_UNTIL = [0.0]
LOADING = b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}'


def ev(delta=None, finish=None, usage=None):
    e = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], "object": "chat.completion.chunk",
         "id": "chatcmpl-fake", "model": "fake"}
    if usage:
        e = {"choices": [], "usage": usage, "object": "chat.completion.chunk", "id": "chatcmpl-fake", "model": "fake"}
    return json.dumps(e, ensure_ascii=False, separators=(",", ":"))


def events(text="Hello world"):
    out = [ev({"role": "assistant", "content": None})]
    out += [ev({"content": w}) for w in text.split(" ")]
    out += [ev({}, "stop"), ev(usage={"prompt_tokens": 30, "completion_tokens": len(text.split()), "total_tokens": 33}), "[DONE]"]
    return out


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def handle(conn: socket.socket):
    conn.settimeout(30)
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            while (h := f.readline()) not in (b"\r\n", b"\n", b""):
                k, v = h.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = f.read(int(headers.get("content-length", 0)))
            REQUESTS.append({"method": method, "path": path, "headers": headers, "body": body.decode(errors="replace")})
            if path.startswith("/props"):
                data = json.dumps({"default_generation_settings": {"n_ctx": 8192, "params": {"temperature": 0.0}},
                                   "model_alias": "fake", "total_slots": 1}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
                continue
            if time.monotonic() < LOADING_UNTIL[0]:
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(LOADING), LOADING))
                continue
            if path.startswith("/health"):
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}')
                continue
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = {}
            mode = headers.get("x-mode") or (req.get("mode") if isinstance(req, dict) else None) or "normal"
            if isinstance(req, dict) and not headers.get("x-mode"):
                last = (req.get("messages") or [{}])[-1]
                if isinstance(last, dict) and str(last.get("content", "")).startswith("MODE:"):
                    mode = last["content"][5:].split()[0]
            if mode == "die_before":
                conn.close()
                return
            if mode == "json" or (isinstance(req, dict) and req.get("stream") is False):
                data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 30, "completion_tokens": 1}}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
                continue
            nl = "\r\n" if mode == "crlf" else "\n"
            evs = events("Hello\u2028there world" if mode == "u2028" else "Hello world")
            if mode == "slow":
                evs = events(" ".join(f"w{i}" for i in range(40)))
            if mode == "close_delim":
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
                for e in evs[:3]:
                    conn.sendall(f"data: {e}\n\n".encode())
                conn.close()
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            if mode == "crlf_split":  # CRLF events, each network chunk ending between the blank line's \r and \n
                for e in evs:
                    conn.sendall(chunk(f"data: {e}\r\n\r".encode()))
                    time.sleep(0.05)
                    conn.sendall(chunk(b"\n"))
                conn.sendall(b"0\r\n\r\n")
                continue
            if mode == "badutf8":
                evs[1] = evs[1].replace("Hello", "Hel\udcfflo")
            for i, e in enumerate(evs):
                if mode == "die_mid_event" and i == 3:
                    conn.sendall(chunk(f"data: {e}"[:25].encode()))
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                if mode == "die_boundary" and i == 3:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                if mode == "ping" and i % 2 == 1:
                    conn.sendall(chunk(f": ping{nl}{nl}".encode()))
                conn.sendall(chunk(f"data: {e}{nl}{nl}".encode("utf-8", "surrogateescape")))
                if mode == "slow":
                    time.sleep(0.2)
            conn.sendall(b"0\r\n\r\n")
    except (OSError, ValueError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


class FakeUpstream:
    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True, name="fake-upstream")

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True, name="fake-upstream-conn").start()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(2)
        self.sock.close()
