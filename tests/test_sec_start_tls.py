"""HTTPS served by the gateway itself (`gateway.tls`), and the warning when it listens beyond
loopback in clear text: real processes, a certificate made here, the official SDKs as clients."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_sec_start import Running, cli_env, run_cli, write_config


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls_files(tmp_path) -> dict[str, Path]:
    """A test CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("xvckit test CA", ca_key, "xvckit test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("localhost", key, "xvckit test CA", ca_key, ca=False)
    files = {"ca": tmp_path / "ca.pem", "cert_file": tmp_path / "cert.pem", "key_file": tmp_path / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert_file"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files["key_file"].write_bytes(pem)
    return files


def tls_config(tls_files: dict[str, Path]) -> dict:
    return {"gateway": {"tls": {name: str(tls_files[name]) for name in ("cert_file", "key_file")}}}


def test_up_serves_https_that_the_sdks_verify_against_the_ca(tmp_path, tls_files):
    config = write_config(tmp_path, tls_config(tls_files))
    data = str(tmp_path / "data")
    args = ("up", "--port", "0", "--data-dir", data, "--config", str(config))
    with Running(tmp_path, *args, env=cli_env(tmp_path)) as up:
        exports = up.exports()
        port = int(exports["ANTHROPIC_BASE_URL"].rsplit(":", 1)[1])
        assert exports["OPENAI_BASE_URL"] == f"https://127.0.0.1:{port}/v1"
        assert exports["ANTHROPIC_BASE_URL"] == f"https://127.0.0.1:{port}"
        trusted = ssl.create_default_context(cafile=tls_files["ca"])
        client = openai.OpenAI(
            base_url=exports["OPENAI_BASE_URL"],
            api_key=exports["OPENAI_API_KEY"],
            max_retries=0,
            http_client=httpx.Client(verify=trusted),
        )
        chunks = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={"x-sim-latency-ms": "0", "x-sim-output-tokens": "300"},
        )
        assert sum(len(c.choices[0].delta.content or "") for c in chunks if c.choices) > 300
        message = anthropic.Anthropic(
            base_url=exports["ANTHROPIC_BASE_URL"],
            api_key=exports["ANTHROPIC_API_KEY"],
            max_retries=0,
            http_client=anthropic.DefaultHttpxClient(verify=trusted),
        ).messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].text
        # Without the CA the certificate is refused; in clear text nothing is served.
        untrusting = openai.OpenAI(base_url=exports["OPENAI_BASE_URL"], api_key="xvc-x", max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            untrusting.models.list()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert not plain.recv(4096).startswith(b"HTTP/")
        # TLS 1.2 is the oldest offered and still accepted.
        legacy = ssl.create_default_context(cafile=tls_files["ca"])
        legacy.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            legacy.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.2"
    assert "Traceback" not in up.stderr


def test_a_certificate_that_cannot_be_loaded_is_one_line_at_start(tmp_path, tls_files):
    tls_files["key_file"] = tmp_path / "missing.pem"
    write_config(tmp_path, tls_config(tls_files))
    result = run_cli(
        tmp_path, "gateway", "serve", "--config", "xvckit.yaml", "--port", "0", env=cli_env(tmp_path)
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("xvckit: gateway.tls: cannot load ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("tls", [False, True])
def test_clear_text_beyond_loopback_is_warned_at_start(tmp_path, tls_files, tls):
    write_config(tmp_path, tls_config(tls_files) if tls else {})
    args = ("gateway", "serve", "--config", "xvckit.yaml", "--port", "0")
    env = cli_env(tmp_path, XVCKIT_MASTER_KEY="xvc-test-master-key-0123456789abcdef")
    with Running(tmp_path, *args, "--host", "127.0.0.1", env=env) as loopback:
        loopback.read_until("# xvckit gateway on http")
    with Running(tmp_path, *args, "--host", "0.0.0.0", env=env) as anywhere:
        (line,) = anywhere.read_until("# xvckit gateway on http")
    assert line.startswith(
        "# xvckit gateway on https://0.0.0.0:" if tls else "# xvckit gateway on http://0.0.0.0:"
    )
    assert "without TLS" not in loopback.stderr
    warned = "listening on 0.0.0.0 without TLS: keys and prompts cross the network in clear text"
    assert (warned in anywhere.stderr) is not tls
