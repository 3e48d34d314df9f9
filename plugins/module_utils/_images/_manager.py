# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""volt_image's logic: work out the image's identity, compare with the store, build if needed.

What the user points at (path, a local URL) is only ever read. Every tar stream is decompressed
by a decoder that checks the compressed stream to its end (gzip and xz CRCs), counted against
max_size, and must end with the tar end-of-archive blocks followed by nothing but zeros.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_store import (
    ImageStore,
    file_digest,
    parse_checksum,
)
from ansible_collections.armoredgate.volt.plugins.module_utils._images._layers import LayerApplier, LayerTooLarge
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import absolute_path, image_dir_name

SOURCES = ("directory", "tarball", "oci", "debootstrap", "container")
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# What the diff shows of an image: where it came from and what it is.
_DIFF_KEYS = (
    "source",
    "digest",
    "path",
    "url",
    "reference",
    "platform",
    "suite",
    "mirror",
    "variant",
    "include",
    "container",
    "tree",
)
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_GZIP_LAYERS = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
_PLAIN_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")
_ZSTD_LAYERS = ("application/vnd.oci.image.layer.v1.tar+zstd",)
_CHUNK = 1024 * 1024
DEFAULT_MAX_SIZE = "32G"
_SIZE_RE = re.compile(r"([0-9]+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# Magic numbers of the compressions a root filesystem tarball may use.
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))


def parse_size(value: object) -> int:
    """max_size as bytes: a whole number of bytes, or one with K, M, G or T (powers of 1024)."""
    if value is None:
        value = DEFAULT_MAX_SIZE
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise VoltError(f"max_size {value!r} is not a size such as 20G, 512M or a number of bytes")
        number = int(match[1]) * _UNITS[match[2].upper()]
    if number <= 0:
        raise VoltError(f"max_size {value!r} must be more than 0 bytes")
    return number


