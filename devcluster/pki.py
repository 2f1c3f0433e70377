"""Throwaway PKI for the local control plane: a CA, the API server's serving cert, the SA key.

Also a separate CA and serving cert for CloudNativePG's admission webhooks (see cnpg_webhooks.py).
"""

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


def _validity() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(minutes=5), now + dt.timedelta(days=30)


def _certificate_authority(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    valid = _validity()
    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
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
    return ca_key, ca_cert


def _serving_certificate(
    ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, common_name: str, dns_names: list[str]
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A server certificate for 127.0.0.1 and `dns_names`, signed by the CA."""
    serving_key = _key()
    return serving_key, _sign_serving_certificate(ca_key, ca_cert, serving_key, common_name, dns_names)


def _sign_serving_certificate(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, serving_key: rsa.RSAPrivateKey,
                              common_name: str, dns_names: list[str]) -> x509.Certificate:
    valid = _validity()
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    names += [x509.DNSName(name) for name in dns_names]
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return serving_cert


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def create_pki(directory: Path) -> Pki:
    """Write a CA, a serving cert for 127.0.0.1/localhost, a service-account key, and the certs of the
    simulator's kubelet endpoint (serving) and of the API server as its client into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _certificate_authority("cnpg-mcp-dev-ca")
    serving_key, serving_cert = _serving_certificate(
        ca_key, ca_cert, "kube-apiserver", ["localhost", "kubernetes.default.svc"]
    )
    kubelet_serving_key, kubelet_serving_cert = _serving_certificate(
        ca_key, ca_cert, "cnpg-simulator-kubelet", ["localhost"])
    kubelet_client_key = _key()
    kubelet_client_cert = _client_certificate(ca_key, ca_cert, kubelet_client_key, "kube-apiserver-kubelet-client")
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
    _write_cert(ca_cert, pki.ca_cert)
    _write_cert(serving_cert, pki.serving_cert)
    _write_key(serving_key, pki.serving_key)
    _write_key(_key(), pki.service_account_key)
    for cert, key, cert_path, key_path in (
            (kubelet_serving_cert, kubelet_serving_key, pki.kubelet_serving_cert, pki.kubelet_serving_key),
            (kubelet_client_cert, kubelet_client_key, pki.kubelet_client_cert, pki.kubelet_client_key)):
        assert cert_path is not None and key_path is not None
        _write_cert(cert, cert_path)
        _write_key(key, key_path)
    return pki


def _client_certificate(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, key: rsa.RSAPrivateKey,
                        common_name: str) -> x509.Certificate:
    """A TLS client certificate signed by the CA (the API server calling the simulated kubelet)."""
    valid = _validity()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class WebhookPki:
    ca_cert: Path  # the apiserver trusts this CA for the webhook (caBundle)
    cert_dir: Path  # what CloudNativePG's WEBHOOK_CERT_DIR must hold: apiserver.crt and apiserver.key


def create_webhook_pki(directory: Path) -> WebhookPki:
    """A dedicated CA and a 127.0.0.1 serving cert for a webhook server, in the file names CNPG reads.

    CNPG's manager, given WEBHOOK_CERT_DIR, serves `apiserver.crt`/`apiserver.key` from it
    (internal/cmd/manager/controller/controller.go, RunController).
    """
    cert_dir = directory / "serving"
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _certificate_authority("cnpg-mcp-dev-webhook-ca")
    serving_key, serving_cert = _serving_certificate(ca_key, ca_cert, "cnpg-webhooks", ["localhost"])
    pki = WebhookPki(ca_cert=directory / "ca.crt", cert_dir=cert_dir)
    _write_cert(ca_cert, pki.ca_cert)
    _write_cert(serving_cert, cert_dir / "apiserver.crt")
    _write_key(serving_key, cert_dir / "apiserver.key")
    return pki


# ------------------------------------------------------------------- the sandbox PostgreSQL's TLS

POSTGRES_CA_NAME = "cnpg-mcp-sandbox-cluster-ca"


@dataclass(frozen=True)
class PostgresTls:
    """The sandbox PostgreSQL's TLS files: the CA every simulated Cluster's `<cluster>-ca` Secret holds
    (one real server plays every cluster, so one CA signs its one certificate) and that certificate."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def create_postgres_tls(directory: Path) -> PostgresTls:
    """A CA and a server key plus a certificate for localhost/127.0.0.1 (names are added later)."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = PostgresTls(directory)
    ca_key, ca_cert = _certificate_authority(POSTGRES_CA_NAME)
    _write_cert(ca_cert, tls.ca_cert)
    _write_key(ca_key, tls.ca_key)
    _write_key(_key(), tls.server_key)
    issue_postgres_server_certificate(tls, [])
    return tls


def issue_postgres_server_certificate(tls: PostgresTls, dns_names: list[str]) -> None:
    """Signs a new server certificate (same key) for localhost, 127.0.0.1 and `dns_names`, replacing the
    old one atomically (PostgreSQL reads it again on pg_reload_conf())."""
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    server_key = serialization.load_pem_private_key(tls.server_key.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey) and isinstance(server_key, rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    cert = _sign_serving_certificate(ca_key, ca_cert, server_key, "cnpg-mcp-sandbox-postgres",
                                     ["localhost", *dns_names])
    staged = tls.server_cert.with_suffix(".crt.new")
    _write_cert(cert, staged)
    staged.replace(tls.server_cert)
