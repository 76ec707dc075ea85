#!/bin/sh
# Builds Conclave and starts it with its defaults: the node in --dev mode
# (generated DTLS certificate, dev tokens, the demo page) and its embedded
# key management server, a conclave-kms with SQLite in a temporary
# directory, so that perc rooms work out of the box
# (GET /dev/token?room=R&mode=perc; the KMS channel relayed by the node at
# POST /v1/channel). Extra arguments go to the node (e.g.
# --listen.port=9000). See docs/config.md and docs/kms.md.
#
#   scripts/run.sh --no-kms [node flags...]   the node alone (forward rooms)
#
# The KMS listens on free loopback ports (its channel and its Key
# Distributor; the lines below name them). The node's tunnel certificate is
# made here with the openssl tool so that the KMS can pin it before the
# node starts. The KMS token secret and issuer are printed; Ctrl-C or
# SIGTERM stops both.
set -eu
cd "$(dirname "$0")/.."
perc=true
if [ "${1:-}" = "--no-kms" ]; then
	perc=false
	shift
elif [ "${1:-}" = "--perc" ]; then # the default since it has a KMS
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
	--channel.port=0 --channel.token_secret_file="$tmp/kms-token.secret" \
	--channel.token_issuer=conclave-dev --kd.port=0 \
	--kd.node_fingerprints="$node_fp" &
kms_pid=$!
i=0
until grep -q "kd ready" "$tmp/kms.log" 2>/dev/null &&
	grep -q "cert=sha-256" "$tmp/kms.log"; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$kms_pid" 2>/dev/null; then
		echo "run.sh: conclave-kms did not start (see $tmp/kms.log)" >&2
		exit 1
	fi
	sleep 0.1
done
kms_fp=$(sed -n 's/.*cert=\(sha-256 [0-9A-F:]*\).*/\1/p' "$tmp/kms.log" |
	head -n 1)
ch_port=$(sed -n 's/.*channel ready (address=127\.0\.0\.1:\([0-9]*\)).*/\1/p' \
	"$tmp/kms.log" | head -n 1)
kd_port=$(sed -n 's/.*kd ready (address=127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
	"$tmp/kms.log" | head -n 1)
echo "run.sh: conclave-kms up: channel 127.0.0.1:$ch_port (relayed by the node), key distributor 127.0.0.1:$kd_port"
echo "run.sh: KMS tokens: issuer conclave-dev, HS256 secret in $tmp/kms-token.secret"
echo "run.sh: KMS certificate to pin: $tmp/kms/kms-cert.pem"

./build/src/node/conclave --dev --perc.kd_port="$kd_port" \
	--perc.kd_fingerprint="$kms_fp" --perc.cert_file="$tmp/node-cert.pem" \
	--perc.key_file="$tmp/node-key.pem" --perc.kms_port="$ch_port" "$@"
