"""Read a llama-swap config.yaml the way llama-swap loads it, or a plain llama-server command line,
into one ModelConfig per model: the argv and env it starts, and the llama-swap settings that matter
to a harness (aliases, ttl, filters, sendLoadingState, healthCheckTimeout).

The rules follow llama-swap's `internal/config/{load,macros,commands}.go` (HEAD 0bdb3720):
`${env.X}` first at string level; then per model MODEL_ID + global macros overlaid by the model's,
substituted last-declared first (so a macro may use only earlier ones); `${PORT}` from `startPort`
in sorted model-ID order, only for models whose cmd uses it; comment lines and `\\` continuations
dropped from `cmd`; POSIX shell splitting."""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pytest_tbreplay.core import boundedyaml

ENV_MACRO = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")
MACRO = re.compile(r"\$\{([a-zA-Z0-9_-]+)\}")
MACRO_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_EXPANDED = 1 << 20  # characters a field may expand to: far above any real command line
COMMAND_LINE = "command-line"  # the model id given to a plain llama-server command line


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    ttl: int = 0  # seconds idle before llama-swap unloads the model; 0 = never
    proxy: str = ""
    strip_params: list[str] = field(default_factory=list)
    set_params: dict = field(default_factory=dict)
    set_params_by_id: dict = field(default_factory=dict)
    send_loading_state: bool = False
    health_check_timeout: int = 120


@dataclass
class SwapConfig:
    source: str
    kind: str  # "llama-swap" or "command line"
    models: dict[str, ModelConfig]

    def resolve(self, name: str) -> ModelConfig | None:
        """The model a request's `model` field reaches: an ID or an alias."""
        if name in self.models:
            return self.models[name]
        return next((m for m in self.models.values() if name in m.aliases), None)

    @property
    def names(self) -> list[str]:
        return sorted(set(self.models) | {a for m in self.models.values() for a in m.aliases})


# -- loading ---------------------------------------------------------------------------------
def load(path: str | Path, environ: dict[str, str] | None = None) -> SwapConfig:
    """A llama-swap config (a YAML mapping with `models:`), else a file holding a command line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        data = boundedyaml.safe_load(text)
    except boundedyaml.BoundedYAMLError as e:
        raise ConfigError(f"{path}: refused: the YAML {e}") from None
    except yaml.YAMLError as e:
        if re.search(r"^(models|macros)\s*:", text, re.M):  # meant as a llama-swap config, not a command line
            raise ConfigError(f"{path}: not valid YAML ({_first_line(e)}): fix the config") from None
        data = None
    if isinstance(data, dict) and "models" in data:
        return parse_config(text, str(path), os.environ if environ is None else environ)
    return parse_command_line(text, str(path))


def _whole(d: dict, key: str, default: int, where: str) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{where}: `{key}` must be a whole number, not {str(value)[:40]!r}")
    return int(value)


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


def parse_command_line(text: str, source: str = COMMAND_LINE) -> SwapConfig:
    """`[KEY=VALUE ...] llama-server FLAGS`, with comment lines and `\\` continuations allowed."""
    argv = split_command(text, source)
    env = {}
    while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
        key, value = argv.pop(0).split("=", 1)
        env[key] = value
    if not argv:
        raise ConfigError(f"{source}: no command after the environment assignments")
    return SwapConfig(source, "command line", {COMMAND_LINE: ModelConfig(COMMAND_LINE, argv, env)})


def split_command(cmd: str, where: str) -> list[str]:
    """llama-swap's SanitizeCommand: drop comment lines, join `\\` continuations, POSIX split."""
    lines = []
    for line in cmd.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            continue
        lines.append(s[:-1] + " " if s.endswith("\\") else line)
    try:
        argv = shlex.split("\n".join(lines), posix=True)
    except ValueError as e:
        raise ConfigError(f"{where}: cannot split the command ({e}): check its quotes") from None
    if not argv:
        raise ConfigError(f"{where}: empty command")
    return argv


