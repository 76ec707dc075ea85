#!/bin/sh
# Builds Conclave and starts the node with its defaults in --dev mode:
# generated DTLS certificate, dev tokens, the demo page. Extra arguments
# go to the node (e.g. --listen.port=9000). See docs/config.md.
#
#   scripts/run.sh --perc [node flags...]
#
# also starts a conclave-kms in a temporary directory (its channel on port
# 8447, its Key Distributor on 8448) and points the node at it: perc rooms
# on (GET /dev/token?room=R&mode=perc), the KMS channel relayed at
# POST /v1/channel. The node's tunnel certificate is made here with the
# openssl tool so that the KMS can pin it before the node starts. The KMS
# token secret and issuer are printed; Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
perc=false
if [ "${1:-}" = "--perc" ]; then
	perc=true
	shift
fi
sh scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized
if ! $perc; then
	ninja -C build src/node/conclave
	exec ./build/src/node/conclave --dev "$@"
fi

ninja -C build src/node/conclave kms/conclave-kms
tmp=$(mktemp -d /tmp/conclave-run-XXXXXX)
kms_pid=""
cleanup() {
	[ -n "$kms_pid" ] && kill "$kms_pid" 2>/dev/null && wait "$kms_pid" || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj /CN=conclave-node -days 30 -keyout "$tmp/node-key.pem" \
	-out "$tmp/node-cert.pem" 2>/dev/null
node_fp="sha-256 $(openssl x509 -in "$tmp/node-cert.pem" -noout \
	-fingerprint -sha256 | sed 's/.*=//')"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/kms-token.secret"
chmod 600 "$tmp/kms-token.secret" "$tmp/node-key.pem"

./build/kms/conclave-kms --kms.data_dir="$tmp/kms" \
	--log.file="$tmp/kms.log" --admin.port=0 \
	--channel.port=8447 --channel.token_secret_file="$tmp/kms-token.secret" \
	--channel.token_issuer=conclave-dev --kd.port=8448 \
	--kd.node_fingerprints="$node_fp" &
kms_pid=$!
i=0
until grep -q "cert=sha-256" "$tmp/kms.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$kms_pid" 2>/dev/null; then
		echo "run.sh: conclave-kms did not start (see $tmp/kms.log)" >&2
		exit 1
	fi
	sleep 0.1
done
kms_fp=$(sed -n 's/.*cert=\(sha-256 [0-9A-F:]*\).*/\1/p' "$tmp/kms.log" |
	head -n 1)
echo "run.sh: conclave-kms up: channel 127.0.0.1:8447 (relayed by the node)"
echo "run.sh: KMS tokens: issuer conclave-dev, HS256 secret in $tmp/kms-token.secret"
echo "run.sh: KMS certificate to pin: $tmp/kms/kms-cert.pem"

./build/src/node/conclave --dev --perc.kd_port=8448 \
	--perc.kd_fingerprint="$kms_fp" --perc.cert_file="$tmp/node-cert.pem" \
	--perc.key_file="$tmp/node-key.pem" --perc.kms_port=8447 "$@"
