"""Realistic application images for the tests, built the way official images are made.

One base layer, Debian bookworm debootstrapped (``--variant=minbase``, with nginx, redis-server,
python3 and procps) and cleaned, is shared by four images, each with a small top layer and a real
image config (Entrypoint, Cmd, Env, User, WorkingDir, ExposedPorts, StopSignal, Labels, history):

  key    repository:tag     runs
  web    volt-test/web:1    /docker-entrypoint.sh writes nginx's server block (port $WEB_PORT,
                            default 8080, address $WEB_ADDR, default all) serving /srv/www
                            ("volt web ok"), then execs Cmd: nginx -g 'daemon off;'. Logs to
                            stdout/stderr; stops gracefully on SIGQUIT (its StopSignal).
  kv     volt-test/kv:1     redis-server as the user redis, in /data (owned by redis), port 6379
                            from Cmd (no entrypoint: to change the port, replace the command),
                            append-only file, no RDB; StopSignal unset (SIGTERM).
  pyapp  volt-test/pyapp:1  python3 /app/server.py in /app: GET / answers $APP_GREETING, GET /env
                            a JSON object {"environ", "cwd", "uid", "gid", "pid"}; port $APP_PORT
                            (8000), address $APP_HOST (default all); on SIGINT (its StopSignal) it
                            prints "stopped by SIGINT" and exits 0. SIGTERM is left to the default
                            action, so a runtime that ignores StopSignal shows.
  fail   volt-test/fail:1   only the base layer; Cmd prints "fail: cannot start, missing config"
                            on stderr and exits 3.

The images are linux/<this machine's architecture>, OCI manifests with gzip layers.

Caching, under ${XDG_CACHE_HOME:-~/.cache}/armoredgate-volt/app-images/:
  debs/             debootstrap --cache-dir: the .deb files, downloaded once
  base-<recipe>/    the finished base layer (layer.tar.gz) and what is known about it
                    (layer.json); <recipe> hashes the package list, the debootstrap arguments and
                    the functions that build, clean and archive the tree, so editing any of them
                    builds a new base on the next run (old base-* directories stay: remove them by
                    hand). A run that finds its base downloads nothing and runs no debootstrap.
The top layers and configs are rebuilt on every run, deterministically (sorted entries, fixed
mtimes, uid/gid only, gzip without name or time), so the same base gives the same digests.

The base layer's entries keep the mtimes the packages gave them; whatever the installation
created or changed gets the mirror's Release date (the "epoch", also the configs' "created"), as
do the top layers' entries. /etc/shadow's "last changed" days are set to that date too. Removed:
apt's package cache and lists, logs of the installation, backup files (/etc/*-, *-old), docs
except copyright files, man and info pages, locales, /etc/hostname and /etc/resolv.conf (copied
from this machine by debootstrap) and everything in /dev (runtimes bind their own /dev). Added,
as Debian's official images do: /usr/sbin/policy-rc.d (exit 101) and a dpkg config that keeps
docs out of later installs.

The mirror: $VOLT_DEBIAN_MIRROR, else the first repository of Debian's main archive that this
machine's apt is configured with (as tests/setup/build-proot.sh finds it); apt's
Acquire::http::Proxy, when set, is given to debootstrap as http_proxy.

Use (root, no stdin): see conftest.py for the fixtures, or by hand::

    python3 -m tests.integration.apps.app_images base            # build (or find) the base layer
    eval "$(tests/setup/registry/registry start)"
    python3 -m tests.integration.apps.app_images push             # build and push all four
"""

from __future__ import annotations

import argparse
import dataclasses
import email.utils
import fcntl
import gzip
import hashlib
import inspect
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..images import oci_images
from ..images.oci_images import D, Entry, F, S

# ----------------------------------------------------------------- recipe