def _go_str(value) -> str:
    """A macro value as Go's fmt %v prints it (llama-swap substitutes that text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _substitute_env(text: str, source: str, environ) -> str:
    # llama-swap scans the comment-free YAML, so a ${env.X} inside a comment needs no X.
    try:
        scan = yaml.safe_dump(boundedyaml.safe_load(text))
    except yaml.YAMLError:
        scan = text
    for name in dict.fromkeys(ENV_MACRO.findall(scan)):
        if name not in environ:
            raise ConfigError(f"{source}: environment variable '{name}' is not set (llama-swap refuses "
                              f"the config): export it before linting")
        value = environ[name]
        if any(c in value for c in "\n\r\0"):
            raise ConfigError(f"{source}: environment variable '{name}' contains a newline or NUL, "
                              "which llama-swap rejects")
        text = text.replace("${env.%s}" % name, value.replace("\\", "\\\\").replace('"', '\\"'))
    return text


def _check_macro(name, value, where: str) -> None:
    if len(name) >= 64 or not MACRO_NAME.match(name):
        raise ConfigError(f"{where}: macro name '{name}' must match ^[a-zA-Z0-9_-]+$ and be under 64 characters")
    if name in ("PORT", "MODEL_ID"):
        raise ConfigError(f"{where}: macro name '{name}' is reserved")
    if not isinstance(value, (str, int, float, bool, dict)):
        raise ConfigError(f"{where}: macro '{name}' must be a scalar or a map, not {type(value).__name__}")
    if "${%s}" % name in (value if isinstance(value, str) else yaml.safe_dump(value)):
        raise ConfigError(f"{where}: macro '{name}' contains self-reference")


def _macros(raw, where: str) -> list[tuple[str, object]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: macros must be a mapping of name: value")
    for name, value in raw.items():
        _check_macro(str(name), value, where)
    return [(str(k), v) for k, v in raw.items()]


def _sub(value, slug: str, macro_value):
    """One macro into a value: a whole-value use keeps the macro's type (substituteMacroInValue)."""
    if isinstance(value, str):
        if value == slug:
            return macro_value
        if slug in value:
            if isinstance(macro_value, dict):
                raise ConfigError(f"macro {slug} has a map value and can only be used as a whole value")
            return value.replace(slug, _go_str(macro_value))
        return value
    if isinstance(value, dict):
        return {k: _sub(v, slug, macro_value) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, slug, macro_value) for v in value]
    return value


STRING_FIELDS = ("cmd", "cmdStop", "proxy", "checkEndpoint", "name", "description")


