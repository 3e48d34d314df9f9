# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A daemonless OCI registry client (distribution spec): resolve a reference to a manifest for
this platform, and fetch blobs with their sha256 verified while streaming.

Written on Ansible's own HTTP helper (ansible.module_utils.urls) so that the managed node needs
nothing beyond the standard library; no registry client library fits that constraint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
_CHUNK = 1024 * 1024
_MACHINES = {
    "x86_64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
}
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_REFERENCE_RE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    r"(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class Reference:
    """[registry/]repository[:tag][@digest], with Docker Hub's defaults as docker applies them."""

    def __init__(self, text: str) -> None:
        match = _REFERENCE_RE.fullmatch(text or "")
        if not match:
            raise VoltError(f"reference {text!r} is not [registry/]repository[:tag][@sha256:digest]")
        registry = match["registry"]
        repository = match["repository"]
        if registry and "." not in registry and ":" not in registry and registry != "localhost":
            repository, registry = f"{registry}/{repository}", None  # 'team/app' is a Hub repository
        if not _COMPONENT_RE.fullmatch(repository.split("/")[0]):
            raise VoltError(f"reference {text!r} is not [registry/]repository[:tag][@sha256:digest]")
        self.registry = registry or DOCKER_HUB
        if self.registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        self.repository = repository
        self.tag = match["tag"] or ("latest" if not match["digest"] else None)
        self.digest = match["digest"]

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        return text + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def host_platform() -> tuple[str, str, str]:
    architecture, variant = _MACHINES.get(platform.machine(), (platform.machine(), ""))
    return "linux", architecture, variant


def parse_platform(text: str | None) -> tuple[str, str, str]:
    if not text:
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise VoltError(f"platform {text!r} must look like linux/amd64 or linux/arm/v7")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


