#!/usr/bin/env bash
# Build proot 5.4 from Debian's pinned source package (proot 5.4.0-3) on Debian or Ubuntu.
#
# Usage: build-proot.sh [OPTIONS] [CACHE_DIR]
#
#   --source-dir DIR  take the pinned source files from DIR (no download); each file
#                     is checked against the pinned size and sha256 all the same
#   --dest FILE       install the binary at FILE too (atomically; not when it is the same)
#   --mirror URL      the Debian mirror to download the source from (default:
#                     $VOLT_DEBIAN_MIRROR, else the one apt is configured with)
#   --print-mirror    print that mirror (the test fleet and the execution environment
#                     build their Debian trees from it too) and change nothing
#   --missing-deps    print the build dependencies that are not installed, one a line
#   --no-install-deps fail when a build dependency is missing instead of installing it
#   --check           change nothing; say what a run would do ("would build", "would
#                     install FILE") and print the path as a run would
#
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/armoredgate-volt. The binary
#   is built into $CACHE_DIR/proot-5.4/bin/proot; downloaded sources are kept in
#   $CACHE_DIR/proot-5.4/source (a directory to give to --source-dir, or to the proot
#   role's proot_source_src, on a machine without network). The path of the binary
#   (FILE with --dest) is the last line on stdout; everything else goes to stderr.
#
# If the binary exists and $CACHE_DIR/proot-5.4/RECIPE holds this script's sha256, nothing
# is built (with --dest, FILE is only brought up to date). Otherwise (non-interactive;
# installing build deps needs root or sudo):
#   1. installs missing build deps with apt-get (apt-get update first);
#   2. takes the pinned source package (proot 5.4.0-3, as in Debian sid) from --source-dir,
#      the cache, or the pool of the Debian mirror, checking each file's size and sha256
#      against the values pinned here;
#   3. unpacks it with dpkg-source -x (Debian patches applied), adds two local fixes (see
#      LOCAL_FIX below), builds only the proot binary the way debian/rules does
#      (dpkg-buildflags, make -C src proot) in a temp dir;
#   4. checks the binary (--version says 5.4, a static busybox runs in a tiny rootfs and
#      sees that rootfs as /), then moves it into place atomically.
set -euo pipefail

exec 3>&1 1>&2 # stdout is reserved for the resulting path

readonly WANT_SERIES=5.4
readonly SRC_PKG=proot

log() { printf 'build-proot: %s\n' "$*" >&2; }
die() {
	printf 'build-proot: ERROR: %s\n' "$*" >&2
	exit 1
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# The first configured repository serving Debian's main archive (not -security, -updates or
# third-party repositories): --mirror or VOLT_DEBIAN_MIRROR overrides it.
debian_mirror() {
	local mirror=${MIRROR_ARG:-${VOLT_DEBIAN_MIRROR-}}
	if [[ -n $mirror ]]; then
		printf '%s\n' "${mirror%/}"
		return
	fi
	# shellcheck disable=SC2016 # $(...) is apt's own template syntax, not the shell's
	apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' |
		awk '$3 == "deb" && $2 !~ /-(security|updates|backports)$/ && $1 ~ /\/debian\/?$/ {
			sub(/\/$/, "", $1); print $1; exit }'
}

SOURCE_DIR=
DEST=
MIRROR_ARG=
PRINT_MIRROR=no
MISSING_DEPS=no
INSTALL_DEPS=yes
CHECK=no
CACHE_ARG=
while (($#)); do
	case $1 in
	-h | --help)
		usage >&3
		exit 0
		;;
	--source-dir) SOURCE_DIR=${2:?--source-dir needs a directory}; shift ;;
	--source-dir=*) SOURCE_DIR=${1#*=} ;;
	--dest) DEST=${2:?--dest needs a file}; shift ;;
	--dest=*) DEST=${1#*=} ;;
	--mirror) MIRROR_ARG=${2:?--mirror needs a URL}; shift ;;
	--mirror=*) MIRROR_ARG=${1#*=} ;;
	--print-mirror) PRINT_MIRROR=yes ;;
	--missing-deps) MISSING_DEPS=yes ;;
	--no-install-deps) INSTALL_DEPS=no ;;
	--check) CHECK=yes ;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		[[ -z $CACHE_ARG ]] || die "usage: $0 [OPTIONS] [CACHE_DIR] (see --help)"
		CACHE_ARG=$1
		;;
	esac
	shift
