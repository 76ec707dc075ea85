#!/bin/sh
# Builds Conclave and starts the node with its defaults in --dev mode:
# generated DTLS certificate, dev tokens, the demo page. Extra arguments
# go to the node (e.g. --listen.port=9000). See docs/config.md.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized
ninja -C build src/node/conclave
exec ./build/src/node/conclave --dev "$@"