class Registry:
    def __init__(
        self,
        reference: Reference,
        *,
        username=None,
        password=None,
        validate_certs=True,
        ca_path=None,
        insecure_http=False,
    ) -> None:
        self.reference = reference
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        scheme = "http" if insecure_http else "https"
        self.base = f"{scheme}://{reference.registry}/v2/{reference.repository}"
        self._authorization: str | None = None
        self.requests = 0

    # -- HTTP ----------------------------------------------------------------------------------
    def _open(self, url: str, headers: dict | None = None, method: str = "GET"):
        from ansible.module_utils.urls import open_url  # noqa: PLC0415 - only pulls need it

        headers = dict(headers or {})
        for attempt in range(2):
            if self._authorization:
                headers["Authorization"] = self._authorization
            self.requests += 1
            try:
                return open_url(
                    url,
                    headers=headers,
                    method=method,
                    validate_certs=self.validate_certs,
                    ca_path=self.ca_path,
                    timeout=60,
                    follow_redirects="all",
                )
            except Exception as exc:  # urllib's HTTPError carries the status and headers
                status = getattr(exc, "code", None)
                if status == 401 and attempt == 0:
                    self._authenticate(exc.headers.get("WWW-Authenticate", ""))
                    continue
                if status is not None:
                    raise VoltError(f"{method} {url} answered {status}: {exc}", url=url, status=status) from None
                raise VoltError(f"{method} {url} failed: {exc}", url=url) from None
        raise VoltError(f"{url}: still unauthorized after authenticating", url=url)

    def _basic(self) -> str:
        if self.username is None:
            raise VoltError(f"{self.reference.registry} wants credentials: give username and password")
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _authenticate(self, challenge: str) -> None:
        scheme, _sep, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            self._authorization = self._basic()
            return
        if scheme.lower() != "bearer":
            raise VoltError(f"{self.reference.registry} asks for unsupported authentication {challenge!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if "realm" not in params:
            raise VoltError(f"{self.reference.registry}: bearer challenge without realm: {challenge!r}")
        from urllib.parse import urlencode  # noqa: PLC0415

        query = {key: params[key] for key in ("service", "scope") if key in params}
        query.setdefault("scope", f"repository:{self.reference.repository}:pull")
        headers = {"Authorization": self._basic()} if self.username is not None else {}
        self._authorization = None
        response = self._open_token(f"{params['realm']}?{urlencode(query)}", headers)
        token = response.get("token") or response.get("access_token")
        if not token:
            raise VoltError(f"{params['realm']} returned no token")
        self._authorization = f"Bearer {token}"

    def _open_token(self, url: str, headers: dict) -> dict:
        from ansible.module_utils.urls import open_url  # noqa: PLC0415

        self.requests += 1
        try:
            return json.loads(
                open_url(
                    url, headers=headers, validate_certs=self.validate_certs, ca_path=self.ca_path, timeout=60
                ).read()
            )
        except Exception as exc:
            raise VoltError(f"token request to {url.split('?', maxsplit=1)[0]} failed: {exc}") from None

    # -- manifests -----------------------------------------------------------------------------
    def manifest(self, reference: str) -> tuple[dict, str, str]:
        """(parsed manifest, media type, digest of the bytes received) for a tag or digest."""
        accept = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
        response = self._open(f"{self.base}/manifests/{reference}", {"Accept": accept})
        body = response.read(16 * 1024 * 1024 + 1)
        if len(body) > 16 * 1024 * 1024:
            raise VoltError(f"manifest {reference} is larger than 16 MiB")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise VoltError(f"manifest {reference} has digest {digest}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise VoltError(f"manifest {reference} is not JSON: {exc}") from None
        media_type = document.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        return document, media_type, digest

    def resolve(self, wanted_platform: tuple[str, str, str]) -> tuple[dict, str]:
        """The platform's image manifest and its digest (the image's identity)."""
        document, media_type, digest = self.manifest(self.reference.digest or self.reference.tag)
        if media_type in INDEX_TYPES or "manifests" in document:
            chosen = _choose(document.get("manifests", []), wanted_platform, str(self.reference))
            document, media_type, digest = self.manifest(chosen["digest"])
        if media_type not in MANIFEST_TYPES and "layers" not in document:
            raise VoltError(f"{self.reference} resolves to an unsupported manifest type {media_type!r}")
        return document, digest

    # -- blobs ---------------------------------------------------------------------------------
    def fetch_blob(self, descriptor: dict, target_fd: int) -> None:
        """Stream a blob into target_fd, verifying its size and sha256 on the way."""
        digest, size = descriptor.get("digest", ""), descriptor.get("size")
        if not digest.startswith("sha256:"):
            raise VoltError(f"blob digest {digest!r} is not sha256")
        response = self._open(f"{self.base}/blobs/{digest}")
        sha, received = hashlib.sha256(), 0
        with os.fdopen(os.dup(target_fd), "wb") as target:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                received += len(chunk)
                if size is not None and received > size:
                    raise VoltError(f"blob {digest} is larger than the {size} bytes its manifest says")
                sha.update(chunk)
                target.write(chunk)
        if size is not None and received != size:
            raise VoltError(f"blob {digest} has {received} bytes, not the {size} its manifest says")
        actual = "sha256:" + sha.hexdigest()
        if actual != digest:
            raise VoltError(f"blob {digest} arrived with digest {actual}: refusing it")


def _choose(manifests: list, wanted: tuple[str, str, str], reference: str) -> dict:
    os_name, architecture, variant = wanted
    candidates = [
        m
        for m in manifests
        if m.get("platform", {}).get("os") == os_name and m.get("platform", {}).get("architecture") == architecture
    ]
    exact = [m for m in candidates if (m["platform"].get("variant") or "") == variant]
    chosen = (
        exact
        or ([m for m in candidates if not m["platform"].get("variant")] if not variant else [])
        or (candidates if not variant else [])
    )
    if not chosen:
        offered = sorted(
            "/".join(filter(None, (m.get("platform", {}).get(k) for k in ("os", "architecture", "variant"))))
            for m in manifests
        )
        raise VoltError(f"{reference} has no image for {'/'.join(filter(None, wanted))} (it has: {', '.join(offered)})")
    return chosen[0]
