"""distsk on a Dask cluster that requires TLS: `dask scheduler` and `dask worker` processes
on 127.0.0.1 started with temporary certificates. A client with credentials gets sklearn's
results; one without is refused at once, by an error that says how to pass them."""

from __future__ import annotations

import datetime
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dask
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import distsk._cluster.client
from distsk import ClusterUnavailableError, DistributedEstimator, DistributedSearchCV

from ._search_helpers import assert_same_search
from .conftest import CONNECT_TIMEOUT, CLICluster

X, y = make_classification(n_samples=300, n_features=5, random_state=0)
GRID = {"C": [0.01, 0.1, 1.0, 10.0]}

#: A refusal must come from the handshake, long before distsk's connection timeout.
FAST = distsk._cluster.client.CONNECT_TIMEOUT / 2


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: a CA, a certificate for the cluster's processes and one for a client."""

    ca: Path
    cluster_cert: Path
    cluster_key: Path
    client_cert: Path
    client_key: Path

    def cli_args(self) -> list[str]:
        return ["--tls-ca-file", str(self.ca), "--tls-cert", str(self.cluster_cert),
                "--tls-key", str(self.cluster_key)]

    def security(self):
        from distributed.security import Security

        return Security(tls_ca_file=str(self.ca), tls_client_cert=str(self.client_cert),
                        tls_client_key=str(self.client_key), require_encryption=True)

    def dask_config(self) -> dict:
        return {"distributed.comm.tls.ca-file": str(self.ca),
                "distributed.comm.tls.client.cert": str(self.client_cert),
                "distributed.comm.tls.client.key": str(self.client_key)}


NO_TLS_CONFIG = {"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None,
                 "distributed.comm.tls.client.key": None, "distributed.client.security-loader": None}


