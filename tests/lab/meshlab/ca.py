"""The lab's certificate authority: one root CA per lab, one intermediate CA per cluster.

What Istio's "plug in CA certificates" procedure (tools/certs Makefile) produces, made with
the `cryptography` package (a dependency of ansible-core): a self-signed root, and per
cluster an intermediate CA signed by it. The files of a cluster are the keys of its
`istio-system/cacerts` Secret:

  ca-cert.pem     the cluster's intermediate CA certificate
  ca-key.pem      its private key
  root-cert.pem   the root certificate (the trust anchor every cluster must share)
  cert-chain.pem  intermediate + root

Everything is generated once into `STATE/ca/` and reused by every later `up` (a new CA on
every `up` would invalidate what istiod issued). A cluster with `shared-root` in its
LAB_WITHOUT gets an intermediate from a root of its own (`STATE/ca/<cluster>/own-root-*`),
so that "root certificates differ" can be tested.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CACERTS_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
TRUST_DOMAIN = "cluster.local"
_VALID = datetime.timedelta(days=3650)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def make_root(common_name: str = "Root CA") -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) of a self-signed root CA."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _pem_cert(cert), _pem_key(key)


def make_intermediate(cluster: str, root_cert_pem: bytes, root_key_pem: bytes) -> dict[str, bytes]:
    """The four cacerts files of `cluster`, its intermediate signed by the given root."""
    root_cert = x509.load_pem_x509_certificate(root_cert_pem)
    root_key = serialization.load_pem_private_key(root_key_pem, password=None)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate CA"),
                      x509.NameAttribute(NameOID.LOCALITY_NAME, cluster)])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(root_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("istiod.istio-system.svc")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(root_key, hashes.SHA256()))  # type: ignore[arg-type]
    ca_cert = _pem_cert(cert)
    return {"ca-cert.pem": ca_cert, "ca-key.pem": _pem_key(key), "root-cert.pem": root_cert_pem,
            "cert-chain.pem": ca_cert + root_cert_pem}


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if secret:
        path.chmod(0o600)


def _root(directory: Path, prefix: str, common_name: str) -> tuple[bytes, bytes]:
    cert_path, key_path = directory / f"{prefix}cert.pem", directory / f"{prefix}key.pem"
    if not (cert_path.exists() and key_path.exists()):
        cert, key = make_root(common_name)
        _write(key_path, key, secret=True)
        _write(cert_path, cert)
    return cert_path.read_bytes(), key_path.read_bytes()


def lab_root(state: Path) -> bytes:
    """The lab's shared root certificate (generated on first use)."""
    return _root(state / "ca", "root-", "Root CA")[0]


def cluster_cacerts(state: Path, cluster: str, shared_root: bool = True) -> dict[str, bytes]:
    """The cacerts files of `cluster`, generated once (again if its root changed)."""
    if shared_root:
        root_cert, root_key = _root(state / "ca", "root-", "Root CA")
    else:
        root_cert, root_key = _root(state / "ca" / cluster, "own-root-", f"Root CA of {cluster} alone")
    cdir = state / "ca" / cluster
    files = {k: cdir / k for k in CACERTS_KEYS}
    if not all(p.exists() for p in files.values()) or files["root-cert.pem"].read_bytes() != root_cert:
        for k, data in make_intermediate(cluster, root_cert, root_key).items():
            _write(files[k], data, secret=(k == "ca-key.pem"))
    return {k: p.read_bytes() for k, p in files.items()}
