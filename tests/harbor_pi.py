"""Harbor's built-in pi agent (`harbor.agents.installed.pi.Pi`) with only its install step replaced,
for the Docker-free tests: `harbor run -a harbor_pi:CachedPi` (this folder on PYTHONPATH).

Pi.install() fetches nvm and Node 22 from the internet, which these machines cannot reach.
CachedPi copies in the pi 0.73.1 that `tbreplay setup` installed from npm (pytest_tbreplay.pi)
and writes a one-line ~/.nvm/nvm.sh that puts it on PATH: all Pi.run() needs from nvm, since it
runs `. ~/.nvm/nvm.sh; pi --print --mode json ...`. Node is the host's (>= 20.6, as for
MitigatedPi). Everything else (models.json, the command line, pi.txt, pi/sessions/, the ATIF
trajectory and token counts) is Harbor's own code.
"""
from harbor.agents.installed.pi import Pi

from pytest_tbreplay.harnesses import pi as tbpi

PREFIX = "/opt/harbor-pi"


class CachedPi(Pi):
    async def install(self, environment) -> None:
        await environment.upload_dir(tbpi.install_pi(), PREFIX)
        await self.exec_as_agent(environment, command=(
            f"mkdir -p ~/.nvm && echo 'export PATH={PREFIX}/node_modules/.bin:$PATH' > ~/.nvm/nvm.sh "
            f"&& . ~/.nvm/nvm.sh && pi --version"))
