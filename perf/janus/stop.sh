#!/bin/bash
# Stops the Janus started by perf/janus/start.sh and removes what start.sh
# created: the veth pair (with its routes and sysctls), the network
# namespace and $JANUS_RUN_DIR. The log ($JANUS_LOG) is kept. Safe to run
# when nothing is running. Needs root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

need_root

# Waits up to $2 tenths of a second for pid $1 to exit; true if it did.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -d "/proc/$1" ] || return 0
		sleep 0.1
	done
	[ ! -d "/proc/$1" ]
}

# Janus processes inside our namespace: ours, by construction (the pid file
# names the main one; a second one could only come from a racing start.sh).
pids=$(janus_pid)
if ip netns list | grep -qw "^$JANUS_NS"; then
	for p in $(ip netns pids "$JANUS_NS" 2>/dev/null); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = janus ]; then
			pids="$pids $p"
		fi
	done
fi
for p in $(echo "$pids" | tr ' ' '\n' | sort -u); do
	kill -TERM "$p" 2>/dev/null || continue
	# Janus tears sessions down on SIGTERM; allow it 10 s, then insist.
	if ! wait_gone "$p" 100; then
		echo "janus: pid $p ignored SIGTERM, sending SIGKILL" >&2
		kill -KILL "$p" 2>/dev/null || true
		wait_gone "$p" 50 || die "pid $p would not die"
	fi
	echo "janus stopped (pid $p)"
done

# Deleting one end of a veth deletes both, with their addresses and routes.
if ip link show "$VETH_HOST" >/dev/null 2>&1; then
	ip link del "$VETH_HOST"
fi
if ip netns list | grep -qw "^$JANUS_NS"; then
	ip netns del "$JANUS_NS"
	echo "namespace $JANUS_NS removed"
fi
rm -rf "${JANUS_RUN_DIR:?}"
