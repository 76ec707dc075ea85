#!/bin/bash
# Starts Debian's janus (1.1.2) in its own network namespace, reachable from
# this host at ws://127.0.1.1:8188/ (WebSocket API, VideoRoom plugin), for
# side-by-side measurements with Conclave. See perf/janus/README.md.
#
# Idempotent: an already running instance is reused; a half-built namespace
# is completed. Undo everything with perf/janus/stop.sh. Needs root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

need_root
command -v janus >/dev/null || die "janus is not installed (apt-get install -y janus)"
command -v curl >/dev/null || die "curl is not installed"

# ------------------------------------------------------------ network
# Janus's ICE ignores loopback interfaces, so it gets a namespace of its own
# whose only interface (besides lo) is one end of a veth pair carrying
# JANUS_IP/32; the host end carries JANUS_PEER_IP/32. Both are in 127/8, so
# traffic cannot leave the machine, but 127/8 is "local" on both sides and
# martian on a non-loopback link. Hence, on each side:
#  - route_localnet=1 on the veth end (accept/route 127/8 there, answer ARP);
#  - a /32 route to the peer in table "local", which beats the kernel's
#    "local 127.0.0.0/8 dev lo" entry by longest prefix.
# These routes and sysctls belong to the veth and vanish with it.
setup_network() {
	if ! ip netns list | grep -qw "^$JANUS_NS"; then
		ip netns add "$JANUS_NS"
	fi
	ip -n "$JANUS_NS" link set lo up
	if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
		# A stale namespace end (host end deleted by hand) would block the name.
		ip -n "$JANUS_NS" link del "$VETH_NS" 2>/dev/null || true
		ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$JANUS_NS"
	fi
	sysctl -qw "net.ipv4.conf.$VETH_HOST.route_localnet=1"
	ip netns exec "$JANUS_NS" sysctl -qw "net.ipv4.conf.$VETH_NS.route_localnet=1"
	# No IPv6 on the pair: Janus gathers IPv4 only, keep Chromium's side quiet.
	sysctl -qw "net.ipv6.conf.$VETH_HOST.disable_ipv6=1" 2>/dev/null || true
	ip netns exec "$JANUS_NS" sysctl -qw "net.ipv6.conf.$VETH_NS.disable_ipv6=1" 2>/dev/null || true

	ip addr replace "$JANUS_PEER_IP/32" dev "$VETH_HOST"
	ip -n "$JANUS_NS" addr replace "$JANUS_IP/32" dev "$VETH_NS"
	ip link set "$VETH_HOST" up
	ip -n "$JANUS_NS" link set "$VETH_NS" up
	ip route replace "$JANUS_IP/32" dev "$VETH_HOST" src "$JANUS_PEER_IP" table local
	ip -n "$JANUS_NS" route replace "$JANUS_PEER_IP/32" dev "$VETH_NS" src "$JANUS_IP" table local
}

# ------------------------------------------------------------ config
# Renders perf/janus/conf/*.jcfg.in into $JANUS_RUN_DIR/conf and links the
# two modules Janus needs into $JANUS_RUN_DIR/lib (so no other plugin,
# transport, event handler or logger is loaded).
render_config() {
	local f out
	rm -rf "${JANUS_RUN_DIR:?}/conf" "${JANUS_RUN_DIR:?}/lib"
	mkdir -p "$JANUS_RUN_DIR/conf" "$JANUS_RUN_DIR/lib/plugins" \
		"$JANUS_RUN_DIR/lib/transports" "$JANUS_RUN_DIR/lib/events" \
		"$JANUS_RUN_DIR/lib/loggers"
	for f in "$HERE"/conf/*.jcfg.in; do
		out="$JANUS_RUN_DIR/conf/$(basename "$f" .in)"
		sed -e "s|@RUN_DIR@|$JANUS_RUN_DIR|g" \
			-e "s|@DEBUG@|$JANUS_DEBUG|g" \
			-e "s|@JANUS_IP@|$JANUS_IP|g" \
			-e "s|@WS_PORT@|$JANUS_WS_PORT|g" \
			-e "s|@RTP_PORTS@|$JANUS_RTP_PORTS|g" \
			-e "s|@VETH_NS@|$VETH_NS|g" "$f" >"$out"
	done
	[ -e "$JANUS_LIBDIR/plugins/libjanus_videoroom.so" ] ||
		die "no VideoRoom plugin under $JANUS_LIBDIR (set JANUS_LIBDIR)"
	ln -s "$JANUS_LIBDIR/plugins/libjanus_videoroom.so" "$JANUS_RUN_DIR/lib/plugins/"
	ln -s "$JANUS_LIBDIR/transports/libjanus_websockets.so" "$JANUS_RUN_DIR/lib/transports/"
}

# ------------------------------------------------------------ main
setup_network

pid=$(janus_pid)
if [ -n "$pid" ]; then
	if ws_answers; then
		echo "janus already running (pid $pid)"
		echo "$JANUS_URL"
		exit 0
	fi
	# Alive but deaf (still starting, or wedged): give it the usual time below.
	echo "janus: pid $pid is running, waiting for its API" >&2
else
	rm -f "$PID_FILE"
	render_config
	# setsid -f: Janus outlives this script and its terminal. Janus writes
	# (and locks) the pid file itself; ip netns exec execs into janus.
	setsid -f ip netns exec "$JANUS_NS" janus \
		--config="$JANUS_RUN_DIR/conf/janus.jcfg" \
		--configs-folder="$JANUS_RUN_DIR/conf" \
		--pid-file="$PID_FILE" \
		--disable-colors \
		</dev/null >"$JANUS_LOG" 2>&1
fi

# Poll until the WebSocket API completes a handshake, Janus dies, or the
# deadline passes. (The pid file appears once Janus has parsed its config.)
deadline=$((SECONDS + JANUS_START_TIMEOUT))
polls=0
while [ "$SECONDS" -lt "$deadline" ]; do
	pid=$(janus_pid)
	if [ -n "$pid" ]; then
		if ws_answers; then
			echo "janus running (pid $pid, namespace $JANUS_NS, log $JANUS_LOG)"
			echo "$JANUS_URL"
			exit 0
		fi
	elif [ "$polls" -ge 10 ] && [ -z "$(ip netns pids "$JANUS_NS" 2>/dev/null)" ]; then
		# Nothing runs in the namespace after a second: Janus has exited.
		tail -n 20 "$JANUS_LOG" >&2 || true
		die "janus exited during startup (log: $JANUS_LOG)"
	fi
	polls=$((polls + 1))
	sleep 0.1
done
tail -n 20 "$JANUS_LOG" >&2 || true
die "janus API did not answer at $JANUS_URL within ${JANUS_START_TIMEOUT}s"