class _Budget:
    """The bytes one image may decompress to (max_size), shared by all its layers: a
    decompression bomb stops at the limit instead of at a full disk."""

    def __init__(self, limit: int, text: object) -> None:
        self.limit, self.text, self.used = limit, text, 0

    def take(self, count: int, what: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise VoltError(
                f"{what} decompresses to more than {self.limit} bytes: the image exceeds max_size ({self.text}); "
                "raise max_size if the image really is that big",
                max_size=self.limit,
            )


class _TarStream:
    """A decompressed tar stream as tarfile reads it: counted against the budget, and watched for
    where its last non-zero byte was, to tell a complete archive from a cut or padded one."""

    def __init__(self, source, budget: _Budget, what: str) -> None:
        self.source, self.budget, self.what = source, budget, what
        self.position = 0  # bytes handed out so far
        self.data_end = 0  # offset just past the last non-zero byte

    def read(self, size: int = _CHUNK) -> bytes:
        chunk = self.source.read(size if size is not None and size >= 0 else _CHUNK)
        if chunk:
            self.budget.take(len(chunk), self.what)
            kept = len(chunk.rstrip(b"\0"))
            if kept:
                self.data_end = self.position + kept
            self.position += len(chunk)
        return chunk

    def finish(self, archive: tarfile.TarFile) -> None:
        """Once tarfile has stopped: read to the end of the stream (decoders check their CRC only
        there) and make sure two zero blocks ended the archive and only zeros follow them."""
        while self.read(_CHUNK):
            pass
        end = archive.offset  # where tarfile found no further header
        if self.data_end > end:
            raise VoltError(
                f"{self.what}: the tar archive stops at byte {end} but the stream goes on with data "
                "(a damaged entry header, a cut header, or data after the end-of-archive marker)"
            )
        if self.position < end + 2 * tarfile.BLOCKSIZE:
            raise VoltError(
                f"{self.what} is truncated: the tar archive ends at byte {self.position} without its "
                "end-of-archive marker (two zero blocks)"
            )


def tree_signature(path: str) -> str:
    """A fingerprint of a tree's names, types, modes, sizes and modification times: a tree that
    changed (a file edited, added or removed) gets another one. Content is not read, so a copy
    of a big tree is only made again when something in it changed."""
    import hashlib

    sha = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            relative = os.path.relpath(full, path)
            sha.update(
                f"{relative}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\n".encode("utf-8", "surrogateescape")
            )
    return "sha256:" + sha.hexdigest()


def infer_source(params: dict) -> str:
    if params.get("source"):
        return params["source"]
    if params.get("container"):
        return "container"
    if params.get("reference"):
        return "oci"
    if params.get("suite"):
        return "debootstrap"
    if params.get("url"):
        return "tarball"
    path = params.get("path")
    if path:
        return "directory" if os.path.isdir(path) else "tarball"
    raise VoltError("cannot tell where the image comes from: give path (a directory or a tarball) or url")


def tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class ImageManager:
    def __init__(self, module, runner, data_dir: str) -> None:
        self.module = module
        self.runner = runner
        self.params = module.params
        self.store = ImageStore(data_dir)
        self.max_size = parse_size(self.params.get("max_size"))

    def _containers_using(self, name: str) -> list[str]:
        """The containers of this data dir, on either backend, created from the image."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import every_backend

        return sorted(
            container
            for backend in every_backend(self.runner, self.store.data_dir)
            for container, options in backend.stored_configs().items()
            if options.get("image") == name
        )

    def _budget(self) -> _Budget:
        return _Budget(self.max_size, self.params.get("max_size") or DEFAULT_MAX_SIZE)

    def _applier(self, root: str) -> LayerApplier:
        return LayerApplier(root, max_bytes=self.max_size)

    # -- identity ------------------------------------------------------------------------------
    def _wanted(self, source: str) -> dict:
        """What the stored image must match (source and digest or path) for nothing to change."""
        params = self.params
        if source == "debootstrap":
            suite = params.get("suite") or "bookworm"
            if not suite.replace("-", "").isalnum():
                raise VoltError(f"suite {suite!r} is not a distribution code name such as bookworm")
            include = sorted(set(params.get("include") or []))
            for package in include:
                if not isinstance(package, str) or not _PACKAGE_RE.fullmatch(package):
                    raise VoltError(f"include: {package!r} is not a Debian package name")
            wanted = {
                "source": "debootstrap",
                "suite": suite,
                "mirror": params.get("mirror") or DEBIAN_MIRROR,
                "variant": params.get("variant") or "minbase",
            }
            return dict(wanted, include=include) if include else wanted
        if source == "directory":
            path = absolute_path(params.get("path"), "path")
            if not os.path.isdir(path):
                raise VoltError(f"path {path} is not a directory", path=path)
            return {"source": "directory", "path": path, "tree": tree_signature(path)}
        if source == "container":
            return self._container_source()
        if params.get("url"):
            if params.get("checksum"):
                return {"source": "tarball", "url": params["url"], "digest": parse_checksum(params["checksum"])}
            if params["validate_checksum"]:
                raise VoltError(f"url {params['url']} needs a checksum (sha256:<hex>), or validate_checksum: false")
            return {"source": "tarball", "url": params["url"], "digest": None}
        path = absolute_path(params.get("path"), "path")
        if not os.path.isfile(path):
            raise VoltError(f"tarball {path} is not a file", path=path)
        digest = file_digest(path)
        if params.get("checksum") and parse_checksum(params["checksum"]) != digest:
            raise VoltError(f"tarball {path} has digest {digest}, not the expected {params['checksum']}", path=path)
        return {"source": "tarball", "path": path, "digest": digest}

    def _container_source(self) -> dict:
        """The current tree of a container of this data dir (either backend) as the source."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import every_backend

        name = self.params.get("container")
        if not name:
            raise VoltError("source: container needs container (the name of the container to copy)")
        for backend in every_backend(self.runner, self.store.data_dir):
            record = backend.inspect(name)
            if record is not None:
                return {
                    "source": "container",
                    "container": name,
                    "path": record.rootfs,
                    "tree": tree_signature(record.rootfs),
                }
        raise VoltError(f"container {name} does not exist in {self.store.data_dir} (on either backend)")

    @staticmethod
    def _matches(current: dict | None, wanted: dict) -> bool:
        if current is None:
            return False
        if wanted.get("digest") is None and wanted["source"] == "tarball":
            return current.get("url") == wanted.get("url")  # unpinned URL: fetched once
        if (current.get("include") or []) != (wanted.get("include") or []):
            return False  # extra packages, left out when there are none, on either side
        return all(current.get(key) == value for key, value in wanted.items())

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> dict:
        name = self.params["name"]
        image_dir_name(name)
        current = self.store.record(name)
        if self.params["state"] == "absent":
            actions = ["remove"] if current else []
            if current:
                users = self._containers_using(name)
                if users and not self.params["force"]:
                    raise VoltError(
                        f"image {name} is used by containers {', '.join(users)}; remove them first or set force: true"
                    )
            if actions and not self.module.check_mode:
                with self.store.lock():
                    self.store.remove(name)
            return {"changed": bool(actions), "actions": actions, "image": {}, "diff": image_diff(current, None)}
        source = infer_source(self.params)
        if source not in SOURCES:
            raise VoltError(f"source {source!r} is not supported yet (supported: {', '.join(SOURCES)})")
        if source == "oci":
            result = self._run_oci(name, current)
            predicted = self.module.check_mode and result["changed"]
            after = {"source": "oci", "reference": self.params["reference"]} if predicted else self.store.record(name)
            return dict(result, diff=image_diff(current, after))
        wanted = self._wanted(source)
        build_action = {"directory": "copy", "container": "copy", "debootstrap": "debootstrap"}.get(source, "extract")
        up_to_date = self._matches(current, wanted) and not self.params["force"]
        actions = [] if up_to_date else ["download" if wanted.get("url") else build_action]
        if wanted.get("url") and actions:
            actions.append("extract")
        if actions and not self.module.check_mode:
            with self.store.lock():
                wanted = self._build(name, wanted)
        result = {"changed": bool(actions), "actions": actions, "image": self._result(name)}
        return dict(result, diff=image_diff(current, wanted if actions else current))

    # -- OCI ---------------------------------------------------------------------------------
    def _registry(self, reference):
        from ansible_collections.armoredgate.volt.plugins.module_utils._images._oci import Registry

        params = self.params
        return Registry(
            reference,
            username=params.get("username"),
            password=params.get("password"),
            validate_certs=params["validate_certs"],
            ca_path=params.get("ca_path"),
        )

    def _run_oci(self, name: str, current: dict | None) -> dict:
        from ansible_collections.armoredgate.volt.plugins.module_utils._images import _oci

        reference = _oci.Reference(self.params["reference"])
        wanted_platform = _oci.parse_platform(self.params.get("platform"))
        platform_text = "/".join(filter(None, wanted_platform))
        same_request = (
            bool(current) and current.get("reference") == str(reference) and current.get("platform") == platform_text
        )
        if same_request and self.params["pull"] == "missing" and not self.params["force"]:
            return {"changed": False, "actions": [], "image": self._result(name)}
        registry = self._registry(reference)
        try:
            _top, _media, top_digest = registry.manifest(reference.digest or reference.tag)
        except VoltError:
            if self.params["validate_certs"] or registry.plain_http:
                raise
            registry.use_plain_http()
            _top, _media, top_digest = registry.manifest(reference.digest or reference.tag)
        # An image pulled before configs were kept is pulled again (its layers are cached).
        same_request = same_request and "config" in current
        if same_request and current.get("top_digest") == top_digest and not self.params["force"]:
            return {"changed": False, "actions": [], "image": self._result(name), "requests": registry.requests}
        actions = ["pull"]
        if self.module.check_mode:
            return {"changed": True, "actions": actions, "image": self._result(name), "requests": registry.requests}
        manifest, digest = registry.resolve(wanted_platform)
        for descriptor in manifest["layers"]:
            self._check_layer(descriptor)  # refuse unreadable layers before downloading anything
        declared = sum(descriptor["size"] for descriptor in manifest["layers"])
        if declared > self.max_size:
            raise VoltError(
                f"{reference}: its layers are {declared} bytes compressed: the image exceeds max_size "
                f"({self.params.get('max_size') or DEFAULT_MAX_SIZE} = {self.max_size} bytes)",
                max_size=self.max_size,
            )
        with self.store.lock():
            config = self._image_config(registry, manifest["config"], str(reference))
            layers = self._build_oci(
                name,
                registry,
                manifest,
                {
                    "source": "oci",
                    "reference": str(reference),
                    "platform": platform_text,
                    "digest": digest,
                    "top_digest": top_digest,
                    "config": config,
                },
            )
        return {
            "changed": True,
            "actions": actions,
            "image": self._result(name),
            "layers": layers,
            "requests": registry.requests,
        }

    def _image_config(self, registry, descriptor: dict, reference: str) -> dict:
        """The image's config (Entrypoint, Cmd, Env, ...), fetched into the blob store like a
        layer (its size and digest checked on the way) and made canonical."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._images import _image_config

        if descriptor.get("size", 0) > _image_config.CONFIG_MAX:
            raise VoltError(f"{reference}: the image config is larger than {_image_config.CONFIG_MAX} bytes")
        blob, _cached = _LayerFetcher(self.store, registry, []).ensure(descriptor)
        with open(blob, "rb") as handle:
            return _image_config.parse(handle.read(_image_config.CONFIG_MAX + 1), reference)

    def _build_oci(self, name: str, registry, manifest: dict, entry: dict) -> list[dict]:
        import time

        timings = []
        staging = self.store.staging(name)
        fetcher = _LayerFetcher(self.store, registry, manifest["layers"])
        applier, budget = self._applier(staging), self._budget()  # one of each: max_size is per image
        try:
            with fetcher:
                for descriptor, blob, cached, download_seconds in fetcher:
                    begin = time.monotonic()
                    self._apply_layer(blob, descriptor, applier, budget)
                    timings.append(
                        {
                            "digest": descriptor["digest"],
                            "size": descriptor.get("size"),
                            "cached": cached,
                            "download_seconds": round(download_seconds, 3),
                            "unpack_seconds": round(time.monotonic() - begin, 3),
                        }
                    )
            self.store.install(name, staging, dict(entry, size=tree_size(staging)))
        except BaseException:
            _rootfs.remove_tree(staging)
            raise
        return timings

    def _zstd(self):
        """The zstd decoder at hand: Python's (3.14+), else the zstd program, else None."""
        try:
            from compression import zstd
        except ImportError:
            return self.runner.which("zstd")
        return zstd

    def _check_layer(self, descriptor: dict) -> None:
        """VoltError naming the layer when it cannot be unpacked here."""
        media_type = descriptor.get("mediaType", "")
        if media_type in _ZSTD_LAYERS and self._zstd() is None:
            raise VoltError(
                f"layer {descriptor.get('digest')} is zstd-compressed ({media_type}): the managed host needs "
                f"Python 3.14 or later (it has {sys.version.split()[0]}) or the zstd program",
                layer=descriptor.get("digest"),
            )
        if media_type not in _GZIP_LAYERS + _PLAIN_LAYERS + _ZSTD_LAYERS:
            raise VoltError(f"layer {descriptor.get('digest')} has unsupported media type {media_type!r}")

    def _apply_layer(self, blob: str, descriptor: dict, applier: LayerApplier, budget: _Budget) -> None:
        self._check_layer(descriptor)
        media_type, digest = descriptor["mediaType"], descriptor["digest"]
        decompressed = None
        try:
            what = f"layer {digest}"
            if media_type in _GZIP_LAYERS:
                self._unpack(blob, "gzip", applier, budget, what=what, label=digest)
            elif media_type in _PLAIN_LAYERS:
                self._unpack(blob, "", applier, budget, what=what, label=digest)
            else:
                decoder = self._zstd()
                if isinstance(decoder, str):  # tarfile cannot stream through a pipe we own: unpack to a file
                    decompressed = self._zstd_program(decoder, blob, digest, budget)
                    counted = _Budget(sys.maxsize, budget.text)  # the program's output was counted already
                    self._unpack(decompressed, "", applier, counted, what=what, label=digest)
                else:
                    self._unpack(blob, decoder, applier, budget, what=what, label=digest)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise VoltError(f"cannot unpack layer {digest}: {exc}") from None
        finally:
            if decompressed and os.path.exists(decompressed):
                os.unlink(decompressed)

    def _zstd_program(self, program: str, blob: str, digest: str, budget: _Budget) -> str:
        """Decompress blob with the zstd program into a store temporary file, within the budget:
        prlimit (where there is one) stops zstd at the limit instead of at a full disk."""
        fd, decompressed = self.store.new_blob()
        os.close(fd)
        argv = [program, "-d", "-q", "-f", "-o", decompressed, "--", blob]
        prlimit = self.runner.which("prlimit")
        if prlimit:
            argv = [prlimit, f"--fsize={budget.limit - budget.used + 1}", "--", *argv]
        rc, _out, err = self.runner.run(argv, check=False)
        size = os.path.getsize(decompressed)
        budget.take(size, f"layer {digest}")
        if rc != 0:
            raise VoltError(f"cannot unpack layer {digest}: zstd failed with exit code {rc}: {err.strip()}")
        return decompressed

    def _result(self, name: str) -> dict:
        entry = self.store.record(name)
        if entry is None:
            return {}
        tree = self.store.tree(name)
        return dict(entry, name=name, path=tree, os=_rootfs.os_release(tree))

    # -- build ---------------------------------------------------------------------------------
    def _build(self, name: str, wanted: dict) -> dict:
        staging = self.store.staging(name)
        downloaded = ""  # only a blob this store wrote; the user's own file is never removed
        try:
            if wanted["source"] in ("directory", "container"):
                _rootfs.clone_tree(self.runner, wanted["path"], staging)
            elif wanted["source"] == "debootstrap":
                self._debootstrap(wanted, staging)
            elif wanted.get("url"):
                downloaded = self._download(wanted)
                if wanted.get("digest") is None:
                    wanted = dict(wanted, digest=file_digest(downloaded))
                self._extract(downloaded, wanted["url"], staging, wanted["digest"])
            else:
                self._extract(wanted["path"], wanted["path"], staging, wanted["digest"])
            entry = dict(wanted, size=tree_size(staging))
            self.store.install(name, staging, entry)
            return entry
        except BaseException:
            _rootfs.remove_tree(staging)
            if downloaded and os.path.exists(downloaded):
                os.unlink(downloaded)  # a blob that did not make an image is not kept
            raise

    def _debootstrap(self, wanted: dict, staging: str) -> None:
        """debootstrap into the staging tree; downloaded packages stay in the store's cache, so
        building the same suite again needs no download."""
        program = self.runner.which("debootstrap", ["/usr/sbin", "/sbin"])
        if program is None:
            raise VoltError("debootstrap is not installed (apt-get install debootstrap)")
        if os.geteuid() != 0:
            raise VoltError("debootstrap needs root (use become: true)")
        cache = os.path.join(self.store.data_dir, "cache", "debootstrap", wanted["suite"])
        os.makedirs(cache, exist_ok=True)
        include = [f"--include={','.join(wanted['include'])}"] if wanted.get("include") else []
        self.runner.run(
            [
                program,
                f"--variant={wanted['variant']}",
                f"--cache-dir={cache}",
                *include,
                wanted["suite"],
                staging,
                wanted["mirror"],
            ]
        )

    def _extract(self, tarball: str, shown: str, root: str, label: str) -> None:
        """Unpack a root filesystem tarball (shown: how the user named it, for errors)."""
        with open(tarball, "rb") as handle:
            head = handle.read(8)
        compression = next((kind for magic, kind in _MAGIC if head.startswith(magic)), "")
        applier = self._applier(root)
        try:
            self._unpack(tarball, compression, applier, self._budget(), what=shown, label=label)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise VoltError(f"cannot unpack {shown}: {exc}", path=shown) from None
        except VoltError as exc:
            message = exc.msg if shown in exc.msg else f"cannot unpack {shown}: {exc.msg}"
            raise VoltError(message, **dict(exc.details, path=shown)) from None
        if applier.skipped:
            self.module.warn(f"skipped {len(applier.skipped)} device nodes: {', '.join(applier.skipped[:5])}")

    @staticmethod
    def _unpack(path: str, compression, applier: LayerApplier, budget: _Budget, *, what: str, label: str) -> None:
        """Apply the tar stream in the file at path (compression: '', 'gzip', 'xz', 'bzip2' or a
        zstd module) and check the whole stream: decoder CRCs, end-of-archive, nothing after it."""
        import bz2
        import gzip
        import lzma

        if not compression:
            source = open(path, "rb")
        elif isinstance(compression, str):
            source = {"gzip": gzip.open, "xz": lzma.open, "bzip2": bz2.open}[compression](path, "rb")
        else:
            source = compression.open(path, "rb")
        with source:
            stream = _TarStream(source, budget, what)
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as archive:
                try:
                    applier.apply(archive, label)
                except LayerTooLarge as exc:
                    # The applier's own cap is max_size: say which option to raise.
                    message = f"{exc.msg}: the image exceeds max_size ({budget.text})"
                    raise VoltError(message, **dict(exc.details, max_size=applier.max_bytes)) from None
                stream.finish(archive)

    def _download(self, wanted: dict) -> str:
        """Stream the URL into the blob store while hashing; keep it only if the digest matches."""
        import hashlib

        from ansible.module_utils.urls import open_url

        digest = wanted.get("digest")
        cached = self.store.verified_blob(digest) if digest else None
        if cached:
            return cached  # already downloaded (e.g. by an earlier, failed run), and still intact
        fd, temporary = self.store.new_blob()
        sha, received, expected = hashlib.sha256(), 0, None
        try:
            with os.fdopen(fd, "wb") as target:
                response = open_url(wanted["url"], validate_certs=self.params["validate_certs"], timeout=60)
                expected = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    received += len(chunk)
                    if received > self.max_size:
                        raise VoltError(
                            f"{wanted['url']} is bigger than max_size ({self.max_size} bytes): the image "
                            "exceeds max_size",
                            url=wanted["url"],
                        )
                    sha.update(chunk)
                    target.write(chunk)
            if expected is not None and int(expected) != received:
                raise VoltError(f"download of {wanted['url']} is truncated: {received} of {expected} bytes")
            actual = f"sha256:{sha.hexdigest()}"
            if digest and actual != digest:
                raise VoltError(f"{wanted['url']} has digest {actual}, not the expected {digest}", url=wanted["url"])
            return self.store.keep_blob(temporary, actual)
        except VoltError:
            os.unlink(temporary)
            raise
        except Exception as exc:
            os.unlink(temporary)
            raise VoltError(f"cannot download {wanted['url']}: {exc}", url=wanted["url"]) from None


def image_diff(before: dict | None, after: dict | None) -> dict:
    """--diff of an image: its source and digest before and after (absent: state absent)."""

    def view(entry: dict | None) -> dict:
        if entry is None:
            return {"state": "absent"}
        return {"state": "present", **{key: entry[key] for key in _DIFF_KEYS if entry.get(key) is not None}}

    return {"before": view(before), "after": view(after)}


class _LayerFetcher:
    """Downloads the layers missing from the store, in order, in a background thread, so layer
    n+1 arrives while layer n is unpacked (downloading and inflating release the GIL).

    Iterating yields (descriptor, blob path, cached, download seconds) in layer order and raises
    the downloader's error at the layer that failed. Leaving the `with` block stops the
    downloader after the blob in progress (whose temporary file it removes) and waits for it.
    """

    def __init__(self, store, registry, layers: list) -> None:
        import queue
        import threading

        self.store, self.registry, self.layers = store, registry, list(layers)
        self._results: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._download_all, name="volt-layer-fetch", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self):
        for _layer in self.layers:
            descriptor, blob, cached, seconds, error = self._results.get()
            if error is not None:
                raise error
            yield descriptor, blob, cached, seconds

    def _download_all(self) -> None:
        import time

        for descriptor in self.layers:
            if self._stop.is_set():
                return
            begin = time.monotonic()
            try:
                blob, cached = self.ensure(descriptor)
            except BaseException as exc:  # handed to the main thread, which raises it
                self._results.put((descriptor, None, False, 0.0, exc))
                return
            self._results.put((descriptor, blob, cached, time.monotonic() - begin, None))

    def ensure(self, descriptor: dict) -> tuple[str, bool]:
        """(path of the verified blob in the store, whether it was there already)."""
        blob = self.store.verified_blob(descriptor["digest"])
        if blob:
            return blob, True
        fd, temporary = self.store.new_blob()
        try:
            self.registry.fetch_blob(descriptor, fd)
        except BaseException:
            os.close(fd)
            os.unlink(temporary)
            raise
        os.close(fd)
        return self.store.keep_blob(temporary, descriptor["digest"]), False