SUITE = "bookworm"
#: python3, not python3-minimal: http.server and json are in libpython3.11-stdlib. nginx, not
#: nginx-light: in bookworm nginx-light is only nginx plus the echo module.
BASE_PACKAGES = ("nginx", "redis-server", "python3", "procps")
DEBOOTSTRAP_ARGS = ("--variant=minbase", "--merged-usr", "--include=" + ",".join(BASE_PACKAGES))
#: the "epoch" when the mirror's Release file has no readable Date
FALLBACK_EPOCH = 1_700_000_000
#: bump to rebuild the base without changing the functions the recipe hashes
BASE_RECIPE_VERSION = 1

STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PATH_ENV = f"PATH={STD_PATH}"
TAG = "1"
REPOS = {"web": "volt-test/web", "kv": "volt-test/kv", "pyapp": "volt-test/pyapp", "fail": "volt-test/fail"}
#: what the web image serves at / (the file /srv/www/index.html)
WEB_BODY = "volt web ok\n"
#: what the fail image prints on stderr before it exits with FAIL_STATUS
FAIL_MESSAGE = "fail: cannot start, missing config"
FAIL_STATUS = 3
PYAPP_GREETING = "hello from the image"
PYAPP_STOPPED = "stopped by SIGINT"

MT_OCI_MANIFEST = oci_images.MT_OCI_MANIFEST
MT_OCI_CONFIG = oci_images.MT_OCI_CONFIG
MT_OCI_LAYER_GZIP = oci_images.MT_OCI_LAYER_GZIP


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "armoredgate-volt" / "app-images"


def log(msg: str) -> None:
    print(f"app-images: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- this machine


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def ensure_packages(packages: Mapping[str, str]) -> None:
    """Install the Debian packages of {program or file: package} that are missing (root only)."""
    missing = sorted(
        {pkg for thing, pkg in packages.items() if not (os.path.exists(thing) if "/" in thing else shutil.which(thing))}
    )
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing packages {' '.join(missing)} and not root")
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode:
        _run(["apt-get", "update", "-q"], env=env)
        _run(install, env=env)


def debian_mirror() -> str:
    """$VOLT_DEBIAN_MIRROR, else the first configured repository of Debian's main archive: the
    mirror build-proot.sh downloads proot's source from (its --print-mirror)."""
    build_proot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "setup", "build-proot.sh")
    return _run([build_proot, "--print-mirror"]).stdout.strip()


def apt_proxy_env() -> dict[str, str]:
    """http_proxy/https_proxy for debootstrap's wget from apt's Acquire::http(s)::Proxy, unless
    the environment already has them."""
    out = _run(["apt-config", "shell", "HTTP", "Acquire::http::Proxy", "HTTPS", "Acquire::https::Proxy"]).stdout
    env = {}
    for line in out.splitlines():
        name, _sep, value = line.partition("=")
        value = shlex.split(value)[0] if value else ""
        key = {"HTTP": "http_proxy", "HTTPS": "https_proxy"}.get(name)
        if key and value and value.upper() != "DIRECT" and key not in os.environ:
            env[key] = value
    return env


#: dpkg architecture -> OCI platform
_PLATFORMS = {
    "amd64": {"architecture": "amd64"},
    "arm64": {"architecture": "arm64", "variant": "v8"},
    "armhf": {"architecture": "arm", "variant": "v7"},
    "armel": {"architecture": "arm", "variant": "v5"},
    "i386": {"architecture": "386"},
    "ppc64el": {"architecture": "ppc64le"},
    "s390x": {"architecture": "s390x"},
    "riscv64": {"architecture": "riscv64"},
    "mips64el": {"architecture": "mips64le"},
}


def dpkg_architecture() -> str:
    return _run(["dpkg", "--print-architecture"]).stdout.strip()


def oci_platform(dpkg_arch: str) -> dict[str, str]:
    if dpkg_arch not in _PLATFORMS:
        raise RuntimeError(f"no OCI platform known for the Debian architecture {dpkg_arch}")
    return {"os": "linux", **_PLATFORMS[dpkg_arch]}


