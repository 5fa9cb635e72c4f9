"""Check ssl/server.crt next to this script: it loads, and print its CN and expiry."""
import datetime
import os
import re
import ssl
import subprocess
import sys

CERT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssl", "server.crt")

if not os.path.isfile(CERT):
    sys.exit(f"Certificate not found: {CERT}")
with open(CERT) as f:
    ssl.PEM_cert_to_DER_cert(f.read())  # raises if the file is not a PEM certificate
out = subprocess.run(
    ["openssl", "x509", "-in", CERT, "-noout", "-subject", "-enddate"],
    capture_output=True, text=True, check=True,
).stdout
cn = re.search(r"CN\s*=\s*([^,/\n]+)", out).group(1).strip()
not_after = re.search(r"notAfter=(.*)", out).group(1).strip()
expiry = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), datetime.timezone.utc)
print(f"Common Name: {cn}")
print(f"Expiration date: {expiry:%Y-%m-%d}")
if cn != "dev-internal.company.local":
    sys.exit("Unexpected Common Name")
print("Certificate verification successful")
