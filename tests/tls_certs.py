"""A throw-away certificate authority for TLS tests, made with the ``openssl`` CLI."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing here: verifying with it must fail


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return cert, key


def _signed(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert, extfile = (d / f"{name}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    extfile.write_text(ext + "\n")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(extfile),
        "-out",
        str(cert),
    )
    return cert, key


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_pki(d: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an
    unrelated second CA, all under ``d``."""
    ca = _ca(d, "test-ca")
    other, _ = _ca(d, "other-ca")
    server = _signed(d, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost")
    client = _signed(d, "client", ca, "extendedKeyUsage=clientAuth")
    return Pki(ca[0], server[0], server[1], client[0], client[1], other)
