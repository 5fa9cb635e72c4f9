"""Server-sent events, framed by the WHATWG event-stream rules (html.spec.whatwg.org, "Server-sent
events", "Interpreting an event stream"). llama-server writes one `data: <json>` event per chunk and
`data: [DONE]` at the end, but a proxy or server in between may add comments (`: ping`), `event:`
lines, `data:` without a space or CR line endings, and all of them are valid.

One framer for everything that reads SSE (the loader, the replay engine, the recording proxy, the
reference harness), so they never disagree on where an event ends:
  - only CR, LF and CRLF end lines (never U+2028, U+2029 or U+0085, which JSON may carry raw);
  - a CRLF split across two reads is one line end;
  - invalid UTF-8 is an SSEError carrying the byte offset;
  - a stream that ends inside an event with data is an SSEError (truncated), never a shorter list.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

DONE = "[DONE]"
_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEError(ValueError):
    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


def format_event(data: str) -> str:
    return "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


@dataclass
class Block:
    """What one blank line ends: `data` is the event's data, None when nothing is dispatched (a
    comment-only block such as `: ping`); `end` is the byte offset just after the blank line."""
    data: str | None
    end: int
    type: str = "message"


class Framer:
    """Incremental: feed() bytes as they arrive, get the blocks they complete; close() at the end."""

    def __init__(self) -> None:
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._data: list[str] = []
        self._type = ""
        self._bom_checked = False

    def feed(self, chunk: bytes) -> list[Block]:
        if (not self._buf and not self._data and not self._type and self._bom_checked
                and (block := self._plain(chunk))):
            return [block]
        self._buf += chunk
        return self._lines(final=False)

    def _plain(self, chunk: bytes) -> Block | None:
        """A read that is exactly one `data: <one line>` event, as llama-server writes each token,
        framed without the line loop (what _lines would give; None for anything else)."""
        if not (chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") and chunk.count(b"\n") == 2
                and b"\r" not in chunk):
            return None
        try:
            data = chunk[6:-2].decode("utf-8")
        except UnicodeDecodeError:
            return None  # _lines says where
        self._base += len(chunk)
        return Block(data, self._base)

    def close(self) -> list[Block]:
        blocks = self._lines(final=True)
        if self._buf:  # a last line without its end: part of an event only if it adds data
            self._line(self._buf, self._base)
            self._base, self._buf = self._base + len(self._buf), b""
        if self._data:
            raise SSEError("truncated SSE stream: the last event is not terminated by a blank line",
                           self._base)
        return blocks

    def _lines(self, final: bool) -> list[Block]:
        if not self._bom_checked:
            if len(self._buf) < 3 and not final and _BOM.startswith(self._buf):
                return []
            self._bom_checked = True
            if self._buf.startswith(_BOM):
                self._buf, self._base = self._buf[3:], self._base + 3
        blocks, pos, buf = [], 0, self._buf
        while m := _EOL.search(buf, pos):
            if m.group() == b"\r" and m.end() == len(buf) and not final:
                break  # the LF of a CRLF may be in the next read
            line = buf[pos:m.start()]
            if line:
                self._line(line, self._base + pos)
            else:
                blocks.append(self._dispatch(self._base + m.end()))
            pos = m.end()
        self._buf, self._base = buf[pos:], self._base + pos
        return blocks

    def _line(self, raw: bytes, at: int) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SSEError(f"invalid UTF-8 in the SSE stream: {e.reason}", at + e.start) from None
        if line.startswith(":"):
            return
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._type = value
        # id and retry do not matter to a replay; unknown fields are ignored, as the spec says

    def _dispatch(self, end: int) -> Block:
        data = "\n".join(self._data) if self._data else None
        block = Block(data, end, self._type or "message")
        self._data, self._type = [], ""
        return block


def blocks(body: bytes | str) -> list[Block]:
    """Every block of a complete SSE body."""
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate: no UTF-8 stream can hold it
            raise SSEError(f"invalid text in the SSE body: {e.reason}", e.start) from None
    f = Framer()
    return f.feed(body) + f.close()


def split_events(body: bytes | str) -> list[str]:
    """The data of every event of a complete SSE body, in order."""
    if isinstance(body, str) and (plain := _plain_events(body)) is not None:
        return plain
    return [b.data for b in blocks(body) if b.data is not None]


def _plain_events(body: str) -> list[str] | None:
    """What the framer returns for the common shape, at C speed (a 32,000-event cassette loads
    several times faster): LF endings, one `data: ` line per event, nothing else. None for any
    other body (comments, CR, several lines, a BOM, a lone surrogate): the framer reads those."""
    if "\r" in body or not body.endswith("\n\n") or body.startswith("\ufeff"):
        return None
    parts = body[:-2].split("\n\n")
    if not all(p.startswith("data: ") and "\n" not in p for p in parts):
        return None
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return [p[6:] for p in parts]


def iter_events(chunks: Iterable[bytes]) -> Iterator[str]:
    """Event data from a byte stream as it arrives, whatever the network's read boundaries."""
    f = Framer()
    for chunk in chunks:
        for b in f.feed(chunk):
            if b.data is not None:
                yield b.data
    for b in f.close():
        if b.data is not None:
            yield b.data
