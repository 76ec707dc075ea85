#!/usr/bin/env python3
"""Perc rooms end to end: the real node, the real conclave-kms (channel
and Key Distributor) and three conclave-client endpoints on loopback.

usage: perc_e2e.py CONCLAVE CONCLAVE_CLIENT CONCLAVE_KMS KD_NODE
       perc_e2e.py --perf CONCLAVE CONCLAVE_PERF CONCLAVE_KMS KD_NODE
       perc_e2e.py --hooks CONCLAVE PERC_HOOKS CONCLAVE_KMS KD_NODE

--hooks: perc_hooks.c (the client library's test hooks: keys used, the
datagram tap, a member's and a removed member's state tried on captured
packets, removal through the node) against the same node and KMS.

--perf: the same node and KMS under conclave-perf --scenario perc (a
meeting of 4 in 2 perc rooms for 5 s, one room through the node's relay):
it must pass its own gate (no failed endpoint, every track, nothing lost
beyond 1 %, every delivered packet bit-exact) and report CPU per
forwarded packet.

- conclave-kms: SQLite in a temp dir, channel on (its own token secret
  and issuer), Key Distributor on, the node's tunnel certificate pinned
  (made by the kd_node helper of tests/integration/kms).
- the node: --dev, perc.kd_* pointing at the KD (pinning the KMS
  certificate), perc.cert_file/key_file = that certificate, the KMS
  channel relayed through the node (perc.kms_*).
- tokens minted here: a node token (mode perc) and a KMS token for the
  same sub, per endpoint.
- A (audio + video) creates the room at the KMS through the node relay
  and adds B and C; it mutes its video from 2 s to 3 s (the node stops
  forwarding it, then rewrites SEQ for each receiver: the receivers see
  hop SEQ != original SEQ). B (audio + video) drops 5 % of what it
  receives in bursts of 2 and must repair its video with NACK. C (audio
  + video) reaches conclave-kms directly, not through the relay, and
  holds back 3 % of its video packets (--tx-loss): the node NACKs C, C
  resends the identical protected packets, and A and B still lose
  nothing of C's video.

Checks: every endpoint publishes and subscribes, gets the others' 2 audio
+ 2 video tracks, and every delivered packet is bit for bit what its
sender sent (payload_mismatch 0, perc verified > 0, no end-to-end drop);
B's video gaps are repaired; the SEQ rewrite after the mute is seen.

The module is written so that the lead can add cases (memory scan,
removal, KMS down): start_kms(), start_node(), tokens(), run_endpoint(),
wait_joined() and the Checks class are reusable; main() composes them.
Every process started here is killed before exit, whatever happens.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DURATION_S = 6
KMS_ISSUER = "idp.perc.test"
procs = []


def log(msg):
    print(msg, flush=True)


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        log(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failed += 1


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_ports(n):
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


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_hs256(key, claims):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"},
                             separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def tokens(node_secret, kms_secret, sub, room, ttl_s=600):
    """A node token (mode perc) and a KMS token for the same sub."""
    exp = int(time.time()) + ttl_s
    node = jwt_hs256(node_secret.encode(), {"sub": sub, "room": room,
                                            "exp": exp, "mode": "perc"})
    kms = jwt_hs256(kms_secret.encode(), {"iss": KMS_ISSUER,
                                          "aud": "conclave-kms", "sub": sub,
                                          "iat": int(time.time()) - 5,
                                          "exp": exp})
    return node, kms


def wait_log(path, pattern, seconds=15, proc=None):
    deadline = time.monotonic() + seconds
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        if os.path.exists(path):
            m = rx.findall(open(path, errors="replace").read())
            if m:
                return m
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    return []


def start_kms(kms_exe, kd_node, tmp):
    """conclave-kms with the channel and the KD; returns a dict of what a
    node and a client need."""
    r = subprocess.run([kd_node, "cert", tmp, "node"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"kd_node cert failed: {r.stderr}")
    node_fp = r.stdout.strip()
    kms_secret = secrets.token_hex(32)
    secret_file = os.path.join(tmp, "kms-token.secret")
    with open(secret_file, "w") as f:
        f.write(kms_secret + "\n")
    os.chmod(secret_file, 0o600)
    log_path = os.path.join(tmp, "kms.log")
    conf = os.path.join(tmp, "kms.conf")
    with open(conf, "w") as f:
        f.write("kms.name = kms.perc.test\n")
        f.write(f"kms.data_dir = {tmp}/data\n")
        f.write(f"log.file = {log_path}\n")
        f.write("admin.port = 0\n")
        f.write("channel.address = 127.0.0.1\n")
        f.write("channel.port = 0\n")
        f.write(f"channel.token_secret_file = {secret_file}\n")
        f.write(f"channel.token_issuer = {KMS_ISSUER}\n")
        f.write("kd.address = 127.0.0.1\n")
        f.write("kd.port = 0\n")
        f.write(f'kd.node_fingerprints = "{node_fp}"\n')
    p = start([kms_exe, "--config", conf], stdout=subprocess.DEVNULL,
              stderr=subprocess.DEVNULL)
    ch = wait_log(log_path, r"channel ready \(address=127\.0\.0\.1:(\d+)\)",
                  proc=p)
    kd = wait_log(log_path, r"kd ready \(address=127\.0\.0\.1:(\d+) ", proc=p)
    fp = wait_log(log_path, r"cert=(sha-256 [0-9A-F:]+)", proc=p)
    if not ch or not kd or not fp:
        raise RuntimeError("conclave-kms did not come up: " +
                           (open(log_path).read()
                            if os.path.exists(log_path) else "no log"))
    return {"proc": p, "channel_port": int(ch[0]), "kd_port": int(kd[0]),
            "kms_fp": fp[0], "cert": os.path.join(tmp, "data",
                                                  "kms-cert.pem"),
            "secret": kms_secret, "node_cert": os.path.join(
                tmp, "node-cert.pem"),
            "node_key": os.path.join(tmp, "node-key.pem"), "log": log_path}


def start_node(exe, kms, tmp):
    port, admin = free_tcp_port(), free_tcp_port()
    base = free_udp_ports(1)
    secret = secrets.token_hex(32)
    log_path = os.path.join(tmp, "node.log")
    argv = [exe, f"--listen.port={port}", f"--admin.port={admin}",
            f"--media.port_base={base}", "--node.workers=1",
            f"--token.secret={secret}", "--dev",
            "--media.address=127.0.0.1",
            "--media.announce_address=127.0.0.1",
            "--perc.kd_address=127.0.0.1",
            f"--perc.kd_port={kms['kd_port']}",
            f"--perc.kd_fingerprint={kms['kms_fp']}",
            f"--perc.cert_file={kms['node_cert']}",
            f"--perc.key_file={kms['node_key']}",
            "--perc.kms_address=127.0.0.1",
            f"--perc.kms_port={kms['channel_port']}"]
    out = open(log_path, "ab")
    node = start(argv, stdout=out, stderr=subprocess.STDOUT)
    if not wait_log(log_path, r"conclave: listening on", 20, node):
        raise RuntimeError("the node did not listen: " +
                           open(log_path, errors="replace").read())
    return {"proc": node, "url": f"ws://127.0.0.1:{port}/ws",
            "secret": secret, "admin": admin, "log": log_path}


def run_endpoint(client_exe, node, kms, room, sub, extra, duration=DURATION_S,
                 direct=False):
    """Starts one conclave-client --perc process (stdout: its JSON
    report; stderr: --verbose lines)."""
    ntok, ktok = tokens(node["secret"], kms["secret"], sub, room)
    argv = [client_exe, "--url", node["url"], "--room", room, "--token",
            ntok, "--perc", "--kms-token", ktok, "--kms-cert", kms["cert"],
            "--duration", str(duration), "--json", "--verbose",
            "--ice-address", "127.0.0.1", "--name", sub]
    if direct:
        argv += ["--kms-host", "127.0.0.1", "--kms-port",
                 str(kms["channel_port"])]
    p = start(argv + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              text=True)
    p.tokens = (ntok, ktok)
    return p


def wait_joined(p, seconds=15):
    """Reads p's stderr until its "joined" line; returns what it read."""
    fd = p.stderr.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and "conclave-client: joined" \
            not in seen:
        if not sel.select(timeout=max(0, deadline - time.monotonic())):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
    sel.close()
    return seen


