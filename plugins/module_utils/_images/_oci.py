# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A daemonless OCI registry client (distribution spec): resolve a reference to a manifest for
this platform, and fetch blobs with their sha256 verified while streaming.

Everything a registry sends is checked before use: documents must be JSON objects of a known
media type, descriptors mappings with a sha256 digest and a whole-number size. Redirects are
followed by hand, so credentials only ever go to the registry's own origin (registries send
blobs to CDN hosts) and HTTPS never turns into plain HTTP.

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
from urllib.parse import urljoin, urlsplit

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_store import check_digest

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
_MANIFEST_MAX = 16 * 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 10  # as many as Docker follows
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


class _Failure(Exception):
    """An HTTP error and the URL (after redirects) that answered it."""

    def __init__(self, url: str, error: Exception) -> None:
        super().__init__(str(error))
        self.url, self.error, self.status = url, error, getattr(error, "code", None)

    def volt_error(self, method: str) -> VoltError:
        if self.status is not None:
            return VoltError(
                f"{method} {self.url} answered {self.status}: {self.error}", url=self.url, status=self.status
            )
        hint = ""
        text = str(self.error).lower()
        if self.url.startswith("https:") and ("wrong version number" in text or "record layer failure" in text):
            # What TLS says when the other side speaks plain HTTP.
            hint = " (the registry seems to speak plain HTTP: validate_certs: false reaches it without TLS)"
        return VoltError(f"{method} {self.url} failed: {self.error}{hint}", url=self.url)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of url, the default port filled in: where credentials may go."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise VoltError(f"URL {url!r} has an invalid port") from None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)


