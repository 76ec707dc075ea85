# shellcheck shell=bash disable=SC2034
# Settings shared by perf/janus/start.sh and perf/janus/stop.sh (sourced).
#
# Every value can be overridden from the environment; start.sh and stop.sh
# must see the same values (stop.sh only needs JANUS_NS, JANUS_VETH and
# JANUS_RUN_DIR).

JANUS_NS=${JANUS_NS:-conclave-janus}          # network namespace name
JANUS_VETH=${JANUS_VETH:-cvjanus}             # veth pair: <name>0 host side, <name>1 in the namespace
JANUS_IP=${JANUS_IP:-127.0.1.1}               # Janus's address (in the namespace)
JANUS_PEER_IP=${JANUS_PEER_IP:-127.0.1.2}     # host-side address of the veth pair
JANUS_WS_PORT=${JANUS_WS_PORT:-8188}          # WebSocket API port (on JANUS_IP)
JANUS_RTP_PORTS=${JANUS_RTP_PORTS:-20000-40000}
JANUS_DEBUG=${JANUS_DEBUG:-3}                 # 0 none .. 3 warnings .. 7 everything
JANUS_RUN_DIR=${JANUS_RUN_DIR:-/run/conclave-janus}
JANUS_LOG=${JANUS_LOG:-/tmp/conclave-janus.log} # kept after stop.sh for post-mortems
JANUS_START_TIMEOUT=${JANUS_START_TIMEOUT:-20} # seconds start.sh waits for the API
JANUS_LIBDIR=${JANUS_LIBDIR:-/usr/lib/x86_64-linux-gnu/janus}

VETH_HOST="${JANUS_VETH}0"
VETH_NS="${JANUS_VETH}1"
PID_FILE="$JANUS_RUN_DIR/janus.pid"
JANUS_URL="ws://$JANUS_IP:$JANUS_WS_PORT/"

die() {
	echo "janus: $*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (creates a network namespace)"
	command -v ip >/dev/null || die "iproute2 ('ip') is not installed"
}

# Prints the pid of the Janus we started if it is still alive, else nothing.
janus_pid() {
	local pid
	[ -r "$PID_FILE" ] || return 0
	pid=$(tr -dc 0-9 <"$PID_FILE")
	[ -n "$pid" ] || return 0
	# Only our process: alive, named janus, and inside our namespace.
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = janus ] || return 0
	ip netns pids "$JANUS_NS" 2>/dev/null | grep -qx "$pid" || return 0
	echo "$pid"
}

# True when the WebSocket API completes an upgrade handshake (HTTP 101).
ws_answers() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		-H 'Connection: Upgrade' -H 'Upgrade: websocket' \
		-H 'Sec-WebSocket-Version: 13' \
		-H 'Sec-WebSocket-Key: Y29uY2xhdmUtamFudXMtcA==' \
		-H 'Sec-WebSocket-Protocol: janus-protocol' \
		"http://$JANUS_IP:$JANUS_WS_PORT/" 2>/dev/null || true)
	[ "$code" = 101 ]
}
