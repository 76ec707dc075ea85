#!/bin/sh
# memscan finds a key in each form it claims to, at every base64
# alignment, and nothing in a file without it; and it reads a live
# process (a sleeping shell holding the key in its environment).
set -eu
memscan=$1
dir=$(mktemp -d)
sleeper=
trap 'kill $sleeper 2>/dev/null || true; rm -rf "$dir"' EXIT
key=00112233445566778899aabbccddeeff
printf 'junk' >"$dir/raw"
printf '%s' "$key" | xxd -r -p >>"$dir/raw"
printf 'x%sy' "$(echo "$key" | tr a-f A-F)" >"$dir/hex"
for pre in '' 'a' 'ab'; do
	(printf '%s' "$pre"; printf '%s' "$key" | xxd -r -p) | base64 -w0 >>"$dir/b64"
	echo >>"$dir/b64"
done
printf 'nothing to see' >"$dir/none"
check() { # file expected-line
	got=$("$memscan" --file "$1" k=$key)
	[ "$got" = "$2" ] || { echo "FAIL $1: got '$got', want '$2'"; exit 1; }
}
check "$dir/raw" "k raw=1 hex=0 base64=0"
check "$dir/hex" "k raw=0 hex=1 base64=0"
check "$dir/b64" "k raw=0 hex=0 base64=3"
check "$dir/none" "k raw=0 hex=0 base64=0"
MEMSCAN_PROBE=$key sleep 60 &
sleeper=$!
got=$("$memscan" --pid $sleeper k=$key)
case "$got" in
"k raw=0 hex=0 base64=0" | *"hex=0 "*) echo "FAIL pid: $got"; exit 1 ;;
esac
echo "ok: $got"
