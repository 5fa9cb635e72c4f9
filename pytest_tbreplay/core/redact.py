"""What a recording must not keep: credentials, wherever a client put them, and the recording
machine's filesystem layout. Applied by the recording proxy as it keeps an interaction, by
`cassette.save` on headers, URIs and metadata, and by `tbreplay import` on everything it copies
from a trial's files.

One rule, not a list of names: a name is secret-like when, compared case-insensitively,
  - one of its words (split at `-`, `_`, `.`, spaces and camelCase) is a credential word
    (key, apikey, token, secret, pass, password, passwd, sig, signature, session, cookie, auth,
    authorization, credential(s), bearer, private_key ...), or
  - a word, or the whole name with its separators removed, ends in a credential stem (`key`,
    `token`, `secret`, `password`, `cookie`, `signature`, `credential(s)`: x-apikey, aPiKeY,
    accessToken, clientsecret) or starts with `session` (sessionid).
Whole words and stems, so `max_tokens`, `prompt_tokens`, `author`, `passed` and `signal` stay.
Redacted: header values, query-string values, URL userinfo (`user:password@`), JSON values at any
depth (under a secret-named object the search goes on, so a tool schema with a `token` property
keeps its shape), and in free text (logs, exception messages) `NAME=value`, `NAME: value`,
`--name value` and `Bearer value` where NAME is secret-like. A local path given as the `model`
(`/home/me/models/x.gguf`) becomes its file name, everywhere it appears in the interaction."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
SECRET_WORDS = {"key", "keys", "apikey", "token", "secret", "secrets", "pass", "password", "passwd", "pwd",
                "passphrase", "sig", "signature", "session", "cookie", "auth", "authorization", "authentication",
                "credential", "credentials", "bearer", "organization", "jwt", "privatekey", "private"}
STEMS_END = ("key", "keys", "token", "secret", "password", "passwd", "cookie", "signature", "credential", "credentials",
             "sessionid", "sessid")
STEMS_START = ("session",)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PARTS = re.compile(r"[^A-Za-z0-9]+")
_LOCAL_PATH = re.compile(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\])")


def _stemmed(word: str) -> bool:
    return word.endswith(STEMS_END) or word.startswith(STEMS_START)


def is_secret_name(name: str) -> bool:
    name = str(name)
    parts = [p.lower() for p in _PARTS.split(name) if p]
    words = [w.lower() for w in _WORDS.findall(name)]
    whole = "".join(parts)
    if SECRET_WORDS.intersection(parts) or SECRET_WORDS.intersection(words) or whole in SECRET_WORDS:
        return True
    # a stem inside a longer word (apikey, accesstoken); `tokens` alone is a count, not a credential
    return any(_stemmed(p) and p not in ("tokens",) for p in parts) or (_stemmed(whole) and len(parts) > 1
                                                                       and not whole.endswith("tokens"))


def headers(h: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [REDACTED] * len(v) if is_secret_name(k) else v for k, v in h.items()}


def uri(u: str) -> str:
    """A URL with the password of its userinfo and its secret-named query values redacted."""
    try:
        parts = urlsplit(u)
    except ValueError:
        return u
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        parts = parts._replace(netloc=f"{user}{colon}{REDACTED if colon else ''}@{host}" if colon else f"{REDACTED}@{host}")
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            parts = parts._replace(query=urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs]))
    return urlunsplit(parts)


# Free text (a logged command line, a printed header dict, an exception message):
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I)
_BEARER = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]+", re.I)
# The value is looked at, not consumed: in `failed: akey=x` the pair `failed: ...` must not swallow
# the pair inside its value.
_PAIR = re.compile(r"""(?P<name>[A-Za-z_][\w.-]*)(?P<q>["']?)(?P<sep>\s*[:=]\s*)(?P<vq>["']?)(?=(?P<value>[^\s"',;&}\]]+))""")
_FLAG = re.compile(r"(?P<flag>--?[A-Za-z][\w-]*)(?P<sep>[ =])(?P<value>[^\s\"',;]+)")


def text(t: str | None) -> str | None:
    """Free text with every credential the rule can see replaced by REDACTED."""
    if not t:
        return t
    t = _URL.sub(lambda m: uri(m.group(0)), t)
    t = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", t)
    t = _FLAG.sub(lambda m: f"{m.group('flag')}{m.group('sep')}{REDACTED}" if is_secret_name(m.group("flag")) else m.group(0), t)

    out, pos = [], 0
    for m in _PAIR.finditer(t):
        if m.start() < pos:  # inside a value already redacted
            continue
        v = m.group("value")
        if is_secret_name(m.group("name")) and v != REDACTED and v.lower() not in ("bearer", "basic", "token"):
            out += [t[pos:m.end()], REDACTED]  # (bearer/basic/token: already done by _BEARER)
            pos = m.end("value")
    return "".join(out) + t[pos:]


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
