"""Build, push, pull and unpack OCI test images (stdlib + skopeo/umoci).

Used by the pull-client tests together with ``tests/setup/registry/registry``
(which starts the loopback registries and prints the ``VOLT_REGISTRY_*``
variables this module reads).

Typical use::

    regs = registries()                      # from VOLT_REGISTRY_* (os.environ)
    pushed = push_all(regs["https"])         # {"multilayer:latest": Pushed, ...}
    p = pushed["multilayer:latest"]
    rootfs = umoci_unpack(p.registry, p.repo, p.tag, tmp_path / "ref")
    assert tree_listing(my_client_rootfs) == tree_listing(rootfs)

Everything is deterministic: fixed mtimes, uid/gid, empty uname/gname,
gzip header mtime 0, sorted JSON; digests only change when this file's image
definitions change (or zlib's output changes, which it does not between
runs on one machine).

Image catalogue (repo:tag; "key" in the dict ``push_all`` returns):

  multilayer:latest   OCI manifest, 4 gzip layers (see ``multilayer_layers``)
  multilayer:v2s2     the same image converted by skopeo --format v2s2
                      (Docker schema2 manifest/config/layer media types)
  multilayer:zstd     the same image with zstd-compressed layers
  multiarch:latest    OCI image index: linux/amd64, linux/arm64, linux/arm/v7
  multiarch:v2s2      the same as a Docker manifest list (skopeo conversion)
  devices:latest      char/block device nodes and a FIFO
  private/app:latest  only on registries that need credentials (auth, token)
  evil:<case>         hostile images, see ``EVIL_CASES``
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import copy
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import ssl
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------- constants

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST])

#: mtime of layer N's entries is MTIME_BASE + N * 86400 (so tests that do
#: compare mtimes can tell which layer a file came from)
MTIME_BASE = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"

#: files a vulnerable client would create outside its target directory
ESCAPE_NAMES = (
    "volt-evil-dotdot",
    "volt-evil-dotdot2",
    "volt-evil-abs",
    "volt-evil-owned-same-layer",
    "volt-evil-owned-later-layer",
)

# ----------------------------------------------------------------- registries


@dataclasses.dataclass(frozen=True)
class Registry:
    """One of the loopback registries started by tests/setup/registry/registry."""

    kind: str  # "http" | "https" | "auth" | "token"
    host: str  # "127.0.0.1:15000"
    tls: bool
    ca: str | None = None  # PEM bundle for HTTPS
    cert_dir: str | None = None  # dir holding ca.crt (skopeo --*-cert-dir)
    username: str | None = None
    password: str | None = None
    storage: str | None = None  # filesystem driver rootdirectory (local only)
    policy: str | None = None  # skopeo --policy file
    auth: str = "none"  # "none" | "basic" | "bearer"

    @property
    def needs_credentials(self) -> bool:
        return self.auth != "none"

    @property
    def base_url(self) -> str:
        return ("https://" if self.tls else "http://") + self.host

    def ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def skopeo_args(self, side: str) -> list[str]:
        """TLS/credential flags for skopeo, side = "src" or "dest"."""
        args: list[str] = []
        if self.tls:
            args.append(f"--{side}-tls-verify=true")
            if self.cert_dir:
                args.append(f"--{side}-cert-dir={self.cert_dir}")
        else:
            args.append(f"--{side}-tls-verify=false")
        if self.username is not None and self.auth != "none":
            args.append(f"--{side}-creds={self.username}:{self.password}")
        else:
            args.append(f"--{side}-no-creds")
        return args

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (for corrupting it)."""
        if not self.storage:
            raise RuntimeError(f"registry {self.kind}: storage directory unknown")
        algo, hexd = digest.split(":", 1)
        return Path(self.storage) / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data"


def registries(env: Mapping[str, str] | None = None) -> dict[str, Registry]:
    """The registries described by VOLT_REGISTRY_* (``registry env`` output)."""
    env = os.environ if env is None else env
    if "VOLT_REGISTRY_HTTP" not in env:
        raise RuntimeError('VOLT_REGISTRY_HTTP not set: run `eval "$(tests/setup/registry/registry start)"`')
    d = env.get("VOLT_REGISTRY_DIR", "/var/tmp/volt-registry")
    common = dict(
        ca=env.get("VOLT_REGISTRY_CA"),
        cert_dir=env.get("VOLT_REGISTRY_CERT_DIR"),
        policy=os.path.join(d, "policy.json") if os.path.exists(os.path.join(d, "policy.json")) else None,
    )
    creds = dict(username=env.get("VOLT_REGISTRY_USER"), password=env.get("VOLT_REGISTRY_PASSWORD"))
    out = {
        "http": Registry("http", env["VOLT_REGISTRY_HTTP"], False, storage=f"{d}/http/storage", **common),
        "https": Registry("https", env["VOLT_REGISTRY_HTTPS"], True, storage=f"{d}/https/storage", **common),
        "auth": Registry(
            "auth", env["VOLT_REGISTRY_AUTH"], True, storage=f"{d}/auth/storage", auth="basic", **common, **creds
        ),
    }
    if env.get("VOLT_REGISTRY_TOKEN"):
        out["token"] = Registry(
            "token", env["VOLT_REGISTRY_TOKEN"], True, storage=f"{d}/token/storage", auth="bearer", **common, **creds
        )
    return out