# ----------------------------------------------------------------- the base layer


@dataclasses.dataclass(frozen=True)
class BaseLayer:
    """The cached, shared base layer."""

    path: Path  # layer.tar.gz
    digest: str
    diff_id: str
    size: int  # compressed
    uncompressed_size: int
    epoch: int  # the mirror's Release date; the mtime of everything made at install time
    mirror: str
    dpkg_arch: str
    packages: dict[str, str]  # BASE_PACKAGES -> installed version
    package_count: int
    users: dict[str, list[int]]  # name -> [uid, gid] from the tree's /etc/passwd
    recipe: str
    build_seconds: float

    @property
    def created(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.epoch))

    @property
    def platform(self) -> dict[str, str]:
        return oci_platform(self.dpkg_arch)

    def descriptor(self) -> dict:
        return {"mediaType": MT_OCI_LAYER_GZIP, "digest": self.digest, "size": self.size}


def recipe_hash(dpkg_arch: str) -> str:
    """Hash of everything that decides the base layer's content (but the mirror's state)."""
    h = hashlib.sha256()
    recipe = [BASE_RECIPE_VERSION, SUITE, dpkg_arch, list(DEBOOTSTRAP_ARGS), _NODOC, _HOSTS]
    h.update(json.dumps(recipe).encode())
    for func in (_debootstrap, _clean_tree, _normalise_shadow, _write_tree_layer, _tree_members, _tar_info):
        h.update(inspect.getsource(func).encode())
    return h.hexdigest()[:16]


def base_layer(cache: Path | None = None, *, mirror: str | None = None) -> BaseLayer:
    """The base layer from the cache, built first when the cache lacks it (root, network)."""
    cache = Path(cache) if cache else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    arch = dpkg_architecture()
    out = cache / f"base-{recipe_hash(arch)}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "layer.json").exists():
            _build_base(cache, out, arch, mirror)
        meta = json.loads((out / "layer.json").read_text())
    return BaseLayer(path=out / "layer.tar.gz", **meta)


