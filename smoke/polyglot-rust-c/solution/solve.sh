#!/bin/sh
# Oracle: the polyglot source, alone in /app/polyglot.
set -e
APP=${APP:-/app}  # Harbor runs this in the task container; the Docker-free runner sets APP
mkdir -p "$APP/polyglot"
cp "$(dirname "$0")/main.rs" "$APP/polyglot/main.rs"