def redirect_target(url: str, location: str | None, status: int) -> str:
    """The absolute URL a redirect points at; VoltError for what may not be followed."""
    if not location:
        raise VoltError(f"{url} answered {status} without a Location", url=url)
    target = urljoin(url, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise VoltError(f"{url} redirects to {target!r}: only http and https are followed", url=target)
    if urlsplit(url).scheme.lower() == "https" and scheme == "http":
        raise VoltError(
            f"{url} redirects to {target}, plain HTTP: refusing to leave HTTPS (a registry that "
            "redirects to plain HTTP can be read and changed on the way)",
            url=target,
        )
    return target


class Registry:
    def __init__(
        self,
        reference: Reference,
        *,
        username=None,
        password=None,
        validate_certs=True,
        ca_path=None,
    ) -> None:
        self.reference = reference
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.base = f"https://{reference.registry}/v2/{reference.repository}"
        self._authorization: str | None = None
        self.requests = 0

    @property
    def plain_http(self) -> bool:
        return self.base.startswith("http:")

    def use_plain_http(self) -> None:
        """Speak plain HTTP from now on: what an insecure registry (validate_certs false) may need."""
        self.base = "http" + self.base[len("https") :]

    # -- HTTP ----------------------------------------------------------------------------------
    def _follow(self, url: str, headers: dict, method: str, authorization: str | None, trusted: tuple):
        """Open url, following redirects by hand: authorization goes only to the trusted origin,
        and an https URL never leads to http. _Failure for HTTP errors and unreachable hosts."""
        from ansible.module_utils.urls import open_url

        for _hop in range(_MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorization and origin(url) == trusted:
                sent["Authorization"] = authorization
            self.requests += 1
            try:
                return open_url(
                    url,
                    headers=sent,
                    method=method,
                    validate_certs=self.validate_certs,
                    ca_path=self.ca_path,
                    timeout=60,
                    follow_redirects="none",
                )
            except Exception as exc:  # urllib's HTTPError carries the status and headers
                status = getattr(exc, "code", None)
                if status not in _REDIRECTS:
                    raise _Failure(url, exc) from None
                location = exc.headers.get("Location") if getattr(exc, "headers", None) else None
                exc.close()
                url = redirect_target(url, location, status)
                if status == 303:
                    method = "GET"
        raise VoltError(f"{method} {url}: more than {_MAX_REDIRECTS} redirects", url=url)

    def _open(self, url: str, headers: dict | None = None, method: str = "GET"):
        headers = dict(headers or {})
        registry = origin(self.base)  # read each time: the manager may fall back to plain HTTP
        for attempt in range(2):
            try:
                return self._follow(url, headers, method, self._authorization, registry)
            except _Failure as failure:
                # Only the registry itself may ask for credentials, never a host it redirected to.
                if failure.status == 401 and attempt == 0 and origin(failure.url) == registry:
                    self._authenticate(failure.error.headers.get("WWW-Authenticate", ""))
                    continue
                raise failure.volt_error(method) from None
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
        realm = params["realm"]
        realm_scheme = urlsplit(realm).scheme.lower()
        if realm_scheme not in ("http", "https") or (realm_scheme == "http" and self.base.startswith("https:")):
            raise VoltError(
                f"{self.reference.registry} asks for a token from {realm!r}: only an https realm (or an http "
                "one for a plain-HTTP registry) gets the request"
            )
        from urllib.parse import urlencode

        query = {key: params[key] for key in ("service", "scope") if key in params}
        query.setdefault("scope", f"repository:{self.reference.repository}:pull")
        self._authorization = None
        response = self._open_token(f"{realm}?{urlencode(query)}")
        token = response.get("token") or response.get("access_token")
        if not token or not isinstance(token, str):
            raise VoltError(f"{realm} returned no token")
        self._authorization = f"Bearer {token}"

    def _open_token(self, url: str) -> dict:
        """The token server's answer; the user's credentials go to the realm's origin only."""
        basic = self._basic() if self.username is not None else None
        try:
            answer = json.loads(self._follow(url, {}, "GET", basic, origin(url)).read())
        except _Failure as failure:
            where = failure.url.split("?", maxsplit=1)[0]
            raise VoltError(f"token request to {where} failed: {failure.error}") from None
        except ValueError as exc:
            raise VoltError(f"token request to {url.split('?', maxsplit=1)[0]} failed: {exc}") from None
        if not isinstance(answer, dict):
            raise VoltError(f"token server {url.split('?', maxsplit=1)[0]} answered {_short(answer)}, not an object")
        return answer

    # -- manifests -----------------------------------------------------------------------------
    def manifest(self, reference: str) -> tuple[dict, str, str]:
        """(parsed manifest, media type, digest of the bytes received) for a tag or digest."""
        if ":" in reference:  # tags have no ':'
            check_digest(reference, "manifest digest")
        accept = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
        response = self._open(f"{self.base}/manifests/{reference}", {"Accept": accept})
        body = response.read(_MANIFEST_MAX + 1)
        if len(body) > _MANIFEST_MAX:
            raise VoltError(f"manifest {reference} is larger than 16 MiB")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise VoltError(f"manifest {reference} has digest {digest}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise VoltError(f"manifest {reference} is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise VoltError(f"manifest {reference} of {self.reference} is not a JSON object: {_short(document)}")
        media_type = document.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip()
        return document, media_type, digest

    def resolve(self, wanted_platform: tuple[str, str, str]) -> tuple[dict, str]:
        """The platform's image manifest, checked, and its digest (the image's identity)."""
        reference = self.reference.digest or self.reference.tag
        document, media_type, digest = self.manifest(reference)
        if _kind(document, media_type, f"{self.reference}") == "index":
            chosen = _choose(index_entries(document, str(self.reference)), wanted_platform, str(self.reference))
            document, media_type, digest = self.manifest(chosen["digest"])
            if _kind(document, media_type, f"{self.reference}@{digest}") != "manifest":
                raise VoltError(f"{self.reference}: index entry {digest} is not an image manifest")
        return check_manifest(document, str(self.reference)), digest

    # -- blobs ---------------------------------------------------------------------------------
    def fetch_blob(self, descriptor: dict, target_fd: int) -> None:
        """Stream a blob into target_fd, verifying its size and sha256 on the way."""
        digest = check_digest(descriptor.get("digest"), "blob digest")
        size = check_size(descriptor.get("size"), f"blob {digest}")
        response = self._open(f"{self.base}/blobs/{digest}")
        sha, received = hashlib.sha256(), 0
        with os.fdopen(os.dup(target_fd), "wb") as target:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                received += len(chunk)
                if received > size:
                    raise VoltError(f"blob {digest} is larger than the {size} bytes its manifest says")
                sha.update(chunk)
                target.write(chunk)
        if received != size:
            raise VoltError(f"blob {digest} has {received} bytes, not the {size} its manifest says")
        actual = "sha256:" + sha.hexdigest()
        if actual != digest:
            raise VoltError(f"blob {digest} arrived with digest {actual}: refusing it")


# -- checks of what a registry sends ------------------------------------------------------------


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_size(value: object, what: str) -> int:
    """A descriptor's size: a whole number of bytes (bool is an int in Python, but not a size)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise VoltError(f"{what} has size {_short(value)}, not a whole number of bytes")
    return value


def check_descriptor(value: object, what: str) -> dict:
    """A content descriptor: a mapping with a sha256 digest, a size and a string media type."""
    if not isinstance(value, dict):
        raise VoltError(f"{what} is {_short(value)}, not a descriptor (a JSON object)")
    digest = check_digest(value.get("digest"), f"{what} digest")
    check_size(value.get("size"), f"{what} {digest}")
    media_type = value.get("mediaType", "")
    if not isinstance(media_type, str):
        raise VoltError(f"{what} {digest} has media type {_short(media_type)}, not a string")
    return value


def check_manifest(document: dict, reference: str) -> dict:
    """An image manifest whose config and layers are well-formed descriptors."""
    check_descriptor(document.get("config"), f"{reference}: config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise VoltError(f"{reference}: the manifest's layers are {_short(layers)}, not a list")
    for number, layer in enumerate(layers, 1):
        check_descriptor(layer, f"{reference}: layer {number}")
    return document


def index_entries(document: dict, reference: str) -> list[dict]:
    """An index's manifests, each a mapping with a sha256 digest and a mapping as platform."""
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise VoltError(f"{reference}: the index's manifests are {_short(entries)}, not a list")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise VoltError(f"{reference}: index entry {number} is {_short(entry)}, not a JSON object")
        check_digest(entry.get("digest"), f"{reference}: index entry {number} digest")
        if not isinstance(entry.get("platform", {}), dict):
            raise VoltError(f"{reference}: index entry {number} has platform {_short(entry['platform'])}")
    return entries


def _kind(document: dict, media_type: object, reference: str) -> str:
    """'index' or 'manifest'; VoltError naming a media type this client does not read."""
    declared = document.get("mediaType")
    if declared is not None and declared not in INDEX_TYPES + MANIFEST_TYPES:
        raise VoltError(f"{reference} has unsupported media type {_short(declared)}")
    if media_type in INDEX_TYPES:
        return "index"
    if media_type in MANIFEST_TYPES:
        return "manifest"
    if "manifests" in document:
        return "index"
    if "layers" in document:
        return "manifest"
    raise VoltError(f"{reference} is neither an image index nor an image manifest (media type {_short(media_type)})")


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
            "/".join(str(v) for v in (m.get("platform", {}).get(k) for k in ("os", "architecture", "variant")) if v)
            for m in manifests
        )
        raise VoltError(f"{reference} has no image for {'/'.join(filter(None, wanted))} (it has: {', '.join(offered)})")
    return chosen[0]
