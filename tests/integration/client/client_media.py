#!/usr/bin/env python3
"""Black-box test of conclave-client against the real node on loopback.

usage: client_media.py CONCLAVE CONCLAVE_CLIENT [--turn | --nack | --multi]

Starts the node on free ports (--dev, its own token secret, media on
127.0.0.1), waits for its "conclave: listening on" line, runs two
conclave-client processes in one room for a few seconds and checks that
what each publishes arrives at the other: packets > 0, loss ~0, one-way
delay samples present.

--turn: also starts coturn (Debian's `turnserver`) on loopback with a
user and password, waits until it answers a STUN binding request, and
restricts the first client to relayed candidates (--relay-only); media
must flow both ways through the relay. Exits 77 (skipped) when
turnserver is not installed.

--nack: the second client drops 5 % of what it receives (bursts of 2,
--rx-loss); the node must repair its video gaps from its NACK cache
(video loss well under the drop rate) while audio, which has no NACK,
shows the loss.

--multi: one conclave-client process runs 3 endpoints on one loop
(--endpoints 3), each publishing audio and video; everyone must receive
everyone else's 2 tracks without loss.

Every process started here is killed before exit, whatever happens.
"""
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

DURATION_S = 4
procs = []


def log(msg):
    print(msg, flush=True)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_ports(n):
    """A base port with n consecutive free UDP ports."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for i in range(n):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free UDP port range")


def start(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    procs.append(p)
    return p


def kill_all():
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def start_node(exe):
    port, admin = free_tcp_port(), free_tcp_port()
    base = free_udp_ports(1)
    argv = [exe, f"--listen.port={port}", f"--admin.port={admin}",
            f"--media.port_base={base}", "--node.workers=1",
            f"--token.secret={secrets.token_hex(32)}", "--dev",
            "--media.address=127.0.0.1", "--media.announce_address=127.0.0.1"]
    node = start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fd = node.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + 20
    seen = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=deadline - time.monotonic()):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"the node exited ({node.wait()}) before "
                               f"listening: {seen.decode(errors='replace')}")
        seen += chunk
        if b"conclave: listening on" in seen:
            # Keep draining its output so that it never blocks on a pipe.
            procs.append(subprocess.Popen(["cat"], stdin=node.stdout,
                                          stdout=subprocess.DEVNULL))
            return f"ws://127.0.0.1:{port}/ws"
    raise RuntimeError('no "conclave: listening on" line within 20 s')


def stun_answers(port):
    """True when a STUN binding request to 127.0.0.1:port is answered."""
    txid = secrets.token_bytes(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(req, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            return False
    return len(data) >= 20 and data[8:20] == txid


def start_turn(workdir):
    turnserver = shutil.which("turnserver")
    if not turnserver:
        # CI (scripts/test.sh) sets CONCLAVE_REQUIRE_BROWSER: fail there.
        if os.environ.get("CONCLAVE_REQUIRE_BROWSER"):
            log("FAIL turnserver (Debian package coturn) is not installed")
            sys.exit(1)
        log("SKIP turnserver (Debian package coturn) is not installed")
        sys.exit(77)
    port = free_udp_ports(1)
    relay_base = free_udp_ports(20)
    user, password = "conclave", secrets.token_hex(8)
    argv = [turnserver, "-n", "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1", f"--listening-port={port}",
            f"--min-port={relay_base}", f"--max-port={relay_base + 19}",
            "--lt-cred-mech", f"--user={user}:{password}",
            "--realm=conclave.test", "--allow-loopback-peers", "--no-cli",
            "--no-tls", "--no-dtls", "--no-tcp", "--no-stdout-log",
            f"--pidfile={workdir}/turn.pid", f"--userdb={workdir}/turndb",
            f"--log-file={workdir}/turn.log", "--simple-log"]
    turn = start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if turn.poll() is not None:
            raise RuntimeError(f"turnserver exited ({turn.returncode})")
        if stun_answers(port):
            return port, user, password
    raise RuntimeError("turnserver does not answer STUN within 10 s")


def run_clients(client_exe, url, a_extra, b_extra):
    room = "r" + secrets.token_hex(4)
    common = [client_exe, "--url", url, "--room", room, "--dev-token",
              "--duration", str(DURATION_S), "--json",
              "--ice-address", "127.0.0.1"]
    a = start(common + ["--name", "A", "--audio", "--video"] + a_extra,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = start(common + ["--name", "B", "--audio"] + b_extra,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    for name, p in (("A", a), ("B", b)):
        stdout, stderr = p.communicate(timeout=DURATION_S + 30)
        if stderr.strip():
            log(f"client {name} stderr: {stderr.strip()}")
        try:
            rep = json.loads(stdout)
        except ValueError:
            raise RuntimeError(f"client {name} (exit {p.returncode}) "
                               f"printed no JSON: {stdout!r}")
        log(f"client {name}: exit {p.returncode}, state {rep['state']}, "
            f"ice {rep['ice']}, sent {rep['sent']}")
        for t in rep["tracks"]:
            log(f"  {t['kind']} {t['track']}: packets {t['packets']} "
                f"lost {t['lost']} recovered {t['recovered']} p50 {t['delay_p50_us']} us "
                f"p99 {t['delay_p99_us']} us")
        out.append((p.returncode, rep))
    return out


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        log(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failed += 1


def check_track(c, rep, who, kind, impaired=False, count=1):
    tracks = [t for t in rep["tracks"] if t["kind"] == kind
              and t["packets"] > 0]
    c.check(len(tracks) == count, f"{who} receives {count} {kind} track(s)")
    for t in tracks:
        c.check(t["packets"] > 20, f"{who} {kind}: {t['packets']} packets")
        if impaired and kind == "audio":
            c.check(t["lost"] > 0,
                    f"{who} audio: lost {t['lost']} (impaired, no NACK)")
        elif impaired:
            c.check(t["recovered"] > 0 and t["nacks_sent"] > 0 and
                    t["lost"] <= max(2, t["expected"] // 50),
                    f"{who} video: {t['nacks_sent']} NACKs, "
                    f"{t['recovered']} recovered, lost {t['lost']} "
                    f"of {t['expected']}")
        else:
            # Loopback: nothing is lost (1 % allows a start-up race).
            c.check(t["lost"] <= max(1, t["expected"] // 100),
                    f"{who} {kind}: lost {t['lost']} of {t['expected']}")
        c.check(t["duplicates"] == 0, f"{who} {kind}: no duplicates")
        c.check(t["delay_samples"] >= t["packets"] // 2 and
                0 < t["delay_p50_us"] < 200000,
                f"{who} {kind}: delay p50 {t['delay_p50_us']} us "
                f"({t['delay_samples']} samples)")
        if kind == "video":
            c.check(t["keyframes"] >= 1 and t["frames"] > 10,
                    f"{who} video: {t['frames']} frames, "
                    f"{t['keyframes']} keyframes")


def run_multi(c, client_exe, url, n=3):
    room = "m" + secrets.token_hex(4)
    p = start([client_exe, "--url", url, "--room", room, "--dev-token",
               "--duration", str(DURATION_S), "--json", "--ice-address",
               "127.0.0.1", "--audio", "--video", "--endpoints", str(n),
               "--progress"],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.communicate(timeout=DURATION_S + 30)
    if stderr.strip():
        log(f"client stderr: {stderr.strip()}")
    eps = json.loads(stdout)["endpoints"]
    c.check(p.returncode == 0 and len(eps) == n,
            f"{n} endpoints in one process, exit {p.returncode}")
    for ep in eps:
        c.check(ep["published"] and ep["subscribed"],
                f"{ep['name']} published and subscribed")
        check_track(c, ep, ep["name"], "audio", count=n - 1)
        check_track(c, ep, ep["name"], "video", count=n - 1)


def run_pair(c, client_exe, url, a_extra, nack, turn):
    b_extra = ["--rx-loss", "5", "--rx-loss-burst", "2"] if nack else []
    (rc_a, a), (rc_b, b) = run_clients(client_exe, url, a_extra,
                                       b_extra)
    c.check(rc_a == 0 and rc_b == 0, "both clients exit 0")
    c.check(a["published"] and a["subscribed"], "A published and subscribed")
    c.check(b["published"] and b["subscribed"], "B published and subscribed")
    check_track(c, b, "B", "audio", impaired=nack)
    check_track(c, b, "B", "video", impaired=nack)
    check_track(c, a, "A", "audio")
    c.check(b["ice"]["publish"] is not None and
            b["ice"]["subscribe"] is not None,
            f"B's ICE pairs selected: {b['ice']}")
    if turn:
        # RFC 8445 5.1.1.2: relayed local candidates only.
        c.check(a["ice"] == {"publish": "relay", "subscribe": "relay"},
                f"A's selected local candidates are relayed: {a['ice']}")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    node_exe, client_exe = sys.argv[1], sys.argv[2]
    turn = "--turn" in sys.argv[3:]
    nack = "--nack" in sys.argv[3:]
    multi = "--multi" in sys.argv[3:]
    workdir = tempfile.mkdtemp(prefix="cv-client-test-")
    log(f"work directory {workdir}")
    c = Checks()
    try:
        a_extra = []
        if turn:
            port, user, password = start_turn(workdir)
            a_extra = ["--turn-server", "127.0.0.1", "--turn-port",
                       str(port), "--turn-user", user, "--turn-password",
                       password, "--relay-only"]
        url = start_node(node_exe)
        if multi:
            run_multi(c, client_exe, url)
        else:
            run_pair(c, client_exe, url, a_extra, nack, turn)
    except Exception as e:  # any failure still kills everything
        c.check(False, f"exception: {e}")
    finally:
        kill_all()
        if not os.environ.get("CV_KEEP_TEST_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
