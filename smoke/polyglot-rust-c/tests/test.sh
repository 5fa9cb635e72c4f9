#!/bin/bash
# Harbor's verifier: the tests, then 1 or 0 in /logs/verifier/reward.txt (all or nothing).
# Terminal-Bench's test.sh installs uv and runs pytest 8.4.1 through uvx; this one uses the image's
# pytest (environment/Dockerfile), so it also runs where the internet is out of reach.
mkdir -p /logs/verifier
if python3 -m pytest -rA -p no:cacheprovider /tests/test_outputs.py; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
