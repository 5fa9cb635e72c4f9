#!/bin/sh
# Oracle: key, certificate, combined PEM, verification record and checker script.
# DAYS and KEY_MODE let the wrong answers reuse this script.
set -e
APP=${APP:-/app}  # Harbor runs this in the task container; the Docker-free runner sets APP
HERE=$(cd "$(dirname "$0")" && pwd)
DAYS=${DAYS:-365}
KEY_MODE=${KEY_MODE:-600}
mkdir -p "$APP/ssl"
cd "$APP/ssl"
openssl genrsa -out server.key 2048 2>/dev/null
chmod "$KEY_MODE" server.key
openssl req -new -x509 -key server.key -out server.crt -days "$DAYS" \
    -subj "/O=DevOps Team/CN=dev-internal.company.local"
cat server.key server.crt > server.pem
{
    openssl x509 -in server.crt -noout -subject
    openssl x509 -in server.crt -noout -dates
    openssl x509 -in server.crt -noout -fingerprint -sha256
} > verification.txt
cp "$HERE/check_cert.py" "$APP/check_cert.py"