# ----------------------------------------------------------------- raw registry HTTP


class RegistryHTTP:
    """Minimal distribution-API client (Basic and Bearer auth), for the few
    things skopeo cannot do: PUT a hand-made (lying) manifest, GET raw bytes."""

    def __init__(self, reg: Registry, *, credentials: bool = True):
        self.reg = reg
        self.credentials = credentials and reg.username is not None
        self.ctx = ssl.create_default_context(cafile=reg.ca) if reg.tls else None
        self._auth_header: dict[str, str] = {}  # scope -> header

    def _open(self, req: urllib.request.Request):
        return urllib.request.urlopen(req, context=self.ctx, timeout=30)

    def _basic(self) -> str:
        raw = f"{self.reg.username}:{self.reg.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token(self, challenge: str, scope: str) -> str:
        params = dict(_parse_challenge(challenge))
        q = {"service": params.get("service", "")}
        q["scope"] = params.get("scope") or scope
        url = params["realm"] + "?" + urllib.parse.urlencode(q)
        req = urllib.request.Request(url)
        if self.credentials:
            req.add_header("Authorization", self._basic())
        with self._open(req) as resp:
            body = json.load(resp)
        return "Bearer " + (body.get("token") or body["access_token"])

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        scope: str = "",
    ) -> tuple[int, dict[str, str], bytes]:
        """-> (status, headers (lower-case names), body). Never raises on HTTP errors."""
        url = self.reg.base_url + path
        for attempt in range(2):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if scope in self._auth_header:
                req.add_header("Authorization", self._auth_header[scope])
            try:
                with self._open(req) as resp:
                    return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
            except urllib.error.HTTPError as e:
                hdrs = {k.lower(): v for k, v in e.headers.items()}
                body = e.read()
                if e.code != 401 or attempt or not self.reg.needs_credentials:
                    return e.code, hdrs, body
                challenge = hdrs.get("www-authenticate", "")
                if challenge.lower().startswith("basic"):
                    if not self.credentials:
                        return e.code, hdrs, body
                    self._auth_header[scope] = self._basic()
                elif challenge.lower().startswith("bearer"):
                    self._auth_header[scope] = self._token(challenge, scope)
                else:
                    return e.code, hdrs, body
        raise AssertionError("unreachable")

    def get_manifest(self, repo: str, ref: str, accept: str = ACCEPT_ALL) -> tuple[str, bytes, str]:
        """-> (media type, raw bytes, Docker-Content-Digest)."""
        code, hdrs, body = self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept}, scope=f"repository:{repo}:pull"
        )
        if code != 200:
            raise RuntimeError(f"GET manifest {repo}:{ref} -> {code} {body[:300]!r}")
        return hdrs.get("content-type", ""), body, hdrs.get("docker-content-digest", "")

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        code, hdrs, body = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            data=raw,
            headers={"Content-Type": media_type},
            scope=f"repository:{repo}:pull,push",
        )
        if code != 201:
            raise RuntimeError(f"PUT manifest {repo}:{ref} -> {code} {body[:300]!r}")
        return hdrs.get("docker-content-digest", "")

    def get_blob(self, repo: str, digest: str) -> bytes:
        code, _hdrs, body = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        if code != 200:
            raise RuntimeError(f"GET blob {repo}@{digest} -> {code}")
        return body


def _parse_challenge(header: str) -> Iterable[tuple[str, str]]:
    rest = header.partition(" ")[2]
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().strip(",").strip()
        if rest[eq + 1 : eq + 2] == '"':
            end = rest.find('"', eq + 2)
            val = rest[eq + 2 : end]
            i = end + 1
        else:
            end = rest.find(",", eq + 1)
            end = len(rest) if end < 0 else end
            val = rest[eq + 1 : end]
            i = end
        yield key.lower(), val
        i = rest.find(",", i)
        if i < 0:
            break
        i += 1


