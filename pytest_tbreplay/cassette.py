"""The cassette: vcrpy's YAML (`version`, `interactions`, `metadata`) plus what vcrpy lacks.

Each interaction may carry, next to vcrpy's `request` and `response`:
  response.chunk_offsets  one time offset (seconds from the request) per SSE event of the body,
                          space-separated in one string (one YAML node, not 32,000: loads ~3x
                          faster); the event boundaries themselves are the body's blank lines, so
                          the body stays a plain vcrpy body and nothing is stored twice
  tool_results            the results the trial got for the tool calls of this response
  scripted                why a continuation was written by hand (absent on recorded traffic)
  match                   {contains: text}: answer a request whose messages contain the text,
                          for harness-made messages (nudges, summaries) whose exact wording varies
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .sse import DONE, SSEError, split_events

VCR_VERSION = 1  # vcrpy's cassette version
FORMAT = 1  # our metadata.format
PROVENANCES = ("recorded", "imported", "reconstructed")
REQUIRED_METADATA = ("format", "task", "provenance", "server", "harness_profile", "failure_mode")
SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "cookie", "set-cookie", "proxy-authorization")
REDACTED = "REDACTED"

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class CassetteError(ValueError):
    """A cassette that cannot be used, naming the file and, where it applies, the interaction."""

    def __init__(self, path: Path | str, problem: str, index: int | None = None):
        where = f"{path}" if index is None else f"{path}: interaction {index}"
        super().__init__(f"{where}: {problem}")
        self.path, self.index = str(path), index


@dataclass
class ToolResult:
    id: str
    name: str
    arguments: dict
    output: str
    is_error: bool = False


@dataclass
class Interaction:
    method: str
    uri: str
    request_body: str
    status: int
    body: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    request_headers: dict[str, list[str]] = field(default_factory=dict)
    chunk_offsets: list[float] | None = None
    tool_results: list[ToolResult] = field(default_factory=list)
    scripted: str | None = None
    match: str | None = None

    @property
    def streamed(self) -> bool:
        return self.chunk_offsets is not None

    @cached_property
    def request(self) -> dict:
        return json.loads(self.request_body) if self.request_body else {}

    @cached_property
    def events(self) -> list[str]:
        return split_events(self.body) if self.streamed else []

    @cached_property
    def usage(self) -> dict:
        """The usage block the server reported for this interaction ({} if none)."""
        for data in reversed(self.events) if self.streamed else [self.body]:
            if data == DONE:
                continue
            try:
                usage = json.loads(data).get("usage")
            except (ValueError, AttributeError):
                return {}
            if usage:
                return usage
        return {}


@dataclass
class Cassette:
    metadata: dict
    interactions: list[Interaction]
    path: Path | None = None

    @property
    def n_ctx(self) -> int:
        return int(self.metadata["server"]["n_ctx"])

    def tool_result(self, call_id: str) -> ToolResult | None:
        for it in self.interactions:
            for r in it.tool_results:
                if r.id == call_id:
                    return r
        return None


def _headers(raw: Any, path, index) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CassetteError(path, "headers must be a mapping of name to a list of values", index)
    return {k: v if isinstance(v, list) else [v] for k, v in raw.items()}


def _offsets(raw: str | None) -> list[float] | None:
    return None if raw is None else [float(t) for t in str(raw).split()]


def _is_event_stream(headers: dict[str, list[str]]) -> bool:
    return any(k.lower() == "content-type" and "event-stream" in " ".join(v) for k, v in headers.items())


def _interaction(raw: Any, path, i: int) -> Interaction:
    try:
        req, resp = raw["request"], raw["response"]
        body = resp["body"]["string"]
        it = Interaction(
            method=req["method"], uri=req["uri"], request_body=req.get("body") or "",
            request_headers=_headers(req.get("headers"), path, i),
            status=int(resp["status"]["code"]), body=body if isinstance(body, str) else body.decode(),
            headers=_headers(resp.get("headers"), path, i),
            chunk_offsets=_offsets(resp.get("chunk_offsets")),
            tool_results=[ToolResult(**r) for r in raw.get("tool_results") or []],
            scripted=raw.get("scripted"), match=(raw.get("match") or {}).get("contains"),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise CassetteError(path, f"missing or malformed key {e} (needs request.method/uri/body, "
                                  "response.status.code, response.body.string)", i) from None
    except ValueError as e:
        raise CassetteError(path, f"chunk_offsets must be numbers separated by spaces: {e}", i) from None
    try:
        it.request  # noqa: B018 - parse now so a bad body is reported at load, not mid-test
    except ValueError as e:
        raise CassetteError(path, f"request body is not JSON: {e}", i) from None
    if it.streamed or _is_event_stream(it.headers):
        _check_stream(it, path, i)
    return it


def _check_stream(it: Interaction, path, i: int) -> None:
    """The body frames as SSE (sse.py, the framer everything shares), has one offset per event
    (comment blocks such as `: ping` are no events) and ends in [DONE] or an error event."""
    try:
        events = it.events if it.streamed else split_events(it.body)
    except SSEError as e:
        raise CassetteError(path, str(e), i) from None
    if it.chunk_offsets is None or len(it.chunk_offsets) != len(events):
        raise CassetteError(path, f"{len(events)} SSE events but {len(it.chunk_offsets or [])} chunk_offsets", i)
    if not events or (events[-1] != DONE and '"error"' not in events[-1]):
        raise CassetteError(path, "truncated SSE stream: no [DONE] and no error event at the end", i)


def parse(data: Any, path: Path | str = "<cassette>") -> Cassette:
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(path, "not a cassette: expected a mapping with an `interactions` list")
    if data.get("version") != VCR_VERSION:
        raise CassetteError(path, f"unknown cassette version {data.get('version')!r} (expected {VCR_VERSION})")
    meta = data.get("metadata")
    if not isinstance(meta, dict) or (missing := [k for k in REQUIRED_METADATA if k not in meta]):
        raise CassetteError(path, f"metadata lacks {missing if isinstance(meta, dict) else 'everything'}; "
                                  f"required: {', '.join(REQUIRED_METADATA)}")
    if meta["format"] != FORMAT:
        raise CassetteError(path, f"unknown tbreplay format {meta['format']!r} (this version reads {FORMAT}); "
                                  "upgrade pytest-tbreplay")
    if meta["provenance"] not in PROVENANCES:
        raise CassetteError(path, f"provenance {meta['provenance']!r} is not one of {PROVENANCES}")
    if not isinstance(meta["server"], dict) or not isinstance(meta["server"].get("n_ctx"), int):
        raise CassetteError(path, "metadata.server.n_ctx must be an integer")
    return Cassette(meta, [_interaction(raw, path, i) for i, raw in enumerate(data["interactions"])],
                    Path(path))


def load(path: Path | str) -> Cassette:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CassetteError(path, f"cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        raise CassetteError(path, f"bad YAML: {e}".replace("\n", " ")) from None
    return parse(data, path)


def to_dict(c: Cassette, redact: bool = True) -> dict:
    def headers(h):
        return {k: [REDACTED] if redact and k.lower() in SECRET_HEADERS else v for k, v in h.items()}

    out = []
    for it in c.interactions:
        response = {"status": {"code": it.status, "message": "OK" if it.status < 400 else "Error"},
                    "headers": headers(it.headers), "body": {"string": it.body}}
        if it.chunk_offsets is not None:
            response["chunk_offsets"] = " ".join(f"{t:.6f}" for t in it.chunk_offsets)
        d = {"request": {"method": it.method, "uri": it.uri, "body": it.request_body,
                         "headers": headers(it.request_headers)}, "response": response}
        if it.tool_results:
            d["tool_results"] = [vars(r) for r in it.tool_results]
        if it.scripted:
            d["scripted"] = it.scripted
        if it.match:
            d["match"] = {"contains": it.match}
        out.append(d)
    return {"version": VCR_VERSION, "metadata": c.metadata, "interactions": out}


def _str_presenter(dumper, s):
    # Literal blocks keep SSE bodies and tool outputs readable in review diffs.
    style = "|" if "\n" in s and not any(l != l.rstrip() for l in s.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


class _Dumper(Dumper):
    pass


_Dumper.add_representer(str, _str_presenter)


_TEMP = re.compile(r"^\..+\.(\d+)\.\w+\.tmp$")  # .<name>.<pid>.<random>.tmp, as save makes them


def _remove_stale_temp_files(folder: Path) -> None:
    """A save killed mid-write (SIGKILL, power loss) leaves its temp file; the target itself is
    never partial. Remove those whose writer is gone; a live writer's (xdist) stays."""
    for f in folder.glob(".*.tmp"):
        m = _TEMP.match(f.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running: its save may be in progress
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            f.unlink()
        except OSError:
            pass


def save(c: Cassette, path: Path | str, *, overwrite: bool = False, redact: bool = True) -> Path:
    """Write atomically (temp file + rename). An existing cassette is kept unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: cassette exists; not overwriting it (use --record-mode=rewrite "
                              "to replace it, or record under another name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(to_dict(c, redact), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
    _remove_stale_temp_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a cassette is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if a cassette appeared meanwhile: never clobber one
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    c.path = path
    return path
