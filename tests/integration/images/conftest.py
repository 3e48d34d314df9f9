"""Fixtures for volt_image: a real HTTP server on 127.0.0.1 and real tarballs."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import ssl
import subprocess
import tarfile
import threading

import pytest

from ..conftest import prepared_target


@pytest.fixture(params=["proot-5.4.0"])
def target(request, ansible_adhoc, tmp_path):
    """volt_image runs on this machine (the store is shared by both backends)."""
    yield from prepared_target(request, ansible_adhoc, tmp_path)


def rootfs_tarball(*extra: tuple[str, bytes]) -> bytes:
    """A small gzip root filesystem tarball: busybox, os-release, and extra (name, content) files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for directory in ("./", "./bin", "./etc", "./root", "./usr", "./tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        archive.add("/bin/busybox", "./bin/busybox")
        for applet in ("sh", "sleep", "cat", "ls"):
            info = tarfile.TarInfo(f"./bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(info)
        for name, content in (("./etc/os-release", b'PRETTY_NAME="Volt tarball"\n'), *extra):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Served:
    """What the server serves: path -> (body, declared length); and what it was asked."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, int]] = {}
        self.requests: list[str] = []
        self.url = ""

    def add(self, path: str, body: bytes, declared: int | None = None) -> str:
        self.files[path] = (body, len(body) if declared is None else declared)
        return self.url + path


@pytest.fixture
def http_server():
    served = Served()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.requests.append(self.path)
            if self.path not in served.files:
                self.send_error(404)
                return
            body, declared = served.files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


# -- a scriptable registry on loopback, for hostile manifests and redirects ---------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REGISTRY_USER, REGISTRY_PASSWORD, REGISTRY_TOKEN = "volt", "s3cret-Pass", "t0ken-for-volt"


def tar_bytes(files: dict[str, bytes], compress: bool = True) -> bytes:
    """A tar (gzip unless compress is false) holding regular files name -> content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class FakeRegistry:
    """Serves exactly the routes a test gives it (path -> status, headers, body), optionally
    behind basic or bearer auth, and records every request's path and headers."""

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth  # None, "basic" or "bearer"
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.seen: list[tuple[str, dict]] = []
        self.url = self.host = ""

    # -- content ---------------------------------------------------------------------------
    def add(self, path: str, body: bytes, status: int = 200, **headers: str) -> str:
        self.routes[path] = (status, {key.replace("_", "-"): value for key, value in headers.items()}, body)
        return self.url + path

    def redirect(self, path: str, location: str, status: int = 307) -> None:
        self.routes[path] = (status, {"Location": location}, b"")

    def blob(self, repo: str, data: bytes) -> dict:
        """Serve data as a blob of repo; its descriptor (gzip layer media type)."""
        self.add(f"/v2/{repo}/blobs/{digest(data)}", data)
        return {"mediaType": OCI_LAYER_GZIP, "digest": digest(data), "size": len(data)}

    def manifest(self, repo: str, ref: str, document, media_type: str = OCI_MANIFEST) -> str:
        """Serve a manifest (a dict, or raw bytes for broken ones); its digest."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.add(f"/v2/{repo}/manifests/{ref}", body, Content_Type=media_type)
        self.add(f"/v2/{repo}/manifests/{digest(body)}", body, Content_Type=media_type)
        return digest(body)

    def image(self, repo: str, tag: str, layers: list[bytes], **overrides) -> dict:
        """Serve a one-platform image made of the given gzip layers; its manifest."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": dict(self.blob(repo, config), mediaType=OCI_CONFIG),
            "layers": [self.blob(repo, layer) for layer in layers],
        }
        manifest.update(overrides)
        self.manifest(repo, tag, manifest)
        return manifest

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    def headers_seen(self, prefix: str = "") -> list[dict]:
        return [headers for path, headers in self.seen if path.startswith(prefix)]

    # -- serving -----------------------------------------------------------------------------
    def _authorized(self, header: str | None) -> bool:
        if self.auth == "basic":
            pair = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
            return header == f"Basic {pair}"
        return self.auth is None or header == f"Bearer {REGISTRY_TOKEN}"

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict, bytes]:
        self.seen.append((handler.path, dict(handler.headers.items())))
        path = handler.path.split("?", 1)[0]
        if path == "/token":
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": REGISTRY_TOKEN}).encode()
        if path.startswith("/v2/") and not self._authorized(handler.headers.get("Authorization")):
            challenge = (
                'Basic realm="fake"' if self.auth == "basic" else f'Bearer realm="{self.url}/token",service="fake"'
            )
            return 401, {"WWW-Authenticate": challenge}, b'{"errors": []}'
        if path == "/v2/":
            return 200, {}, b"{}"
        return self.routes.get(path, (404, {}, b'{"errors": [{"code": "NOT_FOUND"}]}'))


def _serve(registry: FakeRegistry, context=None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers, body = registry.answer(self)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    registry.host = f"127.0.0.1:{port}"
    registry.url = f"{'https' if context else 'http'}://{registry.host}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="session")
def loopback_tls(tmp_path_factory):
    """(ssl server context, CA file): a self-signed certificate for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context, str(cert)


@pytest.fixture
def fake_registries(loopback_tls):
    """make(auth=None, tls=False) -> a FakeRegistry running on its own 127.0.0.1 port."""
    servers = []

    def make(auth: str | None = None, tls: bool = False) -> FakeRegistry:
        registry = FakeRegistry(auth)
        servers.append(_serve(registry, loopback_tls[0] if tls else None))
        return registry

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def fake_pull_args(registry: FakeRegistry, repo: str, tag: str = "latest", ca: str | None = None, **extra) -> dict:
    args = {"reference": registry.ref(repo, tag), "validate_certs": ca is not None}
    if ca:
        args["ca_path"] = ca
    if registry.auth:
        args.update(username=REGISTRY_USER, password=REGISTRY_PASSWORD)
    args.update(extra)
    return args
