#!/bin/sh
# Wrong answer: a correct main.rs, but the agent's test builds are left in the folder,
# which Terminal-Bench 2.0 rejects (the folder must hold only main.rs).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$APP/polyglot"
cd "$APP/polyglot"
cp "$HERE/../../solution/main.rs" main.rs
rustc main.rs -o main
g++ -x c++ main.rs -o cmain
