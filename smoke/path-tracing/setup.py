"""Prepare /app for path-tracing: render the reference image.ppm.

Terminal-Bench renders image.ppm at image build time with a C program that it then
deletes. We do the same: compile reference_render.c in a temporary folder outside the
app folder, so neither its source nor its binary ever reaches the agent. The render is
deterministic, so it is done once per renderer source and copied (tests prepare this
task several times per session).
"""
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

RENDERER = pathlib.Path(__file__).with_name("reference_render.c")


def setup(app: pathlib.Path) -> None:
    digest = hashlib.sha256(RENDERER.read_bytes()).hexdigest()[:16]
    cached = pathlib.Path(tempfile.gettempdir()) / f"tbreplay-path-tracing-{digest}.ppm"
    if not cached.is_file():
        with tempfile.TemporaryDirectory(prefix="tbreplay-render-") as tmp:
            binary = pathlib.Path(tmp) / "render"
            subprocess.run(["gcc", "-O2", "-o", str(binary), str(RENDERER), "-lm"], check=True)
            subprocess.run([str(binary), str(pathlib.Path(tmp) / "image.ppm")], check=True, cwd=tmp)
            # Renamed into place: a concurrent session (xdist worker) never copies half an image.
            os.replace(pathlib.Path(tmp) / "image.ppm", cached)
    shutil.copy(cached, app / "image.ppm")