done

if [[ $PRINT_MIRROR == yes ]]; then
	mirror=$(debian_mirror)
	[[ -n $mirror ]] || die "no Debian mirror in apt's sources: give one with --mirror or VOLT_DEBIAN_MIRROR"
	printf '%s\n' "$mirror" >&3
	exit 0
fi

pkg_installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# ------------------------------------------------------------- build deps
# What `make -C src proot` needs (care, the other target, would need libarchive and uthash);
# curl downloads the source (and callers' tests use it).
deps=(gcc make libc6-dev libtalloc-dev pkgconf dpkg-dev xz-utils patch binutils curl)
# The static busybox is the guest of the self-test. Don't replace a dynamic
# `busybox` package with it; we fetch the .deb instead in that case.
pkg_installed busybox || deps+=(busybox-static)
missing=()
for p in "${deps[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [[ $MISSING_DEPS == yes ]]; then
	((${#missing[@]} == 0)) || printf '%s\n' "${missing[@]}" >&3
	exit 0
fi

CACHE_DIR=${CACHE_ARG:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/armoredgate-volt}
CACHE_DIR=$(realpath -m -- "$CACHE_DIR")
PREFIX=$CACHE_DIR/proot-$WANT_SERIES
BIN=$PREFIX/bin/proot
CACHED_SOURCE=$PREFIX/source
[[ -z $SOURCE_DIR ]] || SOURCE_DIR=$(realpath -m -- "$SOURCE_DIR")
[[ -z $DEST ]] || DEST=$(realpath -m -- "$DEST")
SELF=$(realpath -- "${BASH_SOURCE[0]}")
RECIPE=$(sha256sum <"$SELF")
RECIPE=${RECIPE%% *}

WORK=
STAGED=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	[[ -z $WORK ]] || rm -rf -- "$WORK"
	[[ -z $STAGED ]] || rm -f -- "$STAGED"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

up_to_date() {
	[[ -x $BIN && -f $PREFIX/RECIPE ]] && [[ $(<"$PREFIX/RECIPE") == "$RECIPE" ]]
}

# Prints the result; with --dest, first brings FILE up to date (a rename: atomic).
finish() {
	if [[ -z $DEST ]]; then
		printf '%s\n' "$BIN" >&3
		exit 0
	fi
	if dest_current; then
		log "$DEST is up to date"
	else
		mkdir -p -- "$(dirname -- "$DEST")"
		STAGED=$(mktemp "$(dirname -- "$DEST")/.proot.XXXXXX")
		cp -- "$BIN" "$STAGED"
		chmod 755 "$STAGED"
		mv -f -- "$STAGED" "$DEST"
		STAGED=
		log "installed $DEST"
	fi
	printf '%s\n' "$DEST" >&3
	exit 0
}

dest_current() {
	[[ -f $DEST && -x $DEST ]] && cmp -s -- "$BIN" "$DEST"
}

if [[ $CHECK == yes ]]; then
	up_to_date || log "would build $BIN"
	if [[ -n $DEST ]]; then
		if up_to_date && dest_current; then log "$DEST is up to date"; else log "would install $DEST"; fi
	fi
	printf '%s\n' "${DEST:-$BIN}" >&3
	exit 0
fi

# ---------------------------------------------------------------- fast path
up_to_date && finish

umask 022
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.proot-$WANT_SERIES.lock"
flock 9 # serialize concurrent builds into the same CACHE_DIR
up_to_date && finish # somebody else built it while we waited

WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-proot.XXXXXX")
chmod 755 "$WORK"

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo -n -- "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

if ((${#missing[@]})); then
	[[ $INSTALL_DEPS == yes ]] || die "missing build dependencies: ${missing[*]}"
	log "installing: ${missing[*]}"
	# Always refresh the index first: a stale one names package versions the mirror dropped.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
		--no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		install "${missing[@]}"
fi

# ------------------------------------------------ pinned source
# Pinned by version and sha256 (Debian sid's Sources, proot 5.4.0-3), so nothing depends on
# sid's index being fresh (its Release file can be weeks past Valid-Until on the mirror).
readonly VERSION=5.4.0-3
readonly POOL_DIR=pool/main/p/proot
readonly DSC=${SRC_PKG}_${VERSION}.dsc
cat >"$WORK/sha256" <<'SUMS'
dde36ef8172998594a9ca9cea0fa58cfc4a612449cbd5e3a35bcc93d9f78a9d0 2167 proot_5.4.0-3.dsc
29248aac2a7ce10c3bd5ee5602742ec33b2532310ff9cf73b79f3c133e5a5f68 225529 proot_5.4.0.orig.tar.gz
7575d5b605ab1cc0cb529190073e3e9873a97ec356ad45a9422f4736a0aed7a8 5152 proot_5.4.0-3.debian.tar.xz
SUMS

# True when DIR holds every pinned file (the .dsc may be missing) with its pinned size and sha256.
verified() {
	local dir=$1 sum size name
	while read -r sum size name; do
		if [[ ! -f $dir/$name ]]; then
			[[ $name == "$DSC" ]] && continue
			return 1
		fi
		[[ $(stat -c %s "$dir/$name") == "$size" ]] || return 1
		echo "$sum  $dir/$name" | sha256sum -c --quiet - >/dev/null 2>&1 || return 1
	done <"$WORK/sha256"
}

DL=$WORK/dl
mkdir "$DL"
if [[ -n $SOURCE_DIR ]]; then
	ORIGIN="$SOURCE_DIR (a local directory)"
	log "taking $SRC_PKG $VERSION from $SOURCE_DIR (pinned sha256)"
	while read -r sum size name; do
		if [[ ! -f $SOURCE_DIR/$name ]]; then
			[[ $name == "$DSC" ]] && continue
			die "$SOURCE_DIR has no $name"
		fi
		[[ $(stat -c %s "$SOURCE_DIR/$name") == "$size" ]] || die "size mismatch for $SOURCE_DIR/$name"
		echo "$sum  $SOURCE_DIR/$name" | sha256sum -c --quiet - || die "sha256 mismatch for $SOURCE_DIR/$name"
		cp -- "$SOURCE_DIR/$name" "$DL/$name"
	done <"$WORK/sha256"
elif [[ -d $CACHED_SOURCE ]] && verified "$CACHED_SOURCE"; then
	ORIGIN="$CACHED_SOURCE (kept from an earlier download)"
	log "taking $SRC_PKG $VERSION from $CACHED_SOURCE (pinned sha256)"
	cp -- "$CACHED_SOURCE"/* "$DL/"
else
	MIRROR=$(debian_mirror)
	[[ -n $MIRROR ]] || die "no Debian mirror in apt's sources: give one with --mirror or VOLT_DEBIAN_MIRROR (the proot role: proot_source_mirror), or the source with --source-dir (proot_source_src)"
	ORIGIN="$MIRROR/$POOL_DIR"
	log "downloading $SRC_PKG $VERSION from $MIRROR/$POOL_DIR (pinned sha256)"
	while read -r sum size name; do
		if ! curl -fsSL --retry 3 --max-time 300 -o "$DL/$name" "$MIRROR/$POOL_DIR/$name"; then
			# Some mirrors lack .dsc files; the two tarballs are what counts, and their hashes are
			# pinned here, so the .dsc is written below from the same pinned values.
			[[ $name == "$DSC" ]] && {
				rm -f "$DL/$name"
				continue
			}
			die "downloading $MIRROR/$POOL_DIR/$name failed (is $SRC_PKG $VERSION still in the pool?)"
		fi
		[[ $(stat -c %s "$DL/$name") == "$size" ]] || die "size mismatch for $name"
		echo "$sum  $DL/$name" | sha256sum -c --quiet - || die "sha256 mismatch for $name"
	done <"$WORK/sha256"
	# Keep them: a rebuild, or another machine without network, can use them.
	rm -rf -- "$CACHED_SOURCE.new"
	mkdir -p "$CACHED_SOURCE.new"
	cp -- "$DL"/* "$CACHED_SOURCE.new/"
	rm -rf -- "$CACHED_SOURCE"
	mv -- "$CACHED_SOURCE.new" "$CACHED_SOURCE"
fi
if [[ ! -f $DL/$DSC ]]; then
	log "no $DSC; writing it from the pinned checksums"
	{
		echo "Format: 3.0 (quilt)"
		echo "Source: $SRC_PKG"
		echo "Binary: proot, care"
		echo "Architecture: any"
		echo "Version: $VERSION"
		echo "Checksums-Sha256:"
		grep -v " $DSC\$" "$WORK/sha256" | sed 's/^/ /'
		echo "Files:"
		grep -v " $DSC\$" "$WORK/sha256" | while read -r _ size name; do
			echo " $(md5sum <"$DL/$name" | cut -d' ' -f1) $size $name"
		done
	} >"$DL/$DSC"
fi

# ------------------------------------------------------------ unpack
SRC=$WORK/src
(cd "$DL" && dpkg-source -x "$DSC" "$SRC") || die "dpkg-source -x failed"

# LOCAL_FIX: Debian's patch "disable-seccomp-based-tracing-performanc" builds
# proot without HAVE_SECCOMP_FILTER, so no seccomp filter is ever installed.
# But 5.4.0's event loop (handle_tracee_event_kernel_4_8) still marks the
# tracee as "seccomp ENABLED" as soon as PTRACE_O_TRACESECCOMP is accepted and
# then restarts it with PTRACE_CONT: no syscall is ever translated and the
# guest silently sees the host's / (same as upstream with a missing filter).
# Only claim seccomp acceleration when it was compiled in; this gives exactly
# the PROOT_NO_SECCOMP=1 behaviour Debian intended with that patch.
cat >"$WORK/local-fix.patch" <<'EOF'
--- a/src/tracee/event.c
+++ b/src/tracee/event.c
@@ -48,6 +48,7 @@
 #include "execve/elf.h"
 
 #include "attribute.h"
+#include "build.h"         /* HAVE_SECCOMP_FILTER, */
 #include "compat.h"
 
 
@@ -478,8 +479,10 @@
 				}
 			}
 			else {
+#if defined(HAVE_SECCOMP_FILTER)
 				if (getenv("PROOT_NO_SECCOMP") == NULL)
 					seccomp_enabled = true;
+#endif
 			}
 		}
 			/* Fall through. */
EOF
# Applies local fix $1 (a patch file) when it applies cleanly, and prints yes or no.
apply_fix() {
	local args=(-d "$SRC" -p1 --fuzz=0 --no-backup-if-mismatch -i "$1")
	if patch --dry-run -s "${args[@]}" >/dev/null 2>&1; then
		patch -s "${args[@]}" >&2
		log "applied local fix: $2"
		echo yes
	else
		log "local fix ($2) does not apply to $VERSION; building without it (the self-test decides)"
		echo no
	fi
}
LOCAL_FIX=$(apply_fix "$WORK/local-fix.patch" "no fake seccomp acceleration without HAVE_SECCOMP_FILTER")

# LOCAL_FIX: two faults of link2symlink's stat handler (run when a stat call returns). It
# lstat()s the path the call was given and reads the result even when lstat failed: glibc 2.33
# and later fstat() with fstatat(fd, "", AT_EMPTY_PATH), lstat("") fails, and what the stack
# held decides; with -0 as well, about 1 in 18 starts of a glibc program failed with "cannot
# stat shared object: Operation not permitted" (readlink's -1 returned as -EPERM). And it
# writes a struct stat over statx()'s struct statx, so `ls -l` of a faked hard link showed
# garbage. A path lstat cannot see is no faked hard link; statx is left alone, as Termux's
# proot does (it has the first fault too).
cat >"$WORK/l2s-fix.patch" <<'EOF'
--- a/src/extension/link2symlink/link2symlink.c
+++ b/src/extension/link2symlink/link2symlink.c
@@ -263,7 +263,6 @@
 	case PR_lstat64:                   //int lstat(const char *path, struct stat *buf);
 	case PR_fstat64:                   //int fstat(int fd, struct stat *buf);
 	case PR_stat:                      //int stat(const char *path, struct stat *buf);
-	case PR_statx:                     //int statx(int fd, const char *path, unsigned flags, unsigned mask, struct statx *buf);
 	case PR_lstat:                     //int lstat(const char *path, struct stat *buf);
 	case PR_fstat: {                   //int fstat(int fd, struct stat *buf);
 		word_t result;
@@ -309,6 +308,8 @@
 
 		/* Check if it is a link */
 		status = lstat(original, &statl);
+		if (status < 0)
+			return 0;
 
 		if (strncmp(name, PREFIX, strlen(PREFIX)) == 0) {
 			if (S_ISLNK(statl.st_mode)) {
EOF
L2S_FIX=$(apply_fix "$WORK/l2s-fix.patch" "link2symlink's stat handler (failed lstat, statx)")

# ------------------------------------------------------------ build
# Same as debian/rules (dh --sourcedirectory=src; dh_auto_build -- V=1 proot
# care), restricted to the proot target. VERSION= etc.: upstream derives the
# version from `git describe`, which gives "-" (or a wrong enclosing repo's
# tag) in a tarball; empty makes it fall back to src/cli/proot.h's "5.4.0".
log "building proot"
(
	cd "$SRC"
	CROSS_COMPILE=$(dpkg-architecture -qDEB_HOST_GNU_TYPE)-
	export CROSS_COMPILE
	eval "$(DEB_CPPFLAGS_MAINT_APPEND=-DCARE_BINARY_IS_PORTABLE dpkg-buildflags --export=sh)"
	make -C src -j"$(nproc)" V=1 VERSION= GIT_VERSION= GIT_COMMIT= proot
) >"$WORK/build.log" 2>&1 || {
	tail -n 40 "$WORK/build.log" >&2
	die "build failed (last 40 lines above)"
}
BUILT=$SRC/src/proot
[[ -x $BUILT ]] || die "build produced no src/proot"

# ------------------------------------------------------------ self-test
log "checking the binary"
ver_out=$(env -u PROOT_NO_SECCOMP "$BUILT" --version 2>&1) || die "proot --version failed"
grep -q "$WANT_SERIES" <<<"$ver_out" || die "proot --version does not mention $WANT_SERIES: $ver_out"

BUSYBOX=/bin/busybox
if ! [[ -x $BUSYBOX ]] || [[ $(readelf -l "$BUSYBOX" 2>/dev/null) == *INTERP* ]]; then
	log "no static /bin/busybox; fetching busybox-static's .deb for the self-test"
	mkdir "$WORK/bb"
	((EUID == 0)) && id _apt >/dev/null 2>&1 && chown _apt "$WORK/bb"
	(cd "$WORK/bb" && apt-get -q download busybox-static) || die "apt-get download busybox-static failed"
	dpkg-deb -x "$WORK"/bb/busybox-static_*.deb "$WORK/bb/root"
	BUSYBOX=$WORK/bb/root/bin/busybox
fi
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS/bin"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
echo proot-selftest-ok >"$ROOTFS/proot-selftest"
guest() { env -u PROOT_NO_SECCOMP "$BUILT" -r "$ROOTFS" -w / -0 /bin/busybox "$@" </dev/null; }
guest true || die "proot -r ROOTFS -0 /bin/busybox true failed"
ls_out=$(guest ls /) || die "ls / in the guest failed"
[[ $ls_out == $'bin\nproot-selftest' ]] ||
	die "guest does not see its rootfs as / (path translation broken); ls / gave: $(tr '\n' ' ' <<<"$ls_out")"
[[ $(guest cat /proot-selftest) == proot-selftest-ok ]] || die "guest cannot read /proot-selftest"
[[ $(guest id -u) == 0 ]] || die "-0 (fake root) does not work"

# ------------------------------------------------------------ install
mkdir -p "$PREFIX/bin"
rm -f "$PREFIX/RECIPE" # invalid until the new binary is in place
STAGED=$(mktemp "$PREFIX/bin/.proot.XXXXXX")
cp "$BUILT" "$STAGED"
chmod 755 "$STAGED"
mv -f "$STAGED" "$BIN" # rename(2): atomic
STAGED=
{
	echo "package: $SRC_PKG $VERSION (Debian sid's source, from $ORIGIN)"
	echo "version: $VERSION"
	echo "local-fix: $LOCAL_FIX"
	echo "link2symlink-fix: $L2S_FIX"
	echo "arch: $(dpkg --print-architecture)"
	echo "compiler: $(gcc -dumpfullversion 2>/dev/null || echo unknown)"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "sources (sha256 size name):"
	sed 's/^/  /' "$WORK/sha256"
	echo "binary-sha256: $(sha256sum <"$BIN" | cut -d' ' -f1)"
} >"$PREFIX/BUILDINFO"
echo "$RECIPE" >"$PREFIX/RECIPE.tmp"
mv -f "$PREFIX/RECIPE.tmp" "$PREFIX/RECIPE"
log "built $BIN (Debian $VERSION, local fixes: seccomp $LOCAL_FIX, link2symlink $L2S_FIX)"

finish