def parse_config(text: str, source: str = "config.yaml", environ: dict[str, str] | None = None) -> SwapConfig:
    text = _substitute_env(text, source, os.environ if environ is None else environ)
    try:
        raw = boundedyaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({_first_line(e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a llama-swap config is a mapping with `models:`, not a {type(raw).__name__}")
    models_raw = raw.get("models") or {}
    if not isinstance(models_raw, dict):
        raise ConfigError(f"{source}: `models` must be a mapping of model ID to its settings")
    health = max(_whole(raw, "healthCheckTimeout", 120, source), 15)
    global_ttl = _whole(raw, "globalTTL", 0, source)
    next_port = _whole(raw, "startPort", 5800, source)
    global_loading = bool(raw.get("sendLoadingState", False))
    global_macros = _macros(raw.get("macros"), f"{source}: macros")

    seen_alias: dict[str, str] = {}
    for mid, m in models_raw.items():
        if not isinstance(m, (dict, type(None))):
            raise ConfigError(f"{source}: model {mid}: its settings must be a mapping (cmd:, aliases:, ...), "
                              f"not {type(m).__name__}")
        for key, kind in (("aliases", list), ("env", list), ("filters", dict), ("macros", dict)):
            if not isinstance((m or {}).get(key) or kind(), kind):
                raise ConfigError(f"{source}: model {mid}: `{key}` must be a {kind.__name__}")
        if not isinstance((m or {}).get("cmd") or "", str):
            raise ConfigError(f"{source}: model {mid}: `cmd` must be text (the llama-server command line)")
        for alias in (m or {}).get("aliases") or []:
            if alias in seen_alias:
                raise ConfigError(f"{source}: duplicate alias {alias} found in model: {mid}")
            seen_alias[alias] = mid

    models = {}
    for mid in sorted(models_raw, key=str):
        m = dict(models_raw[mid] or {})
        where = f"{source}: model {mid}"
        if not m.get("cmd"):
            raise ConfigError(f"{where}: no `cmd`: give the llama-server command line that serves it")
        fields = {k: str(m.get(k) or "") for k in STRING_FIELDS}
        fields["proxy"] = fields["proxy"] or "http://localhost:${PORT}"
        fields["cmd"] = "\n".join(l for l in fields["cmd"].split("\n") if not l.strip().startswith("#"))
        fields["cmdStop"] = "\n".join(l for l in fields["cmdStop"].split("\n") if not l.strip().startswith("#"))
        filters = dict(m.get("filters") or {})
        strip = str(filters.get("stripParams") or "")
        by_id = filters.get("setParamsByID") or {}
        if not isinstance(by_id, dict) or not isinstance(filters.get("setParams") or {}, dict):
            raise ConfigError(f"{where}: filters.setParams and filters.setParamsByID must be mappings")
        by_id = dict(by_id)

        merged = [("MODEL_ID", mid)] + list(global_macros)
        for name, value in _macros(m.get("macros"), f"{where}: macros"):
            idx = next((i for i, (n, _) in enumerate(merged) if n == name), None)
            if idx is None:
                merged.append((name, value))
            else:
                merged[idx] = (name, value)
        for name, value in reversed(merged):  # last declared first
            slug = "${%s}" % name
            for k in fields:
                fields[k] = fields[k].replace(slug, _go_str(value))
            strip = strip.replace(slug, _go_str(value))
            by_id = {k.replace(slug, _go_str(value)): _sub(v, slug, value) for k, v in by_id.items()}
            # Macros using earlier ones twice double at each step: 24 of them are 2^24 copies.
            if max(map(len, [*fields.values(), strip])) > MAX_EXPANDED:
                raise ConfigError(f"{where}: macro '{name}' expands past {MAX_EXPANDED:,} characters "
                                  "(macros that use earlier macros several times?)")

        if "${PORT}" in fields["cmd"]:
            for k in fields:
                fields[k] = fields[k].replace("${PORT}", str(next_port))
            next_port += 1
        elif "${PORT}" in fields["proxy"]:
            raise ConfigError(f"{where}: proxy uses ${{PORT}} but cmd does not - ${{PORT}} is only available "
                              "when used in cmd (set `proxy:` or use --port ${PORT})")
        for k, value in list(fields.items()) + [("filters.stripParams", strip)]:
            for name in MACRO.findall(value):
                if not (name == "PID" and k == "cmdStop"):
                    raise ConfigError(f"{where}: unknown macro '${{{name}}}' in {k}")

        ttl = _whole(m, "ttl", -1, where)
        ttl = global_ttl if ttl == -1 else ttl
        if ttl < 0:
            raise ConfigError(f"{where}: invalid TTL value {ttl}")
        aliases = [str(a) for a in m.get("aliases") or []]
        for key in by_id:
            if key != mid and key not in aliases:
                if key in models_raw:
                    raise ConfigError(f"{where}: filters.setParamsByID key '{key}' conflicts with a model ID")
                aliases.append(key)
        env = {}
        for entry in m.get("env") or []:
            key, sep, value = str(entry).partition("=")
            if not sep:
                raise ConfigError(f"{where}: env entry {entry!r} is not KEY=value")
            env[key] = value
        loading = m.get("sendLoadingState")
        models[str(mid)] = ModelConfig(
            id=str(mid), argv=split_command(fields["cmd"], f"{where}: cmd"), env=env, aliases=aliases, ttl=ttl,
            proxy=fields["proxy"], strip_params=[p.strip() for p in strip.split(",") if p.strip()],
            set_params=dict(filters.get("setParams") or {}), set_params_by_id=by_id,
            send_loading_state=global_loading if loading is None else bool(loading),
            health_check_timeout=health)
    return SwapConfig(source, "llama-swap", models)
