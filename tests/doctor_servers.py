"""Network faults in user space for the doctor's accuracy tests (this kernel has no netem):
a TCP relay that delays every byte by a known one-way time, an HTTP server whose downloads
and uploads run at a capped rate, and a server that accepts connections and never answers.
They run in a process of their own (`ServerProcess`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHUNK = 16 * 1024


class ServerProcess:
    """The servers of `spec` in a child process, so that their work never holds the GIL the
    doctor needs (a thread beside it adds up to the 5 ms switch interval to what it measures).

    Each spec entry is {"rate": bytes/s, "cert": path, "key": path} (TLS with both paths),
    {"relay": index of an earlier entry, "one_way_s": s} or {"silent": true}; `ports` are
    theirs, in spec order."""

    def __init__(self, spec: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.ports: list[int] = []

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, __file__, json.dumps(self.spec)], stdout=subprocess.PIPE, text=True
        )
        self.ports = json.loads(self.process.stdout.readline())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def _serve_spec(spec: list[dict[str, Any]]) -> None:
    ports: list[int] = []
    for entry in spec:
        if "relay" in entry:
            server = DelayRelay(ports[entry["relay"]], entry["one_way_s"])
        elif entry.get("silent"):
            server = SilentServer()
        else:
            context = None
            if entry.get("cert"):
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(entry["cert"], entry["key"])
            server = RateServer(entry["rate"], context)
        ports.append(await server.start())
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


async def _listen(handler, ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


class DelayRelay:
    """Forwards to 127.0.0.1:`target`, holding each chunk `one_way_s` in each direction: a
    request and its answer cross it in 2 x one_way_s, as over a link with that round trip.
    (The TCP handshake itself is the kernel's, done before accept: it is not delayed.)"""

    def __init__(self, target: int, one_way_s: float) -> None:
        self.target = target
        self.one_way_s = one_way_s
        self.port = 0

    async def start(self) -> int:
        self.server, self.port = await _listen(self._relay)
        return self.port

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    break
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                queue.put_nowait((time.monotonic() + self.one_way_s, data))
        queue.put_nowait((time.monotonic() + self.one_way_s, b""))
        with contextlib.suppress(ConnectionError):
            await sender
        dst.close()


class RateServer:
    """HTTP/1.1, one request per connection. GET /download?bytes=N: N bytes sent at `rate`
    bytes/s; POST /upload (chunked): the body read at `rate`, then 200; anything
    else: 200 "ok" at once."""

    def __init__(self, rate: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self.rate = rate
        self.ssl_context = ssl_context
        self.port = 0

    async def start(self) -> int:
        self.server, self.port = await _listen(self._serve, self.ssl_context)
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
            if method == "GET" and target.startswith("/download"):
                size = int(target.partition("bytes=")[2] or 1_000_000)
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                await self._send_paced(writer, size)
            elif method == "POST" and target.startswith("/upload"):
                await self._read_paced(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def _send_paced(self, writer: asyncio.StreamWriter, size: int) -> None:
        started, done = time.monotonic(), 0
        while done < size:
            n = min(CHUNK, size - done)
            writer.write(b"x" * n)
            done += n
            await writer.drain()
            await asyncio.sleep(max(0.0, started + done / self.rate - time.monotonic()))

    async def _read_paced(self, reader: asyncio.StreamReader) -> None:
        """A chunked body (the doctor's uploads are chunked)."""
        started, done = None, 0
        while size := int((await reader.readline()).strip() or b"0", 16):
            await reader.readexactly(size + 2)
            started = started or time.monotonic()
            done += size
            await asyncio.sleep(max(0.0, started + done / self.rate - time.monotonic()))
        await reader.readline()


class SilentServer:
    """Accepts connections and reads, never answers: a provider that hangs."""

    async def start(self) -> int:
        self.server, self.port = await _listen(self._hold)
        return self.port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()


def self_signed(directory: Path) -> tuple[Path, Path, ssl.SSLContext]:
    """A certificate and key for 127.0.0.1, and a client context that trusts them."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, ssl.create_default_context(cafile=str(cert_path))


if __name__ == "__main__":
    asyncio.run(_serve_spec(json.loads(sys.argv[1])))
