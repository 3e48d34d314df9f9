#!/usr/bin/env bash
# Prints the directory of ansible-core's own integration targets (test/integration/targets of
# its source distribution; the installed package ships none), for running them through the
# armoredgate.volt.volt connection (tests/integration/connection/test_become.py).
#
# The source distribution is of exactly the ansible-core the tests run with (PYTHON's, default
# python3; requirements/test.in pins it), pinned below by version and sha256: a different
# installed version fails, so a bump of ansible-core must update the pin. It is fetched once
# with pip (from the package index pip is set up with, nothing else) and kept, unpacked, in
# ${XDG_CACHE_HOME:-~/.cache}/armoredgate-volt/ansible-core-VERSION/.
set -euo pipefail

VERSION=2.19.14
SHA256=1e7612788eaa6b3c87a3670ce86c64b830eba0ae2b3fcb25a772f276704163b4
PYTHON=${PYTHON:-python3}

die() { printf 'ansible-core-targets: %s\n' "$*" >&2; exit 1; }

installed=$("$PYTHON" -c 'from ansible.release import __version__; print(__version__)') ||
  die "no ansible-core for $PYTHON"
[ "$installed" = "$VERSION" ] ||
  die "ansible-core $installed is installed, but the pinned source is $VERSION: update VERSION and SHA256 in $0"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/armoredgate-volt/ansible-core-$VERSION
sdist=$cache/ansible_core-$VERSION.tar.gz
targets=$cache/targets
if [ -f "$targets/.complete" ]; then
  printf '%s\n' "$targets"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$targets/.complete" ]; then
  if ! printf '%s  %s\n' "$SHA256" "$sdist" | sha256sum --check --status 2>/dev/null; then
    download=$(mktemp -d "$cache/.download.XXXXXX")
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --dest "$download" "ansible-core==$VERSION" >&2 ||
      { rm -rf "$download"; die "pip could not download ansible-core $VERSION's source distribution"; }
    if ! printf '%s  %s\n' "$SHA256" "$download/ansible_core-$VERSION.tar.gz" | sha256sum --check --status; then
      rm -rf "$download"
      die "ansible_core-$VERSION.tar.gz does not have the pinned sha256 $SHA256"
    fi
    mv "$download/ansible_core-$VERSION.tar.gz" "$sdist"
    rm -rf "$download"
  fi
  staging=$(mktemp -d "$cache/.targets.XXXXXX")
  tar -xzf "$sdist" -C "$staging" --strip-components=4 "ansible_core-$VERSION/test/integration/targets"
  touch "$staging/.complete"
  rm -rf "$targets"
  mv "$staging" "$targets"
fi
printf '%s\n' "$targets"
