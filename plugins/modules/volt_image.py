#!/usr/bin/python
# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volt_image
short_description: Put a root filesystem image into the Volt image store
version_added: 0.1.0
description:
  - Adds an image to the host's image store, C(<data_dir>/images/<name>), from which both the
    proot and the systemd backend create containers, or removes it.
  - Sources are a directory (copied as C(cp -a --reflink=auto) does), a root filesystem tarball,
    local or downloaded and verified against a sha256 checksum, debootstrap, the current tree of
    a container (the "builder container" pattern), and an OCI registry, pulled without
    any daemon (tag -> index -> the platform's manifest -> layers), every blob's size and sha256
    verified while it streams in. Layers shared between images are downloaded once, and the next
    layer downloads while the current one is unpacked.
  - An OCI image's config (C(Entrypoint), C(Cmd), C(Env), C(WorkingDir), C(User),
    C(ExposedPorts), C(StopSignal), C(Labels)) is kept with it, and
    M(armoredgate.volt.volt_container) runs the image by it as Docker would. An image pulled by an
    older version, without its config, is pulled again once (its layers are cached).
  - Layers may be uncompressed, gzip or zstd. zstd needs Python 3.14 or later on the managed host,
    or the C(zstd) program; without either, the pull is refused before anything is downloaded.
  - Tarballs are unpacked by the same code as image layers, which refuses entries that could
    escape the image (absolute paths, C(..), paths through symlinks, hard links outside).
  - A tarball or layer must be complete. A tar archive that ends without its end-of-archive
    blocks, or has data after them, and a gzip, xz or bzip2 stream that is cut short or fails
    its checksum, are refused. Unpacking stops at O(max_size).
  - Registry responses are checked before use. Manifests and indexes must be JSON objects of a
    known media type, every digest must be C(sha256:) followed by 64 lower-case hex digits (it
    names a file in the store), every size a whole number of bytes. A layer already in the store
    is hashed again before it is used.
  - Credentials (basic or bearer) are only sent to the registry's own scheme, host and port.
    Redirects, such as a registry sending blobs to a CDN host, are followed without them, and a
    redirect from HTTPS to plain HTTP is refused.
  - The file given in O(path) is only read; a failed run never removes or changes it.
  - An image is built under a hidden name and swapped in by rename, so a failed run leaves the
    store as it was.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - armoredgate.volt.volt.attributes
attributes:
  diff_mode:
    support: full
    details: The image's source and digest (or tree fingerprint) before and after.
