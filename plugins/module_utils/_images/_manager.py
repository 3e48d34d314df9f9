# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""volt_image's logic: work out the image's identity, compare with the store, build if needed."""

from __future__ import annotations

import os
import sys
import tarfile

from ansible_collections.armoredgate.volt.plugins.module_utils import _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._layers import LayerApplier
from ansible_collections.armoredgate.volt.plugins.module_utils._images._store import (
    ImageStore,
    file_digest,
    parse_checksum,
)
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import absolute_path, image_dir_name

SOURCES = ("directory", "tarball", "oci", "debootstrap")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_GZIP_LAYERS = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
_PLAIN_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")
_ZSTD_LAYERS = ("application/vnd.oci.image.layer.v1.tar+zstd",)
_CHUNK = 1024 * 1024


def infer_source(params: dict) -> str:
    if params.get("source"):
        return params["source"]
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

    # -- identity ------------------------------------------------------------------------------
    def _wanted(self, source: str) -> dict:
        """What the stored image must match (source and digest or path) for nothing to change."""
        params = self.params
        if source == "debootstrap":
            suite = params.get("suite") or "bookworm"
            if not suite.replace("-", "").isalnum():
                raise VoltError(f"suite {suite!r} is not a distribution code name such as bookworm")
            return {
                "source": "debootstrap",
                "suite": suite,
                "mirror": params.get("mirror") or DEBIAN_MIRROR,
                "variant": params.get("variant") or "minbase",
            }
        if source == "directory":
            path = absolute_path(params.get("path"), "path")
            if not os.path.isdir(path):
                raise VoltError(f"path {path} is not a directory", path=path)
            return {"source": "directory", "path": path}
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

    @staticmethod
    def _matches(current: dict | None, wanted: dict) -> bool:
        if current is None:
            return False
        if wanted.get("digest") is None and wanted["source"] == "tarball":
            return current.get("url") == wanted.get("url")  # unpinned URL: fetched once
        return all(current.get(key) == value for key, value in wanted.items())

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> dict:
        name = self.params["name"]
        image_dir_name(name)
        current = self.store.record(name)
        if self.params["state"] == "absent":
            actions = ["remove"] if current else []
            if current:
                users = self.store.containers_using(name)
                if users and not self.params["force"]:
                    raise VoltError(
                        f"image {name} is used by containers {', '.join(users)}; remove them first or set force: true"
                    )
            if actions and not self.module.check_mode:
                with self.store.lock():
                    self.store.remove(name)
            return {"changed": bool(actions), "actions": actions, "image": {}}
        source = infer_source(self.params)
        if source not in SOURCES:
            raise VoltError(f"source {source!r} is not supported yet (supported: {', '.join(SOURCES)})")
        if source == "oci":
            return self._run_oci(name, current)
        wanted = self._wanted(source)
        build_action = {"directory": "copy", "debootstrap": "debootstrap"}.get(source, "extract")
        up_to_date = self._matches(current, wanted) and not self.params["force"]
        actions = [] if up_to_date else ["download" if wanted.get("url") else build_action]
        if wanted.get("url") and actions:
            actions.append("extract")
        if actions and not self.module.check_mode:
            with self.store.lock():
                wanted = self._build(name, wanted)
        return {"changed": bool(actions), "actions": actions, "image": self._result(name)}

    # -- OCI ---------------------------------------------------------------------------------
    def _registry(self, reference):
        from ansible_collections.armoredgate.volt.plugins.module_utils._images._oci import Registry  # noqa: PLC0415

        params = self.params
        return Registry(
            reference,
            username=params.get("username"),
            password=params.get("password"),
            validate_certs=params["validate_certs"],
            ca_path=params.get("ca_path"),
        )

    def _run_oci(self, name: str, current: dict | None) -> dict:
        from ansible_collections.armoredgate.volt.plugins.module_utils._images import _oci  # noqa: PLC0415

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
            if self.params["validate_certs"] or registry.base.startswith("http:"):
                raise
            registry.base = "http" + registry.base[len("https") :]  # an insecure registry speaks plain HTTP
            _top, _media, top_digest = registry.manifest(reference.digest or reference.tag)
        if same_request and current.get("top_digest") == top_digest and not self.params["force"]:
            return {"changed": False, "actions": [], "image": self._result(name), "requests": registry.requests}
        actions = ["pull"]
        if self.module.check_mode:
            return {"changed": True, "actions": actions, "image": self._result(name), "requests": registry.requests}
        manifest, digest = registry.resolve(wanted_platform)
        for descriptor in manifest.get("layers", []):
            self._check_layer(descriptor)  # refuse unreadable layers before downloading anything
        with self.store.lock():
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
                },
            )
        return {
            "changed": True,
            "actions": actions,
            "image": self._result(name),
            "layers": layers,
            "requests": registry.requests,
        }

    def _build_oci(self, name: str, registry, manifest: dict, entry: dict) -> list[dict]:
        import time  # noqa: PLC0415

        timings = []
        staging = self.store.staging(name)
        fetcher = _LayerFetcher(self.store, registry, manifest.get("layers", []))
        try:
            with fetcher:
                for descriptor, blob, cached, download_seconds in fetcher:
                    begin = time.monotonic()
                    self._apply_layer(blob, descriptor, staging)
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
            from compression import zstd  # noqa: PLC0415
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

    def _apply_layer(self, blob: str, descriptor: dict, root: str) -> None:
        self._check_layer(descriptor)
        media_type, opened, decompressed = descriptor["mediaType"], None, None
        try:
            if media_type in _GZIP_LAYERS:
                archive = tarfile.open(blob, mode="r|gz")
            elif media_type in _PLAIN_LAYERS:
                archive = tarfile.open(blob, mode="r|")
            else:
                decoder = self._zstd()
                if isinstance(decoder, str):  # tarfile cannot stream through a pipe we own: unpack to a file
                    fd, decompressed = self.store.new_blob()
                    os.close(fd)
                    self.runner.run([decoder, "-d", "-q", "-f", "-o", decompressed, "--", blob])
                    archive = tarfile.open(decompressed, mode="r|")
                else:
                    opened = decoder.open(blob, "rb")
                    archive = tarfile.open(fileobj=opened, mode="r|")
            with archive:
                LayerApplier(root).apply(archive, descriptor["digest"])
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise VoltError(f"cannot unpack layer {descriptor['digest']}: {exc}") from None
        finally:
            if opened is not None:
                opened.close()
            if decompressed and os.path.exists(decompressed):
                os.unlink(decompressed)

    def _result(self, name: str) -> dict:
        entry = self.store.record(name)
        if entry is None:
            return {}
        tree = self.store.tree(name)
        return dict(entry, name=name, path=tree, os=_rootfs.os_release(tree))

    # -- build ---------------------------------------------------------------------------------
    def _build(self, name: str, wanted: dict) -> dict:
        staging = self.store.staging(name)
        downloaded = ""
        try:
            if wanted["source"] == "directory":
                _rootfs.clone_tree(self.runner, wanted["path"], staging)
            elif wanted["source"] == "debootstrap":
                self._debootstrap(wanted, staging)
            else:
                tarball = downloaded = self._download(wanted) if wanted.get("url") else wanted["path"]
                if wanted.get("url") and wanted.get("digest") is None:
                    wanted = dict(wanted, digest=file_digest(tarball))
                self._extract(tarball, staging, wanted.get("digest") or "tarball")
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
        self.runner.run(
            [
                program,
                f"--variant={wanted['variant']}",
                f"--cache-dir={cache}",
                wanted["suite"],
                staging,
                wanted["mirror"],
            ]
        )

    def _extract(self, tarball: str, root: str, label: str) -> None:
        applier = LayerApplier(root)
        try:
            with tarfile.open(tarball, mode="r|*") as archive:
                applier.apply(archive, label)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise VoltError(f"cannot unpack {tarball}: {exc}", path=tarball) from None
        if applier.skipped:
            self.module.warn(
                f"skipped {len(applier.skipped)} device nodes (not root): {', '.join(applier.skipped[:5])}"
            )

    def _download(self, wanted: dict) -> str:
        """Stream the URL into the blob store while hashing; keep it only if the digest matches."""
        import hashlib  # noqa: PLC0415 - only downloads need these

        from ansible.module_utils.urls import open_url  # noqa: PLC0415

        digest = wanted.get("digest")
        if digest and os.path.exists(self.store.blob(digest)):
            return self.store.blob(digest)  # already downloaded (e.g. by an earlier, failed run)
        fd, temporary = self.store.new_blob()
        sha, received, expected = hashlib.sha256(), 0, None
        try:
            with os.fdopen(fd, "wb") as target:
                response = open_url(wanted["url"], validate_certs=self.params["validate_certs"], timeout=60)
                expected = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    sha.update(chunk)
                    target.write(chunk)
                    received += len(chunk)
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


class _LayerFetcher:
    """Downloads the layers missing from the store, in order, in a background thread, so layer
    n+1 arrives while layer n is unpacked (downloading and inflating release the GIL).

    Iterating yields (descriptor, blob path, cached, download seconds) in layer order and raises
    the downloader's error at the layer that failed. Leaving the `with` block stops the
    downloader after the blob in progress (whose temporary file it removes) and waits for it.
    """

    def __init__(self, store, registry, layers: list) -> None:
        import queue  # noqa: PLC0415
        import threading  # noqa: PLC0415

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
        import time  # noqa: PLC0415

        for descriptor in self.layers:
            if self._stop.is_set():
                return
            begin = time.monotonic()
            try:
                blob, cached = self._ensure(descriptor)
            except BaseException as exc:  # handed to the main thread, which raises it
                self._results.put((descriptor, None, False, 0.0, exc))
                return
            self._results.put((descriptor, blob, cached, time.monotonic() - begin, None))

    def _ensure(self, descriptor: dict) -> tuple[str, bool]:
        blob = self.store.blob(descriptor["digest"])
        if os.path.exists(blob):
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
