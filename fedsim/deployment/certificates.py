"""TLS certificates and SuperNode keys for a federation, made with ``cryptography`` (no openssl needed).

``make_certificates`` writes what Flower's SuperLink and SuperNodes take, under the
names Flower's guides use: ``ca.crt`` (a CA every SuperNode trusts: ``--root-certificates``),
``server.pem`` and ``server.key`` (the SuperLink's certificate for its host names and IP
addresses, signed by the CA: ``--ssl-certfile``, ``--ssl-keyfile``, with ``--ssl-ca-certfile
ca.crt``). ``make_node_key`` writes a SuperNode's key pair for node authentication: the
private key (``--auth-supernode-private-key``) and its ``.pub`` (``flwr supernode register``).
Keys are ECDSA P-384; private keys are written readable by their owner only.
"""

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

CA_FILE = "ca.crt"
CERTIFICATE_FILE = "server.pem"
KEY_FILE = "server.key"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
VALID_DAYS = 365


def _private_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP384R1())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:  # created owner-only, never readable by others even for a moment
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)


def _subject_names(hosts: Sequence[str]) -> list:
    from cryptography import x509

    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_certificates(folder: str | Path, hosts: Sequence[str] = LOCAL_HOSTS, days: int = VALID_DAYS) -> Path:
    """Write a new CA and a SuperLink certificate for ``hosts`` (IP addresses or DNS names) into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key, server_key = _private_key(), _private_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedsim federation CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(folder / CA_FILE, ca.public_bytes(pem))
    _write(folder / CERTIFICATE_FILE, server.public_bytes(pem))
    key_bytes = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(folder / KEY_FILE, key_bytes, private=True)
    return folder


def make_node_key(path: str | Path) -> tuple[Path, Path]:
    """Write a SuperNode's authentication key pair (OpenSSH format): ``path`` and ``path.pub``."""
    from cryptography.hazmat.primitives import serialization

    path = Path(path)
    key = _private_key()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write(path, private, private=True)
    public_path = path.with_name(f"{path.name}.pub")
    _write(public_path, public + b"\n")
    return path, public_path
