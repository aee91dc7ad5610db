"""Workload identity: the dev CA, SPIFFE certificates, and reading the caller's identity.

Standalone, every process terminates mTLS itself with a certificate from a CA made on first run; the
certificate's URI SAN is the workload's SPIFFE id, ``spiffe://cluster.local/ns/<ns>/sa/<workload>``.
Under Istio the sidecar terminates mTLS and tells the app who called in ``x-forwarded-client-cert``;
that header is trusted only in that mode, since anyone can send it otherwise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
# A leaf this close to expiry is re-issued at start, so a long-lived dev state folder keeps working.
RENEW_BEFORE = dt.timedelta(days=30)


def spiffe_id(workload: str, namespace: str = "wealist") -> str:
    """The SPIFFE id of a workload's service account."""
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{workload}"


def workload_from_spiffe(uri: str, namespace: str = "wealist") -> str | None:
    """The workload named by a SPIFFE id of our trust domain and namespace, else None."""
    prefix = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/"
    if not uri.startswith(prefix):
        return None
    workload = uri[len(prefix) :]
    return workload if workload and "/" not in workload else None


@dataclass(frozen=True, slots=True)
class PkiPaths:
    """Where the dev PKI lives inside the state folder."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    def cert(self, workload: str) -> Path:
        return self.directory / f"{workload}.pem"

    def key(self, workload: str) -> Path:
        return self.directory / f"{workload}-key.pem"


def pki_paths(state_dir: Path) -> PkiPaths:
    """The PKI folder of a state folder."""
    return PkiPaths(state_dir / "pki")


def ensure_dev_pki(state_dir: Path, workloads: Sequence[str], namespace: str = "wealist") -> PkiPaths:
    """Make the dev CA (once) and a certificate for each workload that lacks a fresh one."""
    paths = pki_paths(state_dir)
    paths.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = _load_or_create_ca(paths)
    for workload in workloads:
        if _needs_issue(paths.cert(workload), ca_cert, spiffe_id(workload, namespace)):
            _issue_leaf(paths, workload, namespace, ca_cert, ca_key)
    return paths


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _load_or_create_ca(paths: PkiPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if paths.ca_cert.exists() and paths.ca_key.exists():
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{paths.ca_key} is not an EC key")
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weAlist mesh dev CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        paths.ca_key,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_public(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _needs_issue(cert_path: Path, ca_cert: x509.Certificate, expected_uri: str) -> bool:
    if not cert_path.exists() or not cert_path.with_name(cert_path.stem + "-key.pem").exists():
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return True
    return _uri_sans(cert) != [expected_uri]


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _issue_leaf(
    paths: PkiPaths,
    workload: str,
    namespace: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> None:
    """One certificate per workload, good for both ends of mTLS (server and client auth).

    Besides the SPIFFE URI it names the workload as a DNS name, so a client that dials ``user`` checks
    it reached the user service, and localhost/127.0.0.1 so grpcurl works against a dev stack.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(spiffe_id(workload, namespace)),
        x509.DNSName(workload),
        x509.DNSName(f"{workload}.{namespace}.svc.cluster.local"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, workload)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(
        paths.key(workload),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_public(paths.cert(workload), cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """PEM bytes a workload needs for mTLS."""

    ca: bytes
    cert: bytes
    key: bytes


def load_tls(state_dir: Path, workload: str) -> TlsMaterial:
    """The CA and this workload's certificate and key from the state folder."""
    paths = pki_paths(state_dir)
    return TlsMaterial(
        ca=paths.ca_cert.read_bytes(),
        cert=paths.cert(workload).read_bytes(),
        key=paths.key(workload).read_bytes(),
    )


def spiffe_from_xfcc(header: str) -> str | None:
    """The caller's SPIFFE id from Envoy's ``x-forwarded-client-cert``.

    The header may list several hops separated by commas; the last element is the hop that reached
    this sidecar, so its ``URI=`` is the immediate caller.
    """
    last = header.rsplit(",", maxsplit=1)[-1]
    for part in last.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "uri":
            return value.strip().strip('"') or None
    return None
