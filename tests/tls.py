"""TLS for the loopback test servers: a self-signed certificate for 127.0.0.1 (made with
`cryptography`, no openssl binary needed) and a wrapper that makes an HTTPServer speak HTTPS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM; also the CA bundle a client trusts (MLFLOW_TRACKING_SERVER_CERT_PATH)
    key: Path


def self_signed(folder: Path) -> Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    found = Certificate(folder / "cert.pem", folder / "key.pem")
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return found


def loopback_uri(server: HTTPServer, certificate: Certificate | None) -> str:
    """The URI of `server` (bound to 127.0.0.1, not yet serving), made to answer HTTPS with
    `certificate` when one is given."""
    if certificate is None:
        return f"http://127.0.0.1:{server.server_address[1]}"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return f"https://127.0.0.1:{server.server_address[1]}"
