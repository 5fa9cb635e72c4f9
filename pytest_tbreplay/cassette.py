"""The cassette: vcrpy's YAML (`version`, `interactions`, `metadata`) plus what vcrpy lacks.

A real trial resends its whole conversation every turn (a 300-turn trial near 250k tokens would
store ~200M characters of requests), so a cassette keeps each distinct chat message once, in the
top-level `messages` list (compact JSON strings, in order of first use), and each interaction
names the messages of its request:
  messages                "0-41 57": the request's messages, as index ranges into `messages`;
                          its `request.body` then holds the rest of the request with
                          `"messages": []`. An interaction without it has a complete body.
Plain vcrpy replays such a cassette as it is (it matches on method and URI, not bodies);
`tbreplay export --vcrpy` writes a copy with every request body complete.

Each interaction may also carry, next to vcrpy's `request` and `response`:
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
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .sse import DONE, split_events

VCR_VERSION = 1  # vcrpy's cassette version
FORMAT = 2  # our metadata.format: 2 added the message store
READABLE_FORMATS = (1, 2)  # 1: every request body complete
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
        """The request as sent. (A cassette with a message store sets it at load.)"""
        return json.loads(self.request_body) if self.request_body else {}

    def body_text(self) -> str:
        """The complete request body: what a flat, vcrpy-only copy stores."""
        return self.request_body if "request" not in self.__dict__ else json.dumps(self.request, ensure_ascii=False)

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
    def n_ctx(self) -> int | None:
        """The server's context; None for an imported trial that never said (no emulated 400s)."""
        n = self.metadata["server"]["n_ctx"]
        return None if n is None else int(n)

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


def _ranges(raw: Any, n_store: int, path, i: int) -> list[int]:
    """ "0-41 57" -> [0, ..., 41, 57], every index inside the store."""
    out = []
    try:
        for part in str(raw).split():
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise CassetteError(path, f"messages must be index ranges such as '0-41 57', not {str(raw)[:40]!r}", i) from None
    if out and not (0 <= min(out) and max(out) < n_store):
        raise CassetteError(path, f"messages {raw!r} point outside the {n_store} stored messages", i)
    return out


