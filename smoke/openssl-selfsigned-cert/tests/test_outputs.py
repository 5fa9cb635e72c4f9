"""Verifier for openssl-selfsigned-cert, following Terminal-Bench 2.0's tests.

The app folder comes from TBREPLAY_APP (default /app). check_cert.py is run with the
Python running this verifier (Terminal-Bench runs `python`, which may be absent here).
"""
import datetime
import os
import pathlib
import re
import subprocess
import sys

APP = pathlib.Path(os.environ.get("TBREPLAY_APP", "/app"))
SSL = APP / "ssl"
CN = "dev-internal.company.local"


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def parse_date(text):
    return datetime.datetime.strptime(text.strip(), "%b %d %H:%M:%S %Y %Z")


def test_directory_structure():
    assert SSL.is_dir(), f"{SSL} is not a directory"


def test_key_file():
    key = SSL / "server.key"
    assert key.is_file(), "private key file does not exist"
    mode = key.stat().st_mode & 0o777
    assert mode <= 0o600, f"key permissions too open: {mode:o}"
    assert "2048 bit" in openssl("rsa", "-in", str(key), "-text", "-noout").stdout, (
        "key is not 2048-bit RSA"
    )


def test_certificate_file():
    cert = SSL / "server.crt"
    assert cert.is_file(), "certificate file does not exist"
    text = openssl("x509", "-in", str(cert), "-text", "-noout").stdout
    assert CN in text, "certificate does not have the right Common Name"
    assert "devops team" in text.lower(), "certificate does not have the right Organization"
    dates = openssl("x509", "-in", str(cert), "-noout", "-dates").stdout
    before = re.search(r"notBefore=(.*)", dates)
    after = re.search(r"notAfter=(.*)", dates)
    assert before and after, "could not read the certificate dates"
    days = (parse_date(after.group(1)) - parse_date(before.group(1))).days
    assert days == 365, f"certificate is valid for {days} days, expected exactly 365"


def test_combined_pem_file():
    pem = SSL / "server.pem"
    assert pem.is_file(), "combined PEM file does not exist"
    content = pem.read_text()
    assert "PRIVATE KEY" in content, "PEM file does not contain the private key"
    assert "CERTIFICATE" in content, "PEM file does not contain the certificate"
    assert openssl("x509", "-in", str(pem), "-text", "-noout").returncode == 0, (
        "could not read a certificate from the PEM file"
    )


def test_verification_file():
    path = SSL / "verification.txt"
    assert path.is_file(), "verification file does not exist"
    content = path.read_text()
    assert CN in content.lower(), "verification file lacks the Common Name"
    assert "devops team" in content.lower(), "verification file lacks the Organization"
    assert re.search(r"\d{4}-\d{2}-\d{2}", content) or re.search(
        r"[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\s+\d{4}(?:\s+[A-Z]+)?", content
    ), "verification file lacks a validity date"
    assert re.search(r"[0-9a-f]{2}(:[0-9a-f]{2}){31}", content.lower()), (
        "verification file lacks a SHA-256 fingerprint"
    )


def test_python_verification_script():
    script = APP / "check_cert.py"
    assert script.is_file(), "check_cert.py does not exist"
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"check_cert.py failed: {run.stderr}"
    assert "Certificate verification successful" in run.stdout, "no success message"
    assert CN in run.stdout, "check_cert.py does not print the Common Name"
    assert re.search(r"\d{4}-\d{2}-\d{2}", run.stdout), "check_cert.py prints no YYYY-MM-DD date"
