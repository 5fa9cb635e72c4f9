"""A cassette written out: vcrpy's YAML with the message store (each distinct message once), or
flat (every request body complete, for plain vcrpy); redacted unless asked not to; saved
atomically (a temp file renamed into place) and never over an existing cassette unless asked."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import yaml

from pytest_tbreplay.core import redact as redaction
from pytest_tbreplay.core.cassette import FORMAT, VCR_VERSION, Cassette, Dumper


def _compact_ranges(ids: list[int]) -> str:
    parts, start = [], None
    for k, v in enumerate(ids):
        if start is None:
            start = v
        if k + 1 == len(ids) or ids[k + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return " ".join(parts)


def to_dict(c: Cassette, redact: bool = True) -> dict:
    def headers(h):
        return redaction.headers(h) if redact else h

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
        d = {"request": {"method": it.method, "uri": redaction.uri(it.uri) if redact else it.uri, "body": body,
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
    metadata = redaction.value(c.metadata) if redact else c.metadata  # a settings dict may carry an api_key
    return {"version": VCR_VERSION, "metadata": dict(metadata, format=FORMAT), "messages": store,
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


def save(c: Cassette, path: Path | str, *, overwrite: bool = False, redact: bool = True, flat: bool = False) -> Path:
    """Write atomically (temp file + rename). An existing cassette is kept unless `overwrite`.
    `flat` writes every request body complete (format 1) instead of using the message store."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: cassette exists; not overwriting it (use --record-mode=rewrite "
                              "to replace it, or record under another name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump((to_flat_dict if flat else to_dict)(c, redact), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
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
