"""Verifier for path-tracing, following Terminal-Bench 2.0's tests.

The app folder comes from TBREPLAY_APP (default /app). Terminal-Bench builds and runs
image.c in a chroot that holds nothing else; we get the same guarantee (the program
cannot see image.ppm through a relative path) by building and running a copy of
image.c in an empty temporary folder.
"""
import os
import pathlib
import re
import subprocess
import tempfile
import zlib

import numpy as np

APP = pathlib.Path(os.environ.get("TBREPLAY_APP", "/app"))
SIZE = (2400, 1800)


def read_ppm(path):
    tokens = re.sub(rb"#[^\n]*", b"", path.read_bytes()).split(maxsplit=4)
    assert tokens[0] == b"P3", f"{path.name} is not a P3 PPM"
    width, height = int(tokens[1]), int(tokens[2])
    assert (width, height) == SIZE, f"{path.name} is {width}x{height}, expected 2400x1800"
    # 13 million numbers: parsed in C (stops at the first non-number, which the size check catches)
    pixels = np.fromstring(tokens[4], dtype=np.int32, sep=" ").astype(np.float64)
    assert pixels.size == width * height * 3, f"{path.name} has {pixels.size} values"
    return pixels


def build(workdir):
    cmd = ["gcc", "-static", "-o", "image", "image.c", "-lm"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0 and "cannot find -lc" in result.stderr:
        # Static glibc (libc6-dev's libc.a) missing on this machine: build dynamically
        # rather than fail every answer for a reason that is not the agent's.
        cmd.remove("-static")
        result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr}"


def test_image_c_exists():
    assert (APP / "image.c").is_file(), "image.c not found"


def test_image_c_is_small():
    size = len(zlib.compress((APP / "image.c").read_bytes()))
    assert size < 2100, f"image.c is {size} bytes compressed, limit is 2100"


def test_no_custom_includes():
    source = (APP / "image.c").read_text()
    local = re.findall(r'^\s*#\s*include\s*"[^"]*"', source, re.MULTILINE)
    assert not local, f"image.c includes project files: {local}"


def test_does_not_open_reference_by_path():
    # The chroot in Terminal-Bench hides /app/image.ppm; locally the app folder is
    # reachable, so an absolute path to it in the source would be a way around.
    assert str(APP) not in (APP / "image.c").read_text(), "image.c refers to the app folder"


def test_reconstruction_is_similar():
    with tempfile.TemporaryDirectory(prefix="tbreplay-image-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "image.c").write_bytes((APP / "image.c").read_bytes())
        build(tmp)
        # Without TBREPLAY_APP in its environment the program has no hint of the app folder.
        env = {k: v for k, v in os.environ.items() if k != "TBREPLAY_APP"}
        run = subprocess.run(["./image"], cwd=tmp, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, f"./image exited {run.returncode}: {run.stderr[-2000:]}"
        out = tmp / "reconstructed.ppm"
        assert out.is_file(), "./image did not write reconstructed.ppm"
        ours = read_ppm(out)
    reference = read_ppm(APP / "image.ppm")
    similarity = float(ours @ reference / (np.linalg.norm(ours) * np.linalg.norm(reference)))
    assert similarity >= 0.99, f"cosine similarity {similarity:.4f} < 0.99"
