"""lint-config on hostile configs (issue 21): macro doubling, YAML alias bombs and deep nesting are
refused with one line naming the file, fast; a YAML syntax error or a field of the wrong type exits 2
with a message, never a traceback."""
import contextlib
import io

import pytest

from pytest_tbreplay.cli import main


def lint(path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(["lint-config", str(path)])
    return rc, err.getvalue()


def macro_bomb(n: int) -> str:
    s = "macros:\n  m0: 'x'\n" + "".join(f"  m{i}: '${{m{i - 1}}} ${{m{i - 1}}}'\n" for i in range(1, n + 1))
    return s + f"models:\n  m:\n    cmd: llama-server --port ${{PORT}} -c 4096 ${{m{n}}}\n"


def laughs(levels: int) -> str:
    s = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    s += "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, levels + 1))
    return s + ("models:\n  m:\n    cmd: llama-server --port ${PORT} -c 4096\n"
                f"    filters:\n      setParamsByID:\n        m2: {{x: *a{levels}}}\n")


@pytest.mark.parametrize("text, expect", [
    (macro_bomb(24), "expands past"),
    (macro_bomb(64), "expands past"),
    (laughs(9), "expands to more than"),
    ("models:\n  m:\n    cmd: llama-server --port ${PORT}\n    x: " + "[" * 100000 + "]" * 100000 + "\n", "nested deeper"),
    ("models:\n  m:\n    cmd: [llama-server\n", "not valid YAML"),
    ("models:\n  m: 5\n", "settings must be a mapping"),
    ("models:\n  m:\n    cmd: llama-server --port ${PORT}\n    ttl: abc\n", "`ttl` must be a whole number"),
    ("healthCheckTimeout: .nan\nmodels:\n  m:\n    cmd: llama-server\n", "healthCheckTimeout"),
    ("models:\n  m:\n    cmd: 5\n", "`cmd` must be text"),
    ("models:\n  m:\n    cmd: llama-server\n    aliases: x\n", "`aliases` must be a list"),
])
def test_a_hostile_config_is_one_clear_error(tmp_path, text, expect):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    rc, err = lint(p)
    assert rc == 2 and expect in err and str(p) in err and "Traceback" not in err, err


def test_shared_settings_through_a_yaml_merge_still_load(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("common: &common\n  ttl: 300\nmodels:\n  m:\n    <<: *common\n    cmd: llama-server --port ${PORT} -c 4096\n")
    rc, err = lint(p)
    assert rc in (0, 1) and "Traceback" not in err and "refused" not in err, err
