"""The `pi` harness: the real pi coding agent from npm, run against the replay server or a live
llama-server, its events turned into the same `Trial` the reference harness produces.

- install: which pi (npm package and version), and the Node it needs;
- launch: the command line, models.json, settings.json and the extension config of a profile
  (one builder, used here and by the Harbor agent);
- pool: kept pi processes in RPC mode, one new session per trial;
- events: pi's JSON events turned into turns;
- adapter: `PiHarness`, the harness itself;
- session: pi's session file read back (for import);
- extensions/: the mitigations as pi extensions, named after their profile keys (lib/: the
  modules they import)."""
from pytest_tbreplay.harnesses.pi.adapter import PiHarness
from pytest_tbreplay.harnesses.pi.events import RunState, openai_message
from pytest_tbreplay.harnesses.pi.install import (NODE_MIN, PI_PACKAGE, PI_VERSION, RECORDED_PI, PiUnavailable, install_pi,
                                                  node_problem, pi_binary, pi_dir, pi_problem, release)
from pytest_tbreplay.harnesses.pi.launch import (ALL_EXTENSIONS, EXTENSIONS, LIBRARIES, PROVIDER, SLIM_UPDATES_JS, SPARE_PROMPTS,
                                                 command, extension_config, extension_files, extensions, models_json,
                                                 print_args, settings_json, uses_rpc)
from pytest_tbreplay.harnesses.pi.pool import PiProcess, stop_idle

__all__ = ["PiHarness", "RunState", "openai_message", "NODE_MIN", "PI_PACKAGE", "PI_VERSION", "PiUnavailable",
           "install_pi", "node_problem", "pi_binary", "pi_dir", "pi_problem", "ALL_EXTENSIONS", "EXTENSIONS",
           "LIBRARIES", "PROVIDER", "extension_config", "extensions", "models_json", "print_args", "settings_json",
           "uses_rpc", "PiProcess", "stop_idle", "RECORDED_PI", "release", "SLIM_UPDATES_JS", "SPARE_PROMPTS", "command",
           "extension_files"]
