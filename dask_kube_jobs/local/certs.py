"""A private certificate authority for the local control plane.

Real kubeconfigs speak HTTPS and pin the cluster's CA; so do ours, so that clients exercise the
same TLS paths they use against a real cluster. The CA signs the API server's certificate and
the kubelet's serving certificate, all for loopback names only, and one client certificate:
the API server's, which it presents to kubelets (kubeadm's ``apiserver-kubelet-client``); a
kubelet trusts the cluster's CA for its callers, as ``--client-ca-file`` makes it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(directory: Path) -> CertPair:
    """The CA in ``directory``, created on first use (ten years, like kubeadm's)."""
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-kube-jobs-local-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(pair.key, _pem_key(key))
    _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def issue_serving_cert(ca: CertPair, directory: Path, name: str,
                       ips: tuple[str, ...] = ("127.0.0.1", "::1"),
                       dns: tuple[str, ...] = ("localhost", "kubernetes", "kubernetes.default",
                                               "kubernetes.default.svc")) -> CertPair:
    """A server certificate for ``name`` signed by the CA, valid for loopback addresses."""
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return _issue(ca, directory, name, [x509.NameAttribute(NameOID.COMMON_NAME, name)],
                  ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(sans))


def issue_client_cert(ca: CertPair, directory: Path, name: str,
                      organizations: tuple[str, ...] = ()) -> CertPair:
    """A client certificate (user ``name`` in groups ``organizations``) signed by the CA."""
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, name))
    return _issue(ca, directory, name, subject, ExtendedKeyUsageOID.CLIENT_AUTH)


def _issue(ca: CertPair, directory: Path, name: str, subject: list[x509.NameAttribute],
           usage: x509.ObjectIdentifier, sans: x509.SubjectAlternativeName | None = None,
           ) -> CertPair:
    """A leaf certificate for ``subject`` with one extended key usage, signed by the CA and
    saved as ``name``.crt/.key in ``directory``."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
    )
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    cert = (
        builder
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _save(directory, name, key, cert)


def _save(directory: Path, name: str, key: ec.EllipticCurvePrivateKey,
          cert: x509.Certificate) -> CertPair:
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    _write(pair.key, _pem_key(key))
    _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair
