"""A real HTTPS ledger on loopback for tests and benchmarks: own CA, DCL-shaped JSON, images.

The server is the standard library's threaded HTTP server behind TLS with a certificate from
a CA made here (trusted by the client through ``dcl.ca_bundle``). Routes can be made to fail
on purpose: HTTP status, delay (a slow server), a body cut off after N bytes (a truncated
download), Range ignored.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from matter_ota.ota_image import DEFAULT_DIGEST, build_image, encode_header


def build_ota_image(
    vid: int,
    pid: int,
    version: int,
    payload: bytes,
    *,
    min_applicable: int | None = None,
    max_applicable: int | None = None,
) -> bytes:
    """A Matter OTA image (11.21.2) in memory, built by the daemon's image module."""
    return build_image(
        payload,
        vendor_id=vid,
        product_id=pid,
        software_version=version,
        software_version_string=f"v{version}",
        min_applicable_version=min_applicable,
        max_applicable_version=max_applicable,
    )


def write_ota_image(path: Path, vid: int, pid: int, version: int, payload_size: int) -> bytes:
    """Write a large image without holding it in memory; returns the file's sha-256."""
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    for i in range(0, payload_size, len(block)):
        digest.update(block[: min(len(block), payload_size - i)])
    head, _ = encode_header(
        vendor_id=vid,
        product_id=pid,
        software_version=version,
        software_version_string=f"v{version}",
        payload_size=payload_size,
        digest=digest.digest(),
        algorithm=DEFAULT_DIGEST,
        min_applicable_version=None,
        max_applicable_version=None,
        release_notes_url=None,
    )
    whole = hashlib.sha256(head)
    with open(path, "wb") as f:
        f.write(head)
        for i in range(0, payload_size, len(block)):
            part = block[: min(len(block), payload_size - i)]
            f.write(part)
            whole.update(part)
    return whole.digest()


def model_version(
    vid: int,
    pid: int,
    version: int,
    *,
    url: str = "",
    image: bytes | None = None,
    size: int | None = None,
    checksum: bytes | None = None,
    valid: bool = True,
    min_applicable: int = 0,
    max_applicable: int = 0xFFFF_FFFF,
) -> dict[str, Any]:
    """A ``modelVersion`` object as the DCL REST API renders it."""
    if image is not None:
        size = len(image) if size is None else size
        checksum = hashlib.sha256(image).digest() if checksum is None else checksum
    return {
        "vid": vid,
        "pid": pid,
        "softwareVersion": version,
        "softwareVersionString": f"v{version}",
        "cdVersionNumber": 1,
        "firmwareInformation": "",
        "softwareVersionValid": valid,
        "otaUrl": url,
        "otaFileSize": str(size or 0),
        "otaChecksum": base64.b64encode(checksum or b"").decode(),
        "otaChecksumType": 1 if url else 0,
        "minApplicableSoftwareVersion": min_applicable,
        "maxApplicableSoftwareVersion": max_applicable,
        "releaseNotesUrl": "",
        "creator": "cosmos1qpz3ghnqj6my7gzegkftzav9hpxymkx6zdk73v",
        "schemaVersion": 0,
    }


@dataclass
class Route:
    """What the server answers for one path."""

    body: bytes | None = None
    file: Path | None = None
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0
    truncate_after: int | None = None  # send this many body bytes, then drop the connection
    truncations: int = 0  # ... this many times
    ignore_range: bool = False


@dataclass
class Credentials:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def make_credentials(directory: Path) -> Credentials:
    """A throw-away CA and a server certificate for localhost / 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "matter-ota test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    creds = Credentials(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    creds.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    creds.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    creds.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return creds


@dataclass
class _State:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        with state.lock:
            state.requests.append((path, rng))
            route = state.routes.get(path)
            truncate = None
            if route is not None and route.truncate_after is not None and route.truncations > 0:
                route.truncations -= 1
                truncate = route.truncate_after
        if route is None:
            self._send(404, b'{"code":5,"message":"rpc error: code = NotFound","details":[]}')
            return
        if route.delay and state.stopping.wait(route.delay):
            return
        if route.status != 200:
            self._send(route.status, route.body or b'{"code":13,"message":"internal"}')
            return
        size = route.file.stat().st_size if route.file is not None else len(route.body or b"")
        start = 0
        if rng and not route.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        sent = 0
        for chunk in self._chunks(route, start):
            if truncate is not None and sent + len(chunk) > truncate:
                self.wfile.write(chunk[: truncate - sent])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # drop it mid-body: a truncated download
                return
            self.wfile.write(chunk)
            sent += len(chunk)

    def _chunks(self, route: Route, start: int) -> Iterator[bytes]:
        if route.file is None:
            yield (route.body or b"")[start:]
            return
        with open(route.file, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 18):
                yield chunk

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


def leftover_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before`` that are still alive after a short grace."""
    deadline = time.monotonic() + 2.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            return [t.name for t in extra]
        time.sleep(0.02)


class FakeLedger:
    """A DCL-shaped HTTPS server on 127.0.0.1 serving JSON answers and images."""

    def __init__(self, directory: Path) -> None:
        self.creds = make_credentials(directory)
        self.state = _State()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeLedger:
        httpd = _Server(("127.0.0.1", port), _Handler)
        httpd.state = self.state
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.creds.cert_pem, self.creds.key_pem)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self.state.stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-dcl", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; the port may be reused by :meth:`start` (a restarted ledger)."""
        if self._httpd is None:
            return
        self.state.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._httpd = None

    # -- content ------------------------------------------------------------------------------

    def route(self, path: str, route: Route) -> None:
        with self.state.lock:
            self.state.routes[path] = route

    def json(self, path: str, doc: Any) -> None:
        self.route(path, Route(body=json.dumps(doc).encode()))

    def publish(self, vid: int, pid: int, versions: list[dict[str, Any]]) -> None:
        """The ledger's answers for a product: the listing and each version."""
        self.json(
            f"/dcl/model/versions/{vid}/{pid}",
            {
                "modelVersions": {
                    "vid": vid,
                    "pid": pid,
                    "softwareVersions": [v["softwareVersion"] for v in versions],
                    "schemaVersion": 0,
                }
            },
        )
        for v in versions:
            self.json(
                f"/dcl/model/versions/{vid}/{pid}/{v['softwareVersion']}", {"modelVersion": v}
            )

    def image_url(self, name: str) -> str:
        return f"{self.base_url}/images/{name}"

    def serve_image(self, name: str, data: bytes | Path, **options: Any) -> str:
        if isinstance(data, Path):
            self.route(
                f"/images/{name}",
                Route(file=data, content_type="application/octet-stream", **options),
            )
        else:
            self.route(
                f"/images/{name}",
                Route(body=data, content_type="application/octet-stream", **options),
            )
        return self.image_url(name)

    def requests_for(self, path: str) -> list[str | None]:
        with self.state.lock:
            return [rng for p, rng in self.state.requests if p == path]
