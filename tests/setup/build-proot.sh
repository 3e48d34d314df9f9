#!/usr/bin/env bash
# Builds proot 5.4 for the tests with the proot role's own build script
# (roles/proot/files/build-proot.sh), so the tests and the role build the same binary.
# Same arguments and output: the binary's path is the last line on stdout (see --help).
set -euo pipefail
exec "$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")/../../roles/proot/files/build-proot.sh" "$@"
