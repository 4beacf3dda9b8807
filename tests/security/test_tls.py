"""TLS when certificates are configured: a CA made at test time (cryptography), `tradebus up` with the
embedded server verifying client certificates, every service connected over TLS, and clients
without a valid certificate refused."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import REFUSED
from .stack import SERVICES, Stack, deployment_file


def _write(folder: Path, name: str, key, cert: x509.Certificate) -> None:
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(subject: str, key, issuer: x509.Name, issuer_key, ca: bool, san: list | None = None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca(folder: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _certificate(name, key, subject, key, ca=True)
    _write(folder, name, key, cert)
    return key, cert


def make_cert(folder: Path, ca, name: str, san: list) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    _write(folder, name, key, _certificate(name, key, ca_cert.subject, ca_key, ca=False, san=san))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1, a client certificate; and a rogue CA's client."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "ca")
    make_cert(folder, ca, "server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    make_cert(folder, ca, "client", [x509.DNSName("tradebus-client")])
    make_cert(folder, make_ca(folder, "rogue"), "intruder", [x509.DNSName("intruder")])
    return folder


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, pki):
    folder = tmp_path_factory.mktemp("tls-stack")
    config = deployment_file(
        folder,
        nats={"tls_ca_file": str(pki / "ca.pem"), "tls_cert_file": str(pki / "client.pem"),
              "tls_key_file": str(pki / "client.key")},
        embedded={"tls_cert_file": str(pki / "server.pem"), "tls_key_file": str(pki / "server.key"),
                  "tls_ca_file": str(pki / "ca.pem")})
    running = Stack(folder, config)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def context(pki: Path, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
    return ctx


@pytest_asyncio.fixture(loop_scope="session")
async def operator(tls_stack, pki):
    nc = await tls_stack.connect("operator", tls=context(pki, "client"))
    yield nc
    await nc.close()


async def test_every_service_connects_over_tls(tls_stack, operator):
    # the server requires TLS with a verified client certificate: a service answering is one connected so
    assert operator.connected_url.scheme in ("nats", "tls") and operator._transport is not None
    assert operator._server_info.get("tls_required") and operator._server_info.get("tls_verify")
    assert set(SERVICES) <= await tls_stack.wait_services(operator)
    logs = tls_stack.logs()
    assert "TLS" in logs["nats-server.log"] or "tls" in logs["nats-server.log"]


@pytest.mark.parametrize("cert", [None, "intruder"])
async def test_a_client_without_a_valid_certificate_is_refused(tls_stack, operator, pki, cert):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
    with pytest.raises(REFUSED + (ssl.SSLError,)):
        await tls_stack.connect("operator", tls=ctx)


async def test_a_plain_client_is_refused(tls_stack, operator):
    with pytest.raises(REFUSED + (ssl.SSLError,)):
        await tls_stack.connect("operator")
