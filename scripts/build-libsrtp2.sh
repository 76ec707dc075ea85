#!/bin/sh
# Build Debian 12's own libsrtp2 source package against OpenSSL and install
# it as a static library (+ headers + pkg-config file) under /usr/local.
#
# Why: Debian's binary libsrtp2 is built against NSS and is several times
# slower (see docs/dependencies.md for the figures). pkg-config searches
# /usr/local first, so meson's dependency('libsrtp2') then resolves to this
# build; being static-only there is no runtime library path to get wrong.
#
# Usage (as root, on Debian 12): scripts/build-libsrtp2.sh
# Idempotent: exits at once when the OpenSSL build is already installed.
# Set CONCLAVE_SRTP_FORCE=1 to rebuild anyway.
set -eu

PREFIX=/usr/local
PCDIR=$PREFIX/lib/pkgconfig
PC=$PCDIR/libsrtp2.pc
LIB=$PREFIX/lib/libsrtp2.a
STAMP=$PREFIX/share/conclave/libsrtp2-openssl.stamp
SRC_LIST=/etc/apt/sources.list.d/conclave-deb-src.sources

log() { printf 'build-libsrtp2: %s\n' "$*"; }

installed_ok() {
	[ -f "$STAMP" ] && [ -f "$LIB" ] && [ -f "$PC" ] &&
		[ -f "$PREFIX/include/srtp2/srtp.h" ] &&
		grep -q -- '-lcrypto' "$PC" &&
		# The OpenSSL backend's GCM code is only in an OpenSSL build.
		nm "$LIB" 2>/dev/null | grep -q 'srtp_aes_gcm_openssl'
}

# The Debian source version apt would fetch now (empty if apt does not
# know: no deb-src list yet, or lists not downloaded).
source_version() {
	apt-cache showsrc libsrtp2 2>/dev/null |
		sed -n 's/^Version: *//p' | sort -V | tail -n 1
}

if [ "${CONCLAVE_SRTP_FORCE:-0}" != 1 ] && installed_ok; then
	have=$(cut -d' ' -f1 "$STAMP")
	want=$(source_version)
	if [ -z "$want" ] || [ "$want" = "$have" ]; then
		log "OpenSSL libsrtp2 already in $PREFIX ($(cat "$STAMP"))"
		exit 0
	fi
	log "installed $have, Debian now has $want: rebuilding"
fi

if [ "$(id -u)" != 0 ]; then
	log "must run as root" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# 1. A deb-src entry using the same mirrors as the binary entries.
if [ ! -f "$SRC_LIST" ]; then
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		sed 's/^Types:.*/Types: deb-src/' \
			/etc/apt/sources.list.d/debian.sources >"$SRC_LIST"
	else
		cat >"$SRC_LIST" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	fi
	log "added $SRC_LIST"
	apt-get update -qq
elif ! apt-cache showsrc libsrtp2 >/dev/null 2>&1; then
	apt-get update -qq
fi

# 2. What the build needs (binutils for nm comes with build-essential).
apt-get install -y -qq --no-install-recommends \
	dpkg-dev build-essential libssl-dev pkg-config >/dev/null

# 3. Fetch and unpack the Debian source (with Debian's patches applied).
work=$(mktemp -d /tmp/libsrtp2-build.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"
apt-get source libsrtp2 >source.log 2>&1 ||
	{ tail -n 30 source.log >&2; exit 1; }
srcdir=$(find . -maxdepth 1 -type d -name 'libsrtp2-*' | head -n 1)
[ -n "$srcdir" ] || { log "apt-get source gave no libsrtp2-* dir" >&2; exit 1; }
cd "$srcdir"
version=$(dpkg-parsechangelog -S Version 2>/dev/null || echo unknown)
log "building libsrtp2 $version with OpenSSL"

# 4. Configure with OpenSSL; Debian's hardening flags plus -fPIC so the
# archive can also go into a shared object.
CFLAGS="$(dpkg-buildflags --get CFLAGS) -fPIC"
CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
export CFLAGS CPPFLAGS LDFLAGS
./configure --prefix="$PREFIX" --enable-openssl >configure.log 2>&1 ||
	{ tail -n 30 configure.log >&2; exit 1; }
make -j"$(nproc)" libsrtp2.a >make.log 2>&1 ||
	{ tail -n 30 make.log >&2; exit 1; }

# Refuse to install anything that is not the OpenSSL backend.
nm libsrtp2.a | grep -q 'srtp_aes_gcm_openssl' ||
	{ log "built library has no OpenSSL backend" >&2; exit 1; }

# 5. Install static library, headers and a pkg-config file. Static only: no
# libsrtp2.so in $PREFIX/lib, so the linker takes the archive; since there
# is no shared object to carry the dependency, Libs names -lcrypto itself.
install -d "$PREFIX/lib" "$PCDIR" "$PREFIX/include/srtp2" \
	"$(dirname "$STAMP")"
install -m 0644 libsrtp2.a "$LIB"
# A stray shared build from an earlier 'make install' would win over the
# archive at link time and need a runtime path: remove it.
rm -f "$PREFIX"/lib/libsrtp2.so "$PREFIX"/lib/libsrtp2.so.*
install -m 0644 include/srtp.h crypto/include/auth.h \
	crypto/include/cipher.h crypto/include/crypto_types.h \
	"$PREFIX/include/srtp2/"
pcver=$(sed -n 's/^Version: *//p' libsrtp2.pc 2>/dev/null || true)
[ -n "$pcver" ] || pcver=${version%%-*}
cat >"$PC.tmp" <<EOF
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: libsrtp2
Version: $pcver
Description: SRTP library (Debian source $version, OpenSSL backend, static)
Libs: -L\${libdir} -lsrtp2 -lcrypto
Cflags: -I\${includedir}
EOF
mv "$PC.tmp" "$PC"
printf '%s openssl static\n' "$version" >"$STAMP"
log "installed $LIB, $PC, $PREFIX/include/srtp2"
