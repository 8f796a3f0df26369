"""DKIM keys for tests, made by the openssl CLI as staff would make them."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path


def rsa_key(folder: Path, bits: int, name: str = "dkim") -> tuple[Path, str]:
    """A PEM private key file, and its public half as the p= value of a DKIM record."""
    key = folder / f"{name}.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), str(bits)], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key, base64.b64encode(der).decode("ascii")
