"""The legitimate corpus: long texts a model may rightly write, built at test time from this
machine's files and tools (nothing committed). Every text is streamed as text and as a write's
arguments; the detector must cut none of them (tests/unit/test_loopdetect.py, tests/benchmarks/loop_bench.py).

    python tests/loop_corpus.py            # prints the kinds and counts (and which tools are missing)

Kinds: binary dumps (xxd, hexdump -C, od, objdump -d of ELF files on this machine), release notes
with "What's Changed" / "New Contributors" link lists (user names change every line), templated REST
API reference docs (rendered from botocore's service models), function-family reference docs
(pydoc's text of os, str, math, ...), data tables (CSV data in site-packages, glibc locale
collation/definition tables), logs (/var/log, dpkg -l, ls -l, ps) and code (the stdlib)."""
from __future__ import annotations

import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SITE = Path(sysconfig.get_paths()["purelib"])
LIMIT = 30_000  # characters per text
MISSING: list[str] = []  # tools this machine lacks (their kind is then smaller)


def _run(cmd: list[str], limit: int = 400_000) -> str:
    if not shutil.which(cmd[0]):
        if cmd[0] not in MISSING:
            MISSING.append(cmd[0])
        return ""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout[:limit].decode("utf-8", "replace")


def _elves(n: int) -> list[str]:
    out = []
    for d in ["/bin", "/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"]:
        for f in sorted(glob.glob(d + "/*")):
            if len(out) >= n:
                return out
            try:
                if os.path.isfile(f) and not os.path.islink(f) and 20_000 < os.path.getsize(f) < 5_000_000:
                    with open(f, "rb") as fh:
                        if fh.read(4) == b"\x7fELF" and f not in out:
                            out.append(f)
            except OSError:
                pass
    return out


