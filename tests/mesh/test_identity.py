"""The dev CA and workload certificates, and reading a caller's identity."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from mesh import ensure_dev_pki, spiffe_id
from mesh._identity import spiffe_from_xfcc, workload_from_spiffe


def test_each_workload_gets_a_certificate_with_its_spiffe_id(tmp_path: Path) -> None:
    paths = ensure_dev_pki(tmp_path, ["auth", "gateway"])
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    for workload in ("auth", "gateway"):
        cert = x509.load_pem_x509_certificate(paths.cert(workload).read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id(workload)]
        assert workload in san.get_values_for_type(x509.DNSName)
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        assert paths.key(workload).stat().st_mode & 0o077 == 0


def test_the_ca_is_made_once_and_certificates_are_kept(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path, ["user"])
    ca_before = first.ca_cert.read_bytes()
    cert_before = first.cert("user").read_bytes()
    second = ensure_dev_pki(tmp_path, ["user", "board"])
    assert second.ca_cert.read_bytes() == ca_before
    assert second.cert("user").read_bytes() == cert_before
    assert second.cert("board").exists()


def test_spiffe_ids_outside_our_namespace_name_no_workload() -> None:
    assert workload_from_spiffe("spiffe://cluster.local/ns/wealist/sa/board") == "board"
    assert workload_from_spiffe("spiffe://cluster.local/ns/other/sa/board") is None
    assert workload_from_spiffe("spiffe://evil.example/ns/wealist/sa/board") is None
    assert workload_from_spiffe("spiffe://cluster.local/ns/wealist/sa/board/extra") is None


def test_xfcc_takes_the_last_hop() -> None:
    header = (
        'By=spiffe://cluster.local/ns/wealist/sa/user;Hash=abc;Subject="";'
        "URI=spiffe://cluster.local/ns/wealist/sa/auth,"
        "By=spiffe://cluster.local/ns/wealist/sa/user;URI=spiffe://cluster.local/ns/wealist/sa/gateway"
    )
    assert spiffe_from_xfcc(header) == "spiffe://cluster.local/ns/wealist/sa/gateway"
    assert spiffe_from_xfcc("By=x;Hash=y") is None
