"""The typed contract between the harness and the pi extensions (issue 18 item 2): contract.py's
ExtensionConfig and LOG against common.ts's `type Config` and `type LogEntry`, and both against
what the code on each side really reads and writes."""
import re
from pathlib import Path

from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.harnesses.pi import launch
from pytest_tbreplay.harnesses.pi.contract import LOG, contract_json
from pytest_tbreplay.harnesses.pi.install import VERSIONS

EXT = launch.EXTENSIONS
COMMON = (EXT / "lib" / "common.ts").read_text()
SOURCES = {p.relative_to(EXT).as_posix(): p.read_text() for p in sorted(EXT.rglob("*.ts"))}


def ts_config() -> dict[str, str]:
    body = re.search(r"export type Config = \{\n(.*?)\n\};", COMMON, re.S)[1]
    return dict(re.fullmatch(r"\t(\w+): (.+);", line).groups() for line in body.splitlines())


def ts_log() -> dict[str, dict[str, str]]:
    body = re.search(r"export type LogEntry =\n(.*?);\n", COMMON, re.S)[1]
    out = {}
    for line in body.splitlines():
        fields = re.fullmatch(r'\t\| \{ kind: "(\w+)"; (.+) \}', line)
        out[fields[1]] = dict(f.split(": ", 1) for f in fields[2].split("; "))
    return out


def test_the_typescript_types_are_the_python_contract():
    contract = contract_json()
    assert ts_config() == contract["config"]
    assert ts_log() == contract["log"]


def test_the_harness_writes_every_field_the_contract_names():
    p = load_profile("mitigated")
    for version in VERSIONS:
        written = launch.extension_config(p, p.budget(262144), TaskSpec("t", "do it", ("ok",)), "http://x/v1", "m",
                                          Path("/tmp/log"), None, version)
        assert list(written) == list(contract_json()["config"])


def test_the_extensions_read_only_contract_fields_and_log_only_contract_kinds():
    # the modules that import common.ts's config (lib/stuck.ts, say, names its own parameter `config`)
    readers = [src for src in SOURCES.values() if re.search(r"import \{[^}]*\bconfig\b[^}]*\} from \"\./(lib/)?common\.ts\"", src)]
    read = {m for src in readers for m in re.findall(r"\bconfig\.(\w+)", src)}
    assert read <= set(contract_json()["config"]), read - set(contract_json()["config"])
    logged = {k for src in SOURCES.values() for k in re.findall(r'\blog\("(\w+)"', src)}
    assert logged == set(LOG)  # every kind is logged somewhere, and nothing else is


def test_the_harness_reads_only_logged_kinds():
    adapter = (Path(launch.__file__).parent / "adapter.py").read_text()
    kinds = set(re.findall(r'(?:entry|e)\["kind"\] == "(\w+)"', adapter))
    assert kinds and kinds <= set(LOG), kinds - set(LOG)