def _compact_ranges(ids: list[int]) -> str:
    parts, start = [], None
    for k, v in enumerate(ids):
        if start is None:
            start = v
        if k + 1 == len(ids) or ids[k + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return " ".join(parts)


def _interaction(raw: Any, path, i: int, store: list[dict]) -> Interaction:
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
        request = it.request  # parse now so a bad body is reported at load, not mid-test
    except ValueError as e:
        raise CassetteError(path, f"request body is not JSON: {e}", i) from None
    if raw.get("messages") is not None:
        if not isinstance(request, dict):
            raise CassetteError(path, "request body must be a JSON object when `messages` refers to the store", i)
        request["messages"] = [store[k] for k in _ranges(raw["messages"], len(store), path, i)]
    if it.streamed or _is_event_stream(it.headers):
        _check_stream(it, path, i)
    return it


def _check_stream(it: Interaction, path, i: int) -> None:
    """Validate an SSE body without parsing its events (they are parsed when first served): every
    event ends in a blank line, so counting blank lines counts events."""
    body = it.body.replace("\r\n", "\n") if "\r" in it.body else it.body
    if not body.endswith("\n\n"):
        raise CassetteError(path, f"truncated SSE stream: the last event is not terminated ({body[-60:]!r})", i)
    n_events = body.count("\n\n")
    if it.chunk_offsets is None or len(it.chunk_offsets) != n_events:
        raise CassetteError(path, f"{n_events} SSE events but {len(it.chunk_offsets or [])} chunk_offsets", i)
    last = body[body.rstrip("\n").rfind("\n\n") + 2:] if n_events > 1 else body
    if not last.startswith(f"data: {DONE}") and '"error"' not in last:
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
    if meta["format"] not in READABLE_FORMATS:
        raise CassetteError(path, f"unknown tbreplay format {meta['format']!r} (this version reads "
                                  f"{READABLE_FORMATS}); upgrade pytest-tbreplay")
    if meta["provenance"] not in PROVENANCES:
        raise CassetteError(path, f"provenance {meta['provenance']!r} is not one of {PROVENANCES}")
    n_ctx = meta["server"].get("n_ctx") if isinstance(meta["server"], dict) else "?"
    if not (isinstance(n_ctx, int) or (n_ctx is None and meta["provenance"] == "imported")):
        raise CassetteError(path, "metadata.server.n_ctx must be an integer (null only for an imported trial "
                                  "whose server context is unknown)")
    store = _store(data.get("messages"), path)
    return Cassette(meta, [_interaction(raw, path, i, store) for i, raw in enumerate(data["interactions"])],
                    Path(path))


def _store(raw: Any, path) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CassetteError(path, "`messages` must be a list of JSON strings, one chat message each")
    store = []
    for k, text in enumerate(raw):
        try:
            m = json.loads(text)
        except (TypeError, ValueError) as e:
            raise CassetteError(path, f"stored message {k} is not a JSON string: {e}") from None
        if not isinstance(m, dict):
            raise CassetteError(path, f"stored message {k} is not a JSON object")
        store.append(m)
    return store


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

    store, by_id, by_text = [], {}, {}

    def index(m: dict) -> int:
        # By identity first: an imported trial's requests share their message objects, and
        # serializing 300 growing histories to compare them would take seconds.
        if (k := by_id.get(id(m))) is None:
            text = json.dumps(m, ensure_ascii=False, separators=(",", ":"))
            k = by_id[id(m)] = by_text.setdefault(text, len(store))
            if k == len(store):
                store.append(text)
        return k

    out = []
    for it in c.interactions:
        request = it.request
        ref = None
        if isinstance(request, dict) and isinstance(request.get("messages"), list):
            ref = _compact_ranges([index(m) for m in request["messages"]])
            body = json.dumps(dict(request, messages=[]), ensure_ascii=False)
        else:
            body = it.request_body
        response = {"status": {"code": it.status, "message": "OK" if it.status < 400 else "Error"},
                    "headers": headers(it.headers), "body": {"string": it.body}}
        if it.chunk_offsets is not None:
            response["chunk_offsets"] = " ".join(f"{t:.6f}" for t in it.chunk_offsets)
        d = {"request": {"method": it.method, "uri": it.uri, "body": body,
                         "headers": headers(it.request_headers)}}
        if ref is not None:
            d["messages"] = ref
        d["response"] = response
        if it.tool_results:
            d["tool_results"] = [vars(r) for r in it.tool_results]
        if it.scripted:
            d["scripted"] = it.scripted
        if it.match:
            d["match"] = {"contains": it.match}
        out.append(d)
    return {"version": VCR_VERSION, "metadata": dict(c.metadata, format=FORMAT), "messages": store,
            "interactions": out}


def to_flat_dict(c: Cassette, redact: bool = True) -> dict:
    """The cassette with every request body complete and no message store: for tools that read
    vcrpy cassettes and match on bodies."""
    d = to_dict(c, redact)
    for raw, it in zip(d["interactions"], c.interactions):
        raw["request"]["body"] = it.body_text()
        raw.pop("messages", None)
    d.pop("messages")
    d["metadata"] = dict(d["metadata"], format=1)
    return d


def _str_presenter(dumper, s):
    # Literal blocks keep SSE bodies and tool outputs readable in review diffs.
    # (A literal block cannot keep trailing blanks; substring tests, not a per-line scan: an
    # imported trial's bodies run to tens of MB.)
    # YAML also reads CR, NEL, LS and PS as line breaks: those strings stay quoted.
    style = "|" if "\n" in s and not (" \n" in s or "\t\n" in s or s.endswith((" ", "\t"))
                                       or any(c in s for c in "\r\x85\u2028\u2029")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


class _Dumper(Dumper):
    pass


_Dumper.add_representer(str, _str_presenter)


def save(c: Cassette, path: Path | str, *, overwrite: bool = False, redact: bool = True, flat: bool = False) -> Path:
    """Write atomically (temp file + rename). An existing cassette is kept unless `overwrite`.
    `flat` writes every request body complete (format 1) instead of using the message store."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: cassette exists; not overwriting it (use --record-mode=rewrite "
                              "to replace it, or record under another name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump((to_flat_dict if flat else to_dict)(c, redact), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