# ----------------------------------------------------------------- tar layers


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tar member. ``name`` is written verbatim (no normalisation)."""

    name: str
    kind: str = "file"  # file dir symlink hardlink char block fifo
    data: bytes = b""
    mode: int | None = None
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0
    mtime: int | None = None  # default: the layer's mtime


def F(name: str, data: bytes | str = b"", mode: int = 0o644, **kw: Any) -> Entry:
    return Entry(name, "file", data.encode() if isinstance(data, str) else data, mode, **kw)


def D(name: str, mode: int = 0o755, **kw: Any) -> Entry:
    return Entry(name, "dir", b"", mode, **kw)


def S(name: str, target: str, **kw: Any) -> Entry:
    return Entry(name, "symlink", b"", 0o777, target, **kw)


def H(name: str, target: str, mode: int = 0o644, **kw: Any) -> Entry:
    return Entry(name, "hardlink", b"", mode, target, **kw)


def WH(path: str) -> Entry:
    """Whiteout (delete ``path`` from lower layers)."""
    head, _sep, base = path.rpartition("/")
    return F((head + "/" if head else "") + ".wh." + base, b"", 0o644)


def OPQ(directory: str) -> Entry:
    """Opaque-directory marker for ``directory``."""
    return F(directory.rstrip("/") + "/.wh..wh..opq", b"", 0o644)


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def make_tar(entries: Iterable[Entry], mtime: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _TAR_TYPES[e.kind]
            ti.mode = e.mode if e.mode is not None else 0o644
            ti.uid, ti.gid = e.uid, e.gid
            ti.uname = ti.gname = ""
            ti.mtime = e.mtime if e.mtime is not None else mtime
            ti.linkname = e.linkname
            ti.devmajor, ti.devminor = e.devmajor, e.devminor
            if e.kind == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                ti.size = 0
                tf.addfile(ti)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclasses.dataclass
class Layer:
    entries: list[Entry]
    tar: bytes
    blob: bytes  # gzip, or zstd when media_type says so
    digest: str
    diff_id: str
    size: int
    media_type: str = MT_OCI_LAYER_GZIP


def make_layer(entries: list[Entry], index: int = 0, compresslevel: int = 9, zstd: bool = False) -> Layer:
    tar = make_tar(entries, MTIME_BASE + index * 86400)
    if zstd:  # the zstd command (Debian package zstd): no Python before 3.14 writes zstd
        blob = subprocess.run(["zstd", "-q", "-c", "-19"], input=tar, capture_output=True, check=True).stdout
        return Layer(entries, tar, blob, _sha(blob), _sha(tar), len(blob), MT_OCI_LAYER_ZSTD)
    blob = gzip.compress(tar, compresslevel=compresslevel, mtime=0)
    return Layer(entries, tar, blob, _sha(blob), _sha(tar), len(blob))


# ----------------------------------------------------------------- OCI layout


class Layout:
    """An OCI image layout directory being written (blobs dedupe by digest)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.refs: list[dict] = []

    def blob(self, data: bytes) -> str:
        digest = _sha(data)
        p = self.path / "blobs/sha256" / digest.split(":", 1)[1]
        if not p.exists():
            p.write_bytes(data)
        return digest

    def image(self, layers: list[Layer], platform: Mapping[str, str], history: list[str] | None = None) -> dict:
        """Write config + layers + manifest; return the manifest descriptor."""
        cfg = {
            "architecture": platform.get("architecture", "amd64"),
            "os": platform.get("os", "linux"),
            "created": CREATED,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [
                {"created": CREATED, "created_by": (history or [])[i] if history and i < len(history) else f"layer {i}"}
                for i in range(len(layers))
            ],
        }
        if platform.get("variant"):
            cfg["variant"] = platform["variant"]
        cfg_raw = _json(cfg)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": self.blob(cfg_raw), "size": len(cfg_raw)},
            "layers": [
                {"mediaType": layer.media_type, "digest": self.blob(layer.blob), "size": layer.size} for layer in layers
            ],
        }
        raw = _json(manifest)
        return {"mediaType": MT_OCI_MANIFEST, "digest": self.blob(raw), "size": len(raw)}

    def index(self, manifests: list[tuple[dict, Mapping[str, str]]]) -> dict:
        idx = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": [dict(desc, platform=dict(plat)) for desc, plat in manifests],
        }
        raw = _json(idx)
        return {"mediaType": MT_OCI_INDEX, "digest": self.blob(raw), "size": len(raw)}

    def tag(self, desc: dict, tag: str) -> None:
        self.refs = [r for r in self.refs if r["annotations"]["org.opencontainers.image.ref.name"] != tag]
        self.refs.append(dict(desc, annotations={"org.opencontainers.image.ref.name": tag}))
        idx = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": self.refs}
        (self.path / "index.json").write_bytes(_json(idx))

    def read_blob(self, digest: str) -> bytes:
        return (self.path / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()


# ----------------------------------------------------------------- image definitions

AMD64 = {"architecture": "amd64", "os": "linux"}
ARM64 = {"architecture": "arm64", "os": "linux"}
ARMV7 = {"architecture": "arm", "os": "linux", "variant": "v7"}


def multilayer_layers() -> list[list[Entry]]:
    """The 4 layers of ``multilayer``. Result after applying all of them:

    bin/ tool(0755) suid(04755) sgid(02755) tool-link->tool
    etc/ config("config v2", 0644) secret(0600) added config.link->config
         abs.link->/etc/config passwd
    data/ hard-a == hard-b (one inode) ünïcödé-файл.txt owned-by-1000 (0640, 1000:1000)
    empty/  tmp/(01777)  ro-dir/(0555, file 0444)  dangling -> does/not/exist
    "with space & #chars"
    to-delete -> etc/config      (file in L1, whited out in L2, symlink in L4)
    deldir/(0750) reborn         (dir tree in L1, whited out in L2, recreated in L4)
    file-to-dir/ inner           (file in L1, directory in L2)
    dir-to-file                  (dir tree in L1, regular file in L2)
    modedir/(0700) keep          (0755 in L1, 0700 in L2)
    opq/ new1 newsub/y           (L3: opaque marker comes AFTER opq/new1)
    opq2/ fresh                  (L3: opaque marker first, no dir entry)
    """
    base = [
        D("bin"),
        F("bin/tool", "#!/bin/sh\necho tool\n", 0o755),
        F("bin/suid", "setuid binary\n", 0o4755),
        F("bin/sgid", "setgid binary\n", 0o2755),
        D("etc"),
        F("etc/config", "config v1\n"),
        F("etc/secret", "top secret\n", 0o600),
        F("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        S("etc/config.link", "config"),
        S("etc/abs.link", "/etc/config"),
        D("data"),
        F("data/hard-a", "hard linked content\n"),
        H("data/hard-b", "data/hard-a"),
        F("data/ünïcödé-файл.txt", "unicode name\n"),
        F("data/owned-by-1000", "owned by 1000:1000\n", 0o640, uid=1000, gid=1000),
        D("empty"),
        D("tmp", 0o1777),
        D("ro-dir", 0o555),
        F("ro-dir/file", "in a read-only dir\n", 0o444),
        S("dangling", "does/not/exist"),
        F("with space & #chars", "odd name\n"),
        F("to-delete", "will be deleted\n"),
        D("deldir"),
        F("deldir/a", "a\n"),
        D("deldir/sub"),
        F("deldir/sub/b", "b\n"),
        F("file-to-dir", "was a file\n"),
        D("dir-to-file"),
        F("dir-to-file/child", "child\n"),
        D("dir-to-file/sub"),
        F("dir-to-file/sub/x", "x\n"),
        D("modedir"),
        F("modedir/keep", "keep\n"),
        D("opq"),
        F("opq/old1", "old1\n"),
        D("opq/oldsub"),
        F("opq/oldsub/x", "x\n"),
        D("opq2"),
        F("opq2/old", "old\n"),
    ]
    changes = [
        WH("to-delete"),
        WH("deldir"),
        D("file-to-dir"),  # replaces the regular file (no whiteout needed)
        F("file-to-dir/inner", "now a directory\n"),
        F("dir-to-file", "now a file\n"),  # replaces the directory tree
        D("modedir", 0o700),
        F("etc/config", "config v2\n"),  # parent not re-listed in this layer
        F("etc/added", "added in layer 2\n"),
        S("bin/tool-link", "tool"),
    ]
    opaque = [
        D("opq"),
        F("opq/new1", "new1\n"),
        OPQ("opq"),  # AFTER a same-layer child: must not delete opq/new1
        D("opq/newsub"),
        F("opq/newsub/y", "y\n"),
        OPQ("opq2"),  # conventional position, no dir entry
        F("opq2/fresh", "fresh\n"),
    ]
    recreate = [
        D("deldir", 0o750),
        F("deldir/reborn", "reborn\n"),
        S("to-delete", "etc/config"),
    ]
    return [base, changes, opaque, recreate]


def multiarch_layers(arch: str) -> list[list[Entry]]:
    """ "./"-prefixed names (as `tar -C rootfs .` writes them), shared base layer."""
    base = [
        D("./"),
        D("./etc/"),
        F("./etc/os-release", 'ID=volt-test\nNAME="volt test image"\n'),
    ]
    own = [F("./arch", arch + "\n"), D("./opt/"), F(f"./opt/only-{arch.replace('/', '-')}", "x\n")]
    return [base, own]


def devices_layers() -> list[list[Entry]]:
    return [
        [
            D("dev"),
            Entry("dev/null", "char", mode=0o666, devmajor=1, devminor=3),
            Entry("dev/zero", "char", mode=0o666, devmajor=1, devminor=5),
            Entry("dev/loop0", "block", mode=0o660, devmajor=7, devminor=0, gid=6),
            Entry("dev/fifo", "fifo", mode=0o644),
            F("regular", "regular file next to devices\n"),
        ]
    ]


def private_layers() -> list[list[Entry]]:
    return [[D("app"), F("app/run", "#!/bin/sh\necho private\n", 0o755), F("app/secret.txt", "private app\n")]]


#: evil tag -> (description for the report/tests, layers)
def evil_cases() -> dict[str, tuple[str, list[list[Entry]]]]:
    return {
        "dotdot": (
            "layer entries '../volt-evil-dotdot' and 'a/../../volt-evil-dotdot2' (escape via ..)",
            [
                [
                    F("ok", "ok\n"),
                    F("../volt-evil-dotdot", "escaped\n"),
                    D("a"),
                    F("a/../../volt-evil-dotdot2", "escaped\n"),
                ]
            ],
        ),
        "absolute": (
            "layer entry '/volt-evil-abs' (absolute path)",
            [[F("ok", "ok\n"), F("/volt-evil-abs", "absolute\n")]],
        ),
        "symlink-escape": (
            "same layer: symlink 'link' -> /tmp, then file 'link/volt-evil-owned-same-layer'",
            [[F("ok", "ok\n"), S("link", "/tmp"), F("link/volt-evil-owned-same-layer", "owned\n")]],
        ),
        "symlink-escape-layers": (
            "layer 1: 'link' -> ../../../../../../../../tmp; layer 2: file 'link/volt-evil-owned-later-layer'",
            [
                [F("ok", "ok\n"), S("link", "../../../../../../../../tmp")],
                [F("link/volt-evil-owned-later-layer", "owned\n")],
            ],
        ),
        "hardlink-escape": (
            "in-root decoy etc/passwd, then hard link 'passwd-link' -> '../../etc/passwd'",
            [[D("etc"), F("etc/passwd", "decoy:x:0:0::/:/bin/false\n"), H("passwd-link", "../../etc/passwd")]],
        ),
        "bad-digest": (
            "layer blob replaced in the registry's storage by a valid gzip tar of the SAME "
            "length with different content (sha256 != manifest digest, diff_id mismatch too)",
            [[F("payload", "ORIGINAL content, digest matches\n")]],
        ),
        "size-honest": (
            "honest 1-layer image; size-bigger/size-smaller reuse its blobs",
            [[F("sized", "the descriptor sizes of this layer lie in size-bigger/size-smaller\n" * 8)]],
        ),
        "size-bigger": ("manifest layer descriptor size = real size + 1000", []),
        "size-smaller": ("manifest layer descriptor size = real size - 100", []),
    }


EVIL_CASES = {k: v[0] for k, v in evil_cases().items()}

_BAD_DIGEST_REPLACEMENT = [F("payload", "EVIL!!!! content, digest differs\n")]


@dataclasses.dataclass
class BuiltImage:
    key: str  # "repo:tag"
    layout: Path
    layout_tag: str  # ref name inside the layout
    desc: dict  # descriptor (manifest or index)
    layers: list[Layer] = dataclasses.field(default_factory=list)
    platforms: dict[str, dict] = dataclasses.field(default_factory=dict)  # "linux/arm/v7" -> manifest desc
    note: str = ""

    @property
    def is_index(self) -> bool:
        return self.desc["mediaType"] in (MT_OCI_INDEX, MT_DOCKER_LIST)

    @property
    def repo(self) -> str:
        return self.key.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.key.rsplit(":", 1)[1]


def _plat(p: Mapping[str, str]) -> str:
    return "/".join(x for x in (p["os"], p["architecture"], p.get("variant", "")) if x)


def build_all(workdir: Path | str) -> dict[str, BuiltImage]:
    """Build every test image into one OCI layout under ``workdir``.

    Returns {key: BuiltImage}; keys are "repo:tag" as pushed (the v2s2 and
    size-lie keys are derived at push time and not in this dict)."""
    workdir = Path(workdir)
    layout_dir = workdir / "layout"
    shutil.rmtree(layout_dir, ignore_errors=True)
    lay = Layout(layout_dir)
    out: dict[str, BuiltImage] = {}

    def single(key: str, layer_specs: list[list[Entry]], note: str = "", level: int = 9, zstd: bool = False):
        layers = [make_layer(spec, i, level, zstd) for i, spec in enumerate(layer_specs)]
        desc = lay.image(layers, AMD64)
        ltag = key.replace("/", "_").replace(":", "--")
        lay.tag(desc, ltag)
        out[key] = BuiltImage(key, layout_dir, ltag, desc, layers, note=note)
        return out[key]

    single("multilayer:latest", multilayer_layers(), "4 layers: whiteouts, type changes, opaque dirs")
    single("multilayer:zstd", multilayer_layers(), "multilayer with zstd layers", zstd=True)
    single("devices:latest", devices_layers(), "char/block devices and a fifo")
    single("private/app:latest", private_layers(), "only on registries with auth")

    # multi-arch index
    plats = []
    all_layers = []
    for plat in (AMD64, ARM64, ARMV7):
        arch = plat["architecture"] + ("/" + plat["variant"] if plat.get("variant") else "")
        layers = [make_layer(spec, i) for i, spec in enumerate(multiarch_layers(arch))]
        all_layers.extend(layers)
        plats.append((lay.image(layers, plat), plat))
    idx = lay.index(plats)
    lay.tag(idx, "multiarch--latest")
    out["multiarch:latest"] = BuiltImage(
        "multiarch:latest",
        layout_dir,
        "multiarch--latest",
        idx,
        all_layers,
        platforms={_plat(p): d for d, p in plats},
        note="OCI index amd64/arm64/arm-v7",
    )

    for case, (note, specs) in evil_cases().items():
        if not specs:
            continue
        # level 0 (stored deflate): the blob length depends only on the tar
        # length, so a same-length replacement blob can be made
        single(f"evil:{case}", specs, note, level=0 if case == "bad-digest" else 9)
    return out


# ----------------------------------------------------------------- pushing


@dataclasses.dataclass
class Pushed:
    key: str  # "repo:tag"
    registry: Registry
    repo: str
    tag: str
    reference: str  # host/repo:tag
    digest: str  # digest of the manifest / index as the registry serves it
    media_type: str
    manifest: dict  # parsed manifest or index as served
    raw: bytes = b""
    layers: list[str] = dataclasses.field(default_factory=list)  # layer digests (single manifests)
    platforms: dict[str, str] = dataclasses.field(default_factory=dict)  # "linux/arm64" -> digest
    note: str = ""
    expect_pull_ok: bool = True  # False for the evil blob/size cases

    @property
    def by_digest(self) -> str:
        return f"{self.registry.host}/{self.repo}@{self.digest}"


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def _skopeo_base(reg: Registry) -> list[str]:
    cmd = ["skopeo"]
    if reg.policy:
        cmd += ["--policy", reg.policy]
    return cmd


def push_image(
    built: BuiltImage, reg: Registry, repo: str | None = None, tag: str | None = None, fmt: str | None = None
) -> Pushed:
    """skopeo copy oci:<layout>:<ref> docker://<reg>/<repo>:<tag>.

    fmt=None keeps the OCI manifests byte for byte (--preserve-digests);
    fmt="v2s2" lets skopeo convert to Docker schema2 media types."""
    repo = repo or built.repo
    tag = tag or built.tag
    cmd = [*_skopeo_base(reg), "copy", "--quiet", "--retry-times=2", *reg.skopeo_args("dest")]
    if built.is_index:
        cmd.append("--all")
    if fmt:
        cmd += ["--format", fmt]
    else:
        cmd.append("--preserve-digests")
    with tempfile.NamedTemporaryFile("r") as digestfile:
        cmd += [
            "--digestfile",
            digestfile.name,
            f"oci:{built.layout}:{built.layout_tag}",
            f"docker://{reg.ref(repo, tag)}",
        ]
        _run(cmd)
        digest = Path(digestfile.name).read_text().strip()
    return describe(reg, repo, tag, note=built.note, key=f"{repo}:{tag}", expect_digest=digest)


def describe(
    reg: Registry, repo: str, tag: str, *, note: str = "", key: str | None = None, expect_digest: str | None = None
) -> Pushed:
    """Fetch what the registry serves for repo:tag and describe it."""
    mt, raw, served = RegistryHTTP(reg).get_manifest(repo, tag)
    digest = _sha(raw)
    if expect_digest and digest != expect_digest:
        raise RuntimeError(f"{repo}:{tag}: registry serves {digest}, skopeo pushed {expect_digest}")
    if served and served != digest:
        raise RuntimeError(f"{repo}:{tag}: Docker-Content-Digest {served} != sha256(body) {digest}")
    m = json.loads(raw)
    p = Pushed(key or f"{repo}:{tag}", reg, repo, tag, reg.ref(repo, tag), digest, mt, m, raw, note=note)
    if "manifests" in m:
        p.platforms = {_plat(d["platform"]): d["digest"] for d in m["manifests"]}
    else:
        p.layers = [layer["digest"] for layer in m["layers"]]
    return p


def corrupt_blob(reg: Registry, digest: str, replacement: bytes) -> Path:
    """Overwrite a blob in the registry's filesystem storage (same length).

    The registry verifies digests on upload only; GET serves the stored bytes
    with Content-Length from stat() and Docker-Content-Digest = the requested
    digest, so the client sees content that does not hash to the digest."""
    path = reg.blob_data_path(digest)
    if not path.exists():
        raise RuntimeError(f"{path} missing: blob not pushed to {reg.kind}?")
    if path.stat().st_size != len(replacement):
        raise RuntimeError("replacement must have the same length as the original blob")
    tmp = path.with_name("data.volt-tmp")
    tmp.write_bytes(replacement)
    os.replace(tmp, path)
    return path


def bad_digest_replacement(built: BuiltImage) -> bytes:
    layer = make_layer(_BAD_DIGEST_REPLACEMENT, 0, compresslevel=0)
    if layer.size != built.layers[0].size or layer.digest == built.layers[0].digest:
        raise AssertionError("bad-digest replacement must have the same size and another digest")
    return layer.blob


# Images also pushed converted by skopeo, under the format's name as tag.
CONVERSIONS = {"multilayer:latest": ("v2s2",), "multiarch:latest": ("v2s2",)}


def push_all(
    reg: Registry,
    workdir: Path | str | None = None,
    *,
    built: dict[str, BuiltImage] | None = None,
    jobs: int = 4,
    v2s2: bool = True,
    evil: bool = True,
) -> dict[str, Pushed]:
    """Build (unless ``built`` is given) and push every test image to ``reg``.

    Idempotent (re-pushing the same content is a no-op for the registry).
    ``private/app`` goes only to registries that need credentials."""
    tmp = None
    if built is None:
        if workdir is None:
            tmp = tempfile.TemporaryDirectory(prefix="volt-oci-")
            workdir = tmp.name
        built = build_all(workdir)
    try:
        # One repository's pushes one after the other (repositories in parallel): pushing the same
        # blobs to one repository at once races in the registry, which then answers 500 ("failed
        # to read from destination repository") on a loaded machine.
        by_repo: dict[str, list[tuple[BuiltImage, str | None, str | None]]] = {}
        for key, b in built.items():
            if key.startswith("private/") and not reg.needs_credentials:
                continue
            if key.startswith("evil:") and not evil:
                continue
            pushes = by_repo.setdefault(b.repo, [])
            pushes.append((b, None, None))
            pushes.extend((b, fmt, fmt) for fmt in CONVERSIONS.get(key, ()) if v2s2 or fmt != "v2s2")

        def push_repo(pushes):
            return [push_image(b, reg, None, tag, fmt) for b, tag, fmt in pushes]

        out: dict[str, Pushed] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in concurrent.futures.as_completed([pool.submit(push_repo, p) for p in by_repo.values()]):
                for p in fut.result():
                    out[p.key] = p
        if evil and "evil:bad-digest" in built:
            b = built["evil:bad-digest"]
            corrupt_blob(reg, b.layers[0].digest, bad_digest_replacement(b))
            out["evil:bad-digest"].expect_pull_ok = False
        if evil and "evil:size-honest" in built:
            honest = out["evil:size-honest"]
            http = RegistryHTTP(reg)
            for tag, delta in (("size-bigger", 1000), ("size-smaller", -100)):
                m = copy.deepcopy(honest.manifest)
                m["layers"][0]["size"] += delta
                raw = _json(m)
                http.put_manifest("evil", tag, raw, MT_OCI_MANIFEST)
                p = describe(reg, "evil", tag, note=EVIL_CASES[tag], expect_digest=_sha(raw))
                p.expect_pull_ok = False
                out[p.key] = p
        return dict(sorted(out.items()))
    finally:
        if tmp is not None:
            tmp.cleanup()


# ----------------------------------------------------------------- pulling / umoci


def pull_layout(
    reg: Registry,
    repo: str,
    ref: str,
    layout: Path | str,
    layout_tag: str = "image",
    *,
    platform: str | None = None,
    all_platforms: bool = False,
) -> Path:
    """skopeo copy docker://reg/repo:ref oci:<layout>:<layout_tag> (digests verified by skopeo).

    platform: e.g. "linux/arm64" or "linux/arm/v7" to pick from an index
    (default: skopeo picks the host's platform)."""
    cmd = [*_skopeo_base(reg), "copy", "--quiet", *reg.skopeo_args("src")]
    if all_platforms:
        cmd += ["--all", "--preserve-digests"]
    if platform:
        parts = platform.split("/")
        cmd += [f"--override-os={parts[0]}", f"--override-arch={parts[1]}"]
        if len(parts) > 2:
            cmd.append(f"--override-variant={parts[2]}")
    Path(layout).parent.mkdir(parents=True, exist_ok=True)  # skopeo creates only the last level
    cmd += [f"docker://{reg.ref(repo, ref)}", f"oci:{layout}:{layout_tag}"]
    _run(cmd)
    return Path(layout)


def umoci_unpack(
    reg: Registry,
    repo: str,
    ref: str,
    dest: Path | str,
    *,
    rootless: bool = True,
    platform: str | None = None,
) -> Path:
    """Pull with skopeo and ``umoci raw unpack`` into ``dest``/rootfs; returns that rootfs.

    rootless=True: no chown (everything owned by the caller), device nodes are
    skipped, as an unprivileged client would do. rootless=False (needs root):
    ownership from the tar headers and real device nodes."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    layout = dest / "oci"
    pull_layout(reg, repo, ref, layout, "image", platform=platform)
    rootfs = dest / "rootfs"
    cmd = ["umoci", "raw", "unpack"]
    if rootless:
        cmd.append("--rootless")
    cmd += ["--image", f"{layout}:image", str(rootfs)]
    _run(cmd)
    return rootfs


# ----------------------------------------------------------------- tree listing


@dataclasses.dataclass(frozen=True, order=True)
class Node:
    path: str  # relative, "." for the root
    type: str  # dir file symlink char block fifo socket
    mode: int  # permission bits incl. setuid/setgid/sticky (0o7777)
    target: str | None = None  # symlink target
    sha256: str | None = None  # regular files
    size: int | None = None  # regular files
    link_group: str | None = None  # hard links: smallest path of the inode group
    external_links: int = 0  # st_nlink minus links inside the tree (>0: linked from outside!)
    rdev: tuple[int, int] | None = None  # devices: (major, minor)
    owner: tuple[int, int] | None = None  # (uid, gid) if owners=True
    mtime: int | None = None  # if mtimes=True (never for the root ".")
    xattrs: tuple[tuple[str, str], ...] | None = None  # (name, sha256[:16] of value) if xattrs=True

    def __str__(self) -> str:
        s = f"{self.type:7} {self.mode:04o} {self.path}"
        if self.target is not None:
            s += f" -> {self.target}"
        if self.sha256 is not None:
            s += f" sha256:{self.sha256[:12]} ({self.size}B)"
        if self.link_group is not None:
            s += f" [hardlink group {self.link_group}]"
        if self.external_links:
            s += f" [!{self.external_links} link(s) outside the tree]"
        if self.rdev is not None:
            s += f" dev {self.rdev[0]},{self.rdev[1]}"
        if self.owner is not None:
            s += f" uid/gid {self.owner[0]}:{self.owner[1]}"
        if self.mtime is not None:
            s += f" mtime {self.mtime}"
        if self.xattrs:
            s += " xattrs " + ",".join(f"{k}={v}" for k, v in self.xattrs)
        return s


_TYPES = [
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
]


def tree_listing(
    root: Path | str, *, owners: bool = False, mtimes: bool = False, xattrs: bool = False, root_entry: bool = True
) -> list[Node]:
    """Comparable, sorted listing of a tree (nothing followed through symlinks).

    Always: relative path, type, permission bits (incl. setuid/setgid/sticky),
    symlink target, sha256 + size of regular files, hard-link group (inode
    shared inside the tree) and links to the inode from outside the tree.

    Off by default:
      owners  a rootless unpack cannot chown: umoci --rootless leaves every
              file owned by the caller and records non-root tar ownership in
              the "user.rootlesscontainers" xattr instead;
      mtimes  umoci sets every entry (files, dirs, symlinks) to its tar header
              mtime and keeps a parent directory's mtime when later entries
              change its children; the root "." gets no header, so its mtime
              is never listed;
      xattrs  names + value hashes (user.rootlesscontainers shows up here).
    """
    root = Path(root)
    raw: list[tuple[str, os.stat_result]] = []
    if root_entry:
        raw.append((".", os.lstat(root)))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            raw.append((os.path.relpath(full, root), os.lstat(full)))
    groups: dict[tuple[int, int], list[str]] = {}
    for rel, st in raw:
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    nodes = []
    for rel, st in raw:
        kind = next(k for f, k in _TYPES if f(st.st_mode))
        full = root / rel
        target = os.readlink(full) if kind == "symlink" else None
        digest = size = None
        if kind == "file":
            h = hashlib.sha256()
            with open(full, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            digest, size = h.hexdigest(), st.st_size
        group, external = None, 0
        if (st.st_dev, st.st_ino) in groups:
            members = groups[(st.st_dev, st.st_ino)]
            group = min(members)
            external = st.st_nlink - len(members)
        nodes.append(
            Node(
                rel,
                kind,
                stat.S_IMODE(st.st_mode),
                target,
                digest,
                size,
                group,
                external,
                (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None,
                (st.st_uid, st.st_gid) if owners else None,
                int(st.st_mtime) if mtimes and rel != "." else None,
                _xattrs(full) if xattrs else None,
            )
        )
    return sorted(nodes)


def _xattrs(path: Path) -> tuple[tuple[str, str], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        try:
            val = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append((name, hashlib.sha256(val).hexdigest()[:16]))
    return tuple(out)


def find_escapes(*dirs: Path | str) -> list[str]:
    """Files named like ``ESCAPE_NAMES`` (what the evil images try to create
    outside the target) found in /, /tmp and ``dirs`` (pass the parent of
    the unpack target, and its parent's parent, for the "../" cases)."""
    found = []
    for d in ("/", "/tmp", *dirs):
        for name in ESCAPE_NAMES:
            p = os.path.join(d, name)
            if os.path.lexists(p):
                found.append(p)
    return sorted(set(found))


def format_listing(nodes: Iterable[Node]) -> str:
    return "\n".join(str(n) for n in nodes)


def diff_listings(got: Iterable[Node], want: Iterable[Node]) -> list[str]:
    """Human-readable differences (empty list = identical)."""
    g = {n.path: n for n in got}
    w = {n.path: n for n in want}
    out = []
    for path in sorted(set(g) | set(w)):
        if path not in g:
            out.append(f"missing:    {w[path]}")
        elif path not in w:
            out.append(f"unexpected: {g[path]}")
        elif g[path] != w[path]:
            out.append(f"differs:    got  {g[path]}\n            want {w[path]}")
    return out


# ----------------------------------------------------------------- CLI (manual use)


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push-all", help="build and push every image")
    p.add_argument("--registry", action="append", help="http|https|auth|token (default: all)")
    p.add_argument("--workdir")
    p = sub.add_parser("unpack", help="skopeo pull + umoci raw unpack, print the listing")
    p.add_argument("registry")
    p.add_argument("repo")
    p.add_argument("ref")
    p.add_argument("dest")
    p.add_argument("--root", action="store_true", help="no --rootless")
    p.add_argument("--platform")
    p.add_argument("--owners", action="store_true")
    p = sub.add_parser("listing", help="print tree_listing(PATH)")
    p.add_argument("path")
    p.add_argument("--owners", action="store_true")
    p.add_argument("--mtimes", action="store_true")
    p.add_argument("--xattrs", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "push-all":
        regs = registries()
        with tempfile.TemporaryDirectory(prefix="volt-oci-") as tmpd:
            t0 = time.monotonic()
            built = build_all(a.workdir or tmpd)
            print(f"built {len(built)} images in {time.monotonic() - t0:.2f}s")
            for kind in a.registry or list(regs):
                t0 = time.monotonic()
                pushed = push_all(regs[kind], built=built)
                print(f"== {kind} {regs[kind].host}: {len(pushed)} refs in {time.monotonic() - t0:.1f}s")
                for key, pu in pushed.items():
                    extra = " ".join(f"{k}={v[:19]}" for k, v in pu.platforms.items())
                    print(
                        f"  {key:28} {pu.digest[:19]} {pu.media_type.rsplit('.', 2)[-2]:>12} "
                        f"{'' if pu.expect_pull_ok else 'BROKEN '}{extra}"
                    )
    elif a.cmd == "unpack":
        reg = registries()[a.registry]
        rootfs = umoci_unpack(reg, a.repo, a.ref, a.dest, rootless=not a.root, platform=a.platform)
        print(format_listing(tree_listing(rootfs, owners=a.owners)))
    elif a.cmd == "listing":
        print(format_listing(tree_listing(a.path, owners=a.owners, mtimes=a.mtimes, xattrs=a.xattrs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
