#!/bin/sh
# Oracle: the regex file.
set -e
APP=${APP:-/app}  # Harbor runs this in the task container; the Docker-free runner sets APP
cp "$(dirname "$0")/regex.txt" "$APP/regex.txt"
