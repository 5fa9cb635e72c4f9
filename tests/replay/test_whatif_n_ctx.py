"""`whatif --n-ctx` (and `view --n-ctx`) replay a cassette as if its server had that context, as
they do a job folder (issue 21): a smaller n_ctx meets the recorded overflow sooner."""
import json
from pathlib import Path

import pytest

from pytest_tbreplay.cli import main

OVERFLOW_32K = Path(__file__).resolve().parents[2] / "cassettes" / "shapes" / "overflow-32k.yaml"


def whatif_json(tmp_path, *extra) -> dict:
    out = tmp_path / "w.json"
    assert main(["whatif", str(OVERFLOW_32K), "--profile", "baseline", "--json", str(out), *extra]) == 0
    [w] = json.loads(out.read_text())
    return w


def test_n_ctx_replays_a_cassette_against_a_smaller_server(tmp_path, capsys):
    recorded = whatif_json(tmp_path)
    assert recorded["departures"] == [] and "8 of 8" in recorded["ending"]  # the 32k server: as recorded
    smaller = whatif_json(tmp_path, "--n-ctx", "16384")
    first = smaller["departures"][0]
    assert first["kind"] == "overflow" and first["interaction"] < 8 and "of 8 recorded" in smaller["ending"]
    assert "8 of 8" not in smaller["ending"]


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1e4"])
def test_a_bad_n_ctx_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["whatif", str(OVERFLOW_32K), "--profile", "baseline", "--n-ctx", value])
    assert e.value.code == 2 and "--n-ctx" in capsys.readouterr().err
