"""A throwaway test CA with a server certificate (localhost, 127.0.0.1) and client certificates,
made with ``cryptography`` and written as PEM files (tests of ``mpc.service.server`` over wss://)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["PKI", "make_pki"]


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files: the CA, the server's pair, and client pairs by common name."""

    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(ca_key: ec.EllipticCurvePrivateKey, issuer: x509.Name, subject: str, *, is_ca: bool = False,
           sans: list[x509.GeneralName] | None = None,
           usage: list[x509.ObjectIdentifier] | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ca_key if is_ca else ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(directory: Path, clients: tuple[str, ...] = ("device", "operator"), ca_name: str = "test CA") -> PKI:
    """A CA, a server certificate for ``localhost`` / ``127.0.0.1`` and one client certificate per
    common name in ``clients``, as PEM files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, _ = _issue(ca_key, _name(ca_name), ca_name, is_ca=True)
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert, server_key = _issue(ca_key, ca_cert.subject, "localhost", sans=sans,
                                     usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    pairs = {}
    for name in clients:
        cert, key = _issue(ca_key, ca_cert.subject, name, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        pairs[name] = (_write_cert(cert, directory / f"{name}.crt"), _write_key(key, directory / f"{name}.key"))
    return PKI(
        ca=_write_cert(ca_cert, directory / "ca.crt"),
        server_cert=_write_cert(server_cert, directory / "server.crt"),
        server_key=_write_key(server_key, directory / "server.key"),
        clients=pairs,
    )