options:
  name:
    description:
      - Name containers use to refer to the image (their O(armoredgate.volt.volt_container#module:image)).
      - A name made of letters, digits, C(_), C(.) and C(-) is also its directory name in the store.
        In other names C(:), C(/) and C(@) become C(%3A), C(%2F) and C(%40), so that V(team/app),
        V(team_app) and V(team:app) are three images.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the image is in the store and matches its source - the same
        digest for a tarball or an OCI image, the same suite, mirror, variant and packages for
        debootstrap, and for a directory or a container the same tree (names, types, modes,
        sizes and modification times; a changed tree is copied again).
      - V(absent) removes it; refused while a container uses it, unless O(force=true).
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where the image comes from. Inferred when not given, from O(url) (a tarball) or from
        O(path) (a directory or a tarball), from O(reference) (OCI), O(suite) (debootstrap) or
        O(container).
    type: str
    choices: [directory, tarball, oci, debootstrap, container]
  suite:
    description:
      - Debian or Ubuntu code name to debootstrap (root only), such as V(bookworm). Selects
        O(source=debootstrap). Packages downloaded once stay in C(<data_dir>/cache/debootstrap/),
        so building the image again needs no download.
      - The image is up to date when it was built from the same suite, mirror and variant.
    type: str
  include:
    description:
      - Extra packages to install with O(suite) (debootstrap's C(--include)), such as
        V([python3]) for an image Ansible can manage through the connection plugin.
      - Part of the image's identity - another list builds the image again.
    type: list
    elements: str
    version_added: 0.2.0
  container:
    description:
      - Take the current root filesystem of this container (of O(data_dir), on either backend) as
        the image. Selects O(source=container).
      - Copy a stopped container for a consistent image; a running one is copied as it is at
        that moment. The image is up to date while the container's tree is unchanged.
    type: str
    version_added: 0.2.0
  mirror:
    description: Mirror for O(suite). Defaults to C(http://deb.debian.org/debian).
    type: str
  variant:
    description: debootstrap variant. Defaults to V(minbase).
    type: str
    choices: [minbase, buildd, fakechroot]
  reference:
    description:
      - OCI image to pull, as C([registry/]repository[:tag][@sha256:digest]). Without a registry,
        Docker Hub is used, and a one-word repository is in C(library/), as docker does.
      - With O(pull=always) (the default) each run asks the registry for the reference's manifest
        (one request when nothing changed); a tag that moved pulls the new image, and containers
        made from the old one see the new digest as drift.
    type: str
  platform:
    description:
      - Platform to pick from a multi-platform image, as C(os/architecture[/variant]). Defaults to
        this host's.
    type: str
  pull:
    description:
      - V(always) checks the registry on every run; V(missing) only pulls when the image is not in
        the store yet (no request at all otherwise).
    type: str
    choices: [always, missing]
    default: always
  username:
    description: User name for the registry (basic auth, or to obtain a bearer token).
    type: str
  password:
    description: Password for the registry.
    type: str
  ca_path:
    description: PEM file of the certificate authorities to trust for the registry or O(url).
    type: path
  path:
    description:
      - A directory to copy, or a tarball (gzip, xz or bzip2 compressed, or not) on the managed host.
    type: path
  url:
    description:
      - Download a root filesystem tarball from this URL.
    type: str
  checksum:
    description:
      - Expected digest of the tarball, as C(sha256:<hex>).
      - Required with O(url) unless O(validate_checksum=false). The image is up to date when the
        store holds this digest, so a second run downloads nothing.
    type: str
  validate_checksum:
    description:
      - Set to V(false) to download a URL without a checksum. The image is then fetched once
        and not compared again.
    type: bool
    default: true
  validate_certs:
    description:
      - Verify TLS certificates of O(url) and of the registry.
      - With V(false), a registry that does not speak TLS is reached over plain HTTP.
    type: bool
    default: true
  max_size:
    description:
      - Most bytes the image may unpack to, counted over the decompressed tar streams of all its
        layers (or of the tarball) and over the files written, as a number of bytes or with a
        suffix V(K), V(M), V(G) or V(T) (powers of 1024), such as V(20G).
      - A larger image, or a decompression bomb, fails and leaves the store as it was. An OCI image
        whose compressed layers, as its manifest declares them, already exceed it is refused before
        anything is downloaded; a O(url) download stops once it exceeds it.
    type: raw
    default: 32G
    version_added: 0.1.0
  force:
    description:
      - With V(present), build the image again even when it is up to date.
      - With V(absent), remove it even when containers use it (they keep their own copy).
    type: bool
    default: false
  data_dir:
    description:
      - Directory holding the Volt store. Defaults to C(/var/lib/volt) for root and to
        C(${XDG_DATA_HOME:-~/.local/share}/volt) for other users.
    type: path
seealso:
  - module: armoredgate.volt.volt_container
"""

EXAMPLES = r"""
- name: A root filesystem tarball, verified
  armoredgate.volt.volt_image:
    name: alpine
    url: https://example.org/alpine-minirootfs-3.20.0-x86_64.tar.gz
    checksum: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

- name: A Debian image with Python, so Ansible can manage its containers
  armoredgate.volt.volt_image:
    name: bookworm-python
    suite: bookworm
    include: [python3]

- name: The builder pattern - install into a container, then keep its tree as an image
  armoredgate.volt.volt_image:
    name: app-built
    container: builder

- name: A directory prepared by other means
  armoredgate.volt.volt_image:
    name: busybox
    path: /srv/rootfs/busybox

- name: Pull from a registry, pinned to a digest
  armoredgate.volt.volt_image:
    name: debian
    reference: docker.io/library/debian:bookworm@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

- name: A private image for 64-bit ARM phones
  armoredgate.volt.volt_image:
    name: app
    reference: registry.example.org/team/app:1.4
    platform: linux/arm64
    username: deploy
    password: "{{ registry_password }}"

- name: A big image, allowed to unpack to more than the default 32 GiB
  armoredgate.volt.volt_image:
    name: toolchain
    reference: registry.example.org/team/toolchain:2024
    max_size: 64G

- name: Remove an image no container uses any more
  armoredgate.volt.volt_image:
    name: alpine
    state: absent
"""

RETURN = r"""
layers:
  description: Per layer of a pull, its digest, size, whether it was already in the store, and
    the seconds spent downloading and unpacking it (downloads overlap the previous layer's unpacking).
  returned: when an OCI image was pulled
  type: list
  elements: dict
requests:
  description: HTTP requests made to the registry.
  returned: with O(source=oci)
  type: int
actions:
  description: What the module did (or, in check mode, would do).
  returned: always
  type: list
  elements: str
  sample: [download, extract]
image:
  description: The image in the store after the run (in check mode, as it is now). Empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Image name.
      type: str
    path:
      description: The image's tree in the store.
      type: str
    source:
      description: V(directory), V(tarball), V(oci) or V(debootstrap).
      type: str
    digest:
      description: sha256 digest of the tarball it was unpacked from, or of the OCI image manifest.
      type: str
    size:
      description: Bytes of file data in the tree.
      type: int
    os:
      description: C(PRETTY_NAME) from the image's os-release, if any.
      type: str
    created:
      description: When it was put in the store (RFC 3339, UTC).
      type: str
    config:
      description:
        - An OCI image's config, as M(armoredgate.volt.volt_container) uses it; only the fields
          the image sets. Images from other sources have none.
      type: dict
      version_added: 0.2.0
      contains:
        entrypoint:
          description: C(Entrypoint).
          type: list
          elements: str
        cmd:
          description: C(Cmd).
          type: list
          elements: str
        env:
          description: C(Env), as a mapping.
          type: dict
        workdir:
          description: C(WorkingDir).
          type: str
        user:
          description: C(User).
          type: str
        exposed_ports:
          description: C(ExposedPorts), such as V(80/tcp).
          type: list
          elements: str
        stop_signal:
          description: C(StopSignal), such as V(SIGQUIT).
          type: str
        labels:
          description: C(Labels).
          type: dict
    include:
      description: The extra packages of a debootstrap image.
      type: list
      elements: str
      version_added: 0.2.0
    container:
      description: The container a O(source=container) image was taken from.
      type: str
      version_added: 0.2.0
    tree:
      description: Fingerprint of the source tree of a directory or container image.
      type: str
      version_added: 0.2.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armoredgate.volt.plugins.module_utils._module_runs import image_module_spec, run_image


def main():
    module = AnsibleModule(**image_module_spec())
    run_image(module)


if __name__ == "__main__":
    main()
