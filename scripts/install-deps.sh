#!/bin/sh
# Installs everything Conclave needs to build, run and test on Debian 12.
# Idempotent and quick when everything is there. Run as root (or via sudo).
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the tests use (clang for
#                                    libFuzzer, chromium, node, coturn, ...)
#   scripts/install-deps.sh --perf   also what perf/ uses (Janus to compare
#                                    against, valgrind, gnuplot)
set -eu
cd "$(dirname "$0")/.."

BUILD_PKGS="meson ninja-build pkg-config gcc libc6-dev libssl-dev
	libsrtp2-dev libwebsockets-dev libjansson-dev binutils
	libnice-dev libglib2.0-dev libopus-dev libsqlite3-dev libpq-dev
	postgresql"
TEST_PKGS="clang libclang-rt-14-dev clang-format chromium python3 curl coturn
	janus iproute2"
PERF_PKGS="janus valgrind gnuplot-nox iproute2"

want="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && want="$want $TEST_PKGS"
[ "${1:-}" = "--perf" ] && want="$want $TEST_PKGS $PERF_PKGS"
command -v node >/dev/null 2>&1 || want="$want nodejs npm"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if [ -n "$missing" ]; then
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Debian's libsrtp2 is built on NSS and several times slower than the same
# source built on OpenSSL: see docs/dependencies.md.
$SUDO sh scripts/build-libsrtp2.sh
