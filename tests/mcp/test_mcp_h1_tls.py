"""The MCP relay's client over TLS: verified against the system's CAs or the one an operator
names with ``SSL_CERT_FILE``, refused (never silently unverified) when the certificate is not
trusted or names another host, with an error naming the server and why; SNI is sent.

A real TLS server (asyncio with an ssl context) and a private CA made with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.mcp.config import McpServer
from gateway.mcp.upstream import UpstreamFailure, UpstreamPool
from tests.mcp.test_mcp_h1 import _json, _read

Key = ec.EllipticCurvePrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(
    subject: str, key: Key, issuer: str, issuer_key: Key, ca: bool, names: list[str]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA; a server certificate for localhost/127.0.0.1 and one for another host."""
    out = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Wardgate test CA", ca_key, "Wardgate test CA", ca_key, True, [])
    (out / "ca.pem").write_bytes(_pem(ca))
    for label, names in (("good", ["localhost", "127.0.0.1"]), ("other", ["other.example"])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(names[0], key, "Wardgate test CA", ca_key, False, names)
        (out / f"{label}.pem").write_bytes(_pem(cert) + _pem(ca))
        (out / f"{label}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return {p.stem + p.suffix: p for p in out.iterdir()}


async def _tls_call(
    pki: dict[str, Path], label: str, host: str, calls: int = 1
) -> tuple[bytes, list[str | None]]:
    """``calls`` tools/call-like POSTs through ``UpstreamPool`` to a TLS server with
    ``label``'s certificate; the last answer's body and the SNI names the server saw (one per
    TLS connection)."""
    seen: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki[f"{label}.pem"], pki[f"{label}.key"])
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,misc]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(_json(b'{"jsonrpc":"2.0","id":1,"result":{}}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(4)
    upstream = McpServer(
        name="billing", url=f"https://{host}:{port}/mcp", timeout_s=5.0, teams=None, auth=None
    )
    try:
        for _ in range(calls):
            body = await _read(await pool.open(upstream, "POST", {}, None, b"{}"))
            await asyncio.sleep(0.01)
        return body, seen
    finally:
        await pool.close()
        server.close()


def _run(coro: Any, loop: str) -> Any:
    return (uvloop.run if loop == "uvloop" else asyncio.run)(coro)


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


@LOOPS
def test_a_private_ca_named_by_ssl_cert_file_is_trusted(
    pki: dict[str, Path], loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca.pem"]))
    body, sni = _run(_tls_call(pki, "good", "localhost", calls=3), loop)
    assert body == b'{"jsonrpc":"2.0","id":1,"result":{}}'
    assert sni == ["localhost"]  # SNI sent with the server's host name; one TLS connection kept


@LOOPS
def test_an_untrusted_certificate_is_refused(
    pki: dict[str, Path], loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(UpstreamFailure) as failure:
        _run(_tls_call(pki, "good", "localhost"), loop)
    assert failure.value.kind == "unreachable"
    assert "TLS" in failure.value.detail and "not trusted" in failure.value.detail, failure.value.detail


@LOOPS
def test_a_certificate_for_another_host_is_refused(
    pki: dict[str, Path], loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca.pem"]))
    with pytest.raises(UpstreamFailure) as failure:
        _run(_tls_call(pki, "other", "localhost"), loop)
    assert failure.value.kind == "unreachable"
    assert "TLS" in failure.value.detail and "localhost" in failure.value.detail, failure.value.detail
