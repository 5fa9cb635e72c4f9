# The task verifiers here are run by pytest_tbreplay.tasks against an app folder, in
# their own pytest process. Keep a plain `pytest` at the repo root from collecting them
# (they would test /app, and share the module name test_outputs).
collect_ignore_glob = ["*/tests/*", "*/solution/*", "*/wrong/*", "*/environment/*"]