def make_tls_files(directory: Path, ca_name: str) -> TLSFiles:
    """A self-signed CA, and certificates it signs for the cluster (127.0.0.1, localhost;
    server and client use, as workers are both) and for a client."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(*(directory / f for f in (
        "ca.pem", "cluster.pem", "cluster-key.pem", "client.pem", "client-key.pem")))
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("TLS test credentials need the `cryptography` package or the openssl CLI")
        _sign_with_openssl(directory, files, ca_name)
    else:
        _sign_with_cryptography(files, ca_name)
    return files


def _sign_with_cryptography(files: TLSFiles, ca_name: str) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write_key(key, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    def build(subject, issuer, key, issuer_key, *extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False))
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def name(cn: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def usage(**flags):
        names = ("digital_signature", "content_commitment", "key_encipherment",
                 "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                 "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: flags.get(n, False) for n in names})

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build(name(ca_name), name(ca_name), ca_key, ca_key,
               (x509.BasicConstraints(ca=True, path_length=None), True),
               (usage(key_cert_sign=True, crl_sign=True), True))
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaves = [
        (files.cluster_cert, files.cluster_key, "127.0.0.1",
         [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        (files.client_cert, files.client_key, "distsk test client",
         [ExtendedKeyUsageOID.CLIENT_AUTH]),
    ]
    for cert_path, key_path, cn, purposes in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build(name(cn), name(ca_name), key, ca_key,
                     (x509.BasicConstraints(ca=False, path_length=None), True),
                     (usage(digital_signature=True), True),
                     (x509.ExtendedKeyUsage(purposes), False),
                     (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                   x509.DNSName("localhost")]), False))
        write_key(key, key_path)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _sign_with_openssl(directory: Path, files: TLSFiles, ca_name: str) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key = directory / "ca-key.pem"
    openssl("req", "-x509", *ec_key, "-keyout", str(ca_key), "-out", str(files.ca),
            "-days", "1", "-subj", f"/CN={ca_name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = [(files.cluster_cert, files.cluster_key, "127.0.0.1", "serverAuth,clientAuth"),
              (files.client_cert, files.client_key, "distsk test client", "clientAuth")]
    for cert_path, key_path, cn, purposes in leaves:
        request, extensions = cert_path.with_suffix(".csr"), cert_path.with_suffix(".ext")
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={purposes}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("req", "-new", *ec_key, "-keyout", str(key_path), "-out", str(request),
                "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", str(request), "-CA", str(files.ca), "-CAkey", str(ca_key),
                "-set_serial", str(secrets.randbits(63)), "-days", "1", "-out", str(cert_path),
                "-extfile", str(extensions))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls") / "credentials", "distsk test CA")


@pytest.fixture(scope="module")
def tls_cluster(tls_files, tmp_path_factory):
    """A scheduler and 2 workers on 127.0.0.1 that speak TLS only."""
    cluster = CLICluster(tmp_path_factory.mktemp("tls-cluster"), extra_args=tls_files.cli_args(),
                         security=tls_files.security())
    try:
        yield cluster.wait_for_workers(2)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def tls_client(tls_cluster, tls_files):
    from distributed import Client

    with Client(tls_cluster.address, security=tls_files.security(), set_as_default=False,
                timeout=CONNECT_TIMEOUT) as client:
        yield client


@pytest.fixture
def fresh_connections(monkeypatch):
    """distsk's cache of clients made from addresses, empty for one test and closed after:
    a client cached by one test must not answer for an address in another."""
    cache: dict = {}
    monkeypatch.setattr(distsk._cluster.client, "_by_address", cache)
    yield cache
    for client in cache.values():
        client.close(timeout=CONNECT_TIMEOUT)


def _scheduler_keys(client) -> set[str]:
    def keys(dask_scheduler):
        return {str(t[0]) for t in dask_scheduler.transition_log}

    return client.run_on_scheduler(keys)


def _search(client):
    return DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend="dask", client=client)


@pytest.mark.timeout(180)
def test_search_and_fit_on_a_tls_cluster_match_sklearn(tls_client, tls_cluster):
    workers = tls_client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w.startswith("tls://127.0.0.1:") for w in workers)
    before = _scheduler_keys(tls_client)

    search = _search(tls_client).fit(X, y)
    assert_same_search(search, GridSearchCV(LogisticRegression(), GRID, cv=3).fit(X, y))
    assert search.plan_.executor == "dask"
    assert search.plan_.compute.client_address == tls_cluster.address

    est = DistributedEstimator(LogisticRegression(), backend="dask", client=tls_client).fit(X, y)
    ref = LogisticRegression().fit(X, y)
    assert est.plan_.executor == "dask"
    assert est.plan_.compute.client_address == tls_cluster.address
    assert_array_equal(est.predict(X), ref.predict(X))
    assert_allclose(est.predict_proba(X), ref.predict_proba(X), rtol=1e-12)

    # The work was tasks of the TLS scheduler, not a local fallback.
    assert _scheduler_keys(tls_client) - before


@pytest.mark.timeout(120)
def test_tls_address_without_credentials_is_refused_at_once_saying_how_to_pass_them(
        tls_cluster, fresh_connections):
    start = time.perf_counter()
    with dask.config.set(NO_TLS_CONFIG), pytest.raises(ClusterUnavailableError) as info:
        _search(tls_cluster.address).fit(X, y)
    assert time.perf_counter() - start < FAST
    message = str(info.value)
    assert tls_cluster.address in message and "requires TLS" in message
    assert "security=distributed.security.Security(tls_ca_file=" in message
    assert "distributed.comm.tls.client.cert" in message
    assert not fresh_connections


@pytest.mark.timeout(120)
def test_plain_tcp_to_a_tls_scheduler_is_refused_at_once_naming_tls(tls_cluster,
                                                                    fresh_connections):
    tcp_address = tls_cluster.address.replace("tls://", "tcp://")
    start = time.perf_counter()
    with dask.config.set(NO_TLS_CONFIG), pytest.raises(ClusterUnavailableError) as info:
        DistributedEstimator(LogisticRegression(), backend="dask", client=tcp_address).fit(X, y)
    assert time.perf_counter() - start < FAST
    message = str(info.value)
    assert tcp_address in message and "requires TLS" in message
    assert "tls://" in message and "security=distributed.security.Security(" in message
    assert not fresh_connections


@pytest.mark.timeout(120)
def test_certificates_of_another_ca_are_refused_at_once(tls_cluster, tmp_path,
                                                         fresh_connections):
    stranger = make_tls_files(tmp_path / "stranger", "another CA")
    start = time.perf_counter()
    with dask.config.set(stranger.dask_config()), pytest.raises(ClusterUnavailableError) as info:
        _search(tls_cluster.address).fit(X, y)
    assert time.perf_counter() - start < FAST
    assert "do not accept each other's certificates" in str(info.value)
    assert not fresh_connections


@pytest.mark.timeout(180)
def test_tls_address_string_uses_credentials_from_dask_config(tls_cluster, tls_files,
                                                              tls_client, fresh_connections):
    before = _scheduler_keys(tls_client)
    with dask.config.set(tls_files.dask_config()):
        search = _search(tls_cluster.address).fit(X, y)
    assert_same_search(search, GridSearchCV(LogisticRegression(), GRID, cv=3).fit(X, y))
    assert search.plan_.compute.client_address == tls_cluster.address
    assert list(fresh_connections) == [tls_cluster.address]
    assert _scheduler_keys(tls_client) - before
