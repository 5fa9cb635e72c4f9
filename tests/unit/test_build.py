"""Building llama-server: a missing tool is named before anything is downloaded."""
import pytest

from pytest_tbreplay.server import llama


def test_a_missing_build_tool_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(llama, "CACHE", tmp_path)  # nothing cached: a build would start
    monkeypatch.setattr(llama.shutil, "which", lambda tool: None if tool == "cmake" else f"/usr/bin/{tool}")
    with pytest.raises(llama.ServerBuildError, match="needs `cmake`, which is not on PATH.*apt-get install"):
        llama.build_server("0.0.0-test")
    assert list(tmp_path.iterdir()) == []  # nothing half-built left behind


def test_a_cached_build_is_reused_without_tools(tmp_path, monkeypatch):
    monkeypatch.setattr(llama, "CACHE", tmp_path)
    binary = tmp_path / "llama-server-1.2.3" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("")
    monkeypatch.setattr(llama.shutil, "which", lambda tool: None)
    assert llama.build_server("1.2.3") == binary


@pytest.mark.parametrize("style", ["make", "ninja"])
def test_the_build_reports_its_percentage_in_tenths(capsys, style):
    # make prints "[ 42%] Building ...", ninja "[12/345] Building ..."; 25 files build here.
    lines = [f"[{n * 4:3d}%] Building CXX object f{n}.o" if style == "make" else f"[{n}/25] Building CXX object f{n}.o"
             for n in range(1, 26)]
    llama._build_with_progress(["printf", "%s\\n", *lines, "Linking llama-server"])
    shown = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tbreplay setup: building")]
    assert shown == [f"tbreplay setup: building llama-server: {p}%" for p in (4, 12, 20, 32, 40, 52, 60, 72, 80, 92, 100)]


def test_a_failed_build_step_raises():
    with pytest.raises(llama.subprocess.CalledProcessError):
        llama._build_with_progress(["sh", "-c", "echo '[ 10%] x'; exit 2"])
