"""Certificates for a local TLS listener: a throwaway CA, a server certificate it signs, and
client certificates it signs for listeners that require them (mutual TLS).

``LocalKafka(tls=True)`` uses these so the TLS settings (``ARGOS_KAFKA_SECURITY_PROTOCOL=SSL``,
``ARGOS_KAFKA_SSL_CAFILE``) are exercised against a real broker. Written with the
``cryptography`` package (already a dependency, for encryption at rest): no ``openssl`` or
``keytool`` calls. The broker reads the key and chain as a PEM keystore (Kafka's
``ssl.keystore.type=PEM``); clients trust ``ca.pem``.

>>> import tempfile, pathlib
>>> files = write_server_tls(pathlib.Path(tempfile.mkdtemp()), "127.0.0.1")
>>> sorted(p.name for p in files.values())
['ca.pem', 'server.pem']
>>> b"BEGIN PRIVATE KEY" in files["keystore"].read_bytes()
True
>>> client = write_client_tls(files["ca"].parent, "agent-7")
>>> sorted(p.name for p in client.values())
['client-agent-7.key', 'client-agent-7.pem']
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_server_tls(folder: Path, host: str) -> dict[str, Path]:
    """A new CA and a server certificate for ``host`` (plus ``localhost``), written to
    ``folder``: ``ca.pem`` (what clients trust, and what a listener that requires client
    certificates trusts them by), ``ca.key`` (to sign client certificates with
    :func:`write_client_tls`) and ``server.pem`` (the broker's unencrypted PKCS#8 key followed
    by its certificate and the CA's: a PEM keystore); keys readable by the owner only. Returns
    {"ca": path, "keystore": path}."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("argos local CA"))
        .issuer_name(_name("argos local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(_san(host), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, store_path = folder / "ca.pem", folder / "server.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    keystore = _key_pem(key) + cert.public_bytes(pem) + ca.public_bytes(pem)
    _write_private(store_path, keystore)
    _write_private(folder / "ca.key", _key_pem(ca_key))
    return {"ca": ca_path, "keystore": store_path}


def write_client_tls(folder: Path, name: str) -> dict[str, Path]:
    """A client certificate for ``name`` signed by the CA that :func:`write_server_tls` wrote
    in ``folder``: ``client-<name>.pem`` (certificate) and ``client-<name>.key`` (its PKCS#8
    key, owner only). Returns {"cert": path, "key": path}."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{folder / 'ca.key'} is not the EC key write_server_tls writes")
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"client-{name}.pem", folder / f"client-{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    return {"cert": cert_path, "key": key_path}
