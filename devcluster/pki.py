"""Throwaway PKI for the local control plane: a CA, the API server's serving cert, the SA key."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    service_account_key: Path
    admin_token: str
    # The CNPG simulator's kubelet endpoint (serving) and the API server's client cert for it.
    kubelet_serving_cert: Path | None = None
    kubelet_serving_key: Path | None = None
    kubelet_client_cert: Path | None = None
    kubelet_client_key: Path | None = None


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_pki(directory: Path) -> Pki:
    """Write a CA, a serving cert for 127.0.0.1/localhost and a service-account key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    valid = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=30))

    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("cnpg-mcp-dev-ca"))
        .issuer_name(_name("cnpg-mcp-dev-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = _key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("kubernetes.default.svc"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    kubelet_serving_key, kubelet_client_key = _key(), _key()
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    kubelet_serving_cert = _leaf(ca_key, ca_cert.subject, kubelet_serving_key, common_name="cnpg-simulator-kubelet",
                                 usage=x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, names=loopback, valid=valid)
    kubelet_client_cert = _leaf(ca_key, ca_cert.subject, kubelet_client_key,
                                common_name="kube-apiserver-kubelet-client",
                                usage=x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, names=[], valid=valid)
    pki = Pki(
        ca_cert=directory / "ca.crt",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        service_account_key=directory / "sa.key",
        admin_token=secrets.token_urlsafe(32),
        kubelet_serving_cert=directory / "kubelet-serving.crt",
        kubelet_serving_key=directory / "kubelet-serving.key",
        kubelet_client_cert=directory / "apiserver-kubelet-client.crt",
        kubelet_client_key=directory / "apiserver-kubelet-client.key",
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.serving_cert.write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(serving_key, pki.serving_key)
    _write_key(_key(), pki.service_account_key)
    for cert, key, cert_path, key_path in (
            (kubelet_serving_cert, kubelet_serving_key, pki.kubelet_serving_cert, pki.kubelet_serving_key),
            (kubelet_client_cert, kubelet_client_key, pki.kubelet_client_cert, pki.kubelet_client_key)):
        assert cert_path is not None and key_path is not None
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return pki


def _leaf(ca_key: rsa.RSAPrivateKey, issuer: x509.Name, key: rsa.RSAPrivateKey, *, common_name: str,
          usage: x509.ObjectIdentifier, names: list[x509.GeneralName],
          valid: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
    """A certificate signed by the CA for one usage (TLS server or TLS client)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())