def dumps() -> list[tuple[str, str]]:
    elves = _elves(20)
    out = []
    for i, f in enumerate(elves):
        size = os.path.getsize(f)
        off = [0, size // 3, size // 2, 2 * size // 3][i % 4]
        out.append((f"xxd {f} @{off}", _run(["xxd", "-s", str(off), "-l", "2048", f])))
        out.append((f"hexdump -C {f} @{off}", _run(["hexdump", "-C", "-s", str(off), "-n", "2048", f])))
        od = [["od", "-A", "x", "-t", "x1z"], ["od", "-c"], ["od", "-A", "d", "-t", "x2"], ["od", "-v", "-A", "x", "-t", "x4"]][i % 4]
        out.append((f"{' '.join(od)} {f} @{off}", _run(od + ["-j", str(off), "-N", "2048", f])))
    for i, f in enumerate(elves[:8]):
        dis = _run(["objdump", "-d", f], 3_000_000)
        for j, frac in enumerate([0.0, 0.4]):
            k = int(len(dis) * frac)
            out.append((f"objdump -d {f} @{k}", dis[k:k + LIMIT]))
    plt = _run(["objdump", "-d", "-j", ".plt", elves[0]]) if elves else ""
    out.append(("objdump -d -j .plt", plt))
    return [(n, t) for n, t in out if len(t) > 2000]


def _handle(rng: random.Random) -> str:
    syl = ["ka", "ro", "mi", "zen", "dev", "lo", "tan", "vi", "qu", "sh", "ar", "el", "jo", "ny", "bit", "cat", "sam"]
    h = "".join(rng.choice(syl) for _ in range(rng.randint(2, 4)))
    return h + (str(rng.randint(1, 999)) if rng.random() < 0.4 else rng.choice(["", "-dev", "_x", "-gh", ""]))


def release_notes(n: int = 20) -> list[tuple[str, str]]:
    verbs = ["Fix", "Add", "Remove", "Update", "Refactor", "Document", "Bump", "Support", "Handle", "Deprecate"]
    things = [re.sub(r"\W", " ", s).split()[:6] for s in _words_pool()]
    out = []
    for k in range(n):
        rng = random.Random(k)
        repo = f"{_handle(rng)}/{_handle(rng)}"
        pr = rng.randint(100, 9000)
        lines = [f"## v{rng.randint(0, 9)}.{rng.randint(0, 30)}.0\n", "## What's Changed"]
        for _ in range(rng.randint(60, 200)):
            pr += rng.randint(1, 7)
            lines.append(f"* {rng.choice(verbs)} {' '.join(rng.choice(things))} by @{_handle(rng)} in "
                         f"https://github.com/{repo}/pull/{pr}")
        lines += ["", "## New Contributors"]
        for _ in range(rng.randint(20, 120)):
            pr += rng.randint(1, 7)
            lines.append(f"* @{_handle(rng)} made their first contribution in https://github.com/{repo}/pull/{pr}")
        lines += ["", f"**Full Changelog**: https://github.com/{repo}/compare/v1...v2"]
        out.append((f"release notes {k}", "\n".join(lines)))
    return out


def _words_pool() -> list[str]:
    from pydoc_data.topics import topics
    return [s for s in re.split(r"[.\n]", " ".join(topics.values())) if len(s.split()) >= 4][:3000]


def api_docs(n: int = 30) -> list[tuple[str, str]]:
    """Templated REST API reference: one section per operation of a botocore service model."""
    paths = sorted(glob.glob(str(SITE / "botocore/data/*/*/service-2.json*")))
    rng = random.Random(5)
    out = []
    for p in rng.sample(paths, min(n, len(paths))):
        if p.endswith(".gz"):
            import gzip
            model = json.loads(gzip.open(p).read())
        else:
            model = json.loads(Path(p).read_text())
        shapes, parts = model.get("shapes", {}), []
        strip = lambda h: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", h or "")).strip()  # noqa: E731
        for name, op in model.get("operations", {}).items():
            http = op.get("http", {})
            parts.append(f"### {name}\n\n`{http.get('method', 'POST')} {http.get('requestUri', '/')}`\n\n"
                         f"{strip(op.get('documentation'))[:400]}\n\n**Request parameters**\n\n"
                         "| Name | Type | Required | Description |\n|---|---|---|---|")
            inp = shapes.get(op.get("input", {}).get("shape", ""), {})
            for m, ref in list(inp.get("members", {}).items())[:8]:
                t = shapes.get(ref.get("shape", ""), {}).get("type", "string")
                parts.append(f"| `{m}` | {t} | {'yes' if m in inp.get('required', []) else 'no'} | "
                             f"{strip(ref.get('documentation'))[:160]} |")
            parts.append("\n**Responses**\n\n- `200 OK`: the operation succeeded.\n"
                         "- `400 Bad Request`: a parameter is missing or invalid.\n"
                         "- `403 Forbidden`: the caller lacks permission.\n\n**Errors**\n")
            for e in op.get("errors", [])[:5]:
                parts.append(f"- `{e.get('shape')}`: {strip(shapes.get(e.get('shape', ''), {}).get('documentation'))[:120]}")
            parts.append("")
        out.append((f"API reference {Path(p).parts[-3]}", "\n".join(parts)))
    return out


PYDOC_MODULES = ["os", "posix", "str", "bytes", "math", "cmath", "socket", "itertools", "operator", "string",
                 "random", "re", "shutil", "time", "signal", "stat", "errno", "struct", "codecs", "builtins",
                 "list", "dict", "set", "float", "int", "functools", "select", "termios", "curses", "array", "ssl",
                 "unicodedata", "zlib", "hashlib"]


def function_docs() -> list[tuple[str, str]]:
    import pydoc
    out = []
    for m in PYDOC_MODULES:
        try:
            text = pydoc.render_doc(m, renderer=pydoc.plaintext)
        except Exception:  # noqa: BLE001
            continue
        if m == "os":
            i = text.find("    spawnl(")
            out.append(("pydoc os.spawn*", text[max(0, i - 3000):i + LIMIT]))
        out.append((f"pydoc {m}", text))
    return out


def tables() -> list[tuple[str, str]]:
    files = []
    for pat in ["numpy/random/tests/data/*.csv", "numpy/_core/tests/data/*.csv", "numpy/core/tests/data/*.csv",
                "matplotlib/mpl-data/sample_data/*.csv", "**/*.tsv", "pandas/tests/io/data/csv/*.csv"]:
        files += sorted(glob.glob(str(SITE / pat), recursive=True))[:8]
    loc = Path("/usr/share/i18n/locales")
    files += [str(loc / f) for f in ["iso14651_t1_common", "translit_combining", "i18n_ctype", "en_US", "de_DE",
                                     "ja_JP", "zh_CN", "ru_RU", "el_GR", "hi_IN", "translit_compat", "tr_TR",
                                     "uk_UA", "ar_SA", "ko_KR"]]
    files += sorted(glob.glob("/usr/share/zoneinfo/*.tab")) + ["/etc/services", "/etc/protocols", "/etc/mime.types"]
    out = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > 2000:
            k = len(text) // 3 if "iso14651" in f else 0
            out.append((f"table {f}", text[k:]))
    return out


def logs() -> list[tuple[str, str]]:
    out = []
    for f in ["/var/log/dpkg.log", "/var/log/apt/history.log", "/var/log/apt/term.log", "/var/log/alternatives.log",
              "/var/log/fontconfig.log"]:
        try:
            text = Path(f).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for k in range(0, min(len(text), 4 * LIMIT), LIMIT):
            if len(text) - k > 2000:
                out.append((f"log {f} @{k}", text[k:]))
    for cmd in [["dpkg", "-l"], ["ls", "-la", "/usr/lib/x86_64-linux-gnu"], ["ls", "-l", "/usr/bin"], ["ps", "aux"],
                ["env"], [sys.executable, "-m", "pip", "list", "-v"], ["ls", "-lR", "/etc"], ["find", "/usr/share/doc", "-maxdepth", "2"]]:
        text = _run(cmd)
        if len(text) > 2000:
            out.append((f"tool output {' '.join(cmd[:3])}", text))
    return out


def code(n_stdlib: int = 130) -> list[tuple[str, str]]:
    """The stdlib's biggest modules, tests and codecs: the same files wherever this Python runs
    (site-packages would make the corpus depend on what else is installed, and in which version)."""
    big = lambda paths, n: sorted(paths, key=lambda p: (-p.stat().st_size, p.name))[:n]  # noqa: E731
    files = big([p for p in STDLIB.glob("*.py")], n_stdlib // 2)
    files += big([p for p in STDLIB.glob("test/test_*.py")], n_stdlib // 4)
    files += big([p for p in STDLIB.glob("encodings/*.py")], n_stdlib // 4)
    files += big([p for p in STDLIB.glob("*/*.py") if "test" not in str(p.parent) and p.parent.name != "encodings"],
                 n_stdlib // 8)
    out = []
    for p in files:
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out.append((f"code {p}", text[len(text) // 4:] if len(text) > 3 * LIMIT else text))
    return out


def build(limit: int = LIMIT) -> list[tuple[str, str, str]]:
    """(kind, name, text) for every legitimate text, each cut to `limit` characters."""
    out = []
    for kind, make in [("binary dump", dumps), ("release notes", release_notes), ("API docs", api_docs),
                       ("function-family docs", function_docs), ("data table", tables), ("log", logs),
                       ("code", code)]:
        out += [(kind, name, text[:limit]) for name, text in make() if len(text.strip()) > 1000]
    return out


if __name__ == "__main__":
    docs = build()
    kinds: dict[str, int] = {}
    for k, _, _ in docs:
        kinds[k] = kinds.get(k, 0) + 1
    print(kinds, len(docs), "files;", sum(len(t) for _, _, t in docs), "chars; missing tools:", MISSING or "none")