def collect(name, p, early_err=""):
    stdout, stderr = p.communicate(timeout=DURATION_S + 60)
    err = (early_err + stderr).strip()
    quiet = [line for line in err.splitlines()
             if "event " not in line]
    if quiet:
        log(f"{name} stderr: " + " | ".join(quiet[-12:]))
    try:
        rep = json.loads(stdout)
    except ValueError:
        raise RuntimeError(f"{name} (exit {p.returncode}) printed no JSON: "
                           f"{stdout!r}")
    log(f"{name}: exit {p.returncode}, state {rep['state']}, "
        f"sent {rep['sent']}, perc {rep.get('perc')}")
    for t in rep["tracks"]:
        log(f"  {t['kind']} {t['track']}: packets {t['packets']} lost "
            f"{t['lost']} nacks {t['nacks_sent']} recovered "
            f"{t['recovered']}")
    return p.returncode, rep


E2E_DROPS = ("ekt_field", "ohb", "ekt_spi", "ekt_unwrap", "ekt_ssrc",
             "ekt_epoch", "no_key", "full", "inner", "inner_replay")


def check_perc_endpoint(c, name, rc, rep, impaired=False):
    c.check(rc == 0 and rep["published"] and rep["subscribed"],
            f"{name}: exit {rc}, published and subscribed")
    perc = rep.get("perc") or {}
    c.check(perc.get("sent", 0) > 100, f"{name}: {perc.get('sent')} "
            "packets double-protected")
    c.check(perc.get("verified", 0) > 100,
            f"{name}: {perc.get('verified')} packets verified end to end")
    c.check(perc.get("payload_mismatch", -1) == 0,
            f"{name}: every delivered packet is bit-exact "
            f"(mismatches {perc.get('payload_mismatch')})")
    c.check(perc.get("unknown_ssrc", -1) == 0,
            f"{name}: no packet for an unannounced SSRC")
    drops = perc.get("drops", {})
    bad = {k: v for k, v in drops.items() if k in E2E_DROPS and v}
    c.check(not bad, f"{name}: no end-to-end drop ({bad or 'none'})")
    for kind in ("audio", "video"):
        tr = [t for t in rep["tracks"] if t["kind"] == kind and
              t["packets"] > 20]
        c.check(len(tr) == 2, f"{name}: receives 2 {kind} tracks "
                f"({len(tr)})")
        for t in tr:
            c.check(t["duplicates"] == 0, f"{name} {kind}: no duplicates")
            if kind == "video" and impaired:
                c.check(t["nacks_sent"] > 0 and t["recovered"] > 0 and
                        t["lost"] <= max(2, t["expected"] // 50),
                        f"{name} video: {t['nacks_sent']} NACKs, "
                        f"{t['recovered']} recovered, lost {t['lost']} of "
                        f"{t['expected']}")
            elif not (kind == "audio" and impaired):
                # Video from C, which holds back 3 % of its packets for
                # the node to NACK: the few held back in the last round
                # trip before the end cannot be repaired in time (more
                # of them under ASan), so video gets 2 %, audio 1 %.
                bound = t["expected"] // (50 if kind == "video" else 100)
                c.check(t["lost"] <= max(2, bound),
                        f"{name} {kind}: lost {t['lost']} of "
                        f"{t['expected']}")
    return perc


def run_perf(c, node, kms, perf_exe, tmp):
    secret_file = os.path.join(tmp, "kms-token.secret")
    out = os.path.join(tmp, "perf.json")
    argv = [perf_exe, "--url", node["url"], "--token-secret",
            node["secret"], "--node-pid", str(node["proc"].pid),
            "--scenario", "perc", "--participants", "4", "--rooms", "2",
            "--duration", "5", "--warmup", "2", "--ramp-per-sec", "0",
            "--kms-cert", kms["cert"], "--kms-token-secret-file",
            secret_file, "--kms-issuer", KMS_ISSUER, "--max-loss", "1",
            "--json", out, "--quiet"]
    p = start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              text=True)
    stdout, stderr = p.communicate(timeout=120)
    log(stdout.strip())
    if stderr.strip():
        log("conclave-perf stderr: " + stderr.strip()[-2000:])
    c.check(p.returncode == 0, f"conclave-perf --scenario perc passes its "
            f"gate (exit {p.returncode})")
    rep = json.load(open(out)) if os.path.exists(out) else {}
    text = json.dumps(rep)
    rx = rep.get("totals", {}).get("received", {})
    c.check(rx.get("perc_verified", 0) > 1000,
            f"perc packets verified end to end: {rx.get('perc_verified')}")
    c.check(rx.get("perc_mismatch", -1) == 0 and
            rx.get("perc_drops", -1) == 0,
            "no packet that is not bit-exact, no perc drop "
            f"({rx.get('perc_mismatch')}, {rx.get('perc_drops')})")
    c.check("cpu_us_per_packet" in text,
            "CPU per forwarded packet is reported")


