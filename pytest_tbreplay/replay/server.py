"""The replay engine on a loopback port, for harnesses in another process (pi in Node): every
request gets an HTTP status, slow or silent clients are dropped, and close() stops it for good."""
from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pytest_tbreplay.replay.engine import BadRequest, ReplayEngine, Reply, _paced

READ_TIMEOUT_S = 60.0  # a client silent this long mid-request (or idle on keep-alive) is dropped
MAX_BODY = 256 << 20  # far above a 250k-token context's request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # buffered: flushed per event only when pacing in real time
    timeout = READ_TIMEOUT_S
    engine: ReplayEngine
    server: "_Server"

    def log_message(self, *args):  # quiet: the trial keeps what matters
        pass

    def send_error(self, code, message=None, explain=None):
        # http.server's own refusals (bad request line, unknown method, huge headers) fail the test too.
        if self.server.closing.is_set():
            self.close_connection = True
            return
        self.engine.errors.append(BadRequest(self.engine.cursor, f"HTTP {code}: {message or ''} "
                                                                 f"({(self.requestline or '')[:80]!r})"))
        if self.request_version == "HTTP/0.9":  # garbage read as HTTP/0.9 would get no status line
            self.request_version = "HTTP/1.0"
        super().send_error(code, message, explain)

    def do_GET(self):
        self._reply(self.engine.route("GET", self.path, b""))

    def do_POST(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._reply(self.engine.reject(411, "chunked request bodies are not read; send Content-Length"))
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._reply(self.engine.reject(400 if length < 0 else 413, "bad Content-Length "
                                                  f"{self.headers.get('content-length')!r}"))
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return self._reply(self.engine.reject(408, f"the request body did not arrive within {self.timeout:.0f} s"))
        if len(body) < length:  # the client stopped sending mid-body; it may still read
            return self._reply(self.engine.reject(400, f"the body ended after {len(body)} of {length} bytes"))
        self._reply(self.engine.route("POST", self.path, body))

    def _reply(self, reply: Reply) -> None:
        if reply.out_of_time:  # as the live server was: still working when the budget ran out
            self.server.closing.wait()  # the harness sees engine.out_of_time and stops the trial
        if self.server.closing.is_set():
            self.close_connection = True  # a closed server answers no one, kept-alive or not
            return
        if reply.status >= 400:
            self.close_connection = self.close_connection or reply.status in (400, 408, 411, 413)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            for data in _paced(reply.chunks, self.engine.realtime, self.server.closing):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                if self.engine.realtime:
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the harness stopped reading (a loop guard cut the turn)


class _Server(ThreadingHTTPServer):
    """Keeps each connection's thread and socket, so close() can end them all (a daemon thread
    left blocked on a client would otherwise outlive the server, and keep answering)."""
    daemon_threads = True

    def __init__(self, *args):
        super().__init__(*args)
        self.closing = threading.Event()
        self._live: dict[threading.Thread, object] = {}
        self._live_lock = threading.Lock()

    def process_request(self, request, client_address):
        t = threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True,
                             name=f"tbreplay-replay-{client_address[1]}")
        with self._live_lock:
            if self.closing.is_set():
                return self.shutdown_request(request)
            self._live[t] = request
        t.start()

    def _serve_one(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(threading.current_thread(), None)

    def handle_error(self, request, client_address):
        # A harness hanging up mid-stream (a loop guard cutting a turn) is expected, not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close(self, timeout: float = 1.0) -> list[threading.Thread]:
        """Stop accepting, end every connection, join every handler thread; the ones still alive
        after `timeout` are returned (none, unless a handler ignores its closed socket)."""
        deadline = time.monotonic() + timeout
        with self._live_lock:
            self.closing.set()
            live = dict(self._live)
        self.shutdown()
        self.server_close()
        for sock in live.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in live:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t for t in live if t.is_alive()]


class ReplayServer:
    """The engine on a free loopback port, in a background thread. Use as a context manager."""

    def __init__(self, engine: ReplayEngine, host: str = "127.0.0.1", port: int = 0):
        handler = type("Handler", (_Handler,), {"engine": engine})
        self.engine = engine
        self.httpd = _Server((host, port), handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        # A short poll: shutdown() waits for it, and close must finish within a second.
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="tbreplay-replay-server")

    def __enter__(self) -> "ReplayServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.close()
        self._thread.join(1.0)

    def __exit__(self, *exc) -> None:
        self.close()
