"""Generate a local certificate authority and a server certificate, when missing.

``python -m provisioning.certs [DIR]`` writes ``ca.pem``, ``ca-key.pem``, ``server.pem`` and
``server-key.pem`` (private keys mode 0600) into DIR (default ``certs``, or ``CERT_DIR``).
The server certificate names localhost, 127.0.0.1, ::1 and the compose service names, plus any
in ``CERT_EXTRA_NAMES`` (comma-separated). Existing, still valid files are kept.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1", "service-b", "stub", "worker")
CA_FILE, CA_KEY_FILE = "ca.pem", "ca-key.pem"
SERVER_FILE, SERVER_KEY_FILE = "server.pem", "server-key.pem"
VALIDITY = datetime.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CPE provisioning platform (local)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alternative_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _still_valid(path: Path, names: tuple[str, ...]) -> bool:
    if not path.exists():
        return False
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)
    if certificate.not_valid_after_utc < soon:
        return False
    try:
        present = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return set(_subject_alternative_names(names)) <= set(present.value)


def ensure_certificates(directory: Path, extra_names: tuple[str, ...] = ()) -> bool:
    """Create the CA and server certificate unless valid ones exist; True if it wrote any."""
    names = tuple(dict.fromkeys(DEFAULT_NAMES + extra_names))
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / name for name in (CA_FILE, CA_KEY_FILE, SERVER_FILE, SERVER_KEY_FILE)]
    if all(path.exists() for path in files) and _still_valid(directory / SERVER_FILE, names):
        return False

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("CPE provisioning local CA")
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_subject_alternative_names(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / CA_KEY_FILE, ca_key)
    _write_key(directory / SERVER_KEY_FILE, server_key)
    pem = serialization.Encoding.PEM
    (directory / CA_FILE).write_bytes(ca_certificate.public_bytes(pem))
    (directory / SERVER_FILE).write_bytes(server_certificate.public_bytes(pem))
    return True


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    directory = Path(arguments[0] if arguments else os.environ.get("CERT_DIR", "certs"))
    extra = tuple(n.strip() for n in os.environ.get("CERT_EXTRA_NAMES", "").split(",") if n.strip())
    wrote = ensure_certificates(directory, extra)
    state = "generated" if wrote else "kept (still valid)"
    print(f"certificates {state} in {directory.resolve()}; clients trust {directory / CA_FILE}")


if __name__ == "__main__":
    main()