def run_hooks(c, node, kms, hooks_exe):
    room = "hooks" + secrets.token_hex(4)
    argv = [hooks_exe, node["url"], room, kms["cert"]]
    for sub in ("sub-a", "sub-b", "sub-d"):
        argv += list(tokens(node["secret"], kms["secret"], sub, room))
    p = start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
              text=True)
    out, _ = p.communicate(timeout=90)
    log(out.strip())
    c.check(p.returncode == 0, f"perc_hooks: exit {p.returncode}")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--hooks":
        node_exe, hooks_exe, kms_exe, kd_node = sys.argv[2:6]
        tmp = tempfile.mkdtemp(prefix="perc-hooks-")
        c = Checks()
        try:
            kms = start_kms(kms_exe, kd_node, tmp)
            node = start_node(node_exe, kms, tmp)
            run_hooks(c, node, kms, hooks_exe)
        finally:
            kill_all()
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
        return 1 if c.failed else 0
    if len(sys.argv) == 6 and sys.argv[1] == "--perf":
        node_exe, perf_exe, kms_exe, kd_node = sys.argv[2:6]
        tmp = tempfile.mkdtemp(prefix="perc-perf-")
        c = Checks()
        try:
            kms = start_kms(kms_exe, kd_node, tmp)
            node = start_node(node_exe, kms, tmp)
            run_perf(c, node, kms, perf_exe, tmp)
        finally:
            kill_all()
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
        return 1 if c.failed else 0
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    node_exe, client_exe, kms_exe, kd_node = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="perc-e2e-")
    c = Checks()
    try:
        kms = start_kms(kms_exe, kd_node, tmp)
        node = start_node(node_exe, kms, tmp)
        room = "perc" + secrets.token_hex(4)
        a = run_endpoint(client_exe, node, kms, room, "sub-a",
                         ["--audio", "--video", "--perc-create-room",
                          "--perc-add", "sub-b", "--perc-add", "sub-c",
                          "--mute-video-at", "2", "--mute-video-for", "1"])
        a_err = wait_joined(a)
        c.check("conclave-client: joined" in a_err,
                "A created the room at the KMS and joined")
        b = run_endpoint(client_exe, node, kms, room, "sub-b",
                         ["--audio", "--video", "--rx-loss", "5",
                          "--rx-loss-burst", "2"])
        cc = run_endpoint(client_exe, node, kms, room, "sub-c",
                          ["--audio", "--video", "--tx-loss", "3"],
                          direct=True)
        results = {"A": collect("A", a, a_err), "B": collect("B", b),
                   "C": collect("C", cc)}
        pa = check_perc_endpoint(c, "A", *results["A"])
        pb = check_perc_endpoint(c, "B", *results["B"], impaired=True)
        pc = check_perc_endpoint(c, "C", *results["C"])
        c.check(pb.get("seq_rewritten", 0) > 0 and
                pc.get("seq_rewritten", 0) > 0,
                "after A's video mute gap the node rewrote SEQ for B and C "
                f"({pb.get('seq_rewritten')}, {pc.get('seq_rewritten')} "
                "packets with hop SEQ != original SEQ), all verified")
        sent_c = results["C"][1]["sent"]
        c.check(sent_c["tx_impair_dropped"] > 0 and
                sent_c["nacks_received"] > 0 and
                pc.get("retransmits", 0) >= sent_c["tx_impair_dropped"] // 2,
                f"C held back {sent_c['tx_impair_dropped']} video packets; "
                f"the node NACKed ({sent_c['nacks_received']} NACKs) and C "
                f"resent {pc.get('retransmits')} identical packets")
        c.check(pa.get("seq_rewritten", 1) == 0,
                "nothing muted towards A: no SEQ rewrite there")
        nlog = open(node["log"], errors="replace").read()
        klog = open(kms["log"], errors="replace").read()
        for name, p in (("A", a), ("B", b), ("C", cc)):
            c.check(all(t not in nlog and t not in klog for t in p.tokens),
                    f"no token of {name} in the node's or the KMS's log")
    finally:
        kill_all()
        if c.failed and os.environ.get("PERC_E2E_KEEP"):
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