def _build_base(cache: Path, out: Path, arch: str, mirror: str | None) -> None:
    if os.geteuid() != 0:
        raise RuntimeError("building the base layer runs debootstrap: run as root")
    ensure_packages(
        {"debootstrap": "debootstrap", "/usr/share/keyrings/debian-archive-keyring.gpg": "debian-archive-keyring"}
    )
    mirror = mirror or debian_mirror()
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        started = time.monotonic()
        root = work / "rootfs"
        log(f"debootstrap {SUITE} from {mirror} (packages cached in {debs})")
        _debootstrap(root, mirror, debs, work / "debootstrap.log")
        epoch = _release_epoch(root)
        dpkg_out = _run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\\n"])
        versions = dict(line.split(" ", 1) for line in dpkg_out.stdout.splitlines())
        _clean_tree(root, epoch)
        users = {}
        for line in (root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            users[fields[0]] = [int(fields[2]), int(fields[3])]
        log("archiving the tree")
        layer = work / "layer.tar.gz"
        digest, diff_id, size, raw_size = _write_tree_layer(root, layer, epoch)
        meta = {
            "digest": digest,
            "diff_id": diff_id,
            "size": size,
            "uncompressed_size": raw_size,
            "epoch": epoch,
            "mirror": mirror,
            "dpkg_arch": arch,
            "packages": {name: versions.get(name, "") for name in BASE_PACKAGES},
            "package_count": len(versions),
            "users": users,
            "recipe": out.name.removeprefix("base-"),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        staged = work / "out"
        staged.mkdir()
        os.replace(layer, staged / "layer.tar.gz")
        (staged / "layer.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(staged, out)
        took = meta["build_seconds"]
        log(f"base layer {digest[:19]}: {size / 1e6:.1f} MB ({raw_size / 1e6:.1f} MB unpacked) in {took}s")
    finally:
        _remove_tree(work)


def _debootstrap(root: Path, mirror: str, debs: Path, logfile: Path) -> None:
    env = {
        "PATH": STD_PATH,
        "LC_ALL": "C",
        "HOME": "/root",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
        **{k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")},
        **apt_proxy_env(),
    }
    cmd = ["debootstrap", *DEBOOTSTRAP_ARGS, f"--cache-dir={debs}", SUITE, str(root), mirror]
    with open(logfile, "w") as fh:
        rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, check=False)
    _unmount_below(root)
    if rc.returncode != 0:
        tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{shlex.join(cmd)} failed ({rc.returncode}):\n{tail}")


def _release_epoch(root: Path) -> int:
    lists = root / "var/lib/apt/lists"
    for release in sorted(lists.glob("*_Release")) + sorted(lists.glob("*_InRelease")):
        for line in release.read_text(errors="replace").splitlines():
            if line.startswith("Date:"):
                return int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())
    return FALLBACK_EPOCH


_NODOC = """\
# Written by the volt tests' image builder, as Debian's official images do: no docs in later installs.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
"""


_HOSTS = """\
127.0.0.1    localhost
::1        localhost ip6-localhost ip6-loopback
ff02::1        ip6-allnodes
ff02::2        ip6-allrouters
"""


def _clean_tree(root: Path, epoch: int) -> None:
    """What official images drop, and what debootstrap leaves of this machine or of the install."""
    globs = [
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/archives/partial/*",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "var/log/*.log",
        "var/log/apt/*",
        "var/cache/debconf/*-old",
        "var/lib/dpkg/*-old",
        "var/cache/ldconfig/aux-cache",
        "etc/*-",
        "etc/hostname",
        "etc/resolv.conf",
        "run/adduser",
        "dev/*",
        "tmp/*",
        "var/tmp/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
    ]
    for pattern in globs:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for dirpath, _dirnames, filenames in os.walk(root / "usr/share/doc"):
        for name in filenames:
            if name != "copyright":
                os.unlink(os.path.join(dirpath, name))
    for dirpath, dirnames, _filenames in os.walk(root / "usr/share/doc", topdown=False):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and not os.listdir(path):
                os.rmdir(path)
    (root / "etc/dpkg/dpkg.cfg.d/volt-test-nodoc").write_text(_NODOC)
    # what a Debian install's netcfg writes (minbase has none): "localhost" resolves without DNS
    (root / "etc/hosts").write_text(_HOSTS)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts while packages are installed in a container\nexit 101\n")
    policy.chmod(0o755)
    _normalise_shadow(root, epoch)


def _normalise_shadow(root: Path, epoch: int) -> None:
    """/etc/shadow's third field is the day the password was set: the epoch's day, not today's."""
    day = str(epoch // 86400)
    path = root / "etc/shadow"
    lines = []
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2]:
            fields[2] = day
        lines.append(":".join(fields))
    path.write_text("\n".join(lines) + "\n")


def _tree_members(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything below root, parents first, names in byte order."""
    full = os.path.join(root, rel) if rel else str(root)
    for name in sorted(os.listdir(full), key=os.fsencode):
        path = f"{rel}/{name}" if rel else name
        st = os.lstat(os.path.join(root, path))
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _tree_members(root, path)


def _tar_info(root: Path, rel: str, st: os.stat_result, epoch: int, links: dict) -> tarfile.TarInfo | None:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = min(int(st.st_mtime), epoch)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = rel
            info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(os.path.join(root, rel))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None  # sockets
    return info


class _Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _write_tree_layer(root: Path, dest: Path, epoch: int) -> tuple[str, str, int, int]:
    """A gzip tar layer of the tree: sorted entries, numeric owners, mtimes clamped to epoch,
    hard links kept, gzip without name and time. -> (digest, diff_id, size, uncompressed size)."""
    links: dict = {}
    with open(dest, "wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=compressed, mtime=0) as gz:
            plain = _Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for rel, st in _tree_members(root):
                    info = _tar_info(root, rel, st, epoch, links)
                    if info is None:
                        continue
                    if info.type == tarfile.REGTYPE:
                        with open(os.path.join(root, rel), "rb") as fh:
                            tar.addfile(info, fh)
                    else:
                        tar.addfile(info)
    return compressed.digest(), plain.digest(), compressed.size, plain.size


def _mounts_below(root: Path) -> list[str]:
    prefix = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _unmount_below(root: Path) -> None:
    """debootstrap mounts /proc and /sys in the target (and may leave them on failure)."""
    for point in _mounts_below(root):
        subprocess.run(["umount", "-l", point], check=False, stdin=subprocess.DEVNULL, capture_output=True)
    left = _mounts_below(root)
    if left:
        raise RuntimeError(f"still mounted below {root}: {left}")


def _remove_tree(path: Path) -> None:
    if path.exists():
        _unmount_below(path)  # never rm -rf through a mount
        shutil.rmtree(path)


# ----------------------------------------------------------------- the applications

WEB_ENTRYPOINT = r"""#!/bin/sh
# volt-test/web: nginx's server block from the environment, then the command (nginx).
#   WEB_PORT  port to listen on (default 8080)
#   WEB_ADDR  address to listen on (default: all addresses)
set -eu
port=${WEB_PORT:-8080}
case $port in
'' | *[!0-9]*)
    echo "docker-entrypoint.sh: WEB_PORT must be a port number, not '$port'" >&2
    exit 64
    ;;
esac
listen=$port
if [ -n "${WEB_ADDR:-}" ]; then listen="$WEB_ADDR:$port"; fi
cat >/etc/nginx/conf.d/default.conf <<EOF
# written by /docker-entrypoint.sh at start
server {
    listen $listen;
    root /srv/www;
    index index.html;
    location / {
        try_files \$uri \$uri/ =404;
    }
}
EOF
echo "docker-entrypoint.sh: nginx will listen on $listen, serving /srv/www"
exec "$@"
"""

# Writes only to /run (pid), /var/lib/nginx (temp files) and the logs' stdout/stderr. The compiled-in
# error log (/var/log/nginx/error.log, opened before this file is read) is a symlink to /dev/stderr,
# as in the official nginx image.
NGINX_CONF = """\
# volt-test/web
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;

events {
    worker_connections 128;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    access_log /dev/stdout;
    include /etc/nginx/conf.d/*.conf;
}
"""

PYAPP_SERVER = '''\
"""volt-test/pyapp: a tiny HTTP app configured by its environment.

GET /     -> $APP_GREETING (text/plain)
GET /env  -> {"environ": os.environ, "cwd": ..., "uid": ..., "gid": ..., "pid": ...} (JSON)
Listens on $APP_HOST (default: all addresses), port $APP_PORT (default 8000).
SIGINT stops it: it prints "stopped by SIGINT" and exits 0.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            body, ctype = os.environ.get("APP_GREETING", "").encode(), "text/plain; charset=utf-8"
        elif self.path == "/env":
            state = {
                "environ": dict(os.environ),
                "cwd": os.getcwd(),
                "uid": os.getuid(),
                "gid": os.getgid(),
                "pid": os.getpid(),
            }
            body, ctype = json.dumps(state, sort_keys=True).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("pyapp: %s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    # A parent may have started us with SIGINT ignored; Python then keeps it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host = os.environ.get("APP_HOST", "")
    port = int(os.environ.get("APP_PORT", "8000"))
    server = HTTPServer((host, port), Handler)
    print("pyapp: listening on %s:%d in %s as uid %d" % (host or "*", port, os.getcwd(), os.getuid()), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped by SIGINT", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


@dataclasses.dataclass(frozen=True)
class AppSpec:
    key: str
    entries: list[Entry]  # the top layer ([] = the base layer only)
    config: dict  # the image config's "config" object
    steps: list[str]  # history: what made the top layer, then config-only steps


def app_specs(base: BaseLayer) -> dict[str, AppSpec]:
    e = base.epoch
    redis_uid, redis_gid = base.users["redis"]
    web = AppSpec(
        "web",
        [
            F("docker-entrypoint.sh", WEB_ENTRYPOINT, 0o755, mtime=e),
            F("etc/nginx/nginx.conf", NGINX_CONF, mtime=e),
            F("etc/nginx/sites-enabled/.wh.default", "", mtime=e),  # whiteout: no default site
            D("srv/www", mtime=e),
            F("srv/www/index.html", WEB_BODY, mtime=e),
            S("var/log/nginx/access.log", "/dev/stdout", mtime=e),
            S("var/log/nginx/error.log", "/dev/stderr", mtime=e),
        ],
        {
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": [PATH_ENV, "WEB_PORT=8080"],
            "ExposedPorts": {"8080/tcp": {}},
            "StopSignal": "SIGQUIT",
            "Labels": {"org.opencontainers.image.title": "volt-test-web"},
        },
        [
            "COPY docker-entrypoint.sh nginx.conf index.html / # (and no default site)",
            "ENV WEB_PORT=8080",
            "EXPOSE 8080/tcp",
            "STOPSIGNAL SIGQUIT",
            'ENTRYPOINT ["/docker-entrypoint.sh"]',
            'CMD ["nginx", "-g", "daemon off;"]',
        ],
    )
    kv_cmd = ["redis-server", "--port", "6379", "--dir", "/data", "--save", "", "--appendonly", "yes"]
    kv_cmd += ["--protected-mode", "no"]
    kv = AppSpec(
        "kv",
        [D("data", 0o755, uid=redis_uid, gid=redis_gid, mtime=e)],
        {
            "User": "redis",
            "WorkingDir": "/data",
            "Cmd": kv_cmd,
            "Env": [PATH_ENV],
            "ExposedPorts": {"6379/tcp": {}},
            "Labels": {"org.opencontainers.image.title": "volt-test-kv"},
        },
        [
            "RUN mkdir /data && chown redis:redis /data",
            "USER redis",
            "WORKDIR /data",
            "EXPOSE 6379/tcp",
            "CMD " + json.dumps(kv_cmd),
        ],
    )
    pyapp = AppSpec(
        "pyapp",
        [D("app", mtime=e), F("app/server.py", PYAPP_SERVER, mtime=e)],
        {
            "WorkingDir": "/app",
            "Cmd": ["python3", "/app/server.py"],
            "Env": [PATH_ENV, f"APP_GREETING={PYAPP_GREETING}", "PYTHONUNBUFFERED=1", "APP_PORT=8000"],
            "ExposedPorts": {"8000/tcp": {}},
            "StopSignal": "SIGINT",
            "Labels": {"org.opencontainers.image.title": "volt-test-pyapp"},
        },
        [
            "COPY server.py /app/",
            f"ENV APP_GREETING={PYAPP_GREETING} PYTHONUNBUFFERED=1 APP_PORT=8000",
            "WORKDIR /app",
            "EXPOSE 8000/tcp",
            "STOPSIGNAL SIGINT",
            'CMD ["python3", "/app/server.py"]',
        ],
    )
    fail_cmd = ["/bin/sh", "-c", f"echo '{FAIL_MESSAGE}' >&2; exit {FAIL_STATUS}"]
    fail = AppSpec(
        "fail",
        [],
        {"Cmd": fail_cmd, "Env": [PATH_ENV], "Labels": {"org.opencontainers.image.title": "volt-test-fail"}},
        ["CMD " + json.dumps(fail_cmd)],
    )
    return {spec.key: spec for spec in (web, kv, pyapp, fail)}


# ----------------------------------------------------------------- images, layout, registry


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class AppImage:
    key: str  # "web"
    repo: str  # "volt-test/web"
    tag: str  # "1"
    config: dict  # the whole image config document as pushed
    config_digest: str
    manifest: dict
    manifest_raw: bytes
    digest: str  # of the manifest
    layers: tuple[str, ...]  # layer digests, the base layer first
    diff_ids: tuple[str, ...]
    reference: str = ""  # "127.0.0.1:PORT/volt-test/web:1" once pushed

    @property
    def container_config(self) -> dict:
        """The config's "config" object: Entrypoint, Cmd, Env, User, WorkingDir..."""
        return self.config["config"]


def image_config(base: BaseLayer, spec: AppSpec, top: oci_images.Layer | None) -> dict:
    base_step = f"debootstrap {' '.join(DEBOOTSTRAP_ARGS)} {SUITE} / # then cleaned (volt-test base)"
    history = [{"created": base.created, "created_by": base_step, "comment": f"Debian packages from {base.mirror}"}]
    steps = list(spec.steps)
    if top is not None:
        history.append({"created": base.created, "created_by": steps.pop(0)})
    history += [{"created": base.created, "created_by": step, "empty_layer": True} for step in steps]
    diff_ids = [base.diff_id] + ([top.diff_id] if top else [])
    return {
        "created": base.created,
        "author": "armoredgate.volt tests",
        **base.platform,
        "config": spec.config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def build_images(workdir: Path | str, base: BaseLayer | None = None) -> tuple[Path, dict[str, AppImage]]:
    """Write the four images into an OCI layout ``workdir``/layout (ref names = keys).
    -> (layout path, {key: AppImage})."""
    base = base or base_layer()
    layout = Path(workdir) / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    try:
        os.link(base.path, blobs / base.digest.split(":", 1)[1])
    except OSError:
        shutil.copyfile(base.path, blobs / base.digest.split(":", 1)[1])

    def blob(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    images: dict[str, AppImage] = {}
    refs = []
    for key, spec in app_specs(base).items():
        top = oci_images.make_layer(spec.entries, compresslevel=9) if spec.entries else None
        config = image_config(base, spec, top)
        config_raw = _canonical(config)
        layer_descs = [base.descriptor()]
        if top is not None:
            layer_descs.append({"mediaType": MT_OCI_LAYER_GZIP, "digest": blob(top.blob), "size": top.size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": blob(config_raw), "size": len(config_raw)},
            "layers": layer_descs,
            "annotations": {"org.opencontainers.image.title": f"volt-test-{key}"},
        }
        raw = _canonical(manifest)
        digest = blob(raw)
        refs.append(
            {
                "mediaType": MT_OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "annotations": {"org.opencontainers.image.ref.name": key},
            }
        )
        images[key] = AppImage(
            key,
            REPOS[key],
            TAG,
            config,
            _sha(config_raw),
            manifest,
            raw,
            digest,
            tuple(d["digest"] for d in layer_descs),
            tuple(config["rootfs"]["diff_ids"]),
        )
    (layout / "index.json").write_bytes(
        _canonical({"schemaVersion": 2, "mediaType": oci_images.MT_OCI_INDEX, "manifests": refs})
    )
    return layout, images


@dataclasses.dataclass(frozen=True)
class AppRegistry:
    """The images as pushed to a registry."""

    registry: oci_images.Registry
    images: dict[str, AppImage]
    base: BaseLayer

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def port(self) -> int:
        return int(self.registry.host.rsplit(":", 1)[1])

    @property
    def refs(self) -> dict[str, str]:
        return {key: image.reference for key, image in self.images.items()}

    @property
    def configs(self) -> dict[str, dict]:
        """key -> the whole image config document pushed."""
        return {key: image.config for key, image in self.images.items()}

    def pull_args(self, key: str, **extra: Any) -> dict:
        """volt_image's arguments to pull image ``key`` (plain HTTP)."""
        return {"reference": self.images[key].reference, "validate_certs": self.registry.tls, **extra}


def push_images(layout: Path, images: Mapping[str, AppImage], registry: oci_images.Registry) -> dict[str, AppImage]:
    """skopeo copy each image to ``registry`` byte for byte; checks the registry serves our manifest."""
    ensure_packages({"skopeo": "skopeo"})
    pushed = {}
    for key, image in images.items():
        cmd = ["skopeo"] + (["--policy", registry.policy] if registry.policy else [])
        cmd += ["copy", "--quiet", "--retry-times=2", "--preserve-digests", *registry.skopeo_args("dest")]
        cmd += [f"oci:{layout}:{key}", f"docker://{registry.ref(image.repo, image.tag)}"]
        _run(cmd)
        oci_images.describe(registry, image.repo, image.tag, expect_digest=image.digest)
        pushed[key] = dataclasses.replace(image, reference=registry.ref(image.repo, image.tag))
    return pushed


def build_and_push(registry: oci_images.Registry, workdir: Path | str) -> AppRegistry:
    base = base_layer()
    layout, images = build_images(workdir, base)
    return AppRegistry(registry, push_images(layout, images, registry), base)


# ----------------------------------------------------------------- reaching a fleet host


class ReverseTunnel:
    """``ssh -N -R 127.0.0.1:PORT:127.0.0.1:PORT host``: the host reaches this machine's
    127.0.0.1:PORT at its own 127.0.0.1:PORT (loopback at both ends), while it runs."""

    def __init__(self, ssh_config: str, host: str, port: int, *, expect_header: str | None = None) -> None:
        self.ssh_config = ssh_config
        self.host = host
        self.port = port
        self.expect_header = expect_header  # e.g. "x-volt-registry: http-<marker>" (lower case)
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile("w+")

    def _ssh(self) -> list[str]:
        return ["ssh", "-F", self.ssh_config, "-o", "ControlMaster=no", "-o", "ControlPath=none"]

    def start(self, timeout: float = 30.0) -> ReverseTunnel:
        forward = f"127.0.0.1:{self.port}:127.0.0.1:{self.port}"
        cmd = [*self._ssh(), "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15"]
        cmd += ["-R", forward, self.host]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ssh -R {forward} {self.host} exited ({self.proc.returncode}): {self.stderr()}")
            ok, last = self.probe()
            if ok:
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.host} does not reach 127.0.0.1:{self.port} through the tunnel: {last}")

    def probe(self) -> tuple[bool, str]:
        """GET http://127.0.0.1:PORT/v2/ on the host: (200 [and the expected header], what came back)."""
        url = f"http://127.0.0.1:{self.port}/v2/"
        script = f"curl -sS -o /dev/null -D - --max-time 5 {url}"
        result = subprocess.run(
            [*self._ssh(), self.host, script], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        head = result.stdout.replace("\r", "")
        ok = result.returncode == 0 and head.startswith("HTTP/") and head.split()[1] == "200"
        if ok and self.expect_header:
            ok = self.expect_header in head.lower()
        return ok, (head + result.stderr).strip()

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> ReverseTunnel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------- CLI (manual use)


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("cmd", choices=["base", "build", "push"])
    ap.add_argument("--workdir", help="where build/push write the OCI layout (default: a temporary directory)")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    base = base_layer()
    print(json.dumps(dataclasses.asdict(base), indent=2, default=str))
    print(f"base layer ready in {time.monotonic() - t0:.1f}s")
    if a.cmd == "base":
        return 0
    with tempfile.TemporaryDirectory(prefix="volt-app-images-") as tmp:
        t0 = time.monotonic()
        layout, images = build_images(a.workdir or tmp, base)
        print(f"built in {time.monotonic() - t0:.2f}s: {layout}")
        if a.cmd == "push":
            t0 = time.monotonic()
            images = push_images(layout, images, oci_images.registries()["http"])
            print(f"pushed in {time.monotonic() - t0:.1f}s")
        for key, image in images.items():
            print(f"  {key:6} {image.reference or image.repo + ':' + image.tag}  {image.digest}  layers {image.layers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
