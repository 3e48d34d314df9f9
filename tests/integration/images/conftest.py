"""Fixtures for volt_image: a real HTTP server on 127.0.0.1 and real tarballs."""

from __future__ import annotations

import hashlib
import http.server
import io
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
