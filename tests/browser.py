"""Headless Chromium for the viewer's tests: the rendered DOM (scripts run first) and screenshots.
Debian's `chromium` package; .ci/run installs it when missing. Nothing leaves loopback: the pages
are files, and every background fetch Chromium would make is switched off."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_problem() -> str | None:
    return None if chromium() else "chromium is not installed (`apt-get install -y chromium`; .ci/run does it)"


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="tbreplay-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


def dom(page: Path, fragment: str = "", timeout: float = 120) -> str:
    """The page's DOM after its scripts ran, as Chromium serializes it."""
    p = _run(["--dump-dom", Path(page).resolve().as_uri() + fragment], timeout)
    if not p.stdout.strip():
        raise RuntimeError(f"chromium rendered nothing for {page}: {p.stderr[-800:]}")
    return p.stdout


def screenshot(page: Path, out: Path, size: str = "1300,1600", timeout: float = 120) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={size}", f"--screenshot={Path(out).resolve()}", Path(page).resolve().as_uri()], timeout)
    if not out.exists() or out.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError(f"chromium wrote no screenshot of {page}")
    return out


def render_seconds(page: Path, timeout: float = 120) -> float:
    """Wall time of a headless load and DOM dump (Chromium's start included)."""
    t = time.perf_counter()
    dom(page, timeout=timeout)
    return time.perf_counter() - t
