"""What a recording must not keep: credentials, wherever a client put them, and the recording
machine's filesystem layout. Applied by the recording proxy as it keeps an interaction, and again
by `cassette.save` on headers.

A name is secret-like when one of its words (split at `-`, `_`, `.`, spaces and camelCase) is a
credential word (token, secret, password, authorization, cookie, ...) or when it ends in `key`
after another word (api_key, x-api-key, accessKey). Whole words, so `max_tokens` and
`prompt_tokens` stay. Redacted: header values, query-string values and JSON body values (at any
depth; under a secret-named object the search goes on, so a tool schema with a `token` property
keeps its shape). A local path given as the `model`
(`/home/me/models/x.gguf`) becomes its file name, everywhere it appears in the interaction."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "authorization",
                "auth", "cookie", "credential", "credentials", "session", "organization", "signature", "bearer"}
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_LOCAL_PATH = re.compile(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\])")


def is_secret_name(name: str) -> bool:
    words = [w.lower() for w in _WORDS.findall(str(name))]
    return bool(SECRET_WORDS.intersection(words)) or bool({"key", "keys"}.intersection(words[1:]))


def headers(h: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [REDACTED] * len(v) if is_secret_name(k) else v for k, v in h.items()}


def uri(u: str) -> str:
    parts = urlsplit(u)
    if not parts.query:
        return u
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs):
        return u
    query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs])
    return urlunsplit(parts._replace(query=query))


def value(obj):
    """`obj` with every secret-named value redacted, at any depth."""
    if isinstance(obj, dict):
        return {k: REDACTED if is_secret_name(k) and not isinstance(v, dict) else value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [value(v) for v in obj]
    return obj


def is_local_path(text: str) -> bool:
    return bool(_LOCAL_PATH.match(text))


def local_model_path(request: dict) -> str | None:
    model = request.get("model") if isinstance(request, dict) else None
    return model if isinstance(model, str) and is_local_path(model) else None


def file_name(path: str) -> str:
    return re.split(r"[/\\]", path.rstrip("/\\"))[-1] or path


def json_text(text: str) -> str:
    """A JSON request body with secret-named values redacted (unchanged text when nothing is)."""
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    clean = value(obj)
    if isinstance(clean, dict) and (path := local_model_path(clean)):
        clean["model"] = file_name(path)
    return text if clean == obj else json.dumps(clean, ensure_ascii=False, separators=(",", ":"))
