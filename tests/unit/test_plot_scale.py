"""summarize --plot stays readable on big jobs (issue 21: 10,000 trials drew a 280,000-pixel-tall PNG
in 4 minutes): past MAX_ROWS trials one point each and the counts per mode, in a fixed-size image.
Its time is measured by tests/benchmarks/plot_10k_trials.py, not asserted here."""
import struct

from pytest_tbreplay.analysis import summarize as sm


def png_size(path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def records(n):
    return [sm.classify(sm.Record(f"t{i % 7}", f"t{i % 7}__{i}", "s", 0.0, "failed", turns=3, stop_reasons={"stop": 3},
                                  peak_prompt_tokens=1000 + i, n_ctx=4096, max_tokens="auto" if i % 2 else 512,
                                  max_turn_tokens=100)) for i in range(n)]


def test_many_trials_plot_in_a_fixed_size_image(tmp_path):
    sm.plot(records(2000), tmp_path / "big.png")
    assert png_size(tmp_path / "big.png") == (1200, 600)


def test_few_trials_keep_one_bar_each(tmp_path):
    sm.plot(records(10), tmp_path / "small.png")
    w, h = png_size(tmp_path / "small.png")
    assert w == 1200 and 150 < h < 600
